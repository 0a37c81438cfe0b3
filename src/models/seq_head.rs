//! Sequence classification with a decoder (transformers' `LlamaForSequenceClassification`,
//! `Qwen2ForSequenceClassification`, `MistralForSequenceClassification`,
//! `GPT2ForSequenceClassification`): a bias-free linear `score` of the final hidden state at
//! each row's last real token.
//!
//! transformers finds that token as the last id that differs from `pad_token_id`; whet reads it
//! from the attention mask, which is the same position for right-padded batches and stays right
//! when the pad id also occurs in the text (GPT-2 checkpoints often pad with their end-of-text
//! id). Padding must be on the right: a causal model's real tokens then never see a pad, so the
//! padded batch gives each row the logits it would get alone.

use rand::SeedableRng;

use crate::error::{Error, Result};
use crate::models::bert::BertInput;
use crate::nn::{Binder, Init, Origin, Params, Pid, Slot};
use crate::ops::embedding::embedding;
use crate::ops::linear::linear;
use crate::tensor::{DType, Tensor};

/// The classifier's parameter name in every `*ForSequenceClassification` decoder.
pub const SCORE: &str = "score.weight";

/// `score.weight` `[classes, hidden]`: the checkpoint's when it is a classifier of that many
/// classes, else fresh N(0, `std`²) (transformers' `_init_weights`). `scratch` never reads.
pub fn bind_score(b: &mut Binder, classes: usize, hidden: usize, std: f32, scratch: bool) -> Result<Pid> {
    let shape = [classes, hidden];
    if !scratch && b.shape_of(SCORE).as_deref() == Some(&shape[..]) {
        b.param(SCORE, &shape)
    } else {
        b.fresh(SCORE, &shape, Init::Normal { std })
    }
}

/// Put a fresh `score.weight` of `classes` rows drawn from `seed` in place of `old` (or add one).
pub fn replace_score(
    params: &mut Params,
    old: Option<Pid>,
    classes: usize,
    hidden: usize,
    std: f32,
    seed: u64,
) -> Result<Pid> {
    let engine = params.entries().first().map(|e| e.tensor.engine().clone()).ok_or_else(|| {
        Error::arg("replace_head", "the model has no parameters to place a classifier beside")
    })?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let w = Init::Normal { std }.sample(classes * hidden, &mut rng)?;
    let t = Tensor::from_slice(&engine, &w, &[classes, hidden])?;
    match old {
        Some(id) => {
            params.reset(id, t, Origin::Fresh)?;
            Ok(id)
        }
        None => params.push(SCORE, t, Slot::Param, Origin::Fresh),
    }
}

/// Flat row index (`b · seq + last`) of each row's last real token. A row must be
/// right-padded (ones, then zeros) and hold at least one token.
pub fn last_tokens(input: &BertInput) -> Result<Vec<u32>> {
    let (bsz, t) = (input.batch, input.seq);
    if input.ids.len() != bsz * t {
        return Err(Error::arg("score", format!("{} ids for batch {bsz} x seq {t}", input.ids.len())));
    }
    let Some(mask) = input.attention_mask else {
        return Ok((0..bsz).map(|r| (r * t + t - 1) as u32).collect());
    };
    if mask.len() != bsz * t {
        return Err(Error::arg(
            "score",
            format!("attention mask of {} for batch {bsz} x seq {t}", mask.len()),
        ));
    }
    (0..bsz)
        .map(|r| {
            let row = &mask[r * t..(r + 1) * t];
            let real = row.iter().filter(|&&m| m != 0).count();
            if real == 0 {
                return Err(Error::arg("score", format!("row {r} of the batch holds no token")));
            }
            if row[..real].contains(&0) {
                return Err(Error::arg(
                    "score",
                    format!("row {r} is not right-padded: a decoder classifies at the last real token"),
                ));
            }
            Ok((r * t + real - 1) as u32)
        })
        .collect()
}

/// Class logits `[B, classes]`: `score` of `hidden` `[B, T, H]` at each row's last real token.
pub fn classify_last(hidden: &Tensor, score: &Tensor, input: &BertInput) -> Result<Tensor> {
    let rows = last_tokens(input)?;
    let h = *hidden.shape().last().unwrap_or(&0);
    let flat = hidden.to_dtype(DType::F32)?.reshape(&[input.batch * input.seq, h])?;
    // A gather of rows, differentiable into the hidden states.
    let last = embedding(&flat, &rows, &[input.batch])?;
    linear(&last, score, None, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(ids: &'a [u32], mask: Option<&'a [u32]>, batch: usize, seq: usize) -> BertInput<'a> {
        BertInput { ids, type_ids: None, attention_mask: mask, batch, seq, embed_offset: None }
    }

    #[test]
    fn the_last_real_token_of_each_row() {
        let ids = [5; 8];
        let mask = [1, 1, 1, 0, 1, 0, 0, 0];
        assert_eq!(last_tokens(&input(&ids, Some(&mask), 2, 4)).unwrap(), vec![2, 4]);
        assert_eq!(last_tokens(&input(&ids, None, 2, 4)).unwrap(), vec![3, 7]);
    }

    #[test]
    fn left_padding_and_empty_rows_are_refused() {
        let ids = [5; 8];
        let left = [0, 1, 1, 1, 1, 1, 1, 1];
        let e = last_tokens(&input(&ids, Some(&left), 2, 4)).unwrap_err().to_string();
        assert!(e.contains("row 0 is not right-padded"), "{e}");
        let empty = [1, 1, 1, 1, 0, 0, 0, 0];
        let e = last_tokens(&input(&ids, Some(&empty), 2, 4)).unwrap_err().to_string();
        assert!(e.contains("row 1 of the batch holds no token"), "{e}");
        let e = last_tokens(&input(&ids[..7], None, 2, 4)).unwrap_err().to_string();
        assert!(e.contains("7 ids for batch 2 x seq 4"), "{e}");
    }
}
