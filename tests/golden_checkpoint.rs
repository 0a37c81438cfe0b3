//! Check T7: `tests/data/golden_run/` is a run folder written by this checkpoint format (the
//! driver test MLP on the UCI digits, stopped at step 3 of 6). CI resumes it, so a change that
//! breaks existing checkpoints fails here; such a change must bump
//! `checkpoint::FORMAT_VERSION` (older folders are then refused by name) and regenerate the
//! folder with `cargo test --test golden_checkpoint -- --ignored regenerate`.

mod driver_common;

use std::path::{Path, PathBuf};

use driver_common::{fresh_engine, gpu, DigitsTask};
use whet::optim::{Method, OptimConfig};
use whet::train::checkpoint::{self, FORMAT_VERSION};
use whet::train::{Driver, DriverConfig, Resume, StopFlag, Task};
use whet::Error;

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden_run")
}

/// Parameters of the straight 6-step run, and the adapter that computed them.
fn expected_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden_expected.safetensors")
}

fn config(dir: &Path, steps: u64) -> DriverConfig {
    let mut c = DriverConfig::new(dir);
    c.epochs = 10;
    c.max_steps = Some(steps);
    c.batch_size = 16;
    c.seed = 5;
    c.resume = Resume::IfSame;
    c
}

fn run(dir: &Path, steps: u64) -> (whet::train::RunSummary, DigitsTask) {
    let e = fresh_engine();
    let mut task = DigitsTask::new(&e, 48, 7);
    let optim = OptimConfig::new(Method::ADAMW, 3e-3).weight_decay(1e-2);
    let s = Driver::new(&e, config(dir, steps), optim).unwrap().run(&mut task, &StopFlag::new()).unwrap();
    (s, task)
}

/// A copy of the golden folder to resume (the checked-in one stays as it is).
fn copy_golden(to: &Path) {
    let mut stack = vec![golden()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let dst = to.join(p.strip_prefix(golden()).unwrap());
            if p.is_dir() {
                std::fs::create_dir_all(&dst).unwrap();
                stack.push(p);
            } else {
                std::fs::copy(&p, &dst).unwrap();
            }
        }
    }
}

#[test]
fn the_golden_checkpoint_resumes_and_finishes_like_the_straight_run() {
    let Some((_g, e)) = gpu("the_golden_checkpoint_resumes_and_finishes_like_the_straight_run") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    copy_golden(tmp.path());
    let ck = checkpoint::load_latest(tmp.path()).unwrap().expect("the golden checkpoint loads");
    assert_eq!(ck.step, 3);
    let (summary, task) = run(tmp.path(), 6);
    assert_eq!((summary.resumed_from, summary.steps), (Some(3), 6), "{summary:?}");

    let bytes = std::fs::read(expected_file()).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let made_on = meta.metadata().as_ref().and_then(|m| m.get("adapter").cloned()).unwrap_or_default();
    let mut worst = 0f32;
    let mut bitwise = true;
    for entry in task.params().entries() {
        let want = st.tensor(&entry.path).unwrap_or_else(|_| panic!("{} in the expected file", entry.path));
        let want: Vec<f32> =
            want.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        let got = entry.tensor.to_vec().unwrap();
        assert_eq!(got.len(), want.len(), "{}", entry.path);
        for (a, b) in got.iter().zip(&want) {
            bitwise &= a.to_bits() == b.to_bits();
            worst = worst.max((a - b).abs() / b.abs().max(1e-3));
        }
    }
    eprintln!(
        "golden resume on {}: bitwise {bitwise}, worst relative difference {worst:e}",
        e.adapter_name()
    );
    if e.adapter_name() == made_on {
        assert!(bitwise, "same adapter ({made_on}) as the straight run: must be bitwise equal");
    } else {
        assert!(worst <= 1e-4, "another adapter than {made_on}: worst relative difference {worst}");
    }
}

/// Rewrite the `format` of every manifest of the folder at `dir`.
fn set_format(dir: &Path, format: Option<u32>) {
    let root = dir.join("checkpoints");
    let mut manifests = vec![root.join("latest.json"), root.join("best.json")];
    for e in std::fs::read_dir(&root).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            manifests.push(p.join("manifest.json"));
        }
    }
    for m in manifests.into_iter().filter(|m| m.exists()) {
        let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&m).unwrap()).unwrap();
        let o = v.as_object_mut().unwrap();
        match format {
            Some(f) => o.insert("format".into(), f.into()),
            // As before versioning: neither a format nor a writer.
            None => o.remove("format").and(o.remove("whet")),
        };
        std::fs::write(&m, serde_json::to_vec(&v).unwrap()).unwrap();
    }
}

