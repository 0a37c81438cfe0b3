//! Every value of a recipe checked before anything is loaded: numbers against their allowed
//! range (per-group settings, LoRA, generation and augmentation included), names against the
//! known ones, and the sections against each other. Nothing is clamped or replaced: a value out
//! of range is an error naming the file, the line, the key path, the value and what is allowed,
//! because a silently changed setting makes a run that is not the one the recipe describes.

use std::fmt;

use super::recipe::{DataKind, GenerateSection, ModelSection, OutputSection, Recipe, TrainSection};
use super::recipe_keys::KeyLines;
use crate::data::image::Augment;
use crate::error::{Error, Result};

/// An interval of finite reals.
#[derive(Clone, Copy)]
struct Interval {
    lo: f64,
    lo_open: bool,
    hi: f64,
    hi_open: bool,
}

const NON_NEGATIVE: Interval = Interval { lo: 0.0, lo_open: false, hi: f64::INFINITY, hi_open: true };
const POSITIVE: Interval = Interval { lo: 0.0, lo_open: true, hi: f64::INFINITY, hi_open: true };
/// (1, ∞): growth factors.
const ABOVE_ONE: Interval = Interval { lo: 1.0, lo_open: true, hi: f64::INFINITY, hi_open: true };
/// (0, 1): backoff factors.
const OPEN_UNIT: Interval = Interval { lo: 0.0, lo_open: true, hi: 1.0, hi_open: true };
/// [0, 1): ratios and smoothing, where 1 would leave nothing.
const FRACTION: Interval = Interval { lo: 0.0, lo_open: false, hi: 1.0, hi_open: true };
const PROBABILITY: Interval = Interval { lo: 0.0, lo_open: false, hi: 1.0, hi_open: false };
/// (0, 1]: factors that scale a learning rate or a probability mass down.
const SHARE: Interval = Interval { lo: 0.0, lo_open: true, hi: 1.0, hi_open: false };

const fn closed(lo: f64, hi: f64) -> Interval {
    Interval { lo, lo_open: false, hi, hi_open: false }
}

impl Interval {
    fn contains(&self, x: f64) -> bool {
        let above = if self.lo_open { x > self.lo } else { x >= self.lo };
        let below = if self.hi_open { x < self.hi } else { x <= self.hi };
        x.is_finite() && above && below
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let open = if self.lo_open { "(" } else { "[" };
        if self.hi.is_infinite() {
            return write!(f, "finite and {} {}", if self.lo_open { ">" } else { ">=" }, self.lo);
        }
        write!(f, "{open}{}, {}{}", self.lo, self.hi, if self.hi_open { ")" } else { "]" })
    }
}

/// Bootstrap resamples allowed in `output.bootstrap`: the intervals need at least
/// [`crate::eval::MIN_RESAMPLES`]; more than a million only makes a run seem to hang.
const MAX_RESAMPLES: usize = 1_000_000;

/// `model.image_size`: below 16 pixels the networks' strided stages have nothing left to see;
/// above 2048 one batch of images outgrows any GPU buffer.
const IMAGE_SIZES: (u64, u64) = (16, 2048);

/// Check every value of `r`; `keys` places each in its file.
pub(super) fn check(r: &Recipe, keys: &KeyLines) -> Result<()> {
    let k = Checker(keys);
    k.model(&r.model)?;
    k.data(r)?;
    k.train(&r.train)?;
    k.generate(&r.generate)?;
    k.output(r)?;
    k.augment(&r.augment)?;
    k.source(r)?;
    k.names(r)?;
    Ok(())
}

struct Checker<'a>(&'a KeyLines);

