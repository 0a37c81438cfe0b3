//! The recipe: one TOML file that says which pretrained model, which data, and how to fine-tune.
//! Every table rejects unknown keys, so a typo is an error naming the file and line rather than
//! a setting silently ignored. The resolved recipe (defaults filled in) is saved in the run folder.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::image::Augment;
use crate::error::{Error, Result};
use crate::models::registry::{self, ModelKind};
use crate::weights::hf_cache::{resolve_model_path, HfCache};

use super::recipe_keys::KeyLines;
use super::recipe_set::Override;

/// A whole recipe (see README.md, "Recipes", for complete examples).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub model: ModelSection,
    pub data: DataSection,
    #[serde(default)]
    pub train: TrainSection,
    #[serde(default)]
    pub augment: Augment,
    #[serde(default)]
    pub output: OutputSection,
    #[serde(default)]
    pub generate: GenerateSection,
    /// The task the checkpoint was already fine-tuned for (its head is kept beside the new
    /// one): retention is measured on it, and LwF / EWC protect it.
    #[serde(default)]
    pub source: Option<SourceSection>,
}

/// `[source]`: the checkpoint's previous task. The checkpoint must carry that task's head (a
/// `whet train` run folder's `model/` does; its `labels.json` fixes the label order). Text
/// classification models only.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSection {
    /// A held-out labelled table of the source task: retention is measured on it.
    pub test: PathBuf,
    /// Source training items, for the EWC Fisher (required with `train.ewc`).
    #[serde(default)]
    pub train: Option<PathBuf>,
    /// Text column (default: `data.eval_text`, else `data.text`).
    #[serde(default)]
    pub text: Option<String>,
    /// Text column of `train` when it differs (SST-2: `sentence` vs `content`).
    #[serde(default)]
    pub train_text: Option<String>,
    /// Label column (default: `data.label`).
    #[serde(default)]
    pub label: Option<String>,
    /// Measure retention on at most this many items (seeded, stratified).
    #[serde(default)]
    pub limit: Option<usize>,
    /// A name for the report, e.g. "SST-2 sentiment".
    #[serde(default)]
    pub name: Option<String>,
}

/// `[model]`: the pretrained checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// resnet, vgg, efficientnet-lite, bert, gpt2, llama (or a registered architecture). May be
    /// left out where the checkpoint says what it is (`config.json`'s `model_type`, GGUF's
    /// `general.architecture`); filled in when the recipe is read.
    #[serde(default)]
    pub kind: String,
    /// A checkpoint file (.safetensors, .pth, .gguf), a Hugging Face model directory, or a
    /// Hugging Face id (`org/name`, `org/name@revision`) found in the local Hugging Face cache.
    pub path: PathBuf,
    /// tokenizer.json for text models; default: `<path>/tokenizer.json`, or the GGUF's own.
    #[serde(default)]
    pub tokenizer: Option<PathBuf>,
    /// Input image size for image models (default: the model's own, 224).
    #[serde(default)]
    pub image_size: Option<u32>,
    /// Classifier dropout override (image models that have one).
    #[serde(default)]
    pub dropout: Option<f32>,
    /// `pretrained` (default) or `scratch`: the same architecture with every weight drawn
    /// afresh, the baseline that shows what pretraining is worth.
    #[serde(default = "default_init")]
    pub init: String,
    /// How frozen weights are stored on the device: `keep` (default: a GGUF's Q4_0 / Q4_1 /
    /// Q8_0 / Q4_K matrices stay in their blocks, and an f16 / bf16 checkpoint's matrices stay
    /// 16-bit, for the llama family; f32 checkpoints stay f32), `none` (everything expanded to
    /// f32), or `q8_0` / `q4_0` / `f16` / `bf16` (an f32 checkpoint's frozen matrices converted
    /// on load; needs weights that stay frozen: LoRA or `plan = "linear-probe"`). Weights that
    /// train are always f32.
    #[serde(default = "default_quantize")]
    pub quantize: String,
}

/// What the data is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataKind {
    /// One subfolder per class (train/val/test folders or a split ratio).
    ImageFolder,
    /// CSV, TSV or JSONL with a text column (and optional pair column) and a label column.
    Text,
    /// A plain-text corpus for causal-LM fine-tuning.
    Corpus,
}

