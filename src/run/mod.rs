//! A recipe in, a fine-tuned model and its numbers out: what `whet train` does, as a library
//! call. [`train`] loads the data (pre-scanned: bad items fail before step 1 or are listed),
//! binds the pretrained model with a head for the task, applies freezing / LoRA / L2-SP,
//! measures the untuned baseline, runs the [`Driver`], restores the best checkpoint, evaluates
//! on the test split with bootstrap intervals and writes the run folder:
//!
//! ```text
//! runs/NAME/
//!   model/            model.safetensors under the checkpoint's own key names (+ config.json,
//!                     tokenizer.json for Hugging Face models): loadable by transformers and whet
//!   run.json          the run's fingerprint (recipe values, model and data content), the
//!                     folder format and whet version: a re-run resumes only the same run
//!   recipe.toml       the resolved recipe (defaults filled in, absolute paths)
//!   labels.json       class names by index (classifiers)
//!   metrics.json      validation history, test metrics with 95% intervals, the baseline's
//!   log.csv, log.jsonl, checkpoints/   (written by the driver)
//! ```

pub mod attribute;
pub mod compare;
pub mod export;
pub mod fingerprint;
pub mod inference;
pub mod prepare;
pub mod recipe;
mod recipe_check;
mod recipe_keys;
pub mod recipe_set;
pub mod strategies;
pub mod sweep;
pub mod tasks;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::eval::{Interval, Predictions};
use crate::progress::Phase;
use crate::train::driver::{Driver, RunSummary, StopReason};
use crate::train::run_dir::{Opening, Resume, RunDir};
use crate::train::stop::StopFlag;

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
}

/// Metrics of one split with bootstrap intervals.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub split: String,
    pub items: usize,
    pub metrics: BTreeMap<String, Interval>,
}

/// Everything a run produced.
#[derive(Debug)]
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
    /// The source task before and after (a `[source]` recipe).
    pub retention: Option<SourceRetention>,
    /// Deepest parameter depth of the model (the head's), for depth-based freezing.
    pub max_depth: usize,
    /// Attributions of the first test items (when [`RunOptions::attributions`] asked).
    pub attributions: Vec<crate::report::results::Attribution>,
}

/// How well the checkpoint's previous task survived the fine-tuning.
#[derive(Debug, Clone, Serialize)]
pub struct SourceRetention {
    pub source: String,
    pub before: Evaluation,
    pub after: Evaluation,
    /// The source items' predictions after fine-tuning (pooled over runs by `whet compare`).
    #[serde(skip)]
    pub after_predictions: Option<Predictions>,
}

/// What a held-out evaluation keeps for paired comparisons: a classifier's probabilities or a
/// language model's per-block losses.
#[derive(Debug, Clone, Default)]
pub struct HeldOut {
    pub evaluation: Option<Evaluation>,
    pub predictions: Option<Predictions>,
    pub block_losses: Option<Vec<f64>>,
}

/// Evaluate the held-out split.
fn held_out(prep: &mut Prepared, name: &str, resamples: usize, seed: u64, progress: bool) -> Result<HeldOut> {
    let phase = Phase::begin(progress, format!("evaluating {name} on the {} split", prep.test_split()));
    let held = held_out_now(prep, name, resamples, seed);
    phase.end();
    held
}

