//! From a recipe to a ready [`Task`]: data loaded and pre-scanned, model bound with its head,
//! tokenizer, freezing / LoRA / L2-SP applied; plus the driver and optimizer settings the
//! recipe implies, the test-split evaluation and the export.

use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::data::image_folder::{ImageFolder, ImageFolderOptions, ImageItem};
use crate::data::labels::LabelMap;
use crate::data::skip::SkipPolicy;
use crate::data::split::stratified_split;
use crate::data::table::{TableOptions, TextItem, TextTable};
use crate::data::tokenize::TextTokenizer;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::models::decoder::{generate, Generate};
use crate::models::zoo::{self, ModelKind};
use crate::nn::init::reinitialise;
use crate::nn::lora::LoraConfig;
use crate::nn::{BindingReport, Select};
use crate::optim::{GroupSpec, LayerLr, Method, OptimConfig, Schedule};
use crate::progress::Phase;
use crate::train::driver::{DriverConfig, EarlyStop, Task};
use crate::train::l2sp::L2Sp;
use crate::train::run_dir::Resume;
use crate::train::unfreeze::Plan;

use super::export::{self, Exported};
use super::recipe::{DataKind, Recipe, SourceSection};
use super::tasks::image::ImageTask;
use super::tasks::lm::LmTask;
use super::tasks::source::SourceHead;
use super::tasks::text::TextTask;
use super::{evaluation, Evaluation};

/// The task of a run, by kind.
// One per run, never in a collection: boxing the larger variants would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum TaskBox {
    Image(ImageTask),
    Text(TextTask),
    Lm(LmTask),
}

impl TaskBox {
    pub fn as_task(&mut self) -> &mut dyn Task {
        match self {
            TaskBox::Image(t) => t,
            TaskBox::Text(t) => t,
            TaskBox::Lm(t) => t,
        }
    }
}

/// Held-out items of the final evaluation.
enum TestSet {
    Images(Vec<ImageItem>),
    Texts(Vec<TextItem>),
    Blocks(Vec<Range<usize>>),
}

/// A run ready to train.
pub struct Prepared {
    pub task: TaskBox,
    pub labels: Option<LabelMap>,
    /// Every item skipped under `skip_bad`, as "path:line: reason".
    pub skipped: Vec<String>,
    pub report: BindingReport,
    pub kind: ModelKind,
    pub tokenizer: Option<TextTokenizer>,
    test: TestSet,
    test_split: &'static str,
    head: Select,
    model_path: PathBuf,
    train_len: usize,
}

/// The recipe's model with a head of `classes` outputs (`None`: the model's own), seeded by
/// the training seed; a spinner or two lines while a large checkpoint is read and bound.
fn load_model(
    engine: &Engine,
    recipe: &Recipe,
    kind: ModelKind,
    classes: Option<usize>,
    progress: bool,
) -> Result<(zoo::AnyModel, BindingReport)> {
    let what = format!("loading {} ({})", recipe.model.path.display(), recipe.model.kind);
    let phase = Phase::begin(progress, what);
    let loaded = zoo::load(engine, &recipe.model.path, kind, classes, recipe.train.seed);
    phase.end();
    loaded
}

/// Load everything `recipe` names and build its task; with `progress`, the slow parts (the
/// image pre-scan, binding the checkpoint) show their progress on stderr.
pub fn prepare(engine: &Engine, recipe: &Recipe, progress: bool) -> Result<Prepared> {
    let kind: ModelKind = recipe.model.kind.parse()?;
    let mut skipped = Vec::new();
    let from = Source { engine, recipe, kind, progress };
    let built = match recipe.data.kind {
        DataKind::ImageFolder => from.images(&mut skipped)?,
        DataKind::Text => from.texts(&mut skipped)?,
        DataKind::Corpus => from.corpus()?,
    };
    let Built { task, labels, test, test_split, report, tokenizer } = built;
    let mut prep = Prepared {
        task,
        labels,
        skipped,
        report,
        kind,
        tokenizer,
        test,
        test_split,
        head: Select::All,
        model_path: recipe.model.path.clone(),
        train_len: 0,
    };
    prep.head = match &prep.task {
        TaskBox::Image(t) => t.model.head_select(),
        TaskBox::Text(t) => t.model.head_select(),
        TaskBox::Lm(t) => t.model.head_select(),
    };
    prep.train_len = prep.task.as_task().train_len();
    prep.apply_adaptation(recipe)?;
    Ok(prep)
}

