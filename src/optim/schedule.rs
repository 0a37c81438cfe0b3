//! Learning-rate schedules as pure functions of the step: `lr(step)` depends on nothing else,
//! so resuming at step `s` reproduces the schedule exactly.
//!
//! Every schedule multiplies a base learning rate; `Warmup` wraps any of them with a linear
//! ramp from `start_factor * base` over the first steps (transformers' `get_*_schedule_with_warmup`).

use crate::error::{Error, Result};

/// A learning-rate schedule. Steps count from 0 (the first optimizer step).
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// `base` forever.
    Constant,
    /// `base * gamma^(step / step_size)` (torch StepLR).
    Step { step_size: u64, gamma: f64 },
    /// `base * gamma^step` (torch ExponentialLR).
    Exponential { gamma: f64 },
    /// Cosine from `base` to `min_factor * base` over `total` steps, then flat
    /// (torch CosineAnnealingLR with eta_min = min_factor * base).
    Cosine { total: u64, min_factor: f64 },
    /// Linear from `base` to `end_factor * base` over `total` steps, then flat.
    Linear { total: u64, end_factor: f64 },
    /// One-cycle (Smith; torch OneCycleLR, cosine annealing): from `base / div_factor` up to
    /// `base` over `pct_start * total` steps, then down to `base / (div_factor * final_div)`.
    OneCycle { total: u64, pct_start: f64, div_factor: f64, final_div: f64 },
    /// Linear warm-up over `steps` from `start_factor * base`, then `after` (whose step count
    /// starts at 0 when the warm-up ends).
    Warmup { steps: u64, start_factor: f64, after: Box<Schedule> },
}

impl Schedule {
    /// Wrap `self` with a linear warm-up from 0.
    pub fn with_warmup(self, steps: u64) -> Schedule {
        Schedule::Warmup { steps, start_factor: 0.0, after: Box::new(self) }
    }

