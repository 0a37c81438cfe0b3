//! [`open`]: one entry point for every checkpoint format, chosen by content (magic bytes), never
//! by extension: `.bin` is a torch pickle for HF but anything elsewhere, and renamed files are
//! common.

use std::io::Read;
use std::path::Path;

use super::gguf::GgufFile;
use super::hf_dir::HfDir;
use super::safetensors::SafeTensorsFile;
use super::torch::{TorchFile, LEGACY_MAGIC};
use super::{format_err, WeightSource};
use crate::error::{Error, Result};

/// Open any supported checkpoint:
///
/// | content | reader |
/// |---|---|
/// | a directory | [`HfDir`] (config.json + safetensors, sharded, or pytorch_model.bin) |
/// | `PK\x03\x04` | [`TorchFile`], zip format |
/// | `\x80\x02` + the legacy magic number | [`TorchFile`], legacy format |
/// | `GGUF` | [`GgufFile`] (raw GGUF tensor names; see [`super::gguf_llama`] for HF names) |
/// | u64 header length then `{` | [`SafeTensorsFile`] |
///
/// Anything else is a `Format` error naming the path and its first bytes.
pub fn open(path: impl AsRef<Path>) -> Result<Box<dyn WeightSource>> {
    let path = path.as_ref();
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        return Ok(Box::new(HfDir::open(path)?));
    }
    let mut head = Vec::with_capacity(16);
    std::fs::File::open(path)
        .and_then(|f| f.take(16).read_to_end(&mut head))
        .map_err(|e| Error::io(path, e))?;
    if head.starts_with(b"PK\x03\x04") || head.starts_with(LEGACY_MAGIC) {
        return Ok(Box::new(TorchFile::open(path)?));
    }
    if head.starts_with(b"GGUF") {
        return Ok(Box::new(GgufFile::open(path)?));
    }
    // safetensors: a little-endian u64 header length, then the JSON header's opening brace.
    if head.len() > 8 && head[8] == b'{' {
        return Ok(Box::new(SafeTensorsFile::open(path)?));
    }
    let hex: Vec<String> = head.iter().map(|b| format!("{b:02x}")).collect();
    let what = if head.starts_with(b"\x80") { " (a pickle, but not a torch.save file)" } else { "" };
    Err(format_err(
        path,
        format!(
            "unrecognised weight format{what}; first bytes: {} (expected safetensors, GGUF, a PyTorch zip or legacy \
             checkpoint, or a Hugging Face model directory)",
            if hex.is_empty() { "none (empty file)".to_string() } else { hex.join(" ") }
        ),
    ))
}
