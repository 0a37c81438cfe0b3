//! Rotary position embedding in HF's `rotate_half` layout (`shaders/attention/rope.wgsl`).
//!
//! For head dim D (even) and `h = D/2`: `inv_freq_i = theta^(-2i/D)` for `i < h`, the angle
//! of position `pos` is `pos · inv_freq_i`, and
//! `out = x · cos + rotate_half(x) · sin` with `rotate_half(x) = cat(-x[h:], x[:h])` and
//! cos/sin duplicated across both halves; i.e. pair `(x_i, x_{i+h})` is rotated by angle_i.
//! The backward pass is the transpose: the same rotation by minus the angle.

use crate::engine::{shaders, Binding, Engine, Kernel};
use crate::error::{Error, Result};
use crate::graph::{record, Backward};
use crate::ops::{launch_1d, same_engine};
use crate::tensor::Tensor;

/// cos/sin of every (position, frequency) pair, on the device (uploaded once).
///
/// The angles are computed as HF transformers computes them in float32, so logits match HF's
/// to ~1e-4 even at positions in the thousands (where an f32 angle differs from the exact f64
/// angle by ~1e-4 rad): `inv_freq = 1 / theta^(f32(2i) / f32(D))` with the exponent and the
/// result rounded to f32, and `angle = f32(pos) * inv_freq` rounded to f32. The cos and sin of
/// that f32 angle are then evaluated in f64 and stored as f32 (correctly rounded, where torch's
/// f32 cos/sin are within an ulp of it).
pub struct RopeTable {
    cos: Tensor,
    sin: Tensor,
    cos_host: Vec<f32>,
    sin_host: Vec<f32>,
    head_dim: usize,
    max_positions: usize,
}

impl RopeTable {
    /// Tables for `head_dim` (must be even) and positions `0..max_positions`.
    pub fn new(engine: &Engine, head_dim: usize, max_positions: usize, theta: f64) -> Result<RopeTable> {
        if head_dim == 0 || !head_dim.is_multiple_of(2) {
            return Err(Error::arg("rope", format!("head dim must be even and positive, got {head_dim}")));
        }
        if max_positions == 0 {
            return Err(Error::arg("rope", "max_positions must be at least 1"));
        }
        if !(theta.is_finite() && theta > 0.0) {
            return Err(Error::arg("rope", format!("theta must be positive and finite, got {theta}")));
        }
        let half = head_dim / 2;
        let theta32 = theta as f32;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| {
                let expo = (2 * i) as f32 / head_dim as f32;
                let pw = (theta32 as f64).powf(expo as f64) as f32;
                1.0f32 / pw
            })
            .collect();
        let n = max_positions * half;
        let (mut cos_host, mut sin_host) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for pos in 0..max_positions {
            for &f in &inv_freq {
                let angle = (pos as f32 * f) as f64;
                cos_host.push(angle.cos() as f32);
                sin_host.push(angle.sin() as f32);
            }
        }
        let shape = [max_positions, half];
        Ok(RopeTable {
            cos: Tensor::from_slice(engine, &cos_host, &shape)?,
            sin: Tensor::from_slice(engine, &sin_host, &shape)?,
            cos_host,
            sin_host,
            head_dim,
            max_positions,
        })
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// The cos table as uploaded, `[max_positions, head_dim/2]` row-major.
    pub fn cos_host(&self) -> &[f32] {
        &self.cos_host
    }

    /// The sin table as uploaded, `[max_positions, head_dim/2]` row-major.
    pub fn sin_host(&self) -> &[f32] {
        &self.sin_host
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    pairs: u32,
    t: u32,
    half: u32,
    offset: u32,
    sign: f32,
    _pad: [u32; 3],
}

fn apply(x: &Tensor, table: &RopeTable, p: &Params) -> Result<Tensor> {
    let e = x.engine();
    let y = Tensor::empty_typed(e, x.shape(), x.dtype())?;
    launch_1d(
        e,
        &Kernel::new(&shaders::ROPE, "rope_apply").half(x.is_half()),
        p,
        &[
            Binding::read(x.storage(), x.nbytes()),
            Binding::read(table.cos.storage(), table.cos.nbytes()),
            Binding::read(table.sin.storage(), table.sin.nbytes()),
            Binding::write(y.storage(), y.nbytes()),
        ],
        p.pairs as usize,
    )?;
    Ok(y)
}

struct RopeBackward {
    cos: Tensor,
    sin: Tensor,
    p: Params,
}

impl Backward for RopeBackward {
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let e = g.engine();
        let gx = Tensor::empty_typed(e, g.shape(), g.dtype())?;
        let p = Params { sign: -1.0, ..self.p };
        launch_1d(
            e,
            &Kernel::new(&shaders::ROPE, "rope_apply").half(g.is_half()),
            &p,
            &[
                Binding::read(g.storage(), g.nbytes()),
                Binding::read(self.cos.storage(), self.cos.nbytes()),
                Binding::read(self.sin.storage(), self.sin.nbytes()),
                Binding::write(gx.storage(), gx.nbytes()),
            ],
            p.pairs as usize,
        )?;
        Ok(vec![Some(gx)])
    }
    fn saved_bytes(&self) -> u64 {
        // The tables belong to the RopeTable and are shared, not saved per call.
        0
    }
}

/// Rotate `x` `[B, H, T, D]` by the angles of positions `position_offset .. position_offset + T`.
pub fn rope(x: &Tensor, table: &RopeTable, position_offset: usize) -> Result<Tensor> {
    same_engine("rope", &[x, &table.cos])?;
    x.expect_float("rope")?;
    if x.rank() != 4 || x.shape()[3] != table.head_dim {
        return Err(Error::shape(
            "rope",
            x.shape(),
            &[table.max_positions, table.head_dim],
            format!("x must be [B, H, T, {}] for this table", table.head_dim),
        ));
    }
    let t = x.shape()[2];
    let end = position_offset.checked_add(t).filter(|&end| end <= table.max_positions);
    if end.is_none() {
        return Err(Error::arg(
            "rope",
            format!(
                "positions {position_offset}..{position_offset}+{t} exceed the table's {} positions",
                table.max_positions
            ),
        ));
    }
    let half = table.head_dim / 2;
    let p = Params {
        pairs: (x.numel() / 2) as u32,
        t: t as u32,
        half: half as u32,
        offset: position_offset as u32,
        sign: 1.0,
        _pad: [0; 3],
    };
    let y = apply(x, table, &p)?;
    record("rope", y, &[x], |_| {
        Ok(Box::new(RopeBackward { cos: table.cos.clone(), sin: table.sin.clone(), p }))
    })
}
