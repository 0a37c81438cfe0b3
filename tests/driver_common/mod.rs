//! The toy task of the driver tests: a 64 → 32 → 10 GELU MLP with dropout on the real UCI
//! digits, plus hooks to poison items with NaN, request a stop from inside a step, and record
//! what the driver asked for.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use whet::data::digits::Digits;
use whet::nn::{Mode, Origin, Params, Pid, Slot};
use whet::ops::loss::{cross_entropy, CrossEntropy};
use whet::train::{Metrics, StopFlag, Task};
use whet::{Engine, Tensor};

/// Serialises the GPU tests of one binary; a fresh engine per call (the tests compare runs on
/// brand-new engines). `None`, loudly, without an adapter.
pub fn gpu(test: &str) -> Option<(MutexGuard<'static, ()>, Engine)> {
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    match Engine::try_default() {
        Some(e) => Some((guard, e)),
        None => {
            use std::io::Write;
            let _ =
                writeln!(std::io::stderr(), "!!!!!!!! {test}: NO GPU ADAPTER, GPU CHECKS SKIPPED !!!!!!!!");
            None
        }
    }
}

pub fn fresh_engine() -> Engine {
    Engine::try_default().expect("an adapter was found a moment ago")
}

fn digits() -> Arc<Digits> {
    static D: OnceLock<Arc<Digits>> = OnceLock::new();
    D.get_or_init(|| {
        let p = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/digits.csv.gz");
        Arc::new(Digits::load(p).expect("assets/digits.csv.gz (make assets)"))
    })
    .clone()
}

/// Everything the task was asked, for assertions.
#[derive(Default, Debug, Clone)]
pub struct Calls {
    /// Items of every `loss` call (one per micro-batch).
    pub batches: Vec<Vec<usize>>,
    pub seeds: Vec<u64>,
    /// (first global item, items) of every `loss` call: where its dropout masks are keyed.
    pub keys: Vec<(u64, u64)>,
    pub evaluations: usize,
}

pub struct DigitsTask {
    engine: Engine,
    params: Params,
    ids: [Pid; 4],
    data: Arc<Digits>,
    /// Training items are `train[i]`, validation `val`.
    train: Vec<usize>,
    val: Vec<usize>,
    pub dropout: f32,
    /// Training item ids whose inputs are NaN.
    pub nan_items: HashSet<usize>,
    /// Every `loss` call from this one on (0-based) gets NaN inputs.
    pub poison_from_call: Option<usize>,
    /// Request a stop (signal) during this `loss` call (0-based).
    pub stop_at_call: Option<(usize, StopFlag, i32)>,
    /// Scripted evaluation results, used in order instead of the real ones while they last.
    pub script: Vec<Metrics>,
    /// Multiplies the training loss (large gradients on demand).
    pub loss_factor: f32,
    pub calls: Calls,
}

impl DigitsTask {
    /// `n_train` training items and 200 validation items, weights from `seed`.
    pub fn new(engine: &Engine, n_train: usize, seed: u64) -> DigitsTask {
        let data = digits();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut params = Params::new();
        let mut lin = |p: &mut Params, name: &str, fan_in: usize, fan_out: usize| -> (Pid, Pid) {
            let bound = 1.0 / (fan_in as f32).sqrt();
            let w: Vec<f32> = (0..fan_in * fan_out).map(|_| rng.random_range(-bound..bound)).collect();
            let b: Vec<f32> = (0..fan_out).map(|_| rng.random_range(-bound..bound)).collect();
            let w = Tensor::param(engine, &w, &[fan_in, fan_out]).unwrap();
            let b = Tensor::param(engine, &b, &[fan_out]).unwrap();
            (
                p.push(&format!("{name}.weight"), w, Slot::Param, Origin::Fresh).unwrap(),
                p.push(&format!("{name}.bias"), b, Slot::Param, Origin::Fresh).unwrap(),
            )
        };
        let (w1, b1) = lin(&mut params, "fc1", Digits::FEATURES, 32);
        let (w2, b2) = lin(&mut params, "fc2", 32, Digits::CLASSES);
        params.set_depths(|p| if p.starts_with("fc1") { 0 } else { 1 });
        let val = (data.len() - 200..data.len()).collect();
        DigitsTask {
            engine: engine.clone(),
            params,
            ids: [w1, b1, w2, b2],
            train: (0..n_train).collect(),
            val,
            data,
            dropout: 0.1,
            nan_items: HashSet::new(),
            poison_from_call: None,
            stop_at_call: None,
            script: Vec::new(),
            loss_factor: 1.0,
            calls: Calls::default(),
        }
    }

