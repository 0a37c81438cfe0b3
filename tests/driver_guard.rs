//! Check T3: a non-finite loss or gradient norm skips the step without touching parameters or
//! moments, names the items, and too many in a row end the run with a typed error; non-finite
//! weights are never saved.

mod driver_common;

use driver_common::{bits, gpu, state_bits, DigitsTask};
use whet::optim::{Method, OptimConfig};
use whet::train::{checkpoint, save_params, Driver, DriverConfig, StopFlag, Task};
use whet::Error;

fn optim() -> OptimConfig {
    OptimConfig::new(Method::ADAMW, 1e-2).weight_decay(1e-2)
}

#[test]
fn a_nan_item_skips_its_step_and_is_logged() {
    let Some((_g, e)) = gpu("a_nan_item_skips_its_step_and_is_logged") else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut task = DigitsTask::new(&e, 100, 3);
    task.nan_items.insert(42);
    let mut c = DriverConfig::new(dir.path());
    c.resume = whet::train::Resume::IfSame;
    c.epochs = 1;
    c.batch_size = 16;
    let s = Driver::new(&e, c, optim()).unwrap().run(&mut task, &StopFlag::new()).unwrap();
    // 7 attempts, the one holding item 42 skipped.
    assert_eq!(task.calls.batches.len(), 7);
    assert_eq!(s.skipped_steps, 1);
    assert_eq!(s.steps, 6);
    let bad = task.calls.batches.iter().find(|b| b.contains(&42)).unwrap().clone();
    assert_eq!(s.skipped_items, bad);
    let jsonl = std::fs::read_to_string(dir.path().join("log.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let skipped: Vec<&serde_json::Value> = rows.iter().filter(|r| r.get("skipped_items").is_some()).collect();
    assert_eq!(skipped.len(), 1);
    assert!(skipped[0]["loss"].is_null(), "non-finite loss logged as null");
    let ids: Vec<usize> = skipped[0]["skipped_items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(ids, bad);
    let csv = std::fs::read_to_string(dir.path().join("log.csv")).unwrap();
    assert!(csv.lines().any(|l| l.contains(" 42 ") || l.contains(",42 ") || l.contains(" 42,")));
    for v in task.snapshot().values() {
        assert!(v.iter().all(|x| x.is_finite()), "no NaN reached the weights");
    }
    assert_eq!(checkpoint::load_latest(dir.path()).unwrap().unwrap().state.skipped_items, bad);
}

#[test]
fn skipped_steps_change_nothing_and_too_many_in_a_row_fail() {
    let Some((_g, e)) = gpu("skipped_steps_change_nothing_and_too_many_in_a_row_fail") else { return };
    let cfg = |dir: &std::path::Path| {
        let mut c = DriverConfig::new(dir);
        c.resume = whet::train::Resume::IfSame;
        c.epochs = 5;
        c.batch_size = 16;
        c.max_bad_steps = 3;
        c
    };
    // Clean reference: exactly 5 steps.
    let a = tempfile::tempdir().unwrap();
    let mut clean = DigitsTask::new(&e, 100, 3);
    let mut c = cfg(a.path());
    c.max_steps = Some(5);
    let mut d = Driver::new(&e, c, optim()).unwrap();
    d.run(&mut clean, &StopFlag::new()).unwrap();
    let want_params = bits(&clean.snapshot());
    let want_state = state_bits(&d.optimizer().state(clean.params()).unwrap());

    // Every call from the 6th on is NaN: three skips, then the typed error.
    let b = tempfile::tempdir().unwrap();
    let mut task = DigitsTask::new(&e, 100, 3);
    task.poison_from_call = Some(5);
    let mut d = Driver::new(&e, cfg(b.path()), optim()).unwrap();
    let err = d.run(&mut task, &StopFlag::new()).unwrap_err();
    match &err {
        Error::NonFiniteSteps { consecutive, step, items } => {
            assert_eq!((*consecutive, *step), (3, 5));
            assert_eq!(items, &task.calls.batches[7]);
        }
        other => panic!("expected NonFiniteSteps, got {other:?}"),
    }
    assert_eq!(task.calls.batches.len(), 8);
    assert_eq!(bits(&task.snapshot()), want_params, "skipped steps left the parameters alone");
    assert_eq!(state_bits(&d.optimizer().state(task.params()).unwrap()), want_state, "and the moments");
    // Epoch 0 (7 attempts, the last two skipped) ended with a checkpoint of step 5: the
    // finite weights of the last good step.
    let ck = checkpoint::load_latest(b.path()).unwrap().unwrap();
    assert_eq!(ck.step, 5);
    assert_eq!(ck.state.skipped_steps, 2);
    for (path, _, v) in &ck.params {
        let want: Vec<u32> = v.iter().map(|x| x.to_bits()).collect();
        assert_eq!(want, want_params[path], "{path}");
    }
}

#[test]
fn non_finite_weights_are_never_saved() {
    let Some((_g, e)) = gpu("non_finite_weights_are_never_saved") else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut task = DigitsTask::new(&e, 100, 3);
    let ok = dir.path().join("ok.safetensors");
    save_params(task.params(), &ok).unwrap();
    assert!(ok.exists());
    let mut w = task.params().by_path("fc2.bias").unwrap().to_vec().unwrap();
    w[3] = f32::INFINITY;
    task.params_mut().assign("fc2.bias", &w).unwrap();
    let bad = dir.path().join("bad.safetensors");
    match save_params(task.params(), &bad) {
        Err(Error::NonFiniteWeights { path }) => assert_eq!(path, "fc2.bias"),
        other => panic!("expected NonFiniteWeights, got {other:?}"),
    }
    assert!(!bad.exists());
    // The saved file reads back with every tensor by path.
    let st = whet::weights::safetensors::SafeTensorsFile::open(&ok).unwrap();
    assert_eq!(st.bytes("fc1.weight").unwrap().len(), 64 * 32 * 4);
}
