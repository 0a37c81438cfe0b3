//! Reference batched matrix product with transposed operands (`ops::matmul`).
//!
//! `op(a) · op(b)` over the last two dims, where `op` transposes when its flag is set. Batch
//! dims are equal, or one operand is 2-D and broadcast over the other's batch.

use super::{numel, RefTensor};

struct Dims {
    batch: Vec<usize>,
    bsz: usize,
    m: usize,
    k: usize,
    n: usize,
    /// Per-batch strides of the stored operands (0 when broadcast).
    sa: usize,
    sb: usize,
}

fn dims(a: &RefTensor, b: &RefTensor, ta: bool, tb: bool) -> Dims {
    assert!(a.rank() >= 2 && b.rank() >= 2, "reference: matmul needs 2-D operands");
    let (ra, rb) = (a.rank(), b.rank());
    let (ar, ac) = (a.shape[ra - 2], a.shape[ra - 1]);
    let (br, bc) = (b.shape[rb - 2], b.shape[rb - 1]);
    let (m, ka) = if ta { (ac, ar) } else { (ar, ac) };
    let (kb, n) = if tb { (bc, br) } else { (br, bc) };
    assert_eq!(ka, kb, "reference: matmul inner dims differ ({:?} x {:?})", a.shape, b.shape);
    let (ba, bb) = (&a.shape[..ra - 2], &b.shape[..rb - 2]);
    let batch = if ba == bb || bb.is_empty() {
        ba.to_vec()
    } else if ba.is_empty() {
        bb.to_vec()
    } else {
        panic!("reference: matmul batch dims {ba:?} and {bb:?} differ")
    };
    Dims {
        bsz: numel(&batch),
        batch,
        m,
        k: ka,
        n,
        sa: if ba.is_empty() { 0 } else { ar * ac },
        sb: if bb.is_empty() { 0 } else { br * bc },
    }
}

/// Offset of op(a)[i, p] within one stored matrix of `rows x cols` (before any transpose).
fn at(t: bool, i: usize, p: usize, stored_cols: usize) -> usize {
    if t {
        p * stored_cols + i
    } else {
        i * stored_cols + p
    }
}

/// `op(a) · op(b)`.
pub fn matmul(a: &RefTensor, b: &RefTensor, ta: bool, tb: bool) -> RefTensor {
    let d = dims(a, b, ta, tb);
    let (acols, bcols) = (a.shape[a.rank() - 1], b.shape[b.rank() - 1]);
    let mut out = vec![0.0; d.bsz * d.m * d.n];
    for z in 0..d.bsz {
        for i in 0..d.m {
            for j in 0..d.n {
                let mut s = 0.0;
                for p in 0..d.k {
                    s += a.data[z * d.sa + at(ta, i, p, acols)] * b.data[z * d.sb + at(tb, p, j, bcols)];
                }
                out[(z * d.m + i) * d.n + j] = s;
            }
        }
    }
    let mut shape = d.batch.clone();
    shape.extend([d.m, d.n]);
    RefTensor::new(out, &shape)
}

/// Gradients of `op(a) · op(b)` given `g` of the output, in the stored layouts of `a` and `b`;
/// a broadcast 2-D operand's gradient is summed over the batch.
pub fn matmul_backward(
    a: &RefTensor,
    b: &RefTensor,
    ta: bool,
    tb: bool,
    g: &RefTensor,
) -> (RefTensor, RefTensor) {
    let d = dims(a, b, ta, tb);
    let (acols, bcols) = (a.shape[a.rank() - 1], b.shape[b.rank() - 1]);
    let mut ga = RefTensor::zeros(&a.shape);
    let mut gb = RefTensor::zeros(&b.shape);
    for z in 0..d.bsz {
        for i in 0..d.m {
            for j in 0..d.n {
                let gv = g.data[(z * d.m + i) * d.n + j];
                for p in 0..d.k {
                    let ia = z * d.sa + at(ta, i, p, acols);
                    let ib = z * d.sb + at(tb, p, j, bcols);
                    // C[i,j] += X[i,p] Y[p,j]: dX[i,p] += g Y[p,j], dY[p,j] += X[i,p] g.
                    ga.data[ia] += gv * b.data[ib];
                    gb.data[ib] += a.data[ia] * gv;
                }
            }
        }
    }
    (ga, gb)
}
