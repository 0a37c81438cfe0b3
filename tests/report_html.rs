//! The `whet compare` report: results.json round trip and errors, the HTML's sections, plots,
//! escaping and self-containment, and the page as headless Chromium renders it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use whet::eval::{roc_auc, roc_curve, Interval};
use whet::report::*;
use whet::Error;

const SCRIPT: &str = "<script>alert(\"x\")</script>";
const N_ITEMS: usize = 200;
const STRATEGIES: [(&str, f64); 3] = [("full fine-tune", 2.2), ("linear probe", 1.2), ("LP-FT", 2.6)];
/// Plots in the synthetic report: learning curves, 3 confusion matrices, ROC, retention, sweep.
const N_SVG: usize = 7;

fn iv(point: f64, half: f64) -> Interval {
    Interval { point, lo: point - half, hi: point + half, level: 0.95 }
}

/// One seed of a binary classifier whose scores separate the classes by `margin` logits.
fn seed_run(seed: u64, margin: f64) -> SeedRun {
    let mut rng = ChaCha8Rng::seed_from_u64(seed * 31 + (margin * 10.0) as u64);
    let labels: Vec<bool> = (0..N_ITEMS).map(|_| rng.random_bool(0.45)).collect();
    let scores: Vec<f64> = labels
        .iter()
        .map(|&y| {
            let z = if y { margin / 2.0 } else { -margin / 2.0 } + rng.random_range(-1.8..1.8);
            1.0 / (1.0 + (-z).exp())
        })
        .collect();
    let mut confusion = vec![0u64; 4];
    for (&y, &s) in labels.iter().zip(&scores) {
        confusion[usize::from(y) * 2 + usize::from(s >= 0.5)] += 1;
    }
    let acc = (confusion[0] + confusion[3]) as f64 / N_ITEMS as f64;
    let c = roc_curve(&scores, &labels);
    let auc = roc_auc(&scores, &labels).unwrap();
    let curve = (0..=10)
        .map(|i| {
            let step = i * 20;
            let progress = 1.0 - (-(i as f64) / 3.0).exp();
            CurvePoint {
                step,
                train_loss: Some(0.69 * (1.0 - progress) + 0.4 / margin + 0.01 * seed as f64),
                val_metric: (i % 2 == 0).then_some(0.5 + (acc - 0.5) * progress),
            }
        })
        .collect();
    let mut test = BTreeMap::new();
    test.insert("accuracy".to_string(), acc);
    test.insert("roc_auc".to_string(), auc);
    SeedRun {
        seed,
        fold: None,
        curve,
        test,
        confusion: Some(confusion),
        roc: Some(RocCurve { fpr: c.x, tpr: c.y, auc }),
    }
}

fn strategy(name: &str, margin: f64, is_reference: bool) -> StrategyResult {
    let runs = vec![seed_run(1, margin), seed_run(2, margin)];
    let mean = |k: &str| runs.iter().map(|r| r.test[k]).sum::<f64>() / runs.len() as f64;
    let mut metrics = BTreeMap::new();
    metrics.insert("accuracy".to_string(), iv(mean("accuracy"), 0.03));
    metrics.insert("roc_auc".to_string(), iv(mean("roc_auc"), 0.02));
    metrics.insert("f1_macro".to_string(), iv(mean("accuracy") - 0.01, 0.035));
    StrategyResult {
        name: name.to_string(),
        description: format!("{name} of a small BERT"),
        vs_reference: (!is_reference).then(|| PairedTest {
            reference: "full fine-tune".to_string(),
            metric: "accuracy".to_string(),
            diff: iv(0.01 * (margin - 2.2), 0.02),
            paired_p: 0.04,
            mcnemar_p: 0.0004,
        }),
        runs,
        metrics,
        train_secs: 95.0 * margin,
        peak_bytes: 900 * 1024 * 1024,
        trainable_params: if name == "linear probe" { 1538 } else { 22_713_986 },
    }
}

