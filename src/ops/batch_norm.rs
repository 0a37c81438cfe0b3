//! BatchNorm over `[N, C, H, W]` or `[N, C]` (`shaders/norm/batch_norm.wgsl`), torch semantics.
//!
//! Training normalises with the batch statistics (biased variance) and updates the running
//! statistics in place on the device: `running = (1 - m)·running + m·stat` with the unbiased
//! variance. Eval normalises with the running statistics, so its backward is an affine map.
//! Running statistics are plain tensors without gradient.

use crate::engine::{shaders, Binding, Kernel};
use crate::error::{Error, Result};
use crate::graph::{bytes_of, record, Backward, Needs};
use crate::ops::{launch_1d, launch_groups, same_engine};
use crate::tensor::Tensor;

/// BatchNorm mode and constants (torch defaults: momentum 0.1, eps 1e-5).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchNorm {
    pub training: bool,
    pub momentum: f32,
    pub eps: f32,
}

impl Default for BatchNorm {
    fn default() -> Self {
        BatchNorm { training: true, momentum: 0.1, eps: 1e-5 }
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    c: u32,
    hw: u32,
    flag: u32,
    momentum: f32,
    eps: f32,
    _pad0: u32,
    _pad1: u32,
}

fn kern(entry: &'static str) -> Kernel {
    Kernel::new(&shaders::BATCH_NORM, entry)
}
fn rd(t: &Tensor) -> Binding<'_> {
    Binding::read(t.storage(), t.nbytes())
}
fn wr(t: &Tensor) -> Binding<'_> {
    Binding::write(t.storage(), t.nbytes())
}

struct BatchNormBackward {
    x: Tensor,
    w: Tensor,
    mean: Tensor,
    rstd: Tensor,
    needs: Needs,
    p: Params,
}

impl Backward for BatchNormBackward {
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let e = g.engine();
        let c = self.p.c as usize;
        let gw = Tensor::empty(e, &[c])?;
        let gb = Tensor::empty(e, &[c])?;
        launch_groups(
            e,
            &kern("bn_backward_reduce"),
            &self.p,
            &[rd(g), rd(&self.x), rd(&self.mean), rd(&self.rstd), wr(&gw), wr(&gb)],
            c,
        )?;
        let gx = if self.needs[0] {
            let gx = Tensor::empty(e, self.x.shape())?;
            launch_1d(
                e,
                &kern("bn_backward_input"),
                &self.p,
                &[rd(g), rd(&self.x), rd(&self.mean), rd(&self.rstd), rd(&self.w), rd(&gw), rd(&gb), wr(&gx)],
                gx.numel(),
            )?;
            Some(gx)
        } else {
            None
        };
        Ok(vec![gx, self.needs[1].then_some(gw), self.needs[2].then_some(gb)])
    }
    fn saved_bytes(&self) -> u64 {
        bytes_of(&[Some(&self.x), Some(&self.mean), Some(&self.rstd)])
    }
}

/// BatchNorm of `x [N, C, H, W]` or `[N, C]` with per-channel `weight`, `bias`, `running_mean`
/// and `running_var` (all `[C]`). In training mode the running statistics are updated in place.
pub fn batch_norm(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    running_mean: &Tensor,
    running_var: &Tensor,
    cfg: &BatchNorm,
) -> Result<Tensor> {
    const OP: &str = "batch_norm";
    let e = same_engine(OP, &[x, weight, bias, running_mean, running_var])?;
    x.expect_f32(OP)?;
    let s = x.shape();
    if s.len() != 2 && s.len() != 4 {
        return Err(Error::shape(OP, s, &[], "input must be [N, C, H, W] or [N, C]"));
    }
    let (n, c) = (s[0], s[1]);
    let hw = if s.len() == 4 { s[2] * s[3] } else { 1 };
    for t in [weight, bias, running_mean, running_var] {
        t.expect_f32(OP)?;
        if t.shape() != [c] {
            return Err(Error::shape(
                OP,
                s,
                t.shape(),
                format!("weight, bias and running stats must be [{c}]"),
            ));
        }
    }
    if x.numel() == 0 {
        return Err(Error::shape(OP, s, &[], "every dim must be non-zero"));
    }
    if cfg.training && n * hw < 2 {
        return Err(Error::arg(OP, format!("training needs more than 1 value per channel, got input {s:?}")));
    }
    if running_mean.requires_grad() || running_var.requires_grad() {
        return Err(Error::arg(OP, "running statistics must not require grad"));
    }
    let mut p = Params {
        n: n as u32,
        c: c as u32,
        hw: hw as u32,
        flag: 1,
        momentum: cfg.momentum,
        eps: cfg.eps,
        _pad0: 0,
        _pad1: 0,
    };
    let mean = Tensor::empty(e, &[c])?;
    let rstd = Tensor::empty(e, &[c])?;
    if cfg.training {
        launch_groups(
            e,
            &kern("bn_stats"),
            &p,
            &[rd(x), wr(&mean), wr(&rstd), wr(running_mean), wr(running_var)],
            c,
        )?;
    } else {
        launch_1d(
            e,
            &kern("bn_eval_stats"),
            &p,
            &[rd(running_mean), rd(running_var), wr(&mean), wr(&rstd)],
            c,
        )?;
    }
    p.flag = cfg.training as u32;
    let y = Tensor::empty(e, s)?;
    launch_1d(
        e,
        &kern("bn_apply"),
        &p,
        &[rd(x), rd(&mean), rd(&rstd), rd(weight), rd(bias), wr(&y)],
        y.numel(),
    )?;
    record(OP, y, &[x, weight, bias], |needs| {
        Ok(Box::new(BatchNormBackward {
            x: x.clone(),
            w: weight.clone(),
            mean,
            rstd,
            needs: needs.clone(),
            p,
        }))
    })
}
