//! `output.gguf`: a fine-tuned llama-family decoder as `model.gguf`, the file llama.cpp and the
//! tools built on it load. The merged weights are renamed to llama.cpp's tensor names, q/k rows
//! permuted as its converter does ([`crate::weights::llama_to_gguf`]), matrices stored as F16
//! or Q8_0 and norms (every 1-D tensor) as F32, as llama.cpp's own converter stores them. A
//! matrix whose rows are not whole Q8_0 blocks stays F16 (the converter's fallback too).
//!
//! Metadata: `general.*` and the `llama.*` hyperparameters llama.cpp reads, from the model's
//! Hugging Face config; when the model came from a GGUF file, that file's other `llama.*`
//! keys, its tokenizer (`tokenizer.*`: vocabulary, scores, types, merges, special ids, chat
//! template) and its tensors the model does not use (`rope_freqs.weight`) are copied through,
//! since fine-tuning changes none of them. Without a GGUF source, a byte-level BPE
//! tokenizer.json is converted ([`super::gguf_tokenizer`]); another kind of tokenizer is left
//! out (llama.cpp then needs one supplied).

use std::path::Path;

use crate::error::{Error, Result};
use crate::models::llama::LlamaConfig;
use crate::weights::gguf::{GgufFile, MetaValue};
use crate::weights::llama_to_gguf::{gguf_name, permute_rows, RowOrder};
use crate::weights::write_gguf::{gguf_bytes, GgufTensor};
use crate::weights::{WeightDType, WeightSource};

use super::export::KeyedTensor;

/// The file name written beside the safetensors.
pub const GGUF_FILE: &str = "model.gguf";

/// The matrix type `output.gguf` names ("f16", "q8_0").
pub fn gguf_dtype(name: &str) -> Result<WeightDType> {
    match name {
        "f16" => Ok(WeightDType::F16),
        "q8_0" => Ok(WeightDType::Q8_0),
        other => Err(Error::arg("output.gguf", format!("'{other}' (f16, q8_0)"))),
    }
}

/// llama.cpp's `general.file_type` (its `llama_ftype`) for the matrix type.
fn file_type(dt: WeightDType) -> u32 {
    match dt {
        WeightDType::Q8_0 => 7,
        _ => 1, // MOSTLY_F16
    }
}

/// The `llama.*` hyperparameters llama.cpp reads, from the model's config as whet's Llama
/// reads it (`rope_parameters` or `rope_theta`, defaults filled in).
fn llama_metadata(c: &LlamaConfig) -> Result<Vec<(String, MetaValue)>> {
    // llama.cpp's `llama` architecture has no q/k/v biases and no sliding window: a Qwen2 or
    // windowed Mistral written under it would load and run differently there.
    let windowed =
        (0..c.num_hidden_layers).any(|l| c.window(l).is_some_and(|w| w < c.max_position_embeddings));
    if c.qkv_bias() || windowed {
        let member = c.model_type.as_deref().unwrap_or("llama");
        return Err(Error::Unsupported(format!(
            "output.gguf: a {member} model (q/k/v biases or a sliding window) has no GGUF writer yet; \
             its Hugging Face export (model/) holds it"
        )));
    }
    let u = |k: &str, v: usize| {
        u32::try_from(v)
            .map(|v| (format!("llama.{k}"), MetaValue::U32(v)))
            .map_err(|_| Error::arg("output.gguf", format!("{k} = {v} does not fit GGUF's u32")))
    };
    let mut meta = vec![
        u("context_length", c.max_position_embeddings)?,
        u("embedding_length", c.hidden_size)?,
        u("block_count", c.num_hidden_layers)?,
        u("feed_forward_length", c.intermediate_size)?,
        u("attention.head_count", c.num_attention_heads)?,
        u("attention.head_count_kv", c.kv_heads())?,
        ("llama.rope.freq_base".into(), MetaValue::F32(c.theta() as f32)),
        ("llama.attention.layer_norm_rms_epsilon".into(), MetaValue::F32(c.rms_norm_eps as f32)),
        u("rope.dimension_count", c.head_dim())?,
        u("vocab_size", c.vocab_size)?,
    ];
    // llama.cpp assumes head_dim = hidden / heads unless told otherwise.
    if c.head_dim() * c.num_attention_heads != c.hidden_size {
        meta.push(u("attention.key_length", c.head_dim())?);
        meta.push(u("attention.value_length", c.head_dim())?);
    }
    Ok(meta)
}

