//! Evaluation: metrics over class probabilities, curves, calibration, regression errors, and
//! the statistics that say how far to trust them (bootstrap intervals, paired comparisons).
//!
//! Everything here runs on the CPU in f64 over data already read back from the device.
//! Conventions follow scikit-learn wherever it has a function of the same name, so a number
//! printed by whet can be checked against a one-line sklearn call:
//!
//! - precision, recall and F1 use `zero_division=0`: a 0/0 ratio counts as 0;
//! - ROC and PR curves group tied scores into one threshold, so ties never depend on order;
//! - average precision is the step-wise sum `Σ (Rₙ − Rₙ₋₁) Pₙ`, not a trapezoid;
//! - log loss clips probabilities to `[1e-15, 1 − 1e-15]`.
//!
//! [`Predictions::new`] rejects empty or malformed input with a typed error. Functions that
//! take plain slices cannot refuse, so they document what empty or mismatched input gives
//! (`NaN` for a number, `None` where a value can be undefined, an empty [`Curve`]).

pub mod bootstrap;
pub mod calibration;
pub mod curves;
pub mod lm;
pub mod metrics;
pub mod paired;
pub mod regression;

pub use bootstrap::{bootstrap, bootstrap_metrics, Interval, MIN_RESAMPLES};
pub use calibration::{ece, reliability, CalibrationBin, ECE_BINS};
pub use curves::{average_precision, pr_curve, roc_auc, roc_auc_ovr, roc_curve, roc_summary, Curve};
pub use lm::{lm_metrics, paired_lm};
pub use metrics::{
    accuracy, balanced_accuracy, brier, classification_metrics, confusion, log_loss, mcc, perplexity, prf,
    top_k, ClassScores, Confusion, Prf,
};
pub use paired::{chi2_sf_1, erfc, mcnemar, paired_bootstrap, McNemar, PairedDiff, MCNEMAR_EXACT_BELOW};
pub use regression::{mae, mse, r2, rmse};

use crate::error::{Error, Result};

/// How far a row of probabilities may sum from 1 before [`Predictions::new`] refuses it. Wide
/// enough for f32 softmax rounding over many classes, narrow enough to catch logits or
/// unnormalised scores passed by mistake.
pub const ROW_SUM_TOLERANCE: f32 = 1e-3;

/// Class probabilities for n items: row-major `[n, classes]`, rows sum to ~1.
///
/// Build it with [`Predictions::new`], which checks shapes, label range and that every row is
/// a probability distribution. The fields are public for reading; a value assembled by hand
/// that breaks those rules never makes a metric panic, but its numbers are not meaningful.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Predictions {
    /// `[n, classes]` probabilities, row-major.
    pub probs: Vec<f32>,
    /// The true class of each item, `< classes`.
    pub labels: Vec<usize>,
    /// Number of classes (columns of `probs`).
    pub classes: usize,
}

impl Predictions {
    /// Checks and wraps predictions: at least one item and one class, `probs.len() == n *
    /// classes`, every label `< classes`, every probability finite and in `[0, 1]`, and every
    /// row summing to 1 within [`ROW_SUM_TOLERANCE`]. Errors name the item (0-based row) and
    /// class at fault.
    pub fn new(probs: Vec<f32>, labels: Vec<usize>, classes: usize) -> Result<Predictions> {
        const OP: &str = "Predictions::new";
        if classes == 0 {
            return Err(Error::arg(OP, "classes must be at least 1"));
        }
        if labels.is_empty() {
            return Err(Error::arg(OP, "no items: labels is empty"));
        }
        if labels.len().checked_mul(classes) != Some(probs.len()) {
            return Err(Error::shape(
                OP,
                &[probs.len()],
                &[labels.len(), classes],
                "probs must be row-major [n, classes] for n labels",
            ));
        }
        for (i, (row, &label)) in probs.chunks_exact(classes).zip(&labels).enumerate() {
            if label >= classes {
                return Err(Error::arg(
                    OP,
                    format!("item {i}: label {label} out of range for {classes} classes"),
                ));
            }
            if let Some(c) =
                row.iter().position(|v| !v.is_finite() || *v < 0.0 || *v > 1.0 + ROW_SUM_TOLERANCE)
            {
                let v = row.get(c).copied().unwrap_or(f32::NAN);
                return Err(Error::arg(OP, format!("item {i}, class {c}: probability {v} is not in [0, 1]")));
            }
            let sum: f64 = row.iter().map(|&v| f64::from(v)).sum();
            if (sum - 1.0).abs() > f64::from(ROW_SUM_TOLERANCE) {
                return Err(Error::arg(
                    OP,
                    format!("item {i}: probabilities sum to {sum}, not 1 (pass softmax outputs, not logits)"),
                ));
            }
        }
        Ok(Predictions { probs, labels, classes })
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no items (only possible for a hand-built value or an empty subset).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Each item's class probabilities, one row per item (in item order).
    pub fn rows(&self) -> std::slice::ChunksExact<'_, f32> {
        // `new` refused zero classes, so the chunk size is never 0.
        self.probs.chunks_exact(self.classes.max(1))
    }

