//! Batches that do not fit one dispatch: the driver runs them as micro-batches with
//! accumulation, says so once, and ends with the parameters an explicit `grad_accum` gives,
//! bit for bit; with batch norm too, since the failed first attempt's running-statistics
//! update is rolled back. With splitting off, the error names the largest batch that fits.
//!
//! The binding limit is lowered to 8 KiB (`EngineOptions::max_binding_bytes`) so a small conv
//! net on the 8x8 digits reaches it: its second conv's output is 4 KiB per image. Both runs
//! of a comparison use the same limit, so the only difference is who splits the batch.

mod common;

use std::sync::{Arc, Mutex, Once, OnceLock};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use whet::data::digits::Digits;
use whet::nn::{Mode, Origin, Params, Pid, Slot};
use whet::ops::batch_norm::{batch_norm, BatchNorm};
use whet::ops::conv::{conv2d, Conv2d, Padding};
use whet::ops::loss::{cross_entropy, CrossEntropy};
use whet::ops::pool::adaptive_avg_pool2d;
use whet::optim::{Method, OptimConfig};
use whet::train::{Driver, DriverConfig, Metrics, RunSummary, StopFlag, Task};
use whet::{Engine, EngineOptions, Error, Tensor};

const FILE: &str = "micro_batch";
const CAP: u64 = 8 << 10;

fn digits() -> Arc<Digits> {
    static D: OnceLock<Arc<Digits>> = OnceLock::new();
    D.get_or_init(|| {
        let p = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/digits.csv.gz");
        Arc::new(Digits::load(p).expect("assets/digits.csv.gz (make assets)"))
    })
    .clone()
}

/// conv 1->2 (3x3) [-> batch norm] -> GELU -> conv 2->16 (3x3) -> GELU -> dropout -> global
/// average pool -> linear 16->10, on the digits as 1x8x8 images. No batch norm after the
/// second conv: its output is what does not fit, so the first conv and the batch norm run
/// (and update the running statistics) before a batch of 8 fails.
struct ConvTask {
    engine: Engine,
    params: Params,
    ids: Vec<Pid>,
    bn: bool,
    data: Arc<Digits>,
    /// Items of every `loss` call and its dropout seed.
    calls: Vec<(Vec<usize>, u64)>,
}

impl ConvTask {
    fn new(engine: &Engine, bn: bool) -> ConvTask {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut params = Params::new();
        let mut ids = Vec::new();
        let mut push = |p: &mut Params, path: &str, shape: &[usize], fan_in: usize, slot: Slot| {
            let n: usize = shape.iter().product();
            let bound = 1.0 / (fan_in as f32).sqrt();
            let v: Vec<f32> = match (path, slot) {
                (_, Slot::Buffer) if path.ends_with("var") => vec![1.0; n],
                (_, Slot::Buffer) => vec![0.0; n],
                ("bn.weight", _) => vec![1.0; n],
                _ => (0..n).map(|_| rng.random_range(-bound..bound)).collect(),
            };
            let t = Tensor::from_slice(engine, &v, shape).unwrap().requires_grad_(slot == Slot::Param);
            ids.push(p.push(path, t, slot, Origin::Fresh).unwrap());
        };
        push(&mut params, "c1.weight", &[2, 1, 3, 3], 9, Slot::Param);
        push(&mut params, "c1.bias", &[2], 9, Slot::Param);
        if bn {
            push(&mut params, "bn.weight", &[2], 1, Slot::Param);
            push(&mut params, "bn.bias", &[2], 1, Slot::Param);
            push(&mut params, "bn.running_mean", &[2], 1, Slot::Buffer);
            push(&mut params, "bn.running_var", &[2], 1, Slot::Buffer);
        }
        push(&mut params, "c2.weight", &[16, 2, 3, 3], 18, Slot::Param);
        push(&mut params, "c2.bias", &[16], 18, Slot::Param);
        push(&mut params, "fc.weight", &[16, 10], 16, Slot::Param);
        push(&mut params, "fc.bias", &[10], 16, Slot::Param);
        ConvTask { engine: engine.clone(), params, ids, bn, data: digits(), calls: Vec::new() }
    }

    fn get(&self, path: &str) -> &Tensor {
        self.params.by_path(path).unwrap()
    }

    fn forward(&self, rows: &[usize], mode: Mode) -> whet::Result<(Tensor, Vec<u32>)> {
        let f = Digits::FEATURES;
        let x: Vec<f32> = rows.iter().flat_map(|&r| self.data.pixels[r * f..(r + 1) * f].to_vec()).collect();
        let x = Tensor::from_slice(&self.engine, &x, &[rows.len(), 1, 8, 8])?;
        let same = Conv2d { padding: Padding::symmetric(1, 1), ..Default::default() };
        let mut h = conv2d(&x, self.get("c1.weight"), Some(self.get("c1.bias")), &same)?;
        if self.bn {
            let cfg = BatchNorm { training: mode.train, momentum: 0.1, eps: 1e-5 };
            let (w, b) = (self.get("bn.weight"), self.get("bn.bias"));
            h = batch_norm(&h, w, b, self.get("bn.running_mean"), self.get("bn.running_var"), &cfg)?;
        }
        let h = conv2d(&h.gelu()?, self.get("c2.weight"), Some(self.get("c2.bias")), &same)?.gelu()?;
        let h = mode.dropout_in(&h, 0.1, 0, false)?;
        let h = adaptive_avg_pool2d(&h, (1, 1))?.reshape(&[rows.len(), 16])?;
        let logits = h.matmul(self.get("fc.weight"))?.add(self.get("fc.bias"))?;
        Ok((logits, rows.iter().map(|&r| self.data.labels[r]).collect()))
    }

