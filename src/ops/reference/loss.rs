//! Reference losses (`ops::loss`): cross-entropy with ignore_index and label smoothing, MSE.

use super::RefTensor;
use crate::ops::loss::CrossEntropy;

fn check(logits: &RefTensor, targets: &[u32]) -> (usize, usize) {
    assert_eq!(logits.rank(), 2, "reference: logits must be (N, C)");
    assert_eq!(targets.len(), logits.shape[0], "reference: one target per row");
    (logits.shape[0], logits.shape[1])
}

fn ignored(t: u32, opts: &CrossEntropy) -> bool {
    opts.ignore_index == Some(t)
}

/// Rows that count toward the mean.
fn count(targets: &[u32], opts: &CrossEntropy) -> usize {
    targets.iter().filter(|&&t| !ignored(t, opts)).count()
}

/// Mean over non-ignored rows of `-(1-ε) log p[t] - ε/C Σ_c log p[c]` (0 when all are ignored).
pub fn cross_entropy(logits: &RefTensor, targets: &[u32], opts: CrossEntropy) -> f64 {
    let (n, c) = check(logits, targets);
    let eps = opts.label_smoothing as f64;
    let logp = super::softmax::log_softmax(logits);
    let mut total = 0.0;
    for (i, &t) in targets.iter().enumerate().take(n) {
        if ignored(t, &opts) {
            continue;
        }
        let row = &logp.data[i * c..(i + 1) * c];
        total += -(1.0 - eps) * row[t as usize] - eps / c as f64 * row.iter().sum::<f64>();
    }
    let k = count(targets, &opts);
    if k == 0 {
        0.0
    } else {
        total / k as f64
    }
}

/// Gradient of [`cross_entropy`] w.r.t. the logits given the scalar upstream gradient `g`:
/// `g / count * (softmax - (1-ε) onehot(t) - ε/C)`, zero on ignored rows.
pub fn cross_entropy_backward(logits: &RefTensor, targets: &[u32], opts: CrossEntropy, g: f64) -> RefTensor {
    let (_, c) = check(logits, targets);
    let eps = opts.label_smoothing as f64;
    let p = super::softmax::softmax(logits);
    let k = count(targets, &opts);
    let scale = if k == 0 { 0.0 } else { g / k as f64 };
    let mut gx = vec![0.0; logits.numel()];
    for (i, &t) in targets.iter().enumerate() {
        if ignored(t, &opts) {
            continue;
        }
        for j in 0..c {
            let hit = if j == t as usize { 1.0 - eps } else { 0.0 };
            gx[i * c + j] = scale * (p.data[i * c + j] - hit - eps / c as f64);
        }
    }
    RefTensor::new(gx, &logits.shape)
}

/// `mean((a - b)²)` over every element (NaN for empty inputs: 0/0, as PyTorch).
pub fn mse(a: &RefTensor, b: &RefTensor) -> f64 {
    assert_eq!(a.shape, b.shape, "reference: mse shapes differ");
    a.data.iter().zip(&b.data).map(|(x, y)| (x - y) * (x - y)).sum::<f64>() / a.numel() as f64
}

/// Gradients of [`mse`] given the scalar upstream gradient `g`: `±2 (a - b) g / N`.
pub fn mse_backward(a: &RefTensor, b: &RefTensor, g: f64) -> (RefTensor, RefTensor) {
    let n = a.numel().max(1) as f64;
    let ga = a.zip(b, |x, y| 2.0 * (x - y) * g / n);
    let gb = ga.map(|v| -v);
    (ga, gb)
}
