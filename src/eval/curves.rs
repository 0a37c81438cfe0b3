//! Ranking curves over binary scores: ROC and precision-recall, their areas, and macro
//! one-vs-rest AUC for several classes.
//!
//! Tied scores form one threshold (one point), as in sklearn, so a curve never depends on the
//! order of tied items: a tie between a positive and a negative is a diagonal segment and
//! counts half in the AUC.

use serde::Serialize;

use super::Predictions;

/// Points of a curve with the threshold that gives each one, ordered by decreasing threshold.
/// The first point is the anchor at threshold `+∞` (nothing predicted positive).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Curve {
    /// ROC: false-positive rate. PR: recall.
    pub x: Vec<f64>,
    /// ROC: true-positive rate. PR: precision.
    pub y: Vec<f64>,
    /// The score at or above which items count as positive for this point.
    pub thresholds: Vec<f64>,
}

/// After one group of tied scores: the score and the positives / negatives at or above it.
struct Step {
    threshold: f64,
    tp: u64,
    fp: u64,
}

/// Cumulative counts at each distinct score, highest first. `None` for empty, mismatched or
/// NaN input.
fn steps(scores: &[f64], positive: &[bool]) -> Option<Vec<Step>> {
    if scores.is_empty() || scores.len() != positive.len() || scores.iter().any(|s| s.is_nan()) {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut out: Vec<Step> = Vec::new();
    let (mut tp, mut fp) = (0u64, 0u64);
    for (j, &i) in order.iter().enumerate() {
        if positive[i] {
            tp += 1;
        } else {
            fp += 1;
        }
        // Close the group when the next score differs (or at the end).
        let next_differs = order.get(j + 1).is_none_or(|&k| scores[k] != scores[i]);
        if next_differs {
            out.push(Step { threshold: scores[i], tp, fp });
        }
    }
    Some(out)
}

/// The ROC curve: `x` false-positive rate, `y` true-positive rate, one point per distinct
/// score plus the `(0, 0)` anchor at `+∞` (sklearn's `roc_curve` with
/// `drop_intermediate=False`). A rate whose class is absent is `NaN` (sklearn does the same
/// with a warning). Empty, mismatched or NaN input gives an empty curve.
pub fn roc_curve(scores: &[f64], positive: &[bool]) -> Curve {
    let Some(steps) = steps(scores, positive) else {
        return Curve { x: vec![], y: vec![], thresholds: vec![] };
    };
    let (p, n) = totals(&steps);
    let rate = |k: u64, total: u64| if total == 0 { f64::NAN } else { k as f64 / total as f64 };
    let mut c = Curve { x: vec![0.0], y: vec![0.0], thresholds: vec![f64::INFINITY] };
    if n == 0 {
        c.x[0] = f64::NAN;
    }
    if p == 0 {
        c.y[0] = f64::NAN;
    }
    for s in &steps {
        c.x.push(rate(s.fp, n));
        c.y.push(rate(s.tp, p));
        c.thresholds.push(s.threshold);
    }
    c
}

/// Area under the ROC curve (trapezoids, so a tied positive/negative pair counts ½): the
/// probability that a random positive scores above a random negative. `None` when either class
/// is absent, or for empty, mismatched or NaN input.
pub fn roc_auc(scores: &[f64], positive: &[bool]) -> Option<f64> {
    let steps = steps(scores, positive)?;
    let (p, n) = totals(&steps);
    if p == 0 || n == 0 {
        return None;
    }
    // Twice the area in count units, summed exactly in integers: Σ Δfp · (tpₖ + tpₖ₋₁).
    let (mut twice, mut prev_tp, mut prev_fp) = (0u128, 0u64, 0u64);
    for s in &steps {
        twice += u128::from(s.fp - prev_fp) * u128::from(s.tp + prev_tp);
        prev_tp = s.tp;
        prev_fp = s.fp;
    }
    Some(twice as f64 / (2.0 * p as f64 * n as f64))
}

/// Macro one-vs-rest AUC over the columns of `p`: the mean over classes of the AUC of that
/// class's probability against the rest. For two classes it is the AUC of class 1. `None` for
/// fewer than two classes, no items, or when some class has no items (sklearn raises there).
pub fn roc_auc_ovr(p: &Predictions) -> Option<f64> {
    if p.classes < 2 || p.is_empty() {
        return None;
    }
    if p.classes == 2 {
        let positive: Vec<bool> = p.labels.iter().map(|&l| l == 1).collect();
        return roc_auc(&p.column(1), &positive);
    }
    let mut sum = 0.0;
    for c in 0..p.classes {
        let positive: Vec<bool> = p.labels.iter().map(|&l| l == c).collect();
        sum += roc_auc(&p.column(c), &positive)?;
    }
    Some(sum / p.classes as f64)
}

/// The ROC curve of a whole prediction and its AUC: for two classes, class 1's probability
/// against the labels; for more, the micro average (sklearn's `average="micro"`): every
/// (item, class) pair is one one-vs-rest decision scored by that class's probability.
pub fn roc_summary(p: &Predictions) -> (Curve, Option<f64>) {
    let (scores, positive): (Vec<f64>, Vec<bool>) = if p.classes == 2 {
        p.column(1).into_iter().zip(p.labels.iter().map(|&l| l == 1)).unzip()
    } else {
        (0..p.len())
            .filter_map(|i| Some((p.row(i)?, *p.labels.get(i)?)))
            .flat_map(|(row, label)| row.iter().enumerate().map(move |(c, &v)| (v as f64, label == c)))
            .unzip()
    };
    (roc_curve(&scores, &positive), roc_auc(&scores, &positive))
}

/// The precision-recall curve: `x` recall, `y` precision, one point per distinct score plus the
/// `(recall 0, precision 1)` anchor at `+∞`. Same points as sklearn's
/// `precision_recall_curve`, in the opposite order and with the anchor given a threshold.
/// Recall is `NaN` when there are no positives. Empty, mismatched or NaN input gives an empty
/// curve.
pub fn pr_curve(scores: &[f64], positive: &[bool]) -> Curve {
    let Some(steps) = steps(scores, positive) else {
        return Curve { x: vec![], y: vec![], thresholds: vec![] };
    };
    let (p, _) = totals(&steps);
    let mut c = Curve { x: vec![0.0], y: vec![1.0], thresholds: vec![f64::INFINITY] };
    for s in &steps {
        c.x.push(if p == 0 { f64::NAN } else { s.tp as f64 / p as f64 });
        // Every step holds at least one item, so tp + fp > 0.
        c.y.push(s.tp as f64 / (s.tp + s.fp) as f64);
        c.thresholds.push(s.threshold);
    }
    c
}

/// Average precision, sklearn's step-wise form `Σ (Rₖ − Rₖ₋₁) Pₖ` over distinct thresholds
/// (no interpolation, no trapezoids). `None` when there are no positives, or for empty,
/// mismatched or NaN input.
pub fn average_precision(scores: &[f64], positive: &[bool]) -> Option<f64> {
    let steps = steps(scores, positive)?;
    let (p, _) = totals(&steps);
    if p == 0 {
        return None;
    }
    let mut ap = 0.0;
    let mut prev_tp = 0u64;
    for s in &steps {
        ap += (s.tp - prev_tp) as f64 / p as f64 * (s.tp as f64 / (s.tp + s.fp) as f64);
        prev_tp = s.tp;
    }
    Some(ap)
}

/// Positives and negatives in total (the last step's counts).
fn totals(steps: &[Step]) -> (u64, u64) {
    steps.last().map_or((0, 0), |s| (s.tp, s.fp))
}