    /// Check the parameters (a zero length, a negative factor...).
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::arg("schedule", m));
        match self {
            Schedule::Constant => Ok(()),
            Schedule::Step { step_size, gamma } => {
                if *step_size == 0 || *gamma <= 0.0 {
                    return bad(format!(
                        "step schedule needs step_size > 0 and gamma > 0, got {step_size}, {gamma}"
                    ));
                }
                Ok(())
            }
            Schedule::Exponential { gamma } if *gamma <= 0.0 => bad(format!("gamma {gamma} must be > 0")),
            Schedule::Exponential { .. } => Ok(()),
            Schedule::Cosine { total, min_factor } | Schedule::Linear { total, end_factor: min_factor } => {
                if *total == 0 || *min_factor < 0.0 {
                    return bad(format!("needs total > 0 and a factor >= 0, got {total}, {min_factor}"));
                }
                Ok(())
            }
            Schedule::OneCycle { total, pct_start, div_factor, final_div } => {
                if *total < 2 || !(0.0..1.0).contains(pct_start) || *div_factor <= 0.0 || *final_div <= 0.0 {
                    return bad(format!(
                        "one-cycle needs total >= 2, 0 <= pct_start < 1 and positive divisors, got {total}, {pct_start}, {div_factor}, {final_div}"
                    ));
                }
                Ok(())
            }
            Schedule::Warmup { start_factor, after, .. } => {
                if !(0.0..=1.0).contains(start_factor) {
                    return bad(format!("warm-up start_factor {start_factor} is not in [0, 1]"));
                }
                after.validate()
            }
        }
    }

    /// The multiplier of the base learning rate at `step`.
    pub fn factor(&self, step: u64) -> f64 {
        use std::f64::consts::PI;
        match self {
            Schedule::Constant => 1.0,
            Schedule::Step { step_size, gamma } => gamma.powf((step / step_size.max(&1)) as f64),
            Schedule::Exponential { gamma } => gamma.powf(step as f64),
            Schedule::Cosine { total, min_factor } => {
                let t = (step.min(*total) as f64) / *total.max(&1) as f64;
                min_factor + (1.0 - min_factor) * 0.5 * (1.0 + (PI * t).cos())
            }
            Schedule::Linear { total, end_factor } => {
                let t = (step.min(*total) as f64) / *total.max(&1) as f64;
                1.0 + (end_factor - 1.0) * t
            }
            Schedule::OneCycle { total, pct_start, div_factor, final_div } => {
                // torch: phase ends at pct_start * total - 1 and total - 1.
                let up_end = (pct_start * *total as f64 - 1.0).max(0.0);
                let end = (*total - 1) as f64;
                let s = (step as f64).min(end);
                let initial = 1.0 / div_factor;
                let last = initial / final_div;
                let cos = |from: f64, to: f64, t: f64| to + (from - to) * 0.5 * (1.0 + (PI * t).cos());
                if s <= up_end && up_end > 0.0 {
                    cos(initial, 1.0, s / up_end)
                } else {
                    cos(1.0, last, (s - up_end) / (end - up_end).max(1e-12))
                }
            }
            Schedule::Warmup { steps, start_factor, after } => {
                if step < *steps {
                    start_factor + (1.0 - start_factor) * (step as f64 / *steps as f64)
                } else {
                    after.factor(step - steps)
                }
            }
        }
    }

    /// The learning rate at `step` for a base rate `base`.
    pub fn lr(&self, base: f64, step: u64) -> f64 {
        base * self.factor(step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }

    #[test]
    fn step_and_exponential_match_torch() {
        let s = Schedule::Step { step_size: 3, gamma: 0.1 };
        for (step, want) in [(0, 1.0), (2, 1.0), (3, 0.1), (5, 0.1), (6, 0.01)] {
            close(s.factor(step), want);
        }
        let e = Schedule::Exponential { gamma: 0.9 };
        close(e.factor(4), 0.9f64.powi(4));
    }

    #[test]
    fn cosine_and_linear_closed_forms() {
        let c = Schedule::Cosine { total: 10, min_factor: 0.1 };
        for step in 0..=12u64 {
            let t = step.min(10) as f64 / 10.0;
            close(c.factor(step), 0.1 + 0.9 * 0.5 * (1.0 + (PI * t).cos()));
        }
        close(c.factor(0), 1.0);
        close(c.factor(10), 0.1);
        let l = Schedule::Linear { total: 4, end_factor: 0.0 };
        for (step, want) in [(0, 1.0), (1, 0.75), (2, 0.5), (4, 0.0), (9, 0.0)] {
            close(l.factor(step), want);
        }
    }

    #[test]
    fn warmup_ramps_then_hands_over() {
        let s = Schedule::Linear { total: 10, end_factor: 0.0 }.with_warmup(4);
        for (step, want) in [(0, 0.0), (1, 0.25), (3, 0.75), (4, 1.0), (9, 0.5), (14, 0.0)] {
            close(s.factor(step), want);
        }
        close(s.lr(2e-5, 2), 1e-5);
    }

    #[test]
    fn one_cycle_matches_torch_endpoints() {
        // torch OneCycleLR(max_lr=1, total_steps=100, pct_start=0.3, div_factor=25,
        // final_div_factor=1e4): lr(0) = 0.04, peak 1.0 at step 29, lr(99) = 4e-6.
        let s = Schedule::OneCycle { total: 100, pct_start: 0.3, div_factor: 25.0, final_div: 1e4 };
        close(s.factor(0), 0.04);
        close(s.factor(29), 1.0);
        close(s.factor(99), 0.04 / 1e4);
        assert!(s.factor(15) > 0.04 && s.factor(15) < 1.0);
        assert!(s.factor(60) < 1.0 && s.factor(60) > s.factor(80));
    }

    #[test]
    fn bad_parameters_are_rejected() {
        assert!(Schedule::Step { step_size: 0, gamma: 0.5 }.validate().is_err());
        assert!(Schedule::Cosine { total: 0, min_factor: 0.0 }.validate().is_err());
        assert!(Schedule::OneCycle { total: 10, pct_start: 1.5, div_factor: 25.0, final_div: 1e4 }
            .validate()
            .is_err());
        assert!(Schedule::Constant.with_warmup(5).validate().is_ok());
    }
}
