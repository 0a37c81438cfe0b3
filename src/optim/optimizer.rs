//! The optimizer: SGD (momentum, dampening, Nesterov, weight decay), Adam and AdamW with torch
//! semantics, over a parameter arena (see `arena.rs`), with parameter groups, schedules,
//! gradient accumulation and clipping by global norm.
//!
//! A step is: gather this step's gradients into the gradient arena (buffer copies, no
//! dispatches), optionally compute the global norm and clip factor on the device (2 + pages
//! dispatches), then one update dispatch per (group, page) range. No host round trip, no
//! allocation after the first step (or after the trainable set changes).

use crate::engine::{shaders, Binding, Engine, Kernel};
use crate::error::{Error, Result};
use crate::graph::GradStore;
use crate::nn::Params;
use crate::ops::launch_1d;
use crate::optim::arena::{view, Arena, Want, ALIGN};
use crate::optim::groups::{resolve, GroupSpec, LayerLr, Resolved};
use crate::optim::Schedule;
use crate::tensor::Tensor;

/// The update rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// torch.optim.SGD; weight decay is coupled (added to the gradient).
    Sgd { momentum: f32, dampening: f32, nesterov: bool },
    /// torch.optim.Adam; weight decay is coupled (L2 added to the gradient).
    Adam { beta1: f32, beta2: f32, eps: f32 },
    /// torch.optim.AdamW; weight decay is decoupled.
    AdamW { beta1: f32, beta2: f32, eps: f32 },
}

impl Method {
    pub const ADAMW: Method = Method::AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8 };
    pub const ADAM: Method = Method::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8 };

    pub fn sgd(momentum: f32) -> Method {
        Method::Sgd { momentum, dampening: 0.0, nesterov: false }
    }

    /// State tensors per parameter element.
    fn states(&self) -> usize {
        match self {
            Method::Sgd { momentum, .. } if *momentum == 0.0 => 0,
            Method::Sgd { .. } => 1,
            _ => 2,
        }
    }
}

/// Everything that configures an [`Optimizer`].
#[derive(Debug, Clone)]
pub struct OptimConfig {
    pub method: Method,
    /// Base learning rate of parameters no group claims.
    pub lr: f64,
    pub weight_decay: f32,
    pub schedule: Schedule,
    /// Groups, first match wins.
    pub groups: Vec<GroupSpec>,
    pub layer_lr: LayerLr,
    /// Decay rank-≤1 parameters (biases, norm weights) of unmatched parameters too; off by
    /// default (HF Trainer / timm convention), on to reproduce a plain `torch.optim` setup.
    pub decay_1d: bool,
    /// Clip the global gradient norm to this (torch `clip_grad_norm_`).
    pub max_grad_norm: Option<f32>,
    /// Linear warm-up over this many steps for parameters that join training late (gradual
    /// unfreezing), counted from the step they join.
    pub rejoin_warmup: u64,
}

impl OptimConfig {
    pub fn new(method: Method, lr: f64) -> OptimConfig {
        OptimConfig {
            method,
            lr,
            weight_decay: 0.0,
            schedule: Schedule::Constant,
            groups: Vec::new(),
            layer_lr: LayerLr::Flat,
            decay_1d: false,
            max_grad_norm: None,
            rejoin_warmup: 0,
        }
    }
    pub fn weight_decay(mut self, wd: f32) -> Self {
        self.weight_decay = wd;
        self
    }
    pub fn schedule(mut self, s: Schedule) -> Self {
        self.schedule = s;
        self
    }
    pub fn group(mut self, g: GroupSpec) -> Self {
        self.groups.push(g);
        self
    }
    pub fn layer_lr(mut self, l: LayerLr) -> Self {
        self.layer_lr = l;
        self
    }
    /// Weight-decay every parameter, biases and norms included (plain torch semantics).
    pub fn decay_all(mut self) -> Self {
        self.decay_1d = true;
        self
    }
    pub fn clip(mut self, max_norm: f32) -> Self {
        self.max_grad_norm = Some(max_norm);
        self
    }
}

/// Per-dispatch scalars of `adamw.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct AdamParams {
    n: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    bc1: f32,
    bc2: f32,
    l2: f32,
    _pad: [u32; 3],
}

/// Per-dispatch scalars of `sgd.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct SgdParams {
    n: u32,
    lr: f32,
    momentum: f32,
    dampening: f32,
    weight_decay: f32,
    nesterov: u32,
    first: u32,
    _pad: u32,
}

/// Per-dispatch scalars of `arena.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct ArenaParams {
    pub n: u32,
    pub base: u32,
    pub count: u32,
    pub max_norm: f32,
    /// sumsq_partial, clip_scale: 1 / the loss scale the gradients carry (1 without one).
    pub inv_scale: f32,
    pub _pad: [u32; 3],
}

