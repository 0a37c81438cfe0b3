//! A recipe in, a fine-tuned model and its numbers out: what `whet train` does, as a library
//! call. [`train`] loads the data (pre-scanned: bad items fail before step 1 or are listed),
//! binds the pretrained model with a head for the task, applies freezing / LoRA / L2-SP,
//! measures the untuned baseline, runs the [`Driver`], restores the best checkpoint, evaluates
//! on the test split with bootstrap intervals and writes the run folder:
//!
//! ```text
//! runs/NAME/
//!   model/            model.safetensors under the checkpoint's own key names (+ config.json,
//!                     tokenizer.json for Hugging Face models): loadable by transformers and whet;
//!                     with output.adapter_only, adapter_model.safetensors + adapter_config.json
//!                     (a PEFT adapter) instead; with output.gguf, model.gguf for llama.cpp too
//!   run.json          the run's fingerprint (recipe values, model and data content), the
//!                     folder format and whet version: a re-run resumes only the same run
//!   recipe.toml       the resolved recipe (defaults filled in, absolute paths)
//!   labels.json       class names by index (classifiers)
//!   metrics.json      validation history, test metrics with 95% intervals, the baseline's
//!   log.csv, log.jsonl, checkpoints/   (written by the driver)
//! ```

pub mod attribute;
pub mod compare;
pub mod data;
pub mod evaluate;
pub mod export;
pub mod export_adapter;
pub mod export_gguf;
pub mod fingerprint;
pub mod gguf_tokenizer;
pub mod inference;
pub mod lr_find;
pub mod model_task;
pub mod plan;
pub mod prepare;
pub mod recipe;
mod recipe_check;
mod recipe_keys;
pub mod recipe_set;
pub mod settings;
pub mod splits;
pub mod strategies;
pub mod sweep;
pub mod tasks;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::eval::{Interval, Predictions};
use crate::train::driver::{Driver, RunSummary, StopReason};
use crate::train::run_dir::{Opening, Resume, RunDir};
use crate::train::stop::StopFlag;

pub use evaluate::HeldOut;
use evaluate::HeldOutSettings;
pub use prepare::{Prepared, TaskBox};
pub use recipe::Recipe;

/// How a run is shown.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Progress on stderr: a bar on a terminal, else a plain line every 30 s and at the end.
    pub progress: bool,
    /// Evaluate the untuned model on the test split first (the baseline column).
    pub baseline: bool,
    /// Attributions of this many test items after training (for `whet compare`'s report).
    pub attributions: usize,
    /// The host's progress callback: the driver's [`Event`](crate::train::Event)s (steps,
    /// validation results, the end).
    pub on_event: Option<crate::train::OnEvent>,
    /// The ranks of a data-parallel run (one process by default). Rank 0 claims and writes the
    /// run folder, exports and returns the whole [`Outcome`]; the other ranks train beside it,
    /// take their shares of every evaluation, and return after the test evaluation with the
    /// summary only.
    pub cluster: crate::dist::Cluster,
    /// Compare the ranks' parameters after every step ([`crate::train::DriverConfig::check_replicas`]).
    pub check_replicas: bool,
    /// Sum the gradients over the ranks after the backward instead of overlapping it
    /// ([`crate::train::DriverConfig::overlap_all_reduce`] off; for measuring the overlap).
    pub reduce_after_backward: bool,
}

/// Metrics of one split with bootstrap intervals.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Evaluation {
    pub split: String,
    pub items: usize,
    pub metrics: BTreeMap<String, Interval>,
}

/// Everything a run produced.
#[derive(Debug, Serialize, Deserialize)]
pub struct Outcome {
    pub dir: PathBuf,
    /// What the run folder held: nothing, this run (resumed), or an earlier run (cleared).
    pub opening: Opening,
    pub summary: RunSummary,
    pub baseline: Option<Evaluation>,
    pub test: Option<Evaluation>,
    /// A generated continuation (causal LM with a `[generate]` prompt).
    pub sample: Option<String>,
    pub exported: export::Exported,
    pub skipped_items: Vec<String>,
    /// Test-split class probabilities of the untuned and the fine-tuned model (classifiers).
    pub baseline_predictions: Option<Predictions>,
    pub test_predictions: Option<Predictions>,
    /// Per-block held-out losses of the untuned and the fine-tuned language model.
    pub baseline_losses: Option<Vec<f64>>,
    pub test_losses: Option<Vec<f64>>,
    /// Parameters that trained at the end of the run.
    pub trainable_params: u64,
    /// Peak device memory of the run (the engine's buffer pool).
    pub peak_bytes: u64,
    /// Device bytes of the model's parameters and buffers by dtype (`f32`, `q4_1`, …).
    pub weight_bytes: std::collections::BTreeMap<String, u64>,
    /// The source task before and after (a `[source]` recipe).
    pub retention: Option<SourceRetention>,
    /// Deepest parameter depth of the model (the head's), for depth-based freezing.
    pub max_depth: usize,
    /// Attributions of the first test items (when [`RunOptions::attributions`] asked).
    pub attributions: Vec<crate::report::results::Attribution>,
}

