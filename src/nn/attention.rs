//! Scaled dot-product attention as the models call it.
//!
//! Composite for now (batched matmuls around one softmax, the mask added as a large negative
//! bias); the fused kernel of `ops::attention` replaces the body without changing callers.

use crate::error::{Error, Result};
use crate::ops::matmul::matmul_t;
use crate::tensor::Tensor;

/// A bias large enough to zero a softmax weight, small enough that adding scores cannot
/// overflow to -inf (a row of -inf would give NaN).
const MASKED: f32 = -1.0e30;

/// `softmax(q kᵀ · scale + mask) v` for q `[B, Hq, Tq, D]`, k and v `[B, Hkv, Tk, D]`
/// (Hq a multiple of Hkv: grouped-query attention), an optional key mask `[B, Tk]` (1 keep,
/// 0 masked) and a causal mask aligned at the end (query i sees keys j ≤ i + Tk − Tq).
pub fn sdpa(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f32,
    causal: bool,
    key_mask: Option<&[f32]>,
) -> Result<Tensor> {
    let (qs, ks) = (q.shape().to_vec(), k.shape().to_vec());
    if qs.len() != 4 || ks.len() != 4 || v.shape() != ks.as_slice() || qs[0] != ks[0] || qs[3] != ks[3] {
        return Err(Error::shape("attention", &qs, &ks, "q [B,Hq,Tq,D], k and v [B,Hkv,Tk,D]"));
    }
    let (b, hq, tq, d) = (qs[0], qs[1], qs[2], qs[3]);
    let (hkv, tk) = (ks[1], ks[2]);
    if hkv == 0 || hq % hkv != 0 {
        return Err(Error::shape("attention", &qs, &ks, "query heads must be a multiple of kv heads"));
    }
    let g = hq / hkv;
    // Query heads sharing a kv head are contiguous: fold them into the query axis.
    let qf = q.reshape(&[b, hkv, g * tq, d])?;
    let scores = matmul_t(&qf, k, false, true)?.mul_scalar(scale)?;
    let e = q.engine();
    let mut bias: Option<Vec<f32>> = None;
    if let Some(m) = key_mask {
        if m.len() != b * tk {
            return Err(Error::arg(
                "attention",
                format!("key mask has {} values, expected B*Tk = {}", m.len(), b * tk),
            ));
        }
        let mut v = vec![0.0f32; b * g * tq * tk];
        for bi in 0..b {
            for r in 0..g * tq {
                for j in 0..tk {
                    if m[bi * tk + j] == 0.0 {
                        v[(bi * g * tq + r) * tk + j] = MASKED;
                    }
                }
            }
        }
        bias = Some(v);
    }
    if causal {
        let v = bias.get_or_insert_with(|| vec![0.0f32; b * g * tq * tk]);
        for bi in 0..b {
            for r in 0..g * tq {
                let i = r % tq;
                for j in (i + tk - tq.min(tk) + 1)..tk {
                    v[(bi * g * tq + r) * tk + j] = MASKED;
                }
            }
        }
    }
    let scores = match bias {
        Some(v) => scores.add(&Tensor::from_slice(e, &v, &[b, 1, g * tq, tk])?)?,
        None => scores,
    };
    let p = scores.softmax()?;
    matmul_t(&p, v, false, false)?.reshape(&[b, hq, tq, d])
}
