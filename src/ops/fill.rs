//! Fill and copy kernels (`shaders/elementwise/fill.wgsl`).

use crate::engine::{shaders, Binding, Kernel};
use crate::error::Result;
use crate::ops::launch_1d;
use crate::tensor::{DType, Tensor};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    value: f32,
    value_u32: u32,
    _pad: u32,
}

/// Overwrite every element of `t` with `value` (in place, no autodiff).
pub(crate) fn fill(t: &Tensor, value: f32) -> Result<()> {
    let n = t.numel();
    // Zeros (the bit pattern 0 in either dtype) are a transfer command, not a shader.
    if value.to_bits() == 0 && t.nbytes().is_multiple_of(4) {
        return t.engine().clear(t.storage(), t.nbytes());
    }
    let p = Params { n: n as u32, value, value_u32: value as u32, _pad: 0 };
    let entry = if t.dtype() == DType::U32 { "fill_u32" } else { "fill" };
    launch_1d(
        t.engine(),
        &Kernel::new(&shaders::FILL, entry).half(t.is_half()),
        &p,
        &[Binding::write(t.storage(), t.nbytes())],
        n,
    )
}

/// A fresh contiguous copy of `t`'s data (no autodiff).
pub(crate) fn copy(t: &Tensor) -> Result<Tensor> {
    let out = Tensor::empty_typed(t.engine(), t.shape(), t.dtype())?;
    let n = t.numel();
    let p = Params { n: n as u32, value: 0.0, value_u32: 0, _pad: 0 };
    launch_1d(
        t.engine(),
        &Kernel::new(&shaders::FILL, "copy").half(t.is_half()),
        &p,
        &[Binding::read(t.storage(), t.nbytes()), Binding::write(out.storage(), out.nbytes())],
        n,
    )?;
    Ok(out)
}