/// Partial sums per page of the norm reduction.
const PARTIALS: usize = 1024;

/// An optimizer over a model's [`Params`].
pub struct Optimizer {
    pub config: OptimConfig,
    pub(super) engine: Engine,
    pub(super) step: u64,
    pub(super) arena: Option<Arena>,
    /// Resolved settings of each arena group.
    groups: Vec<Resolved>,
    /// Step at which each parameter (by path) joined training.
    pub(super) born: std::collections::HashMap<String, u64>,
    /// Micro-batches gathered since the last update.
    pub(super) gathered: usize,
    /// `clip` already holds the norm of the gathered gradients (computed ahead of the update
    /// by [`Optimizer::gathered_grad_norm`]).
    pub(super) norm_ready: bool,
    partials: Tensor,
    /// [clip factor, global norm].
    clip: Tensor,
    one: Tensor,
    /// Bound in place of the momentum buffer by plain SGD, which never reads it.
    dummy: Tensor,
    /// Largest arena page in floats (data-parallel: a page is the unit of the all-reduce that
    /// overlaps the backward); `None`: one storage binding.
    pub(super) bucket: Option<usize>,
    /// Host seconds in the all-reduce and its write-back ([`Optimizer::reduce_secs`]).
    pub(super) reduce_secs: f64,
    /// 1 / the loss scale of the gathered gradients ([`Optimizer::set_grad_unscale`]).
    unscale: f32,
}

impl Optimizer {
    pub fn new(engine: &Engine, config: OptimConfig) -> Result<Optimizer> {
        config.schedule.validate()?;
        for g in &config.groups {
            if let Some(s) = &g.schedule {
                s.validate()?;
            }
        }
        config.layer_lr.validate()?;
        if !(config.lr >= 0.0) || !(config.weight_decay >= 0.0) {
            return Err(Error::arg(
                "optimizer",
                format!("lr {} and weight decay {} must be >= 0", config.lr, config.weight_decay),
            ));
        }
        if let Some(m) = config.max_grad_norm {
            if !(m > 0.0) {
                return Err(Error::arg("optimizer", format!("max_grad_norm {m} must be > 0")));
            }
        }
        Ok(Optimizer {
            config,
            engine: engine.clone(),
            step: 0,
            arena: None,
            groups: Vec::new(),
            born: Default::default(),
            gathered: 0,
            bucket: None,
            reduce_secs: 0.0,
            unscale: 1.0,
            norm_ready: false,
            partials: Tensor::zeros(engine, &[PARTIALS])?,
            clip: Tensor::from_slice(engine, &[1.0, 0.0], &[2])?,
            one: Tensor::from_slice(engine, &[1.0], &[1])?,
            dummy: Tensor::zeros(engine, &[4])?,
        })
    }

    /// Optimizer steps taken.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Bytes of optimizer state (moments, momentum) held: proportional to the trainable
    /// parameters only.
    pub fn state_bytes(&self) -> u64 {
        self.arena.as_ref().map_or(0, |a| a.state_bytes())
    }

    /// Device bytes the optimizer holds for the trainable parameters: (the parameters, their
    /// gradients with any accumulation scratch, the optimizer state), by arena page capacity.
    pub fn arena_bytes(&self) -> (u64, u64, u64) {
        let Some(a) = &self.arena else { return (0, 0, 0) };
        let cap = |s: &std::sync::Arc<crate::engine::Storage>| s.capacity();
        a.pages.iter().fold((0, 0, 0), |(p, g, s), page| {
            (
                p + cap(&page.params),
                g + cap(&page.grads) + page.scratch.as_ref().map_or(0, cap),
                s + page.states.iter().map(cap).sum::<u64>(),
            )
        })
    }

    /// Update dispatches per step (one per group × page × join step).
    pub fn update_dispatches(&self) -> usize {
        self.arena.as_ref().map_or(0, |a| a.ranges.len())
    }

    /// The learning rate each trainable parameter gets at the next step, by path.
    pub fn current_lrs(&self, params: &Params) -> Vec<(String, f64)> {
        let Some(a) = &self.arena else { return Vec::new() };
        a.slots
            .iter()
            .map(|s| {
                let r = &a.ranges[s.range];
                (params.entry(s.pid).path.clone(), self.range_lr(r))
            })
            .collect()
    }

    fn range_lr(&self, r: &crate::optim::arena::Range) -> f64 {
        let g = &self.groups[r.group];
        let mut lr = g.schedule.lr(g.lr, self.step);
        if r.born > 0 && self.config.rejoin_warmup > 0 {
            let t = (self.step - r.born + 1) as f64;
            lr *= (t / self.config.rejoin_warmup as f64).min(1.0);
        }
        lr
    }

