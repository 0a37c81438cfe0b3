//! SentencePiece BPE vocabularies as llama.cpp stores them in GGUF (`tokenizer.ggml.model =
//! "llama"`: Llama, Mistral, TinyLlama): pieces, scores and piece types, as a `tokenizers` BPE.
//!
//! SentencePiece's BPE encoder repeatedly joins the adjacent pair of symbols whose join is a
//! piece with the highest score. A rank-ordered merge list expresses the same: every way of
//! splitting a normal piece into two pieces is a merge, ranked by the joined piece's score
//! (ties by the halves' ids). Characters without a piece fall back to their UTF-8 bytes
//! (`<0x41>` pieces). Text is prepared as SentencePiece's identity normalization does for these
//! models: spaces become `▁`, and a `▁` is prepended when the vocabulary asks for a dummy prefix
//! (`tokenizer.ggml.add_space_prefix`, on unless the file says otherwise). Decoding undoes it.
//! `tests/spm_gguf.rs` checks ids and decoded text against SentencePiece itself
//! (`tools/spm_refs.py`).

use std::collections::HashMap;

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::{Prepend, Replace};
use tokenizers::{DecoderWrapper, NormalizerWrapper, Tokenizer};

/// The word-boundary mark SentencePiece writes for a space.
const SPACE: &str = "\u{2581}";

/// GGUF's piece types (`tokenizer.ggml.token_type`).
const NORMAL: i64 = 1;
const UNKNOWN: i64 = 2;

/// The pieces' merges: every split of a normal piece into two pieces, highest-scoring joins
/// first (see the module docs).
fn merges(tokens: &[&str], scores: &[f32], types: &[i64]) -> Vec<(String, String)> {
    let id: HashMap<&str, usize> = tokens.iter().enumerate().map(|(i, t)| (*t, i)).collect();
    let mut ranked: Vec<(f32, usize, usize)> = Vec::new();
    for (i, piece) in tokens.iter().enumerate() {
        if types.get(i).copied().unwrap_or(NORMAL) != NORMAL {
            continue;
        }
        for (at, _) in piece.char_indices().skip(1) {
            if let (Some(&l), Some(&r)) = (id.get(&piece[..at]), id.get(&piece[at..])) {
                ranked.push((scores[i], l, r));
            }
        }
    }
    // Stable: equal scores keep the halves' id order.
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then((a.1, a.2).cmp(&(b.1, b.2))));
    ranked.into_iter().map(|(_, l, r)| (tokens[l].to_string(), tokens[r].to_string())).collect()
}

/// The tokenizer of a SentencePiece BPE vocabulary: `tokens` with their `scores` and `types`
/// (empty types: all normal). Errors are messages for the caller to place.
pub(super) fn tokenizer(
    tokens: &[&str],
    scores: &[f32],
    types: &[i64],
    add_space_prefix: bool,
) -> std::result::Result<Tokenizer, String> {
    if scores.len() != tokens.len() || !(types.is_empty() || types.len() == tokens.len()) {
        return Err(format!(
            "{} tokens but {} scores and {} token types",
            tokens.len(),
            scores.len(),
            types.len()
        ));
    }
    let unk = types.iter().position(|&t| t == UNKNOWN).map(|i| tokens[i].to_string());
    let vocab: tokenizers::models::bpe::Vocab =
        tokens.iter().enumerate().map(|(i, t)| (t.to_string(), i as u32)).collect();
    let mut builder = BPE::builder()
        .vocab_and_merges(vocab, merges(tokens, scores, types))
        .byte_fallback(true)
        .fuse_unk(true);
    if let Some(u) = unk {
        builder = builder.unk_token(u);
    }
    let bpe = builder.build().map_err(|e| e.to_string())?;
    let mut tok = Tokenizer::new(bpe);
    let spaces: NormalizerWrapper = Replace::new(" ", SPACE).map_err(|e| e.to_string())?.into();
    let normalizer: NormalizerWrapper = if add_space_prefix {
        tokenizers::normalizers::Sequence::new(vec![Prepend::new(SPACE.into()).into(), spaces]).into()
    } else {
        spaces
    };
    tok.with_normalizer(Some(normalizer)).map_err(|e| e.to_string())?;
    let mut decoders: Vec<DecoderWrapper> = vec![
        Replace::new(SPACE, " ").map_err(|e| e.to_string())?.into(),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ];
    if add_space_prefix {
        // The dummy prefix's space goes again.
        decoders.push(Strip::new(' ', 1, 0).into());
    }
    tok.with_decoder(Some(DecoderSequence::new(decoders)));
    Ok(tok)
}
