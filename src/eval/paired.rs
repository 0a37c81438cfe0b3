//! Comparing two models on the same items: a paired bootstrap of any metric's difference, and
//! McNemar's test on per-item correctness (with the erfc it needs for the χ² tail).

use serde::Serialize;

use super::bootstrap::{check, interval, replicate, Interval};
use super::Predictions;
use crate::error::{Error, Result};

/// A paired difference `metric(a) − metric(b)` with its bootstrap interval and p-value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PairedDiff {
    /// `metric(a) − metric(b)`: positive when a scores higher.
    pub diff: Interval,
    /// Two-sided bootstrap p-value for "no difference": twice the smaller of the shares of
    /// resamples with `d ≤ 0` and with `d ≥ 0`, capped at 1, i.e. `min(1, 2·min(#{d ≤ 0},
    /// #{d ≥ 0}) / R)` over the R resamples where the metric is defined. Identical models give 1.
    pub p_value: f64,
}

/// Paired bootstrap of `metric(a) − metric(b)`: each resample draws one set of item indices and
/// applies it to both models, so item difficulty cancels out. Resampling, interval and `NaN`
/// handling as in [`bootstrap`](fn@super::bootstrap); the same seed gives the same resamples as
/// there.
///
/// Errors: `a` and `b` differ in length or in any label (they must score the same items in
/// the same order), or the arguments that [`bootstrap`](fn@super::bootstrap) refuses.
pub fn paired_bootstrap(
    a: &Predictions,
    b: &Predictions,
    metric: impl Fn(&Predictions) -> f64,
    resamples: usize,
    level: f64,
    seed: u64,
) -> Result<PairedDiff> {
    const OP: &str = "paired_bootstrap";
    if a.len() != b.len() {
        return Err(Error::shape(OP, &[a.len()], &[b.len()], "both models must score the same items"));
    }
    if let Some(i) = a.labels.iter().zip(&b.labels).position(|(x, y)| x != y) {
        return Err(Error::arg(
            OP,
            format!("item {i} has label {} in a but {} in b", a.labels[i], b.labels[i]),
        ));
    }
    check(OP, a.len(), resamples, level)?;
    let point = metric(a) - metric(b);
    let reps = replicate(a.len(), resamples, seed, |idx| metric(&a.subset(idx)) - metric(&b.subset(idx)));
    Ok(PairedDiff::from_replicates(point, reps, level))
}

impl PairedDiff {
    /// The percentile interval of the replicated differences and the two-sided p-value: twice
    /// the smaller share of replicates on either side of 0 (NaN replicates left out).
    pub(crate) fn from_replicates(point: f64, reps: Vec<f64>, level: f64) -> PairedDiff {
        let defined = reps.iter().filter(|d| !d.is_nan()).count();
        let le = reps.iter().filter(|&&d| d <= 0.0).count();
        let ge = reps.iter().filter(|&&d| d >= 0.0).count();
        let p_value =
            if defined == 0 { f64::NAN } else { (2.0 * le.min(ge) as f64 / defined as f64).min(1.0) };
        PairedDiff { diff: interval(point, reps, level), p_value }
    }
}

/// Below this many discordant pairs (`b + c`) [`mcnemar`] uses the exact binomial test.
pub const MCNEMAR_EXACT_BELOW: u64 = 25;

/// McNemar's test of two classifiers on the same items.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct McNemar {
    /// Items a got right and b got wrong.
    pub b: u64,
    /// Items a got wrong and b got right.
    pub c: u64,
    /// Exact test: `min(b, c)`, the binomial count. χ² test: `(|b − c| − 1)² / (b + c)`.
    pub statistic: f64,
    /// Two-sided p-value.
    pub p_value: f64,
    /// Whether the exact binomial test was used.
    pub exact: bool,
}

/// McNemar's test on per-item correctness (see [`Predictions::correct`]). Only discordant items
/// count. With `b + c <` [`MCNEMAR_EXACT_BELOW`] the p-value is the exact two-sided binomial
/// `min(1, 2·P(X ≤ min(b, c)))`, `X ~ Bin(b + c, ½)`; otherwise it is the χ²(1) tail of the
/// continuity-corrected `(|b − c| − 1)² / (b + c)` (the conventions of statsmodels'
/// `mcnemar`). No discordant items gives p = 1.
///
/// Errors: the slices differ in length or are empty.
pub fn mcnemar(a_correct: &[bool], b_correct: &[bool]) -> Result<McNemar> {
    const OP: &str = "mcnemar";
    if a_correct.len() != b_correct.len() {
        return Err(Error::shape(
            OP,
            &[a_correct.len()],
            &[b_correct.len()],
            "one flag per item for each model",
        ));
    }
    if a_correct.is_empty() {
        return Err(Error::arg(OP, "no items"));
    }
    let b = a_correct.iter().zip(b_correct).filter(|&(&x, &y)| x && !y).count() as u64;
    let c = a_correct.iter().zip(b_correct).filter(|&(&x, &y)| !x && y).count() as u64;
    let n = b + c;
    if n < MCNEMAR_EXACT_BELOW {
        let k = b.min(c);
        let p_value = (2.0 * binomial_half_cdf(n, k)).min(1.0);
        return Ok(McNemar { b, c, statistic: k as f64, p_value, exact: true });
    }
    let d = b.abs_diff(c) as f64 - 1.0;
    let statistic = d * d / n as f64;
    Ok(McNemar { b, c, statistic, p_value: chi2_sf_1(statistic), exact: false })
}

