//! Inverted dropout with a counter-based RNG (`shaders/dropout/dropout.wgsl`): the mask is a
//! pure function of (seed, element index), so backward recomputes it instead of storing it.

use crate::engine::{shaders, Binding, Kernel};
use crate::error::{Error, Result};
use crate::graph::{record, Backward};
use crate::ops::launch_1d;
use crate::tensor::Tensor;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Params {
    pub n: u32,
    pub threshold: u32,
    pub seed_lo: u32,
    pub seed_hi: u32,
    pub scale: f32,
    pub _pad: [u32; 3],
}

/// Threshold on the 32-bit hash below which an element is dropped.
pub fn threshold(p: f32) -> u32 {
    ((p as f64) * 4_294_967_296.0).min(u32::MAX as f64) as u32
}

fn params(n: usize, p: f32, seed: u64) -> Params {
    Params {
        n: n as u32,
        threshold: threshold(p),
        seed_lo: seed as u32,
        seed_hi: (seed >> 32) as u32,
        scale: if p >= 1.0 { 0.0 } else { 1.0 / (1.0 - p) },
        _pad: [0; 3],
    }
}

struct DropoutBackward {
    p: Params,
}

impl Backward for DropoutBackward {
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let gx = Tensor::empty(g.engine(), g.shape())?;
        launch_1d(
            g.engine(),
            &Kernel::new(&shaders::DROPOUT, "dropout_backward"),
            &self.p,
            &[Binding::read(g.storage(), g.nbytes()), Binding::write(gx.storage(), gx.nbytes())],
            g.numel(),
        )?;
        Ok(vec![Some(gx)])
    }
    fn saved_bytes(&self) -> u64 {
        0
    }
}

/// Zero each element with probability `p` and scale the rest by `1/(1-p)`. The same `seed`
/// gives the same mask; callers advance the seed every step.
pub fn dropout(x: &Tensor, p: f32, seed: u64) -> Result<Tensor> {
    x.expect_f32("dropout")?;
    if !(0.0..=1.0).contains(&p) {
        return Err(Error::arg("dropout", format!("probability {p} is not in [0, 1]")));
    }
    if p == 0.0 {
        return Ok(x.clone());
    }
    let y = Tensor::empty(x.engine(), x.shape())?;
    let prm = params(x.numel(), p, seed);
    launch_1d(
        x.engine(),
        &Kernel::new(&shaders::DROPOUT, "dropout_forward"),
        &prm,
        &[Binding::read(x.storage(), x.nbytes()), Binding::write(y.storage(), y.nbytes())],
        x.numel(),
    )?;
    record("dropout", y, &[x], |_| Ok(Box::new(DropoutBackward { p: prm })))
}

impl Tensor {
    pub fn dropout(&self, p: f32, seed: u64) -> Result<Tensor> {
        dropout(self, p, seed)
    }
}
