//! Checks G1–G4, device faults: an allocation past the binding limit names the op, shape,
//! bytes and limit before any GPU call; running out of memory is a different error and the
//! engine recovers; a lost device fails every later call at once and a training run keeps its
//! last good checkpoint; a wait past its timeout is a timeout and the work still finishes.
//!
//! lavapipe's allocations never fail (it overcommits: 26 GB of buffers open on a 23 GB
//! machine), so the out-of-memory path is reached through the engine's own memory cap; wgpu's
//! own out-of-memory error on buffer creation goes through the same error type and retry but
//! needs a real GPU to happen.

mod common;
mod driver_common;

use std::time::Duration;

use driver_common::DigitsTask;
use whet::engine::shaders;
use whet::engine::Kernel;
use whet::nn::{Mode, Params};
use whet::optim::{Method, OptimConfig};
use whet::train::{checkpoint, Driver, DriverConfig, Metrics, StopFlag, Task};
use whet::{Engine, EngineOptions, Error, Tensor};

const FILE: &str = "device_faults";

fn engine(test: &str, options: EngineOptions) -> Option<Engine> {
    common::own_engine(FILE, test, options)
}

fn lost<T: std::fmt::Debug>(what: &str, r: whet::Result<T>) {
    match r {
        Err(Error::DeviceLost(msg)) => assert!(msg.contains("destroyed"), "{what}: {msg}"),
        other => panic!("{what}: expected DeviceLost, got {other:?}"),
    }
}