/// What one data kind builds: the task with its model, the labels, the held-out items.
struct Built {
    task: TaskBox,
    labels: Option<LabelMap>,
    test: TestSet,
    test_split: &'static str,
    report: BindingReport,
    tokenizer: Option<TextTokenizer>,
}

/// What every data kind builds from. Splits and subsets follow `data.split_seed` (default: the
/// training seed), so runs with different training seeds can share one test set (paired
/// comparisons).
struct Source<'a> {
    engine: &'a Engine,
    recipe: &'a Recipe,
    kind: ModelKind,
    progress: bool,
}

impl Source<'_> {
    fn seed(&self) -> u64 {
        self.recipe.data.split_seed.unwrap_or(self.recipe.train.seed)
    }

    fn policy(&self) -> SkipPolicy {
        SkipPolicy { skip_bad: self.recipe.data.skip_bad, max_skipped: self.recipe.data.max_skipped }
    }

    /// An image folder (pre-scanned), split or folded, with an image model.
    fn images(&self, skipped: &mut Vec<String>) -> Result<Built> {
        let (engine, recipe, kind, progress) = (self.engine, self.recipe, self.kind, self.progress);
        let (d, seed, policy) = (&recipe.data, self.seed(), self.policy());
        let opts = ImageFolderOptions {
            val_ratio: d.val_ratio,
            test_ratio: d.test_ratio,
            seed,
            policy,
            progress,
            ..Default::default()
        };
        let folder = ImageFolder::open(&d.train, &opts)?;
        skipped.extend(folder.skipped.iter().map(|s| s.to_string()));
        let classes = folder.labels.len();
        let (model, report) = load_model(engine, recipe, kind, Some(classes), progress)?;
        let mut spec = model.image_spec().ok_or_else(|| {
            Error::arg("recipe", format!("model.kind '{}' is not an image model", recipe.model.kind))
        })?;
        if let Some(s) = recipe.model.image_size {
            spec = spec.scaled(s);
        }
        let mut folder = folder;
        if let Some((k, f)) = d.folds.zip(d.fold) {
            // Cross-validation over every labelled image: fold f is the test split,
            // validation is carved from the other folds.
            let mut pool = std::mem::take(&mut folder.train);
            pool.append(&mut folder.val);
            pool.append(&mut folder.test);
            folder.test = hold_out_fold(&mut pool, |i| i.label, k, f, seed)?;
            let ys: Vec<usize> = pool.iter().map(|i| i.label).collect();
            let (_, held) = stratified_split(&ys, d.val_ratio, seed ^ 2)?;
            folder.val = take(&mut pool, &held);
            folder.train = pool;
        }
        let train = subset(folder.train, |i| i.label, d.limit_train, seed)?;
        let val = subset(folder.val, |i| i.label, d.limit_eval, seed)?;
        let (test, split) = if folder.test.is_empty() {
            (val.clone(), "val")
        } else {
            (subset(folder.test, |i| i.label, d.limit_test.or(d.limit_eval), seed)?, "test")
        };
        let mut t = ImageTask::new(engine, model, train, val, classes, recipe.augment.clone(), spec)?;
        t.label_smoothing = recipe.train.label_smoothing;
        Ok(Built {
            task: TaskBox::Image(t),
            labels: Some(folder.labels),
            test: TestSet::Images(test),
            test_split: split,
            report,
            tokenizer: None,
        })
    }

    /// A labelled table of texts (with optional test/val tables, folds, a source task to
    /// retain) with a text classifier.
    fn texts(&self, skipped: &mut Vec<String>) -> Result<Built> {
        let (engine, recipe, kind, progress) = (self.engine, self.recipe, self.kind, self.progress);
        let (d, seed, policy) = (&recipe.data, self.seed(), self.policy());
        let table = |path: &Path, column: &str, labels: Option<LabelMap>| -> Result<TextTable> {
            TextTable::open(
                path,
                &TableOptions {
                    text: column.to_string(),
                    text_pair: d.text_pair.clone(),
                    label: Some(d.label.clone()),
                    labels,
                    policy,
                    ..Default::default()
                },
            )
        };
        let train_table = table(&d.train, &d.text, None)?;
        let labels = train_table.labels.clone();
        skipped.extend(train_table.skipped.iter().map(|s| s.to_string()));
        let eval_column = d.eval_text.as_deref().unwrap_or(&d.text);
        let mut rest = train_table.items;
        let label_of = |t: &TextItem| t.label.unwrap_or(0);
        let carve = |rest: &mut Vec<TextItem>, ratio: f64, salt: u64| -> Result<Vec<TextItem>> {
            let ys: Vec<usize> = rest.iter().map(label_of).collect();
            let (_, held) = stratified_split(&ys, ratio, seed ^ salt)?;
            Ok(take(rest, &held))
        };
        let (test, split) = match (&d.test, d.folds.zip(d.fold)) {
            (_, Some((k, f))) => (hold_out_fold(&mut rest, label_of, k, f, seed)?, "test"),
            (Some(p), None) => {
                let t = table(p, eval_column, Some(labels.clone()))?;
                skipped.extend(t.skipped.iter().map(|s| s.to_string()));
                (t.items, "test")
            }
            (None, None) if d.test_ratio > 0.0 => (carve(&mut rest, d.test_ratio, 1)?, "test"),
            (None, None) => (Vec::new(), "val"),
        };
        let val = match &d.val {
            Some(p) if d.folds.is_none() => {
                let t = table(p, eval_column, Some(labels.clone()))?;
                skipped.extend(t.skipped.iter().map(|s| s.to_string()));
                t.items
            }
            _ if d.folds.is_some() => carve(&mut rest, d.val_ratio, 2)?,
            _ => carve(&mut rest, d.val_ratio / (1.0 - d.test_ratio), 2)?,
        };
        let train = subset(rest, label_of, d.limit_train, seed)?;
        let val = subset(val, label_of, d.limit_eval, seed)?;
        let test = if split == "val" {
            val.clone()
        } else {
            subset(test, label_of, d.limit_test.or(d.limit_eval), seed)?
        };
        let classes = labels.len();
        let (model, report, source) = match &recipe.source {
            None => {
                let (m, r) = load_model(engine, recipe, kind, Some(classes), progress)?;
                (m, r, None)
            }
            Some(src) => {
                let (m, r, kept) = with_source_head(engine, recipe, src, kind, classes, &policy, progress)?;
                (m, r, Some(kept))
            }
        };
        let tok = tokenizer_for(recipe)?;
        let mut t = TextTask::new(engine, model, tok.clone(), train, val, classes, d.max_len)?;
        t.label_smoothing = recipe.train.label_smoothing;
        if let Some(kept) = source {
            let labels = kept.labels.clone();
            t.source = Some(kept);
            if let Some(l) = recipe.train.lwf {
                t.record_teacher(l.weight, l.temperature)?;
            }
            if let (Some(e), Some(src)) = (recipe.train.ewc, &recipe.source) {
                let path = src
                    .train
                    .as_ref()
                    .ok_or_else(|| Error::arg("recipe", "train.ewc estimates its Fisher on source.train"))?;
                let table = source_table(recipe, src, path, Some(labels), &policy, true)?;
                let items = subset(table.items, label_of, Some(e.items), seed)?;
                t.estimate_ewc(e.lambda, &items)?;
            }
        }
        Ok(Built {
            task: TaskBox::Text(t),
            labels: Some(labels),
            test: TestSet::Texts(test),
            test_split: split,
            report,
            tokenizer: Some(tok),
        })
    }

    /// A text corpus cut into blocks, with a decoder language model.
    fn corpus(&self) -> Result<Built> {
        let (engine, recipe, kind, progress) = (self.engine, self.recipe, self.kind, self.progress);
        let d = &recipe.data;
        let (model, report) = load_model(engine, recipe, kind, None, progress)?;
        let tok = tokenizer_for(recipe)?;
        let corpus = crate::data::corpus::Corpus::open(&d.train, &tok)?;
        let (mut train, val) = corpus.split(d.max_len, d.val_ratio);
        if let Some(n) = d.limit_train {
            train.truncate(n);
        }
        let val: Vec<Range<usize>> = match d.limit_eval {
            Some(n) => val.into_iter().take(n).collect(),
            None => val,
        };
        let vocab = match model.vocab_size() {
            Some(v) if model.is_causal_lm() => v,
            _ => {
                let names = crate::models::registry::causal_lm_names();
                return Err(Error::arg(
                    "recipe",
                    format!("data.kind = \"corpus\" needs a causal language model ({names})"),
                ));
            }
        };
        let t = LmTask::new(engine, model, corpus.tokens, train, val.clone(), vocab)?;
        Ok(Built {
            task: TaskBox::Lm(t),
            labels: None,
            test: TestSet::Blocks(val),
            test_split: "val",
            report,
            tokenizer: Some(tok),
        })
    }
}

