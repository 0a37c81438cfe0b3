//! Dynamic loss scaling (`[train.loss_scale]`), as PyTorch's `GradScaler` does it.
//!
//! Gradients held in 16 bits underflow to zero below 6e-8 (f16's smallest subnormal), and a
//! fine-tuning step's gradients often sit there. The loss is multiplied by a scale `S` before
//! the backward, so every gradient is `S` times larger on the way down, and the optimizer
//! divides by `S` again where it already multiplies the gradients by the clipping factor
//! (`Optimizer::set_grad_unscale`): the update, the clipping and the logged norm see the true
//! gradients, with no extra pass over them.
//!
//! When a step's gradient norm is not finite while its loss is, the scale was too large: the
//! step is skipped (its items logged as for any non-finite step) and `S` shrinks by the backoff
//! factor. After `growth_interval` finite steps in a row `S` grows by the growth factor, so it
//! settles near the largest scale that does not overflow. Such an overflow does not count
//! toward `train.max_bad_steps` while `S > 1`: it is the scale's doing, and the next step runs
//! with half of it. At `S ≤ 1` a non-finite gradient is the model's, and counts.
//!
//! The first scale is 2^12, not PyTorch's 2^16. Under autocast rules a trainable weight's
//! gradient is produced in f16 (as the gradient of its f16 copy) and sums over every token of
//! the micro-batch, so it is the first thing to overflow: LoRA on SmolLM2-135M (4 × 256 tokens)
//! overflowed at 2^16, 2^15 and 2^14 in steps 4–6 and trained on at 2^13, losing three of its
//! first ten steps to the search. Starting lower costs nothing the scale cannot win back: a
//! gradient underflows only below 6e-8 / 2^12 ≈ 1.5e-11, and the scale still grows after
//! `growth_interval` good steps.
//!
//! With powers of two (the defaults: 2^12, ×2, ×0.5) scaling and unscaling are exact in binary
//! floating point, so an f32 run with loss scaling takes the same steps as one without, bit for
//! bit, until a gradient would overflow (`tests/loss_scale.rs`). The scale and its count of good
//! steps are part of the checkpoint, so a resumed run continues with the same scale.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How the scale starts and moves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossScaleConfig {
    /// The first step's scale (2^12; PyTorch's GradScaler starts at 2^16, see above).
    pub init: f32,
    /// Multiplies the scale after `growth_interval` finite steps in a row (> 1).
    pub growth_factor: f32,
    /// Multiplies the scale after an overflowing step (in (0, 1)).
    pub backoff_factor: f32,
    /// Finite steps in a row before the scale grows; 0 never grows it (a static scale that
    /// still backs off).
    pub growth_interval: u32,
}

impl Default for LossScaleConfig {
    fn default() -> Self {
        LossScaleConfig { init: 4096.0, growth_factor: 2.0, backoff_factor: 0.5, growth_interval: 2000 }
    }
}

impl LossScaleConfig {
    /// A typed error naming the first setting out of range.
    pub fn validate(&self) -> Result<()> {
        if !(self.init.is_finite() && self.init > 0.0) {
            return Err(Error::arg(
                "loss_scale",
                format!("init must be a positive finite number, got {}", self.init),
            ));
        }
        if !(self.growth_factor.is_finite() && self.growth_factor > 1.0) {
            return Err(Error::arg(
                "loss_scale",
                format!("growth_factor must be a finite number above 1, got {}", self.growth_factor),
            ));
        }
        if !(self.backoff_factor > 0.0 && self.backoff_factor < 1.0) {
            return Err(Error::arg(
                "loss_scale",
                format!("backoff_factor must lie in (0, 1), got {}", self.backoff_factor),
            ));
        }
        Ok(())
    }
}

/// Where the scale stands: saved in the checkpoint's loop state.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossScaleState {
    pub scale: f32,
    /// Finite steps since the scale last changed.
    pub good_steps: u32,
    /// Steps skipped for an overflow so far.
    pub overflows: u64,
}

/// What [`LossScaleState::after_step`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaleVerdict {
    /// A finite step: take it.
    Take,
    /// The gradients overflowed at a scale above 1: skip the step, not counted as bad.
    Overflow,
    /// Non-finite at a scale of 1 or less (or a non-finite loss): skip it and count it.
    Bad,
}

impl LossScaleState {
    pub fn new(config: &LossScaleConfig) -> Self {
        LossScaleState { scale: config.init, good_steps: 0, overflows: 0 }
    }

    /// Move the scale after a step whose (unscaled) loss and gradient norm were these.
    pub fn after_step(&mut self, config: &LossScaleConfig, loss: f32, norm: f32) -> ScaleVerdict {
        if loss.is_finite() && norm.is_finite() {
            self.good_steps += 1;
            if config.growth_interval > 0 && self.good_steps >= config.growth_interval {
                let grown = self.scale * config.growth_factor;
                // Never grow into infinity: a scale that large would overflow every step.
                if grown.is_finite() {
                    self.scale = grown;
                }
                self.good_steps = 0;
            }
            return ScaleVerdict::Take;
        }
        let overflow = loss.is_finite() && self.scale > 1.0;
        self.scale = (self.scale * config.backoff_factor).max(f32::MIN_POSITIVE);
        self.good_steps = 0;
        if overflow {
            self.overflows += 1;
            ScaleVerdict::Overflow
        } else {
            ScaleVerdict::Bad
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_after_the_interval_and_backs_off_on_overflow() {
        let c = LossScaleConfig { growth_interval: 3, ..LossScaleConfig::default() };
        let mut s = LossScaleState::new(&c);
        for _ in 0..2 {
            assert_eq!(s.after_step(&c, 1.0, 1.0), ScaleVerdict::Take);
        }
        assert_eq!(s.scale, 4096.0);
        assert_eq!(s.after_step(&c, 1.0, 1.0), ScaleVerdict::Take);
        assert_eq!(s.scale, 8192.0);
        assert_eq!(s.after_step(&c, 1.0, f32::INFINITY), ScaleVerdict::Overflow);
        assert_eq!((s.scale, s.good_steps, s.overflows), (4096.0, 0, 1));
        assert_eq!(s.after_step(&c, f32::NAN, 1.0), ScaleVerdict::Bad);
    }

    #[test]
    fn an_overflow_at_scale_one_counts_as_bad() {
        let c = LossScaleConfig { init: 1.0, ..LossScaleConfig::default() };
        let mut s = LossScaleState::new(&c);
        assert_eq!(s.after_step(&c, 1.0, f32::NAN), ScaleVerdict::Bad);
        assert_eq!(s.scale, 0.5);
    }

    #[test]
    fn never_grows_to_infinity() {
        let c = LossScaleConfig { init: f32::MAX, growth_interval: 1, ..LossScaleConfig::default() };
        let mut s = LossScaleState::new(&c);
        s.after_step(&c, 1.0, 1.0);
        assert_eq!(s.scale, f32::MAX);
    }

    #[test]
    fn validation_names_the_setting() {
        let c = LossScaleConfig { backoff_factor: 1.5, ..LossScaleConfig::default() };
        assert!(c.validate().unwrap_err().to_string().contains("backoff_factor"));
        let c = LossScaleConfig { init: 0.0, ..LossScaleConfig::default() };
        assert!(c.validate().unwrap_err().to_string().contains("init"));
    }
}