/// Three strategies × two seeds on a binary task, with everything a full report shows.
fn sample() -> CompareResults {
    let (w, h) = (32u32, 32u32);
    let mut rgb = Vec::new();
    let mut heat = Vec::new();
    for y in 0..h {
        for x in 0..w {
            let inside = (x as i32 - 16).pow(2) + (y as i32 - 14).pow(2) < 64;
            rgb.extend_from_slice(&if inside { [230, 200, 40] } else { [(x * 8) as u8, 90, (y * 8) as u8] });
            let d2 = ((x as f32 - 16.0).powi(2) + (y as f32 - 14.0).powi(2)) / 40.0;
            heat.push((-d2).exp());
        }
    }
    let mut environment = BTreeMap::new();
    environment.insert("adapter".to_string(), "llvmpipe (LLVM 15.0.6, 256 bits)".to_string());
    environment.insert("whet".to_string(), "0.1.0".to_string());
    environment.insert("date".to_string(), "2025-01-01".to_string());
    CompareResults {
        title: "SST-2 subset: which fine-tuning strategy?".to_string(),
        task: "text classification".to_string(),
        model: "all-MiniLM-L6-v2".to_string(),
        data: "sst2-small.csv".to_string(),
        primary_metric: "accuracy".to_string(),
        classes: vec!["negative".to_string(), format!("positive {SCRIPT}")],
        strategies: STRATEGIES.iter().enumerate().map(|(i, &(n, m))| strategy(n, m, i == 0)).collect(),
        sweep: Some(Sweep {
            metric: "accuracy".to_string(),
            lrs: vec![1e-5, 3e-5, 1e-4],
            depths: vec![0, 2, 4],
            values: vec![
                Some(0.81),
                Some(0.86),
                Some(0.84),
                Some(0.83),
                Some(0.88),
                None,
                Some(0.79),
                Some(0.82),
                Some(0.8),
            ],
        }),
        retention: vec![
            Retention {
                strategy: "full fine-tune".to_string(),
                source_task: "STS-B (500 pairs)".to_string(),
                before: iv(0.82, 0.02),
                after: iv(0.61, 0.03),
            },
            Retention {
                strategy: "LP-FT".to_string(),
                source_task: "STS-B (500 pairs)".to_string(),
                before: iv(0.82, 0.02),
                after: iv(0.77, 0.025),
            },
        ],
        auto: Some(AutoChoice {
            depth: 2,
            lr: 3e-5,
            reason: "best validation accuracy of the sweep".to_string(),
        }),
        attributions: vec![
            Attribution::Image {
                title: "LP-FT, test item 7".to_string(),
                label: "true: sun, predicted: sun".to_string(),
                width: w,
                height: h,
                rgb,
                heat,
            },
            Attribution::Text {
                title: "LP-FT, test item 12".to_string(),
                label: format!("true: positive, predicted: positive {SCRIPT}"),
                tokens: ["a", "gripping", ",", "beautifully", "shot", "film", SCRIPT]
                    .map(String::from)
                    .to_vec(),
                scores: vec![0.05, 0.9, 0.0, 0.7, 0.2, -0.1, -0.45],
            },
        ],
        environment,
    }
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

/// The SVG elements of `html`, in order.
fn svgs(html: &str) -> Vec<&str> {
    html.match_indices("<svg")
        .filter_map(|(i, _)| html.get(i..).and_then(|s| s.find("</svg>").map(|e| &s[..e])))
        .collect()
}

#[test]
fn every_section_has_its_heading_and_the_plots_are_inline_svg() {
    let html = render_html(&sample()).unwrap();
    assert_eq!(SECTIONS.len(), 8);
    for (id, heading) in SECTIONS {
        let at =
            html.find(&format!("<section id=\"{id}\">")).unwrap_or_else(|| panic!("section {id} missing"));
        let h2 = format!("<h2>{}</h2>", heading.replace('&', "&amp;"));
        assert!(html[at..].starts_with(&format!("<section id=\"{id}\">\n{h2}")), "{id}: heading");
    }
    assert_eq!(count(&html, "<svg"), N_SVG);
    assert_eq!(count(&html, "</svg>"), N_SVG);
    assert_eq!(count(&html, "<section"), 8);
    assert_eq!(count(&html, "class=\"empty\""), 0, "every section of the full sample has data");
    // One confusion heat map per strategy, titled with its name and the number of runs summed.
    for (name, _) in STRATEGIES {
        assert!(html.contains(&format!("{name} (2 runs)")), "{name}");
    }
}

#[test]
fn metrics_table_lists_every_strategy_and_metric_with_intervals() {
    let r = sample();
    let html = render_html(&r).unwrap();
    let table_of = |class: &str| {
        let t = &html[html.find(&format!("<table class=\"{class}\">")).unwrap()..];
        t[..t.find("</table>").unwrap()].to_string()
    };
    let table = table_of("metrics");
    // Columns: strategy and the 3 metrics, primary first; one row per strategy.
    let head = &table[..table.find("</thead>").unwrap()];
    assert_eq!(count(head, "<th>"), 4);
    assert!(head.find("accuracy").unwrap() < head.find("f1_macro").unwrap());
    assert_eq!(count(&table, "<tr>"), 4);
    for s in &r.strategies {
        for i in s.metrics.values() {
            let cell = format!("{:.4} [{:.4}, {:.4}]", i.point, i.lo, i.hi);
            assert!(table.contains(&cell), "{}: {cell}", s.name);
        }
    }
    // The best accuracy point of the three is in bold.
    let best = r.strategies.iter().map(|s| s.metrics["accuracy"].point).fold(f64::MIN, f64::max);
    assert!(table.contains(&format!("<td class=\"top\">{best:.4} [")));

    // Paired test and costs: strategy, difference, 2 p-values, time, memory, params.
    let costs = table_of("costs");
    assert_eq!(count(&costs[..costs.find("</thead>").unwrap()], "<th>"), 7);
    assert!(costs.contains("<th>difference vs full fine-tune</th>"));
    // linear probe: diff 0.01 × (1.2 − 2.2) = −0.01 ± 0.02; p-values 0.04 and < 0.001.
    assert!(costs.contains(
        "<tr><th>linear probe</th><td>-0.0100 [-0.0300, +0.0100]</td><td>0.040</td><td>&lt; 0.001</td>"
    ));
    assert!(costs.contains("<tr><th>full fine-tune</th><td class=\"na\">reference</td>"));
    // 95 s × 2.6 = 247 s; 900 MiB; 22 713 986 parameters.
    assert!(costs.contains("<td>4 min 7 s</td><td>900.0 MiB</td><td>22\u{202f}713\u{202f}986</td></tr>"));
}

#[test]
fn summary_names_the_winner_its_margin_and_the_auto_choice() {
    let r = sample();
    let html = render_html(&r).unwrap();
    let summary =
        &html[html.find("<section id=\"summary\">").unwrap()..html.find("<section id=\"metrics\">").unwrap()];
    let mut acc: Vec<(&str, f64)> =
        r.strategies.iter().map(|s| (s.name.as_str(), s.metrics["accuracy"].point)).collect();
    acc.sort_by(|a, b| b.1.total_cmp(&a.1));
    assert!(
        summary.contains(&format!("Best: <b>{}</b> with accuracy {:.4}", acc[0].0, acc[0].1)),
        "{summary}"
    );
    assert!(summary.contains(&format!("{:.4} ahead of <b>{}</b>", acc[0].1 - acc[1].1, acc[1].0)));
    assert!(
        summary.contains("(paired bootstrap p = 0.040, McNemar p &lt; 0.001)")
            == acc[0].0.ne("full fine-tune")
    );
    assert!(summary.contains("chose frozen depth <b>2</b> at learning rate <b>3e-5</b>"));
    assert!(summary.contains("<th>adapter</th><td>llvmpipe (LLVM 15.0.6, 256 bits)</td>"));
}

#[test]
fn user_text_is_escaped_everywhere() {
    let html = render_html(&sample()).unwrap();
    assert!(!html.to_ascii_lowercase().contains("<script"), "a raw <script> reached the page");
    // Class name (HTML and SVG confusion labels), text label and token each carry one.
    assert!(count(&html, "&lt;script&gt;") >= 3, "escaped form present");
    assert!(html.contains("<span class=\"tok\" style=\"background: rgba(37, 99, 235, 0.425)\" title=\"-0.4500\">&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;</span>"));
}

#[test]
fn page_is_self_contained() {
    let html = render_html(&sample()).unwrap();
    let stripped = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    assert_eq!(count(&html, "xmlns=\"http://www.w3.org/2000/svg\""), N_SVG);
    for bad in ["http://", "https://", "<link", "<script", "@import", "url("] {
        assert!(!stripped.contains(bad), "found {bad}");
    }
    for (i, _) in html.match_indices("src=\"") {
        assert!(html[i + 5..].starts_with("data:image/png;base64,"), "a src that is not a data URI");
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let mut out = Vec::new();
    for chunk in s.as_bytes().chunks(4) {
        let pad = chunk.iter().filter(|&&c| c == b'=').count();
        let n =
            chunk.iter().map(|&c| if c == b'=' { 0 } else { u32::from(val(c)) }).fold(0, |n, v| (n << 6) | v);
        out.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8][..3 - pad]);
    }
    out
}