    /// (Re)build the arena when the trainable set changed, a parameter was replaced or the
    /// bucket size changed.
    pub(super) fn prepare(&mut self, params: &mut Params) -> Result<()> {
        let trainable: Vec<_> = params.entries().iter().filter(|e| e.trainable()).collect();
        let same_set = self.arena.as_ref().is_some_and(|a| {
            a.slots.len() == trainable.len()
                && trainable.iter().all(|e| params.find(&e.path).is_some_and(|p| a.by_pid.contains_key(&p)))
        });
        let same_bucket = self.arena.as_ref().is_some_and(|a| a.bucket == self.bucket);
        if same_set && same_bucket && self.arena.as_ref().is_some_and(|a| a.still_bound(params)) {
            return Ok(());
        }
        let c = &self.config;
        let resolved = resolve(
            &trainable,
            &c.groups,
            c.lr,
            c.weight_decay,
            &c.schedule,
            c.decay_1d,
            c.layer_lr,
            params.max_depth(),
        )?;
        let mut groups: Vec<Resolved> = Vec::new();
        let mut wants = Vec::with_capacity(trainable.len());
        for (e, r) in trainable.iter().zip(resolved) {
            let gi = match groups
                .iter()
                .position(|g| g.lr == r.lr && g.weight_decay == r.weight_decay && g.schedule == r.schedule)
            {
                Some(i) => i,
                None => {
                    groups.push(r);
                    groups.len() - 1
                }
            };
            let born = *self.born.entry(e.path.clone()).or_insert(self.step);
            let pid = params.find(&e.path).expect("entry path is registered");
            wants.push(Want { pid, group: gi, born });
        }
        let old = self.arena.take();
        let arena = Arena::build(
            &self.engine,
            params,
            wants,
            self.config.method.states(),
            old.as_ref(),
            self.bucket,
        )?;
        self.arena = Some(arena);
        self.groups = groups;
        Ok(())
    }

    /// One optimizer step with `grads` (the gradients of the last micro-batch, or of the whole
    /// batch without accumulation).
    pub fn step(&mut self, params: &mut Params, grads: &GradStore) -> Result<()> {
        self.accumulate(params, grads)?;
        self.apply()
    }

    /// The global gradient norm of the last step (before clipping; a host round trip, so only
    /// on request). `None` without clipping.
    pub fn last_grad_norm(&self) -> Result<Option<f32>> {
        if self.config.max_grad_norm.is_none() {
            return Ok(None);
        }
        Ok(Some(self.clip.to_vec()?[1]))
    }

    /// Micro-batches gathered since the last update (0 at a step boundary).
    pub fn gathered(&self) -> usize {
        self.gathered
    }

    /// The global norm of the gathered gradients, computed on the device without a readback:
    /// a 2-element tensor `[clip factor, norm]`. The update that follows reuses it. A training
    /// loop reads it back with the loss to skip a non-finite step before it touches anything.
    pub fn gathered_grad_norm(&mut self) -> Result<&Tensor> {
        if self.gathered == 0 {
            return Err(Error::arg("optimizer", "no gradients gathered: call accumulate first"));
        }
        // Without clipping the factor is never used; f32::MAX keeps it at 1 for finite norms.
        self.compute_norm(self.config.max_grad_norm.unwrap_or(f32::MAX))?;
        self.norm_ready = true;
        Ok(&self.clip)
    }

    /// Update with the gradients gathered by [`Optimizer::accumulate`] (the last micro-batch
    /// included): the second half of [`Optimizer::step`].
    pub fn update(&mut self) -> Result<()> {
        if self.gathered == 0 {
            return Err(Error::arg("optimizer", "no gradients gathered: call accumulate first"));
        }
        self.apply()
    }

    /// The gradients about to be gathered carry a loss scale: the norm, the clipping and the
    /// update divide it out (`inv` = 1 / scale, folded into the clip factor the update already
    /// multiplies by, so unscaling costs no pass). Set before [`Optimizer::gathered_grad_norm`].
    pub fn set_grad_unscale(&mut self, inv: f32) {
        self.unscale = inv;
        self.norm_ready = false;
    }

    /// Drop the gathered gradients without updating anything (a skipped step): parameters,
    /// moments and the step count stay as they were.
    pub fn discard(&mut self) {
        self.gathered = 0;
        self.norm_ready = false;
    }