/// A seeded, stratified subset of at most `limit` items (all when `None` or not smaller).
fn subset<T>(items: Vec<T>, label: impl Fn(&T) -> usize, limit: Option<usize>, seed: u64) -> Result<Vec<T>> {
    match limit {
        Some(n) if n < items.len() => {
            if n == 0 {
                return Err(Error::arg("recipe", "data.limit_train / limit_eval must be >= 1"));
            }
            let ys: Vec<usize> = items.iter().map(&label).collect();
            let (_, chosen) = stratified_split(&ys, n as f64 / items.len() as f64, seed ^ 0x5eed)?;
            let mut slots: Vec<Option<T>> = items.into_iter().map(Some).collect();
            Ok(chosen.iter().filter_map(|&i| slots.get_mut(i).and_then(Option::take)).collect())
        }
        _ => Ok(items),
    }
}

/// A labelled table of the source task, read with its columns (default: the target's); `train`
/// picks `source.train_text` when set.
fn source_table(
    recipe: &Recipe,
    src: &SourceSection,
    path: &Path,
    labels: Option<LabelMap>,
    policy: &SkipPolicy,
    train: bool,
) -> Result<TextTable> {
    let d = &recipe.data;
    let column = src.train_text.clone().filter(|_| train).or_else(|| src.text.clone());
    TextTable::open(
        path,
        &TableOptions {
            text: column.or_else(|| d.eval_text.clone()).unwrap_or_else(|| d.text.clone()),
            text_pair: d.text_pair.clone(),
            label: Some(src.label.clone().unwrap_or_else(|| d.label.clone())),
            labels,
            policy: *policy,
            ..Default::default()
        },
    )
}