#[test]
fn a_lost_device_fails_every_later_call_at_once() {
    let Some(e) = engine("a_lost_device_fails_every_later_call_at_once", EngineOptions::default()) else {
        return;
    };
    let a = Tensor::from_slice(&e, &[1.0, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
    let pending = a.matmul(&a).unwrap();
    e.simulate_device_loss();
    assert!(e.is_lost());
    // Work recorded before the loss, new work, uploads, readbacks, waits, compiles: all fail
    // with the typed error, none waits or panics.
    lost("readback of pending work", pending.to_vec());
    lost("sync", e.sync());
    lost("flush", e.flush());
    lost("op on live tensors", a.matmul(&a));
    lost("elementwise op", a.add(&a));
    lost("allocation", Tensor::zeros(&e, &[3]));
    lost("upload", Tensor::from_slice(&e, &[1.0], &[1]));
    lost("readback of an old tensor", a.to_vec());
    let fill = Kernel::new(&shaders::FILL, shaders::FILL.specs[0].entry);
    lost("pipeline compile", e.precompile(&fill, &[false]));
    drop((a, pending, e));
    // The loss belongs to that engine: a new one works.
    let Some(fresh) = engine("a_lost_device_fails_every_later_call_at_once", EngineOptions::default()) else {
        return;
    };
    assert_eq!(Tensor::ones(&fresh, &[3]).unwrap().to_vec().unwrap(), vec![1.0; 3]);
}

/// The digits task, whose device is destroyed after the forward of its `at`-th `loss` call,
/// so the backward of that step meets the loss.
struct LosesDevice {
    inner: DigitsTask,
    engine: Engine,
    calls: usize,
    at: usize,
}

impl Task for LosesDevice {
    fn params(&self) -> &Params {
        self.inner.params()
    }
    fn params_mut(&mut self) -> &mut Params {
        self.inner.params_mut()
    }
    fn train_len(&self) -> usize {
        self.inner.train_len()
    }
    fn loss(&mut self, items: &[usize], mode: Mode) -> whet::Result<Tensor> {
        let loss = self.inner.loss(items, mode)?;
        if self.calls == self.at {
            self.engine.simulate_device_loss();
        }
        self.calls += 1;
        Ok(loss)
    }
    fn evaluate(&mut self) -> whet::Result<Metrics> {
        self.inner.evaluate()
    }
}

fn config(dir: &std::path::Path, steps: u64) -> DriverConfig {
    let mut c = DriverConfig::new(dir);
    c.batch_size = 16;
    c.max_steps = Some(steps);
    c.checkpoint_every = Some(1);
    c
}

fn adamw() -> OptimConfig {
    OptimConfig::new(Method::ADAMW, 1e-2)
}

#[test]
fn a_run_that_loses_its_device_keeps_its_last_good_checkpoint() {
    let test = "a_run_that_loses_its_device_keeps_its_last_good_checkpoint";
    let Some(e) = engine(test, EngineOptions::default()) else { return };
    let dir = tempfile::tempdir().unwrap();
    // Steps 1-4 run and are saved; the device is lost in the middle of step 5.
    let mut task = LosesDevice { inner: DigitsTask::new(&e, 320, 3), engine: e.clone(), calls: 0, at: 4 };
    let r = Driver::new(&e, config(dir.path(), 10), adamw()).unwrap().run(&mut task, &StopFlag::new());
    assert!(matches!(r, Err(Error::DeviceLost(_))), "expected DeviceLost, got {r:?}");
    let ck = checkpoint::load_latest(dir.path()).unwrap().expect("a checkpoint survives");
    assert_eq!(ck.step, 4);

    // It holds exactly what 4 steps give on a healthy device.
    let Some(e2) = engine(test, EngineOptions::default()) else { return };
    let straight = tempfile::tempdir().unwrap();
    let mut task2 = DigitsTask::new(&e2, 320, 3);
    Driver::new(&e2, config(straight.path(), 4), adamw()).unwrap().run(&mut task2, &StopFlag::new()).unwrap();
    let want = driver_common::bits(&task2.snapshot());
    let got: std::collections::BTreeMap<String, Vec<u32>> = ck
        .params
        .iter()
        .map(|(path, _, v)| (path.clone(), v.iter().map(|x| x.to_bits()).collect()))
        .collect();
    assert_eq!(got, want, "the kept checkpoint differs from 4 healthy steps");
}

#[test]
fn past_the_binding_limit_is_refused_naming_op_shape_bytes_and_limit() {
    let test = "past_the_binding_limit_is_refused_naming_op_shape_bytes_and_limit";
    let options = EngineOptions { max_binding_bytes: Some(64 << 10), ..Default::default() };
    let Some(e) = engine(test, options) else { return };
    assert_eq!(e.limits().max_storage_buffer_binding_size, 64 << 10);
    // Both inputs fit (16 and 8 KiB); their product (128 KiB) does not.
    let x = Tensor::full(&e, &[256, 16], 0.5).unwrap();
    let w = Tensor::full(&e, &[16, 128], 0.25).unwrap();
    let before = e.stats().buffers_created;
    match x.matmul(&w) {
        Err(err @ Error::BufferTooBig { .. }) => {
            let msg = err.to_string();
            for part in ["matmul", "f32 [256, 128]", "131072 bytes", "65536 bytes", "max_binding_bytes"] {
                assert!(msg.contains(part), "'{part}' missing from: {msg}");
            }
        }
        other => panic!("expected BufferTooBig, got {other:?}"),
    }
    assert_eq!(e.stats().buffers_created, before, "a buffer was created for a refused tensor");
    // Nothing is poisoned: a product that fits is right.
    let y = x.matmul(&Tensor::full(&e, &[16, 8], 0.25).unwrap()).unwrap();
    assert_eq!(y.to_vec().unwrap(), vec![2.0; 256 * 8]);
    // A cap too small for an optimizer page is refused when the engine opens.
    let tiny = EngineOptions { max_binding_bytes: Some(100), ..Default::default() };
    assert!(matches!(Engine::new(tiny), Err(Error::InvalidArgument { op: "engine", .. })));
}

#[test]
fn out_of_memory_is_distinct_from_never_fits_and_the_engine_recovers() {
    let test = "out_of_memory_is_distinct_from_never_fits_and_the_engine_recovers";
    let options = EngineOptions {
        max_memory_bytes: Some(1 << 20),
        max_binding_bytes: Some(512 << 10),
        ..Default::default()
    };
    let Some(e) = engine(test, options) else { return };
    // Larger than a binding: never fits, whatever is freed.
    assert!(matches!(Tensor::zeros(&e, &[150_000]), Err(Error::BufferTooBig { .. })));
    // 256 KiB each: four fill the 1 MiB cap, the fifth does not fit now.
    let mut held: Vec<Tensor> = (0..4).map(|i| Tensor::full(&e, &[65_536], i as f32).unwrap()).collect();
    match Tensor::zeros(&e, &[65_536]) {
        Err(err @ Error::OutOfMemory { .. }) => {
            let Error::OutOfMemory { bytes, in_use, limit, .. } = &err else { unreachable!() };
            assert_eq!((*bytes, *in_use, *limit), (256 << 10, 1 << 20, Some(1 << 20)));
            let msg = err.to_string();
            assert!(msg.contains("[65536]") && msg.contains("max_memory_bytes"), "{msg}");
        }
        other => panic!("expected OutOfMemory, got {other:?}"),
    }
    // Free three: the same size comes from the pool, and a new size fits once the pool's
    // parked buffers are released (512 KiB in use + 384 KiB new).
    held.truncate(1);
    let again = Tensor::full(&e, &[65_536], 7.0).unwrap();
    let created = e.stats().buffers_created;
    let bigger = Tensor::full(&e, &[98_304], 9.0).unwrap();
    assert_eq!(e.stats().buffers_created, created + 1);
    assert_eq!(again.to_vec().unwrap(), vec![7.0; 65_536]);
    assert_eq!(bigger.to_vec().unwrap(), vec![9.0; 98_304]);
    assert_eq!(held[0].to_vec().unwrap(), vec![0.0; 65_536]);
}

#[test]
fn a_wait_past_its_timeout_is_a_timeout_and_the_work_still_finishes() {
    let test = "a_wait_past_its_timeout_is_a_timeout_and_the_work_still_finishes";
    let options = EngineOptions { timeout: Duration::ZERO, ..Default::default() };
    let Some(e) = engine(test, options) else { return };
    let x = Tensor::full(&e, &[256, 256], 0.5).unwrap();
    // A wait of zero gives up on any work still running; more work per try makes "still
    // running" certain without depending on how fast the adapter is.
    let mut timed_out = None;
    for round in 0..6 {
        let mut y = x.clone();
        for _ in 0..(4 << round) {
            y = x.matmul(&y.mul_scalar(1.0 / 128.0).unwrap()).unwrap();
        }
        match y.to_vec() {
            Err(Error::Timeout(d)) => {
                assert_eq!(d, Duration::ZERO);
                timed_out = Some(y);
                break;
            }
            Ok(_) => continue,
            Err(other) => panic!("expected Timeout, got {other}"),
        }
    }
    let y = timed_out.expect("no wait timed out, even with 128 chained 256x256 products pending");
    // The engine is usable and the work was not lost: with a real timeout the same readback
    // returns the right values, twice (the timed-out readback's staging buffer is not reused
    // while wgpu may still map it).
    e.set_timeout(Duration::from_secs(120));
    assert_eq!(e.timeout(), Duration::from_secs(120));
    // 0.5 · (256 · 0.5 / 128) = 0.5 at every link of the chain.
    assert_eq!(y.to_vec().unwrap(), vec![0.5; 256 * 256]);
    assert_eq!(y.to_vec().unwrap(), vec![0.5; 256 * 256]);
    e.sync().unwrap();
}
