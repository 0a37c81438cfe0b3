//! Binding a checkpoint to a model: every tensor the model asks for is looked up, checked and
//! uploaded, and every problem is collected into ONE [`BindingReport`] (check F3): missing keys,
//! unexpected keys, "size mismatch for K: checkpoint S1, model S2", non-float dtypes, non-finite
//! values and tensors too large for a device binding. A model is only returned when the report
//! is clean; otherwise the whole report is the error.

use std::collections::HashSet;
use std::fmt;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::nn::{Init, Origin, Params, Pid, Slot};
use crate::tensor::{QuantType, Tensor};
use crate::weights::{TensorInfo, WeightDType, WeightSource};

/// Everything learned while binding a checkpoint to a model.
#[derive(Debug, Clone, Default)]
pub struct BindingReport {
    /// What was bound (a file or directory).
    pub source: String,
    /// The model kind.
    pub model: String,
    /// (model path, checkpoint key) pairs that loaded.
    pub mapped: Vec<(String, String)>,
    /// Model paths created fresh on purpose (new heads), with their initialiser.
    pub fresh: Vec<(String, String)>,
    /// Model paths with no checkpoint tensor, with the shape the model expects.
    pub missing: Vec<(String, Vec<usize>)>,
    /// Checkpoint keys the model does not use.
    pub unexpected: Vec<(String, Vec<usize>)>,
    /// (key, checkpoint shape, model shape).
    pub mismatched: Vec<(String, Vec<usize>, Vec<usize>)>,
    /// Keys whose dtype cannot be a float weight.
    pub bad_dtype: Vec<(String, WeightDType)>,
    /// Keys holding NaN or ±Inf values, with how many.
    pub nonfinite: Vec<(String, usize)>,
    /// Keys larger than one device binding (bytes, limit).
    pub too_big: Vec<(String, u64, u64)>,
    /// Checkpoint keys that are known extras and were skipped on purpose (e.g. BERT's
    /// `embeddings.position_ids`, BatchNorm's `num_batches_tracked`).
    pub ignored: Vec<String>,
    /// Read errors (a damaged tensor inside an otherwise valid file).
    pub errors: Vec<String>,
}

impl BindingReport {
    /// No problem of any kind.
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty()
            && self.unexpected.is_empty()
            && self.mismatched.is_empty()
            && self.bad_dtype.is_empty()
            && self.nonfinite.is_empty()
            && self.too_big.is_empty()
            && self.errors.is_empty()
    }

    /// Number of problems.
    pub fn problems(&self) -> usize {
        self.missing.len()
            + self.unexpected.len()
            + self.mismatched.len()
            + self.bad_dtype.len()
            + self.nonfinite.len()
            + self.too_big.len()
            + self.errors.len()
    }
}

impl fmt::Display for BindingReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict =
            if self.is_clean() { "OK".to_string() } else { format!("{} problem(s)", self.problems()) };
        writeln!(f, "binding {} to {}: {verdict}", self.source, self.model)?;
        writeln!(
            f,
            "  mapped {}, fresh {}, ignored {}",
            self.mapped.len(),
            self.fresh.len(),
            self.ignored.len()
        )?;
        for (k, init) in &self.fresh {
            writeln!(f, "  fresh: {k} ({init})")?;
        }
        for (k, s) in &self.missing {
            writeln!(f, "  missing: {k} (model expects {s:?})")?;
        }
        for (k, s) in &self.unexpected {
            writeln!(f, "  unexpected: {k} {s:?}")?;
        }
        for (k, c, m) in &self.mismatched {
            writeln!(f, "  size mismatch for {k}: checkpoint {c:?}, model {m:?}")?;
        }
        for (k, d) in &self.bad_dtype {
            writeln!(f, "  dtype: {k} is {d:?}, not a float weight")?;
        }
        for (k, n) in &self.nonfinite {
            writeln!(f, "  non-finite: {k} holds {n} NaN/Inf value(s)")?;
        }
        for (k, b, l) in &self.too_big {
            writeln!(f, "  too big: {k} needs {b} bytes, one device binding holds at most {l}")?;
        }
        for e in &self.errors {
            writeln!(f, "  read error: {e}")?;
        }
        Ok(())
    }
}

/// How a model builder asks for one parameter (path, shape, initialiser when fresh): loaded
/// from the checkpoint or drawn from scratch, whichever the builder was given.
pub type ParamGetter<'g> = dyn FnMut(&mut Binder, &str, &[usize], Init) -> Result<Pid> + 'g;

/// Builds a model's [`Params`] from a checkpoint (or from scratch), recording a report.
pub struct Binder<'a> {
    engine: Engine,
    source: Option<&'a dyn WeightSource>,
    infos: Vec<TensorInfo>,
    /// Model-path prefixes the checkpoint may lack (`bert.` for a bare BertModel checkpoint
    /// bound to a classification model): tried after the exact key.
    strip_prefixes: Vec<String>,
    /// Key suffixes that are known extras (skipped, listed as ignored, not unexpected).
    ignore_suffixes: Vec<String>,
    used: HashSet<String>,
    params: Params,
    report: BindingReport,
    rng: ChaCha8Rng,
    /// Keep a checkpoint's GGML blocks on the device for 2-D weights (`model.quantize` other
    /// than "none"); the run expands the ones that train (`Params::expand_trainable`).
    keep_quantized: bool,
}