/// `[data]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    pub kind: DataKind,
    /// Image root folder, training table, or corpus file.
    pub train: PathBuf,
    /// Validation table (text); default: `val_ratio` of `train`, stratified.
    #[serde(default)]
    pub val: Option<PathBuf>,
    /// Test table (text); default: `test_ratio` of `train` (or the image root's test folder).
    #[serde(default)]
    pub test: Option<PathBuf>,
    #[serde(default = "default_val_ratio")]
    pub val_ratio: f64,
    #[serde(default)]
    pub test_ratio: f64,
    /// Text column (text data).
    #[serde(default = "default_text")]
    pub text: String,
    /// Text column of the val/test tables when it differs (SST-2: `sentence` vs `content`).
    #[serde(default)]
    pub eval_text: Option<String>,
    /// Second text column for sentence pairs.
    #[serde(default)]
    pub text_pair: Option<String>,
    /// Label column (text data).
    #[serde(default = "default_label")]
    pub label: String,
    /// Longest token sequence (text) or block length (corpus).
    #[serde(default = "default_max_len")]
    pub max_len: usize,
    /// Use only this many training items (a seeded, stratified subset): data-scarce settings.
    #[serde(default)]
    pub limit_train: Option<usize>,
    /// Evaluate on at most this many validation items (seeded, stratified subset); also the
    /// test split's limit unless `limit_test` is set.
    #[serde(default)]
    pub limit_eval: Option<usize>,
    /// At most this many test items.
    #[serde(default)]
    pub limit_test: Option<usize>,
    /// Seed of the splits and subsets (default: `train.seed`); fixed across seeds by `whet
    /// compare` so every run is tested on the same items.
    #[serde(default)]
    pub split_seed: Option<u64>,
    /// List and skip bad items instead of failing before step 1.
    #[serde(default)]
    pub skip_bad: bool,
    /// Abort when more than this fraction of items is bad (with `skip_bad`).
    #[serde(default = "default_max_skipped")]
    pub max_skipped: f64,
    /// Stratified k-fold cross-validation: the labelled items (train, and test when carved from
    /// it) are cut into `folds` parts by `split_seed`; fold `fold` (0-based) is held out for
    /// testing and validation is carved from the rest. `whet compare --folds K` sets both.
    #[serde(default)]
    pub folds: Option<usize>,
    #[serde(default)]
    pub fold: Option<usize>,
}

/// `[train]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSection {
    pub epochs: usize,
    pub max_steps: Option<u64>,
    pub batch_size: usize,
    pub grad_accum: usize,
    /// Evaluate every N optimizer steps (default: every epoch).
    pub eval_every: Option<u64>,
    pub seed: u64,
    /// adamw, adam, sgd.
    pub optimizer: String,
    pub lr: f64,
    pub weight_decay: f32,
    pub momentum: f32,
    pub nesterov: bool,
    /// constant, linear, cosine, exponential, step, one-cycle.
    pub schedule: String,
    /// Linear warm-up steps (or a fraction of all steps with `warmup_ratio`).
    pub warmup_steps: u64,
    pub warmup_ratio: f64,
    /// Clip the global gradient norm.
    pub clip: Option<f32>,
    pub label_smoothing: f32,
    /// Paths kept frozen (globs, `re:` regexes, `depth:a-b`); e.g. ["embeddings.*", "depth:0-4"].
    pub freeze: Vec<String>,
    /// full, linear-probe, lp-ft, gradual.
    pub plan: String,
    /// LP-FT: epochs of head-only training first.
    pub probe_epochs: usize,
    /// Gradual unfreezing: epochs between unfreezing one more depth.
    pub unfreeze_every: usize,
    /// Layer-wise LR decay factor per depth from the head down (e.g. 0.8).
    pub layer_decay: Option<f64>,
    /// Discriminative LR: the lowest layer's LR as a fraction of `lr` (ULMFiT ranges).
    pub discriminative: Option<f64>,
    pub groups: Vec<GroupSection>,
    pub early_stop: Option<EarlyStopSection>,
    /// Keep dropout active inside frozen blocks (PyTorch's behaviour).
    pub dropout_in_frozen: bool,
    /// L2-SP: [alpha toward the pretrained weights, beta on new weights].
    pub l2sp: Option<[f32; 2]>,
    pub lora: Option<LoraSection>,
    /// Keep only each transformer block's input and recompute the block in backward: less
    /// activation memory for one more forward pass (decoders: llama family).
    pub activation_checkpointing: bool,
    /// Learning without forgetting: match the source head's softened outputs (needs `[source]`).
    pub lwf: Option<LwfSection>,
    /// Elastic weight consolidation toward the source task (needs `[source]` with `train`).
    pub ewc: Option<EwcSection>,
    /// Write a checkpoint every N steps (always at evaluations and at the end).
    pub checkpoint_every: Option<u64>,
    /// Consecutive non-finite steps before the run aborts.
    pub max_bad_steps: usize,
    /// Run a batch that does not fit the device as micro-batches with accumulation (on by
    /// default); off, it is an error naming the largest batch that fits.
    pub split_batches: bool,
    /// Data-parallel runs: batch norm normalises with the statistics of the global batch (summed
    /// over the ranks on the host, per layer and pass) instead of each rank's own.
    pub sync_batch_norm: bool,
    /// Dynamic loss scaling (PyTorch's GradScaler): present, the loss is scaled before the
    /// backward and an overflowing step is skipped with the scale halved.
    pub loss_scale: Option<LossScaleSection>,
    /// "f32", or "mixed": activations and frozen weights in f16, trainable weights and their
    /// optimizer state f32, every sum inside a kernel f32, dynamic loss scaling on unless
    /// `[train.loss_scale]` says otherwise (needs an adapter with SHADER_F16).
    pub precision: String,
}

