//! Optimizers that update parameters in place on the device, over a parameter arena: a few
//! dispatches per step for all parameters, state only for trainable ones (frozen parameters
//! have no slot, no gradient, no moments, and are never written).

mod arena;
mod gather;
pub mod groups;
mod optimizer;
pub mod schedule;
mod state;

pub use gather::OverlappedReduce;
pub use groups::{GroupSpec, LayerLr};
pub use optimizer::{Method, OptimConfig, Optimizer};
pub use schedule::Schedule;
pub use state::OptimState;
