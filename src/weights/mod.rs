//! Weight sources. Models ask for tensors by checkpoint key and never see the file format:
//! safetensors, Hugging Face model directories, PyTorch state dicts (zip and legacy) and GGUF all
//! sit behind [`WeightSource`], and [`open`] picks the reader from the file's content.

pub mod gguf;
pub mod gguf_llama;
mod gguf_meta;
pub mod hf_cache;
pub mod hf_dir;
#[cfg(feature = "hub")]
pub mod hub;
pub mod llama_to_gguf;
mod open;
pub mod pickle;
pub mod quant;
pub mod quantize;
pub mod safetensors;
mod safetensors_header;
pub mod torch;
pub mod write_gguf;

pub use open::open;

use crate::error::{Error, Result};

/// Element types found in checkpoints. The quantised variants keep ggml's names (`Q4_K`).
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightDType {
    F64,
    F32,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
    /// GGML block-quantised types (GGUF). Only ever dequantised; never a compute dtype.
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q4_K,
    Q6_K,
}

impl WeightDType {
    /// Bytes per element; for block-quantised types, the bytes of one block (see [`Self::block`]).
    pub fn size(self) -> usize {
        self.block().1
    }

    /// (elements, bytes) of the smallest addressable unit: (1, size) for plain types, one block
    /// for quantised ones. Byte counts are `elements / block.0 * block.1`.
    pub fn block(self) -> (usize, usize) {
        use WeightDType::*;
        match self {
            F64 | I64 => (1, 8),
            F32 | I32 => (1, 4),
            F16 | BF16 | I16 => (1, 2),
            I8 | U8 | Bool => (1, 1),
            Q4_0 => (32, 18),
            Q4_1 => (32, 20),
            Q5_0 => (32, 22),
            Q5_1 => (32, 24),
            Q8_0 => (32, 34),
            Q4_K => (256, 144),
            Q6_K => (256, 210),
        }
    }

    /// True for the GGML block-quantised types.
    pub fn is_quantized(self) -> bool {
        self.block().0 > 1
    }

    /// True for the 16-bit float types (F16, BF16), which a frozen weight can keep on the device.
    pub fn is_half(self) -> bool {
        matches!(self, WeightDType::F16 | WeightDType::BF16)
    }
}

/// Name, dtype and shape of one stored tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: WeightDType,
    pub shape: Vec<usize>,
}

/// Anything that can hand out named tensors as f32.
pub trait WeightSource {
    /// Every tensor, in file order.
    fn tensors(&self) -> Vec<TensorInfo>;
    /// The tensor `name` converted to f32 (row-major), with its shape.
    fn read_f32(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>)>;
    /// The tensor `name` as it is stored, when that is GGML blocks or 16-bit floats: (dtype, the
    /// bytes in file layout with rows in the order [`Self::read_f32`] gives them, shape). `None`
    /// for other dtypes and for sources that only hand out f32.
    fn read_blocks(&self, _name: &str) -> Result<Option<QuantBlocks>> {
        Ok(None)
    }
}

/// A block-quantized tensor as a checkpoint stores it.
#[derive(Debug, Clone)]
pub struct QuantBlocks {
    pub dtype: WeightDType,
    /// The blocks, row-major: each row of `shape[1]` elements is `shape[1] / block` blocks.
    pub bytes: Vec<u8>,
    pub shape: Vec<usize>,
}

/// Total element count of a shape, `None` on overflow (a crafted file, never a real one).
pub fn numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

/// A `Format` error for `path` without a line number: every reader reports damage this way.
pub(crate) fn format_err(path: &std::path::Path, message: impl Into<String>) -> Error {
    Error::Format { path: path.display().to_string(), line: None, message: message.into() }
}

/// Read-only bytes of a checkpoint: a memory map for files, a vector for in-memory input
/// (tests, and readers handed bytes by another reader).
pub(crate) enum Bytes {
    Map(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Map(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

impl Bytes {
    /// Map `path` read-only.
    pub(crate) fn map(path: &std::path::Path) -> Result<Bytes> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: the map is read-only; a file truncated underneath us is the one hazard, the
        // same as for every mmap-based loader (safetensors, candle).
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        Ok(Bytes::Map(map))
    }
}
