//! Inverted dropout with a counter-based RNG (`shaders/dropout/dropout.wgsl`): the mask is a
//! pure function of (seed, sample, element within the sample), so backward recomputes it
//! instead of storing it. Keyed by the sample's index in the global batch
//! ([`dropout_keyed`]), a sample draws the same mask whichever rank or micro-batch runs it:
//! data-parallel and split-batch runs equal one process's.

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
    pub per_sample: u32,
    pub first_item: u32,
    pub _pad: u32,
}

/// Threshold on the 32-bit hash below which an element is dropped.
pub fn threshold(p: f32) -> u32 {
    ((p as f64) * 4_294_967_296.0).min(u32::MAX as f64) as u32
}

/// Where a tensor's samples sit in the global batch: `items` samples (batch-major, so each
/// holds `numel / items` elements), the first being global sample `first_item`. `items == 0`
/// (the default) treats the tensor as one sample.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SampleKeys {
    pub first_item: u64,
    pub items: u64,
}

fn params(n: usize, p: f32, seed: u64, keys: SampleKeys) -> Params {
    // A tensor that is not batch-major over `items` (numel not a multiple) is one unkeyed sample.
    let (per_sample, first_item) = match keys.items as usize {
        k if k > 0 && n.is_multiple_of(k) => (n / k, keys.first_item),
        _ => (n, 0),
    };
    Params {
        n: n as u32,
        threshold: threshold(p),
        seed_lo: seed as u32,
        seed_hi: (seed >> 32) as u32,
        scale: if p >= 1.0 { 0.0 } else { 1.0 / (1.0 - p) },
        per_sample: per_sample.max(1) as u32,
        first_item: first_item as u32,
        _pad: 0,
    }
}

struct DropoutBackward {
    p: Params,
}

impl Backward for DropoutBackward {
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let gx = Tensor::empty_typed(g.engine(), g.shape(), g.dtype())?;
        launch_1d(
            g.engine(),
            &Kernel::new(&shaders::DROPOUT, "dropout_backward").half(g.is_half()),
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
    dropout_keyed(x, p, seed, SampleKeys::default())
}

/// [`dropout`] of a batch-major tensor whose samples are `keys` of the global batch: each
/// sample's mask depends on its global index, not on its place in this tensor.
pub fn dropout_keyed(x: &Tensor, p: f32, seed: u64, keys: SampleKeys) -> Result<Tensor> {
    x.expect_float("dropout")?;
    if !(0.0..=1.0).contains(&p) {
        return Err(Error::arg("dropout", format!("probability {p} is not in [0, 1]")));
    }
    if p == 0.0 {
        return Ok(x.clone());
    }
    let y = Tensor::empty_typed(x.engine(), x.shape(), x.dtype())?;
    let prm = params(x.numel(), p, seed, keys);
    launch_1d(
        x.engine(),
        &Kernel::new(&shaders::DROPOUT, "dropout_forward").half(x.is_half()),
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
