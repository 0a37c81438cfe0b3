//! Check T6 through the CLI, as a new user meets it: a finished run, then the same command
//! with a changed learning rate, changed data, `--fresh`, more epochs; the default run folder
//! named after the recipe; a second process on a folder in use; SIGTERM twice (T4).
//! The model is the tiny GPT-2 fixture on a small corpus, so each run takes seconds.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn whet() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_whet"));
    c.env("XDG_RUNTIME_DIR", std::env::temp_dir());
    c
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The tiny GPT-2 corpus tables, and a guard that runs this file's tests one at a time; `None`
/// (said loudly) without fixtures or an adapter.
fn setup(test: &str, dir: &Path) -> Option<(std::sync::MutexGuard<'static, ()>, String)> {
    let (g, _e) = common::gpu("train_rerun", test)?;
    Some((g, common::gpt2_corpus("train_rerun", dir)?))
}

fn write_recipe(dir: &Path, name: &str, tables: &str, train: &str, output: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!("{tables}\n[train]\nbatch_size = 4\nschedule = \"constant\"\n{train}\n{output}\n"),
    )
    .unwrap();
    p
}

fn train(recipe: &Path, extra: &[&str]) -> Output {
    whet().arg("train").arg(recipe).arg("--quiet").args(extra).output().unwrap()
}

/// Every file under `dir` with its bytes.
fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(dir).unwrap().display().to_string(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn a_changed_recipe_or_data_is_refused_and_the_first_run_is_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((_g, tables)) = setup("a_changed_recipe_or_data_is_refused", tmp.path()) else { return };
    let out = "[output]\ndir = \"run\"";
    let r = write_recipe(tmp.path(), "lm.toml", &tables, "epochs = 1\nlr = 3e-3", out);
    let o = train(&r, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let run = tmp.path().join("run");
    let before = contents(&run);

    // A new learning rate: refused, naming the key old → new and both ways on.
    let r = write_recipe(tmp.path(), "lm.toml", &tables, "epochs = 1\nlr = 1e-3", out);
    let o = train(&r, &[]);
    let msg = text(&o);
    assert!(!o.status.success(), "{msg}");
    assert!(msg.contains("recipe.train.lr: 0.003 → 0.001"), "{msg}");
    assert!(msg.contains("--fresh") && msg.contains("--out"), "{msg}");
    assert!(!msg.contains("resumed"), "{msg}");
    assert_eq!(contents(&run), before, "the first run's folder is untouched");

    // The same recipe on changed data: refused, naming the file.
    let r = write_recipe(tmp.path(), "lm.toml", &tables, "epochs = 1\nlr = 3e-3", out);
    let corpus = tmp.path().join("corpus.txt");
    let original = std::fs::read(&corpus).unwrap();
    std::fs::write(&corpus, [original.as_slice(), b"and one more line."].concat()).unwrap();
    let o = train(&r, &[]);
    let msg = text(&o);
    assert!(!o.status.success() && msg.contains("file.data.train:"), "{msg}");
    assert_eq!(contents(&run), before);
    std::fs::write(&corpus, &original).unwrap();

    // More epochs: the same run, extended, and it says so.
    let r = write_recipe(tmp.path(), "lm.toml", &tables, "epochs = 2\nlr = 3e-3", out);
    let o = train(&r, &[]);
    let msg = text(&o);
    assert!(o.status.success(), "{msg}");
    assert!(msg.contains("extending the run") && msg.contains("recipe.train.epochs: 1 → 2"), "{msg}");
    assert!(msg.contains("resumed from step"), "{msg}");
    let recipe_toml = std::fs::read_to_string(run.join("recipe.toml")).unwrap();
    assert!(recipe_toml.contains("epochs = 2"), "recipe.toml describes the run: {recipe_toml}");

    // Again, unchanged: nothing left to train, and it says so.
    let o = train(&r, &[]);
    let msg = text(&o);
    assert!(o.status.success() && msg.contains("already finished"), "{msg}");

    // --fresh: the changed recipe starts over in the same folder.
    let r = write_recipe(tmp.path(), "lm.toml", &tables, "epochs = 1\nlr = 1e-3", out);
    let o = train(&r, &["--fresh"]);
    let msg = text(&o);
    assert!(o.status.success() && msg.contains("started over") && !msg.contains("resumed"), "{msg}");
    let recipe_toml = std::fs::read_to_string(run.join("recipe.toml")).unwrap();
    assert!(recipe_toml.contains("lr = 0.001"), "{recipe_toml}");
}

#[test]
fn the_default_run_folder_is_named_after_the_recipe() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((_g, tables)) = setup("the_default_run_folder_is_named_after_the_recipe", tmp.path()) else {
        return;
    };
    let a = write_recipe(tmp.path(), "first.toml", &tables, "max_steps = 1", "");
    let b = write_recipe(tmp.path(), "second.toml", &tables, "max_steps = 1\nlr = 1e-3", "");
    for r in [&a, &b] {
        let o =
            whet().current_dir(tmp.path()).args(["train", r.to_str().unwrap(), "--quiet"]).output().unwrap();
        assert!(o.status.success(), "{}", text(&o));
    }
    for stem in ["first", "second"] {
        assert!(tmp.path().join("runs").join(stem).join("run.json").is_file(), "runs/{stem}");
    }
}

/// Wait until `log` has `rows` data rows (a header line first).
fn wait_for_rows(log: &Path, rows: usize) {
    let t0 = Instant::now();
    while std::fs::read_to_string(log).map(|s| s.lines().count()).unwrap_or(0) < rows + 1 {
        assert!(t0.elapsed() < Duration::from_secs(300), "no steps logged in {}", log.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_busy_folder_is_refused_and_two_sigterms_still_leave_a_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((_g, tables)) = setup("a_busy_folder_is_refused", tmp.path()) else { return };
    let r =
        write_recipe(tmp.path(), "lm.toml", &tables, "epochs = 500\nlr = 1e-3", "[output]\ndir = \"run\"");
    let child = whet()
        .args(["train", r.to_str().unwrap(), "--quiet"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let run = tmp.path().join("run");
    wait_for_rows(&run.join("log.csv"), 2);

    let o = train(&r, &[]);
    let msg = text(&o);
    assert!(!o.status.success() && msg.contains("in use by another whet process"), "{msg}");
    assert!(msg.contains(&format!("pid {}", child.id())), "names the holder: {msg}");

    // Two SIGTERMs back to back: the second must not cut the final save short.
    let pid = child.id().to_string();
    for _ in 0..2 {
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(143), "{}", text(&o));
    let ck = whet::train::checkpoint::load_latest(&run).unwrap().expect("a checkpoint");
    assert!(ck.step >= 2, "the checkpoint has the steps logged: {}", ck.step);
    assert!(!run.join("whet.lock").exists(), "the lock is released");
}
