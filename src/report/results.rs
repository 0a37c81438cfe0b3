//! The numbers of one `whet compare` run: what was compared, every strategy's runs, pooled
//! metrics with intervals, the paired test against full fine-tuning, the sensitivity sweep,
//! retention of the source task and attributions. This struct *is* results.json: it is
//! serialised as it stands, and [`CompareResults::load_json`] reads it back.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::serde_nan;
use crate::error::{Error, Result};
use crate::eval::Interval;

/// Everything a comparison produced; the input of [`render_html`](super::render_html).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareResults {
    /// Headline of the report.
    pub title: String,
    /// What kind of task, e.g. "text classification" or "image classification".
    pub task: String,
    /// The pretrained model the strategies start from.
    pub model: String,
    /// The data set (a path or a name).
    pub data: String,
    /// The metric that decides which strategy is best, e.g. "accuracy"; a key of
    /// [`StrategyResult::metrics`].
    pub primary_metric: String,
    /// Class names, in label order.
    #[serde(default)]
    pub classes: Vec<String>,
    /// One entry per strategy compared.
    #[serde(default)]
    pub strategies: Vec<StrategyResult>,
    /// The learning rate × frozen depth sweep, when one was run.
    #[serde(default)]
    pub sweep: Option<Sweep>,
    /// How well each strategy kept its source task.
    #[serde(default)]
    pub retention: Vec<Retention>,
    /// The configuration `--auto` chose, when it was asked for.
    #[serde(default)]
    pub auto: Option<AutoChoice>,
    /// Saliency maps of a few test items.
    #[serde(default)]
    pub attributions: Vec<Attribution>,
    /// Where the numbers came from: adapter, whet version, date...
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
}

/// One fine-tuning strategy, over all its seeds (and folds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StrategyResult {
    /// "full fine-tune", "linear probe", "LP-FT", "from scratch", "untuned", "L2-SP", "LoRA"...
    pub name: String,
    /// One line on what the strategy does.
    #[serde(default)]
    pub description: String,
    /// One entry per seed (and fold).
    #[serde(default)]
    pub runs: Vec<SeedRun>,
    /// Bootstrap intervals over all test items of all runs pooled, keyed by metric name.
    #[serde(default, deserialize_with = "serde_nan::interval_map")]
    pub metrics: BTreeMap<String, Interval>,
    /// The paired comparison with full fine-tuning on the same items (absent for the
    /// reference itself).
    #[serde(default)]
    pub vs_reference: Option<PairedTest>,
    /// Training wall time summed over runs, in seconds.
    #[serde(deserialize_with = "serde_nan::f64_or_nan")]
    pub train_secs: f64,
    /// Peak device memory of one run, in bytes.
    pub peak_bytes: u64,
    /// Parameters the strategy trains.
    pub trainable_params: u64,
}

/// One training run: a seed, and the fold when cross-validating.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedRun {
    /// The run's seed.
    pub seed: u64,
    /// The cross-validation fold, if any.
    #[serde(default)]
    pub fold: Option<usize>,
    /// Train loss and validation metric as training went.
    #[serde(default)]
    pub curve: Vec<CurvePoint>,
    /// Test metrics of this run alone.
    #[serde(default, deserialize_with = "serde_nan::f64_map")]
    pub test: BTreeMap<String, f64>,
    /// Test confusion counts, `[true, predicted]` row-major, `classes²` entries.
    #[serde(default)]
    pub confusion: Option<Vec<u64>>,
    /// Test ROC curve (binary tasks).
    #[serde(default)]
    pub roc: Option<RocCurve>,
}

/// One point of a learning curve; either value may be missing at a given step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Optimizer steps taken so far.
    pub step: u64,
    /// Mean training loss since the previous point.
    #[serde(default)]
    pub train_loss: Option<f64>,
    /// The primary metric on the validation split.
    #[serde(default)]
    pub val_metric: Option<f64>,
}