#[test]
fn image_attribution_is_the_photo_and_a_blended_overlay_as_png() {
    let r = sample();
    let Attribution::Image { rgb, heat, .. } = &r.attributions[0] else { panic!() };
    let html = render_html(&r).unwrap();
    let pngs: Vec<image::RgbImage> = html
        .split("src=\"data:image/png;base64,")
        .skip(1)
        .map(|s| image::load_from_memory(&base64_decode(&s[..s.find('"').unwrap()])).unwrap().to_rgb8())
        .collect();
    assert_eq!(pngs.len(), 2);
    assert_eq!((pngs[0].width(), pngs[0].height()), (32, 32));
    assert_eq!(pngs[0].as_raw(), rgb, "the photo decodes to the input pixels");
    // Overlay: the hottest pixel (16, 14) moves 65% of the way to hot(1) = (255, 255, 204);
    // a corner, where the heat is e^(-452/40) ≈ 1e-5 of the peak, keeps the photo.
    let peak = heat.iter().cloned().fold(0.0f32, f32::max);
    assert_eq!(heat[14 * 32 + 16], peak);
    let blend = |c: u8, m: f32| (f32::from(c) * 0.35 + 255.0 * m * 0.65).round() as u8;
    assert_eq!(pngs[1].get_pixel(16, 14).0, [blend(230, 1.0), blend(200, 1.0), blend(40, 0.8)]);
    assert_eq!(pngs[1].get_pixel(0, 31).0, pngs[0].get_pixel(0, 31).0);
}

