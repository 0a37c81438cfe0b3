//! Reference reductions over one axis (`ops::reduce`) and the inverse of broadcasting.

use super::{numel, unravel, RefTensor};

fn split(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (numel(&shape[..axis]), shape[axis], numel(&shape[axis + 1..]))
}

fn reduced_shape(shape: &[usize], axis: usize, keepdim: bool) -> Vec<usize> {
    let mut s = shape.to_vec();
    if keepdim {
        s[axis] = 1;
    } else {
        s.remove(axis);
    }
    s
}

/// Sum over `axis` (negative counts from the end).
pub fn sum(x: &RefTensor, axis: isize, keepdim: bool) -> RefTensor {
    let ax = super::axis(axis, x.rank());
    let (o, l, i) = split(&x.shape, ax);
    let mut out = vec![0.0; o * i];
    for oo in 0..o {
        for ll in 0..l {
            for ii in 0..i {
                out[oo * i + ii] += x.data[(oo * l + ll) * i + ii];
            }
        }
    }
    RefTensor::new(out, &reduced_shape(&x.shape, ax, keepdim))
}

/// Mean over `axis`; NaN over an empty axis (0/0), as PyTorch.
pub fn mean(x: &RefTensor, axis: isize, keepdim: bool) -> RefTensor {
    let len = x.shape[super::axis(axis, x.rank())] as f64;
    sum(x, axis, keepdim).map(|v| v / len)
}

/// Max over `axis` and the first index where it occurs (panics on an empty axis).
pub fn max(x: &RefTensor, axis: isize, keepdim: bool) -> (RefTensor, Vec<usize>) {
    let ax = super::axis(axis, x.rank());
    let (o, l, i) = split(&x.shape, ax);
    assert!(l > 0, "reference: max over an empty axis");
    let mut out = vec![0.0; o * i];
    let mut arg = vec![0usize; o * i];
    for oo in 0..o {
        for ii in 0..i {
            let mut best = x.data[oo * l * i + ii];
            let mut at = 0;
            for ll in 1..l {
                let v = x.data[(oo * l + ll) * i + ii];
                if v > best {
                    best = v;
                    at = ll;
                }
            }
            out[oo * i + ii] = best;
            arg[oo * i + ii] = at;
        }
    }
    (RefTensor::new(out, &reduced_shape(&x.shape, ax, keepdim)), arg)
}

/// Gradient of `sum(x, axis) * scale` given `g` of the reduced output (keepdim or not).
fn expand(in_shape: &[usize], axis: usize, g: &RefTensor, scale: f64) -> RefTensor {
    let (o, l, i) = split(in_shape, axis);
    assert_eq!(g.numel(), o * i, "reference: gradient does not match the reduced shape");
    let mut gx = vec![0.0; o * l * i];
    for oo in 0..o {
        for ll in 0..l {
            for ii in 0..i {
                gx[(oo * l + ll) * i + ii] = g.data[oo * i + ii] * scale;
            }
        }
    }
    RefTensor::new(gx, in_shape)
}

/// Gradient of [`sum`].
pub fn sum_backward(in_shape: &[usize], axis: isize, g: &RefTensor) -> RefTensor {
    expand(in_shape, super::axis(axis, in_shape.len()), g, 1.0)
}

/// Gradient of [`mean`].
pub fn mean_backward(in_shape: &[usize], axis: isize, g: &RefTensor) -> RefTensor {
    let ax = super::axis(axis, in_shape.len());
    expand(in_shape, ax, g, 1.0 / in_shape[ax] as f64)
}

/// Gradient of [`max`]: all of `g` flows to the first arg max.
pub fn max_backward(x: &RefTensor, axis: isize, g: &RefTensor) -> RefTensor {
    let ax = super::axis(axis, x.rank());
    let (o, l, i) = split(&x.shape, ax);
    let (_, arg) = max(x, axis, false);
    let mut gx = vec![0.0; x.numel()];
    for oo in 0..o {
        for ii in 0..i {
            gx[(oo * l + arg[oo * i + ii]) * i + ii] = g.data[oo * i + ii];
        }
    }
    RefTensor::new(gx, &x.shape)
}

/// Sum of every element, as a scalar `[]`.
pub fn sum_all(x: &RefTensor) -> RefTensor {
    RefTensor::scalar(x.data.iter().sum())
}

/// Mean of every element, as a scalar `[]` (NaN for an empty tensor).
pub fn mean_all(x: &RefTensor) -> RefTensor {
    RefTensor::scalar(x.data.iter().sum::<f64>() / x.numel() as f64)
}

/// Gradient of [`sum_all`] given the scalar upstream gradient.
pub fn sum_all_backward(in_shape: &[usize], g: f64) -> RefTensor {
    RefTensor::full(in_shape, g)
}

/// Gradient of [`mean_all`] given the scalar upstream gradient.
pub fn mean_all_backward(in_shape: &[usize], g: f64) -> RefTensor {
    RefTensor::full(in_shape, g / numel(in_shape) as f64)
}

/// Sum `t` down to `target`, the inverse of broadcasting `target` up to `t.shape`.
pub fn sum_to_shape(t: &RefTensor, target: &[usize]) -> RefTensor {
    let pad = t.rank() - target.len();
    let mut out = RefTensor::zeros(target);
    let st = super::strides(target);
    for (j, &v) in t.data.iter().enumerate() {
        let c = unravel(j, &t.shape);
        let k: usize = (0..target.len()).map(|d| if target[d] == 1 { 0 } else { c[pad + d] * st[d] }).sum();
        out.data[k] += v;
    }
    out
}