impl Default for TrainSection {
    fn default() -> Self {
        TrainSection {
            epochs: 3,
            max_steps: None,
            batch_size: 16,
            grad_accum: 1,
            eval_every: None,
            seed: 0,
            optimizer: "adamw".into(),
            lr: 5e-5,
            weight_decay: 0.01,
            momentum: 0.9,
            nesterov: false,
            schedule: "linear".into(),
            warmup_steps: 0,
            warmup_ratio: 0.0,
            clip: Some(1.0),
            label_smoothing: 0.0,
            freeze: Vec::new(),
            plan: "full".into(),
            probe_epochs: 1,
            unfreeze_every: 1,
            layer_decay: None,
            discriminative: None,
            groups: Vec::new(),
            early_stop: None,
            dropout_in_frozen: true,
            l2sp: None,
            lora: None,
            activation_checkpointing: false,
            lwf: None,
            ewc: None,
            checkpoint_every: None,
            max_bad_steps: 5,
            split_batches: true,
            sync_batch_norm: false,
            loss_scale: None,
            precision: "f32".into(),
        }
    }
}

/// `[[train.groups]]`: its own learning rate / weight decay for the parameters it selects.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSection {
    pub select: String,
    #[serde(default)]
    pub lr: Option<f64>,
    #[serde(default)]
    pub weight_decay: Option<f32>,
}

/// `[train.early_stop]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarlyStopSection {
    /// A validation metric: accuracy, f1_macro, loss, perplexity...
    pub metric: String,
    pub patience: usize,
    #[serde(default)]
    pub min_delta: f64,
}

/// `[train.lora]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraSection {
    pub rank: usize,
    pub alpha: f32,
    /// Which linear weights get adapters (glob / `re:`).
    pub targets: String,
}

/// `[train.loss_scale]`: every key optional (PyTorch's defaults); powers of two keep an f32
/// run's steps exactly those of an unscaled one.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LossScaleSection {
    pub init: f32,
    pub growth_factor: f32,
    pub backoff_factor: f32,
    /// Finite steps in a row before the scale grows (0: never).
    pub growth_interval: u32,
}

impl Default for LossScaleSection {
    fn default() -> Self {
        let d = crate::train::loss_scale::LossScaleConfig::default();
        LossScaleSection {
            init: d.init,
            growth_factor: d.growth_factor,
            backoff_factor: d.backoff_factor,
            growth_interval: d.growth_interval,
        }
    }
}

impl LossScaleSection {
    pub fn config(&self) -> crate::train::loss_scale::LossScaleConfig {
        crate::train::loss_scale::LossScaleConfig {
            init: self.init,
            growth_factor: self.growth_factor,
            backoff_factor: self.backoff_factor,
            growth_interval: self.growth_interval,
        }
    }
}

