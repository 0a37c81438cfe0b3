//! AdamW (`shaders/optim/adamw.wgsl`), torch semantics: decoupled weight decay, bias-corrected
//! moments, eps outside the square root.

use std::collections::HashMap;

use crate::engine::{shaders, Binding, Kernel};
use crate::error::Result;
use crate::graph::GradStore;
use crate::ops::launch_1d;
use crate::tensor::{Tensor, TensorId};

/// Hyperparameters (torch defaults except `weight_decay`, which torch sets to 0.01).
#[derive(Debug, Clone, Copy)]
pub struct AdamWConfig {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 }
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    bc1: f32,
    bc2: f32,
}

/// AdamW over a set of parameter tensors.
pub struct AdamW {
    pub config: AdamWConfig,
    step: u64,
    state: HashMap<TensorId, (Tensor, Tensor)>,
}

impl AdamW {
    pub fn new(config: AdamWConfig) -> Self {
        AdamW { config, step: 0, state: HashMap::new() }
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Bytes of moment buffers held (two per trained element).
    pub fn state_bytes(&self) -> u64 {
        self.state.values().map(|(m, v)| m.nbytes() + v.nbytes()).sum()
    }

    /// Update every parameter that has a gradient in `grads`; others are left untouched and
    /// get no state.
    pub fn step(&mut self, params: &[&Tensor], grads: &GradStore) -> Result<()> {
        self.step += 1;
        let c = self.config;
        let t = self.step as i32;
        let bc1 = 1.0 - (c.beta1 as f64).powi(t);
        let bc2 = 1.0 - (c.beta2 as f64).powi(t);
        for p in params {
            let Some(g) = grads.get(p) else { continue };
            super::check_same("adamw", p, g)?;
            let e = p.engine();
            let (m, v) = match self.state.get(&p.id()) {
                Some(s) => s.clone(),
                None => {
                    let s = (Tensor::zeros(e, p.shape())?, Tensor::zeros(e, p.shape())?);
                    self.state.insert(p.id(), s.clone());
                    s
                }
            };
            let prm = Params {
                n: p.numel() as u32,
                lr: c.lr,
                beta1: c.beta1,
                beta2: c.beta2,
                eps: c.eps,
                weight_decay: c.weight_decay,
                bc1: bc1 as f32,
                bc2: bc2 as f32,
            };
            launch_1d(
                e,
                &Kernel::new(&shaders::ADAMW, "adamw_step"),
                &prm,
                &[
                    Binding::write(p.storage(), p.nbytes()),
                    Binding::read(g.storage(), g.nbytes()),
                    Binding::write(m.storage(), m.nbytes()),
                    Binding::write(v.storage(), v.nbytes()),
                ],
                p.numel(),
            )?;
        }
        Ok(())
    }
}