#[test]
fn confusion_counts_and_sweep_cells_are_written() {
    let r = sample();
    let html = render_html(&r).unwrap();
    let plots = svgs(&html);
    // Plots 1..=3 are the confusion matrices, in strategy order; cells hold counts summed over seeds.
    for (s, svg) in r.strategies.iter().zip(&plots[1..4]) {
        let mut sum = [0u64; 4];
        for run in &s.runs {
            for (a, b) in sum.iter_mut().zip(run.confusion.as_ref().unwrap()) {
                *a += b;
            }
        }
        assert_eq!(sum.iter().sum::<u64>(), 2 * N_ITEMS as u64);
        for n in sum {
            assert!(svg.contains(&format!(">\n{n}\n</text>")), "{}: count {n}", s.name);
        }
    }
    // The sweep is the last plot: 8 values, one grey "n/a" cell, lr labels, depths.
    let sweep = plots.last().unwrap();
    for v in ["0.8100", "0.8800", "0.7900", "n/a", "1e-5", "3e-5", "1e-4", "depth 4"] {
        assert!(sweep.contains(&format!(">\n{v}\n</text>")), "sweep cell {v}");
    }
    assert_eq!(count(sweep, "fill=\"#C8C8C8\""), 1, "one grey missing cell");
    // Legend of the ROC plot carries the mean AUC of each strategy.
    let roc = plots[4];
    for s in &r.strategies {
        let auc = s.runs.iter().map(|run| run.roc.as_ref().unwrap().auc).sum::<f64>() / 2.0;
        assert!(roc.contains(&format!("{} (AUC {auc:.4})", s.name)), "{}", s.name);
    }
}

