//! `whet plan RECIPE`: the device memory a run will take, before any is spent.
//!
//! The plan is measured, not modelled: the recipe's own run (data, model, head, freezing,
//! LoRA, quantization, checkpointing, optimizer, two steps of the largest trainable set and one
//! validation pass) runs on a dry engine ([`EngineOptions::dry_run`]), which counts every
//! buffer through the same pool and size classes as a real run and computes nothing. So every
//! model, task and option is covered by construction, and a new one needs no formula here.
//! It takes the host time of loading the model and data, not of training.
//!
//! The total is compared with the device's memory where it is known: the engine's cap
//! ([`EngineOptions::max_memory_bytes`], `WHET_MAX_MEMORY` or `--memory` in the CLI) or, on a
//! CPU adapter such as lavapipe, whose buffers are host memory, the host's available memory.
//! wgpu does not report a GPU's memory size, so on a GPU without a cap the plan has no limit
//! to check. When the run does not fit, the plan says what would make it fit, measuring the
//! changes it can (activation checkpointing, model.quantize) and scaling the rest.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::engine::{AdapterClass, Engine, EngineOptions};
use crate::error::{Error, Result};
use crate::train::driver::Driver;

use super::prepare::prepare;
use super::Recipe;

/// Where the memory limit a plan is checked against comes from.
#[derive(Debug, Clone, Serialize)]
pub struct Limit {
    pub bytes: u64,
    /// The memory cap (`EngineOptions::max_memory_bytes`) or the host's available memory (a CPU
    /// adapter).
    pub source: String,
}

/// A change to the recipe that would lower the peak, and the peak with it.
#[derive(Debug, Clone, Serialize)]
pub struct Suggestion {
    pub change: String,
    pub total: u64,
    /// Measured on a dry run of the changed recipe, or scaled from this plan's parts.
    pub measured: bool,
}

/// The device memory of one run of a recipe (see the module docs).
#[derive(Debug, Clone, Serialize)]
pub struct MemoryPlan {
    pub adapter: String,
    /// Items per optimizer step, and per micro-batch where a batch does not fit one binding.
    pub batch_size: usize,
    pub grad_accum: usize,
    pub micro_batch: Option<usize>,
    /// Tokens per sequence (text, corpus) or the image side (images).
    pub length: Option<usize>,
    pub activation_checkpointing: bool,
    /// `train.precision = "mixed"`: activations in f16.
    pub mixed_precision: bool,
    pub trainable_params: u64,
    /// The model's parameters and buffers by dtype (`f32`, `q4_1`, …), as stored.
    pub weights: BTreeMap<String, u64>,
    /// Everything else the run holds between steps: pool rounding, anchors (L2-SP, EWC), the
    /// optimizer's small tensors.
    pub other: u64,
    /// Gradients of the trainable parameters (with the accumulation scratch).
    pub gradients: u64,
    /// Optimizer moments (AdamW: two per parameter; SGD with momentum: one).
    pub optimizer_state: u64,
    /// The training step's peak above what is held between steps: activations saved for
    /// backward and the backward's temporaries.
    pub activations: u64,
    /// The validation pass's peak above what is held between steps.
    pub evaluation: u64,
    /// The run's peak: what is held plus the larger of the step's and the evaluation's.
    pub total: u64,
    pub limit: Option<Limit>,
    /// What would make it fit (empty when it fits or no limit is known).
    pub suggestions: Vec<Suggestion>,
}

/// What one dry run measured.
struct Measured {
    adapter: String,
    class: AdapterClass,
    micro_batch: Option<usize>,
    trainable_params: u64,
    weights: BTreeMap<String, u64>,
    held: u64,
    gradients: u64,
    optimizer_state: u64,
    step_peak: u64,
    eval_peak: u64,
    /// f32 bytes of frozen matrices that `model.quantize` could store in blocks.
    frozen_f32_matrices: u64,
}

impl Measured {
    fn total(&self) -> u64 {
        self.step_peak.max(self.eval_peak)
    }
}

/// The memory plan of `recipe` on the adapter `options` picks (see the module docs). The
/// engine's cap in `options` is the limit checked against, not one the dry run obeys.
pub fn plan(options: &EngineOptions, recipe: &Recipe) -> Result<MemoryPlan> {
    let m = measure(options, recipe)?;
    let limit = limit(options, m.class);
    let weights_sum: u64 = m.weights.values().sum();
    let total = m.total();
    let mut plan = MemoryPlan {
        adapter: m.adapter.clone(),
        batch_size: recipe.train.batch_size,
        grad_accum: recipe.train.grad_accum,
        micro_batch: m.micro_batch,
        length: length(recipe),
        activation_checkpointing: recipe.train.activation_checkpointing,
        mixed_precision: recipe.train.precision == "mixed",
        trainable_params: m.trainable_params,
        other: m.held.saturating_sub(weights_sum + m.gradients + m.optimizer_state),
        weights: m.weights.clone(),
        gradients: m.gradients,
        optimizer_state: m.optimizer_state,
        activations: m.step_peak.saturating_sub(m.held),
        evaluation: m.eval_peak.saturating_sub(m.held),
        total,
        limit,
        suggestions: Vec::new(),
    };
    if !plan.fits() {
        if let Some(l) = &plan.limit {
            plan.suggestions = suggest(options, recipe, &m, l.bytes)?;
        }
    }
    Ok(plan)
}