/// Load the checkpoint with its source-task head, keep that head aside, and give the model a
/// fresh head of `classes` outputs for the new task. The source labels come from the run
/// folder's `labels.json` beside the checkpoint when there is one (the order the head was
/// trained with), else from the source table.
#[allow(clippy::too_many_arguments)] // until the model registry (issue 18) owns loading
fn with_source_head(
    engine: &Engine,
    recipe: &Recipe,
    src: &SourceSection,
    kind: ModelKind,
    classes: usize,
    policy: &SkipPolicy,
    progress: bool,
) -> Result<(zoo::AnyModel, BindingReport, SourceHead)> {
    let saved = recipe.model.path.join("labels.json");
    let fixed = if saved.is_file() { Some(LabelMap::load(&saved)?) } else { None };
    let table = source_table(recipe, src, &src.test, fixed.clone(), policy, false)?;
    let labels = fixed.unwrap_or_else(|| table.labels.clone());
    let seed = recipe.data.split_seed.unwrap_or(recipe.train.seed);
    let test = subset(table.items, |t| t.label.unwrap_or(0), src.limit, seed)?;
    let init_seed = recipe.train.seed;
    let (mut model, report) = load_model(engine, recipe, kind, Some(labels.len()), progress)?;
    let name = src.name.clone().unwrap_or_else(|| src.test.display().to_string());
    let kept = SourceHead::capture(model.params(), name, labels, test)?;
    model.replace_head(classes, init_seed)?;
    Ok((model, report, kept))
}

