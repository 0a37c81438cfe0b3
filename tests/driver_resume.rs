//! Check T2: a run interrupted at a checkpoint and resumed in a brand-new engine, task and
//! driver ends bitwise equal (parameters and optimizer moments) to an uninterrupted one.

mod driver_common;

use driver_common::{bits, fresh_engine, gpu, state_bits, DigitsTask, StateBits};
use whet::nn::Select;
use whet::optim::{Method, OptimConfig, Schedule};
use whet::train::unfreeze::Plan;
use whet::train::{Driver, DriverConfig, StopFlag, StopReason, Task};

fn optim() -> OptimConfig {
    // Weight decay, clipping and a cosine schedule: the step count, the norm and the moments
    // all have to come back exactly.
    OptimConfig::new(Method::ADAMW, 3e-3)
        .weight_decay(1e-2)
        .clip(1.0)
        .schedule(Schedule::Cosine { total: 20, min_factor: 0.1 })
}

struct Run {
    params: std::collections::BTreeMap<String, Vec<u32>>,
    state: StateBits,
    summary: whet::train::RunSummary,
    seeds: Vec<u64>,
    batches: Vec<Vec<usize>>,
}

/// One driver run on a brand-new engine and task.
fn run(cfg: &DriverConfig, optim: OptimConfig, n_train: usize, stop: Option<(usize, i32)>) -> Run {
    let e = fresh_engine();
    let mut task = DigitsTask::new(&e, n_train, 7);
    let flag = StopFlag::new();
    if let Some((call, sig)) = stop {
        task.stop_at_call = Some((call, flag.clone(), sig));
    }
    let mut d = Driver::new(&e, cfg.clone(), optim).unwrap();
    let summary = d.run(&mut task, &flag).unwrap();
    Run {
        params: bits(&task.snapshot()),
        state: state_bits(&d.optimizer().state(task.params()).unwrap()),
        summary,
        seeds: task.calls.seeds.clone(),
        batches: task.calls.batches.clone(),
    }
}

fn config(dir: &std::path::Path, max_steps: u64) -> DriverConfig {
    let mut c = DriverConfig::new(dir);
    c.resume = whet::train::Resume::IfSame;
    c.epochs = 10;
    c.max_steps = Some(max_steps);
    c.batch_size = 16;
    c.seed = 11;
    c
}

#[test]
fn twenty_steps_equal_ten_plus_resume_plus_ten_mid_epoch() {
    let Some((_g, _)) = gpu("twenty_steps_equal_ten_plus_resume_plus_ten_mid_epoch") else { return };
    // 100 items in batches of 16: 7 steps per epoch (the last one 4 items), so step 10 is in
    // the middle of the second epoch.
    let a = tempfile::tempdir().unwrap();
    let straight = run(&config(a.path(), 20), optim(), 100, None);
    assert_eq!(straight.summary.steps, 20);
    assert_eq!(straight.summary.epochs, 2, "20 steps = 2 full epochs of 7 + 6 steps");
    assert_eq!(straight.batches[6].len(), 4, "the last partial batch is kept");

    let b = tempfile::tempdir().unwrap();
    let first = run(&config(b.path(), 10), optim(), 100, None);
    assert_eq!(first.summary.steps, 10);
    assert_ne!(first.params, straight.params, "ten steps differ from twenty");
    let second = run(&config(b.path(), 20), optim(), 100, None);
    assert_eq!(second.summary.resumed_from, Some(10));
    assert_eq!(second.summary.steps, 20);
    assert_eq!(second.batches.len(), 10, "the resumed run does only the missing 10 steps");
    // The resumed run sees the same items and dropout seeds as steps 11..20 of the straight run.
    assert_eq!(second.batches, straight.batches[10..].to_vec());
    assert_eq!(second.seeds, straight.seeds[10..].to_vec());
    assert_eq!(second.params, straight.params, "parameters bitwise equal");
    assert_eq!(second.state, straight.state, "optimizer step, join steps and moments bitwise equal");
    assert_eq!(second.state.0, 20);
    assert_eq!(second.state.2.len(), 4, "moments of all four parameters");
}