impl MemoryPlan {
    /// The total is within the limit, or no limit is known.
    pub fn fits(&self) -> bool {
        self.limit.as_ref().is_none_or(|l| self.total <= l.bytes)
    }

    /// The plan as `whet plan` prints it (and `whet train` when it refuses).
    pub fn report(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "device memory plan on {}", self.adapter);
        let mut shape = format!("batch {}", self.batch_size);
        if let Some(l) = self.length {
            let _ = write!(shape, " × {l}");
        }
        if self.grad_accum > 1 {
            let _ = write!(shape, ", {} accumulated", self.grad_accum);
        }
        if let Some(k) = self.micro_batch {
            let _ = write!(shape, ", run as micro-batches of {k} (a batch does not fit one binding)");
        }
        if self.activation_checkpointing {
            shape.push_str(", activation checkpointing");
        }
        if self.mixed_precision {
            shape.push_str(", f16 activations (mixed precision)");
        }
        let _ = writeln!(s, "  {shape}; {} trainable parameters", self.trainable_params);
        for (dtype, b) in &self.weights {
            let _ = writeln!(s, "  {:<28}{:>12}", format!("weights {dtype}"), human(*b));
        }
        for (what, b) in [
            ("gradients", self.gradients),
            ("optimizer state", self.optimizer_state),
            ("activations (training step)", self.activations),
            ("evaluation pass", self.evaluation),
            ("pool rounding, other", self.other),
        ] {
            let _ = writeln!(s, "  {what:<28}{:>12}", human(b));
        }
        let _ = writeln!(s, "  {:<28}{:>12}  (the run's peak)", "total", human(self.total));
        match &self.limit {
            Some(l) if self.fits() => {
                let _ = writeln!(s, "fits: {} of {} ({})", human(self.total), human(l.bytes), l.source);
            }
            Some(l) => {
                let _ = writeln!(
                    s,
                    "does not fit: {} needed, {} available ({})",
                    human(self.total),
                    human(l.bytes),
                    l.source
                );
                if self.suggestions.is_empty() {
                    s.push_str("no recipe change this plan knows of brings it under the limit\n");
                }
                for sg in &self.suggestions {
                    let how = if sg.measured { "measured" } else { "estimated" };
                    let _ = writeln!(s, "  try {}: {} ({how})", sg.change, human(sg.total));
                }
            }
            None => s.push_str(
                "the adapter does not report its memory: set WHET_MAX_MEMORY (e.g. 8GiB) or --memory to check \
                 the plan against it\n",
            ),
        }
        s
    }

    /// The refusal `whet train` returns when the plan does not fit.
    pub fn refusal(&self) -> Error {
        Error::DoesNotFit {
            needed: self.total,
            available: self.limit.as_ref().map_or(0, |l| l.bytes),
            plan: self.report(),
        }
    }
}

/// Bytes in binary units (`1.4 GiB`).
pub fn human(b: u64) -> String {
    bytesize::ByteSize(b).display().iec().to_string()
}

/// One dry run of `recipe`: load, two steps of the last epoch's trainable set, one validation.
fn measure(options: &EngineOptions, recipe: &Recipe) -> Result<Measured> {
    let dry = EngineOptions { dry_run: true, max_memory_bytes: None, profile: false, ..options.clone() };
    let engine = Engine::new(dry)?;
    let mut prep = prepare(&engine, recipe, false)?;
    let mut driver = Driver::new(&engine, prep.driver_config(recipe, false), prep.optim_config(recipe)?)?;
    // The last epoch's plan trains the most (LP-FT's fine-tuning, gradual unfreezing's end).
    let last = recipe.train.epochs.max(1) - 1;
    let task = prep.task.as_task();
    engine.reset_peak();
    driver.probe_steps(task, last)?;
    let step_peak = engine.stats().peak_bytes;
    let held = engine.stats().bytes_in_use;
    engine.reset_peak();
    // Metrics of a dry pass are computed from zeros, which some refuse (probabilities that sum
    // to 0): by then the pass's memory is counted. Memory errors still count as errors.
    if let Err(e) = task.evaluate() {
        if crate::train::micro_batch::does_not_fit(&e) {
            return Err(e);
        }
    }
    let eval_peak = engine.stats().peak_bytes;
    let (_, gradients, optimizer_state) = driver.optimizer().arena_bytes();
    let params = task.params();
    Ok(Measured {
        adapter: engine.adapter_name().to_string(),
        class: engine.adapter_class(),
        micro_batch: driver.micro_batch(),
        trainable_params: params.count(true) as u64,
        weights: params.bytes_by_dtype(),
        held,
        gradients,
        optimizer_state,
        step_peak,
        eval_peak,
        frozen_f32_matrices: params
            .entries()
            .iter()
            .filter(|e| !e.trainable() && e.tensor.shape().len() == 2 && e.tensor.quant_type().is_none())
            .filter(|e| e.tensor.dtype() == crate::tensor::DType::F32)
            .map(|e| e.tensor.nbytes())
            .sum(),
    })
}

