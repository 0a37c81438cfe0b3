//! BatchNorm over `[N, C, H, W]` or `[N, C]` (`shaders/norm/batch_norm.wgsl`), torch semantics.
//!
//! Training normalises with the batch statistics (biased variance) and updates the running
//! statistics in place on the device: `running = (1 - m)·running + m·stat` with the unbiased
//! variance. Eval normalises with the running statistics, so its backward is an affine map.
//! Running statistics are plain tensors without gradient.
//!
//! Synchronised (the engine's [`StatSync`], set by a data-parallel driver with
//! `train.sync_batch_norm`): the per-channel sums behind the batch statistics, and in backward
//! the sums of `g` and `g·x̂`, are added up over the ranks on the host, so every rank normalises
//! with the global batch's statistics, as one process would. Each rank's weight and bias
//! gradients stay its own share (the optimizer's all-reduce sums them).

use crate::engine::{shaders, Binding, Kernel, StatSync};
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
    count: u32,
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
    sync: Option<StatSync>,
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
            // The input gradient needs the global batch's sums; the parameters keep their own.
            let (sw, sb) = match &self.sync {
                Some(sync) => synced_pair(sync, &gw, &gb)?,
                None => (gw.clone(), gb.clone()),
            };
            launch_1d(
                e,
                &kern("bn_backward_input"),
                &self.p,
                &[rd(g), rd(&self.x), rd(&self.mean), rd(&self.rstd), rd(&self.w), rd(&sw), rd(&sb), wr(&gx)],
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
        count: 0,
        _pad1: 0,
    };
    let mut mean = Tensor::empty(e, &[c])?;
    let mut rstd = Tensor::empty(e, &[c])?;
    let sync = if cfg.training { e.stat_sync() } else { None };
    if let Some(sync) = &sync {
        // Local statistics without touching the running ones, then the global batch's.
        p.flag = 0;
        launch_groups(
            e,
            &kern("bn_stats"),
            &p,
            &[rd(x), wr(&mean), wr(&rstd), wr(running_mean), wr(running_var)],
            c,
        )?;
        let count;
        (mean, rstd, count) =
            global_stats(sync, &mean, &rstd, (n * hw) as f64, running_mean, running_var, cfg)?;
        p.count = count;
    } else if cfg.training {
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
            sync,
        }))
    })
}

/// `(mean, rstd, values per channel)` of the global batch from this rank's `mean` and `rstd`
/// over `count` values per channel, in two exchanges: the counts and per-channel sums give the
/// global mean, then each rank's squared deviations from it (its biased variance, recovered
/// from `rstd`, plus its mean's offset) give the global variance without the cancellation of
/// E[x²] − μ². The running statistics are updated with the global mean and unbiased variance,
/// as one process would.
fn global_stats(
    sync: &StatSync,
    mean: &Tensor,
    rstd: &Tensor,
    count: f64,
    running_mean: &Tensor,
    running_var: &Tensor,
    cfg: &BatchNorm,
) -> Result<(Tensor, Tensor, u32)> {
    let e = mean.engine();
    let (m, r) = (mean.to_vec()?, rstd.to_vec()?);
    let c = m.len();
    let mut sums: Vec<f32> = m.iter().map(|&mu| (count * mu as f64) as f32).collect();
    sums.push(count as f32);
    sync(&mut sums)?;
    let total = sums[c] as f64;
    let gm: Vec<f64> = sums[..c].iter().map(|&s| s as f64 / total).collect();
    let mut dev: Vec<f32> = (0..c)
        .map(|ch| {
            let var = (1.0 / (r[ch] as f64 * r[ch] as f64) - cfg.eps as f64).max(0.0);
            let off = m[ch] as f64 - gm[ch];
            (count * (var + off * off)) as f32
        })
        .collect();
    sync(&mut dev)?;
    let (mut rm, mut rv) = (running_mean.to_vec()?, running_var.to_vec()?);
    let k = cfg.momentum;
    let mut gr = Vec::with_capacity(c);
    for ch in 0..c {
        let var_b = (dev[ch] as f64 / total).max(0.0);
        let var_u = var_b * total / (total - 1.0).max(1.0);
        gr.push((1.0 / (var_b + cfg.eps as f64).sqrt()) as f32);
        rm[ch] = (1.0 - k) * rm[ch] + k * gm[ch] as f32;
        rv[ch] = (1.0 - k) * rv[ch] + k * var_u as f32;
    }
    e.write_into(running_mean.storage(), bytemuck::cast_slice(&rm))?;
    e.write_into(running_var.storage(), bytemuck::cast_slice(&rv))?;
    let gm: Vec<f32> = gm.iter().map(|&v| v as f32).collect();
    Ok((Tensor::from_slice(e, &gm, &[c])?, Tensor::from_slice(e, &gr, &[c])?, total as u32))
}

/// `(gw, gb)` summed over the ranks, as new tensors (the originals stay this rank's).
fn synced_pair(sync: &StatSync, gw: &Tensor, gb: &Tensor) -> Result<(Tensor, Tensor)> {
    let c = gw.numel();
    let mut buf = gw.to_vec()?;
    buf.extend(gb.to_vec()?);
    sync(&mut buf)?;
    let e = gw.engine();
    Ok((Tensor::from_slice(e, &buf[..c], &[c])?, Tensor::from_slice(e, &buf[c..], &[c])?))
}