#[test]
fn newer_and_older_checkpoint_formats_are_refused_naming_both_versions() {
    let tmp = tempfile::tempdir().unwrap();
    copy_golden(tmp.path());
    set_format(tmp.path(), Some(FORMAT_VERSION + 1));
    let err = checkpoint::load_latest(tmp.path()).unwrap_err();
    let Error::CheckpointVersion { found, supported, .. } = &err else { panic!("{err}") };
    assert_eq!((*found, *supported), (FORMAT_VERSION + 1, FORMAT_VERSION));
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("format {}", FORMAT_VERSION + 1)) && msg.contains(env!("CARGO_PKG_VERSION")),
        "{msg}"
    );

    // No format at all: written before checkpoints were versioned.
    set_format(tmp.path(), None);
    let err = checkpoint::load_latest(tmp.path()).unwrap_err();
    assert!(matches!(err, Error::CheckpointVersion { found: 0, .. }), "{err}");
    assert!(err.to_string().contains("before checkpoints were versioned"), "{err}");
}

#[test]
#[ignore = "rewrites tests/data/golden_run: only when FORMAT_VERSION changes"]
fn regenerate() {
    let Some((_g, e)) = gpu("regenerate") else { return };
    let _ = std::fs::remove_dir_all(golden());
    run(&golden(), 3);
    let straight = tempfile::tempdir().unwrap();
    let (_, task) = run(straight.path(), 6);
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = task
        .params()
        .entries()
        .iter()
        .map(|en| {
            let v: Vec<u8> = en.tensor.to_vec().unwrap().iter().flat_map(|x| x.to_le_bytes()).collect();
            (en.path.clone(), en.tensor.shape().to_vec(), v)
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(k, s, b)| {
            (k.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).unwrap())
        })
        .collect();
    let meta = std::collections::HashMap::from([("adapter".to_string(), e.adapter_name().to_string())]);
    let bytes = safetensors::tensor::serialize(views, Some(meta)).unwrap();
    std::fs::write(expected_file(), bytes).unwrap();
    // Logs are not part of the format under test.
    for f in ["log.csv", "log.jsonl", "whet.lock"] {
        let _ = std::fs::remove_file(golden().join(f));
    }
}

/// Rewrite a manifest's JSON with `edit`.
fn edit_json(path: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(path, serde_json::to_vec(&v).unwrap()).unwrap();
}

#[test]
fn crafted_manifests_cannot_leave_the_folder_or_size_allocations() {
    let tmp = tempfile::tempdir().unwrap();
    copy_golden(tmp.path());
    let root = tmp.path().join("checkpoints");
    // A manifest naming a directory outside checkpoints/: refused; latest falls back to the
    // newest step directory that verifies on its own.
    for m in ["latest.json", "best.json"] {
        edit_json(&root.join(m), |v| v["dir"] = "../../../etc".into());
    }
    let err = checkpoint::load_best(tmp.path()).unwrap_err().to_string();
    assert!(err.contains("names directory '../../../etc'"), "{err}");
    assert_eq!(checkpoint::load_latest(tmp.path()).unwrap().unwrap().step, 3);

    // A manifest far larger than any manifest: refused before it is read.
    std::fs::write(root.join("best.json"), vec![b' '; 2 << 20]).unwrap();
    let err = checkpoint::load_best(tmp.path()).unwrap_err().to_string();
    assert!(err.contains("more than"), "{err}");

    // A file whose manifest claims a size other than its own: refused by the sizes alone.
    let step = root.join("step-3");
    edit_json(&step.join("manifest.json"), |v| {
        v["files"]["params.safetensors"]["size"] = (1u64 << 40).into()
    });
    let err = checkpoint::load_dir(&step).unwrap_err().to_string();
    assert!(err.contains("the manifest says 1099511627776"), "{err}");
    // A file the format does not have: refused.
    edit_json(&step.join("manifest.json"), |v| {
        v["files"]["../../x"] = serde_json::json!({"size": 1, "crc32": 0})
    });
    let err = checkpoint::load_dir(&step).unwrap_err().to_string();
    assert!(err.contains("not a checkpoint file"), "{err}");
}

#[test]
fn optimizer_counts_larger_than_the_file_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    copy_golden(tmp.path());
    let step = tmp.path().join("checkpoints/step-3");
    let optim = step.join("optim.safetensors");
    let bytes = std::fs::read(&optim).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta = meta.metadata().clone().unwrap();
    // One parameter claiming a billion moments: must not size an allocation.
    let mut layout: std::collections::BTreeMap<String, usize> =
        serde_json::from_str(&meta["moments"]).unwrap();
    let first = layout.keys().next().unwrap().clone();
    layout.insert(first, 1_000_000_000);
    meta.insert("moments".into(), serde_json::to_string(&layout).unwrap());
    let views: Vec<(String, safetensors::tensor::TensorView)> = st.tensors();
    let crafted = safetensors::tensor::serialize(views, Some(meta)).unwrap();
    std::fs::write(&optim, &crafted).unwrap();
    let mut crc = flate2::Crc::new();
    crc.update(&crafted);
    edit_json(&step.join("manifest.json"), |v| {
        v["files"]["optim.safetensors"] = serde_json::json!({"size": crafted.len(), "crc32": crc.sum()})
    });
    let err = checkpoint::load_dir(&step).unwrap_err().to_string();
    assert!(err.contains("1000000000 tensors"), "{err}");
}