/// Remove the items at the sorted positions `held` from `items` and return them, in order.
fn take<T>(items: &mut Vec<T>, held: &[usize]) -> Vec<T> {
    let mut slots: Vec<Option<T>> = std::mem::take(items).into_iter().map(Some).collect();
    let out = held.iter().filter_map(|&i| slots.get_mut(i).and_then(Option::take)).collect();
    *items = slots.into_iter().flatten().collect();
    out
}

/// Fold `f` of a stratified `k`-fold split of `items` (by `split_seed`), removed from `items`.
/// The folds depend only on the labels and the seed, so every strategy and training seed of a
/// comparison holds out the same items.
fn hold_out_fold<T>(
    items: &mut Vec<T>,
    label: impl Fn(&T) -> usize,
    k: usize,
    f: usize,
    seed: u64,
) -> Result<Vec<T>> {
    let ys: Vec<usize> = items.iter().map(label).collect();
    let folds = crate::data::split::kfold(&ys, k, seed ^ 0xf01d)?;
    let fold = folds
        .get(f)
        .ok_or_else(|| Error::arg("recipe", format!("data.fold {f} of {k} folds (folds count from 0)")))?;
    Ok(take(items, &fold.test))
}

/// The recipe's tokenizer: `model.tokenizer`, else `<model dir>/tokenizer.json`, else the
/// tokenizer embedded in a GGUF file.
fn tokenizer_for(recipe: &Recipe) -> Result<TextTokenizer> {
    let m = &recipe.model;
    if let Some(t) = &m.tokenizer {
        return TextTokenizer::from_file(t);
    }
    if m.path.is_dir() {
        return TextTokenizer::from_file(&m.path.join("tokenizer.json"));
    }
    if m.path.extension().is_some_and(|e| e == "gguf") {
        return TextTokenizer::from_gguf(&m.path);
    }
    let beside = m.path.parent().unwrap_or(Path::new(".")).join("tokenizer.json");
    TextTokenizer::from_file(&beside)
}

impl Prepared {
    /// LoRA and L2-SP (freezing and plans are the driver's, every epoch).
    fn apply_adaptation(&mut self, recipe: &Recipe) -> Result<()> {
        let t = &recipe.train;
        let head = self.head.clone();
        let family = self.kind.architecture().family;
        let task = self.task.as_task();
        if recipe.model.init == "scratch" {
            reinitialise(task.params_mut(), family, t.seed)?;
        }
        if let Some(l) = &t.lora {
            let cfg = LoraConfig {
                rank: l.rank,
                alpha: l.alpha,
                targets: Select::parse(&l.targets)?,
                freeze_base: true,
                train_also: Some(head),
                seed: t.seed,
            };
            crate::nn::lora::apply(task.params_mut(), &cfg)?;
        }
        if let Some([alpha, beta]) = t.l2sp {
            let r = L2Sp::new(task.params(), alpha, beta)?;
            match &mut self.task {
                TaskBox::Image(t) => t.l2sp = Some(r),
                TaskBox::Text(t) => t.l2sp = Some(r),
                TaskBox::Lm(t) => t.l2sp = Some(r),
            }
        }
        Ok(())
    }