/// One merged tensor under its GGUF name, rows in GGUF order, encoded.
fn gguf_tensor(
    key: &str,
    shape: &[usize],
    values: &[f32],
    c: &LlamaConfig,
    dtype: WeightDType,
) -> Result<GgufTensor> {
    let (name, order) = gguf_name(key).ok_or_else(|| {
        Error::arg(
            "output.gguf",
            format!("'{key}' has no llama.cpp tensor name (not a llama decoder tensor)"),
        )
    })?;
    let heads = match order {
        RowOrder::Same => None,
        RowOrder::QueryHeads => Some(c.num_attention_heads),
        RowOrder::KeyValueHeads => Some(c.kv_heads()),
    };
    let permuted;
    let values = match heads {
        Some(heads) => {
            let rows = shape.first().copied().unwrap_or(0);
            permuted = permute_rows(values, rows, values.len() / rows.max(1), heads)
                .map_err(|m| Error::arg("output.gguf", format!("'{key}': {m}")))?;
            &permuted[..]
        }
        None => values,
    };
    let row = shape.last().copied().unwrap_or(0);
    let dt = match dtype {
        _ if shape.len() < 2 => WeightDType::F32,
        WeightDType::Q8_0 if !row.is_multiple_of(32) => WeightDType::F16,
        dt => dt,
    };
    let bytes = crate::weights::quantize::quantize(dt, values)
        .map_err(|m| Error::arg("output.gguf", format!("'{key}' as {dt:?}: {m}")))?;
    Ok(GgufTensor { name, shape: shape.to_vec(), dtype: dt, bytes })
}

/// The source file's metadata fine-tuning leaves as it was: tokenizer, other `llama.*` keys
/// (those `ours` does not set), and `general.name`.
fn copied_metadata(src: &GgufFile, ours: &[(String, MetaValue)]) -> Vec<(String, MetaValue)> {
    src.metadata()
        .iter()
        .filter(|(k, _)| {
            k.starts_with("tokenizer.")
                || k == "general.name"
                || (k.starts_with("llama.") && !ours.iter().any(|(o, _)| o == k))
        })
        .cloned()
        .collect()
}

/// The source's tensors that have no Hugging Face counterpart (`rope_freqs.weight`), as stored.
fn copied_tensors(src: &GgufFile, written: &[GgufTensor]) -> Result<Vec<GgufTensor>> {
    let mut out = Vec::new();
    for t in src.tensors() {
        if written.iter().any(|w| w.name == t.name) || crate::weights::llama_to_gguf::is_llama_tensor(&t.name)
        {
            continue;
        }
        let bytes = src.bytes(&t.name)?.to_vec();
        out.push(GgufTensor { name: t.name, shape: t.shape, dtype: t.dtype, bytes });
    }
    Ok(out)
}

/// What a GGUF export needs besides the weights.
pub struct GgufSpec<'a> {
    /// The model's Hugging Face config (`LlamaConfig` reads it).
    pub config: &'a serde_json::Value,
    /// The GGUF file the model came from: its tokenizer, other `llama.*` keys and unused
    /// tensors are copied through.
    pub source: Option<&'a GgufFile>,
    /// `tokenizer.*` metadata for a model without a GGUF source
    /// ([`super::gguf_tokenizer::tokenizer_metadata`]); ignored when `source` is set.
    pub tokenizer: Vec<(String, MetaValue)>,
    /// The matrices' type: F16 or Q8_0.
    pub dtype: WeightDType,
}

/// Write `tensors` (merged, under Hugging Face Llama keys) as GGUF to `path`. Returns the
/// tensor names written.
pub fn export_gguf(tensors: &[KeyedTensor], spec: &GgufSpec, path: &Path) -> Result<Vec<String>> {
    let c = LlamaConfig::from_json(spec.config, "the model's config")?;
    let mut out: Vec<GgufTensor> =
        tensors.iter().map(|(k, s, v)| gguf_tensor(k, s, v, &c, spec.dtype)).collect::<Result<_>>()?;
    let mut meta = vec![
        ("general.architecture".to_string(), MetaValue::Str("llama".into())),
        ("general.file_type".to_string(), MetaValue::U32(file_type(spec.dtype))),
        // ggml's GGML_QNT_VERSION: the block layouts written here.
        ("general.quantization_version".to_string(), MetaValue::U32(2)),
    ];
    let llama = llama_metadata(&c)?;
    match spec.source {
        Some(src) => {
            meta.extend(copied_metadata(src, &llama));
            out.extend(copied_tensors(src, &out)?);
        }
        None => meta.extend(spec.tokenizer.iter().cloned()),
    }
    meta.extend(llama);
    let bytes =
        gguf_bytes(&meta, &out).map_err(|m| Error::arg("output.gguf", format!("{}: {m}", path.display())))?;
    crate::train::checkpoint::replace_atomically(path, &bytes)?;
    Ok(out.into_iter().map(|t| t.name).collect())
}