    /// The probability row of item `i`, or `None` past the end (or if `probs` is short).
    pub fn row(&self, i: usize) -> Option<&[f32]> {
        let start = i.checked_mul(self.classes)?;
        self.probs.get(start..start.checked_add(self.classes)?)
    }

    /// The argmax class of each item; ties go to the lowest class index (like `numpy.argmax`).
    pub fn predicted(&self) -> Vec<usize> {
        (0..self.len()).map(|i| self.row(i).map(argmax).unwrap_or(0)).collect()
    }

    /// Whether each item's argmax class equals its label (the input to [`mcnemar`]).
    pub fn correct(&self) -> Vec<bool> {
        self.predicted().iter().zip(&self.labels).map(|(p, l)| p == l).collect()
    }

    /// The items at `idx`, in that order, repeats kept (a bootstrap resample). Indices past the
    /// end are skipped rather than panicking, so the result can be shorter than `idx`.
    pub fn subset(&self, idx: &[usize]) -> Predictions {
        let mut probs = Vec::with_capacity(idx.len() * self.classes);
        let mut labels = Vec::with_capacity(idx.len());
        for &i in idx {
            if let (Some(row), Some(&label)) = (self.row(i), self.labels.get(i)) {
                probs.extend_from_slice(row);
                labels.push(label);
            }
        }
        Predictions { probs, labels, classes: self.classes }
    }

    /// Column `class` as f64 scores, one per item (0 where a row is missing).
    pub(crate) fn column(&self, class: usize) -> Vec<f64> {
        (0..self.len())
            .map(|i| self.row(i).and_then(|r| r.get(class)).map(|&v| f64::from(v)).unwrap_or(0.0))
            .collect()
    }
}

/// Index of the largest value; the first one on ties, NaN never wins.
fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    let mut best_v = f32::NEG_INFINITY;
    for (c, &v) in row.iter().enumerate() {
        if v > best_v {
            best = c;
            best_v = v;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_one_probability_row_per_item() {
        let p = Predictions::new(vec![0.9, 0.1, 0.3, 0.7, 0.5, 0.5], vec![0, 1, 0], 2).unwrap();
        let rows: Vec<&[f32]> = p.rows().collect();
        assert_eq!(rows, [&[0.9, 0.1][..], &[0.3, 0.7], &[0.5, 0.5]]);
    }

    #[test]
    fn argmax_ties_go_to_the_lowest_index() {
        assert_eq!(argmax(&[0.4, 0.4, 0.2]), 0);
        assert_eq!(argmax(&[0.2, 0.4, 0.4]), 1);
        assert_eq!(argmax(&[f32::NAN, 0.1, 0.9]), 2);
    }

    #[test]
    fn subset_skips_out_of_range_indices() {
        let p = Predictions::new(vec![0.9, 0.1, 0.2, 0.8], vec![0, 1], 2).unwrap();
        let s = p.subset(&[1, 7, 1, 0]);
        assert_eq!(s.labels, vec![1, 1, 0]);
        assert_eq!(s.probs, vec![0.2, 0.8, 0.2, 0.8, 0.9, 0.1]);
    }
}
