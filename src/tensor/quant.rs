//! Block-quantized tensors: a frozen weight kept in GGML's Q4_0, Q4_1, Q8_0 or Q4_K blocks on
//! the device, dequantized in registers by the kernels that read it (`ops::quant`). A
//! SmolLM2-135M weight in Q4_1 takes 5/32 of its f32 bytes, which is what lets a 1B decoder's
//! frozen base fit beside its LoRA adapters on a small GPU.
//!
//! f16 and bf16 weights (most checkpoints on the Hugging Face hub are bf16) are held the same
//! way, as "blocks" of eight 16-bit values: half the f32 bytes, converted in registers by the
//! same kernels. The conversion needs no `SHADER_F16` (`unpack2x16float`, and bf16 is the high
//! half of an f32), so it runs on every adapter.
//!
//! On the device each block keeps the file's bytes except that a 2-byte header (Q4_0 and Q8_0:
//! one f16 scale) is padded to 4, so every block starts on a word and the shader never reads a
//! byte across words. Q4_1 (20 bytes) and Q4_K (144) are word-sized already and stay as they are.

use super::{AllocFor, DType, Tensor};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::weights::WeightDType;

/// A block format a tensor can be stored in on the device (GGML's names).
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuantType {
    Q4_0,
    Q4_1,
    Q8_0,
    Q4_K,
    F16,
    BF16,
}

impl QuantType {
    /// The device format for a checkpoint dtype, if it is one the kernels read.
    pub fn of(dt: WeightDType) -> Option<QuantType> {
        match dt {
            WeightDType::Q4_0 => Some(QuantType::Q4_0),
            WeightDType::Q4_1 => Some(QuantType::Q4_1),
            WeightDType::Q8_0 => Some(QuantType::Q8_0),
            WeightDType::Q4_K => Some(QuantType::Q4_K),
            WeightDType::F16 => Some(QuantType::F16),
            WeightDType::BF16 => Some(QuantType::BF16),
            _ => None,
        }
    }

    /// The recipe name (`model.quantize`), e.g. `q4_0`.
    pub fn name(self) -> &'static str {
        match self {
            QuantType::Q4_0 => "q4_0",
            QuantType::Q4_1 => "q4_1",
            QuantType::Q8_0 => "q8_0",
            QuantType::Q4_K => "q4_k",
            QuantType::F16 => "f16",
            QuantType::BF16 => "bf16",
        }
    }

    /// The checkpoint dtype with the same blocks.
    pub fn weight_dtype(self) -> WeightDType {
        match self {
            QuantType::Q4_0 => WeightDType::Q4_0,
            QuantType::Q4_1 => WeightDType::Q4_1,
            QuantType::Q8_0 => WeightDType::Q8_0,
            QuantType::Q4_K => WeightDType::Q4_K,
            QuantType::F16 => WeightDType::F16,
            QuantType::BF16 => WeightDType::BF16,
        }
    }

    /// `QTYPE` of `shaders/quant/quant.wgsl`.
    pub(crate) fn shader_code(self) -> u32 {
        match self {
            QuantType::Q4_0 => 0,
            QuantType::Q4_1 => 1,
            QuantType::Q8_0 => 2,
            QuantType::Q4_K => 3,
            QuantType::F16 => 4,
            QuantType::BF16 => 5,
        }
    }

    /// A 16-bit float format rather than GGML blocks.
    pub fn is_half(self) -> bool {
        matches!(self, QuantType::F16 | QuantType::BF16)
    }

    /// Elements per block: the kernels read 16-bit floats eight at a time (one chunk).
    pub fn block_elems(self) -> usize {
        if self.is_half() {
            return HALF_CHUNK;
        }
        self.weight_dtype().block().0
    }

    /// Bytes per block in a GGUF file.
    pub fn file_block_bytes(self) -> usize {
        if self.is_half() {
            return HALF_CHUNK * 2;
        }
        self.weight_dtype().block().1
    }

    /// Bytes of the header the device layout pads to a word (0 when none is needed).
    fn padded_header(self) -> usize {
        match self {
            QuantType::Q4_0 | QuantType::Q8_0 => 2,
            QuantType::Q4_1 | QuantType::Q4_K | QuantType::F16 | QuantType::BF16 => 0,
        }
    }

    /// Bytes per block on the device.
    pub fn device_block_bytes(self) -> usize {
        self.file_block_bytes() + self.padded_header()
    }

    /// Device bytes of `n` elements (a multiple of the block).
    pub fn device_bytes(self, n: usize) -> u64 {
        (n / self.block_elems()) as u64 * self.device_block_bytes() as u64
    }
}

