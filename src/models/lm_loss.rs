//! The causal-LM loss, whole or in chunks.
//!
//! A language model's logits are the largest activation of a fine-tuning step: `[B, T, V]` with
//! a vocabulary of 32k–150k (SmolLM2 4 × 256: 201 MB in f32, and the softmax's gradient as much
//! again), more than all of a small model's checkpointed blocks. [`chunked_causal_lm_loss`] runs
//! the head and the cross-entropy over a few rows at a time, each chunk checkpointed
//! (`graph::checkpoint`): the forward keeps no logits, and the backward recomputes one chunk's
//! at a time. It is the same sum in another order: the loss and the gradients equal the whole
//! path's (`tests/checkpointing.rs`), for one more pass of the head's product.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::graph::checkpoint::{checkpoint, Block};
use crate::ops::linear::linear;
use crate::ops::loss::{cross_entropy, CrossEntropy};
use crate::tensor::Tensor;

/// The target of a position whose next token does not count.
const SKIP: u32 = u32::MAX;

/// Position i's target: token i+1 of its row, or [`SKIP`] for a row's last position and for
/// `ignore` (padding).
fn next_tokens(ids: &[u32], t: usize, ignore: Option<u32>) -> Vec<u32> {
    (0..ids.len())
        .map(|i| if i % t == t - 1 { SKIP } else { ids[i + 1] })
        .map(|y| if Some(y) == ignore { SKIP } else { y })
        .collect()
}

fn targets_opts() -> CrossEntropy {
    CrossEntropy { ignore_index: Some(SKIP), ..Default::default() }
}

/// Hugging Face's causal-LM loss: logits at position t predict token t+1, mean over the
/// `B·(T−1)` predictions (positions whose target is `ignore` — padding — are left out).
pub fn causal_lm_loss(logits: &Tensor, ids: &[u32], ignore: Option<u32>) -> Result<Tensor> {
    let s = logits.shape().to_vec();
    if s.len() != 3 || s[0] * s[1] != ids.len() {
        return Err(Error::shape("causal_lm_loss", &s, &[ids.len()], "logits [B, T, V] for ids [B, T]"));
    }
    let (b, t, v) = (s[0], s[1], s[2]);
    // The last position of each row has no next token: its target is the ignore index, so the
    // logits need no slicing copy.
    let flat = logits.reshape(&[b * t, v])?;
    cross_entropy(&flat, &next_tokens(ids, t, ignore), targets_opts())
}

/// [`causal_lm_loss`] of the logits `hidden · headᵀ` (`hidden` `[B, T, H]` after the final
/// norm, `head` `[V, H]`, quantized or not), `rows` positions at a time with each chunk's
/// logits recomputed in backward (see the module docs).
pub fn chunked_causal_lm_loss(
    hidden: &Tensor,
    head: &Tensor,
    ids: &[u32],
    ignore: Option<u32>,
    rows: usize,
) -> Result<Tensor> {
    let s = hidden.shape().to_vec();
    if s.len() != 3 || s[0] * s[1] != ids.len() || rows == 0 {
        return Err(Error::shape(
            "chunked_causal_lm_loss",
            &s,
            &[ids.len()],
            "hidden [B, T, H] for ids [B, T], in chunks of at least one row",
        ));
    }
    let (n, t) = (ids.len(), s[1]);
    let targets = next_tokens(ids, t, ignore);
    let counted = targets.iter().filter(|&&y| y != SKIP).count();
    let flat = hidden.reshape(&[n, s[2]])?;
    let mut total: Option<Tensor> = None;
    for start in (0..n).step_by(rows) {
        let len = rows.min(n - start);
        let chunk: Vec<u32> = targets[start..start + len].to_vec();
        let here = chunk.iter().filter(|&&y| y != SKIP).count();
        if here == 0 {
            continue;
        }
        // The chunk's mean times its count: the chunks' sum over the whole count is the mean.
        let block: Block = Arc::new(move |ins: &[Tensor]| {
            let logits = linear(&ins[0], &ins[1], None, false)?;
            cross_entropy(&logits, &chunk, targets_opts())?.mul_scalar(here as f32)
        });
        let part = checkpoint(&[&flat.slice(0, start, len)?, head], block)?;
        total = Some(match total {
            Some(sum) => sum.add(&part)?,
            None => part,
        });
    }
    match total {
        Some(sum) => sum.mul_scalar(1.0 / counted as f32),
        // No position has a target: whatever the whole path makes of a mean over nothing.
        None => {
            let logits = linear(&flat, head, None, false)?;
            let v = logits.shape()[1];
            causal_lm_loss(&logits.reshape(&[s[0], t, v])?, ids, ignore)
        }
    }
}