    /// Optimizer steps in the whole run.
    pub fn total_steps(&self, recipe: &Recipe) -> u64 {
        let t = &recipe.train;
        let per_epoch = self.train_len.div_ceil(t.batch_size * t.grad_accum).max(1) as u64;
        let by_epochs = per_epoch * t.epochs as u64;
        t.max_steps.map_or(by_epochs, |m| if t.epochs == 0 { m } else { m.min(by_epochs) })
    }

    /// The optimizer the recipe describes.
    pub fn optim_config(&self, recipe: &Recipe) -> Result<OptimConfig> {
        let t = &recipe.train;
        let total = self.total_steps(recipe);
        let method = match t.optimizer.as_str() {
            "adamw" => Method::ADAMW,
            "adam" => Method::ADAM,
            _ => Method::Sgd { momentum: t.momentum, dampening: 0.0, nesterov: t.nesterov },
        };
        let schedule = match t.schedule.as_str() {
            "constant" => Schedule::Constant,
            "cosine" => Schedule::Cosine { total, min_factor: 0.0 },
            "exponential" => Schedule::Exponential { gamma: 0.95 },
            "step" => Schedule::Step { step_size: (total / 3).max(1), gamma: 0.1 },
            "one-cycle" => Schedule::OneCycle { total, pct_start: 0.3, div_factor: 25.0, final_div: 1e4 },
            _ => Schedule::Linear { total, end_factor: 0.0 },
        };
        let warmup =
            if t.warmup_steps > 0 { t.warmup_steps } else { (t.warmup_ratio * total as f64).round() as u64 };
        let schedule = if warmup > 0 { schedule.with_warmup(warmup) } else { schedule };
        let mut cfg = OptimConfig::new(method, t.lr).weight_decay(t.weight_decay).schedule(schedule);
        for (i, g) in t.groups.iter().enumerate() {
            let mut spec = GroupSpec::new(&format!("group{i}:{}", g.select), Select::parse(&g.select)?);
            if let Some(lr) = g.lr {
                spec = spec.lr(lr);
            }
            if let Some(wd) = g.weight_decay {
                spec = spec.weight_decay(wd);
            }
            cfg = cfg.group(spec);
        }
        if let Some(f) = t.layer_decay {
            cfg = cfg.layer_lr(LayerLr::Decay { factor: f });
        } else if let Some(lowest) = t.discriminative {
            cfg = cfg.layer_lr(LayerLr::Discriminative { lowest });
        }
        if let Some(c) = t.clip {
            cfg = cfg.clip(c);
        }
        // Newly unfrozen groups (gradual unfreezing, LP-FT) warm up over a tenth of an epoch.
        cfg.rejoin_warmup = (self.total_steps(recipe) / t.epochs.max(1) as u64 / 10).max(1);
        Ok(cfg)
    }

