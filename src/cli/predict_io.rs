//! `whet predict --input FILE --output FILE`: inputs read from a file as training data is read
//! (a CSV/TSV/JSONL table by the recipe's text column, a list with one input a line, or an image
//! folder), and predictions written as CSV or JSON Lines, one row an input.

use std::path::{Path, PathBuf};

use whet::data::image_folder::has_image_extension;
use whet::data::table::{TableFormat, TableOptions, TextTable};
use whet::run::inference::Ranked;
use whet::{Error, Result};

/// Texts from `path`: the `column` of a table, else one text a line (blank lines skipped).
pub fn texts(path: &Path, column: &str) -> Result<Vec<String>> {
    if TableFormat::from_path(path).is_ok() {
        let opts = TableOptions { text: column.to_string(), label: None, ..Default::default() };
        return Ok(TextTable::open(path, &opts)?.items.into_iter().map(|i| i.text).collect());
    }
    lines(path)
}

/// Images under the folder `path` (at any depth, in path order), or the paths listed one a
/// line in the file `path` (relative ones taken from its folder).
pub fn images(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_dir() {
        let mut found = Vec::new();
        walk(path, &mut found)?;
        found.sort();
        if found.is_empty() {
            return Err(Error::arg("predict", format!("{}: no image files in this folder", path.display())));
        }
        return Ok(found);
    }
    let base = path.parent().unwrap_or(Path::new("."));
    Ok(lines(path)?.into_iter().map(|l| base.join(l)).collect())
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let p = entry.map_err(|e| Error::io(dir, e))?.path();
        if p.is_dir() {
            walk(&p, out)?;
        } else if has_image_extension(&p) {
            out.push(p);
        }
    }
    Ok(())
}

fn lines(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    Ok(text.lines().map(str::trim_end).filter(|l| !l.trim().is_empty()).map(str::to_string).collect())
}

/// One prediction: a classifier's ranked labels, or a language model's continuation.
pub enum Row {
    Ranked { input: String, ranked: Ranked },
    Generated { input: String, output: String },
}

/// Write `rows` to `path`: `.csv` (input, label, probability, then one probability column per
/// class in `classes` order) or `.jsonl` (the same as objects, `probabilities` by class name).
pub fn write(path: &Path, rows: &[Row], classes: &[String]) -> Result<()> {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let bytes = match ext.as_deref() {
        Some("csv") => {
            csv_bytes(rows, classes).map_err(|e| Error::arg("predict", format!("{}: {e}", path.display())))?
        }
        Some("jsonl") | Some("ndjson") => jsonl_bytes(rows),
        _ => {
            return Err(Error::arg(
                "predict",
                format!("--output {}: the extension picks the format (.csv or .jsonl)", path.display()),
            ))
        }
    };
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
}

fn probability(ranked: &Ranked, class: &str) -> f32 {
    ranked.iter().find(|(l, _)| l == class).map_or(0.0, |(_, p)| *p)
}

fn csv_bytes(rows: &[Row], classes: &[String]) -> std::result::Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let generated = matches!(rows.first(), Some(Row::Generated { .. }));
    if generated {
        w.write_record(["input", "output"])?;
    } else {
        let mut header = vec!["input".to_string(), "label".into(), "probability".into()];
        header.extend(classes.iter().map(|c| format!("p({c})")));
        w.write_record(&header)?;
    }
    for row in rows {
        match row {
            Row::Generated { input, output } => w.write_record([input, output])?,
            Row::Ranked { input, ranked } => {
                let (label, p) = ranked.first().cloned().unwrap_or_default();
                let mut rec = vec![input.clone(), label, p.to_string()];
                rec.extend(classes.iter().map(|c| probability(ranked, c).to_string()));
                w.write_record(&rec)?;
            }
        }
    }
    w.into_inner().map_err(|e| e.into_error().into())
}

