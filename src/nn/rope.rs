//! Rotary position embedding, Hugging Face `rotate_half` layout, as the models call it: the
//! table is built once per model and applied by the fused op (`ops::rope`).

use crate::engine::Engine;
use crate::error::Result;
use crate::ops::rope::{rope, RopeTable};
use crate::tensor::Tensor;

/// cos/sin tables for positions `0..max_positions`.
pub struct Rope {
    table: RopeTable,
}

impl Rope {
    /// Tables for `head_dim` (even) with base `theta`: angle(p, i) = p · theta^(−2i/D).
    pub fn new(engine: &Engine, head_dim: usize, max_positions: usize, theta: f64) -> Result<Rope> {
        Ok(Rope { table: RopeTable::new(engine, head_dim, max_positions, theta)? })
    }

    /// Rotate `x` `[B, H, T, D]` for positions `offset..offset+T`.
    pub fn apply(&self, x: &Tensor, offset: usize) -> Result<Tensor> {
        rope(x, &self.table, offset)
    }
}