    /// Sum of squares per page, then `[min(1, max_norm / norm), norm]` into `clip`.
    fn compute_norm(&mut self, max_norm: f32) -> Result<()> {
        let e = self.engine.clone();
        let Some(a) = self.arena.as_ref() else {
            return Err(Error::arg("optimizer", "no gradients gathered: call accumulate first"));
        };
        if a.pages.len() * PARTIALS > self.partials.numel() {
            self.partials = Tensor::zeros(&e, &[a.pages.len() * PARTIALS])?;
        }
        for (pi, p) in a.pages.iter().enumerate() {
            let groups = p.len.div_ceil(4096).clamp(1, PARTIALS);
            let prm = ArenaParams {
                n: p.len as u32,
                base: (pi * PARTIALS) as u32,
                count: 0,
                max_norm,
                inv_scale: self.unscale,
                _pad: [0; 3],
            };
            e.dispatch(
                &Kernel::new(&shaders::ARENA, "sumsq_partial"),
                bytemuck::bytes_of(&prm),
                &[
                    Binding::read(view(&p.grads, 0), p.len as u64 * 4),
                    Binding::write(self.partials.storage(), self.partials.nbytes()),
                ],
                [groups as u32, 1, 1],
            )?;
        }
        let count = (a.pages.len() * PARTIALS) as u32;
        let prm = ArenaParams { n: 0, base: 0, count, max_norm, inv_scale: self.unscale, _pad: [0; 3] };
        e.dispatch(
            &Kernel::new(&shaders::ARENA, "clip_scale"),
            bytemuck::bytes_of(&prm),
            &[
                Binding::read(self.partials.storage(), self.partials.nbytes()),
                Binding::write(self.clip.storage(), self.clip.nbytes()),
            ],
            [1, 1, 1],
        )?;
        Ok(())
    }

    fn apply(&mut self) -> Result<()> {
        let e = self.engine.clone();
        if self.arena.is_none() {
            return Err(Error::arg("optimizer", "no gradients gathered: call accumulate first"));
        }
        // The clip factor also divides out a loss scale; without either, the update reads 1.
        let gscale = match (self.config.max_grad_norm, self.unscale != 1.0) {
            (None, false) => &self.one,
            (max_norm, _) => {
                if !self.norm_ready {
                    self.compute_norm(max_norm.unwrap_or(f32::MAX))?;
                }
                &self.clip
            }
        };
        let a = self.arena.as_ref().expect("accumulate ran");
        for r in &a.ranges {
            let g = &self.groups[r.group];
            let lr = self.range_lr(r) as f32;
            let n = r.end - r.start;
            let p = &a.pages[r.page];
            let bytes = n as u64 * 4;
            let t = self.step - r.born + 1;
            match self.config.method {
                Method::Adam { beta1, beta2, eps } | Method::AdamW { beta1, beta2, eps } => {
                    let decoupled = matches!(self.config.method, Method::AdamW { .. });
                    let prm = AdamParams {
                        n: n as u32,
                        lr,
                        beta1,
                        beta2,
                        eps,
                        weight_decay: if decoupled { g.weight_decay } else { 0.0 },
                        bc1: (1.0 - (beta1 as f64).powi(t as i32)) as f32,
                        bc2: (1.0 - (beta2 as f64).powi(t as i32)) as f32,
                        l2: if decoupled { 0.0 } else { g.weight_decay },
                        _pad: [0; 3],
                    };
                    launch_1d(
                        &e,
                        &Kernel::new(&shaders::ADAMW, "adamw_step"),
                        &prm,
                        &[
                            Binding::write(view(&p.params, r.start), bytes),
                            Binding::read(view(&p.grads, r.start), bytes),
                            Binding::write(view(&p.states[0], r.start), bytes),
                            Binding::write(view(&p.states[1], r.start), bytes),
                            Binding::read(gscale.storage(), 4),
                        ],
                        n,
                    )?;
                }
                Method::Sgd { momentum, dampening, nesterov } => {
                    let prm = SgdParams {
                        n: n as u32,
                        lr,
                        momentum,
                        dampening,
                        weight_decay: g.weight_decay,
                        nesterov: nesterov as u32,
                        first: (t == 1) as u32,
                        _pad: 0,
                    };
                    // Without momentum the buffer is never touched: a small stand-in is bound.
                    let buf = match p.states.first() {
                        Some(b) => Binding::write(view(b, r.start), bytes),
                        None => Binding::write(self.dummy.storage(), self.dummy.nbytes()),
                    };
                    launch_1d(
                        &e,
                        &Kernel::new(&shaders::SGD, "sgd_step"),
                        &prm,
                        &[
                            Binding::write(view(&p.params, r.start), bytes),
                            Binding::read(view(&p.grads, r.start), bytes),
                            buf,
                            Binding::read(gscale.storage(), 4),
                        ],
                        n,
                    )?;
                }
            }
        }
        self.step += 1;
        self.gathered = 0;
        self.norm_ready = false;
        Ok(())
    }
}

// The arena pads slots to whole 256-byte units; a binding's size is a multiple of 16 bytes.
const _: () = assert!((ALIGN * 4).is_multiple_of(256));
