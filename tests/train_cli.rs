//! `whet train / eval / predict` end to end on a tiny image task (the ResNet-18 fixture weights
//! at 32x32): the run folder, Ctrl-C (exit 130, checkpoint, resume), bitwise resume across
//! processes, bad data failing before step 1, and recipe errors naming the line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn whet() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_whet"));
    c.env("XDG_RUNTIME_DIR", std::env::temp_dir());
    c
}

fn weights() -> Option<PathBuf> {
    let p =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/resnet18_tv.weights.safetensors");
    if p.exists() {
        Some(p)
    } else {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "!!!!!!!! train_cli: {} ABSENT, CHECKS SKIPPED !!!!!!!!",
            p.display()
        );
        None
    }
}

/// Does this machine have an adapter? (The CLI says so clearly when not.)
fn has_gpu() -> bool {
    let ok = whet().arg("devices").output().map(|o| o.status.success()).unwrap_or(false);
    if !ok {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "!!!!!!!! train_cli: NO GPU ADAPTER, CHECKS SKIPPED !!!!!!!!");
    }
    ok
}

/// `root/{train,val}/{red,blue}/*.png`: two colour classes with noise, 40x40.
/// Files under `dir`, at any depth.
fn walk_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| if e.path().is_dir() { walk_files(&e.path()) } else { 1 })
        .sum()
}

fn image_folder(root: &Path, per_class: usize) {
    for (split, n) in [("train", per_class), ("val", per_class / 2)] {
        for (ci, class) in ["blue", "red"].iter().enumerate() {
            let dir = root.join(split).join(class);
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..n {
                let img = image::RgbImage::from_fn(40, 40, |x, y| {
                    let noise = ((x * 7 + y * 13 + i as u32 * 31) % 40) as u8;
                    if ci == 0 {
                        image::Rgb([noise, noise, 200 + noise / 2])
                    } else {
                        image::Rgb([200 + noise / 2, noise, noise])
                    }
                });
                img.save(dir.join(format!("{i:03}.png"))).unwrap();
            }
        }
    }
}

/// (input, label, probability) of `whet predict --output x.csv`; the class columns sum to 1.
fn csv_rows(text: &str) -> Vec<(String, String, f64)> {
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let header = r.headers().unwrap().clone();
    assert_eq!(&header.iter().take(3).collect::<Vec<_>>(), &["input", "label", "probability"]);
    assert!(header.iter().any(|h| h == "p(red)") && header.iter().any(|h| h == "p(blue)"), "{header:?}");
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            let total: f64 = rec.iter().skip(3).map(|p| p.parse::<f64>().unwrap()).sum();
            assert!((total - 1.0).abs() < 1e-4, "class probabilities sum to {total}");
            (rec[0].to_string(), rec[1].to_string(), rec[2].parse().unwrap())
        })
        .collect()
}

/// The same from `--output x.jsonl`.
fn jsonl_rows(text: &str) -> Vec<(String, String, f64)> {
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let label = v["label"].as_str().unwrap().to_string();
            assert_eq!(v["probabilities"][&label].as_f64(), v["probability"].as_f64(), "{v}");
            (v["input"].as_str().unwrap().to_string(), label, v["probability"].as_f64().unwrap())
        })
        .collect()
}

