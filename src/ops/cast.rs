//! Conversions between f32 and f16 tensors (`shaders/elementwise/cast.wgsl`), recorded for
//! autodiff: the gradient goes back in the input's dtype. Mixed precision uses them where an
//! f32 tensor (a trainable weight, the residual stream) meets f16 activations.

use crate::engine::{shaders, Binding, Kernel};
use crate::error::{Error, Result};
use crate::graph::{record, Backward};
use crate::ops::launch_1d;
use crate::tensor::{DType, Tensor};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    _pad: [u32; 3],
}

fn is_float(d: DType) -> bool {
    matches!(d, DType::F32 | DType::F16)
}

/// `x` converted to `to` without autodiff (the same tensor when it already is `to`).
pub(crate) fn cast_raw(x: &Tensor, to: DType) -> Result<Tensor> {
    let from = x.dtype();
    if from == to {
        return Ok(x.clone());
    }
    if !is_float(from) || !is_float(to) {
        return Err(Error::DType {
            op: "cast",
            expected: "f32 or f16",
            got: if is_float(from) { to.name() } else { from.name() },
        });
    }
    let e = x.engine();
    let out = Tensor::empty_typed(e, x.shape(), to)?;
    if x.numel() == 0 {
        return Ok(out);
    }
    let entry = if to == DType::F16 { "cast_to_act" } else { "cast_from_act" };
    let p = Params { n: x.numel() as u32, _pad: [0; 3] };
    launch_1d(
        e,
        &Kernel::new(&shaders::CAST, entry).half(true),
        &p,
        &[Binding::read(x.storage(), x.nbytes()), Binding::write(out.storage(), out.nbytes())],
        x.numel(),
    )?;
    Ok(out)
}

struct CastBackward {
    from: DType,
}

impl Backward for CastBackward {
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(cast_raw(g, self.from)?)])
    }
    fn saved_bytes(&self) -> u64 {
        0
    }
}

/// `x` as `to` (f32 or f16), differentiable.
pub fn cast(x: &Tensor, to: DType) -> Result<Tensor> {
    let from = x.dtype();
    if from == to {
        return Ok(x.clone());
    }
    let out = cast_raw(x, to)?;
    record("cast", out, &[x], |_| Ok(Box::new(CastBackward { from })))
}

impl Tensor {
    /// This tensor in `dtype` (f32 or f16), differentiable; itself when it already is.
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        cast(self, dtype)
    }
}
