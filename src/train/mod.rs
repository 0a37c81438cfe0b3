//! Fine-tuning driver pieces: the training loop ([`driver`]) with its checkpoints, log and stop
//! flag; defences against catastrophic forgetting (L2-SP, EWC, distillation), unfreezing plans
//! and the learning-rate range test.

pub mod checkpoint;
pub mod distill;
pub mod driver;
pub mod events;
pub mod ewc;
pub mod fingerprint;
pub mod l2sp;
pub mod log;
pub mod loss_scale;
pub mod lr_finder;
pub mod micro_batch;
pub mod run_dir;
pub mod stop;
pub mod unfreeze;

pub use checkpoint::save_params;
pub use driver::{Driver, DriverConfig, EarlyStop, Metrics, RunSummary, StopReason, Task};
pub use events::{Event, OnEvent, StepEvent};
pub use fingerprint::Fingerprint;
pub use run_dir::{Resume, RunDir};
pub use stop::StopFlag;
