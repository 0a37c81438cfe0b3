//! Percentile bootstrap confidence intervals: resample the items with replacement, recompute
//! the statistic, read the interval off the sorted replicates.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::metrics::classification_metrics;
use super::Predictions;
use crate::error::{Error, Result};

/// Fewest resamples accepted. Each 2.5% tail of a 95% interval then rests on at least 25
/// replicates; with fewer the interval ends wander from seed to seed.
pub const MIN_RESAMPLES: usize = 1000;

/// A point estimate with a two-sided confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The statistic on the original items.
    pub point: f64,
    /// Lower end: the `(1 − level) / 2` quantile of the replicates.
    pub lo: f64,
    /// Upper end: the `(1 + level) / 2` quantile of the replicates.
    pub hi: f64,
    /// Confidence level, e.g. 0.95.
    pub level: f64,
}

impl Interval {
    /// Nothing measured (shown as "n/a" in reports).
    pub const NAN: Interval = Interval { point: f64::NAN, lo: f64::NAN, hi: f64::NAN, level: f64::NAN };

    /// Whether `v` lies in `[lo, hi]`.
    pub fn contains(&self, v: f64) -> bool {
        self.lo <= v && v <= self.hi
    }

    /// `hi − lo`.
    pub fn width(&self) -> f64 {
        self.hi - self.lo
    }
}

/// Percentile bootstrap of `stat` over `n` items. `stat` receives the item indices of one
/// sample: first `0..n` (the point estimate), then `resamples` draws of `n` indices with
/// replacement from a ChaCha8 stream seeded with `seed`, so the same seed gives the same
/// interval. Interval ends are quantiles of the replicates with linear interpolation between
/// order statistics (numpy's default): with R sorted replicates `r₀ ≤ … ≤ r_{R−1}` the q
/// quantile is read at position `q·(R − 1)`.
///
/// Replicates where `stat` is `NaN` (a metric undefined on that resample, such as AUC with a
/// class missing) are left out; if all are, `lo` and `hi` are `NaN`.
///
/// Errors: `n = 0`, `resamples <` [`MIN_RESAMPLES`], or `level` outside (0, 1).
pub fn bootstrap(
    n: usize,
    resamples: usize,
    level: f64,
    seed: u64,
    stat: impl Fn(&[usize]) -> f64,
) -> Result<Interval> {
    check("bootstrap", n, resamples, level)?;
    let all: Vec<usize> = (0..n).collect();
    let point = stat(&all);
    let reps = replicate(n, resamples, seed, stat);
    Ok(interval(point, reps, level))
}

/// Bootstrap intervals for every key of [`classification_metrics`], all read off the same
/// resamples (one draw of indices per resample feeds every metric, so the intervals are
/// consistent with each other). Arguments and errors as in [`bootstrap`], with `n = p.len()`.
///
/// Cost: one [`classification_metrics`] call per resample, whose one-vs-rest AUC sorts the n
/// scores once per class. With many classes and items, bootstrap just the metrics you report
/// through [`bootstrap`] instead.
pub fn bootstrap_metrics(
    p: &Predictions,
    resamples: usize,
    level: f64,
    seed: u64,
) -> Result<BTreeMap<String, Interval>> {
    check("bootstrap_metrics", p.len(), resamples, level)?;
    let point = classification_metrics(p);
    let mut reps: BTreeMap<&str, Vec<f64>> =
        point.keys().map(|k| (k.as_str(), Vec::with_capacity(resamples))).collect();
    for_each_resample(p.len(), resamples, seed, |idx| {
        let m = classification_metrics(&p.subset(idx));
        for (k, v) in reps.iter_mut() {
            v.push(m.get(*k).copied().unwrap_or(f64::NAN));
        }
    });
    Ok(reps
        .into_iter()
        .map(|(k, v)| {
            let pt = point.get(k).copied().unwrap_or(f64::NAN);
            (k.to_string(), interval(pt, v, level))
        })
        .collect())
}

/// Shared argument checks of the bootstrap functions.
pub(crate) fn check(op: &'static str, n: usize, resamples: usize, level: f64) -> Result<()> {
    if n == 0 {
        return Err(Error::arg(op, "no items to resample"));
    }
    if resamples < MIN_RESAMPLES {
        return Err(Error::arg(op, format!("{resamples} resamples; at least {MIN_RESAMPLES} are needed")));
    }
    if !(level > 0.0 && level < 1.0) {
        return Err(Error::arg(op, format!("confidence level {level} must lie strictly between 0 and 1")));
    }
    Ok(())
}

/// Calls `f` with the indices of each of `resamples` resamples of `n` items. Every bootstrap
/// here draws through this one function, so a seed means the same resamples everywhere.
pub(crate) fn for_each_resample(n: usize, resamples: usize, seed: u64, mut f: impl FnMut(&[usize])) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut idx = vec![0usize; n];
    for _ in 0..resamples {
        for slot in idx.iter_mut() {
            *slot = rng.random_range(0..n);
        }
        f(&idx);
    }
}

/// The statistic on each resample, in draw order.
pub(crate) fn replicate(n: usize, resamples: usize, seed: u64, stat: impl Fn(&[usize]) -> f64) -> Vec<f64> {
    let mut out = Vec::with_capacity(resamples);
    for_each_resample(n, resamples, seed, |idx| out.push(stat(idx)));
    out
}

/// Percentile interval of the non-NaN replicates.
pub(crate) fn interval(point: f64, mut reps: Vec<f64>, level: f64) -> Interval {
    reps.retain(|v| !v.is_nan());
    reps.sort_by(f64::total_cmp);
    let tail = (1.0 - level) / 2.0;
    Interval { point, lo: quantile(&reps, tail), hi: quantile(&reps, 1.0 - tail), level }
}

/// The q quantile of sorted values, interpolating linearly at position `q·(len − 1)`; `NaN`
/// when empty.
pub(crate) fn quantile(sorted: &[f64], q: f64) -> f64 {
    let Some(last) = sorted.len().checked_sub(1) else { return f64::NAN };
    let pos = q.clamp(0.0, 1.0) * last as f64;
    let below = pos.floor() as usize;
    let frac = pos - below as f64;
    let a = sorted.get(below).copied().unwrap_or(f64::NAN);
    match sorted.get(below + 1) {
        Some(&b) if frac > 0.0 => a + (b - a) * frac,
        _ => a,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_interpolates_like_numpy() {
        // numpy.percentile([1, 2, 3, 4], [0, 25, 50, 100]) = [1, 1.75, 2.5, 4]:
        // positions 0, 0.75, 1.5, 3 over indices 0..3.
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&v, 0.0), 1.0);
        assert_eq!(quantile(&v, 0.25), 1.75);
        assert_eq!(quantile(&v, 0.5), 2.5);
        assert_eq!(quantile(&v, 1.0), 4.0);
        assert_eq!(quantile(&[7.0], 0.3), 7.0);
        assert!(quantile(&[], 0.5).is_nan());
    }

    #[test]
    fn nan_replicates_are_left_out() {
        let i = interval(0.5, vec![f64::NAN, 3.0, 1.0, f64::NAN, 2.0], 0.5);
        // Left: [1, 2, 3]; quantiles 0.25 and 0.75 at positions 0.5 and 1.5.
        assert_eq!((i.lo, i.hi), (1.5, 2.5));
        let none = interval(0.5, vec![f64::NAN], 0.9);
        assert!(none.lo.is_nan() && none.hi.is_nan());
    }
}