    fn batch(&self, rows: &[usize], poison: &dyn Fn(usize) -> bool) -> (Tensor, Vec<u32>) {
        let f = Digits::FEATURES;
        let mut x = Vec::with_capacity(rows.len() * f);
        for &r in rows {
            if poison(r) {
                x.extend(std::iter::repeat_n(f32::NAN, f));
            } else {
                x.extend_from_slice(&self.data.pixels[r * f..(r + 1) * f]);
            }
        }
        let y = rows.iter().map(|&r| self.data.labels[r]).collect();
        (Tensor::from_slice(&self.engine, &x, &[rows.len(), f]).unwrap(), y)
    }

    fn forward(&self, x: &Tensor, mode: Mode) -> whet::Result<Tensor> {
        let p = &self.params;
        let [w1, b1, w2, b2] = self.ids;
        let h = x.matmul(p.get(w1))?.add(p.get(b1))?.gelu()?;
        let frozen = !p.get(w1).requires_grad();
        let h = mode.dropout_in(&h, self.dropout, 0, frozen)?;
        h.matmul(p.get(w2))?.add(p.get(b2))
    }

    /// Every tensor's values, by path.
    pub fn snapshot(&self) -> BTreeMap<String, Vec<f32>> {
        self.params.entries().iter().map(|e| (e.path.clone(), e.tensor.to_vec().unwrap())).collect()
    }
}

impl Task for DigitsTask {
    fn params(&self) -> &Params {
        &self.params
    }
    fn params_mut(&mut self) -> &mut Params {
        &mut self.params
    }
    fn train_len(&self) -> usize {
        self.train.len()
    }
    fn loss(&mut self, items: &[usize], mode: Mode) -> whet::Result<Tensor> {
        let call = self.calls.batches.len();
        self.calls.batches.push(items.to_vec());
        self.calls.seeds.push(mode.seed);
        self.calls.keys.push((mode.keys.first_item, mode.keys.items));
        if let Some((at, flag, sig)) = &self.stop_at_call {
            if *at == call {
                flag.request(*sig);
            }
        }
        let all = self.poison_from_call.is_some_and(|c| call >= c);
        let rows: Vec<usize> = items.iter().map(|&i| self.train[i]).collect();
        let nan = self.nan_items.clone();
        let train = self.train.clone();
        let (x, y) = self.batch(&rows, &|r| all || nan.iter().any(|&i| train[i] == r));
        let loss = cross_entropy(&self.forward(&x, mode)?, &y, CrossEntropy::default())?;
        if self.loss_factor == 1.0 {
            Ok(loss)
        } else {
            loss.mul_scalar(self.loss_factor)
        }
    }
    fn evaluate(&mut self) -> whet::Result<Metrics> {
        self.calls.evaluations += 1;
        if !self.script.is_empty() {
            return Ok(self.script.remove(0));
        }
        let (x, y) = self.batch(&self.val.clone(), &|_| false);
        let logits = self.forward(&x, Mode::EVAL)?;
        let loss = cross_entropy(&logits, &y, CrossEntropy::default())?.item()? as f64;
        let l = logits.to_vec()?;
        let correct = l
            .chunks(Digits::CLASSES)
            .zip(&y)
            .filter(|(row, &t)| {
                let arg = row.iter().enumerate().fold(0, |b, (i, v)| if *v > row[b] { i } else { b });
                arg as u32 == t
            })
            .count();
        Ok(BTreeMap::from([
            ("loss".to_string(), loss),
            ("accuracy".to_string(), correct as f64 / y.len() as f64),
        ]))
    }
}

/// Bit patterns of every tensor (NaN-safe exact comparison).
pub fn bits(m: &BTreeMap<String, Vec<f32>>) -> BTreeMap<String, Vec<u32>> {
    m.iter().map(|(k, v)| (k.clone(), v.iter().map(|x| x.to_bits()).collect())).collect()
}

/// An optimizer state as comparable bits: step, join steps, moments.
pub type StateBits = (u64, BTreeMap<String, u64>, BTreeMap<String, Vec<Vec<u32>>>);

pub fn state_bits(s: &whet::optim::OptimState) -> StateBits {
    (
        s.step,
        s.born.clone(),
        s.moments
            .iter()
            .map(|(k, v)| (k.clone(), v.iter().map(|x| x.iter().map(|f| f.to_bits()).collect()).collect()))
            .collect(),
    )
}