/// Tokens per sequence (text models) or the image side (image models).
fn length(recipe: &Recipe) -> Option<usize> {
    match recipe.data.kind {
        super::recipe::DataKind::ImageFolder => Some(recipe.model.image_size.unwrap_or(224) as usize),
        _ => Some(recipe.data.max_len),
    }
}

/// The limit to check against: the engine's cap, else host memory on a CPU adapter.
fn limit(options: &EngineOptions, class: AdapterClass) -> Option<Limit> {
    if let Some(cap) = options.max_memory_bytes {
        return Some(Limit {
            bytes: cap,
            source: "the memory cap: WHET_MAX_MEMORY, --memory or max_memory_bytes".into(),
        });
    }
    if class == AdapterClass::Cpu {
        return host_available().map(|bytes| Limit {
            bytes,
            source: "host memory available: the CPU adapter's buffers live there".into(),
        });
    }
    None
}

/// `MemAvailable` of /proc/meminfo (Linux); `None` elsewhere.
fn host_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Changes that lower the peak under `limit`, cheapest to the model's quality first.
fn suggest(options: &EngineOptions, recipe: &Recipe, m: &Measured, limit: u64) -> Result<Vec<Suggestion>> {
    let mut out = Vec::new();
    if !recipe.train.activation_checkpointing {
        let mut r = recipe.clone();
        r.train.activation_checkpointing = true;
        // Models without checkpointed blocks refuse the key: nothing to suggest then.
        if let Ok(c) = measure(options, &r) {
            let change = "train.activation_checkpointing = true".into();
            out.push(Suggestion { change, total: c.total(), measured: true });
        }
    }
    if recipe.train.precision != "mixed" {
        let mut r = recipe.clone();
        r.train.precision = "mixed".into();
        // Models without f16 activations, and adapters without SHADER_F16, refuse it.
        if let Ok(c) = measure(options, &r) {
            let change = "train.precision = \"mixed\" (f16 activations)".into();
            out.push(Suggestion { change, total: c.total(), measured: true });
        }
    }
    let probe_only = recipe.train.lora.is_some() || recipe.train.plan == "linear-probe";
    let converted = matches!(recipe.model.quantize.as_str(), "q4_0" | "q8_0" | "f16" | "bf16");
    if m.frozen_f32_matrices > 0 && probe_only && !converted {
        for q in ["bf16", "q8_0", "q4_0"] {
            let mut r = recipe.clone();
            r.model.quantize = q.into();
            let total = measure(options, &r)?.total();
            out.push(Suggestion { change: format!("model.quantize = \"{q}\""), total, measured: true });
        }
    }
    if recipe.model.quantize == "none" {
        let mut r = recipe.clone();
        r.model.quantize = "keep".into();
        let total = measure(options, &r)?.total();
        if total < m.total() {
            out.push(Suggestion { change: "model.quantize = \"keep\"".into(), total, measured: true });
        }
    }
    if !probe_only && m.gradients + m.optimizer_state > 0 {
        // LoRA's adapters are a small fraction of the weights: their gradients and state are
        // left out of the estimate, which is a lower bound.
        let total = m.total().saturating_sub(m.gradients + m.optimizer_state);
        out.push(Suggestion {
            change: "LoRA ([train.lora]: only the adapters train, so most gradients and optimizer state go)"
                .into(),
            total,
            measured: false,
        });
    }
    if let Some(s) = smaller_batch(recipe, m, limit) {
        out.push(s);
    }
    Ok(out)
}

/// The largest batch that fits, with accumulation keeping the update the same, scaling the
/// step's activations linearly in the batch.
fn smaller_batch(recipe: &Recipe, m: &Measured, limit: u64) -> Option<Suggestion> {
    let b = m.micro_batch.unwrap_or(recipe.train.batch_size);
    let per_item = m.step_peak.saturating_sub(m.held) / b.max(1) as u64;
    if b <= 1 || per_item == 0 || m.held >= limit {
        return None;
    }
    let fits = ((limit - m.held) / per_item).min(b as u64 - 1) as usize;
    if fits == 0 {
        return None;
    }
    let accum = recipe.train.grad_accum * recipe.train.batch_size.div_ceil(fits);
    Some(Suggestion {
        change: format!("train.batch_size = {fits} with train.grad_accum = {accum} (the same update)"),
        total: m.held + per_item * fits as u64,
        measured: false,
    })
}
