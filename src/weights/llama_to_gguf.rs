//! The way back from a Hugging Face Llama checkpoint to llama.cpp's GGUF layout: tensor names
//! (`model.layers.3.self_attn.q_proj.weight` → `blk.3.attn_q.weight`) and the q/k row
//! permutation llama.cpp's converter applies, the inverse of what
//! [`super::gguf_llama`] undoes when it reads a GGUF file.
//!
//! The permutation, per head of `hd` rows: HF row `p·hd/2 + i` (half p ∈ {0,1}, i < hd/2)
//! becomes GGUF row `2i + p`, turning rotate-half RoPE pairs (i, i + hd/2) into ggml's adjacent
//! pairs (2i, 2i + 1).

/// Which head count a tensor's rows are permuted with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowOrder {
    /// Stored as it is.
    Same,
    /// Permuted per query head (`attention.head_count`).
    QueryHeads,
    /// Permuted per key/value head (`attention.head_count_kv`).
    KeyValueHeads,
}

/// Whole-model tensors: (HF name, llama.cpp name).
const GLOBAL: [(&str, &str); 3] = [
    ("model.embed_tokens.weight", "token_embd.weight"),
    ("model.norm.weight", "output_norm.weight"),
    ("lm_head.weight", "output.weight"),
];

/// Per-layer modules: (HF module under `model.layers.N.`, llama.cpp name under `blk.N.`, rows).
const LAYER: [(&str, &str, RowOrder); 9] = [
    ("self_attn.q_proj", "attn_q", RowOrder::QueryHeads),
    ("self_attn.k_proj", "attn_k", RowOrder::KeyValueHeads),
    ("self_attn.v_proj", "attn_v", RowOrder::Same),
    ("self_attn.o_proj", "attn_output", RowOrder::Same),
    ("mlp.gate_proj", "ffn_gate", RowOrder::Same),
    ("mlp.up_proj", "ffn_up", RowOrder::Same),
    ("mlp.down_proj", "ffn_down", RowOrder::Same),
    ("input_layernorm", "attn_norm", RowOrder::Same),
    ("post_attention_layernorm", "ffn_norm", RowOrder::Same),
];

/// `N` and the rest of `<prefix>N.<rest>`.
fn layer_of<'a>(name: &'a str, prefix: &str) -> Option<(usize, &'a str)> {
    let (layer, rest) = name.strip_prefix(prefix)?.split_once('.')?;
    Some((layer.parse().ok()?, rest))
}

/// llama.cpp's name for the HF Llama tensor `hf`, and how its rows are ordered there; `None`
/// for a name llama.cpp's llama architecture has no tensor for.
pub fn gguf_name(hf: &str) -> Option<(String, RowOrder)> {
    if let Some((_, g)) = GLOBAL.iter().find(|(h, _)| *h == hf) {
        return Some((g.to_string(), RowOrder::Same));
    }
    let (layer, rest) = layer_of(hf, "model.layers.")?;
    let (module, suffix) = rest.rsplit_once('.')?;
    let (_, name, order) = LAYER.iter().find(|(m, _, _)| *m == module)?;
    Some((format!("blk.{layer}.{name}.{suffix}"), *order))
}

/// Whether the GGUF tensor `gguf` is one [`gguf_name`] produces (a model weight, as opposed to
/// e.g. `rope_freqs.weight`, which has no HF counterpart).
pub fn is_llama_tensor(gguf: &str) -> bool {
    if GLOBAL.iter().any(|(_, g)| *g == gguf) {
        return true;
    }
    let Some((_, rest)) = layer_of(gguf, "blk.") else { return false };
    rest.rsplit_once('.').is_some_and(|(part, _)| LAYER.iter().any(|(_, p, _)| *p == part))
}

/// Apply the converter's q/k row permutation: `data` is row-major, `rows` rows of `cols` (1
/// for a bias), and `heads` must cut `rows` into heads of an even size.
pub fn permute_rows(data: &[f32], rows: usize, cols: usize, heads: usize) -> Result<Vec<f32>, String> {
    if heads == 0
        || !rows.is_multiple_of(heads)
        || !(rows / heads).is_multiple_of(2)
        || data.len() != rows * cols
    {
        return Err(format!(
            "cannot permute {rows} rows × {cols} ({} values) into {heads} heads of even size",
            data.len()
        ));
    }
    let hd = rows / heads;
    let mut out = Vec::with_capacity(data.len());
    // GGUF rows in order: within a head, row 2i + p is HF row p·hd/2 + i.
    for h in 0..heads {
        for i in 0..hd / 2 {
            for p in 0..2 {
                let hf = h * hd + p * (hd / 2) + i;
                out.extend_from_slice(&data[hf * cols..(hf + 1) * cols]);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::gguf_llama::unpermute_rows;

    #[test]
    fn permute_is_the_inverse_of_the_readers_unpermute() {
        for (rows, cols, heads) in [(12, 3, 2), (8, 1, 2), (64, 5, 1)] {
            let w: Vec<f32> = (0..rows * cols).map(|x| x as f32).collect();
            let g = permute_rows(&w, rows, cols, heads).unwrap();
            assert_ne!(g, w, "a permutation that changes nothing proves nothing");
            assert_eq!(unpermute_rows(&g, rows, cols, heads).unwrap(), w);
        }
        // Head 0 of 6 rows: GGUF rows are HF rows 0, 3, 1, 4, 2, 5.
        let w: Vec<f32> = (0..12).map(|x| x as f32).collect();
        assert_eq!(&permute_rows(&w, 12, 1, 2).unwrap()[..6], &[0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        assert!(permute_rows(&w, 12, 1, 5).is_err());
        assert!(permute_rows(&w, 12, 1, 4).is_err(), "heads of 3 rows are odd");
    }

    #[test]
    fn names_follow_llama_cpp() {
        assert_eq!(
            gguf_name("model.layers.11.self_attn.k_proj.weight").unwrap(),
            ("blk.11.attn_k.weight".into(), RowOrder::KeyValueHeads)
        );
        assert_eq!(gguf_name("model.layers.0.mlp.down_proj.weight").unwrap().0, "blk.0.ffn_down.weight");
        assert_eq!(
            gguf_name("model.layers.2.post_attention_layernorm.weight").unwrap().0,
            "blk.2.ffn_norm.weight"
        );
        assert_eq!(gguf_name("lm_head.weight").unwrap().0, "output.weight");
        assert!(gguf_name("model.layers.x.mlp.up_proj.weight").is_none());
        assert!(gguf_name("classifier.weight").is_none());
        assert!(is_llama_tensor("blk.3.attn_q.weight") && is_llama_tensor("output.weight"));
        assert!(!is_llama_tensor("rope_freqs.weight") && !is_llama_tensor("blk.3.attn_qq.weight"));
    }
}
