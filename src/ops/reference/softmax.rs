//! Reference softmax and log-softmax over the last axis (`ops::softmax`).

use super::RefTensor;

fn rows(x: &RefTensor) -> (usize, usize) {
    let c = *x.shape.last().expect("reference: softmax needs at least one dim");
    (x.numel().checked_div(c).unwrap_or(0), c)
}

/// log-sum-exp of one row, max-subtracted.
fn lse(row: &[f64]) -> f64 {
    let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
}

/// `log_softmax(x)` over the last axis.
pub fn log_softmax(x: &RefTensor) -> RefTensor {
    let (r, c) = rows(x);
    let mut y = vec![0.0; x.numel()];
    for i in 0..r {
        let row = &x.data[i * c..(i + 1) * c];
        let l = lse(row);
        for j in 0..c {
            y[i * c + j] = row[j] - l;
        }
    }
    RefTensor::new(y, &x.shape)
}

/// `softmax(x)` over the last axis.
pub fn softmax(x: &RefTensor) -> RefTensor {
    log_softmax(x).map(f64::exp)
}

/// Gradient of [`softmax`]: `y * (g - Σ g y)` per row.
pub fn softmax_backward(x: &RefTensor, g: &RefTensor) -> RefTensor {
    let (r, c) = rows(x);
    let y = softmax(x);
    let mut gx = vec![0.0; x.numel()];
    for i in 0..r {
        let s: f64 = (0..c).map(|j| g.data[i * c + j] * y.data[i * c + j]).sum();
        for j in 0..c {
            gx[i * c + j] = y.data[i * c + j] * (g.data[i * c + j] - s);
        }
    }
    RefTensor::new(gx, &x.shape)
}

/// Gradient of [`log_softmax`]: `g - softmax(x) Σ g` per row.
pub fn log_softmax_backward(x: &RefTensor, g: &RefTensor) -> RefTensor {
    let (r, c) = rows(x);
    let y = softmax(x);
    let mut gx = vec![0.0; x.numel()];
    for i in 0..r {
        let s: f64 = g.data[i * c..(i + 1) * c].iter().sum();
        for j in 0..c {
            gx[i * c + j] = g.data[i * c + j] - y.data[i * c + j] * s;
        }
    }
    RefTensor::new(gx, &x.shape)
}
