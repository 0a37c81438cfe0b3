//! L2-SP (Li et al., 2018): keep fine-tuned weights near their pretrained values instead of
//! near zero. Penalty = α · Σ_pretrained ‖w − w₀‖² + β · Σ_new ‖w‖², summed over trainable
//! parameters only (a frozen parameter cannot move). Added to the task loss, so its gradient
//! 2α(w − w₀) (resp. 2βw) flows through the normal backward pass.

use crate::error::{Error, Result};
use crate::nn::{Origin, Params, Slot};
use crate::tensor::Tensor;

/// The pretrained starting point of every checkpoint parameter, snapshotted on the device.
pub struct L2Sp {
    pub alpha: f32,
    pub beta: f32,
    anchors: Vec<(String, Tensor)>,
}

impl L2Sp {
    /// Snapshot the current values of every parameter loaded from the checkpoint (call right
    /// after loading, before any step). Frozen ones are included: they may be unfrozen later.
    pub fn new(params: &Params, alpha: f32, beta: f32) -> Result<L2Sp> {
        if !(alpha >= 0.0 && beta >= 0.0) {
            return Err(Error::arg("l2sp", format!("alpha {alpha} and beta {beta} must be >= 0")));
        }
        let mut anchors = Vec::new();
        for e in params.entries() {
            if e.slot == Slot::Param && e.origin == Origin::Checkpoint {
                let _g = e.tensor.engine().no_grad();
                // A quantized (frozen) weight is anchored at its dequantized values, so the
                // penalty still holds if a later epoch unfreezes (and expands) it.
                let anchor = match e.tensor.quant_type() {
                    Some(_) => crate::ops::quant::dequantize(&e.tensor)?,
                    None => e.tensor.detach().contiguous_copy()?,
                };
                anchors.push((e.path.clone(), anchor));
            }
        }
        Ok(L2Sp { alpha, beta, anchors })
    }

    /// Bytes held by the anchors.
    pub fn anchor_bytes(&self) -> u64 {
        self.anchors.iter().map(|(_, t)| t.nbytes()).sum()
    }

    /// The penalty as a scalar tensor on the tape (`None` when nothing trainable is covered).
    pub fn penalty(&self, params: &Params) -> Result<Option<Tensor>> {
        let mut total: Option<Tensor> = None;
        let mut add = |t: Tensor| -> Result<()> {
            total = Some(match total.take() {
                Some(s) => s.add(&t)?,
                None => t,
            });
            Ok(())
        };
        if self.alpha > 0.0 {
            for (path, w0) in &self.anchors {
                let w = params.by_path(path)?;
                if w.requires_grad() {
                    let d = w.sub(w0)?;
                    add(d.mul(&d)?.sum_all()?.mul_scalar(self.alpha)?)?;
                }
            }
        }
        if self.beta > 0.0 {
            for e in params.entries() {
                if e.trainable() && e.origin == Origin::Fresh {
                    add(e.tensor.mul(&e.tensor)?.sum_all()?.mul_scalar(self.beta)?)?;
                }
            }
        }
        Ok(total)
    }
}
