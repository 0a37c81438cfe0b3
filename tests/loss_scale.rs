//! Dynamic loss scaling (`train::loss_scale`) on the digits MLP: in f32 with powers of two it
//! takes exactly the steps of an unscaled run; an overflowing scale skips its step, backs off and
//! never ends the run; and the scale resumes with the checkpoint, bit for bit.

mod driver_common;

use driver_common::{bits, fresh_engine, gpu, state_bits, DigitsTask, StateBits};
use whet::optim::{Method, OptimConfig};
use whet::train::checkpoint;
use whet::train::loss_scale::LossScaleConfig;
use whet::train::{Driver, DriverConfig, StopFlag, Task};

fn optim(clip: bool) -> OptimConfig {
    let o = OptimConfig::new(Method::ADAMW, 3e-3).weight_decay(1e-2);
    if clip {
        o.clip(1.0)
    } else {
        o
    }
}

fn config(dir: &std::path::Path, max_steps: u64, scale: Option<LossScaleConfig>) -> DriverConfig {
    let mut c = DriverConfig::new(dir);
    c.resume = whet::train::Resume::IfSame;
    c.epochs = 10;
    c.max_steps = Some(max_steps);
    c.batch_size = 16;
    c.seed = 5;
    c.loss_scale = scale;
    c
}

struct Run {
    params: std::collections::BTreeMap<String, Vec<u32>>,
    state: StateBits,
    summary: whet::train::RunSummary,
    rows: Vec<serde_json::Value>,
}

fn run(cfg: &DriverConfig, clip: bool) -> Run {
    run_with(cfg, clip, 1.0)
}

fn run_with(cfg: &DriverConfig, clip: bool, loss_factor: f32) -> Run {
    let e = fresh_engine();
    let mut task = DigitsTask::new(&e, 96, 3);
    task.loss_factor = loss_factor;
    let mut d = Driver::new(&e, cfg.clone(), optim(clip)).unwrap();
    let summary = d.run(&mut task, &StopFlag::new()).unwrap();
    let log = std::fs::read_to_string(cfg.out_dir.join("log.jsonl")).unwrap();
    Run {
        params: bits(&task.snapshot()),
        state: state_bits(&d.optimizer().state(task.params()).unwrap()),
        summary,
        rows: log.lines().map(|l| serde_json::from_str(l).unwrap()).collect(),
    }
}

fn column(rows: &[serde_json::Value], key: &str) -> Vec<Option<f64>> {
    rows.iter().map(|r| r[key].as_f64()).collect()
}

#[test]
fn power_of_two_scaling_takes_the_unscaled_steps_bit_for_bit() {
    let Some((_g, _)) = gpu("power_of_two_scaling_takes_the_unscaled_steps_bit_for_bit") else { return };
    // A growth every 3 steps: the scale moves during the run (2^10 .. 2^13), and with clipping
    // and without it every step must still be the unscaled one.
    let scale = LossScaleConfig { init: 1024.0, growth_interval: 3, ..LossScaleConfig::default() };
    for clip in [true, false] {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let plain = run(&config(a.path(), 10, None), clip);
        let scaled = run(&config(b.path(), 10, Some(scale)), clip);
        assert_eq!(scaled.summary.steps, 10);
        assert_eq!(scaled.summary.skipped_steps, 0);
        assert_eq!(scaled.params, plain.params, "clip {clip}: parameters bitwise equal");
        assert_eq!(scaled.state, plain.state, "clip {clip}: optimizer moments bitwise equal");
        assert_eq!(column(&scaled.rows, "loss"), column(&plain.rows, "loss"));
        assert_eq!(column(&scaled.rows, "grad_norm"), column(&plain.rows, "grad_norm"), "unscaled norms");
        let scales = column(&scaled.rows, "loss_scale");
        assert_eq!(scales[0], Some(1024.0));
        assert_eq!(scales[3], Some(2048.0), "grown after 3 good steps");
        assert_eq!(scales[9], Some(8192.0));
        assert!(column(&plain.rows, "loss_scale").iter().all(Option::is_none), "unscaled rows carry none");
    }
}

#[test]
fn an_overflowing_scale_skips_its_steps_and_backs_off_without_ending_the_run() {
    let Some((_g, _)) = gpu("an_overflowing_scale_skips_its_steps_and_backs_off") else { return };
    let dir = tempfile::tempdir().unwrap();
    // A loss of 64 × the cross-entropy at a scale of f32::MAX overflows the gradients for
    // certain (the loss's own gradient is 64 × f32::MAX); with max_bad_steps = 1 a single
    // overflow counted as a bad step would end the run.
    let scale = LossScaleConfig { init: f32::MAX, growth_interval: 0, ..LossScaleConfig::default() };
    let mut cfg = config(dir.path(), 6, Some(scale));
    cfg.max_bad_steps = 1;
    let r = run_with(&cfg, true, 64.0);
    assert_eq!(r.summary.steps, 6, "six steps taken after the skipped ones");
    let skipped = r.summary.skipped_steps as usize;
    assert!(skipped >= 6, "at least f32::MAX / 64 is needed: {skipped} overflows");
    assert_eq!(r.rows.len(), 6 + skipped);
    let scales = column(&r.rows, "loss_scale");
    for (i, row) in r.rows.iter().enumerate() {
        let want = f32::MAX as f64 * 0.5f64.powi(i.min(skipped) as i32);
        assert_eq!(scales[i], Some(want as f32 as f64), "row {i}: halved once per overflow");
        let was_skipped = row["skipped_items"].as_array().is_some_and(|v| !v.is_empty());
        assert_eq!(was_skipped, i < skipped, "row {i}");
        // The logged loss is the true one even when the scaled loss overflowed.
        assert!(row["loss"].as_f64().is_some_and(f64::is_finite), "row {i}: {row}");
    }
    let ck = checkpoint::load_latest(dir.path()).unwrap().unwrap();
    let ls = ck.state.loss_scale.expect("the scale is in the checkpoint");
    assert_eq!(ls.overflows, skipped as u64);
    assert_eq!(ls.scale, (f32::MAX as f64 * 0.5f64.powi(skipped as i32)) as f32);
}

#[test]
fn a_resumed_run_continues_with_the_saved_scale() {
    let Some((_g, _)) = gpu("a_resumed_run_continues_with_the_saved_scale") else { return };
    let scale = LossScaleConfig { init: 256.0, growth_interval: 4, ..LossScaleConfig::default() };
    let a = tempfile::tempdir().unwrap();
    let straight = run(&config(a.path(), 12, Some(scale)), true);
    let b = tempfile::tempdir().unwrap();
    let first = run(&config(b.path(), 6, Some(scale)), true);
    let saved = checkpoint::load_latest(b.path()).unwrap().unwrap().state.loss_scale.unwrap();
    assert_eq!((saved.scale, saved.good_steps), (512.0, 2), "one growth after 4 steps, 2 since");
    let second = run(&config(b.path(), 12, Some(scale)), true);
    assert_eq!(second.summary.resumed_from, Some(6));
    assert_ne!(first.params, straight.params);
    assert_eq!(second.params, straight.params, "parameters bitwise equal");
    assert_eq!(second.state, straight.state, "moments bitwise equal");
    assert_eq!(column(&second.rows, "loss_scale"), column(&straight.rows, "loss_scale"));
    let end = checkpoint::load_latest(b.path()).unwrap().unwrap().state.loss_scale.unwrap();
    assert_eq!(end, checkpoint::load_latest(a.path()).unwrap().unwrap().state.loss_scale.unwrap());
}