impl Checker<'_> {
    /// `key = x` must lie in `allowed`.
    fn real(&self, key: &str, x: impl Into<f64> + fmt::Display + Copy, allowed: Interval) -> Result<()> {
        if allowed.contains(x.into()) {
            return Ok(());
        }
        Err(self.0.error(key, format!(" = {x}: out of range (allowed: {allowed})")))
    }

    /// `key = n` must be an integer in `lo..=hi`.
    fn int(&self, key: &str, n: impl TryInto<u64> + fmt::Display + Copy, lo: u64, hi: u64) -> Result<()> {
        if n.try_into().is_ok_and(|n| (lo..=hi).contains(&n)) {
            return Ok(());
        }
        let allowed = if hi == u64::MAX { format!(">= {lo}") } else { format!("{lo} to {hi}") };
        Err(self.0.error(key, format!(" = {n}: out of range (allowed: an integer {allowed})")))
    }

    fn at_least(&self, key: &str, n: impl TryInto<u64> + fmt::Display + Copy, lo: u64) -> Result<()> {
        self.int(key, n, lo, u64::MAX)
    }

    fn fail<T>(&self, key: &str, message: impl fmt::Display) -> Result<T> {
        Err(self.0.error(key, format!(": {message}")))
    }

    fn model(&self, m: &ModelSection) -> Result<()> {
        if let Some(s) = m.image_size {
            self.int("model.image_size", s, IMAGE_SIZES.0, IMAGE_SIZES.1)?;
        }
        if let Some(p) = m.dropout {
            self.real("model.dropout", p, FRACTION)?;
        }
        Ok(())
    }

    fn data(&self, r: &Recipe) -> Result<()> {
        let d = &r.data;
        self.real("data.val_ratio", d.val_ratio, FRACTION)?;
        self.real("data.test_ratio", d.test_ratio, FRACTION)?;
        if d.val_ratio + d.test_ratio >= 1.0 {
            return self.fail("data.val_ratio", "val_ratio + test_ratio leave nothing to train on");
        }
        self.at_least("data.max_len", d.max_len, 2)?;
        for (key, limit) in [
            ("data.limit_train", d.limit_train),
            ("data.limit_eval", d.limit_eval),
            ("data.limit_test", d.limit_test),
        ] {
            if let Some(n) = limit {
                self.at_least(key, n, 1)?;
            }
        }
        self.real("data.max_skipped", d.max_skipped, PROBABILITY)?;
        self.folds(r)
    }

    fn folds(&self, r: &Recipe) -> Result<()> {
        let d = &r.data;
        if let Some(k) = d.folds {
            self.at_least("data.folds", k, 2)?;
        }
        match (d.folds, d.fold) {
            (Some(k), Some(f)) if f >= k => {
                return self.fail("data.fold", format!("fold {f} of {k} (folds count from 0)"))
            }
            (None, Some(_)) => return self.fail("data.fold", "needs data.folds"),
            (Some(_), None) => return self.fail("data.folds", "needs data.fold (which fold to hold out)"),
            _ => {}
        }
        if d.folds.is_some() && (d.test.is_some() || d.val.is_some() || d.test_ratio > 0.0) {
            return self.fail(
                "data.folds",
                "cross-validation holds out its own folds: drop data.test, data.val and data.test_ratio",
            );
        }
        if d.folds.is_some() && d.kind == DataKind::Corpus {
            return self.fail("data.folds", "cross-validation needs labelled items (not a corpus)");
        }
        Ok(())
    }

    fn train(&self, t: &TrainSection) -> Result<()> {
        self.at_least("train.batch_size", t.batch_size, 1)?;
        self.at_least("train.grad_accum", t.grad_accum, 1)?;
        match t.max_steps {
            Some(n) => self.at_least("train.max_steps", n, 1)?,
            None if t.epochs == 0 => return self.fail("train.epochs", "must be >= 1 (or set max_steps)"),
            None => {}
        }
        for (key, every) in
            [("train.eval_every", t.eval_every), ("train.checkpoint_every", t.checkpoint_every)]
        {
            if let Some(n) = every {
                self.at_least(key, n, 1)?;
            }
        }
        self.real("train.lr", t.lr, NON_NEGATIVE)?;
        self.real("train.weight_decay", t.weight_decay, NON_NEGATIVE)?;
        self.real("train.momentum", t.momentum, FRACTION)?;
        self.real("train.warmup_ratio", t.warmup_ratio, FRACTION)?;
        if let Some(c) = t.clip {
            self.real("train.clip", c, POSITIVE)?;
        }
        self.real("train.label_smoothing", t.label_smoothing, FRACTION)?;
        self.at_least("train.probe_epochs", t.probe_epochs, 1)?;
        self.at_least("train.unfreeze_every", t.unfreeze_every, 1)?;
        self.at_least("train.max_bad_steps", t.max_bad_steps, 1)?;
        if let Some(f) = t.layer_decay {
            self.real("train.layer_decay", f, SHARE)?;
        }
        if let Some(f) = t.discriminative {
            self.real("train.discriminative", f, SHARE)?;
        }
        self.groups(t)?;
        self.regularisers(t)
    }

    fn groups(&self, t: &TrainSection) -> Result<()> {
        for (i, g) in t.groups.iter().enumerate() {
            if let Some(lr) = g.lr {
                self.real(&format!("train.groups[{i}].lr"), lr, NON_NEGATIVE)?;
            }
            if let Some(wd) = g.weight_decay {
                self.real(&format!("train.groups[{i}].weight_decay"), wd, NON_NEGATIVE)?;
            }
        }
        for (i, s) in t.freeze.iter().enumerate() {
            crate::nn::Select::parse(s).or_else(|e| self.fail(&format!("train.freeze[{i}]"), e))?;
        }
        for (i, g) in t.groups.iter().enumerate() {
            crate::nn::Select::parse(&g.select)
                .or_else(|e| self.fail(&format!("train.groups[{i}].select"), e))?;
        }
        Ok(())
    }

    /// Early stopping, L2-SP, LoRA, LwF and EWC.
    fn regularisers(&self, t: &TrainSection) -> Result<()> {
        if let Some(e) = &t.early_stop {
            self.at_least("train.early_stop.patience", e.patience, 1)?;
            self.real("train.early_stop.min_delta", e.min_delta, NON_NEGATIVE)?;
        }
        if let Some([alpha, beta]) = t.l2sp {
            self.real("train.l2sp[0]", alpha, NON_NEGATIVE)?;
            self.real("train.l2sp[1]", beta, NON_NEGATIVE)?;
        }
        if let Some(l) = &t.lora {
            self.at_least("train.lora.rank", l.rank, 1)?;
            self.real("train.lora.alpha", l.alpha, POSITIVE)?;
        }
        if let Some(l) = t.loss_scale {
            self.real("train.loss_scale.init", l.init, POSITIVE)?;
            self.real("train.loss_scale.growth_factor", l.growth_factor, ABOVE_ONE)?;
            self.real("train.loss_scale.backoff_factor", l.backoff_factor, OPEN_UNIT)?;
        }
        if let Some(l) = t.lwf {
            self.real("train.lwf.weight", l.weight, NON_NEGATIVE)?;
            self.real("train.lwf.temperature", l.temperature, POSITIVE)?;
        }
        if let Some(e) = t.ewc {
            self.real("train.ewc.lambda", e.lambda, NON_NEGATIVE)?;
            self.at_least("train.ewc.items", e.items, 1)?;
        }
        Ok(())
    }

    fn generate(&self, g: &GenerateSection) -> Result<()> {
        self.at_least("generate.max_new_tokens", g.max_new_tokens, 1)?;
        self.at_least("generate.top_k", g.top_k, 1)?;
        self.real("generate.top_p", g.top_p, SHARE)?;
        self.real("generate.temperature", g.temperature, POSITIVE)
    }

    fn output(&self, r: &Recipe) -> Result<()> {
        let o: &OutputSection = &r.output;
        self.int("output.bootstrap", o.bootstrap, crate::eval::MIN_RESAMPLES as u64, MAX_RESAMPLES as u64)?;
        if o.adapter_only && r.train.lora.is_none() {
            return self.fail("output.adapter_only", "exports LoRA adapters: set train.lora too");
        }
        Ok(())
    }

    /// The augmentation's own rules, plus the ceilings its transforms would otherwise apply
    /// quietly (a colour factor over 100, a rotation over 360 degrees, a zoom over 100x).
    fn augment(&self, a: &Augment) -> Result<()> {
        a.validate().or_else(|e| match e {
            Error::InvalidArgument { message, .. } => self.fail("augment", message),
            other => Err(other),
        })?;
        self.real("augment.rotation", a.rotation, closed(0.0, 360.0))?;
        for (key, x) in [
            ("augment.brightness", a.brightness),
            ("augment.contrast", a.contrast),
            ("augment.saturation", a.saturation),
        ] {
            self.real(key, x, closed(0.0, 100.0))?;
        }
        if let Some([_, hi]) = a.zoom {
            self.real("augment.zoom[1]", hi, closed(0.0, 100.0))?;
        }
        Ok(())
    }

    fn source(&self, r: &Recipe) -> Result<()> {
        let t = &r.train;
        if (t.lwf.is_some() || t.ewc.is_some()) && r.source.is_none() {
            return self.fail("train.lwf / train.ewc", "need a [source] section (the task to keep)");
        }
        let Some(src) = &r.source else { return Ok(()) };
        if t.ewc.is_some() && src.train.is_none() {
            return self.fail("source.train", "train.ewc estimates its Fisher on source.train");
        }
        if r.data.kind != DataKind::Text {
            return self.fail("source", "retention and LwF/EWC are supported for text classifiers");
        }
        if let Some(n) = src.limit {
            self.at_least("source.limit", n, 1)?;
        }
        Ok(())
    }

    /// Settings that name one of a fixed set.
    fn names(&self, r: &Recipe) -> Result<()> {
        let t = &r.train;
        let choices: [(&str, &str, &[&str]); 9] = [
            ("train.optimizer", &t.optimizer, &["adamw", "adam", "sgd"]),
            ("train.precision", &t.precision, &["f32", "mixed"]),
            (
                "train.schedule",
                &t.schedule,
                &["constant", "linear", "cosine", "exponential", "step", "one-cycle"],
            ),
            ("train.plan", &t.plan, &["full", "linear-probe", "lp-ft", "gradual"]),
            ("generate.sampling", &r.generate.sampling, &["greedy", "top-k", "top-p"]),
            ("model.init", &r.model.init, &["pretrained", "scratch"]),
            ("model.quantize", &r.model.quantize, &["keep", "none", "q8_0", "q4_0", "f16", "bf16"]),
            ("output.dtype", &r.output.dtype, &["f32", "f16", "bf16"]),
            ("output.gguf", r.output.gguf.as_deref().unwrap_or("f16"), &["f16", "q8_0"]),
        ];
        for (key, value, known) in choices {
            if !known.contains(&value) {
                return self.fail(key, format!("'{value}' ({})", known.join(", ")));
            }
        }
        Ok(())
    }
}

/// The export settings that depend on the model kind (resolved after [`check`]): GGUF export
/// writes llama.cpp's llama architecture, so it needs a model whose checkpoints that
/// architecture names (`general.architecture = "llama"`).
pub(super) fn check_export(r: &Recipe, keys: &KeyLines) -> Result<()> {
    let Some(g) = &r.output.gguf else { return Ok(()) };
    let kind: crate::models::zoo::ModelKind = r.model.kind.parse()?;
    let arch = kind.architecture();
    if !arch.causal_lm || !arch.config_types.contains(&"llama") {
        let message = format!(
            " = \"{g}\": GGUF export writes llama-architecture decoders; model.kind is {}",
            arch.name
        );
        return Err(keys.error("output.gguf", message));
    }
    if r.data.kind == super::recipe::DataKind::Text {
        // A decoder turned classifier ends in `score`, which llama.cpp's layout has no name for.
        let message = format!(
            " = \"{g}\": GGUF holds language models; a {} classifier (data.kind = \"text\") exports \
             as a Hugging Face directory only",
            arch.name
        );
        return Err(keys.error("output.gguf", message));
    }
    Ok(())
}
