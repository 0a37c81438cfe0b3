//! SGD with momentum, dampening, Nesterov and L2 weight decay (`shaders/optim/sgd.wgsl`),
//! torch.optim.SGD semantics.

use std::collections::HashMap;

use crate::engine::{shaders, Binding, Kernel};
use crate::error::Result;
use crate::graph::GradStore;
use crate::ops::launch_1d;
use crate::tensor::{Tensor, TensorId};

#[derive(Debug, Clone, Copy)]
pub struct SgdConfig {
    pub lr: f32,
    pub momentum: f32,
    pub dampening: f32,
    pub weight_decay: f32,
    pub nesterov: bool,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig { lr: 1e-2, momentum: 0.0, dampening: 0.0, weight_decay: 0.0, nesterov: false }
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    lr: f32,
    momentum: f32,
    dampening: f32,
    weight_decay: f32,
    nesterov: u32,
    first: u32,
    _pad: u32,
}

pub struct Sgd {
    pub config: SgdConfig,
    buffers: HashMap<TensorId, Tensor>,
}

impl Sgd {
    pub fn new(config: SgdConfig) -> Self {
        Sgd { config, buffers: HashMap::new() }
    }

    /// Bytes of momentum buffers held.
    pub fn state_bytes(&self) -> u64 {
        self.buffers.values().map(|b| b.nbytes()).sum()
    }

    pub fn step(&mut self, params: &[&Tensor], grads: &GradStore) -> Result<()> {
        let c = self.config;
        for p in params {
            let Some(g) = grads.get(p) else { continue };
            super::check_same("sgd", p, g)?;
            let first = !self.buffers.contains_key(&p.id());
            // Without momentum the buffer is never read; the gradient stands in for the binding.
            let buf = if c.momentum == 0.0 {
                None
            } else {
                if first {
                    self.buffers.insert(p.id(), Tensor::empty(p.engine(), p.shape())?);
                }
                self.buffers.get(&p.id()).cloned()
            };
            let prm = Params {
                n: p.numel() as u32,
                lr: c.lr,
                momentum: c.momentum,
                dampening: c.dampening,
                weight_decay: c.weight_decay,
                nesterov: c.nesterov as u32,
                first: first as u32,
                _pad: 0,
            };
            let scratch;
            let b = match &buf {
                Some(b) => b,
                None => {
                    scratch = Tensor::empty(p.engine(), p.shape())?;
                    &scratch
                }
            };
            launch_1d(
                p.engine(),
                &Kernel::new(&shaders::SGD, "sgd_step"),
                &prm,
                &[
                    Binding::write(p.storage(), p.nbytes()),
                    Binding::read(g.storage(), g.nbytes()),
                    Binding::write(b.storage(), b.nbytes()),
                ],
                p.numel(),
            )?;
        }
        Ok(())
    }
}
