//! Elastic weight consolidation (Kirkpatrick et al., 2017) with a diagonal Fisher.
//!
//! The Fisher is estimated on source-task data as the mean over batches of the squared
//! gradient of the source loss (the empirical Fisher; with batch size 1 it is the per-sample
//! estimate of the paper). Penalty = λ/2 · Σ_i F_i (w_i − w*_i)², w* the weights at
//! estimation time, over trainable parameters.

use crate::error::{Error, Result};
use crate::graph::GradStore;
use crate::nn::Params;
use crate::tensor::Tensor;

/// Fisher diagonal and anchor weights, by parameter path.
pub struct Ewc {
    pub lambda: f32,
    terms: Vec<(String, Tensor, Tensor)>,
    batches: usize,
}

impl Ewc {
    /// An empty estimate over the currently trainable parameters.
    pub fn new(lambda: f32) -> Result<Ewc> {
        if !(lambda >= 0.0) {
            return Err(Error::arg("ewc", format!("lambda {lambda} must be >= 0")));
        }
        Ok(Ewc { lambda, terms: Vec::new(), batches: 0 })
    }

    /// Add one source batch's gradients (of the source-task loss) to the estimate.
    pub fn add_batch(&mut self, params: &Params, grads: &GradStore) -> Result<()> {
        let first = self.batches == 0;
        for e in params.entries().iter().filter(|e| e.trainable()) {
            let Some(g) = grads.get(&e.tensor) else { continue };
            let _ng = g.engine().no_grad();
            let g2 = g.mul(g)?;
            if first {
                self.terms.push((e.path.clone(), g2, e.tensor.detach().contiguous_copy()?));
            } else if let Some(t) = self.terms.iter_mut().find(|t| t.0 == e.path) {
                t.1 = t.1.add(&g2)?;
            }
        }
        self.batches += 1;
        Ok(())
    }

    /// Estimate from `batches` source batches; `loss_of(i)` returns batch i's source loss.
    pub fn estimate(
        lambda: f32,
        params: &Params,
        batches: usize,
        mut loss_of: impl FnMut(usize) -> Result<Tensor>,
    ) -> Result<Ewc> {
        let mut ewc = Ewc::new(lambda)?;
        for i in 0..batches {
            let g = loss_of(i)?.backward()?;
            ewc.add_batch(params, &g)?;
        }
        ewc.finish()
    }

    /// Turn the summed squares into the mean.
    pub fn finish(mut self) -> Result<Ewc> {
        if self.batches == 0 {
            return Err(Error::arg("ewc", "the Fisher needs at least one batch"));
        }
        let inv = 1.0 / self.batches as f32;
        for t in &mut self.terms {
            let _ng = t.1.engine().no_grad();
            t.1 = t.1.mul_scalar(inv)?;
        }
        self.batches = 1;
        Ok(self)
    }

    /// The Fisher diagonal of `path` (after `finish`).
    pub fn fisher(&self, path: &str) -> Option<&Tensor> {
        self.terms.iter().find(|t| t.0 == path).map(|t| &t.1)
    }

    /// λ/2 · Σ F (w − w*)² over trainable covered parameters, on the tape.
    pub fn penalty(&self, params: &Params) -> Result<Option<Tensor>> {
        let mut total: Option<Tensor> = None;
        for (path, f, anchor) in &self.terms {
            let w = params.by_path(path)?;
            if !w.requires_grad() {
                continue;
            }
            let d = w.sub(anchor)?;
            let t = d.mul(&d)?.mul(f)?.sum_all()?.mul_scalar(0.5 * self.lambda)?;
            total = Some(match total {
                Some(s) => s.add(&t)?,
                None => t,
            });
        }
        Ok(total)
    }
}