/// Elements of a 16-bit "block": the kernels' chunk of eight.
const HALF_CHUNK: usize = 8;

/// File blocks → device blocks.
pub(crate) fn to_device_layout(qt: QuantType, file: &[u8]) -> Vec<u8> {
    let pad = qt.padded_header();
    if pad == 0 {
        return file.to_vec();
    }
    let mut out = Vec::with_capacity(file.len() / qt.file_block_bytes() * qt.device_block_bytes());
    for b in file.chunks_exact(qt.file_block_bytes()) {
        out.extend_from_slice(&b[..2]);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&b[2..]);
    }
    out
}

/// Device blocks → file blocks.
pub(crate) fn to_file_layout(qt: QuantType, device: &[u8]) -> Vec<u8> {
    let pad = qt.padded_header();
    if pad == 0 {
        return device.to_vec();
    }
    let mut out = Vec::with_capacity(device.len() / qt.device_block_bytes() * qt.file_block_bytes());
    for b in device.chunks_exact(qt.device_block_bytes()) {
        out.extend_from_slice(&b[..2]);
        out.extend_from_slice(&b[4..]);
    }
    out
}

impl Tensor {
    /// Upload a weight `[rows, cols]` given as GGUF blocks of `qt` in file layout. `cols` must
    /// be a multiple of the block (GGUF guarantees it for every quantized tensor) so blocks
    /// never straddle rows, and `blocks` must hold exactly the elements of `shape`.
    #[track_caller]
    pub fn from_quantized(engine: &Engine, qt: QuantType, blocks: &[u8], shape: &[usize]) -> Result<Tensor> {
        let what = AllocFor::here(shape, DType::Quant(qt));
        if shape.len() != 2 || !shape[1].is_multiple_of(qt.block_elems()) {
            return Err(Error::arg(
                "from_quantized",
                format!(
                    "a {} weight must be 2-D with a multiple of {} columns, got {shape:?}",
                    qt.name(),
                    qt.block_elems()
                ),
            ));
        }
        let n = shape[0] * shape[1];
        let want = n / qt.block_elems() * qt.file_block_bytes();
        if blocks.len() != want {
            return Err(Error::arg(
                "from_quantized",
                format!("{shape:?} in {} needs {want} bytes, got {}", qt.name(), blocks.len()),
            ));
        }
        let bytes = to_device_layout(qt, blocks);
        let storage = engine.upload_new(&bytes, bytes.len() as u64, what)?;
        Ok(Self::from_storage(engine, storage, shape.to_vec(), DType::Quant(qt)))
    }

    /// The block format, for a quantized tensor.
    pub fn quant_type(&self) -> Option<QuantType> {
        match self.dtype() {
            DType::Quant(q) => Some(q),
            _ => None,
        }
    }

    /// The blocks in GGUF file layout (read back from the device).
    pub fn quant_blocks(&self) -> Result<Vec<u8>> {
        let Some(qt) = self.quant_type() else {
            return Err(Error::DType {
                op: "quant_blocks",
                expected: "a quantized type",
                got: self.dtype().name(),
            });
        };
        let bytes = self.engine().download(self.storage(), self.nbytes())?;
        Ok(to_file_layout(qt, &bytes))
    }

    /// The values of a quantized tensor, dequantized on the host by the CPU reference.
    pub(super) fn dequantized_on_host(&self, qt: QuantType) -> Result<Vec<f32>> {
        let blocks = self.quant_blocks()?;
        crate::weights::quant::dequantize(qt.weight_dtype(), &blocks, self.numel())
            .map_err(|m| Error::arg("to_vec", m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_layout_round_trips_and_pads_two_byte_headers() {
        for qt in [
            QuantType::Q4_0,
            QuantType::Q4_1,
            QuantType::Q8_0,
            QuantType::Q4_K,
            QuantType::F16,
            QuantType::BF16,
        ] {
            let file: Vec<u8> = (0..3 * qt.file_block_bytes()).map(|i| (i * 7 % 251) as u8).collect();
            let dev = to_device_layout(qt, &file);
            assert_eq!(dev.len(), 3 * qt.device_block_bytes());
            assert_eq!(qt.device_block_bytes() % 4, 0, "{qt:?} blocks must start on a word");
            assert_eq!(to_file_layout(qt, &dev), file);
        }
    }
}
