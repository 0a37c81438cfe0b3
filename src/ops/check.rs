//! NaN/Inf detection on the device by bit pattern (`shaders/check/nonfinite.wgsl`).

use crate::engine::{shaders, Binding, Kernel};
use crate::error::Result;
use crate::ops::launch_1d;
use crate::tensor::{DType, Tensor};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    _pad: [u32; 3],
}

/// Counts of non-finite values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NonFinite {
    pub nan: u32,
    pub inf: u32,
}

impl NonFinite {
    pub fn any(&self) -> bool {
        self.nan + self.inf > 0
    }
}

/// Record a count of NaN and ±Inf in `t` into a 2-element u32 tensor (no readback).
pub fn count_nonfinite_async(t: &Tensor) -> Result<Tensor> {
    t.expect_f32("count_nonfinite")?;
    let counts = Tensor::empty_typed(t.engine(), &[2], DType::U32)?;
    crate::ops::fill::fill(&counts, 0.0)?;
    launch_1d(
        t.engine(),
        &Kernel::new(&shaders::NONFINITE, "count_nonfinite"),
        &Params { n: t.numel() as u32, _pad: [0; 3] },
        &[Binding::read(t.storage(), t.nbytes()), Binding::write(counts.storage(), 8)],
        t.numel(),
    )?;
    Ok(counts)
}

/// Count NaN and ±Inf in `t` (reads two integers back).
pub fn count_nonfinite(t: &Tensor) -> Result<NonFinite> {
    let c = count_nonfinite_async(t)?.to_vec_u32()?;
    Ok(NonFinite { nan: c[0], inf: c[1] })
}
