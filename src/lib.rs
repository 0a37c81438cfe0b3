//! # whet
//!
//! Fine-tune pretrained models on any GPU. The crate is layered, and the folder tree is the
//! architecture:
//!
//! - [`engine`]: the only module that touches wgpu — adapter choice ([`EngineOptions`], which
//!   the library fills from no environment variable), pipelines cached by code shape, a buffer
//!   pool, bind groups cached by the buffers they bind, one submit per batch of dispatches,
//!   waits with a timeout.
//! - [`tensor`]: f32/u32 device tensors, row-major, contiguous, broadcasting shapes.
//! - [`graph`]: reverse-mode autodiff; frozen inputs record nothing.
//! - [`ops`]: one file per op family, forward and backward side by side, each dispatching WGSL
//!   from `shaders/`; `ops::reference` is the plain CPU f64 version of every op.
//! - [`optim`]: optimizers that update parameters on the device.
//! - [`nn`]: named parameters, the checkpoint binder and its report, initialisers and layers.
//! - [`weights`]: checkpoint readers (safetensors, HF directories, PyTorch, GGUF) behind one
//!   trait, picked by content; Hugging Face ids resolved in the local cache (`hf_cache`); the
//!   GGUF writer, GGML block quantiser and llama.cpp naming the GGUF export uses.
//! - [`models`]: the model zoo — configs, loaders, forward passes, task heads, parameter paths.
//!   Each architecture is one file implementing `models::model::Model` plus its row in
//!   `models::registry` (names, head, init family, export, LoRA targets, loader); the rest of
//!   the crate holds `Box<dyn Model>` and never names an architecture. Hosts add their own with
//!   `registry::register`.
//! - [`data`]: image folders, text tables, corpora, tokenizers, chat templates, labels and
//!   seeded splits, all checked on the CPU before training starts.
//! - [`train`]: the fine-tuning driver (loop, checkpoints, log, stop flag, the events a host
//!   program receives) and the defences against forgetting (L2-SP, EWC, distillation),
//!   unfreezing plans, the LR range test.
//! - [`dist`]: data-parallel ranks (one process, or an MPI job with the `mpi` feature) and
//!   the collectives the driver needs.
//! - [`eval`]: metrics, curves, calibration and bootstrap intervals, in f64 on the CPU.
//! - [`run`]: a recipe in, a fine-tuned model and its numbers out (what `whet train` does), as
//!   stages: data (one split routine for images, tables and corpora) → model and task →
//!   optimizer and plan → driver → evaluation → export (merged model, PEFT adapter, GGUF; f32,
//!   f16 or bf16); recipes with `--set` overrides
//!   (`recipe_set`) and the learning-rate range test of a recipe (`lr_find`).
//! - [`report`]: the `whet compare` results and their self-contained HTML report; the
//!   `whet lr-find` plot.
//! - [`progress`]: what a user sees while waiting: bars on a terminal, plain lines elsewhere.
//! - [`bench`]: `whet bench`'s kernel and model-step cases, records and comparisons.
//! - [`error`]: the one error type; every variant says what a user needs to act on it.
//! - `fuzzing`: entry points for the fuzz targets (hidden from the docs).
//!
//! ```no_run
//! use whet::{Engine, Tensor};
//! # fn main() -> whet::Result<()> {
//! let e = Engine::new(Default::default())?;
//! let w = Tensor::param(&e, &[1.0, 2.0, 3.0, 4.0], &[2, 2])?;
//! let x = Tensor::from_slice(&e, &[1.0, 1.0], &[1, 2])?;
//! let loss = x.matmul(&w)?.sum_all()?;
//! let grads = loss.backward()?;
//! println!("{:?}", grads.get(&w).unwrap().to_vec()?);
//! # Ok(()) }
//! ```

// `!(x > 0.0)` is how settings refuse NaN along with the out-of-range values: the negation is
// the point, so clippy's partial_cmp suggestion would hide it.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

pub mod bench;
pub mod data;
pub mod dist;
pub mod engine;
pub mod error;
pub mod eval;
#[doc(hidden)]
pub mod fuzzing;
pub mod graph;
pub mod models;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod progress;
pub mod report;
pub mod run;
pub mod tensor;
pub mod train;
pub mod weights;

pub use engine::{AdapterSummary, Engine, EngineOptions};
pub use error::{Error, Result};
pub use graph::GradStore;
pub use tensor::{DType, Tensor};
