//! A llama- or qwen2-architecture GGUF seen as a Hugging Face Llama / Qwen2 checkpoint: HF
//! tensor names, HF row order for q/k, and the HF config values, so the Llama model loads a
//! GGUF exactly as it loads a `model.safetensors`.
//!
//! For `llama`, llama.cpp's HF→GGUF converter permutes the rows of `q_proj` and `k_proj`
//! (weights and biases) from HF's rotate-half RoPE layout to ggml's interleaved-pairs layout:
//! within each head of `hd` rows, HF row `p·hd/2 + i` (half p ∈ {0,1}, i < hd/2) is stored as
//! GGUF row `2i + p`. [`GgufLlama`] undoes that with the head counts from the metadata (q uses
//! `attention.head_count`, k `attention.head_count_kv`). A `qwen2` file is not permuted: llama.cpp
//! runs Qwen2 with the NeoX (rotate-half) RoPE, HF's own layout; its q/k/v biases map by name.
//!
//! A tensor with fewer dimensions than the architecture gives it (a 1-D `token_embd.weight`, a
//! scalar norm) is refused when the file is wrapped, naming the tensor and both ranks, so no
//! later code indexes a shape that is too short.

use std::collections::HashMap;
use std::path::Path;

use super::gguf::GgufFile;
use super::{format_err, QuantBlocks, TensorInfo, WeightSource};
use crate::error::{Error, Result};

/// HF-style Llama hyperparameters read from GGUF metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    /// `general.architecture`: `llama` or `qwen2` (HF's `model_type`).
    pub arch: String,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub intermediate_size: usize,
    pub rms_norm_eps: f32,
    pub rope_theta: f32,
    pub vocab_size: usize,
    pub max_position_embeddings: usize,
    /// True when the file has no `output.weight`: the LM head reuses the embeddings.
    pub tie_word_embeddings: bool,
}

impl LlamaConfig {
    /// The values under HF `config.json` key names.
    pub fn to_json(&self) -> serde_json::Value {
        let class = if self.arch == "qwen2" { "Qwen2ForCausalLM" } else { "LlamaForCausalLM" };
        serde_json::json!({
            "model_type": self.arch,
            "architectures": [class],
            "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "intermediate_size": self.intermediate_size,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "vocab_size": self.vocab_size,
            "max_position_embeddings": self.max_position_embeddings,
            "tie_word_embeddings": self.tie_word_embeddings,
            "hidden_act": "silu",
        })
    }
}

/// The architectures whose GGUF files map onto HF Llama-family checkpoints.
pub const ARCHITECTURES: [&str; 2] = ["llama", "qwen2"];

/// The HF config of a llama or qwen2 GGUF (other `general.architecture`s are refused).
pub fn hf_llama_config(g: &GgufFile) -> Result<LlamaConfig> {
    let arch = g.get_str("general.architecture")?;
    if !ARCHITECTURES.contains(&arch) {
        return Err(Error::Unsupported(format!(
            "{}: GGUF architecture '{arch}' (whet maps {} to the HF Llama family)",
            g.path().display(),
            ARCHITECTURES.join(" and ")
        )));
    }
    let key = |k: &str| format!("{arch}.{k}");
    let u = |k: &str| g.get_u32(&key(k)).map(|v| v as usize);
    let heads = u("attention.head_count")?;
    let kv_heads = match g.get(&key("attention.head_count_kv")) {
        Some(_) => u("attention.head_count_kv")?,
        None => heads,
    };
    let tensors = g.tensors();
    let has = |n: &str| tensors.iter().any(|t| t.name == n);
    let vocab_size = match g.get(&key("vocab_size")) {
        Some(_) => u("vocab_size")?,
        None => match g.get_array("tokenizer.ggml.tokens") {
            Ok(a) => a.len(),
            Err(_) => tensors
                .iter()
                .find(|t| t.name == "token_embd.weight")
                .and_then(|t| t.shape.first().copied())
                .unwrap_or(0),
        },
    };
    let rope_theta = match g.get(&key("rope.freq_base")) {
        Some(_) => g.get_f32(&key("rope.freq_base"))?,
        None => 10000.0, // llama.cpp's default when the key is absent
    };
    Ok(LlamaConfig {
        arch: arch.to_string(),
        hidden_size: u("embedding_length")?,
        num_hidden_layers: u("block_count")?,
        num_attention_heads: heads,
        num_key_value_heads: kv_heads,
        intermediate_size: u("feed_forward_length")?,
        rms_norm_eps: g.get_f32(&key("attention.layer_norm_rms_epsilon"))?,
        rope_theta,
        vocab_size,
        max_position_embeddings: u("context_length")?,
        tie_word_embeddings: !has("output.weight"),
    })
}

