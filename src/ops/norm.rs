//! LayerNorm and RMSNorm over the last axis (`shaders/norm/`).

use crate::engine::{shaders, Binding, Kernel};
use crate::error::{Error, Result};
use crate::graph::{bytes_of, record, Backward, Needs};
use crate::ops::{launch_1d, same_engine};
use crate::tensor::Tensor;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    eps: f32,
    _pad: u32,
}

/// Rows and columns of `x` with per-column f32 `ps`; `x` may be f16 where the kernel has a
/// half variant (`half_ok`).
fn check_affine(op: &'static str, x: &Tensor, ps: &[&Tensor], half_ok: bool) -> Result<(usize, usize)> {
    if half_ok {
        x.expect_float(op)?;
    } else {
        x.expect_f32(op)?;
    }
    let c = *x.shape().last().ok_or_else(|| Error::arg(op, "input needs at least one dim"))?;
    for p in ps {
        p.expect_f32(op)?;
        if p.shape() != [c] {
            return Err(Error::shape(op, x.shape(), p.shape(), format!("weight/bias must be [{c}]")));
        }
    }
    Ok((x.numel().checked_div(c).unwrap_or(0), c))
}

struct LayerNormBackward {
    x: Tensor,
    w: Tensor,
    mean: Tensor,
    rstd: Tensor,
    needs: Needs,
    p: Params,
}

impl Backward for LayerNormBackward {
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let e = g.engine();
        let (rows, cols) = (self.p.rows as usize, self.p.cols as usize);
        if g.dtype() != self.x.dtype() {
            return Err(Error::DType {
                op: "layer_norm",
                expected: self.x.dtype().name(),
                got: g.dtype().name(),
            });
        }
        let gx = if self.needs[0] {
            let gx = Tensor::empty_typed(e, g.shape(), g.dtype())?;
            launch_1d(
                e,
                &Kernel::new(&shaders::LAYER_NORM, "layer_norm_backward_input").half(g.is_half()),
                &self.p,
                &[
                    Binding::read(g.storage(), g.nbytes()),
                    Binding::read(self.x.storage(), self.x.nbytes()),
                    Binding::read(self.w.storage(), self.w.nbytes()),
                    Binding::read(self.mean.storage(), self.mean.nbytes()),
                    Binding::read(self.rstd.storage(), self.rstd.nbytes()),
                    Binding::write(gx.storage(), gx.nbytes()),
                ],
                rows,
            )?;
            Some(gx)
        } else {
            None
        };
        let (gw, gb) = if self.needs[1] || self.needs[2] {
            let gw = Tensor::empty(e, &[cols])?;
            let gb = Tensor::empty(e, &[cols])?;
            launch_1d(
                e,
                &Kernel::new(&shaders::LAYER_NORM, "layer_norm_backward_params").half(g.is_half()),
                &self.p,
                &[
                    Binding::read(g.storage(), g.nbytes()),
                    Binding::read(self.x.storage(), self.x.nbytes()),
                    Binding::read(self.mean.storage(), self.mean.nbytes()),
                    Binding::read(self.rstd.storage(), self.rstd.nbytes()),
                    Binding::write(gw.storage(), gw.nbytes()),
                    Binding::write(gb.storage(), gb.nbytes()),
                ],
                cols,
            )?;
            (self.needs[1].then_some(gw), self.needs[2].then_some(gb))
        } else {
            (None, None)
        };
        Ok(vec![gx, gw, gb])
    }
    fn saved_bytes(&self) -> u64 {
        bytes_of(&[Some(&self.x), Some(&self.mean), Some(&self.rstd)])
    }
}