/// A ROC curve: false and true positive rates at each threshold, and the area under it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RocCurve {
    /// False positive rates, ascending.
    #[serde(deserialize_with = "serde_nan::f64_vec")]
    pub fpr: Vec<f64>,
    /// True positive rates, one per `fpr`.
    #[serde(deserialize_with = "serde_nan::f64_vec")]
    pub tpr: Vec<f64>,
    /// Area under the curve.
    #[serde(deserialize_with = "serde_nan::f64_or_nan")]
    pub auc: f64,
}

/// A strategy against the reference on the same test items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedTest {
    /// Name of the reference strategy (full fine-tuning).
    pub reference: String,
    /// The metric compared.
    pub metric: String,
    /// `metric(this) − metric(reference)` with its paired-bootstrap interval.
    #[serde(deserialize_with = "serde_nan::interval")]
    pub diff: Interval,
    /// Paired-bootstrap p-value for "no difference".
    #[serde(deserialize_with = "serde_nan::f64_or_nan")]
    pub paired_p: f64,
    /// McNemar p-value on per-item correctness.
    #[serde(deserialize_with = "serde_nan::f64_or_nan")]
    pub mcnemar_p: f64,
}

/// The learning rate × frozen depth sweep: one value of `metric` per cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sweep {
    /// The metric in the cells.
    pub metric: String,
    /// Learning rates, one per column.
    #[serde(deserialize_with = "serde_nan::f64_vec")]
    pub lrs: Vec<f64>,
    /// Frozen depths (blocks frozen from the bottom), one per row.
    pub depths: Vec<usize>,
    /// `[depth][lr]` row-major; `None` where the run failed or was skipped.
    pub values: Vec<Option<f64>>,
}

/// How well a strategy kept the task its model was pretrained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retention {
    /// The strategy (a [`StrategyResult::name`]).
    pub strategy: String,
    /// The source task measured, e.g. "ImageNet top-1 (500 images)".
    pub source_task: String,
    /// Source-task metric before fine-tuning.
    #[serde(deserialize_with = "serde_nan::interval")]
    pub before: Interval,
    /// Source-task metric after fine-tuning.
    #[serde(deserialize_with = "serde_nan::interval")]
    pub after: Interval,
}

/// The configuration `--auto` settled on, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoChoice {
    /// Frozen depth chosen.
    pub depth: usize,
    /// Learning rate chosen.
    #[serde(deserialize_with = "serde_nan::f64_or_nan")]
    pub lr: f64,
    /// One or two sentences a user can check.
    pub reason: String,
}

/// Why the model predicted what it did for one test item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Attribution {
    /// A saliency map over an image.
    Image {
        /// What is shown, e.g. the strategy and item.
        title: String,
        /// The true and predicted labels, in words.
        label: String,
        /// Image width in pixels.
        width: u32,
        /// Image height in pixels.
        height: u32,
        /// `width × height × 3` bytes, row-major RGB.
        rgb: Vec<u8>,
        /// `width × height` saliency values, finite and `>= 0`.
        heat: Vec<f32>,
    },
    /// Signed per-token contributions over a text.
    Text {
        /// What is shown, e.g. the strategy and item.
        title: String,
        /// The true and predicted labels, in words.
        label: String,
        /// The tokens, in order.
        tokens: Vec<String>,
        /// One finite score per token: positive pushed towards the prediction.
        scores: Vec<f32>,
    },
}

impl CompareResults {
    /// Writes results.json (pretty-printed) through a synced temporary file and a rename.
    /// Refuses, with the offending key, what [`CompareResults::load_json`] would refuse.
    pub fn save_json(&self, path: &Path) -> Result<()> {
        self.validate()?;
        let json = serde_json::to_string_pretty(self)
            .map_err(|e| Error::arg("CompareResults::save_json", format!("{}: {e}", path.display())))?;
        crate::train::checkpoint::replace_atomically(path, json.as_bytes())
    }