#[test]
fn sections_without_data_say_so() {
    let mut r = sample();
    r.sweep = None;
    r.retention.clear();
    r.attributions.clear();
    r.auto = None;
    r.environment.clear();
    r.classes = vec!["a".into(), "b".into(), "c".into()];
    for s in &mut r.strategies {
        for run in &mut s.runs {
            run.curve.clear();
            run.confusion = None;
            run.roc = None;
        }
    }
    let html = render_html(&r).unwrap();
    assert_eq!(count(&html, "<svg"), 0);
    assert_eq!(count(&html, "<section"), 8);
    for line in [
        "No learning curves were recorded.",
        "No confusion matrices were recorded.",
        "No ROC curves were recorded.",
        "Retention of the source task was not measured.",
        "No learning-rate × frozen-depth sweep was run.",
        "No attributions were computed.",
        "No environment was recorded.",
    ] {
        assert!(html.contains(&format!("<p class=\"empty\">{line}</p>")), "{line}");
    }
    r.strategies.clear();
    let html = render_html(&r).unwrap();
    assert!(html.contains("<p class=\"empty\">No strategies were run.</p>"));
    assert!(html.contains("<p class=\"empty\">No strategy has a value for accuracy.</p>"));
}

#[test]
fn results_json_round_trips_and_keeps_undefined_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("results.json");
    let r = sample();
    r.save_json(&path).unwrap();
    assert_eq!(CompareResults::load_json(&path).unwrap(), r);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"kind\": \"image\"") && text.contains("\"kind\": \"text\""));

    // An interval end undefined on every resample is NaN; JSON writes null and reads NaN back.
    let mut r2 = sample();
    let m = r2.strategies[1].metrics.get_mut("roc_auc").unwrap();
    m.lo = f64::NAN;
    r2.strategies[1].vs_reference.as_mut().unwrap().mcnemar_p = f64::NAN;
    r2.save_json(&path).unwrap();
    let back = CompareResults::load_json(&path).unwrap();
    let m = back.strategies[1].metrics["roc_auc"];
    assert!(m.lo.is_nan() && m.hi == r2.strategies[1].metrics["roc_auc"].hi);
    assert!(back.strategies[1].vs_reference.as_ref().unwrap().mcnemar_p.is_nan());
}

#[test]
fn load_json_errors_name_the_line_or_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("results.json");
    std::fs::write(&path, "{\n  \"title\": \"x\",\n  \"task\": ]\n}\n").unwrap();
    match CompareResults::load_json(&path) {
        Err(Error::Format { path: p, line, .. }) => {
            assert_eq!(line, Some(3));
            assert!(p.ends_with("results.json"));
        }
        other => panic!("expected a Format error, got {other:?}"),
    }

    let mut r = sample();
    r.strategies[2].runs[1].confusion = Some(vec![1, 2, 3]);
    // save_json refuses what load_json would refuse...
    match r.save_json(&path) {
        Err(Error::InvalidArgument { message, .. }) => {
            assert!(message.contains("strategies[2] (LP-FT).runs[1].confusion: 3 counts"), "{message}")
        }
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    // ...and load_json names the key in a file written by something else.
    std::fs::write(&path, serde_json::to_string(&r).unwrap()).unwrap();
    match CompareResults::load_json(&path) {
        Err(Error::Format { line: None, message, .. }) => {
            assert!(message.contains("strategies[2] (LP-FT).runs[1].confusion"), "{message}")
        }
        other => panic!("expected a Format error, got {other:?}"),
    }
    assert!(matches!(CompareResults::load_json(&dir.path().join("absent.json")), Err(Error::Io { .. })));
}

