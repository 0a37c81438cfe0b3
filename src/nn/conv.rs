//! Convolution and BatchNorm layers over named parameters (torchvision / timm key names:
//! `{path}.weight`, `{path}.bias`, `{path}.running_mean`, `{path}.running_var`).

use crate::error::Result;
use crate::nn::{Binder, Init, Mode, Params, Pid};
use crate::ops::batch_norm::{batch_norm, BatchNorm};
use crate::ops::conv::{conv2d, Conv2d};
use crate::tensor::Tensor;

/// A 2-D convolution, weight `[O, C/groups, kh, kw]`.
#[derive(Debug, Clone, Copy)]
pub struct ConvLayer {
    pub weight: Pid,
    pub bias: Option<Pid>,
    pub cfg: Conv2d,
}

impl ConvLayer {
    /// Load from the checkpoint, or initialise (torchvision: kaiming normal, fan-out) when
    /// `fresh`.
    pub fn new(
        b: &mut Binder,
        path: &str,
        shape: [usize; 4],
        bias: bool,
        cfg: Conv2d,
        fresh: bool,
    ) -> Result<Self> {
        let fan_out = shape[0] * shape[2] * shape[3];
        let fan_in = shape[1] * shape[2] * shape[3];
        let weight = if fresh {
            b.fresh(&format!("{path}.weight"), &shape, Init::KaimingNormalFanOut { fan_out })?
        } else {
            b.param(&format!("{path}.weight"), &shape)?
        };
        let bias = match (bias, fresh) {
            (false, _) => None,
            (true, true) => {
                Some(b.fresh(&format!("{path}.bias"), &[shape[0]], Init::TorchDefault { fan_in })?)
            }
            (true, false) => Some(b.param(&format!("{path}.bias"), &[shape[0]])?),
        };
        Ok(ConvLayer { weight, bias, cfg })
    }

    pub fn forward(&self, p: &Params, x: &Tensor) -> Result<Tensor> {
        conv2d(x, p.get(self.weight), self.bias.map(|b| p.get(b)), &self.cfg)
    }
}

/// BatchNorm over channels with running statistics.
#[derive(Debug, Clone, Copy)]
pub struct BatchNorm2d {
    pub weight: Pid,
    pub bias: Pid,
    pub running_mean: Pid,
    pub running_var: Pid,
    pub eps: f32,
    pub momentum: f32,
}

impl BatchNorm2d {
    /// Load (or initialise to weight 1, bias 0, mean 0, var 1) a BatchNorm of `c` channels.
    pub fn new(b: &mut Binder, path: &str, c: usize, eps: f32, momentum: f32, fresh: bool) -> Result<Self> {
        let mut get = |name: &str, init: Init, buffer: bool| -> Result<Pid> {
            let full = format!("{path}.{name}");
            match (fresh, buffer) {
                (true, false) => b.fresh(&full, &[c], init),
                (true, true) => b.fresh_buffer(&full, &[c], init),
                (false, false) => b.param(&full, &[c]),
                (false, true) => b.buffer(&full, &[c]),
            }
        };
        Ok(BatchNorm2d {
            weight: get("weight", Init::Ones, false)?,
            bias: get("bias", Init::Zeros, false)?,
            running_mean: get("running_mean", Init::Zeros, true)?,
            running_var: get("running_var", Init::Ones, true)?,
            eps,
            momentum,
        })
    }

    /// Batch statistics (and a running-stat update) only when training AND this layer's
    /// affine parameters train: a frozen BatchNorm behaves as in evaluation, so freezing a
    /// block really freezes it (its statistics do not drift either).
    pub fn forward(&self, p: &Params, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let training = mode.train && p.get(self.weight).requires_grad();
        batch_norm(
            x,
            p.get(self.weight),
            p.get(self.bias),
            p.get(self.running_mean),
            p.get(self.running_var),
            &BatchNorm { training, momentum: self.momentum, eps: self.eps },
        )
    }
}
