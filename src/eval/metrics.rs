//! Label metrics: accuracy, top-k, the confusion matrix and what it gives (precision, recall,
//! F1 with sklearn's averages, balanced accuracy, MCC), probability scores (log loss, Brier),
//! perplexity, and [`classification_metrics`], the standard set in one map.

use std::collections::BTreeMap;

use serde::Serialize;

use super::calibration::{ece, ECE_BINS};
use super::curves::{average_precision, roc_auc_ovr};
use super::Predictions;

/// Probabilities are clipped to `[LOG_LOSS_EPS, 1 - LOG_LOSS_EPS]` before the log, as sklearn
/// did before its `eps="auto"` change, so one confident mistake costs ~34.5 rather than ∞.
pub const LOG_LOSS_EPS: f64 = 1e-15;

/// Share of items whose argmax class is the label. `NaN` when there are no items.
pub fn accuracy(p: &Predictions) -> f64 {
    let hits = p.predicted().iter().zip(&p.labels).filter(|(a, b)| a == b).count();
    ratio_or_nan(hits as f64, p.len() as f64)
}

/// Share of items whose label is among the `k` most probable classes. Ties are ranked the way
/// [`Predictions::predicted`] breaks them (lower class index first), so `top_k(p, 1)` equals
/// [`accuracy`]. `k = 0` gives 0 and `k >= classes` gives 1. `NaN` when there are no items.
pub fn top_k(p: &Predictions, k: usize) -> f64 {
    let mut hits = 0usize;
    for (i, &label) in p.labels.iter().enumerate() {
        let Some(row) = p.row(i) else { continue };
        let Some(&target) = row.get(label) else { continue };
        // Rank of the label: classes strictly more probable, plus equal ones with a lower index.
        let rank = row.iter().enumerate().filter(|&(c, &v)| v > target || (v == target && c < label)).count();
        if rank < k {
            hits += 1;
        }
    }
    ratio_or_nan(hits as f64, p.len() as f64)
}

/// A confusion matrix: `counts[t * classes + q]` items of true class `t` predicted as `q`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Confusion {
    /// Number of classes (rows and columns).
    pub classes: usize,
    /// Row-major `[true, pred]` counts.
    pub counts: Vec<u64>,
}

impl Confusion {
    /// Counts the pairs `(truth[i], pred[i])`; pairs with a class `>= classes` are skipped and
    /// extra items of the longer slice are ignored.
    pub fn from_labels(classes: usize, truth: &[usize], pred: &[usize]) -> Confusion {
        let mut counts = vec![0u64; classes * classes];
        for (&t, &q) in truth.iter().zip(pred) {
            if t < classes && q < classes {
                if let Some(slot) = counts.get_mut(t * classes + q) {
                    *slot += 1;
                }
            }
        }
        Confusion { classes, counts }
    }

    /// Items of true class `t` predicted as `q` (0 outside the matrix).
    pub fn get(&self, t: usize, q: usize) -> u64 {
        if t >= self.classes || q >= self.classes {
            return 0;
        }
        self.counts.get(t * self.classes + q).copied().unwrap_or(0)
    }

    /// Total number of items.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Items whose true class is `t` (the support of `t`).
    pub fn true_count(&self, t: usize) -> u64 {
        (0..self.classes).map(|q| self.get(t, q)).sum()
    }

    /// Items predicted as `q`.
    pub fn pred_count(&self, q: usize) -> u64 {
        (0..self.classes).map(|t| self.get(t, q)).sum()
    }
}

/// The confusion matrix of the argmax predictions.
pub fn confusion(p: &Predictions) -> Confusion {
    Confusion::from_labels(p.classes, &p.labels, &p.predicted())
}

/// Precision, recall and F1 of one class or one average.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ClassScores {
    /// `tp / (tp + fp)`, 0 when nothing was predicted as the class.
    pub precision: f64,
    /// `tp / (tp + fn)`, 0 when the class has no items.
    pub recall: f64,
    /// `2 tp / (2 tp + fp + fn)` (the harmonic mean of the two), 0 when both are 0.
    pub f1: f64,
    /// Items whose true class this is (for averages: all items).
    pub support: u64,
}