/// `P(X ≤ k)` for `X ~ Bin(n, ½)`, summing `C(n, i) / 2ⁿ` with the binomial coefficient built
/// up as a running ratio (exact in f64 for the small n the exact test uses).
fn binomial_half_cdf(n: u64, k: u64) -> f64 {
    let half_n = 0.5f64.powi(n.min(i32::MAX as u64) as i32);
    let mut term = half_n; // C(n, 0) / 2ⁿ
    let mut sum = term;
    for i in 1..=k.min(n) {
        term *= (n - i + 1) as f64 / i as f64;
        sum += term;
    }
    sum.min(1.0)
}

/// Survival function of the χ² distribution with one degree of freedom: `P(X > x) =
/// erfc(√(x/2))`, since X is the square of a standard normal. 1 for `x ≤ 0`.
pub fn chi2_sf_1(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x <= 0.0 {
        return 1.0;
    }
    erfc((x / 2.0).sqrt())
}

/// The complementary error function, relative error below 1e-14 over the whole line.
///
/// Below 1.5 it is `1 − erf(x)` with erf from its series of positive terms
/// `erf(x) = 2/√π · e^{−x²} · Σₙ 2ⁿ x^{2n+1} / (1·3·…·(2n+1))` (no cancellation inside the sum,
/// and erfc ≥ 0.034 there, so the final subtraction costs little). From 1.5 on it is Laplace's
/// continued fraction `erfc(x) = e^{−x²}/√π · 1/(x + ½/(x + 1/(x + 3⁄2/(x + …))))`, which
/// never subtracts; 80 levels reach f64 precision from 1.5 up (measured against mpmath).
/// The series would lose digits further out: 1e-11 relative at 3, 1e-8 at 4. Negative x uses `erfc(−x) = 2 − erfc(x)`.
pub fn erfc(x: f64) -> f64 {
    const FRAC_1_SQRT_PI: f64 = 0.564_189_583_547_756_3; // 1/√π
    if x.is_nan() {
        return f64::NAN;
    }
    if x < 0.0 {
        return 2.0 - erfc(-x);
    }
    let x2 = x * x;
    if x < 1.5 {
        let (mut term, mut sum) = (x, x);
        for n in 1..400 {
            term *= 2.0 * x2 / (2 * n + 1) as f64;
            sum += term;
            if term < sum * 1e-17 {
                break;
            }
        }
        return 1.0 - 2.0 * FRAC_1_SQRT_PI * (-x2).exp() * sum;
    }
    // Bottom-up evaluation of the continued fraction; partial numerators are k/2.
    let mut f = x;
    for k in (1..=80).rev() {
        f = x + (k as f64 / 2.0) / f;
    }
    FRAC_1_SQRT_PI * (-x2).exp() / f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erfc_matches_high_precision_values() {
        // Reference values from mpmath at 30 digits.
        let cases = [
            (0.0, 1.0),
            (0.1, 0.887537083981715),
            (0.5, 0.4795001221869535),
            (1.0, 0.15729920705028513),
            (1.5, 0.033894853524689274),
            (2.0, 0.004677734981047266),
            (2.5, 0.0004069520174449589),
            (2.9, 4.109787809945886e-05),
            (3.0, 2.209049699858544e-05),
            (3.1, 1.164865736719959e-05),
            (4.0, 1.541725790028002e-08),
            (5.0, 1.5374597944280347e-12),
            (6.0, 2.1519736712498913e-17),
            (10.0, 2.088487583762545e-45),
            (-1.0, 1.842700792949715),
        ];
        for (x, want) in cases {
            let got = erfc(x);
            let rel = ((got - want) / want).abs();
            assert!(rel < 1e-14, "erfc({x}) = {got:e}, want {want:e} (rel {rel:e})");
        }
        assert_eq!(erfc(40.0), 0.0);
        assert_eq!(erfc(-40.0), 2.0);
        assert!(erfc(f64::NAN).is_nan());
    }

    #[test]
    fn chi2_tail_at_textbook_critical_values() {
        // χ²(1) critical values: 3.841458820694124 at 5%, 6.634896601021214 at 1%.
        assert!((chi2_sf_1(3.841_458_820_694_124) - 0.05).abs() < 1e-12);
        assert!((chi2_sf_1(6.634_896_601_021_214) - 0.01).abs() < 1e-12);
        assert_eq!(chi2_sf_1(0.0), 1.0);
    }

    #[test]
    fn binomial_half_cdf_by_hand() {
        // n = 4: C(4,0..4) = 1, 4, 6, 4, 1 over 16.
        assert_eq!(binomial_half_cdf(4, 0), 1.0 / 16.0);
        assert_eq!(binomial_half_cdf(4, 2), 11.0 / 16.0);
        assert_eq!(binomial_half_cdf(4, 4), 1.0);
        assert_eq!(binomial_half_cdf(0, 0), 1.0);
    }
}
