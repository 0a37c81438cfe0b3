//! report.html: one self-contained page (inline CSS, inline SVG, PNG data URIs; no script, no
//! external reference) built from a [`CompareResults`], and the writer that puts it next to
//! results.json.

use std::path::{Path, PathBuf};

use super::results::CompareResults;
use crate::error::{Error, Result};
#[cfg(feature = "report")]
use {super::escape::escape, super::sections, std::fmt::Write};

#[cfg(feature = "report")]
/// The report's sections in page order: `(id, heading)`. Every one is always present; one
/// without data says so in a line.
pub const SECTIONS: [(&str, &str); 8] = [
    ("summary", "Summary"),
    ("metrics", "Metrics"),
    ("curves", "Learning curves"),
    ("confusion", "Confusion matrices"),
    ("roc", "ROC curves"),
    ("retention", "Retention of the source task"),
    ("sensitivity", "Sensitivity: learning rate × frozen depth"),
    ("attributions", "Attributions"),
];

/// File names inside the report folder.
pub const RESULTS_JSON: &str = "results.json";
/// See [`RESULTS_JSON`].
pub const REPORT_HTML: &str = "report.html";

#[cfg(feature = "report")]
const STYLE: &str = r#"
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 0;
  color: #1f2328; background: #f6f8fa; line-height: 1.45; }
header { background: #24292f; color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 4px; font-size: 1.6em; }
header p { margin: 0; color: #d0d7de; }
nav { padding: 8px 32px; background: #eaeef2; font-size: 0.9em; }
nav a { margin-right: 14px; color: #0969da; text-decoration: none; }
main { padding: 8px 32px 40px; max-width: 1240px; }
section { background: #fff; border: 1px solid #d0d7de; border-radius: 6px; padding: 8px 20px 16px; margin: 16px 0; }
h2 { font-size: 1.25em; border-bottom: 1px solid #d8dee4; padding-bottom: 4px; }
h3 { font-size: 1em; margin: 4px 0; }
table { border-collapse: collapse; font-size: 0.88em; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; text-align: left; white-space: nowrap; }
thead th { background: #f6f8fa; white-space: normal; vertical-align: bottom; }
td.top { font-weight: bold; }
td.na { color: #8c959f; }
.scroll { overflow-x: auto; }
.empty { color: #57606a; font-style: italic; }
.note { color: #57606a; font-size: 0.85em; }
.best { font-size: 1.05em; }
.auto { background: #fff8c5; padding: 6px 10px; border-radius: 4px; }
figure { margin: 8px 0; }
figcaption { color: #57606a; font-size: 0.85em; }
svg { max-width: 100%; height: auto; }
.row { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
.card { border: 1px solid #d0d7de; border-radius: 6px; padding: 8px 12px; }
.card.text { max-width: 560px; }
.pair { display: flex; gap: 12px; }
.pair img { image-rendering: pixelated; border: 1px solid #d0d7de; }
.label { margin: 0; color: #57606a; font-size: 0.9em; }
.tokens { line-height: 2; overflow-wrap: anywhere; }
.tok { padding: 2px 3px; margin: 0 1px; border-radius: 3px; }
"#;

#[cfg(feature = "report")]
/// The whole report as one HTML document. Checks `r` first
/// ([`CompareResults::validate`]); everything from user data is escaped.
pub fn render_html(r: &CompareResults) -> Result<String> {
    r.validate()?;
    let mut h = String::with_capacity(64 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n\
         <style>{STYLE}</style>\n</head>\n<body>\n<header><h1>{}</h1><p>{} · {} · {}</p></header>\n<nav>",
        escape(&r.title),
        escape(&r.title),
        escape(&r.task),
        escape(&r.model),
        escape(&r.data)
    );
    for (id, heading) in SECTIONS {
        let _ = write!(h, "<a href=\"#{id}\">{}</a>", escape(heading));
    }
    h.push_str("</nav>\n<main>\n");
    for (id, heading) in SECTIONS {
        let body = match id {
            "summary" => sections::summary(r),
            "metrics" => sections::metrics_table(r),
            "curves" => sections::curves(r)?,
            "confusion" => sections::confusion(r)?,
            "roc" => sections::roc(r)?,
            "retention" => sections::retention(r)?,
            "sensitivity" => sections::sensitivity(r)?,
            _ => sections::attributions(r)?,
        };
        let _ = write!(h, "<section id=\"{id}\">\n<h2>{}</h2>\n{body}</section>\n", escape(heading));
    }
    let _ = write!(
        h,
        "</main>\n<footer class=\"note\" style=\"padding: 0 32px 24px\">Written by whet {}; the numbers are in {RESULTS_JSON} \
         next to this file.</footer>\n</body>\n</html>\n",
        env!("CARGO_PKG_VERSION")
    );
    Ok(h)
}

/// Writes `dir/results.json` and `dir/report.html` (creating `dir`), each through a synced
/// temporary file and a rename, and returns the path of report.html. The page is rendered
/// before anything is written, so results that cannot be rendered leave `dir` untouched.
/// Without the `report` feature: results.json alone (checked the same way), and its path.
pub fn write_report(r: &CompareResults, dir: &Path) -> Result<PathBuf> {
    #[cfg(feature = "report")]
    let html = render_html(r)?;
    #[cfg(not(feature = "report"))]
    r.validate()?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    r.save_json(&dir.join(RESULTS_JSON))?;
    #[cfg(not(feature = "report"))]
    return Ok(dir.join(RESULTS_JSON));
    #[cfg(feature = "report")]
    {
        let path = dir.join(REPORT_HTML);
        crate::train::checkpoint::replace_atomically(&path, html.as_bytes())?;
        Ok(path)
    }
}
