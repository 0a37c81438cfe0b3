//! Parameter groups: which learning rate, weight decay and schedule each trainable parameter
//! gets.
//!
//! Resolution, per trainable parameter:
//! 1. the first [`GroupSpec`] whose selector matches gives its lr / weight decay / schedule
//!    (unmatched parameters use the optimizer's defaults);
//! 2. a layer-wise rule ([`LayerLr`]) multiplies the lr by a factor of the parameter's depth;
//! 3. parameters of rank ≤ 1 (biases, norm weights) get no weight decay unless the group says
//!    `decay_1d` (the convention of HF Trainer and timm).
//!
//! Parameters with the same resulting (lr, decay, schedule) share one update dispatch.

use crate::error::{Error, Result};
use crate::nn::{Entry, Select};
use crate::optim::Schedule;

/// Settings for the parameters a selector picks.
#[derive(Debug, Clone)]
pub struct GroupSpec {
    /// Shown in logs and reports.
    pub name: String,
    pub select: Select,
    /// Base learning rate; the optimizer's when `None`.
    pub lr: Option<f64>,
    /// Weight decay; the optimizer's when `None`.
    pub weight_decay: Option<f32>,
    /// Schedule; the optimizer's when `None`.
    pub schedule: Option<Schedule>,
    /// Decay rank-≤1 parameters too (off by default).
    pub decay_1d: bool,
}

impl GroupSpec {
    pub fn new(name: &str, select: Select) -> GroupSpec {
        GroupSpec {
            name: name.to_string(),
            select,
            lr: None,
            weight_decay: None,
            schedule: None,
            decay_1d: false,
        }
    }
    pub fn lr(mut self, lr: f64) -> Self {
        self.lr = Some(lr);
        self
    }
    pub fn weight_decay(mut self, wd: f32) -> Self {
        self.weight_decay = Some(wd);
        self
    }
    pub fn schedule(mut self, s: Schedule) -> Self {
        self.schedule = Some(s);
        self
    }
}

/// Learning rate as a function of depth (0 = embeddings/stem, D = head).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LayerLr {
    /// The same lr at every depth.
    Flat,
    /// Layer-wise decay (ELECTRA/BEiT style): lr · factor^(D − depth), the head at full lr.
    Decay { factor: f64 },
    /// ULMFiT discriminative rates: geometrically spaced from `lowest` (depth 0) up to the
    /// base lr (depth D), i.e. fastai's `slice(lowest, lr)`.
    Discriminative { lowest: f64 },
}

impl LayerLr {
    /// The multiplier of a base lr `base` at `depth` of `max_depth`.
    pub fn factor(&self, base: f64, depth: usize, max_depth: usize) -> f64 {
        let from_top = max_depth.saturating_sub(depth) as f64;
        match *self {
            LayerLr::Flat => 1.0,
            LayerLr::Decay { factor } => factor.powf(from_top),
            LayerLr::Discriminative { lowest } => {
                if max_depth == 0 || base <= 0.0 {
                    1.0
                } else {
                    // lr(d) = lowest · (base/lowest)^(d/D)  ⇒  factor = (lowest/base)^((D−d)/D)
                    (lowest / base).powf(from_top / max_depth as f64)
                }
            }
        }
    }

    pub fn validate(&self) -> Result<()> {
        match *self {
            LayerLr::Decay { factor } if !(factor > 0.0 && factor <= 1.0) => {
                Err(Error::arg("layer_lr", format!("decay factor {factor} must be in (0, 1]")))
            }
            LayerLr::Discriminative { lowest } if !(lowest > 0.0) => {
                Err(Error::arg("layer_lr", format!("lowest lr {lowest} must be > 0")))
            }
            _ => Ok(()),
        }
    }
}

/// The resolved settings of one parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// Index of the matching [`GroupSpec`], `None` for the defaults.
    pub spec: Option<usize>,
    pub lr: f64,
    pub weight_decay: f32,
    pub schedule: Schedule,
}

/// Resolve every entry (trainable parameters only are passed in).
#[allow(clippy::too_many_arguments)] // the recipe's [train] keys, each one named at the call
pub fn resolve(
    entries: &[&Entry],
    specs: &[GroupSpec],
    default_lr: f64,
    default_wd: f32,
    default_schedule: &Schedule,
    default_decay_1d: bool,
    layer_lr: LayerLr,
    max_depth: usize,
) -> Result<Vec<Resolved>> {
    layer_lr.validate()?;
    let matchers = specs.iter().map(|s| s.select.compile()).collect::<Result<Vec<_>>>()?;
    for (s, m) in specs.iter().zip(&matchers) {
        if !entries.iter().any(|e| m.matches(&e.path, e.depth)) {
            log::warn!("parameter group '{}' ({:?}) matches no trainable parameter", s.name, s.select);
        }
    }
    Ok(entries
        .iter()
        .map(|e| {
            let spec = matchers.iter().position(|m| m.matches(&e.path, e.depth));
            let s = spec.map(|i| &specs[i]);
            let base = s.and_then(|s| s.lr).unwrap_or(default_lr);
            let lr = base * layer_lr.factor(base, e.depth, max_depth);
            let decay_1d = s.map_or(default_decay_1d, |s| s.decay_1d);
            let wd = if e.tensor.rank() <= 1 && !decay_1d {
                0.0
            } else {
                s.and_then(|s| s.weight_decay).unwrap_or(default_wd)
            };
            let schedule = s.and_then(|s| s.schedule.clone()).unwrap_or_else(|| default_schedule.clone());
            Resolved { spec, lr, weight_decay: wd, schedule }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_rules_match_their_closed_forms() {
        let d = LayerLr::Decay { factor: 0.5 };
        assert_eq!(d.factor(1e-3, 7, 7), 1.0);
        assert_eq!(d.factor(1e-3, 5, 7), 0.25);
        let u = LayerLr::Discriminative { lowest: 1e-5 };
        assert!((1e-3 * u.factor(1e-3, 0, 4) - 1e-5).abs() < 1e-12);
        assert!((1e-3 * u.factor(1e-3, 4, 4) - 1e-3).abs() < 1e-12);
        // geometric: the middle depth sits at the geometric mean
        assert!((1e-3 * u.factor(1e-3, 2, 4) - 1e-4).abs() < 1e-12);
        assert!(LayerLr::Decay { factor: 1.5 }.validate().is_err());
    }
}