#[test]
fn grad_accum_resume_after_a_stop_requested_mid_accumulation() {
    let Some((_g, _)) = gpu("grad_accum_resume_after_a_stop_requested_mid_accumulation") else { return };
    // Steps of 3 micro-batches of 8 (24 items); 100 items: 5 steps per epoch, the last one a
    // single micro-batch of 4.
    let cfg = |dir: &std::path::Path, max: u64| {
        let mut c = config(dir, max);
        c.batch_size = 8;
        c.grad_accum = 3;
        c
    };
    let a = tempfile::tempdir().unwrap();
    let straight = run(&cfg(a.path(), 12), optim(), 100, None);
    assert_eq!(straight.summary.steps, 12);
    let sizes: Vec<usize> = straight.batches[..13].iter().map(|b| b.len()).collect();
    assert_eq!(sizes, [8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 4], "4 full steps then the 4 left");

    // Stop requested during the second micro-batch of step 7 (call 1+3*... : epoch 0 has 13
    // calls; step 6 = calls 13..15, step 7 = calls 16..18): the step still completes.
    let b = tempfile::tempdir().unwrap();
    let first = run(&cfg(b.path(), 12), optim(), 100, Some((17, 2)));
    assert_eq!(first.summary.stopped, StopReason::Interrupted { signal: 2 });
    assert_eq!(first.summary.steps, 7, "the step in progress finished, no further step");
    assert_eq!(first.batches.len(), 19, "all three micro-batches of step 7 ran");
    let second = run(&cfg(b.path(), 12), optim(), 100, None);
    assert_eq!(second.summary.resumed_from, Some(7));
    assert_eq!(second.summary.stopped, StopReason::Finished);
    assert_eq!(second.batches, straight.batches[19..].to_vec());
    assert_eq!(second.params, straight.params);
    assert_eq!(second.state, straight.state);
}

#[test]
fn gradual_unfreezing_resumes_exactly_across_the_epoch_boundary() {
    let Some((_g, _)) = gpu("gradual_unfreezing_resumes_exactly_across_the_epoch_boundary") else { return };
    // Epoch 0 trains fc2 only; epoch 1 adds fc1 (with a rejoin warm-up of its own).
    let cfg = |dir: &std::path::Path, max: u64| {
        let mut c = config(dir, max);
        c.plan = Plan::Gradual {
            head: Select::Prefix("fc2".into()),
            groups: vec![Select::Prefix("fc1".into())],
            every: 1,
        };
        c
    };
    let mut o = optim();
    o.rejoin_warmup = 3;
    let a = tempfile::tempdir().unwrap();
    let straight = run(&cfg(a.path(), 14), o.clone(), 100, None);
    assert_eq!(straight.summary.steps, 14);
    assert_eq!(straight.state.1.get("fc1.weight"), Some(&7), "fc1 joined at step 7");
    assert_eq!(straight.state.1.get("fc2.weight"), Some(&0));

    // Stop exactly at the epoch boundary (state saved with fc1 still frozen), then mid-epoch.
    let b = tempfile::tempdir().unwrap();
    let first = run(&cfg(b.path(), 7), o.clone(), 100, None);
    assert_eq!(first.state.2.len(), 2, "only fc2 has moments in epoch 0");
    let fresh = {
        let e = fresh_engine();
        bits(&DigitsTask::new(&e, 100, 7).snapshot())
    };
    assert_eq!(first.params["fc1.weight"], fresh["fc1.weight"], "frozen fc1 never moved");
    assert_ne!(first.params["fc2.weight"], fresh["fc2.weight"]);
    let second = run(&cfg(b.path(), 10), o.clone(), 100, None);
    assert_eq!(second.summary.resumed_from, Some(7));
    let third = run(&cfg(b.path(), 14), o, 100, None);
    assert_eq!(third.summary.resumed_from, Some(10));
    assert_eq!(third.params, straight.params);
    assert_eq!(third.state, straight.state);
}
