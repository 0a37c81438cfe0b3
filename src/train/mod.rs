//! Fine-tuning driver pieces: defences against catastrophic forgetting (L2-SP, EWC,
//! distillation), unfreezing plans and the learning-rate range test.

pub mod distill;
pub mod ewc;
pub mod l2sp;
pub mod lr_finder;
pub mod unfreeze;