impl<'a> Binder<'a> {
    /// A binder reading from `source` (named `source_name` in the report) for a `model`.
    pub fn new(
        engine: &Engine,
        source: Option<&'a dyn WeightSource>,
        source_name: &str,
        model: &str,
    ) -> Self {
        let infos = source.map(|s| s.tensors()).unwrap_or_default();
        Binder {
            engine: engine.clone(),
            source,
            infos,
            strip_prefixes: Vec::new(),
            ignore_suffixes: Vec::new(),
            used: HashSet::new(),
            params: Params::new(),
            report: BindingReport {
                source: source_name.to_string(),
                model: model.to_string(),
                ..Default::default()
            },
            rng: ChaCha8Rng::seed_from_u64(0),
            keep_quantized: false,
        }
    }

    /// Keep block-quantized 2-D weights quantized instead of expanding them to f32.
    pub fn keep_quantized(mut self, on: bool) -> Self {
        self.keep_quantized = on;
        self
    }

    /// Also try each model path without `prefix` when the exact key is absent.
    pub fn strip_prefix(mut self, prefix: &str) -> Self {
        self.strip_prefixes.push(prefix.to_string());
        self
    }

    /// Skip checkpoint keys ending in `suffix` instead of reporting them as unexpected.
    pub fn ignore_suffix(mut self, suffix: &str) -> Self {
        self.ignore_suffixes.push(suffix.to_string());
        self
    }

