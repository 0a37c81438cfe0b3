//! Reference 2-D pooling (`ops::pool`): max, average and adaptive average over NCHW.

use super::RefTensor;

fn out_size(size: usize, k: usize, s: usize, p: usize) -> usize {
    assert!(size + 2 * p >= k, "reference: pool kernel larger than padded input");
    (size + 2 * p - k) / s + 1
}

/// Windows of a pool: for each output index, the (input index, divisor) pairs it averages or
/// the input indices it maxes over, in window order.
fn windows(
    shape: &[usize],
    k: (usize, usize),
    s: (usize, usize),
    p: (usize, usize),
) -> (Vec<usize>, Vec<Vec<usize>>, usize) {
    assert_eq!(shape.len(), 4, "reference: pool input must be NCHW");
    let (planes, h, w) = (shape[0] * shape[1], shape[2], shape[3]);
    let (ho, wo) = (out_size(h, k.0, s.0, p.0), out_size(w, k.1, s.1, p.1));
    let mut win = Vec::new();
    for pl in 0..planes {
        for oi in 0..ho {
            for oj in 0..wo {
                let mut v = Vec::new();
                for ki in 0..k.0 {
                    for kj in 0..k.1 {
                        let ih = (oi * s.0 + ki) as i64 - p.0 as i64;
                        let iw = (oj * s.1 + kj) as i64 - p.1 as i64;
                        if ih >= 0 && iw >= 0 && (ih as usize) < h && (iw as usize) < w {
                            v.push((pl * h + ih as usize) * w + iw as usize);
                        }
                    }
                }
                win.push(v);
            }
        }
    }
    (vec![shape[0], shape[1], ho, wo], win, k.0 * k.1)
}

/// Max pooling with -inf padding (floor mode).
pub fn max_pool2d(x: &RefTensor, k: (usize, usize), s: (usize, usize), p: (usize, usize)) -> RefTensor {
    let (shape, win, _) = windows(&x.shape, k, s, p);
    let y = win.iter().map(|v| v.iter().map(|&i| x.data[i]).fold(f64::NEG_INFINITY, f64::max)).collect();
    RefTensor::new(y, &shape)
}

/// Gradient of [`max_pool2d`]: each output's gradient goes to the first maximum of its window.
pub fn max_pool2d_backward(
    x: &RefTensor,
    k: (usize, usize),
    s: (usize, usize),
    p: (usize, usize),
    g: &RefTensor,
) -> RefTensor {
    let (_, win, _) = windows(&x.shape, k, s, p);
    let mut gx = vec![0.0; x.numel()];
    for (o, v) in win.iter().enumerate() {
        let mut best = v[0];
        for &i in &v[1..] {
            if x.data[i] > x.data[best] {
                best = i;
            }
        }
        gx[best] += g.data[o];
    }
    RefTensor::new(gx, &x.shape)
}

/// Average pooling (floor mode); the divisor is kh·kw with `count_include_pad`, else the
/// number of in-bounds elements.
pub fn avg_pool2d(
    x: &RefTensor,
    k: (usize, usize),
    s: (usize, usize),
    p: (usize, usize),
    include_pad: bool,
) -> RefTensor {
    let (shape, win, kk) = windows(&x.shape, k, s, p);
    let y = win
        .iter()
        .map(|v| v.iter().map(|&i| x.data[i]).sum::<f64>() / if include_pad { kk } else { v.len() } as f64)
        .collect();
    RefTensor::new(y, &shape)
}

/// Gradient of [`avg_pool2d`].
pub fn avg_pool2d_backward(
    x: &RefTensor,
    k: (usize, usize),
    s: (usize, usize),
    p: (usize, usize),
    include_pad: bool,
    g: &RefTensor,
) -> RefTensor {
    let (_, win, kk) = windows(&x.shape, k, s, p);
    let mut gx = vec![0.0; x.numel()];
    for (o, v) in win.iter().enumerate() {
        let d = if include_pad { kk } else { v.len() } as f64;
        for &i in v {
            gx[i] += g.data[o] / d;
        }
    }
    RefTensor::new(gx, &x.shape)
}

/// Input indices of each adaptive bin: rows `[floor(i·H/oh), ceil((i+1)·H/oh))`.
fn bins(shape: &[usize], out: (usize, usize)) -> Vec<Vec<usize>> {
    assert_eq!(shape.len(), 4, "reference: pool input must be NCHW");
    let (planes, h, w) = (shape[0] * shape[1], shape[2], shape[3]);
    let lo = |i: usize, n: usize, m: usize| (i * n) / m;
    let hi = |i: usize, n: usize, m: usize| ((i + 1) * n).div_ceil(m);
    let mut b = Vec::new();
    for pl in 0..planes {
        for oi in 0..out.0 {
            for oj in 0..out.1 {
                let mut v = Vec::new();
                for ih in lo(oi, h, out.0)..hi(oi, h, out.0) {
                    for iw in lo(oj, w, out.1)..hi(oj, w, out.1) {
                        v.push((pl * h + ih) * w + iw);
                    }
                }
                b.push(v);
            }
        }
    }
    b
}

/// Adaptive average pooling to `out` with torch's bins.
pub fn adaptive_avg_pool2d(x: &RefTensor, out: (usize, usize)) -> RefTensor {
    let y = bins(&x.shape, out)
        .iter()
        .map(|v| v.iter().map(|&i| x.data[i]).sum::<f64>() / v.len() as f64)
        .collect();
    RefTensor::new(y, &[x.shape[0], x.shape[1], out.0, out.1])
}

/// Gradient of [`adaptive_avg_pool2d`].
pub fn adaptive_avg_pool2d_backward(x: &RefTensor, out: (usize, usize), g: &RefTensor) -> RefTensor {
    let mut gx = vec![0.0; x.numel()];
    for (o, v) in bins(&x.shape, out).iter().enumerate() {
        for &i in v {
            gx[i] += g.data[o] / v.len() as f64;
        }
    }
    RefTensor::new(gx, &x.shape)
}