    /// Reads a results.json. Malformed JSON is a `Format` error with the 1-based line;
    /// well-formed JSON whose parts do not fit together (a confusion matrix of the wrong size,
    /// say) is a `Format` error naming the key.
    pub fn load_json(path: &Path) -> Result<CompareResults> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let format = |line: Option<usize>, message: String| Error::Format {
            path: path.display().to_string(),
            line,
            message,
        };
        let r: CompareResults = serde_json::from_str(&text).map_err(|e| {
            let line = (e.line() > 0).then_some(e.line());
            format(line, e.to_string())
        })?;
        if let Some(problem) = r.problem() {
            return Err(format(None, problem));
        }
        Ok(r)
    }

    /// Checks that the parts fit together: confusion matrices have `classes²` entries, ROC
    /// curves pair every `fpr` with a `tpr`, the sweep has one value per cell, attributions have
    /// one heat value per pixel and one finite score per token. The error names the key.
    pub fn validate(&self) -> Result<()> {
        match self.problem() {
            Some(p) => Err(Error::arg("CompareResults", p)),
            None => Ok(()),
        }
    }

    /// The first thing [`CompareResults::validate`] objects to, as `key: message`.
    fn problem(&self) -> Option<String> {
        let k = self.classes.len();
        for (si, s) in self.strategies.iter().enumerate() {
            for (ri, run) in s.runs.iter().enumerate() {
                let key = format!("strategies[{si}] ({}).runs[{ri}]", s.name);
                if let Some(c) = &run.confusion {
                    if Some(c.len()) != k.checked_mul(k) {
                        return Some(format!(
                            "{key}.confusion: {} counts, expected {k}² = {} for {k} classes",
                            c.len(),
                            k.saturating_mul(k)
                        ));
                    }
                }
                if let Some(roc) = &run.roc {
                    if roc.fpr.len() != roc.tpr.len() {
                        return Some(format!(
                            "{key}.roc: {} fpr values but {} tpr values",
                            roc.fpr.len(),
                            roc.tpr.len()
                        ));
                    }
                }
            }
        }
        if let Some(sw) = &self.sweep {
            let cells = sw.depths.len().checked_mul(sw.lrs.len());
            if cells != Some(sw.values.len()) {
                return Some(format!(
                    "sweep.values: {} values, expected {} depths × {} learning rates",
                    sw.values.len(),
                    sw.depths.len(),
                    sw.lrs.len()
                ));
            }
        }
        for (i, a) in self.attributions.iter().enumerate() {
            let key = format!("attributions[{i}]");
            match a {
                Attribution::Image { width, height, rgb, heat, .. } => {
                    let pixels = (*width as usize).checked_mul(*height as usize);
                    if pixels.is_none_or(|p| p == 0) {
                        return Some(format!("{key}: image is {width}×{height}"));
                    }
                    if pixels.and_then(|p| p.checked_mul(3)) != Some(rgb.len()) {
                        return Some(format!("{key}.rgb: {} bytes, expected {width}×{height}×3", rgb.len()));
                    }
                    if pixels != Some(heat.len()) {
                        return Some(format!("{key}.heat: {} values, expected {width}×{height}", heat.len()));
                    }
                    if let Some(j) = heat.iter().position(|h| !h.is_finite() || *h < 0.0) {
                        let v = heat.get(j).copied().unwrap_or(f32::NAN);
                        return Some(format!("{key}.heat[{j}]: {v} is not a finite value >= 0"));
                    }
                }
                Attribution::Text { tokens, scores, .. } => {
                    if tokens.len() != scores.len() {
                        return Some(format!("{key}: {} tokens but {} scores", tokens.len(), scores.len()));
                    }
                    if let Some(j) = scores.iter().position(|s| !s.is_finite()) {
                        return Some(format!("{key}.scores[{j}] is not finite"));
                    }
                }
            }
        }
        None
    }
}