    /// Seed of the initialisers of fresh tensors.
    pub fn seed(mut self, seed: u64) -> Self {
        self.rng = ChaCha8Rng::seed_from_u64(seed);
        self
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The checkpoint key that serves model path `path`, if any.
    pub fn key_for(&self, path: &str) -> Option<&TensorInfo> {
        let exact = self.infos.iter().find(|i| i.name == path);
        exact.or_else(|| {
            self.strip_prefixes.iter().find_map(|p| {
                let k = path.strip_prefix(p.as_str())?;
                self.infos.iter().find(|i| i.name == k)
            })
        })
    }

    /// Whether the checkpoint has a tensor for `path` (for optional parts such as a pooler).
    pub fn has(&self, path: &str) -> bool {
        self.key_for(path).is_some()
    }

    /// Shape of the checkpoint tensor serving `path` (e.g. to read a classifier's width).
    pub fn shape_of(&self, path: &str) -> Option<Vec<usize>> {
        self.key_for(path).map(|i| i.shape.clone())
    }

    /// Mark a checkpoint key as consumed without loading it (e.g. a tied `lm_head.weight`).
    pub fn consume(&mut self, path: &str) {
        if let Some(k) = self.key_for(path).map(|i| i.name.clone()) {
            self.used.insert(k.clone());
            self.report.ignored.push(k);
        }
    }

    /// Leave a checkpoint key out on purpose: neither loaded nor written back by the export
    /// (a language-model head under a classifier's `score`).
    pub fn discard(&mut self, path: &str) {
        if let Some(k) = self.key_for(path).map(|i| i.name.clone()) {
            self.used.insert(k);
        }
    }

    /// A parameter loaded from the checkpoint (missing or damaged → recorded, and a one-element
    /// stand-in is registered so the rest of the model can still be checked).
    pub fn param(&mut self, path: &str, shape: &[usize]) -> Result<Pid> {
        self.load(path, shape, Slot::Param)
    }

    /// A buffer (running statistics) loaded from the checkpoint.
    pub fn buffer(&mut self, path: &str, shape: &[usize]) -> Result<Pid> {
        self.load(path, shape, Slot::Buffer)
    }

    /// A parameter or buffer from the checkpoint if present, else initialised by `init`
    /// (listed as fresh). For parts that pretrained checkpoints may or may not carry.
    pub fn param_or(&mut self, path: &str, shape: &[usize], init: Init) -> Result<Pid> {
        if self.source.is_some() && self.has(path) {
            self.load(path, shape, Slot::Param)
        } else {
            self.fresh(path, shape, init)
        }
    }

    /// A new parameter, never read from the checkpoint (a task head). If the checkpoint has a
    /// tensor under this path it is consumed (replaced on purpose, e.g. a 1000-class head).
    pub fn fresh(&mut self, path: &str, shape: &[usize], init: Init) -> Result<Pid> {
        self.fresh_slot(path, shape, init, Slot::Param)
    }

    /// A new buffer (running statistics of a model built from scratch).
    pub fn fresh_buffer(&mut self, path: &str, shape: &[usize], init: Init) -> Result<Pid> {
        self.fresh_slot(path, shape, init, Slot::Buffer)
    }

    fn fresh_slot(&mut self, path: &str, shape: &[usize], init: Init, slot: Slot) -> Result<Pid> {
        if let Some(k) = self.key_for(path).map(|i| i.name.clone()) {
            self.used.insert(k);
        }
        let n = shape.iter().product();
        let data = init.sample(n, &mut self.rng)?;
        let t = Tensor::from_slice(&self.engine, &data, shape)?;
        self.report.fresh.push((path.to_string(), format!("{init:?}")));
        self.params.push(path, t, slot, Origin::Fresh)
    }

    fn load(&mut self, path: &str, shape: &[usize], slot: Slot) -> Result<Pid> {
        // A problem entry only has to exist until `finish` returns the report as the error: one
        // element stands in (a full-size zero tensor could itself be too big to allocate).
        let placeholder = |b: &mut Self| -> Result<Pid> {
            let t = Tensor::zeros(&b.engine, &[1])?;
            b.params.push(path, t, slot, Origin::Checkpoint)
        };
        let Some(info) = self.key_for(path).cloned() else {
            self.report.missing.push((path.to_string(), shape.to_vec()));
            return placeholder(self);
        };
        self.used.insert(info.name.clone());
        if info.shape != shape {
            self.report.mismatched.push((info.name.clone(), info.shape.clone(), shape.to_vec()));
            return placeholder(self);
        }
        // Integer and boolean tensors are ids, masks or counters, never weights; every float and
        // quantised type dequantises to f32.
        if matches!(
            info.dtype,
            WeightDType::I64
                | WeightDType::I32
                | WeightDType::I16
                | WeightDType::I8
                | WeightDType::U8
                | WeightDType::Bool
        ) {
            self.report.bad_dtype.push((info.name.clone(), info.dtype));
            return placeholder(self);
        }
        let quant = QuantType::of(info.dtype)
            .filter(|q| self.keep_quantized && shape.len() == 2 && shape[1].is_multiple_of(q.block_elems()));
        let n = shape.iter().product::<usize>();
        let bytes = quant.map_or(n as u64 * 4, |q| q.device_bytes(n));
        let limit = self.engine.limits().max_storage_buffer_binding_size;
        if bytes > limit {
            self.report.too_big.push((info.name.clone(), bytes, limit));
            return placeholder(self);
        }
        let source = self.source.expect("a key was found, so there is a source");
        if let Some(q) = quant {
            return self.load_blocks(source, path, &info.name, q, shape, slot);
        }
        let data = match source.read_f32(&info.name) {
            Ok((d, _)) => d,
            Err(e) => {
                self.report.errors.push(format!("{}: {e}", info.name));
                return placeholder(self);
            }
        };
        let bad = data.iter().filter(|v| !v.is_finite()).count();
        if bad > 0 {
            self.report.nonfinite.push((info.name.clone(), bad));
        }
        let t = Tensor::from_slice(&self.engine, &data, shape)?;
        self.report.mapped.push((path.to_string(), info.name.clone()));
        self.params.push(path, t, slot, Origin::Checkpoint)
    }

    /// `path` from the checkpoint's blocks, kept quantized (scales are checked for finiteness:
    /// a NaN scale poisons its whole block).
    fn load_blocks(
        &mut self,
        source: &dyn WeightSource,
        path: &str,
        key: &str,
        qt: QuantType,
        shape: &[usize],
        slot: Slot,
    ) -> Result<Pid> {
        let blocks = match source.read_blocks(key) {
            Ok(Some(b)) => b,
            Ok(None) => {
                self.report
                    .errors
                    .push(format!("{key}: the source gave no blocks for a {} tensor", qt.name()));
                return self.params.push(path, Tensor::zeros(&self.engine, &[1])?, slot, Origin::Checkpoint);
            }
            Err(e) => {
                self.report.errors.push(format!("{key}: {e}"));
                return self.params.push(path, Tensor::zeros(&self.engine, &[1])?, slot, Origin::Checkpoint);
            }
        };
        let bad = blocks
            .bytes
            .chunks_exact(qt.file_block_bytes())
            .filter(|b| !half::f16::from_le_bytes([b[0], b[1]]).is_finite())
            .count();
        if bad > 0 {
            self.report.nonfinite.push((key.to_string(), bad));
        }
        let t = Tensor::from_quantized(&self.engine, qt, &blocks.bytes, shape)?;
        self.report.mapped.push((path.to_string(), key.to_string()));
        self.params.push(path, t, slot, Origin::Checkpoint)
    }

    /// The bound parameters, or the whole report as the error when anything is wrong.
    pub fn finish(self) -> Result<(Params, BindingReport)> {
        let (params, report) = self.finish_report();
        if report.is_clean() {
            Ok((params, report))
        } else {
            Err(Error::Binding(Box::new(report)))
        }
    }

    /// The parameters and report without judging it (`whet inspect --model`).
    pub fn finish_report(mut self) -> (Params, BindingReport) {
        for info in &self.infos {
            if self.used.contains(&info.name) {
                continue;
            }
            if self.ignore_suffixes.iter().any(|s| info.name.ends_with(s.as_str())) {
                self.report.ignored.push(info.name.clone());
            } else {
                self.report.unexpected.push((info.name.clone(), info.shape.clone()));
            }
        }
        (self.params, self.report)
    }
}
