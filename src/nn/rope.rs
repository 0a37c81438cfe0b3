//! Rotary position embedding, Hugging Face `rotate_half` layout, as the models call it.
//!
//! Composite for now (two slices, a negation, a concat and two products against cos/sin
//! tables); the fused kernel of `ops::rope` replaces the body without changing callers.

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::ops::layout::concat;
use crate::tensor::Tensor;

/// cos/sin tables for positions `0..max_positions`, computed in f64 and stored f32.
pub struct Rope {
    head_dim: usize,
    max_positions: usize,
    cos: Vec<f32>,
    sin: Vec<f32>,
    engine: Engine,
}

impl Rope {
    /// Tables for `head_dim` (even) with base `theta`: angle(p, i) = p · theta^(−2i/D).
    pub fn new(engine: &Engine, head_dim: usize, max_positions: usize, theta: f64) -> Result<Rope> {
        if head_dim == 0 || head_dim % 2 != 0 {
            return Err(Error::arg("rope", format!("head dim {head_dim} must be even and > 0")));
        }
        if !(theta.is_finite() && theta > 0.0) {
            return Err(Error::arg("rope", format!("theta {theta} must be finite and > 0")));
        }
        let half = head_dim / 2;
        let mut cos = vec![0.0f32; max_positions * head_dim];
        let mut sin = vec![0.0f32; max_positions * head_dim];
        for p in 0..max_positions {
            for i in 0..half {
                let a = p as f64 * theta.powf(-2.0 * i as f64 / head_dim as f64);
                for j in [i, i + half] {
                    cos[p * head_dim + j] = a.cos() as f32;
                    sin[p * head_dim + j] = a.sin() as f32;
                }
            }
        }
        Ok(Rope { head_dim, max_positions, cos, sin, engine: engine.clone() })
    }

    /// Rotate `x` `[B, H, T, D]` for positions `offset..offset+T`.
    pub fn apply(&self, x: &Tensor, offset: usize) -> Result<Tensor> {
        let s = x.shape().to_vec();
        let d = self.head_dim;
        if s.len() != 4 || s[3] != d {
            return Err(Error::shape("rope", &s, &[d], "x must be [B, H, T, head_dim]"));
        }
        let t = s[2];
        if offset + t > self.max_positions {
            return Err(Error::arg(
                "rope",
                format!("positions up to {} exceed the table's {}", offset + t, self.max_positions),
            ));
        }
        let r = offset * d..(offset + t) * d;
        let cos = Tensor::from_slice(&self.engine, &self.cos[r.clone()], &[t, d])?;
        let sin = Tensor::from_slice(&self.engine, &self.sin[r], &[t, d])?;
        let half = d / 2;
        let rot = concat(&[&x.slice(-1, half, half)?.neg()?, &x.slice(-1, 0, half)?], -1)?;
        x.mul(&cos)?.add(&rot.mul(&sin)?)
    }
}