    fn bits(&self) -> Vec<(String, Vec<u32>)> {
        let p = &self.params;
        self.ids
            .iter()
            .map(|&id| {
                let e = p.entry(id);
                (e.path.clone(), e.tensor.to_vec().unwrap().iter().map(|v| v.to_bits()).collect())
            })
            .collect()
    }
}

impl Task for ConvTask {
    fn params(&self) -> &Params {
        &self.params
    }
    fn params_mut(&mut self) -> &mut Params {
        &mut self.params
    }
    fn train_len(&self) -> usize {
        64
    }
    fn loss(&mut self, items: &[usize], mode: Mode) -> whet::Result<Tensor> {
        self.calls.push((items.to_vec(), mode.seed));
        let (logits, y) = self.forward(items, mode)?;
        cross_entropy(&logits, &y, CrossEntropy::default())
    }
    /// Validation loss over 40 held-out digits, one at a time (a batch would not fit either).
    fn evaluate(&mut self) -> whet::Result<Metrics> {
        let mut total = 0.0;
        for r in 1500..1540 {
            let (logits, y) = self.forward(&[r], Mode::EVAL)?;
            total += cross_entropy(&logits, &y, CrossEntropy::default())?.item()? as f64;
        }
        Ok(Metrics::from([("loss".to_string(), total / 40.0)]))
    }
}

/// Warnings logged on each thread (the tests of this file run in parallel).
struct Capture(Mutex<Vec<(std::thread::ThreadId, String)>>);

impl log::Log for Capture {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::Level::Warn
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            let line = r.args().to_string();
            self.0.lock().unwrap().push((std::thread::current().id(), line));
        }
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

fn warnings_here() -> Vec<String> {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        if log::set_logger(&CAPTURE).is_ok() {
            log::set_max_level(log::LevelFilter::Warn);
        }
    });
    let me = std::thread::current().id();
    CAPTURE.0.lock().unwrap().iter().filter(|(t, _)| *t == me).map(|(_, l)| l.clone()).collect()
}

fn capped(test: &str) -> Option<Engine> {
    common::own_engine(FILE, test, EngineOptions { max_binding_bytes: Some(CAP), ..Default::default() })
}

fn run(e: &Engine, task: &mut ConvTask, batch: usize, accum: usize, split: bool) -> whet::Result<RunSummary> {
    let dir = tempfile::tempdir().unwrap();
    let mut c = DriverConfig::new(dir.path());
    c.batch_size = batch;
    c.grad_accum = accum;
    c.max_steps = Some(4);
    c.seed = 5;
    c.split_batches = split;
    Driver::new(e, c, OptimConfig::new(Method::ADAMW, 1e-2))?.run(task, &StopFlag::new())
}

/// Batch 8 split by the driver vs the same micro-batches as explicit `grad_accum`.
fn split_equals_accumulation(test: &str, bn: bool) {
    warnings_here();
    let Some(e) = capped(test) else { return };
    let mut split = ConvTask::new(&e, bn);
    let summary = run(&e, &mut split, 8, 1, true).unwrap();
    assert_eq!(summary.steps, 4);
    // The first attempt took all 8 items and failed before any GPU work; every later call is
    // a micro-batch of the size that fits.
    let (first, later) = split.calls.split_first().unwrap();
    assert_eq!(first.0.len(), 8);
    let k = later[0].0.len();
    assert!(k < 8 && 8 % k == 0, "micro-batch of {k}");
    assert!(later.iter().all(|(items, _)| items.len() == k), "{:?}", split.calls);
    assert_eq!(later.len(), 4 * 8 / k);
    assert_eq!(summary.micro_batch, Some(k));
    let notices: Vec<String> = warnings_here().into_iter().filter(|l| l.contains("does not fit")).collect();
    assert_eq!(notices.len(), 1, "{notices:?}");
    let want = format!("running it as {} micro-batches of {k} with accumulation", 8 / k);
    assert!(notices[0].starts_with("batch 8 does not fit one dispatch") && notices[0].contains(&want));
    assert!(notices[0].contains("conv") && notices[0].contains("8192 bytes"), "{}", notices[0]);

    let Some(e2) = capped(test) else { return };
    let mut explicit = ConvTask::new(&e2, bn);
    assert_eq!(run(&e2, &mut explicit, k, 8 / k, true).unwrap().micro_batch, None);
    assert_eq!(explicit.calls, later, "items or dropout seeds differ");
    assert_eq!(split.bits(), explicit.bits(), "parameters differ from explicit accumulation");
}

#[test]
fn a_batch_too_big_for_one_dispatch_trains_as_explicit_accumulation_would() {
    split_equals_accumulation(
        "a_batch_too_big_for_one_dispatch_trains_as_explicit_accumulation_would",
        false,
    );
}

#[test]
fn with_batch_norm_the_failed_attempt_leaves_no_running_statistics_behind() {
    split_equals_accumulation("with_batch_norm_the_failed_attempt_leaves_no_running_statistics_behind", true);
}

#[test]
fn with_splitting_off_the_error_names_the_largest_batch_that_fits() {
    let Some(e) = capped("with_splitting_off_the_error_names_the_largest_batch_that_fits") else { return };
    let mut task = ConvTask::new(&e, false);
    match run(&e, &mut task, 8, 1, false) {
        Err(err @ Error::BatchTooBig { batch: 8, fits: Some(_), .. }) => {
            let Error::BatchTooBig { fits: Some(k), source, .. } = &err else { unreachable!() };
            assert!(matches!(**source, Error::BufferTooBig { limit: CAP, .. }), "{source}");
            let msg = err.to_string();
            assert!(msg.contains(&format!("batch_size = {k} and grad_accum = {}", 8 / k)), "{msg}");
        }
        other => panic!("expected BatchTooBig with a size that fits, got {other:?}"),
    }
}
