//! Language-model evaluation over held-out blocks: each block's mean token loss is one item, so
//! the bootstrap resamples blocks (the unit text comes in), and perplexity is `exp` of the mean
//! loss of a resample. Two models scored on the same blocks are compared block by block.

use std::collections::BTreeMap;

use super::bootstrap::{bootstrap, check, replicate, Interval};
use super::paired::PairedDiff;
use crate::error::{Error, Result};

fn mean(losses: &[f64], idx: &[usize]) -> f64 {
    idx.iter().map(|&i| losses[i]).sum::<f64>() / idx.len().max(1) as f64
}

/// `loss` (mean block loss) and `perplexity` (its `exp`) with percentile intervals.
pub fn lm_metrics(
    losses: &[f64],
    resamples: usize,
    level: f64,
    seed: u64,
) -> Result<BTreeMap<String, Interval>> {
    let loss = bootstrap(losses.len(), resamples, level, seed, |idx| mean(losses, idx))?;
    // exp is increasing, so the perplexity interval is the loss interval's image.
    let ppl = Interval { point: loss.point.exp(), lo: loss.lo.exp(), hi: loss.hi.exp(), level: loss.level };
    Ok([("loss".to_string(), loss), ("perplexity".to_string(), ppl)].into_iter().collect())
}

/// `metric(a) − metric(b)` on the same blocks (`metric` "loss" or "perplexity"), with a paired
/// percentile interval and a two-sided bootstrap p-value for "no difference".
pub fn paired_lm(
    a: &[f64],
    b: &[f64],
    metric: &str,
    resamples: usize,
    level: f64,
    seed: u64,
) -> Result<PairedDiff> {
    const OP: &str = "paired_lm";
    if a.len() != b.len() {
        return Err(Error::shape(OP, &[a.len()], &[b.len()], "both models must score the same blocks"));
    }
    check(OP, a.len(), resamples, level)?;
    let f: fn(f64) -> f64 = match metric {
        "loss" => |x| x,
        "perplexity" => f64::exp,
        other => {
            return Err(Error::arg(
                OP,
                format!("'{other}' is not a language-model metric (loss, perplexity)"),
            ))
        }
    };
    let all: Vec<usize> = (0..a.len()).collect();
    let diff = |idx: &[usize]| f(mean(a, idx)) - f(mean(b, idx));
    let point = diff(&all);
    let reps = replicate(a.len(), resamples, seed, diff);
    Ok(PairedDiff::from_replicates(point, reps, level))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perplexity_is_exp_of_the_mean_block_loss() {
        let m = lm_metrics(&[1.0, 2.0, 3.0], 1000, 0.95, 7).unwrap();
        assert!((m["loss"].point - 2.0).abs() < 1e-12);
        assert!((m["perplexity"].point - 2f64.exp()).abs() < 1e-9);
        assert!((m["perplexity"].lo - m["loss"].lo.exp()).abs() < 1e-9);
        assert!(m["loss"].lo >= 1.0 && m["loss"].hi <= 3.0);
    }

    #[test]
    fn paired_difference_of_a_uniformly_better_model() {
        let b = [2.0, 2.5, 3.0, 3.5, 4.0, 2.2, 2.9, 3.1];
        let a: Vec<f64> = b.iter().map(|x| x - 0.5).collect();
        let d = paired_lm(&a, &b, "loss", 1000, 0.95, 1).unwrap();
        // Every block is exactly 0.5 lower: every resample's difference is −0.5.
        assert!((d.diff.point + 0.5).abs() < 1e-12 && (d.diff.lo + 0.5).abs() < 1e-12);
        assert_eq!(d.p_value, 0.0);
        let p = paired_lm(&a, &b, "perplexity", 1000, 0.95, 1).unwrap();
        assert!(p.diff.point < 0.0 && p.diff.hi < 0.0);
        assert!(paired_lm(&a, &b[..3], "loss", 1000, 0.95, 1).is_err());
        assert!(paired_lm(&a, &b, "accuracy", 1000, 0.95, 1).is_err());
    }
}