/// Per-class scores and sklearn's three averages.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prf {
    /// One entry per class, in class order (absent classes included, all zero).
    pub per_class: Vec<ClassScores>,
    /// Unweighted mean over the classes that occur among the labels or the predictions (sklearn
    /// with `labels=None` leaves the others out; they would only drag the mean towards 0).
    pub macro_avg: ClassScores,
    /// Pooled counts; for single-label data all three equal accuracy.
    pub micro: ClassScores,
    /// Mean weighted by each class's support.
    pub weighted: ClassScores,
}

/// Precision, recall and F1 from a confusion matrix, with 0/0 counted as 0 (sklearn's
/// `zero_division=0`). An empty matrix gives `NaN` averages.
pub fn prf(c: &Confusion) -> Prf {
    let n = c.total();
    let per_class: Vec<ClassScores> = (0..c.classes)
        .map(|k| {
            let tp = c.get(k, k);
            let truth = c.true_count(k);
            let pred = c.pred_count(k);
            ClassScores {
                precision: ratio_or_zero(tp as f64, pred as f64),
                recall: ratio_or_zero(tp as f64, truth as f64),
                f1: ratio_or_zero(2.0 * tp as f64, (truth + pred) as f64),
                support: truth,
            }
        })
        .collect();

    let present: Vec<&ClassScores> = (0..c.classes)
        .filter(|&k| c.true_count(k) + c.pred_count(k) > 0)
        .filter_map(|k| per_class.get(k))
        .collect();
    let m = present.len() as f64;
    let macro_avg = ClassScores {
        precision: ratio_or_nan(present.iter().map(|s| s.precision).sum(), m),
        recall: ratio_or_nan(present.iter().map(|s| s.recall).sum(), m),
        f1: ratio_or_nan(present.iter().map(|s| s.f1).sum(), m),
        support: n,
    };

    let tp: u64 = (0..c.classes).map(|k| c.get(k, k)).sum();
    let pooled = ratio_or_nan(tp as f64, n as f64);
    let micro = ClassScores { precision: pooled, recall: pooled, f1: pooled, support: n };

    let weigh = |f: fn(&ClassScores) -> f64| {
        ratio_or_nan(per_class.iter().map(|s| s.support as f64 * f(s)).sum(), n as f64)
    };
    let weighted = ClassScores {
        precision: weigh(|s| s.precision),
        recall: weigh(|s| s.recall),
        f1: weigh(|s| s.f1),
        support: n,
    };

    Prf { per_class, macro_avg, micro, weighted }
}

/// Mean recall over the classes that have items (sklearn's `balanced_accuracy_score`): a class
/// that is only ever predicted does not count. `NaN` for an empty matrix.
pub fn balanced_accuracy(c: &Confusion) -> f64 {
    let recalls: Vec<f64> = (0..c.classes)
        .filter(|&k| c.true_count(k) > 0)
        .map(|k| c.get(k, k) as f64 / c.true_count(k) as f64)
        .collect();
    ratio_or_nan(recalls.iter().sum(), recalls.len() as f64)
}

/// Matthews correlation coefficient, multi-class form (Gorodkin's R_K, as sklearn computes it):
/// `(c·s − Σ pₖtₖ) / √((s² − Σ pₖ²)(s² − Σ tₖ²))` with `c` correct items, `s` all items, `tₖ`
/// and `pₖ` the true and predicted counts of class k. 0 when the denominator is 0 (sklearn),
/// `NaN` for an empty matrix.
pub fn mcc(c: &Confusion) -> f64 {
    let s = c.total() as f64;
    if s == 0.0 {
        return f64::NAN;
    }
    let correct: f64 = (0..c.classes).map(|k| c.get(k, k) as f64).sum();
    let t: Vec<f64> = (0..c.classes).map(|k| c.true_count(k) as f64).collect();
    let q: Vec<f64> = (0..c.classes).map(|k| c.pred_count(k) as f64).collect();
    let tq: f64 = t.iter().zip(&q).map(|(a, b)| a * b).sum();
    let qq: f64 = q.iter().map(|v| v * v).sum();
    let tt: f64 = t.iter().map(|v| v * v).sum();
    let den = ((s * s - qq) * (s * s - tt)).sqrt();
    if den == 0.0 {
        0.0
    } else {
        (correct * s - tq) / den
    }
}

