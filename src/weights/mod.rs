//! Weight sources. Models ask for tensors by checkpoint key and never see the file format.
//! (HF directories, PyTorch state dicts and GGUF arrive with the model zoo.)

pub mod safetensors;

use crate::error::Result;

/// Element types found in checkpoints.
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
}

impl WeightDType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            WeightDType::F64 | WeightDType::I64 => 8,
            WeightDType::F32 | WeightDType::I32 => 4,
            WeightDType::F16 | WeightDType::BF16 | WeightDType::I16 => 2,
            WeightDType::I8 | WeightDType::U8 | WeightDType::Bool => 1,
        }
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
}