/// LayerNorm over the last axis with weight and bias of shape `[C]` (biased variance, as torch).
pub fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f32) -> Result<Tensor> {
    let e = same_engine("layer_norm", &[x, w, b])?;
    let (rows, cols) = check_affine("layer_norm", x, &[w, b], true)?;
    let y = Tensor::empty_typed(e, x.shape(), x.dtype())?;
    let mean = Tensor::empty(e, &[rows])?;
    let rstd = Tensor::empty(e, &[rows])?;
    let p = Params { rows: rows as u32, cols: cols as u32, eps, _pad: 0 };
    launch_1d(
        e,
        &Kernel::new(&shaders::LAYER_NORM, "layer_norm_forward").half(x.is_half()),
        &p,
        &[
            Binding::read(x.storage(), x.nbytes()),
            Binding::read(w.storage(), w.nbytes()),
            Binding::read(b.storage(), b.nbytes()),
            Binding::write(y.storage(), y.nbytes()),
            Binding::write(mean.storage(), mean.nbytes()),
            Binding::write(rstd.storage(), rstd.nbytes()),
        ],
        rows,
    )?;
    record("layer_norm", y, &[x, w, b], |needs| {
        Ok(Box::new(LayerNormBackward { x: x.clone(), w: w.clone(), mean, rstd, needs: needs.clone(), p }))
    })
}

struct RmsNormBackward {
    x: Tensor,
    w: Tensor,
    rstd: Tensor,
    needs: Needs,
    p: Params,
}

impl Backward for RmsNormBackward {
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let e = g.engine();
        if g.dtype() != self.x.dtype() {
            return Err(Error::DType {
                op: "rms_norm",
                expected: self.x.dtype().name(),
                got: g.dtype().name(),
            });
        }
        let gx = if self.needs[0] {
            let gx = Tensor::empty_typed(e, g.shape(), g.dtype())?;
            launch_1d(
                e,
                &Kernel::new(&shaders::RMS_NORM, "rms_norm_backward_input").half(g.is_half()),
                &self.p,
                &[
                    Binding::read(g.storage(), g.nbytes()),
                    Binding::read(self.x.storage(), self.x.nbytes()),
                    Binding::read(self.w.storage(), self.w.nbytes()),
                    Binding::read(self.rstd.storage(), self.rstd.nbytes()),
                    Binding::write(gx.storage(), gx.nbytes()),
                ],
                self.p.rows as usize,
            )?;
            Some(gx)
        } else {
            None
        };
        let gw = if self.needs[1] {
            let gw = Tensor::empty(e, &[self.p.cols as usize])?;
            launch_1d(
                e,
                &Kernel::new(&shaders::RMS_NORM, "rms_norm_backward_weight").half(g.is_half()),
                &self.p,
                &[
                    Binding::read(g.storage(), g.nbytes()),
                    Binding::read(self.x.storage(), self.x.nbytes()),
                    Binding::read(self.rstd.storage(), self.rstd.nbytes()),
                    Binding::write(gw.storage(), gw.nbytes()),
                ],
                self.p.cols as usize,
            )?;
            Some(gw)
        } else {
            None
        };
        Ok(vec![gx, gw])
    }
    fn saved_bytes(&self) -> u64 {
        bytes_of(&[Some(&self.x), Some(&self.rstd)])
    }
}

/// RMSNorm over the last axis with weight `[C]` (Llama: `x * rsqrt(mean(x²) + eps) * w`).
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f32) -> Result<Tensor> {
    let e = same_engine("rms_norm", &[x, w])?;
    let (rows, cols) = check_affine("rms_norm", x, &[w], true)?;
    let y = Tensor::empty_typed(e, x.shape(), x.dtype())?;
    let rstd = Tensor::empty(e, &[rows])?;
    let p = Params { rows: rows as u32, cols: cols as u32, eps, _pad: 0 };
    launch_1d(
        e,
        &Kernel::new(&shaders::RMS_NORM, "rms_norm_forward").half(x.is_half()),
        &p,
        &[
            Binding::read(x.storage(), x.nbytes()),
            Binding::read(w.storage(), w.nbytes()),
            Binding::write(y.storage(), y.nbytes()),
            Binding::write(rstd.storage(), rstd.nbytes()),
        ],
        rows,
    )?;
    record("rms_norm", y, &[x, w], |needs| {
        Ok(Box::new(RmsNormBackward { x: x.clone(), w: w.clone(), rstd, needs: needs.clone(), p }))
    })
}
