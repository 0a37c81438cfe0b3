//! The zoo by name: one entry point that binds a checkpoint to a model kind and returns the
//! model with its binding report (used by `whet inspect --model`, the tasks and the driver).

use std::path::Path;

use crate::engine::Engine;
use crate::error::Result;
use crate::models::model::LoadSpec;
pub use crate::models::model::Model;
pub use crate::models::registry::ModelKind;
use crate::nn::BindingReport;

/// A bound model of any architecture.
pub type AnyModel = Box<dyn Model>;

/// Bind `path` (a file or an HF directory) to a model of `kind`. `classes` sets the number of
/// outputs of a classifier head (a new head when it differs from the checkpoint's). Any
/// binding problem is `Error::Binding` with the whole report.
pub fn load(
    engine: &Engine,
    path: &Path,
    kind: ModelKind,
    classes: Option<usize>,
    seed: u64,
) -> Result<(AnyModel, BindingReport)> {
    load_spec(kind, &LoadSpec { engine, path, classes, seed, keep_quantized: false })
}

/// [`load`] with every option of [`LoadSpec`] (e.g. quantized weights kept quantized).
pub fn load_spec(kind: ModelKind, spec: &LoadSpec) -> Result<(AnyModel, BindingReport)> {
    (kind.architecture().load)(spec)
}
