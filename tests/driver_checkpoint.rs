//! Checks T1 and T5: a save killed part-way never leaves a loadable partial checkpoint (load
//! falls back to the previous complete one), and a failing disk is a typed `Io` error naming
//! the path, with the previous checkpoint intact.

mod driver_common;

use std::path::Path;

use driver_common::{gpu, DigitsTask};
use whet::optim::{Method, OptimConfig};
use whet::train::checkpoint::{self, fail_writes_after};
use whet::train::{Driver, DriverConfig, StopFlag};
use whet::{Engine, Error};

fn run(e: &Engine, dir: &Path, max_steps: u64) -> whet::Result<whet::train::RunSummary> {
    let mut c = DriverConfig::new(dir);
    c.resume = whet::train::Resume::IfSame;
    c.batch_size = 16;
    c.max_steps = Some(max_steps);
    c.checkpoint_every = Some(5);
    let mut task = DigitsTask::new(e, 320, 3);
    Driver::new(e, c, OptimConfig::new(Method::ADAMW, 1e-2))?.run(&mut task, &StopFlag::new())
}

fn step_dirs(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".json"))
        .collect();
    v.sort();
    v
}

#[test]
fn a_damaged_latest_falls_back_to_the_previous_complete_checkpoint() {
    let Some((_g, e)) = gpu("a_damaged_latest_falls_back_to_the_previous_complete_checkpoint") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    run(&e, dir.path(), 15).unwrap();
    // Saves at 5, 10, 15; the last two kept (15 is also the best, the only evaluation).
    assert_eq!(step_dirs(dir.path()), ["step-10", "step-15"]);
    let root = dir.path().join("checkpoints");
    // A save killed mid-way leaves a temporary directory: never read.
    std::fs::create_dir(root.join(".tmp-step-20")).unwrap();
    std::fs::write(root.join(".tmp-step-20/params.safetensors"), b"partial").unwrap();
    assert_eq!(checkpoint::load_latest(dir.path()).unwrap().unwrap().step, 15);

    // latest.json points at step 15 whose weights got damaged: step 10 is used.
    let p = root.join("step-15/params.safetensors");
    let mut bytes = std::fs::read(&p).unwrap();
    let n = bytes.len();
    bytes[n - 5] ^= 0x40;
    std::fs::write(&p, &bytes).unwrap();
    let ck = checkpoint::load_latest(dir.path()).unwrap().unwrap();
    assert_eq!(ck.step, 10);
    assert!(checkpoint::load_dir(&root.join("step-15")).unwrap_err().to_string().contains("checksum"));

    // A truncated file is caught by its size.
    let s = root.join("step-10/state.json");
    let st = std::fs::read(&s).unwrap();
    std::fs::write(&s, &st[..st.len() / 2]).unwrap();
    let err = checkpoint::load_latest(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Format { .. }), "{err:?}");
    assert!(err.to_string().contains("no checkpoint verifies"), "{err}");
    std::fs::write(&s, &st).unwrap();

    // Resuming uses the fallback, and the next save clears the leftover temporary directory.
    let summary = run(&e, dir.path(), 20).unwrap();
    assert_eq!(summary.resumed_from, Some(10));
    assert_eq!(summary.steps, 20);
    assert!(!root.join(".tmp-step-20").exists());
    assert_eq!(checkpoint::load_latest(dir.path()).unwrap().unwrap().step, 20);

    // Without latest.json the newest directory that verifies is used.
    std::fs::remove_file(root.join("latest.json")).unwrap();
    assert_eq!(checkpoint::load_latest(dir.path()).unwrap().unwrap().step, 20);
}

#[test]
fn a_full_disk_is_an_io_error_and_the_previous_checkpoint_survives() {
    let Some((_g, e)) = gpu("a_full_disk_is_an_io_error_and_the_previous_checkpoint_survives") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Claiming the folder writes run.json; the save at step 5 writes 5 files (3 data files,
    // the directory manifest, latest.json); the 7th write, the step-10 weights, fails as a
    // full disk would.
    fail_writes_after(Some(6));
    let err = run(&e, dir.path(), 10).unwrap_err();
    fail_writes_after(None);
    match &err {
        Error::Io { path, source } => {
            assert!(path.ends_with(".tmp-step-10/params.safetensors"), "{path}");
            assert_eq!(source.raw_os_error(), Some(28));
        }
        other => panic!("expected Io, got {other:?}"),
    }
    assert_eq!(step_dirs(dir.path()), ["step-5"], "no partial directory left");
    let ck = checkpoint::load_latest(dir.path()).unwrap().unwrap();
    assert_eq!(ck.step, 5);

    // Failing on latest.json itself: the new directory is complete but the manifest still
    // names step 5, which stays loadable.
    fail_writes_after(Some(4));
    let err = run(&e, dir.path(), 10).unwrap_err();
    fail_writes_after(None);
    assert!(matches!(&err, Error::Io { path, .. } if path.ends_with(".tmp-latest.json")), "{err:?}");
    assert_eq!(checkpoint::load_latest(dir.path()).unwrap().unwrap().step, 5);
}

#[test]
fn an_unwritable_output_directory_is_an_io_error_naming_it() {
    let Some((_g, e)) = gpu("an_unwritable_output_directory_is_an_io_error_naming_it") else { return };
    // /proc refuses new entries even to root: a real failure, no hook.
    let err = run(&e, Path::new("/proc/whet-driver-test/out"), 3).unwrap_err();
    match &err {
        Error::Io { path, .. } => assert!(path.starts_with("/proc/whet-driver-test"), "{path}"),
        other => panic!("expected Io, got {other:?}"),
    }
}