fn recipe(dir: &Path, weights: &Path, data: &Path, train_extra: &str) -> PathBuf {
    let text = format!(
        r#"
[model]
kind = "resnet"
path = "{w}"
image_size = 32

[data]
kind = "image-folder"
train = "{d}"

[train]
batch_size = 4
optimizer = "sgd"
lr = 0.01
schedule = "constant"
clip = 10.0
{train_extra}

[output]
dir = "{out}"
bootstrap = 1000
"#,
        w = weights.display(),
        d = data.display(),
        out = dir.join("run").display(),
    );
    let p = dir.join("recipe.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// A temporary folder with a two-colour image folder of `per_class` images a class and a recipe
/// over it (`train_extra` added to `[train]`); `None` after a loud line without the fixture
/// weights or an adapter.
struct Setup {
    tmp: tempfile::TempDir,
    data: PathBuf,
    recipe: PathBuf,
    weights: PathBuf,
}

fn setup(per_class: usize, train_extra: &str) -> Option<Setup> {
    let weights = weights()?;
    if !has_gpu() {
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    image_folder(&data, per_class);
    let recipe = recipe(tmp.path(), &weights, &data, train_extra);
    Some(Setup { tmp, data, recipe, weights })
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn train_eval_predict_write_and_use_a_run_folder() {
    let Some(Setup { tmp, data, recipe: r, .. }) = setup(8, "epochs = 2") else { return };
    let o = whet().args(["train", r.to_str().unwrap(), "--quiet"]).output().unwrap();
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("accuracy") && out.contains("untuned") && out.contains("fine-tuned"), "{out}");
    let run = tmp.path().join("run");
    for f in [
        "model/model.safetensors",
        "model/labels.json",
        "recipe.toml",
        "labels.json",
        "metrics.json",
        "log.csv",
    ] {
        assert!(run.join(f).is_file(), "{f} missing in the run folder: {out}");
    }
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap();
    assert!(metrics["test"]["metrics"]["accuracy"]["point"].is_number(), "{metrics}");

    let img = data.join("val/red/000.png");
    let o = whet().args(["predict", run.to_str().unwrap(), img.to_str().unwrap()]).output().unwrap();
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("red") && out.contains("blue"), "labels with probabilities: {out}");

    // A folder of inputs to a file: one row per image, a probability column per class, and
    // the same predictions as JSON Lines.
    let val = data.join("val");
    let images = walk_files(&val);
    for (name, rows_of) in
        [("p.csv", csv_rows as fn(&str) -> Vec<(String, String, f64)>), ("p.jsonl", jsonl_rows)]
    {
        let file = tmp.path().join(name);
        let args = ["predict", run.to_str().unwrap(), "--input", val.to_str().unwrap(), "--output"];
        let o = whet().args(args).arg(&file).output().unwrap();
        assert!(o.status.success(), "{}", text(&o));
        let rows = rows_of(&std::fs::read_to_string(&file).unwrap());
        assert_eq!(rows.len(), images, "one row per image of {}", val.display());
        for (input, label, p) in &rows {
            assert!(input.ends_with(".png") && ["red", "blue"].contains(&label.as_str()), "{input} {label}");
            assert!((0.5..=1.0).contains(p), "the top label's probability {p}");
        }
    }

    let o = whet().args(["eval", run.to_str().unwrap(), "--bootstrap", "1000"]).output().unwrap();
    let out = text(&o);
    assert!(o.status.success() && out.contains("accuracy"), "{out}");
}

#[test]
fn sigint_finishes_the_step_saves_exits_130_and_resumes() {
    let Some(Setup { tmp, data, recipe: r, weights: w }) = setup(8, "epochs = 50") else { return };
    let child = whet()
        .args(["train", r.to_str().unwrap(), "--quiet"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let log = tmp.path().join("run/log.csv");
    let t0 = std::time::Instant::now();
    // Wait for two logged steps, then Ctrl-C.
    while std::fs::read_to_string(&log).map(|s| s.lines().count()).unwrap_or(0) < 3 {
        assert!(t0.elapsed().as_secs() < 300, "no steps logged");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let o = child.wait_with_output().unwrap();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(130), "{out}");
    assert!(out.contains("interrupted"), "{out}");
    assert!(tmp.path().join("run/checkpoints/latest.json").is_file(), "{out}");

    // The same command resumes (two more epochs by steps, then stops).
    let r = recipe(tmp.path(), &w, &data, "epochs = 50\nmax_steps = 12");
    let o = whet().args(["train", r.to_str().unwrap(), "--quiet"]).output().unwrap();
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("resumed from step"), "{out}");
}

#[test]
fn resume_in_a_new_process_is_bitwise_equal_to_a_straight_run() {
    let Some(w) = weights() else { return };
    if !has_gpu() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    image_folder(&data, 6);
    // 12 train images, batch 4: 3 steps an epoch; stop mid-epoch at step 4, then go on to 8.
    let straight = tmp.path().join("a");
    let split = tmp.path().join("b");
    std::fs::create_dir_all(&straight).unwrap();
    std::fs::create_dir_all(&split).unwrap();
    let ra = recipe(&straight, &w, &data, "epochs = 10\nmax_steps = 8");
    let o = whet().args(["train", ra.to_str().unwrap(), "--quiet"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let rb = recipe(&split, &w, &data, "epochs = 10\nmax_steps = 4");
    let o = whet().args(["train", rb.to_str().unwrap(), "--quiet"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let rb = recipe(&split, &w, &data, "epochs = 10\nmax_steps = 8");
    let o = whet().args(["train", rb.to_str().unwrap(), "--quiet"]).output().unwrap();
    let out = text(&o);
    assert!(o.status.success() && out.contains("resumed from step 4"), "{out}");
    let a = std::fs::read(straight.join("run/model/model.safetensors")).unwrap();
    let b = std::fs::read(split.join("run/model/model.safetensors")).unwrap();
    assert!(a == b, "resumed weights differ from the straight run's");
}

#[test]
fn a_bad_image_fails_before_training_and_skip_bad_lists_it() {
    let Some(w) = weights() else { return };
    if !has_gpu() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    image_folder(&data, 8);
    let bad = data.join("train/red/broken.png");
    let good = std::fs::read(data.join("train/red/000.png")).unwrap();
    std::fs::write(&bad, &good[..good.len() / 2]).unwrap();
    let r = recipe(tmp.path(), &w, &data, "epochs = 1");
    let o = whet().args(["train", r.to_str().unwrap(), "--quiet"]).output().unwrap();
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(out.contains("broken.png"), "the error names the file: {out}");
    assert!(!tmp.path().join("run/log.csv").exists(), "training started despite bad data");

    // --skip-bad with room for it: listed, and the run completes.
    let text_r = std::fs::read_to_string(&r).unwrap().replace("[data]", "[data]\nmax_skipped = 0.2");
    std::fs::write(&r, text_r).unwrap();
    let o = whet().args(["train", r.to_str().unwrap(), "--quiet", "--skip-bad", "--fresh"]).output().unwrap();
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("skipped:") && out.contains("broken.png"), "{out}");
}

#[test]
fn a_recipe_typo_is_an_error_naming_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("r.toml");
    std::fs::write(&p, "[model]\nkind = \"resnet\"\npath = \"x\"\n\n[data]\nkind = \"text\"\ntrain = \"t.csv\"\nlabell = \"y\"\n").unwrap();
    let o = whet().args(["train", p.to_str().unwrap()]).output().unwrap();
    let out = text(&o);
    assert!(!o.status.success());
    assert!(out.contains("r.toml:8") && out.contains("labell"), "{out}");
}

#[test]
fn set_overrides_are_checked_like_the_file_and_print_config_shows_the_result() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("r.toml");
    let out_dir = tmp.path().join("run");
    std::fs::write(
        &p,
        format!(
            "[model]\nkind = \"resnet\"\npath = \"x\"\n\n[data]\nkind = \"text\"\ntrain = \"t.csv\"\n\n\
             [train]\nlr = 0.1\n\n[output]\ndir = \"{}\"\n",
            out_dir.display()
        ),
    )
    .unwrap();
    let r = p.to_str().unwrap();
    let o = whet()
        .args(["train", r, "--print-config", "--set", "train.lr=3e-5", "--set", "train.optimizer=sgd"])
        .args(["--max-steps", "7"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let printed: toml::Table = toml::from_str(&String::from_utf8_lossy(&o.stdout)).unwrap();
    assert_eq!(printed["train"]["lr"].as_float(), Some(3e-5));
    assert_eq!(printed["train"]["optimizer"].as_str(), Some("sgd"));
    assert_eq!(printed["train"]["max_steps"].as_integer(), Some(7));
    assert!(!out_dir.exists(), "--print-config trains nothing");

    // An override out of range fails as the file's value would, naming the override and the
    // line of the key it replaced.
    let o = whet().args(["train", r, "--set", "train.lr=-1"]).output().unwrap();
    let out = text(&o);
    assert!(!o.status.success());
    assert!(out.contains("--set train.lr=-1:10:") && out.contains("train.lr = -1"), "{out}");
    let o = whet().args(["compare", r, "--print-config", "--set", "train.lrr=1"]).output().unwrap();
    assert!(!o.status.success() && text(&o).contains("lrr"), "{}", text(&o));
}

#[test]
fn lr_find_sweeps_the_recipes_task_suggests_a_rate_and_plots_it() {
    let Some(Setup { tmp, data: _, recipe: r, .. }) = setup(6, "epochs = 1") else { return };
    let plot = tmp.path().join("plots/lr.svg");
    let (start, end) = (1e-4, 10.0);
    let o = whet()
        .args(["lr-find", r.to_str().unwrap(), "--steps", "12", "--quiet", "--plot", plot.to_str().unwrap()])
        .args(["--start", &start.to_string(), "--end", &end.to_string()])
        .output()
        .unwrap();
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    let suggested: f64 = out
        .lines()
        .find_map(|l| l.strip_prefix("suggested learning rate: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no suggestion: {out}"));
    assert!((start..=end).contains(&suggested), "{suggested} outside the sweep: {out}");
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("learning-rate range test"),
        "{}",
        &svg[..200.min(svg.len())]
    );
    assert!(!tmp.path().join("run").exists(), "lr-find trains no run: nothing in the output folder");
}

#[test]
fn every_command_has_help() {
    for cmd in ["train", "eval", "predict", "inspect", "devices", "compare", "lr-find", "bench"] {
        let o = whet().args([cmd, "--help"]).output().unwrap();
        assert!(o.status.success(), "{cmd} --help: {}", text(&o));
        assert!(String::from_utf8_lossy(&o.stdout).contains("Usage"), "{cmd}");
    }
}

#[test]
fn compare_runs_strategies_and_seeds_into_a_report() {
    let Some(Setup { tmp, data, recipe: r, .. }) = setup(6, "epochs = 2") else { return };
    let out_dir = tmp.path().join("cmp");
    let o = whet()
        .args(["compare", r.to_str().unwrap(), "--seeds", "0,1", "--out", out_dir.to_str().unwrap()])
        .args(["--strategies", "full fine-tune,linear probe"])
        .output()
        .unwrap();
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    for s in ["full fine-tune", "linear probe", "untuned", "report:"] {
        assert!(out.contains(s), "{s} missing: {out}");
    }
    // Without --quiet and off a terminal, every wait leaves plain lines: each run announced
    // with the overall count (2 strategies x 2 seeds), the pre-scan, the checkpoint being
    // bound, the held-out evaluations and each run's steps.
    let err = String::from_utf8_lossy(&o.stderr);
    let images = walk_files(&data);
    for line in [
        "run 1/4 · ".to_string(),
        "run 4/4 · ".to_string(),
        "/seed-1 · ".to_string(),
        format!("image {images}/{images} (100%)"),
        "loading ".to_string(),
        "evaluating baseline on the ".to_string(),
        "evaluating test on the ".to_string(),
        "(100%) · loss ".to_string(),
    ] {
        assert!(err.contains(&line), "no '{line}' on stderr: {err}");
    }
    assert!(!err.contains("run 5/"), "more runs announced than planned: {err}");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("results.json")).unwrap()).unwrap();
    let strategies = results["strategies"].as_array().unwrap();
    assert_eq!(strategies.len(), 3, "{results}");
    assert_eq!(strategies[0]["runs"].as_array().unwrap().len(), 2, "two seeds");
    assert!(strategies[1]["vs_reference"]["paired_p"].is_number(), "paired test vs full fine-tune");
    // Saliency maps of the first test photos, computed from full fine-tuning's model.
    let attributions = results["attributions"].as_array().unwrap();
    assert!(!attributions.is_empty() && attributions.iter().all(|a| a["kind"] == "image"), "{results}");
    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    assert!(html.contains("linear probe") && html.contains("<svg"), "report lacks strategies or plots");
    // `whet report` renders the same page again from results.json alone.
    let again = tmp.path().join("again");
    let results_path = out_dir.join("results.json");
    let o = whet()
        .args(["report", results_path.to_str().unwrap(), "--out", again.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(again.join("report.html")).unwrap(),
        html,
        "the same numbers, the same page"
    );
    // An unknown strategy is an error listing the known ones.
    let o = whet().args(["compare", r.to_str().unwrap(), "--strategies", "magic"]).output().unwrap();
    assert!(!o.status.success() && text(&o).contains("known:"), "{}", text(&o));
}