/// The rank the architecture gives a GGUF llama tensor: matrices are 2-D, norms and biases 1-D.
fn needed_rank(gguf: &str) -> usize {
    let norm = gguf.ends_with("norm.weight");
    if gguf.ends_with(".weight") && !norm {
        2
    } else {
        1
    }
}

/// Which rows to un-permute, and with how many heads.
#[derive(Clone, Copy)]
enum Perm {
    None,
    Heads(usize),
}

/// A llama or qwen2 GGUF presented under HF names and layout.
pub struct GgufLlama {
    file: GgufFile,
    config: LlamaConfig,
    /// (HF name, GGUF name, permutation), in file order.
    names: Vec<(String, String, Perm)>,
    /// HF name → position in `names`.
    index: HashMap<String, usize>,
}

/// The HF name of a GGUF llama tensor, and whether q/k un-permutation applies.
fn hf_name(gguf: &str, c: &LlamaConfig) -> Option<(String, Perm)> {
    let simple = match gguf {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(s) = simple {
        return Some((s.to_string(), Perm::None));
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (part, suffix) = rest.rsplit_once('.')?;
    // Only the llama converter permutes q/k (see the module comment).
    let heads = |n: usize| if c.arch == "llama" { Perm::Heads(n) } else { Perm::None };
    let (hf, perm) = match part {
        "attn_q" => ("self_attn.q_proj", heads(c.num_attention_heads)),
        "attn_k" => ("self_attn.k_proj", heads(c.num_key_value_heads)),
        "attn_v" => ("self_attn.v_proj", Perm::None),
        "attn_output" => ("self_attn.o_proj", Perm::None),
        "ffn_gate" => ("mlp.gate_proj", Perm::None),
        "ffn_up" => ("mlp.up_proj", Perm::None),
        "ffn_down" => ("mlp.down_proj", Perm::None),
        "attn_norm" => ("input_layernorm", Perm::None),
        "ffn_norm" => ("post_attention_layernorm", Perm::None),
        _ => return None,
    };
    Some((format!("model.layers.{layer}.{hf}.{suffix}"), perm))
}

/// Undo the converter's q/k row permutation in place. `data` is row-major with `rows` rows of
/// `cols` (1 for a bias); `heads` must divide `rows` into heads of an even size.
pub fn unpermute_rows<T: Copy + Default>(
    data: &[T],
    rows: usize,
    cols: usize,
    heads: usize,
) -> std::result::Result<Vec<T>, String> {
    if heads == 0
        || !rows.is_multiple_of(heads)
        || !(rows / heads).is_multiple_of(2)
        || data.len() != rows * cols
    {
        return Err(format!("cannot un-permute {rows} rows × {cols} into {heads} heads of even size"));
    }
    let hd = rows / heads;
    let half = hd / 2;
    let mut out = vec![T::default(); data.len()];
    for h in 0..heads {
        for p in 0..2 {
            for i in 0..half {
                let hf = h * hd + p * half + i;
                let gg = h * hd + 2 * i + p;
                out[hf * cols..(hf + 1) * cols].copy_from_slice(&data[gg * cols..(gg + 1) * cols]);
            }
        }
    }
    Ok(out)
}

impl GgufLlama {
    /// Open a llama GGUF file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::new(GgufFile::open(path)?)
    }

    /// Wrap an open GGUF file. Tensors without an HF counterpart (e.g. `rope_freqs.weight`,
    /// which HF recomputes) are left out of [`WeightSource::tensors`].
    pub fn new(file: GgufFile) -> Result<Self> {
        let config = hf_llama_config(&file)?;
        let mut names = Vec::new();
        let mut index = HashMap::new();
        for t in file.tensors() {
            let Some((hf, p)) = hf_name(&t.name, &config) else { continue };
            let need = needed_rank(&t.name);
            if t.shape.len() < need {
                return Err(format_err(
                    file.path(),
                    format!(
                        "'{}' has {} dimension(s) {:?}; a llama model needs {need}",
                        t.name,
                        t.shape.len(),
                        t.shape
                    ),
                ));
            }
            if index.insert(hf.clone(), names.len()).is_some() {
                return Err(format_err(file.path(), format!("two GGUF tensors map to '{hf}'")));
            }
            names.push((hf, t.name, p));
        }
        Ok(GgufLlama { file, config, names, index })
    }

    /// The HF config values.
    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// The underlying file (metadata, tokenizer arrays).
    pub fn gguf(&self) -> &GgufFile {
        &self.file
    }

    fn lookup(&self, name: &str) -> Result<&(String, String, Perm)> {
        self.index
            .get(name)
            .and_then(|&i| self.names.get(i))
            .ok_or_else(|| format_err(self.file.path(), format!("no tensor named '{name}'")))
    }
}

impl WeightSource for GgufLlama {
    fn tensors(&self) -> Vec<TensorInfo> {
        // `names` is in file order and holds a subset of the file's tensors, so one pass pairs them.
        let mut names = self.names.iter().peekable();
        let mut out = Vec::with_capacity(self.names.len());
        for t in self.file.tensors() {
            if let Some((hf, _, _)) = names.next_if(|(_, gg, _)| *gg == t.name) {
                out.push(TensorInfo { name: hf.clone(), ..t });
            }
        }
        out
    }

    fn read_f32(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>)> {
        let (_, gg, perm) = self.lookup(name)?;
        let (data, shape) = self.file.read_f32(gg)?;
        match perm {
            Perm::None => Ok((data, shape)),
            Perm::Heads(h) => {
                let rows = shape.first().copied().unwrap_or(0);
                let cols = shape.get(1..).map(|s| s.iter().product()).unwrap_or(1);
                let data = unpermute_rows(&data, rows, cols, *h)
                    .map_err(|m| format_err(self.file.path(), format!("'{gg}': {m}")))?;
                Ok((data, shape))
            }
        }
    }

    fn read_blocks(&self, name: &str) -> Result<Option<QuantBlocks>> {
        let (_, gg, perm) = self.lookup(name)?;
        let Some(mut q) = self.file.read_blocks(gg)? else { return Ok(None) };
        if let Perm::Heads(h) = perm {
            // Blocks run along a row, so a row permutation moves whole runs of blocks.
            let rows = q.shape.first().copied().unwrap_or(0);
            let row_bytes = q.bytes.len().checked_div(rows).unwrap_or(0);
            q.bytes = unpermute_rows(&q.bytes, rows, row_bytes, *h)
                .map_err(|m| format_err(self.file.path(), format!("'{gg}': {m}")))?;
        }
        Ok(Some(q))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpermute_inverts_the_converter_permutation() {
        let (rows, cols, heads) = (12, 3, 2);
        let w: Vec<f32> = (0..rows * cols).map(|x| x as f32).collect();
        let g = crate::weights::llama_to_gguf::permute_rows(&w, rows, cols, heads).unwrap();
        // Head 0 (hd 6): GGUF rows are HF rows 0,3,1,4,2,5.
        assert_eq!(&g[3..6], &w[9..12]);
        assert_eq!(unpermute_rows(&g, rows, cols, heads).unwrap(), w);
        assert!(unpermute_rows(&g, rows, cols, 5).is_err());
    }
}