fn jsonl_bytes(rows: &[Row]) -> Vec<u8> {
    let mut out = String::new();
    for row in rows {
        let v = match row {
            Row::Generated { input, output } => serde_json::json!({ "input": input, "output": output }),
            Row::Ranked { input, ranked } => {
                let (label, p) = ranked.first().cloned().unwrap_or_default();
                let probs: serde_json::Map<String, serde_json::Value> =
                    ranked.iter().map(|(l, p)| (l.clone(), f64::from(*p).into())).collect();
                serde_json::json!({ "input": input, "label": label, "probability": p, "probabilities": probs })
            }
        };
        out.push_str(&v.to_string());
        out.push('\n');
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_come_from_tables_lines_and_folders() {
        let tmp = tempfile::tempdir().unwrap();
        let csv = tmp.path().join("in.csv");
        std::fs::write(&csv, "id,sentence\n1,\"a, quoted\"\n2,plain\n").unwrap();
        assert_eq!(texts(&csv, "sentence").unwrap(), ["a, quoted", "plain"]);
        let e = texts(&csv, "text").unwrap_err().to_string();
        assert!(e.contains("in.csv") && e.contains("text"), "a missing column is named: {e}");
        let jsonl = tmp.path().join("in.jsonl");
        std::fs::write(&jsonl, "{\"text\": \"one\"}\n{\"text\": \"two\"}\n").unwrap();
        assert_eq!(texts(&jsonl, "text").unwrap(), ["one", "two"]);
        let txt = tmp.path().join("prompts.txt");
        std::fs::write(&txt, "ROMEO:\n\nJULIET: \r\n").unwrap();
        assert_eq!(texts(&txt, "text").unwrap(), ["ROMEO:", "JULIET:"]);

        let dir = tmp.path().join("imgs");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        for f in ["b.png", "sub/a.JPG", "notes.txt"] {
            std::fs::write(dir.join(f), b"x").unwrap();
        }
        assert_eq!(images(&dir).unwrap(), [dir.join("b.png"), dir.join("sub/a.JPG")]);
        let list = tmp.path().join("list.txt");
        std::fs::write(&list, "imgs/b.png\n").unwrap();
        assert_eq!(images(&list).unwrap(), [tmp.path().join("imgs/b.png")]);
        std::fs::create_dir_all(tmp.path().join("empty")).unwrap();
        assert!(images(&tmp.path().join("empty")).unwrap_err().to_string().contains("no image files"));
    }

    #[test]
    fn rows_are_written_as_csv_or_json_lines_by_extension() {
        let tmp = tempfile::tempdir().unwrap();
        let classes = vec!["ham".to_string(), "spam".to_string()];
        let rows = vec![Row::Ranked {
            input: "win, now".into(),
            ranked: vec![("spam".into(), 0.75), ("ham".into(), 0.25)],
        }];
        let csv = tmp.path().join("p.csv");
        write(&csv, &rows, &classes).unwrap();
        assert_eq!(
            std::fs::read_to_string(&csv).unwrap(),
            "input,label,probability,p(ham),p(spam)\n\"win, now\",spam,0.75,0.25,0.75\n"
        );
        let jsonl = tmp.path().join("p.jsonl");
        write(&jsonl, &rows, &classes).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(std::fs::read_to_string(&jsonl).unwrap().trim()).unwrap();
        assert_eq!((v["label"].as_str(), v["probabilities"]["ham"].as_f64()), (Some("spam"), Some(0.25)));
        let gen = vec![Row::Generated { input: "ROMEO:".into(), output: "ROMEO: hi".into() }];
        write(&csv, &gen, &[]).unwrap();
        assert_eq!(std::fs::read_to_string(&csv).unwrap(), "input,output\nROMEO:,ROMEO: hi\n");
        let e = write(&tmp.path().join("p.txt"), &gen, &[]).unwrap_err().to_string();
        assert!(e.contains(".csv or .jsonl"), "{e}");
    }
}
