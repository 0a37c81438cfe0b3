//! Reference layout ops (`ops::layout`): reshape, permute, transpose, slice, concat.

use super::{numel, strides, unravel, RefTensor};

/// Same data, new shape.
pub fn reshape(x: &RefTensor, shape: &[usize]) -> RefTensor {
    x.reshape(shape)
}

/// Gradient of [`reshape`]: `g` in the input's shape.
pub fn reshape_backward(in_shape: &[usize], g: &RefTensor) -> RefTensor {
    g.reshape(in_shape)
}

/// Output dim `i` is input dim `perm[i]`.
pub fn permute(x: &RefTensor, perm: &[usize]) -> RefTensor {
    assert_eq!(perm.len(), x.rank(), "reference: permutation rank");
    let out_shape: Vec<usize> = perm.iter().map(|&p| x.shape[p]).collect();
    let st = strides(&x.shape);
    let data = (0..x.numel())
        .map(|i| {
            let c = unravel(i, &out_shape);
            x.data[(0..perm.len()).map(|d| c[d] * st[perm[d]]).sum::<usize>()]
        })
        .collect();
    RefTensor::new(data, &out_shape)
}

/// Gradient of [`permute`]: `g` permuted back by the inverse permutation.
pub fn permute_backward(perm: &[usize], g: &RefTensor) -> RefTensor {
    let mut inv = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    permute(g, &inv)
}

/// The permutation that swaps dims `a` and `b` (negative counts from the end).
pub fn transpose_perm(rank: usize, a: isize, b: isize) -> Vec<usize> {
    let mut p: Vec<usize> = (0..rank).collect();
    p.swap(super::axis(a, rank), super::axis(b, rank));
    p
}

/// Swap two dims.
pub fn transpose(x: &RefTensor, a: isize, b: isize) -> RefTensor {
    permute(x, &transpose_perm(x.rank(), a, b))
}

fn split(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (numel(&shape[..axis]), shape[axis], numel(&shape[axis + 1..]))
}

/// `x[..., start:start+len, ...]` along `axis`.
pub fn slice(x: &RefTensor, axis: isize, start: usize, len: usize) -> RefTensor {
    let ax = super::axis(axis, x.rank());
    let (o, l, i) = split(&x.shape, ax);
    assert!(start + len <= l, "reference: slice out of range");
    let mut out = Vec::with_capacity(o * len * i);
    for oo in 0..o {
        for ll in start..start + len {
            out.extend_from_slice(&x.data[(oo * l + ll) * i..(oo * l + ll + 1) * i]);
        }
    }
    let mut shape = x.shape.clone();
    shape[ax] = len;
    RefTensor::new(out, &shape)
}

/// Gradient of [`slice`]: `g` placed in a zero tensor of the input's shape.
pub fn slice_backward(in_shape: &[usize], axis: isize, start: usize, g: &RefTensor) -> RefTensor {
    let ax = super::axis(axis, in_shape.len());
    let (o, l, i) = split(in_shape, ax);
    let len = g.shape[ax];
    let mut gx = RefTensor::zeros(in_shape);
    for oo in 0..o {
        for ll in 0..len {
            for ii in 0..i {
                gx.data[(oo * l + start + ll) * i + ii] = g.data[(oo * len + ll) * i + ii];
            }
        }
    }
    gx
}

/// Join along `axis`; other dims must match.
pub fn concat(xs: &[&RefTensor], axis: isize) -> RefTensor {
    let first = xs.first().expect("reference: concat of nothing");
    let ax = super::axis(axis, first.rank());
    let total: usize = xs.iter().map(|x| x.shape[ax]).sum();
    let mut shape = first.shape.clone();
    shape[ax] = total;
    let (o, _, i) = split(&shape, ax);
    let mut out = Vec::with_capacity(numel(&shape));
    for oo in 0..o {
        for x in xs {
            let l = x.shape[ax];
            out.extend_from_slice(&x.data[oo * l * i..(oo + 1) * l * i]);
        }
    }
    RefTensor::new(out, &shape)
}

/// Gradient of [`concat`]: `g` cut back into the inputs' shapes.
pub fn concat_backward(shapes: &[Vec<usize>], axis: isize, g: &RefTensor) -> Vec<RefTensor> {
    let mut start = 0;
    shapes
        .iter()
        .map(|s| {
            let ax = super::axis(axis, s.len());
            let part = slice(g, axis, start, s[ax]);
            start += s[ax];
            part
        })
        .collect()
}