fn held_out_now(prep: &mut Prepared, name: &str, resamples: usize, seed: u64) -> Result<HeldOut> {
    let split = format!("{name} ({})", prep.test_split());
    if let Some(p) = prep.test_predictions()? {
        return Ok(HeldOut {
            evaluation: Some(evaluation(&split, &p, resamples, seed)?),
            predictions: Some(p),
            block_losses: None,
        });
    }
    match prep.test_block_losses()? {
        Some(losses) => Ok(HeldOut {
            evaluation: Some(Evaluation {
                split,
                items: losses.len(),
                metrics: crate::eval::lm_metrics(&losses, resamples, LEVEL, seed)?,
            }),
            predictions: None,
            block_losses: Some(losses),
        }),
        None => Ok(HeldOut::default()),
    }
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
    let dir = recipe.output.dir.clone();
    let fp = fingerprint::recipe_fingerprint(recipe)?;
    let resume = if recipe.output.resume { Resume::IfSame } else { Resume::Fresh };
    let claim = RunDir::claim(&dir, &fp, resume)?;
    // Only now: the folder's recipe.toml always describes the run its checkpoints belong to.
    crate::train::checkpoint::replace_atomically(&dir.join("recipe.toml"), recipe.to_toml()?.as_bytes())?;
    let mut prep = prepare::prepare(engine, recipe, opts.progress)?;
    if let Some(labels) = &prep.labels {
        labels.save(&dir.join("labels.json"))?;
    }
    let resamples = recipe.output.bootstrap.max(1);
    let seed = recipe.train.seed;
    engine.reset_peak();
    let base = if opts.baseline {
        held_out(&mut prep, "baseline", resamples, seed, opts.progress)?
    } else {
        HeldOut::default()
    };
    let (baseline, baseline_predictions) = (base.evaluation, base.predictions);

    // A model drawn from scratch has no source task left to retain.
    let source_before = if recipe.model.init == "scratch" { None } else { prep.source_predictions()? };

    let mut config = prep.driver_config(recipe, opts.progress);
    config.on_event = opts.on_event.clone();
    let mut driver = Driver::new(engine, config, prep.optim_config(recipe)?)?;
    let summary = driver.run_in(&claim, prep.task.as_task(), stop)?;
    if matches!(summary.stopped, StopReason::Interrupted { .. }) {
        // The driver saved a checkpoint; `whet train` again resumes from it.
        return Ok(Outcome {
            dir: dir.clone(),
            opening: claim.opening().clone(),
            summary,
            baseline,
            test: None,
            sample: None,
            exported: export::Exported { path: dir, tensors: Default::default() },
            skipped_items: prep.skipped,
            baseline_predictions,
            test_predictions: None,
            baseline_losses: base.block_losses,
            test_losses: None,
            trainable_params: 0,
            peak_bytes: engine.stats().peak_bytes,
            retention: None,
            max_depth: 0,
            attributions: Vec::new(),
        });
    }
    // Evaluate and export the best validated weights, not merely the last.
    if summary.best.is_some() {
        if let Some(best) = crate::train::checkpoint::load_best(&dir)? {
            crate::train::driver::restore_params(prep.task.as_task().params_mut(), &best)?;
        }
    }
    let held = held_out(&mut prep, "test", resamples, seed, opts.progress)?;
    let (test, test_predictions, test_losses) = (held.evaluation, held.predictions, held.block_losses);
    let retention = match (source_before, prep.source_predictions()?) {
        (Some((source, before)), Some((_, after))) => Some(SourceRetention {
            before: evaluation(&format!("{source} before"), &before, resamples, seed)?,
            after: evaluation(&format!("{source} after"), &after, resamples, seed)?,
            after_predictions: Some(after),
            source,
        }),
        _ => None,
    };
    let sample = prep.sample(recipe)?;
    let exported = prep.export(&dir.join("model"))?;
    write_metrics(&dir, &summary, baseline.as_ref(), test.as_ref(), sample.as_deref(), retention.as_ref())?;
    let trainable_params = prep.task.as_task().params().count(true) as u64;
    let max_depth = prep.task.as_task().params().max_depth();
    let title = recipe.output.dir.file_name().map_or(String::new(), |n| n.to_string_lossy().into_owned());
    let attributions =
        if opts.attributions > 0 { prep.attributions(opts.attributions, &title)? } else { Vec::new() };
    Ok(Outcome {
        dir,
        opening: claim.opening().clone(),
        summary,
        baseline,
        test,
        sample,
        exported,
        skipped_items: prep.skipped,
        baseline_predictions,
        test_predictions,
        baseline_losses: base.block_losses,
        test_losses,
        trainable_params,
        peak_bytes: engine.stats().peak_bytes,
        retention,
        max_depth,
        attributions,
    })
}

fn write_metrics(
    dir: &Path,
    summary: &RunSummary,
    baseline: Option<&Evaluation>,
    test: Option<&Evaluation>,
    sample: Option<&str>,
    retention: Option<&SourceRetention>,
) -> Result<()> {
    let v = serde_json::json!({
        "steps": summary.steps,
        "epochs": summary.epochs,
        "stopped": format!("{:?}", summary.stopped),
        "train_secs": summary.train_secs,
        "skipped_steps": summary.skipped_steps,
        "best": summary.best.as_ref().map(|(s, m)| serde_json::json!({"step": s, "metrics": m})),
        "last_validation": summary.last,
        "test": test,
        "baseline": baseline,
        "sample": sample,
        "retention": retention,
    });
    let text = serde_json::to_string_pretty(&v).map_err(|e| Error::arg("metrics.json", e.to_string()))?;
    crate::train::checkpoint::replace_atomically(&dir.join("metrics.json"), text.as_bytes())
}
