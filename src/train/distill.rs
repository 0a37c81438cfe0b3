//! Knowledge distillation / learning without forgetting (Hinton et al., 2015; Li & Hoiem,
//! 2016): the student matches a frozen teacher's softened outputs.
//!
//! loss = T² · mean over rows of KL(softmax(t/T) ‖ softmax(s/T))
//!      = T² · mean_rows Σ_c p_t,c (log p_t,c − log p_s,c),
//! torch's `kl_div(log_softmax(s/T), softmax(t/T), reduction="batchmean") · T²` for 2-D
//! logits; rows are every leading position for 3-D (sequence) logits. The teacher's logits are
//! detached: run the teacher under `Engine::no_grad` so it records no tape at all.

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// The distillation loss of `student` against `teacher` logits (same shape) at temperature `t`.
pub fn distillation_loss(student: &Tensor, teacher: &Tensor, temperature: f32) -> Result<Tensor> {
    if student.shape() != teacher.shape() || student.rank() < 1 {
        return Err(Error::shape("distillation", student.shape(), teacher.shape(), "logits must match"));
    }
    if !(temperature > 0.0) {
        return Err(Error::arg("distillation", format!("temperature {temperature} must be > 0")));
    }
    let rows = student.numel() / student.shape().last().copied().unwrap_or(1).max(1);
    let inv = 1.0 / temperature;
    let (pt, lt) = {
        let _g = teacher.engine().no_grad();
        let scaled = teacher.detach().mul_scalar(inv)?;
        (scaled.softmax()?, scaled.log_softmax()?)
    };
    let ls = student.mul_scalar(inv)?.log_softmax()?;
    let kl = pt.mul(&lt.sub(&ls)?)?.sum_all()?;
    kl.mul_scalar(temperature * temperature / rows.max(1) as f32)
}
