//! Row-major shapes and NumPy/PyTorch broadcasting.

use crate::error::{Error, Result};

/// Most dims a kernel accepts (the uniform structs hold 8).
pub const MAX_RANK: usize = 8;

/// Number of elements of a shape (1 for a scalar `[]`).
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Row-major (C-order) strides.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// The broadcast of two shapes, aligned at the trailing dim.
pub fn broadcast(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for i in 0..r {
        let da = if i + a.len() >= r { a[i + a.len() - r] } else { 1 };
        let db = if i + b.len() >= r { b[i + b.len() - r] } else { 1 };
        out[i] = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return Err(Error::shape(
                op,
                a,
                b,
                format!("dim {i} from the right: {da} vs {db} do not broadcast"),
            ));
        };
    }
    Ok(out)
}

/// Strides of `shape` seen as broadcast to `out` (0 where a dim is broadcast), padded to `out.len()`.
pub fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let s = strides(shape);
    let pad = out.len() - shape.len();
    (0..out.len())
        .map(|i| if i < pad || shape[i - pad] == 1 && out[i] != 1 { 0 } else { s[i - pad] })
        .collect()
}

/// Normalise a possibly negative axis.
pub fn axis(op: &'static str, axis: isize, rank: usize) -> Result<usize> {
    let a = if axis < 0 { axis + rank as isize } else { axis };
    if a < 0 || a as usize >= rank {
        return Err(Error::arg(op, format!("axis {axis} out of range for rank {rank}")));
    }
    Ok(a as usize)
}

/// (outer, len, inner) view of `shape` around `axis`.
pub fn split_at_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (numel(&shape[..axis]), shape[axis], numel(&shape[axis + 1..]))
}

/// Pack up to 8 dims into the `array<vec4<u32>, 2>` layout the shaders read.
pub fn pack8(v: &[usize]) -> [u32; 8] {
    let mut out = [0u32; 8];
    for (o, x) in out.iter_mut().zip(v) {
        *o = *x as u32;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(broadcast("t", &[2, 1, 3], &[4, 1]).unwrap(), vec![2, 4, 3]);
        assert_eq!(broadcast("t", &[], &[5]).unwrap(), vec![5]);
        assert!(broadcast("t", &[2, 3], &[4]).is_err());
        assert_eq!(broadcast_strides(&[4, 1], &[2, 4, 3]), vec![0, 1, 0]);
        assert_eq!(strides(&[2, 3, 4]), vec![12, 4, 1]);
    }
}
