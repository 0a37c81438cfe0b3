//! Reference BatchNorm (`ops::batch_norm`) over `[N, C, ...]`, with the running-stat update.

use super::RefTensor;

/// (n, c, hw) and the flat index of element j of channel c.
fn dims(x: &RefTensor) -> (usize, usize, usize) {
    assert!(x.rank() == 2 || x.rank() == 4, "reference: batch_norm input must be [N, C] or NCHW");
    let (n, c) = (x.shape[0], x.shape[1]);
    (n, c, x.numel() / (n * c))
}

fn channel(x: &RefTensor, c: usize) -> Vec<usize> {
    let (n, cs, hw) = dims(x);
    (0..n).flat_map(|i| (0..hw).map(move |j| (i * cs + c) * hw + j)).collect()
}

/// Mean and biased variance of each channel.
pub fn batch_stats(x: &RefTensor) -> (Vec<f64>, Vec<f64>) {
    let (_, c, _) = dims(x);
    (0..c)
        .map(|ch| {
            let idx = channel(x, ch);
            let m = idx.len() as f64;
            let mu = idx.iter().map(|&i| x.data[i]).sum::<f64>() / m;
            let var = idx.iter().map(|&i| (x.data[i] - mu).powi(2)).sum::<f64>() / m;
            (mu, var)
        })
        .unzip()
}

/// The statistics a call normalises with: batch (training) or running (eval).
fn stats(x: &RefTensor, rm: &RefTensor, rv: &RefTensor, training: bool) -> (Vec<f64>, Vec<f64>) {
    if training {
        batch_stats(x)
    } else {
        (rm.data.clone(), rv.data.clone())
    }
}

/// `(x - mean) / sqrt(var + eps) · w + b` per channel.
pub fn batch_norm(
    x: &RefTensor,
    w: &RefTensor,
    b: &RefTensor,
    rm: &RefTensor,
    rv: &RefTensor,
    training: bool,
    eps: f64,
) -> RefTensor {
    let (_, c, _) = dims(x);
    let (mu, var) = stats(x, rm, rv, training);
    let mut y = vec![0.0; x.numel()];
    for ch in 0..c {
        for i in channel(x, ch) {
            y[i] = (x.data[i] - mu[ch]) / (var[ch] + eps).sqrt() * w.data[ch] + b.data[ch];
        }
    }
    RefTensor::new(y, &x.shape)
}

/// Running statistics after one training call: `(1 - m)·running + m·stat` with the unbiased
/// variance.
pub fn updated_running_stats(
    x: &RefTensor,
    rm: &RefTensor,
    rv: &RefTensor,
    momentum: f64,
) -> (RefTensor, RefTensor) {
    let (mu, var) = batch_stats(x);
    let m = channel(x, 0).len() as f64;
    let c = mu.len();
    let nm = (0..c).map(|i| (1.0 - momentum) * rm.data[i] + momentum * mu[i]).collect();
    let nv = (0..c).map(|i| (1.0 - momentum) * rv.data[i] + momentum * var[i] * m / (m - 1.0)).collect();
    (RefTensor::new(nm, &[c]), RefTensor::new(nv, &[c]))
}

/// Gradients of [`batch_norm`] w.r.t. x, w and b given `g`.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_backward(
    x: &RefTensor,
    w: &RefTensor,
    rm: &RefTensor,
    rv: &RefTensor,
    training: bool,
    eps: f64,
    g: &RefTensor,
) -> (RefTensor, RefTensor, RefTensor) {
    let (_, c, _) = dims(x);
    let (mu, var) = stats(x, rm, rv, training);
    let mut gx = vec![0.0; x.numel()];
    let mut gw = vec![0.0; c];
    let mut gb = vec![0.0; c];
    for ch in 0..c {
        let idx = channel(x, ch);
        let m = idx.len() as f64;
        let rs = 1.0 / (var[ch] + eps).sqrt();
        let xhat = |i: usize| (x.data[i] - mu[ch]) * rs;
        let sg: f64 = idx.iter().map(|&i| g.data[i]).sum();
        let sgx: f64 = idx.iter().map(|&i| g.data[i] * xhat(i)).sum();
        gb[ch] = sg;
        gw[ch] = sgx;
        for &i in &idx {
            // Training: the batch mean and variance depend on x too.
            gx[i] = if training {
                w.data[ch] * rs * (g.data[i] - sg / m - xhat(i) * sgx / m)
            } else {
                w.data[ch] * rs * g.data[i]
            };
        }
    }
    (RefTensor::new(gx, &x.shape), RefTensor::new(gw, &[c]), RefTensor::new(gb, &[c]))
}