#[test]
fn render_refuses_malformed_parts_with_the_key() {
    let mut r = sample();
    if let Attribution::Image { heat, .. } = &mut r.attributions[0] {
        heat.pop();
    }
    let err = render_html(&r).unwrap_err().to_string();
    assert!(err.contains("attributions[0].heat: 1023 values, expected 32×32"), "{err}");

    let mut r = sample();
    r.sweep.as_mut().unwrap().values.pop();
    assert!(render_html(&r).unwrap_err().to_string().contains("sweep.values: 8 values"));

    let mut r = sample();
    if let Attribution::Text { scores, .. } = &mut r.attributions[1] {
        scores[2] = f32::NAN;
    }
    assert!(render_html(&r).unwrap_err().to_string().contains("attributions[1].scores[2] is not finite"));
}

#[test]
fn write_report_writes_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nested/report");
    let r = sample();
    let html_path = write_report(&r, &out).unwrap();
    assert_eq!(html_path, out.join(REPORT_HTML));
    assert_eq!(std::fs::read_to_string(&html_path).unwrap(), render_html(&r).unwrap());
    assert_eq!(CompareResults::load_json(&out.join(RESULTS_JSON)).unwrap(), r);
    // No temporary file is left behind.
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, [REPORT_HTML, RESULTS_JSON]);
}

// ---- rendered in a real browser ----

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
        .find(|p| p.is_file())
}

/// Runs chromium headless with `args` on `page`; returns (exit status, stdout). Killed after
/// three minutes (2 shared cores can make a cold start slow; a hang must not stall the suite).
fn run_chromium(
    bin: &Path,
    profile: &Path,
    args: &[String],
    page: &Path,
) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(bin)
        .args(["--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--hide-scrollbars"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).unwrap();
        s
    });
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish within 180 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    (status, reader.join().unwrap())
}

#[test]
fn report_renders_in_headless_chromium() {
    let Some(bin) = chromium() else {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "!!!!!!!! report_renders_in_headless_chromium: CHROMIUM ABSENT, CHECK SKIPPED !!!!!!!!"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let page = write_report(&sample(), dir.path()).unwrap();
    let shot = dir.path().join("shot.png");

    let (status, _) = run_chromium(
        &bin,
        &dir.path().join("profile-shot"),
        &[format!("--screenshot={}", shot.display()), "--window-size=1280,4000".to_string()],
        &page,
    );
    assert!(status.success(), "chromium --screenshot exited with {status}");
    let img = image::open(&shot).expect("the screenshot is a PNG").to_rgb8();
    assert_eq!((img.width(), img.height()), (1280, 4000));
    // Not blank: the luminance varies, and the page's colours (plots, heat maps) show up.
    let lum: Vec<f64> = img
        .pixels()
        .map(|p| 0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]))
        .collect();
    let mean = lum.iter().sum::<f64>() / lum.len() as f64;
    let var = lum.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / lum.len() as f64;
    assert!(var > 200.0, "screenshot looks blank: luminance variance {var:.1}");
    let colours: std::collections::HashSet<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    assert!(colours.len() > 500, "only {} distinct colours", colours.len());
    // The sweep's yellow end (viridis 1 = #FDE725) and the header's dark band are on screen.
    assert!(img.pixels().any(|p| p.0 == [253, 231, 37]), "the best sweep cell is not painted");
    assert!(img.get_pixel(5, 5).0.iter().all(|&c| c < 60), "the header band is not dark");

    let (status, dom) =
        run_chromium(&bin, &dir.path().join("profile-dom"), &["--dump-dom".to_string()], &page);
    assert!(status.success(), "chromium --dump-dom exited with {status}");
    for (id, heading) in SECTIONS {
        assert!(dom.contains(&format!("<section id=\"{id}\">")), "DOM lacks section {id}");
        assert!(
            dom.contains(&format!("<h2>{}</h2>", heading.replace('&', "&amp;"))),
            "DOM lacks heading {heading}"
        );
    }
    assert_eq!(count(&dom, "<svg"), N_SVG, "SVGs in the DOM");
    assert!(!dom.contains("<script"), "the DOM grew a script element");
    assert_eq!(count(&dom, "<img"), 2);
}
