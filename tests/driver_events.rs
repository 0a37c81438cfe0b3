//! The host's view of a run (issue 18, item 5): the driver's event callback and the cancel
//! handle, on the digits MLP of the driver tests.

mod driver_common;

use std::sync::{Arc, Mutex};

use driver_common::{gpu, DigitsTask};
use whet::optim::{Method, OptimConfig};
use whet::train::checkpoint;
use whet::train::{Driver, DriverConfig, Event, OnEvent, StopFlag, StopReason};

fn adamw() -> OptimConfig {
    OptimConfig::new(Method::ADAMW, 1e-2)
}

/// A callback that records every event, and what it recorded.
fn recorder() -> (OnEvent, Arc<Mutex<Vec<Event>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    (OnEvent::new(move |e| s.lock().unwrap().push(e.clone())), seen)
}

#[test]
fn every_step_evaluation_and_the_end_reach_the_callback() {
    let Some((_g, e)) = gpu("every_step_evaluation_and_the_end_reach_the_callback") else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut task = DigitsTask::new(&e, 160, 3);
    let (cb, seen) = recorder();
    let mut c = DriverConfig::new(dir.path());
    c.epochs = 2;
    c.batch_size = 32;
    c.eval_every = Some(3);
    c.on_event = Some(cb);
    let s = Driver::new(&e, c, adamw()).unwrap().run(&mut task, &StopFlag::new()).unwrap();
    assert_eq!(s.steps, 10, "160 items / 32 = 5 steps per epoch, 2 epochs");
    let seen = seen.lock().unwrap();

    let steps: Vec<_> = seen
        .iter()
        .filter_map(|e| match e {
            Event::Step(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(steps.iter().map(|s| s.step).collect::<Vec<_>>(), (1..=10).collect::<Vec<_>>());
    assert_eq!(steps.iter().map(|s| s.epoch).collect::<Vec<_>>(), [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]);
    for s in &steps {
        assert_eq!(s.total, 10);
        assert!(!s.skipped);
        let loss = s.loss.expect("a finite loss");
        assert!(loss.is_finite() && loss > 0.0, "{s:?}");
        assert!(s.grad_norm.is_some_and(f32::is_finite), "{s:?}");
        assert!(s.lr > 0.0, "{s:?}");
        assert!(s.eta_secs.is_some_and(|t| t >= 0.0), "{s:?}");
    }
    assert_eq!(steps.last().unwrap().eta_secs, Some(0.0), "nothing left after the last step");
    assert!(steps.windows(2).all(|w| w[0].elapsed_secs <= w[1].elapsed_secs));
    // The loss goes down over the run (first vs last three steps).
    let mean = |s: &[whet::train::StepEvent]| s.iter().map(|s| s.loss.unwrap()).sum::<f32>() / 3.0;
    assert!(mean(&steps[7..]) < mean(&steps[..3]), "{steps:?}");

    // Evaluations at steps 3, 6, 9 and at the end, each right after its step and matching
    // what the driver reports.
    let evals: Vec<(u64, f64)> = seen
        .iter()
        .filter_map(|e| match e {
            Event::Evaluated { step, metrics, .. } => Some((*step, metrics["loss"])),
            _ => None,
        })
        .collect();
    assert_eq!(evals.iter().map(|e| e.0).collect::<Vec<_>>(), [3, 6, 9, 10]);
    assert_eq!(task.calls.evaluations, 4);
    assert_eq!(evals.last().unwrap().1, s.last.as_ref().unwrap()["loss"]);
    for (i, e) in seen.iter().enumerate() {
        if let Event::Evaluated { step, .. } = e {
            assert!(
                matches!(&seen[i - 1], Event::Step(s) if s.step == *step),
                "{e:?} after {:?}",
                seen[i - 1]
            );
        }
    }
    assert_eq!(
        seen.last(),
        Some(&Event::Finished { steps: 10, epochs: 2, stopped: StopReason::Finished }),
        "the last event says the run is over"
    );
    assert_eq!(seen.iter().filter(|e| matches!(e, Event::Finished { .. })).count(), 1);
}

#[test]
fn cancelling_from_the_callback_stops_at_that_step_with_a_checkpoint() {
    let Some((_g, e)) = gpu("cancelling_from_the_callback_stops_at_that_step_with_a_checkpoint") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut task = DigitsTask::new(&e, 320, 3);
    let cancel = StopFlag::new();
    let handle = cancel.clone();
    let steps = Arc::new(Mutex::new(Vec::new()));
    let s2 = steps.clone();
    let mut c = DriverConfig::new(dir.path());
    c.batch_size = 32;
    // The host's "Cancel" button, pressed once the 4th step is reported; the handle goes to
    // another thread first, as a UI would hold it.
    c.on_event = Some(OnEvent::new(move |ev| {
        if let Event::Step(s) = ev {
            s2.lock().unwrap().push(s.step);
            if s.step == 4 {
                let h = handle.clone();
                std::thread::spawn(move || h.cancel()).join().unwrap();
            }
        }
    }));
    let s = Driver::new(&e, c, adamw()).unwrap().run(&mut task, &cancel).unwrap();
    assert_eq!(s.stopped, StopReason::Interrupted { signal: 0 });
    assert_eq!(s.steps, 4);
    assert_eq!(*steps.lock().unwrap(), [1, 2, 3, 4], "no step after the cancel");
    assert_eq!(task.calls.batches.len(), 4);
    let ck = checkpoint::load_latest(dir.path()).unwrap().expect("a checkpoint at the cancel");
    assert_eq!(ck.step, 4);
    assert_eq!(s.checkpoint.as_deref(), Some(ck.dir.as_path()));
    let snap = task.snapshot();
    for (path, _, vals) in &ck.params {
        assert_eq!(&snap[path], vals, "the checkpoint holds the weights after step 4");
    }
}

#[test]
fn a_checkpoint_of_other_loop_settings_is_a_run_mismatch_a_host_can_match() {
    let Some((_g, e)) = gpu("a_checkpoint_of_other_loop_settings_is_a_run_mismatch_a_host_can_match") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // The host claims the folder with its own description of the run (as `run::train` does),
    // which does not name the batch size: only the checkpoint knows it.
    let mut fp = whet::train::Fingerprint::new();
    fp.set("host.data", "digits");
    let run = |batch: usize| {
        let claim = whet::train::RunDir::claim(dir.path(), &fp, whet::train::Resume::IfSame).unwrap();
        let mut c = DriverConfig::new(dir.path());
        c.batch_size = batch;
        c.max_steps = Some(2);
        let mut task = DigitsTask::new(&e, 160, 3);
        Driver::new(&e, c, adamw()).unwrap().run_in(&claim, &mut task, &StopFlag::new())
    };
    assert_eq!(run(32).unwrap().steps, 2);
    match run(16) {
        Err(whet::Error::RunMismatch { dir: d, changes }) => {
            assert_eq!(d, dir.path().display().to_string());
            assert!(
                changes.len() == 1 && changes[0].contains("batch=32") && changes[0].contains("batch=16"),
                "{changes:?}"
            );
        }
        Err(other) => panic!("another error: {other}"),
        Ok(s) => panic!("resumed a checkpoint of batch 32 with batch 16: {s:?}"),
    }
}
