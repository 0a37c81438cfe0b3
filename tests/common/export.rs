//! Shared by the export tests: a model with trained-looking LoRA adapters, and Python checks
//! that run only where their packages are.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use whet::models::zoo::AnyModel;
use whet::nn::lora::{apply, LoraConfig};
use whet::nn::{Params, Select};

/// Seeded values in (-scale, scale) (the bench's generator, rescaled).
pub fn noise(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    whet::bench::values(n, seed).into_iter().map(|v| v * 2.0 * scale).collect()
}

/// LoRA of `rank` on the weights `targets` selects, with B drawn at random: a fresh B is zero,
/// which would make every merge a no-op and every merged-weight check vacuous. `head` keeps
/// training beside the adapters, as a run's does. Returns the number of adapters.
pub fn with_lora(
    model: &mut AnyModel,
    targets: &str,
    rank: usize,
    alpha: f32,
    head: Option<Select>,
) -> usize {
    lora_with_random_b(model.params_mut(), targets, rank, alpha, head)
}

/// [`with_lora`] on a bare parameter store.
pub fn lora_with_random_b(
    params: &mut Params,
    targets: &str,
    rank: usize,
    alpha: f32,
    head: Option<Select>,
) -> usize {
    let cfg = LoraConfig {
        rank,
        alpha,
        targets: Select::parse(targets).unwrap(),
        freeze_base: true,
        train_also: head,
        seed: 3,
    };
    let n = apply(params, &cfg).unwrap();
    let bs: Vec<(String, usize)> = params
        .entries()
        .iter()
        .filter(|e| e.path.ends_with(".lora_B"))
        .map(|e| (e.path.clone(), e.tensor.numel()))
        .collect();
    for (i, (path, len)) in bs.iter().enumerate() {
        params.assign(path, &noise(*len, 100 + i as u64, 0.05)).unwrap();
    }
    n
}

/// `assets/python` when the `gguf` package has been fetched there (`make assets`), else `None`
/// after a loud line.
pub fn gguf_python(test: &str) -> Option<PathBuf> {
    let dir = super::fixtures::assets_dir().join("python");
    if dir.join("gguf").is_dir() && dir.join("numpy").is_dir() {
        return Some(dir);
    }
    loud(test, "assets/python/gguf (run `make assets`): PYTHON GGUF READ-BACK");
    None
}

/// `../shared/fixtures/<name>`, or `None` after a loud line when it is absent.
pub fn shared_fixture(test: &str, name: &str) -> Option<PathBuf> {
    let p = super::fixtures::fixtures_dir().join(name);
    if p.exists() {
        return Some(p);
    }
    loud(test, &p.display().to_string());
    None
}

/// Whether `python3 -c "import peft"` works; `false` after a loud line.
pub fn has_peft(test: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import peft, transformers"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        loud(test, "python3 with peft and transformers: PEFT LOAD");
    }
    ok
}

fn loud(test: &str, what: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "!!!!!!!! {test}: {what} ABSENT, CHECK SKIPPED !!!!!!!!");
}

/// Run `tools/<script>` with `args` (and `pythonpath`), panicking with its output on failure.
pub fn run_python(script: &str, args: &[&Path], pythonpath: Option<&Path>) -> String {
    let tool = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools").join(script);
    let mut cmd = Command::new("python3");
    cmd.arg(&tool).args(args);
    if let Some(p) = pythonpath {
        cmd.env("PYTHONPATH", p);
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("python3 {script}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "python3 {script} failed:\n{text}");
    text
}

/// The model bound from the Hugging Face directory `dir` exported as one: `dir`'s config.json
/// and `model.safetensors` in a fresh folder, whose keys and shapes must be the source's.
pub fn exported_like_source(
    params: &Params,
    report: &whet::nn::BindingReport,
    dir: &Path,
    what: &str,
) -> tempfile::TempDir {
    let src = whet::weights::open(dir).unwrap();
    let out = tempfile::tempdir().unwrap();
    std::fs::copy(dir.join("config.json"), out.path().join("config.json")).unwrap();
    let exported = whet::run::export::export_safetensors(
        params,
        report,
        Some(src.as_ref()),
        &out.path().join("model.safetensors"),
    )
    .unwrap();
    let keys: std::collections::BTreeMap<String, Vec<usize>> =
        src.tensors().into_iter().map(|t| (t.name, t.shape)).collect();
    assert_eq!(exported.tensors, keys, "{what}: exported keys and shapes differ from the source's");
    out
}
