//! Scaled dot-product attention as the models call it: a thin adapter from host-side masks to
//! the fused op (`ops::attention`), which handles grouped-query heads, causal alignment for KV
//! caches and fully masked rows (zeros, never NaN).

use crate::error::Result;
use crate::ops::attention::{attention, Attention};
use crate::tensor::Tensor;

/// `softmax(q kᵀ · scale + masks) v` for q `[B, Hq, Tq, D]`, k and v `[B, Hkv, Tk, D]`, an
/// optional key mask `[B, Tk]` (1 keep, 0 masked) and a causal mask aligned at the end (query i
/// sees keys j ≤ i + Tk − Tq).
pub fn sdpa(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f32,
    causal: bool,
    key_mask: Option<&[f32]>,
) -> Result<Tensor> {
    let mask = match key_mask {
        Some(m) => {
            let b = k.shape().first().copied().unwrap_or(0);
            Some(Tensor::from_slice(q.engine(), m, &[b, m.len() / b.max(1)])?)
        }
        None => None,
    };
    attention(q, k, v, &Attention { scale, causal, key_padding: mask.as_ref(), window: None })
}
