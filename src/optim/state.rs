//! Export and import of an optimizer's state, keyed by parameter path, so a run resumed from a
//! checkpoint continues bit for bit: the step count, the step each parameter joined training
//! (its bias-correction clock) and every moment or momentum buffer.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::nn::Params;
use crate::optim::arena::view;
use crate::optim::Optimizer;
use crate::tensor::Tensor;

/// An optimizer's state at a step boundary.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OptimState {
    /// Optimizer steps taken.
    pub step: u64,
    /// Step at which each parameter joined training (kept for parameters frozen since, so a
    /// re-unfrozen parameter resumes the same clock as in an uninterrupted run).
    pub born: BTreeMap<String, u64>,
    /// Per trainable parameter, its state tensors (Adam: `[exp_avg, exp_avg_sq]`; SGD with
    /// momentum: `[momentum_buffer]`; plain SGD: none), each `numel` floats.
    pub moments: BTreeMap<String, Vec<Vec<f32>>>,
}

impl Optimizer {
    /// The state to save. Must be taken at a step boundary (no gathered micro-batches).
    /// Costs one readback per page and state kind.
    pub fn state(&self, params: &Params) -> Result<OptimState> {
        if self.gathered != 0 {
            return Err(Error::arg(
                "optimizer.state",
                format!(
                    "{} micro-batches gathered but not applied: export at a step boundary",
                    self.gathered
                ),
            ));
        }
        let mut out = OptimState {
            step: self.step,
            born: self.born.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            moments: BTreeMap::new(),
        };
        let Some(a) = &self.arena else { return Ok(out) };
        // One download per (page, state kind), then slices per slot.
        let mut host: Vec<Vec<Vec<f32>>> = Vec::with_capacity(a.pages.len());
        for p in &a.pages {
            let mut kinds = Vec::with_capacity(p.states.len());
            for s in &p.states {
                let bytes = self.engine.download(view(s, 0), p.len as u64 * 4)?;
                kinds.push(bytemuck::pod_collect_to_vec::<u8, f32>(&bytes));
            }
            host.push(kinds);
        }
        for s in &a.slots {
            let path = params.entry(s.pid).path.clone();
            let mut per = Vec::new();
            for kind in host.get(s.page).map(|k| k.as_slice()).unwrap_or(&[]) {
                let v = kind.get(s.offset..s.offset + s.numel).ok_or_else(|| {
                    Error::arg("optimizer.state", format!("slot of '{path}' lies outside its page"))
                })?;
                per.push(v.to_vec());
            }
            out.moments.insert(path, per);
        }
        Ok(out)
    }

    /// Restore `state` (from [`Optimizer::state`]) into a fresh optimizer for `params`, whose
    /// trainable flags are already set for the step being resumed. Moments of parameters that
    /// are not trainable now are ignored (an uninterrupted run drops them at the same point);
    /// trainable parameters without saved moments start from zero, as newly unfrozen ones do.
    pub fn load_state(&mut self, params: &mut Params, state: &OptimState) -> Result<()> {
        for path in state.moments.keys().chain(state.born.keys()) {
            if params.find(path).is_none() {
                return Err(Error::arg(
                    "optimizer.load_state",
                    format!("state for unknown parameter '{path}'"),
                ));
            }
        }
        self.step = state.step;
        self.born = state.born.iter().map(|(k, v)| (k.clone(), *v)).collect();
        self.gathered = 0;
        // Force a fresh layout: the born map decides the update ranges.
        self.arena = None;
        if params.entries().iter().any(|e| e.trainable()) {
            self.prepare(params)?;
        }
        let e = self.engine.clone();
        let Some(a) = &self.arena else { return Ok(()) };
        for s in &a.slots {
            let path = &params.entry(s.pid).path;
            let Some(saved) = state.moments.get(path) else { continue };
            let page = &a.pages[s.page];
            if saved.len() != page.states.len() {
                return Err(Error::arg(
                    "optimizer.load_state",
                    format!(
                        "'{path}' has {} state tensors, this method keeps {}",
                        saved.len(),
                        page.states.len()
                    ),
                ));
            }
            for (k, data) in saved.iter().enumerate() {
                if data.len() != s.numel {
                    return Err(Error::arg(
                        "optimizer.load_state",
                        format!("state {k} of '{path}' has {} values, the parameter {}", data.len(), s.numel),
                    ));
                }
                let t = Tensor::from_slice(&e, data, &[s.numel])?;
                e.copy(t.storage(), view(&page.states[k], s.offset), t.nbytes())?;
            }
        }
        Ok(())
    }

    /// Names of the state tensors this method keeps, torch's `state_dict` names.
    pub fn state_names(&self) -> &'static [&'static str] {
        match self.config.method {
            crate::optim::Method::Sgd { momentum: 0.0, .. } => &[],
            crate::optim::Method::Sgd { .. } => &["momentum_buffer"],
            _ => &["exp_avg", "exp_avg_sq"],
        }
    }
}
