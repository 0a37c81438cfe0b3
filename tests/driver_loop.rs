//! The driver's loop on the digits MLP: shuffling, batching, accumulation, evaluation, early
//! stopping, logs and checkpoints (and T4: a stop request finishes the step and saves).

mod driver_common;

use std::collections::BTreeMap;

use driver_common::{gpu, DigitsTask};
use whet::optim::{Method, OptimConfig};
use whet::train::checkpoint;
use whet::train::{Driver, DriverConfig, EarlyStop, StopFlag, StopReason, Task};

fn adamw() -> OptimConfig {
    OptimConfig::new(Method::ADAMW, 1e-2)
}

#[test]
fn trains_digits_and_writes_logs_and_checkpoints() {
    let Some((_g, e)) = gpu("trains_digits_and_writes_logs_and_checkpoints") else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut task = DigitsTask::new(&e, 320, 3);
    let before = task.evaluate().unwrap();
    task.calls.evaluations = 0;
    let mut c = DriverConfig::new(dir.path());
    c.resume = whet::train::Resume::IfSame;
    c.epochs = 3;
    c.batch_size = 32;
    let mut d = Driver::new(&e, c, adamw()).unwrap();
    let s = d.run(&mut task, &StopFlag::new()).unwrap();
    assert_eq!(s.steps, 30, "320 items / 32 = 10 steps per epoch, 3 epochs");
    assert_eq!(s.epochs, 3);
    assert_eq!(s.stopped, StopReason::Finished);
    assert_eq!(s.skipped_steps, 0);
    assert_eq!(s.resumed_from, None);
    assert_eq!(task.calls.evaluations, 3, "one evaluation per epoch");
    let last = s.last.clone().unwrap();
    assert!(last["loss"] < before["loss"] * 0.7, "val loss {} -> {}", before["loss"], last["loss"]);
    assert!(last["accuracy"] > 0.7 && last["accuracy"] > before["accuracy"], "accuracy {last:?}");
    let (best_step, best) = s.best.clone().unwrap();
    assert!(best["loss"] <= last["loss"]);
    assert!([10, 20, 30].contains(&best_step));

    // Each epoch visits every item once, in a different order.
    let epoch = |k: usize| -> Vec<usize> { task.calls.batches[k * 10..(k + 1) * 10].concat() };
    for k in 0..3 {
        let mut v = epoch(k);
        v.sort_unstable();
        assert_eq!(v, (0..320).collect::<Vec<_>>());
    }
    assert_ne!(epoch(0), epoch(1));
    let mut seeds = task.calls.seeds.clone();
    seeds.sort_unstable();
    seeds.dedup();
    assert_eq!(seeds.len(), 30, "a dropout seed per step");

    // log.csv: header + 30 rows; metric columns filled at steps 10, 20, 30 only.
    let csv = std::fs::read_to_string(dir.path().join("log.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "step,epoch,loss,lr,grad_norm,secs,skipped_items,accuracy,loss");
    assert_eq!(lines.len(), 31);
    let row10: Vec<&str> = lines[10].split(',').collect();
    assert_eq!(row10[0], "10");
    assert_eq!(row10[1], "0");
    assert_eq!(row10[3], "0.01");
    assert!(row10[4].parse::<f64>().unwrap() > 0.0, "grad norm logged");
    assert!(!row10[7].is_empty() && !row10[8].is_empty());
    let row11: Vec<&str> = lines[11].split(',').collect();
    assert!(row11[7].is_empty(), "no metrics on a step without evaluation");
    let jsonl = std::fs::read_to_string(dir.path().join("log.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 30);
    assert_eq!(rows[29]["step"], 30);
    assert_eq!(rows[29]["metrics"]["accuracy"].as_f64(), Some(last["accuracy"]));
    // Losses fall: mean of the last epoch's step losses below the first's.
    let mean = |r: &[serde_json::Value]| r.iter().map(|x| x["loss"].as_f64().unwrap()).sum::<f64>() / 10.0;
    assert!(mean(&rows[20..30]) < mean(&rows[0..10]));

    // Checkpoints at every evaluation; last two + best kept; latest is step 30.
    let ck = checkpoint::load_latest(dir.path()).unwrap().unwrap();
    assert_eq!(ck.step, 30);
    assert_eq!(ck.state.epoch, 3);
    assert_eq!(ck.state.cursor, 0);
    let snap = task.snapshot();
    for (path, shape, vals) in &ck.params {
        assert_eq!(&snap[path], vals, "{path}");
        assert_eq!(task.params().by_path(path).unwrap().shape(), shape.as_slice());
    }
    let best_ck = checkpoint::load_best(dir.path()).unwrap().unwrap();
    assert_eq!(best_ck.step, best_step);
    let mut dirs: Vec<String> = std::fs::read_dir(dir.path().join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("step-"))
        .collect();
    dirs.sort();
    let mut want = vec!["step-20".to_string(), "step-30".to_string(), format!("step-{best_step}")];
    want.sort();
    want.dedup();
    assert_eq!(dirs, want);

    // Running again resumes from the final checkpoint and does nothing more.
    let mut task2 = DigitsTask::new(&e, 320, 3);
    let mut c = DriverConfig::new(dir.path());
    c.resume = whet::train::Resume::IfSame;
    c.epochs = 3;
    c.batch_size = 32;
    let s2 = Driver::new(&e, c, adamw()).unwrap().run(&mut task2, &StopFlag::new()).unwrap();
    assert_eq!(s2.resumed_from, Some(30));
    assert_eq!(s2.steps, 30);
    assert!(task2.calls.batches.is_empty());
    assert_eq!(task2.snapshot(), snap);
}

#[test]
fn accumulation_splits_steps_and_the_last_partial_batch_is_kept() {
    let Some((_g, e)) = gpu("accumulation_splits_steps_and_the_last_partial_batch_is_kept") else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut task = DigitsTask::new(&e, 100, 3);
    let mut c = DriverConfig::new(dir.path());
    c.resume = whet::train::Resume::IfSame;
    c.epochs = 2;
    c.batch_size = 16;
    c.grad_accum = 3;
    c.eval_every = Some(2);
    let s = Driver::new(&e, c, adamw()).unwrap().run(&mut task, &StopFlag::new()).unwrap();
    // 100 items, 48 per step: steps of 48, 48, 4 items.
    assert_eq!(s.steps, 6);
    let sizes: Vec<usize> = task.calls.batches.iter().map(|b| b.len()).collect();
    assert_eq!(sizes, [16, 16, 16, 16, 16, 16, 4, 16, 16, 16, 16, 16, 16, 4]);
    let mut seeds = task.calls.seeds.clone();
    seeds.sort_unstable();
    seeds.dedup();
    assert_eq!(seeds.len(), 6, "a dropout seed per step");
    // Within a step, each micro-batch's masks are keyed by where its items sit in the step.
    let firsts: Vec<u64> = task.calls.keys.iter().map(|k| k.0).collect();
    assert_eq!(firsts, [0, 16, 32, 0, 16, 32, 0, 0, 16, 32, 0, 16, 32, 0]);
    let items: Vec<usize> = task.calls.keys.iter().map(|k| k.1 as usize).collect();
    assert_eq!(items, sizes);
    // Evaluations at steps 2, 4, 6 (6 is also the end).
    assert_eq!(task.calls.evaluations, 3);
    let jsonl = std::fs::read_to_string(dir.path().join("log.jsonl")).unwrap();
    let evaluated: Vec<u64> = jsonl
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r.get("metrics").is_some())
        .map(|r| r["step"].as_u64().unwrap())
        .collect();
    assert_eq!(evaluated, [2, 4, 6]);
}

#[test]
fn early_stopping_counts_patience_in_evaluations() {
    let Some((_g, e)) = gpu("early_stopping_counts_patience_in_evaluations") else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut task = DigitsTask::new(&e, 320, 3);
    let m = |acc: f64| BTreeMap::from([("accuracy".to_string(), acc), ("loss".to_string(), 1.0)]);
    // 0.50 best, 0.60 best, 0.605 not better by > 0.01, 0.55 worse: patience 2 runs out.
    task.script = vec![m(0.5), m(0.6), m(0.605), m(0.55), m(0.9)];
    let mut c = DriverConfig::new(dir.path());
    c.resume = whet::train::Resume::IfSame;
    c.epochs = 5;
    c.batch_size = 32;
    c.eval_every = Some(3);
    c.early_stop =
        Some(EarlyStop { metric: "accuracy".into(), higher_is_better: true, patience: 2, min_delta: 0.01 });
    let s = Driver::new(&e, c.clone(), adamw()).unwrap().run(&mut task, &StopFlag::new()).unwrap();
    assert_eq!(s.stopped, StopReason::EarlyStopped);
    assert_eq!(s.steps, 12);
    assert_eq!(task.calls.evaluations, 4);
    let (step, best) = s.best.unwrap();
    assert_eq!(step, 6);
    assert_eq!(best["accuracy"], 0.6);
    assert_eq!(s.last.unwrap()["accuracy"], 0.55);
    assert_eq!(checkpoint::load_best(dir.path()).unwrap().unwrap().step, 6);
    assert_eq!(checkpoint::load_latest(dir.path()).unwrap().unwrap().step, 12);

    // A metric the task does not report is a typed error, not a silent "never improves".
    let dir2 = tempfile::tempdir().unwrap();
    let mut c2 = c;
    c2.out_dir = dir2.path().to_path_buf();
    c2.early_stop.as_mut().unwrap().metric = "f1".into();
    let mut task = DigitsTask::new(&e, 320, 3);
    let err = Driver::new(&e, c2, adamw()).unwrap().run(&mut task, &StopFlag::new()).unwrap_err();
    assert!(err.to_string().contains("'f1'"), "{err}");
}

#[test]
fn max_steps_stops_mid_epoch_and_evaluates_at_the_end() {
    let Some((_g, e)) = gpu("max_steps_stops_mid_epoch_and_evaluates_at_the_end") else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut task = DigitsTask::new(&e, 320, 3);
    let mut c = DriverConfig::new(dir.path());
    c.resume = whet::train::Resume::IfSame;
    c.batch_size = 32;
    c.max_steps = Some(4);
    let s = Driver::new(&e, c, adamw()).unwrap().run(&mut task, &StopFlag::new()).unwrap();
    assert_eq!((s.steps, s.epochs, s.stopped), (4, 0, StopReason::Finished));
    assert_eq!(task.calls.evaluations, 1);
    assert!(s.last.is_some());
    let ck = checkpoint::load_latest(dir.path()).unwrap().unwrap();
    assert_eq!((ck.step, ck.state.epoch, ck.state.cursor), (4, 0, 128));
}

#[test]
fn a_stop_request_finishes_the_step_and_saves() {
    let Some((_g, e)) = gpu("a_stop_request_finishes_the_step_and_saves") else { return };
    let dir = tempfile::tempdir().unwrap();
    let flag = StopFlag::new();
    let mut task = DigitsTask::new(&e, 320, 3);
    // Requested (as SIGTERM) while the 4th step's loss is being computed.
    task.stop_at_call = Some((3, flag.clone(), 15));
    let mut c = DriverConfig::new(dir.path());
    c.resume = whet::train::Resume::IfSame;
    c.batch_size = 32;
    let s = Driver::new(&e, c.clone(), adamw()).unwrap().run(&mut task, &flag).unwrap();
    assert_eq!(s.stopped, StopReason::Interrupted { signal: 15 });
    assert_eq!(s.steps, 4, "the step in progress completes");
    assert_eq!(task.calls.batches.len(), 4);
    assert_eq!(task.calls.evaluations, 0, "an interrupted run does not evaluate");
    let ck = checkpoint::load_latest(dir.path()).unwrap().unwrap();
    assert_eq!(ck.step, 4);
    assert_eq!(s.checkpoint.as_deref(), Some(ck.dir.as_path()));
    let snap = task.snapshot();
    for (path, _, vals) in &ck.params {
        assert_eq!(&snap[path], vals, "the final checkpoint holds the weights after step 4");
    }
    // A new run picks up at step 4 and finishes.
    let mut task = DigitsTask::new(&e, 320, 3);
    let s = Driver::new(&e, c, adamw()).unwrap().run(&mut task, &StopFlag::new()).unwrap();
    assert_eq!(s.resumed_from, Some(4));
    assert_eq!(s.steps, 30);
    assert_eq!(task.calls.batches.len(), 26);
    let jsonl = std::fs::read_to_string(dir.path().join("log.jsonl")).unwrap();
    let steps: Vec<u64> = jsonl
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, (1..=30).collect::<Vec<_>>(), "one log row per step across the resume");
}

#[test]
fn invalid_settings_are_rejected() {
    let Some((_g, e)) = gpu("invalid_settings_are_rejected") else { return };
    let mut c = DriverConfig::new("unused");
    c.resume = whet::train::Resume::IfSame;
    c.batch_size = 0;
    assert!(Driver::new(&e, c, adamw()).is_err());
    let mut c = DriverConfig::new("unused");
    c.resume = whet::train::Resume::IfSame;
    c.eval_every = Some(0);
    assert!(Driver::new(&e, c, adamw()).is_err());
    // Zero bad steps or zero patience are refused, not quietly made 1.
    let mut c = DriverConfig::new("unused");
    c.max_bad_steps = 0;
    assert!(Driver::new(&e, c, adamw()).is_err());
    let mut c = DriverConfig::new("unused");
    c.early_stop = Some(whet::train::EarlyStop {
        metric: "loss".into(),
        higher_is_better: false,
        patience: 0,
        min_delta: 0.0,
    });
    assert!(Driver::new(&e, c, adamw()).is_err());
    // Resuming with a different batch size is another run: refused, naming both settings.
    let dir = tempfile::tempdir().unwrap();
    let mut c = DriverConfig::new(dir.path());
    c.resume = whet::train::Resume::IfSame;
    c.batch_size = 32;
    c.max_steps = Some(2);
    let mut task = DigitsTask::new(&e, 320, 3);
    Driver::new(&e, c.clone(), adamw()).unwrap().run(&mut task, &StopFlag::new()).unwrap();
    c.batch_size = 16;
    let mut task = DigitsTask::new(&e, 320, 3);
    let err = Driver::new(&e, c, adamw()).unwrap().run(&mut task, &StopFlag::new()).unwrap_err();
    assert!(err.to_string().contains("driver.batch_size: 32 → 16"), "{err}");
}

/// Dropout masks are keyed by an item's place in the step, not by the micro-batch that runs it:
/// batches of 8 and two accumulated micro-batches of 4 train the same weights (up to float
/// summation order), dropout on. Data-parallel ranks rely on the same keys.
#[test]
fn micro_batches_draw_the_masks_of_the_whole_batch() {
    let Some((_g, e)) = gpu("micro_batches_draw_the_masks_of_the_whole_batch") else { return };
    let run = |batch: usize, accum: usize| {
        let dir = tempfile::tempdir().unwrap();
        let mut task = DigitsTask::new(&e, 64, 3);
        task.dropout = 0.5;
        let mut c = DriverConfig::new(dir.path());
        (c.epochs, c.batch_size, c.grad_accum) = (2, batch, accum);
        Driver::new(&e, c, adamw()).unwrap().run(&mut task, &StopFlag::new()).unwrap();
        task.snapshot()
    };
    let (whole, split) = (run(8, 1), run(4, 2));
    let mut max = 0f32;
    for (k, a) in &whole {
        max = a.iter().zip(&split[k]).fold(max, |m, (x, y)| m.max((x - y).abs()));
    }
    assert!(max < 1e-5, "batches of 8 vs 2 x 4: max |dw| {max}");
}