/// How well the checkpoint's previous task survived the fine-tuning.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceRetention {
    pub source: String,
    pub before: Evaluation,
    pub after: Evaluation,
    /// The source items' predictions after fine-tuning (pooled over runs by `whet compare`).
    #[serde(skip)]
    pub after_predictions: Option<Predictions>,
}

/// Interval level of every reported metric.
pub const LEVEL: f64 = 0.95;

/// Bootstrap intervals of the classification metrics (seeded: reruns print the same numbers).
pub fn evaluation(split: &str, p: &Predictions, resamples: usize, seed: u64) -> Result<Evaluation> {
    Ok(Evaluation {
        split: split.to_string(),
        items: p.len(),
        metrics: crate::eval::bootstrap_metrics(p, resamples, LEVEL, seed)?,
    })
}

/// Run `recipe` to the end (or until `stop` is requested) and write the run folder.
///
/// The folder is claimed first: with `output.resume` (the default) a folder holding the same
/// run resumes it and one holding another run is refused before anything in it is touched
/// ([`Error::RunMismatch`] names what differs); `output.resume = false` starts over.
pub fn train(engine: &Engine, recipe: &Recipe, stop: &StopFlag, opts: RunOptions) -> Result<Outcome> {
    let cluster = opts.cluster.clone();
    let root = cluster.is_root();
    let claim = claim_shared(recipe, &cluster)?;
    let mut prep = prepare::prepare(engine, recipe, opts.progress && root)?;
    if let (Some(labels), true) = (&prep.labels, root) {
        labels.save(&recipe.output.dir.join("labels.json"))?;
    }
    let held = HeldOutSettings::of(recipe, opts.progress && root, &cluster);
    engine.reset_peak();
    // Every rank takes its share of the held-out items; rank 0 keeps the gathered result.
    let baseline = if opts.baseline { held.evaluate(&mut prep, "baseline")? } else { HeldOut::default() };
    // A model drawn from scratch has no source task left to retain.
    let source_before =
        if recipe.model.init == "scratch" || !root { None } else { prep.source_predictions()? };

    let mut config = prep.driver_config(recipe, opts.progress && root);
    config.on_event = opts.on_event.clone();
    config.cluster = cluster;
    config.check_replicas = opts.check_replicas;
    config.overlap_all_reduce = !opts.reduce_after_backward;
    let mut driver = Driver::new(engine, config, prep.optim_config(recipe)?)?;
    let summary = driver.run_in(&claim, prep.task.as_task(), stop)?;
    let mut outcome = Outcome::begun(engine, recipe, &claim, summary, baseline, prep.skipped.clone());
    if matches!(outcome.summary.stopped, StopReason::Interrupted { .. }) {
        // The driver saved a checkpoint; `whet train` again resumes from it.
        return Ok(outcome);
    }
    // Rank 0's last checkpoint (the best weights among them) is on disk before anyone reads it.
    held.cluster.barrier()?;
    test_on_best(recipe, &mut prep, &held, &mut outcome)?;
    if root {
        conclude(engine, recipe, &mut prep, source_before, &held, &opts, &mut outcome)?;
    }
    Ok(outcome)
}

/// Restore the best validated weights (not merely the last) and evaluate them on the test
/// split, every rank its share.
fn test_on_best(
    recipe: &Recipe,
    prep: &mut Prepared,
    held: &HeldOutSettings,
    out: &mut Outcome,
) -> Result<()> {
    if out.summary.best.is_some() {
        if let Some(best) = crate::train::checkpoint::load_best(&recipe.output.dir)? {
            crate::train::driver::restore_params(prep.task.as_task().params_mut(), &best)?;
        }
    }
    let test = held.evaluate(prep, "test")?;
    (out.test, out.test_predictions, out.test_losses) =
        (test.evaluation, test.predictions, test.block_losses);
    Ok(())
}

/// Claim the recipe's run folder (see [`train`]) and write its `recipe.toml`.
fn claim(recipe: &Recipe) -> Result<RunDir> {
    let dir = &recipe.output.dir;
    let fp = fingerprint::recipe_fingerprint(recipe)?;
    let resume = if recipe.output.resume { Resume::IfSame } else { Resume::Fresh };
    let claim = RunDir::claim(dir, &fp, resume)?;
    // Only now: the folder's recipe.toml always describes the run its checkpoints belong to.
    crate::train::checkpoint::replace_atomically(&dir.join("recipe.toml"), recipe.to_toml()?.as_bytes())?;
    Ok(claim)
}

