//! Reference LayerNorm and RMSNorm over the last axis (`ops::norm`).

use super::RefTensor;

fn rows(x: &RefTensor, w: &RefTensor) -> (usize, usize) {
    let c = *x.shape.last().expect("reference: norm needs at least one dim");
    assert_eq!(w.shape, [c], "reference: weight must be [{c}]");
    (x.numel().checked_div(c).unwrap_or(0), c)
}

/// Mean and 1/sqrt(biased variance + eps) of each row.
fn stats(x: &[f64], eps: f64) -> (f64, f64) {
    let n = x.len() as f64;
    let mu = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mu) * (v - mu)).sum::<f64>() / n;
    (mu, 1.0 / (var + eps).sqrt())
}

/// `(x - mean) / sqrt(var + eps) * w + b` with the biased variance, per row.
pub fn layer_norm(x: &RefTensor, w: &RefTensor, b: &RefTensor, eps: f64) -> RefTensor {
    let (r, c) = rows(x, w);
    let mut y = vec![0.0; x.numel()];
    for i in 0..r {
        let row = &x.data[i * c..(i + 1) * c];
        let (mu, rs) = stats(row, eps);
        for j in 0..c {
            y[i * c + j] = (row[j] - mu) * rs * w.data[j] + b.data[j];
        }
    }
    RefTensor::new(y, &x.shape)
}

/// Gradients of [`layer_norm`] w.r.t. x, w and b given `g`.
pub fn layer_norm_backward(
    x: &RefTensor,
    w: &RefTensor,
    eps: f64,
    g: &RefTensor,
) -> (RefTensor, RefTensor, RefTensor) {
    let (r, c) = rows(x, w);
    let mut gx = vec![0.0; x.numel()];
    let mut gw = vec![0.0; c];
    let mut gb = vec![0.0; c];
    let n = c as f64;
    for i in 0..r {
        let row = &x.data[i * c..(i + 1) * c];
        let gr = &g.data[i * c..(i + 1) * c];
        let (mu, rs) = stats(row, eps);
        let xhat: Vec<f64> = row.iter().map(|v| (v - mu) * rs).collect();
        let gh: Vec<f64> = (0..c).map(|j| gr[j] * w.data[j]).collect();
        let m1 = gh.iter().sum::<f64>() / n;
        let m2 = (0..c).map(|j| gh[j] * xhat[j]).sum::<f64>() / n;
        for j in 0..c {
            gx[i * c + j] = rs * (gh[j] - m1 - xhat[j] * m2);
            gw[j] += gr[j] * xhat[j];
            gb[j] += gr[j];
        }
    }
    (RefTensor::new(gx, &x.shape), RefTensor::new(gw, &[c]), RefTensor::new(gb, &[c]))
}

/// `x / sqrt(mean(x²) + eps) * w`, per row (Llama).
pub fn rms_norm(x: &RefTensor, w: &RefTensor, eps: f64) -> RefTensor {
    let (r, c) = rows(x, w);
    let mut y = vec![0.0; x.numel()];
    for i in 0..r {
        let row = &x.data[i * c..(i + 1) * c];
        let rs = 1.0 / (row.iter().map(|v| v * v).sum::<f64>() / c as f64 + eps).sqrt();
        for j in 0..c {
            y[i * c + j] = row[j] * rs * w.data[j];
        }
    }
    RefTensor::new(y, &x.shape)
}

/// Gradients of [`rms_norm`] w.r.t. x and w given `g`.
pub fn rms_norm_backward(x: &RefTensor, w: &RefTensor, eps: f64, g: &RefTensor) -> (RefTensor, RefTensor) {
    let (r, c) = rows(x, w);
    let mut gx = vec![0.0; x.numel()];
    let mut gw = vec![0.0; c];
    let n = c as f64;
    for i in 0..r {
        let row = &x.data[i * c..(i + 1) * c];
        let gr = &g.data[i * c..(i + 1) * c];
        let rs = 1.0 / (row.iter().map(|v| v * v).sum::<f64>() / n + eps).sqrt();
        // y_j = x_j rs w_j, d rs / d x_k = -rs³ x_k / n
        let s: f64 = (0..c).map(|j| gr[j] * w.data[j] * row[j]).sum();
        for j in 0..c {
            gx[i * c + j] = rs * gr[j] * w.data[j] - row[j] * rs * rs * rs * s / n;
            gw[j] += gr[j] * row[j] * rs;
        }
    }
    (RefTensor::new(gx, &x.shape), RefTensor::new(gw, &[c]))
}
