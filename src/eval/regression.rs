//! Regression errors between predictions and targets. Each takes two slices of equal length
//! and returns `NaN` when they are empty or differ in length.

/// Mean squared error.
pub fn mse(pred: &[f64], target: &[f64]) -> f64 {
    mean_of(pred, target, |d| d * d)
}

/// Mean absolute error.
pub fn mae(pred: &[f64], target: &[f64]) -> f64 {
    mean_of(pred, target, f64::abs)
}

/// Root mean squared error.
pub fn rmse(pred: &[f64], target: &[f64]) -> f64 {
    mse(pred, target).sqrt()
}

/// Coefficient of determination `1 − SS_res / SS_tot`. Predicting the target mean gives 0 and
/// worse predictors go negative. A constant target (`SS_tot = 0`) gives 1 when predicted
/// exactly and 0 otherwise, like sklearn's `r2_score` with `force_finite=True`.
pub fn r2(pred: &[f64], target: &[f64]) -> f64 {
    if pred.is_empty() || pred.len() != target.len() {
        return f64::NAN;
    }
    let mean = target.iter().sum::<f64>() / target.len() as f64;
    let ss_res: f64 = pred.iter().zip(target).map(|(p, t)| (t - p) * (t - p)).sum();
    let ss_tot: f64 = target.iter().map(|t| (t - mean) * (t - mean)).sum();
    if ss_tot == 0.0 {
        return if ss_res == 0.0 { 1.0 } else { 0.0 };
    }
    1.0 - ss_res / ss_tot
}

fn mean_of(pred: &[f64], target: &[f64], f: impl Fn(f64) -> f64) -> f64 {
    if pred.is_empty() || pred.len() != target.len() {
        return f64::NAN;
    }
    pred.iter().zip(target).map(|(p, t)| f(p - t)).sum::<f64>() / pred.len() as f64
}
