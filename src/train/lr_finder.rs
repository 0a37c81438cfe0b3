//! The learning-rate range test (Smith, 2017; fastai's `lr_find`): train a few steps with the
//! learning rate growing geometrically, record the smoothed loss, stop when it diverges, and
//! suggest the rate where the loss falls fastest.
//!
//! The caller snapshots and restores the model (the test changes the weights).

use crate::error::{Error, Result};

/// Settings of a range test.
#[derive(Debug, Clone, Copy)]
pub struct LrFinder {
    pub start: f64,
    pub end: f64,
    pub steps: usize,
    /// Exponential smoothing of the loss (fastai: 0.98).
    pub beta: f64,
    /// Stop once the smoothed loss exceeds this multiple of its minimum.
    pub diverge: f64,
}

impl Default for LrFinder {
    fn default() -> Self {
        LrFinder { start: 1e-7, end: 10.0, steps: 100, beta: 0.98, diverge: 4.0 }
    }
}

/// What a range test measured.
#[derive(Debug, Clone)]
pub struct LrReport {
    pub lrs: Vec<f64>,
    pub losses: Vec<f64>,
    /// Bias-corrected exponentially smoothed losses.
    pub smoothed: Vec<f64>,
    /// Rate of steepest descent of the smoothed loss against log(lr).
    pub steepest: f64,
    /// The rate of minimum smoothed loss divided by 10 (the other classic rule).
    pub min_over_10: f64,
}

impl LrFinder {
    /// The rate of step `i`.
    pub fn lr_at(&self, i: usize) -> f64 {
        let n = (self.steps.max(2) - 1) as f64;
        self.start * (self.end / self.start).powf(i as f64 / n)
    }

    /// Run `step(lr) -> loss` for each rate until the loss diverges or turns non-finite.
    pub fn run(&self, mut step: impl FnMut(f64) -> Result<f32>) -> Result<LrReport> {
        if !(self.start > 0.0 && self.end > self.start && self.steps >= 5) {
            return Err(Error::arg(
                "lr_finder",
                format!("needs 0 < start < end and >= 5 steps, got {self:?}"),
            ));
        }
        let mut lrs = Vec::new();
        let mut losses = Vec::new();
        for i in 0..self.steps {
            let lr = self.lr_at(i);
            let loss = step(lr)? as f64;
            if !loss.is_finite() {
                break;
            }
            lrs.push(lr);
            losses.push(loss);
            let s = smooth(&losses, self.beta);
            let min = s.iter().cloned().fold(f64::INFINITY, f64::min);
            if i > 0 && *s.last().unwrap() > self.diverge * min {
                break;
            }
        }
        suggest(lrs, losses, self.beta)
    }
}

fn smooth(losses: &[f64], beta: f64) -> Vec<f64> {
    let mut avg = 0.0;
    losses
        .iter()
        .enumerate()
        .map(|(i, l)| {
            avg = beta * avg + (1.0 - beta) * l;
            avg / (1.0 - beta.powi(i as i32 + 1))
        })
        .collect()
}

/// Suggestions from recorded (lr, loss) pairs.
pub fn suggest(lrs: Vec<f64>, losses: Vec<f64>, beta: f64) -> Result<LrReport> {
    if lrs.len() < 3 || lrs.len() != losses.len() {
        return Err(Error::arg("lr_finder", format!("{} points are too few to suggest a rate", lrs.len())));
    }
    let smoothed = smooth(&losses, beta);
    let mut steepest = (f64::INFINITY, lrs[0]);
    for i in 1..smoothed.len() - 1 {
        // central difference in log(lr)
        let slope = (smoothed[i + 1] - smoothed[i - 1]) / (lrs[i + 1].ln() - lrs[i - 1].ln());
        if slope < steepest.0 {
            steepest = (slope, lrs[i]);
        }
    }
    let imin = (0..smoothed.len()).min_by(|&a, &b| smoothed[a].total_cmp(&smoothed[b])).unwrap_or(0);
    Ok(LrReport { min_over_10: lrs[imin] / 10.0, steepest: steepest.1, lrs, losses, smoothed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_steepest_descent_of_a_synthetic_curve() {
        // Loss falls fastest (in log lr) at 1e-3 and explodes past 1e-1.
        let f = LrFinder { start: 1e-6, end: 1.0, steps: 61, beta: 0.0, diverge: 4.0 };
        let curve = |lr: f64| {
            let x = lr.log10();
            1.5 - (x + 3.0).tanh() + if x > -1.0 { 10.0 * (x + 1.0).powi(2) } else { 0.0 }
        };
        let r = f.run(|lr| Ok(curve(lr) as f32)).unwrap();
        let s = r.steepest.log10();
        assert!((-3.15..=-2.85).contains(&s), "steepest at 1e{s}");
        assert!(r.lrs.len() < 61, "stopped at divergence");
        assert!(r.min_over_10 < r.lrs[r.lrs.len() - 1]);
        assert!(LrFinder { steps: 2, ..f }.run(|_| Ok(1.0)).is_err());
    }
}