    /// The driver settings the recipe describes.
    pub fn driver_config(&self, recipe: &Recipe, progress: bool) -> DriverConfig {
        let t = &recipe.train;
        let mut c = DriverConfig::new(recipe.output.dir.clone());
        c.epochs = t.epochs;
        c.max_steps = t.max_steps;
        c.batch_size = t.batch_size;
        c.grad_accum = t.grad_accum;
        c.eval_every = t.eval_every;
        c.seed = t.seed;
        c.dropout_in_frozen = t.dropout_in_frozen;
        c.max_bad_steps = t.max_bad_steps;
        c.split_batches = t.split_batches;
        c.checkpoint_every = t.checkpoint_every;
        c.progress = progress;
        c.resume = if recipe.output.resume { Resume::IfSame } else { Resume::Fresh };
        c.early_stop = t.early_stop.as_ref().map(|e| EarlyStop {
            metric: e.metric.clone(),
            higher_is_better: !matches!(
                e.metric.as_str(),
                "loss" | "perplexity" | "log_loss" | "ece" | "mse" | "mae" | "rmse"
            ),
            patience: e.patience,
            min_delta: e.min_delta,
        });
        let head = self.head.clone();
        c.plan = if t.lora.is_some() {
            // The base stays frozen; adapters and the head train.
            Plan::LinearProbe { head: Select::Any(vec![head, Select::Glob("*.lora_[AB]".into())]) }
        } else {
            match t.plan.as_str() {
                "linear-probe" => Plan::LinearProbe { head },
                "lp-ft" => Plan::LpFt { head, probe_epochs: t.probe_epochs },
                "gradual" => match &self.task {
                    TaskBox::Image(x) => Plan::gradual_by_depth(x.model.params(), t.unfreeze_every),
                    TaskBox::Text(x) => Plan::gradual_by_depth(x.model.params(), t.unfreeze_every),
                    TaskBox::Lm(x) => Plan::gradual_by_depth(x.model.params(), t.unfreeze_every),
                },
                _ => Plan::Full,
            }
        };
        let freeze: Vec<Select> = t.freeze.iter().filter_map(|s| Select::parse(s).ok()).collect();
        c.freeze = (!freeze.is_empty()).then_some(Select::Any(freeze));
        c
    }

