//! Optimizers that update parameters in place on the device, one fused dispatch per
//! parameter tensor. State (momentum, moments) is allocated lazily and only for parameters
//! that receive a gradient, so frozen parameters cost no optimizer memory.
//!
//! (The parameter arena with one masked dispatch for all parameters, groups and schedules
//! arrive with the fine-tuning controls.)

mod adamw;
pub mod schedule;
mod sgd;

pub use adamw::{AdamW, AdamWConfig};
pub use schedule::Schedule;
pub use sgd::{Sgd, SgdConfig};

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Overwrite `dst`'s data with `src` (same shape), as an in-place parameter update.
pub(crate) fn check_same(op: &'static str, p: &Tensor, g: &Tensor) -> Result<()> {
    if p.shape() != g.shape() {
        return Err(Error::shape(op, p.shape(), g.shape(), "parameter and gradient differ"));
    }
    Ok(())
}