/// `[train.lwf]`: loss += weight · T² · KL(teacher ‖ student) over the source head's outputs
/// at temperature T on the target items (Li & Hoiem 2016); the teacher is the checkpoint.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LwfSection {
    #[serde(default = "one")]
    pub weight: f32,
    #[serde(default = "two")]
    pub temperature: f32,
}

/// `[train.ewc]`: loss += λ/2 · Σ F (w − w_source)², F the diagonal Fisher of the source loss,
/// estimated one item at a time over `items` source training items.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EwcSection {
    pub lambda: f32,
    #[serde(default = "default_fisher_items")]
    pub items: usize,
}

fn one() -> f32 {
    1.0
}
fn two() -> f32 {
    2.0
}
fn default_fisher_items() -> usize {
    64
}
fn default_init() -> String {
    "pretrained".into()
}
fn default_quantize() -> String {
    "keep".into()
}

/// `[output]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputSection {
    /// The run folder; default `runs/<recipe file stem>` under the working directory, so two
    /// recipes never share a folder by accident.
    pub dir: PathBuf,
    /// Continue from the run folder's latest complete checkpoint.
    pub resume: bool,
    /// Bootstrap resamples for the confidence intervals of the final metrics.
    pub bootstrap: usize,
    /// Export only the LoRA adapters (and a trained head) as a PEFT adapter folder
    /// (`adapter_model.safetensors` + `adapter_config.json`) instead of the merged model.
    /// Needs `train.lora`.
    pub adapter_only: bool,
    /// Float type of the exported safetensors (model or adapter): f32, f16 or bf16.
    pub dtype: String,
    /// Also write `model/model.gguf` for llama.cpp, matrices as f16 or q8_0 (llama models).
    pub gguf: Option<String>,
}

impl Default for OutputSection {
    fn default() -> Self {
        // Empty: filled in from the recipe's file name by `Recipe::parse`.
        OutputSection {
            dir: PathBuf::new(),
            resume: true,
            bootstrap: 1000,
            adapter_only: false,
            dtype: "f32".into(),
            gguf: None,
        }
    }
}

/// `[generate]`: a sample after causal-LM fine-tuning.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GenerateSection {
    pub prompt: String,
    pub max_new_tokens: usize,
    /// greedy, top-k, top-p.
    pub sampling: String,
    pub top_k: usize,
    pub top_p: f32,
    pub temperature: f32,
}

impl Default for GenerateSection {
    fn default() -> Self {
        GenerateSection {
            prompt: String::new(),
            max_new_tokens: 40,
            sampling: "greedy".into(),
            top_k: 40,
            top_p: 0.9,
            temperature: 0.8,
        }
    }
}

impl GenerateSection {
    /// The decoding rule these settings name.
    pub fn sampling(&self) -> crate::models::decoder::Sampling {
        use crate::models::decoder::Sampling;
        match self.sampling.as_str() {
            "top-k" => Sampling::TopK { k: self.top_k, temperature: self.temperature },
            "top-p" => Sampling::TopP { p: self.top_p, temperature: self.temperature },
            _ => Sampling::Greedy,
        }
    }
}

fn default_val_ratio() -> f64 {
    0.1
}
fn default_text() -> String {
    "text".into()
}
fn default_label() -> String {
    "label".into()
}
fn default_max_len() -> usize {
    128
}
fn default_max_skipped() -> f64 {
    0.05
}

/// How a recipe is read beyond its text.
#[derive(Debug, Clone, Default)]
pub struct RecipeOptions {
    /// `key=value` overrides (`train.lr=3e-5`), checked like the file's own values.
    pub overrides: Vec<String>,
    /// Where `model.path = "org/name"` is looked up; `None`: ids are not resolved.
    pub hf_cache: Option<HfCache>,
}

impl Recipe {
    /// Parse `text` (named `path` in errors). Relative paths in the recipe are taken relative to
    /// `base` (the recipe's folder), so a recipe works from any working directory.
    pub fn parse(text: &str, path: &Path, base: &Path) -> Result<Recipe> {
        Recipe::parse_inner(text, path, base, None)
    }

