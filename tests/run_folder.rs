//! Check T6 for the library: a run folder belongs to one run. The driver refuses a folder
//! holding a run unless told what to do; a changed run is refused naming what changed and
//! leaves the folder byte for byte as it was; the same run resumes; a longer run extends it;
//! `Fresh` starts over; a second claimant is locked out.

mod driver_common;

use std::collections::BTreeMap;
use std::path::Path;

use driver_common::{fresh_engine, gpu, DigitsTask};
use whet::optim::{Method, OptimConfig};
use whet::train::{Driver, DriverConfig, Resume, RunDir, StopFlag};
use whet::Error;

fn optim(lr: f64) -> OptimConfig {
    OptimConfig::new(Method::ADAMW, lr)
}

fn config(dir: &Path, steps: u64, resume: Resume) -> DriverConfig {
    let mut c = DriverConfig::new(dir);
    c.epochs = 5;
    c.max_steps = Some(steps);
    c.batch_size = 16;
    c.resume = resume;
    c
}

fn run(cfg: DriverConfig, lr: f64) -> whet::Result<whet::train::RunSummary> {
    let e = fresh_engine();
    let mut task = DigitsTask::new(&e, 64, 3);
    Driver::new(&e, cfg, optim(lr))?.run(&mut task, &StopFlag::new())
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
fn a_changed_run_is_refused_naming_the_change_and_the_folder_is_untouched() {
    let Some((_g, _)) = gpu("a_changed_run_is_refused_naming_the_change_and_the_folder_is_untouched") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    run(config(dir.path(), 4, Resume::IfSame), 1e-3).unwrap();
    let before = contents(dir.path());
    assert!(before.contains_key("run.json"), "{:?}", before.keys());
    let err = run(config(dir.path(), 4, Resume::IfSame), 3e-3).unwrap_err();
    let Error::RunMismatch { changes, .. } = &err else { panic!("{err}") };
    assert!(changes.iter().any(|c| c.contains("driver.optimizer.lr: 0.001 → 0.003")), "{changes:?}");
    let msg = err.to_string();
    assert!(msg.contains("Resume::Fresh") && msg.contains("--out"), "names both ways on: {msg}");
    assert_eq!(contents(dir.path()), before, "a refused run touches nothing, lock file included");

    // Another model (the task's initial weights) is another run too.
    let e = fresh_engine();
    let mut task = DigitsTask::new(&e, 64, 4);
    let err = Driver::new(&e, config(dir.path(), 4, Resume::IfSame), optim(1e-3))
        .unwrap()
        .run(&mut task, &StopFlag::new())
        .unwrap_err();
    assert!(err.to_string().contains("driver.initial_params"), "{err}");
    assert_eq!(contents(dir.path()), before);
}

#[test]
fn the_library_default_never_reuses_a_folder() {
    let Some((_g, _)) = gpu("the_library_default_never_reuses_a_folder") else { return };
    let dir = tempfile::tempdir().unwrap();
    let cfg = DriverConfig::new(dir.path());
    assert_eq!(cfg.resume, Resume::Refuse, "the default");
    let mut c = cfg.clone();
    c.max_steps = Some(2);
    run(c.clone(), 1e-3).unwrap();
    let before = contents(dir.path());
    let err = run(c, 1e-3).unwrap_err();
    assert!(matches!(err, Error::RunExists { .. }), "{err}");
    assert_eq!(contents(dir.path()), before);
}

#[test]
fn the_same_run_resumes_a_longer_one_extends_and_fresh_starts_over() {
    let Some((_g, _)) = gpu("the_same_run_resumes_a_longer_one_extends_and_fresh_starts_over") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let first = run(config(dir.path(), 3, Resume::IfSame), 1e-3).unwrap();
    assert_eq!((first.steps, first.resumed_from), (3, None));
    let again = run(config(dir.path(), 3, Resume::IfSame), 1e-3).unwrap();
    assert_eq!((again.steps, again.resumed_from), (3, Some(3)));
    assert!(again.extended.is_empty());

    let longer = run(config(dir.path(), 5, Resume::IfSame), 1e-3).unwrap();
    assert_eq!((longer.steps, longer.resumed_from), (5, Some(3)));
    assert_eq!(longer.extended, vec!["driver.max_steps: Some(3) → Some(5)".to_string()]);
    // run.json now records the longer run: the same command resumes without a notice.
    let same = run(config(dir.path(), 5, Resume::IfSame), 1e-3).unwrap();
    assert!(same.extended.is_empty() && same.resumed_from == Some(5));

    // Fresh: the old run's checkpoints are gone, a new one trains from step 0.
    let fresh = run(config(dir.path(), 2, Resume::Fresh), 3e-3).unwrap();
    assert_eq!((fresh.steps, fresh.resumed_from), (2, None));
    let names: Vec<String> = contents(dir.path()).into_keys().filter(|k| k.contains("step-")).collect();
    assert!(names.iter().all(|n| n.contains("step-1/") || n.contains("step-2/")), "{names:?}");
}

#[test]
fn a_second_claimant_is_locked_out_until_the_first_lets_go() {
    let Some((_g, _)) = gpu("a_second_claimant_is_locked_out_until_the_first_lets_go") else { return };
    let dir = tempfile::tempdir().unwrap();
    let e = fresh_engine();
    let mut task = DigitsTask::new(&e, 64, 3);
    let mut driver = Driver::new(&e, config(dir.path(), 2, Resume::IfSame), optim(1e-3)).unwrap();
    let fp = driver.fingerprint(&task).unwrap();
    let held = RunDir::claim(dir.path(), &fp, Resume::IfSame).unwrap();
    // flock is per open file: a second claim from this very process conflicts like another's.
    let err = run(config(dir.path(), 2, Resume::IfSame), 1e-3).unwrap_err();
    let Error::RunLocked { holder, .. } = &err else { panic!("{err}") };
    assert!(holder.contains(&std::process::id().to_string()), "names the holder: {err}");
    // The holder itself trains in the folder it claimed.
    let s = driver.run_in(&held, &mut task, &StopFlag::new()).unwrap();
    assert_eq!(s.steps, 2);
    drop(held);
    assert!(!dir.path().join("whet.lock").exists(), "released and removed");
    let again = run(config(dir.path(), 2, Resume::IfSame), 1e-3).unwrap();
    assert_eq!(again.resumed_from, Some(2), "the same run, now free: resumed");

    // A host key is compared like the driver's own: another value is another run.
    let host = |v: &str, resume: Resume| {
        let mut c = config(dir.path(), 2, resume);
        c.fingerprint.set("host.data", v);
        c
    };
    let fresh = run(host("v1", Resume::Fresh), 1e-3).unwrap();
    assert_eq!(fresh.resumed_from, None);
    let err = run(host("v2", Resume::IfSame), 1e-3).unwrap_err();
    assert!(err.to_string().contains("host.data: v1 → v2"), "{err}");
    // A key only one build records (an older host, an older whet) is not a change of the run.
    let s = run(config(dir.path(), 2, Resume::IfSame), 1e-3).unwrap();
    assert_eq!(s.resumed_from, Some(2), "host.data recorded by one side only: resumed");
}

#[test]
fn checkpoints_without_a_run_description_are_an_older_format() {
    let Some((_g, _)) = gpu("checkpoints_without_a_run_description_are_an_older_format") else { return };
    let dir = tempfile::tempdir().unwrap();
    run(config(dir.path(), 2, Resume::IfSame), 1e-3).unwrap();
    std::fs::remove_file(dir.path().join("run.json")).unwrap();
    let err = run(config(dir.path(), 2, Resume::IfSame), 1e-3).unwrap_err();
    let Error::CheckpointVersion { found, supported, .. } = &err else { panic!("{err}") };
    assert_eq!((*found, *supported), (0, whet::train::checkpoint::FORMAT_VERSION));
    assert!(err.to_string().contains(env!("CARGO_PKG_VERSION")), "names this whet: {err}");
    // Starting over is always possible.
    run(config(dir.path(), 2, Resume::Fresh), 1e-3).unwrap();
}