/// [`claim`] on rank 0; the other ranks follow the folder as rank 0 opened it (after rank 0
/// has cleared or checked it), so they resume from the same checkpoint.
fn claim_shared(recipe: &Recipe, cluster: &crate::dist::Cluster) -> Result<RunDir> {
    if !cluster.is_distributed() {
        return claim(recipe);
    }
    let (claimed, code) = match cluster.is_root() {
        true => {
            let c = claim(recipe)?;
            let code = match c.opening() {
                Opening::New => 0u8,
                Opening::Resume { .. } => 1,
                Opening::Fresh => 2,
            };
            (Some(c), code)
        }
        false => (None, 0),
    };
    let code = cluster.broadcast_bytes(vec![code])?;
    Ok(match claimed {
        Some(c) => c,
        None => {
            let opening = match code.first() {
                Some(1) => Opening::Resume { extended: Vec::new(), one_sided: Vec::new() },
                Some(2) => Opening::Fresh,
                _ => Opening::New,
            };
            RunDir::follow(&recipe.output.dir, opening)
        }
    })
}

/// How the held-out split is evaluated, before and after training.
impl HeldOutSettings {
    fn of(recipe: &Recipe, progress: bool, cluster: &crate::dist::Cluster) -> HeldOutSettings {
        HeldOutSettings {
            resamples: recipe.output.bootstrap.max(1),
            seed: recipe.train.seed,
            progress,
            cluster: cluster.clone(),
        }
    }

    fn evaluate(&self, prep: &mut Prepared, name: &str) -> Result<HeldOut> {
        evaluate::held_out(prep, name, self)
    }

    fn evaluation(&self, split: &str, p: &Predictions) -> Result<Evaluation> {
        evaluation(split, p, self.resamples, self.seed)
    }
}

/// After a finished run and its test evaluation ([`test_on_best`]): the source task's
/// retention, a sample, the export and `metrics.json` (rank 0).
fn conclude(
    engine: &Engine,
    recipe: &Recipe,
    prep: &mut Prepared,
    source_before: Option<(String, Predictions)>,
    held: &HeldOutSettings,
    opts: &RunOptions,
    out: &mut Outcome,
) -> Result<()> {
    let dir = recipe.output.dir.clone();
    out.retention = match (source_before, prep.source_predictions()?) {
        (Some((source, before)), Some((_, after))) => Some(SourceRetention {
            before: held.evaluation(&format!("{source} before"), &before)?,
            after: held.evaluation(&format!("{source} after"), &after)?,
            after_predictions: Some(after),
            source,
        }),
        _ => None,
    };
    out.sample = prep.sample(recipe)?;
    out.exported = prep.export(&dir.join("model"), &recipe.output)?;
    out.peak_bytes = engine.stats().peak_bytes;
    out.weight_bytes = prep.task.as_task().params().bytes_by_dtype();
    write_metrics(&dir, out)?;
    out.trainable_params = prep.task.as_task().params().count(true) as u64;
    out.max_depth = prep.task.as_task().params().max_depth();
    let title = dir.file_name().map_or(String::new(), |n| n.to_string_lossy().into_owned());
    if opts.attributions > 0 {
        out.attributions = prep.attributions(opts.attributions, &title)?;
    }
    out.peak_bytes = engine.stats().peak_bytes;
    Ok(())
}

impl Outcome {
    /// What a run that trained (or was interrupted) has so far: its summary and baseline.
    fn begun(
        engine: &Engine,
        recipe: &Recipe,
        claim: &RunDir,
        summary: RunSummary,
        baseline: HeldOut,
        skipped: Vec<String>,
    ) -> Outcome {
        let dir = recipe.output.dir.clone();
        Outcome {
            opening: claim.opening().clone(),
            summary,
            baseline: baseline.evaluation,
            test: None,
            sample: None,
            exported: export::Exported { path: dir.clone(), tensors: Default::default() },
            dir,
            skipped_items: skipped,
            baseline_predictions: baseline.predictions,
            test_predictions: None,
            baseline_losses: baseline.block_losses,
            test_losses: None,
            trainable_params: 0,
            peak_bytes: engine.stats().peak_bytes,
            weight_bytes: Default::default(),
            retention: None,
            max_depth: 0,
            attributions: Vec::new(),
        }
    }
}

fn write_metrics(dir: &Path, out: &Outcome) -> Result<()> {
    let summary = &out.summary;
    let v = serde_json::json!({
        "steps": summary.steps,
        "epochs": summary.epochs,
        "stopped": format!("{:?}", summary.stopped),
        "train_secs": summary.train_secs,
        "skipped_steps": summary.skipped_steps,
        "best": summary.best.as_ref().map(|(s, m)| serde_json::json!({"step": s, "metrics": m})),
        "last_validation": summary.last,
        "test": out.test,
        "baseline": out.baseline,
        "sample": out.sample,
        "retention": out.retention,
        "peak_device_bytes": out.peak_bytes,
        "weight_device_bytes": out.weight_bytes,
    });
    let text = serde_json::to_string_pretty(&v).map_err(|e| Error::arg("metrics.json", e.to_string()))?;
    crate::train::checkpoint::replace_atomically(&dir.join("metrics.json"), text.as_bytes())
}