/// Mean negative log-probability of the true class, probabilities clipped to
/// `[1e-15, 1 − 1e-15]` ([`LOG_LOSS_EPS`]). Natural log. `NaN` when there are no items.
pub fn log_loss(p: &Predictions) -> f64 {
    let total: f64 = p
        .labels
        .iter()
        .enumerate()
        .map(|(i, &label)| {
            let q = p.row(i).and_then(|r| r.get(label)).map(|&v| f64::from(v)).unwrap_or(0.0);
            -q.clamp(LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS).ln()
        })
        .sum();
    ratio_or_nan(total, p.len() as f64)
}

/// Brier score in its original multi-class form: the mean over items of `Σₖ (pₖ − yₖ)²`, with
/// `y` the one-hot label; 0 is perfect, 2 is the worst. For two classes it is twice sklearn's
/// `brier_score_loss` (which scores only the positive column). `NaN` when there are no items.
pub fn brier(p: &Predictions) -> f64 {
    let total: f64 = p
        .labels
        .iter()
        .enumerate()
        .map(|(i, &label)| {
            p.row(i).map_or(0.0, |r| {
                r.iter()
                    .enumerate()
                    .map(|(c, &v)| {
                        let d = f64::from(v) - if c == label { 1.0 } else { 0.0 };
                        d * d
                    })
                    .sum()
            })
        })
        .sum();
    ratio_or_nan(total, p.len() as f64)
}

/// Perplexity from a mean negative log-likelihood in nats per token: `exp(mean_nll)`.
pub fn perplexity(mean_nll: f64) -> f64 {
    mean_nll.exp()
}

/// The standard set, keyed by name:
///
/// - `accuracy`, `balanced_accuracy`, `mcc`;
/// - `precision_macro`, `recall_macro`, `f1_macro`, `f1_micro` (equal to accuracy for
///   single-label data), `precision_weighted`, `recall_weighted`, `f1_weighted`;
/// - `auc` when it is defined: AUC of class 1 for two classes, macro one-vs-rest above that
///   ([`roc_auc_ovr`]); left out when a class has no items;
/// - `average_precision` for two classes when class 1 has items (its AP);
/// - `log_loss`, `brier`, `ece` ([`ECE_BINS`] bins);
/// - `top_5` when there are more than 5 classes.
///
/// Empty predictions give an empty map.
pub fn classification_metrics(p: &Predictions) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    if p.is_empty() {
        return m;
    }
    let c = confusion(p);
    let s = prf(&c);
    let mut put = |k: &str, v: f64| {
        m.insert(k.to_string(), v);
    };
    put("accuracy", accuracy(p));
    put("balanced_accuracy", balanced_accuracy(&c));
    put("mcc", mcc(&c));
    put("precision_macro", s.macro_avg.precision);
    put("recall_macro", s.macro_avg.recall);
    put("f1_macro", s.macro_avg.f1);
    put("f1_micro", s.micro.f1);
    put("precision_weighted", s.weighted.precision);
    put("recall_weighted", s.weighted.recall);
    put("f1_weighted", s.weighted.f1);
    if let Some(auc) = roc_auc_ovr(p) {
        put("auc", auc);
    }
    if p.classes == 2 {
        let positive: Vec<bool> = p.labels.iter().map(|&l| l == 1).collect();
        if let Some(ap) = average_precision(&p.column(1), &positive) {
            put("average_precision", ap);
        }
    }
    put("log_loss", log_loss(p));
    put("brier", brier(p));
    put("ece", ece(p, ECE_BINS));
    if p.classes > 5 {
        put("top_5", top_k(p, 5));
    }
    m
}

/// `num / den`, or 0 when `den` is 0 (sklearn's `zero_division=0`).
fn ratio_or_zero(num: f64, den: f64) -> f64 {
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}

/// `num / den`, or `NaN` when `den` is 0 (a metric of nothing).
pub(crate) fn ratio_or_nan(num: f64, den: f64) -> f64 {
    if den == 0.0 {
        f64::NAN
    } else {
        num / den
    }
}
