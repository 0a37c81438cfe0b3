//! Calibration: how well top-label confidence matches accuracy, as a reliability table and
//! its summary, the expected calibration error.

use serde::Serialize;

use super::metrics::ratio_or_nan;
use super::Predictions;

/// Bins used by [`classification_metrics`](super::classification_metrics) for `ece`; 15 is the
/// common choice since Guo et al. (2017) and torchmetrics' default.
pub const ECE_BINS: usize = 15;

/// One confidence bin of a reliability diagram.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CalibrationBin {
    /// Lower edge (excluded; the first bin also takes confidence 0).
    pub lo: f64,
    /// Upper edge (included).
    pub hi: f64,
    /// Items whose top-label confidence falls in the bin.
    pub count: u64,
    /// Mean top-label confidence of those items; `NaN` for an empty bin.
    pub confidence: f64,
    /// Share of those items predicted correctly; `NaN` for an empty bin.
    pub accuracy: f64,
}

/// Reliability table over `bins` equal-width bins of `[0, 1]`, bin k holding confidences in
/// `(k/bins, (k+1)/bins]`. The confidence of an item is its largest probability and it is
/// correct when that class (lowest index on ties) is the label. Bin edges are compared in
/// f32, the precision of the probabilities, so 0.7 lands in the bin ending at 0.7 as written.
/// `bins = 0` gives an empty table.
pub fn reliability(p: &Predictions, bins: usize) -> Vec<CalibrationBin> {
    if bins == 0 {
        return vec![];
    }
    let mut count = vec![0u64; bins];
    let mut conf_sum = vec![0.0f64; bins];
    let mut hit_sum = vec![0u64; bins];
    for ((i, &label), pred) in p.labels.iter().enumerate().zip(p.predicted()) {
        let Some(&conf) = p.row(i).and_then(|r| r.get(pred)) else { continue };
        // ceil(conf·bins) − 1 puts a confidence exactly on an edge into the bin it closes.
        let b = ((conf * bins as f32).ceil() as usize).saturating_sub(1).min(bins - 1);
        if let (Some(n), Some(s), Some(h)) = (count.get_mut(b), conf_sum.get_mut(b), hit_sum.get_mut(b)) {
            *n += 1;
            *s += f64::from(conf);
            *h += u64::from(pred == label);
        }
    }
    (0..bins)
        .map(|k| {
            let n = count.get(k).copied().unwrap_or(0);
            CalibrationBin {
                lo: k as f64 / bins as f64,
                hi: (k + 1) as f64 / bins as f64,
                count: n,
                confidence: ratio_or_nan(conf_sum.get(k).copied().unwrap_or(0.0), n as f64),
                accuracy: ratio_or_nan(hit_sum.get(k).copied().unwrap_or(0) as f64, n as f64),
            }
        })
        .collect()
}

/// Top-label expected calibration error over `bins` equal-width bins:
/// `Σ_b (n_b / n) · |accuracy_b − confidence_b|` (see [`reliability`] for the binning).
/// `NaN` for no items or `bins = 0`.
pub fn ece(p: &Predictions, bins: usize) -> f64 {
    let table = reliability(p, bins);
    let n: u64 = table.iter().map(|b| b.count).sum();
    let gap: f64 = table
        .iter()
        .filter(|b| b.count > 0)
        .map(|b| b.count as f64 * (b.accuracy - b.confidence).abs())
        .sum();
    ratio_or_nan(gap, n as f64)
}