    /// [`parse`](Self::parse) with `opts`: overrides applied to the text first (errors then name
    /// the file "with --set …"), Hugging Face ids in `model.path` looked up in the cache.
    pub fn parse_with(text: &str, path: &Path, base: &Path, opts: &RecipeOptions) -> Result<Recipe> {
        if opts.overrides.is_empty() {
            return Recipe::parse_inner(text, path, base, opts.hf_cache.as_ref());
        }
        let overrides: Vec<Override> =
            opts.overrides.iter().map(|o| Override::parse(o)).collect::<Result<_>>()?;
        let edited = super::recipe_set::apply(text, &overrides)?;
        let named = format!("{} with --set {}", path.display(), opts.overrides.join(" --set "));
        Recipe::parse_inner(&edited, Path::new(&named), base, opts.hf_cache.as_ref())
    }

    fn parse_inner(text: &str, path: &Path, base: &Path, cache: Option<&HfCache>) -> Result<Recipe> {
        let mut r: Recipe = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            Error::Format { path: path.display().to_string(), line, message: e.message().to_string() }
        })?;
        let rebase = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        let keys = KeyLines::parse(text, path)?;
        r.model.path = resolve_model_path(&r.model.path, base, cache)
            .map_err(|e| keys.error("model.path", format!(": {}", e.detail())))?;
        if let Some(t) = r.model.tokenizer.as_mut() {
            rebase(t);
        }
        rebase(&mut r.data.train);
        for p in [r.data.val.as_mut(), r.data.test.as_mut()].into_iter().flatten() {
            rebase(p);
        }
        if r.output.dir.as_os_str().is_empty() {
            let stem = path.file_stem().map_or("recipe".into(), |s| s.to_string_lossy().into_owned());
            let cwd = std::env::current_dir().map_err(|e| Error::io(".", e))?;
            r.output.dir = cwd.join("runs").join(stem);
        } else {
            rebase(&mut r.output.dir);
        }
        if let Some(src) = r.source.as_mut() {
            rebase(&mut src.test);
            if let Some(t) = src.train.as_mut() {
                rebase(t);
            }
        }
        r.validate(&keys)?;
        r.model.kind = model_kind(&r.model, &keys)?;
        super::recipe_check::check_export(&r, &keys)?;
        Ok(r)
    }

    /// Read and parse a recipe file.
    pub fn load(path: &Path) -> Result<Recipe> {
        Recipe::load_with(path, &RecipeOptions::default())
    }

    /// [`load`](Self::load) with overrides and a Hugging Face cache.
    pub fn load_with(path: &Path, opts: &RecipeOptions) -> Result<Recipe> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        Recipe::parse_with(&text, path, base, opts)
    }

    /// The resolved recipe as TOML (defaults filled in, paths absolute), saved in the run folder.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self).map_err(|e| Error::arg("recipe", e.to_string()))
    }

    /// Every value checked (see [`super::recipe_check`]); errors name the file, line and key.
    fn validate(&self, keys: &KeyLines) -> Result<()> {
        super::recipe_check::check(self, keys)
    }
}

/// `model.kind` as written, checked against what the checkpoint declares, or the declared kind
/// when the recipe names none. The name is kept as the recipe spelled it ("smollm2").
fn model_kind(m: &ModelSection, keys: &KeyLines) -> Result<String> {
    let declared =
        ModelKind::detect(&m.path).map_err(|e| keys.error("model.path", format!(": {}", e.detail())))?;
    if m.kind.is_empty() {
        return match declared {
            Some(k) => Ok(k.name().to_string()),
            None => {
                let names: Vec<&str> = registry::architectures().iter().map(|a| a.name).collect();
                let message = format!(
                    " is missing, and {} does not say what it is (no config.json model_type or GGUF \
                     architecture): set it to one of {}",
                    m.path.display(),
                    names.join(", ")
                );
                Err(keys.error("model.kind", message))
            }
        };
    }
    let kind: ModelKind =
        ModelKind::named(&m.kind).map_err(|e| keys.error("model.kind", format!(": {}", e.detail())))?;
    match declared {
        Some(d) if d != kind => Err(keys.error(
            "model.kind",
            format!(" = \"{}\", but {} is a {} checkpoint", m.kind, m.path.display(), d.name()),
        )),
        _ => Ok(m.kind.clone()),
    }
}