    /// "test", or "val" when the data has no test split and validation stands in.
    pub fn test_split(&self) -> &'static str {
        self.test_split
    }

    /// Class probabilities on the held-out split (classifiers; `None` otherwise).
    pub fn test_predictions(&mut self) -> Result<Option<crate::eval::Predictions>> {
        match (&mut self.task, &self.test) {
            (TaskBox::Image(t), TestSet::Images(items)) if !items.is_empty() => {
                let items = items.clone();
                Ok(Some(t.predict(&items)?))
            }
            (TaskBox::Text(t), TestSet::Texts(items)) if !items.is_empty() => Ok(Some(t.predict(items)?)),
            _ => Ok(None),
        }
    }

    /// Why the model predicts what it does for the first `n` held-out items: gradient × input
    /// over tokens (text) or gradient saliency over pixels (images); empty for language models.
    pub fn attributions(&self, n: usize, title: &str) -> Result<Vec<crate::report::results::Attribution>> {
        let names: Vec<String> = self.labels.as_ref().map(|l| l.names().to_vec()).unwrap_or_default();
        match (&self.task, &self.test) {
            (TaskBox::Text(t), TestSet::Texts(items)) => {
                let n = n.min(items.len());
                super::attribute::text_attributions(t, &items[..n], &names, title)
            }
            (TaskBox::Image(t), TestSet::Images(items)) => {
                let n = n.min(items.len());
                super::attribute::image_attributions(t, &items[..n], &names, title)
            }
            _ => Ok(Vec::new()),
        }
    }

    /// The source task's predictions on its held-out items through the current body (a
    /// `[source]` recipe only).
    pub fn source_predictions(&self) -> Result<Option<(String, crate::eval::Predictions)>> {
        match &self.task {
            TaskBox::Text(t) => match (&t.source, t.source_predictions()?) {
                (Some(s), Some(p)) => Ok(Some((s.name.clone(), p))),
                _ => Ok(None),
            },
            _ => Ok(None),
        }
    }

    /// Metrics with intervals on the held-out split (`None` when there is none).
    pub fn test_evaluation(&mut self, name: &str, resamples: usize, seed: u64) -> Result<Option<Evaluation>> {
        let split = format!("{name} ({})", self.test_split);
        if let Some(p) = self.test_predictions()? {
            return Ok(Some(evaluation(&split, &p, resamples, seed)?));
        }
        match self.test_block_losses()? {
            // Per-block losses, resampled: an interval on perplexity over held-out text.
            Some(losses) => Ok(Some(Evaluation {
                split,
                items: losses.len(),
                metrics: crate::eval::lm_metrics(&losses, resamples, super::LEVEL, seed)?,
            })),
            None => Ok(None),
        }
    }

    /// The mean token loss of every held-out block (causal LMs; `None` otherwise).
    pub fn test_block_losses(&mut self) -> Result<Option<Vec<f64>>> {
        match (&mut self.task, &self.test) {
            (TaskBox::Lm(t), TestSet::Blocks(blocks)) if !blocks.is_empty() => {
                Ok(Some(blocks.iter().map(|b| t.mean_loss(std::slice::from_ref(b))).collect::<Result<_>>()?))
            }
            _ => Ok(None),
        }
    }

    /// A continuation of `[generate] prompt` (causal LMs only).
    pub fn sample(&mut self, recipe: &Recipe) -> Result<Option<String>> {
        let g = &recipe.generate;
        let (TaskBox::Lm(t), Some(tok)) = (&mut self.task, &self.tokenizer) else { return Ok(None) };
        if g.prompt.is_empty() {
            return Ok(None);
        }
        let prompt = tok.encode(&g.prompt, false)?;
        let sampling = g.sampling();
        let opts = Generate {
            max_new_tokens: g.max_new_tokens,
            sampling,
            seed: recipe.train.seed,
            eos: tok.eos_id(),
        };
        let lm = t.model.causal_lm(crate::nn::Mode::EVAL)?;
        let out = generate(lm, &prompt, &opts)?;
        Ok(Some(format!("{}{}", g.prompt, tok.decode(&out, true)?)))
    }

    /// Write the model folder: weights under the checkpoint's key names, plus what a Hugging
    /// Face loader needs beside them.
    pub fn export(&mut self, dir: &Path) -> Result<Exported> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let is_gguf = self.model_path.extension().is_some_and(|e| e == "gguf");
        let source = if is_gguf { None } else { Some(crate::weights::open(&self.model_path)?) };
        let params = self.task.as_task().params();
        let out = export::export_safetensors(
            params,
            &self.report,
            source.as_deref(),
            &dir.join("model.safetensors"),
        )?;
        // config.json: the source's (classifier labels added), or one derived from the GGUF.
        let config = if is_gguf {
            Some(crate::weights::gguf_llama::GgufLlama::open(&self.model_path)?.config().to_json())
        } else if self.model_path.is_dir() && self.model_path.join("config.json").is_file() {
            let p = self.model_path.join("config.json");
            let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
            Some(serde_json::from_str(&text).map_err(|e| Error::Format {
                path: p.display().to_string(),
                line: Some(e.line()),
                message: e.to_string(),
            })?)
        } else {
            None
        };
        if let Some(mut cfg) = config {
            if let (Some(labels), Some(obj)) = (&self.labels, cfg.as_object_mut()) {
                let id2label: serde_json::Map<String, serde_json::Value> = labels
                    .names()
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (i.to_string(), n.clone().into()))
                    .collect();
                let label2id: serde_json::Map<String, serde_json::Value> =
                    labels.names().iter().enumerate().map(|(i, n)| (n.clone(), i.into())).collect();
                obj.insert("id2label".into(), id2label.into());
                obj.insert("label2id".into(), label2id.into());
                if let Some(class) = self.kind.architecture().hf_classifier {
                    obj.insert("architectures".into(), serde_json::json!([class]));
                }
            }
            let text = serde_json::to_string_pretty(&cfg).map_err(|e| Error::arg("export", e.to_string()))?;
            crate::train::checkpoint::replace_atomically(&dir.join("config.json"), text.as_bytes())?;
        }
        if let Some(tok) = &self.tokenizer {
            let p = dir.join("tokenizer.json");
            tok.inner().save(&p, false).map_err(|e| Error::io(&p, std::io::Error::other(e.to_string())))?;
        }
        if let Some(labels) = &self.labels {
            labels.save(&dir.join("labels.json"))?;
        }
        Ok(out)
    }
}
