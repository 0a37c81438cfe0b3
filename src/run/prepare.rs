//! From a recipe to a ready [`Task`](crate::train::driver::Task), through the run's stages,
//! each a module that takes the previous one's output:
//!
//! recipe → [`data`](super::data) (read, checked, split) → [`model_task`](super::model_task)
//! (model, head, task, LoRA / L2-SP) → [`settings`](super::settings) (optimizer, driver plan)
//! → the driver → [`evaluate`](super::evaluate) → [`export`](super::export) and the report.
//!
//! [`Prepared`] is what the first two stages hand on; its methods open the later ones.

use std::path::PathBuf;

use crate::data::labels::LabelMap;
use crate::data::tokenize::TextTokenizer;
use crate::engine::Engine;
use crate::error::Result;
use crate::models::zoo::ModelKind;
use crate::nn::{BindingReport, Select};
use crate::optim::OptimConfig;
use crate::train::driver::DriverConfig;

use super::model_task::{self, TestSet};
use super::recipe::Recipe;
use super::{data, settings};

pub use super::model_task::TaskBox;

/// A run ready to train.
pub struct Prepared {
    pub task: TaskBox,
    pub labels: Option<LabelMap>,
    /// Every item skipped under `skip_bad`, as "path:line: reason".
    pub skipped: Vec<String>,
    pub report: BindingReport,
    pub kind: ModelKind,
    pub tokenizer: Option<TextTokenizer>,
    pub(super) test: TestSet,
    pub(super) test_split: &'static str,
    pub(super) head: Select,
    pub(super) model_path: PathBuf,
    train_len: usize,
}

/// Load everything `recipe` names and build its task; with `progress`, the slow parts (the
/// image pre-scan, binding the checkpoint) show their progress on stderr.
pub fn prepare(engine: &Engine, recipe: &Recipe, progress: bool) -> Result<Prepared> {
    let kind: ModelKind = recipe.model.kind.parse()?;
    let data::Data { items, labels, skipped } = data::load(recipe, progress)?;
    let test_split = items.test_split();
    let mut built = model_task::build(engine, recipe, kind, items, labels.as_ref(), progress)?;
    let train_len = built.task.as_task().train_len();
    Ok(Prepared {
        task: built.task,
        labels,
        skipped,
        report: built.report,
        kind,
        tokenizer: built.tokenizer,
        test: built.test,
        test_split,
        head: built.head,
        model_path: recipe.model.path.clone(),
        train_len,
    })
}

impl Prepared {
    /// Optimizer steps in the whole run.
    pub fn total_steps(&self, recipe: &Recipe) -> u64 {
        settings::total_steps(recipe, self.train_len)
    }

    /// The optimizer the recipe describes.
    pub fn optim_config(&self, recipe: &Recipe) -> Result<OptimConfig> {
        settings::optim_config(recipe, self.train_len)
    }

    /// The driver settings the recipe describes.
    pub fn driver_config(&self, recipe: &Recipe, progress: bool) -> DriverConfig {
        settings::driver_config(recipe, &self.head, self.task.model().params(), progress)
    }
}
