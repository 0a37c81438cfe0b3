//! Stage 2 of a run: the pretrained model loaded with a head for the data's classes, bound to
//! its items as the driver's [`Task`], and adapted as the recipe asks (scratch initialisation,
//! LoRA, L2-SP; freezing and unfreezing plans are the driver's, every epoch).

use std::ops::Range;
use std::path::Path;

use crate::data::image_folder::ImageItem;
use crate::data::labels::LabelMap;
use crate::data::skip::SkipPolicy;
use crate::data::table::{TableOptions, TextItem, TextTable};
use crate::data::tokenize::TextTokenizer;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::models::model::LoadSpec;
use crate::models::zoo::{self, AnyModel, ModelKind};
use crate::nn::init::reinitialise;
use crate::nn::lora::LoraConfig;
use crate::nn::{BindingReport, Params, Select};
use crate::progress::Phase;
use crate::tensor::QuantType;
use crate::train::driver::Task;
use crate::train::l2sp::L2Sp;
use crate::train::unfreeze::Plan;

use super::data::{skip_policy, split_seed, tokenizer_for, Items};
use super::recipe::{Recipe, SourceSection};
use super::splits::{subset, Splits};
use super::tasks::image::ImageTask;
use super::tasks::lm::LmTask;
use super::tasks::source::SourceHead;
use super::tasks::text::TextTask;

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

    /// The model being fine-tuned.
    pub fn model(&self) -> &AnyModel {
        match self {
            TaskBox::Image(t) => &t.model,
            TaskBox::Text(t) => &t.model,
            TaskBox::Lm(t) => &t.model,
        }
    }

    fn model_mut(&mut self) -> &mut AnyModel {
        match self {
            TaskBox::Image(t) => &mut t.model,
            TaskBox::Text(t) => &mut t.model,
            TaskBox::Lm(t) => &mut t.model,
        }
    }

    fn set_l2sp(&mut self, r: L2Sp) {
        match self {
            TaskBox::Image(t) => t.l2sp = Some(r),
            TaskBox::Text(t) => t.l2sp = Some(r),
            TaskBox::Lm(t) => t.l2sp = Some(r),
        }
    }
}

/// Held-out items of the final evaluation.
pub enum TestSet {
    Images(Vec<ImageItem>),
    Texts(Vec<TextItem>),
    Blocks(Vec<Range<usize>>),
}

/// A model bound to its data.
pub struct Built {
    pub task: TaskBox,
    /// The head's parameters, as the model names them before any adaptation.
    pub head: Select,
    pub test: TestSet,
    pub report: BindingReport,
    pub tokenizer: Option<TextTokenizer>,
}

impl Built {
    fn new(task: TaskBox, test: TestSet, report: BindingReport, tokenizer: Option<TextTokenizer>) -> Built {
        Built { head: task.model().head_select(), task, test, report, tokenizer }
    }
}

/// The model `recipe` names, bound to `items` (classes: `labels`) and adapted; with `progress`, a
/// spinner while a large checkpoint is read.
pub fn build(
    engine: &Engine,
    recipe: &Recipe,
    kind: ModelKind,
    items: Items,
    labels: Option<&LabelMap>,
    progress: bool,
) -> Result<Built> {
    let from = Loader { engine, recipe, kind, progress };
    let mut built = match items {
        Items::Images(s) => from.images(s, labels)?,
        Items::Texts(s) => from.texts(s, labels)?,
        Items::Blocks { tokens, tokenizer, splits } => from.blocks(tokens, tokenizer, splits)?,
    };
    adapt(&mut built.task, &built.head, recipe, kind)?;
    Ok(built)
}

/// What every task is built from.
struct Loader<'a> {
    engine: &'a Engine,
    recipe: &'a Recipe,
    kind: ModelKind,
    progress: bool,
}

impl Loader<'_> {
    /// The recipe's model with a head of `classes` outputs (`None`: the model's own), seeded
    /// by the training seed; a spinner or two lines while a large checkpoint is read and bound.
    fn model(&self, classes: Option<usize>) -> Result<(AnyModel, BindingReport)> {
        let r = self.recipe;
        let phase =
            Phase::begin(self.progress, format!("loading {} ({})", r.model.path.display(), r.model.kind));
        let spec = LoadSpec {
            engine: self.engine,
            path: &r.model.path,
            classes,
            seed: r.train.seed,
            keep_quantized: r.model.quantize != "none",
        };
        let loaded = zoo::load_spec(self.kind, &spec);
        phase.end();
        loaded
    }

    /// An image classifier at the model's input size (or `model.image_size`).
    fn images(&self, s: Splits<ImageItem>, labels: Option<&LabelMap>) -> Result<Built> {
        let recipe = self.recipe;
        let classes = labels.map_or(0, LabelMap::len);
        let (model, report) = self.model(Some(classes))?;
        let mut spec = model.image_spec().ok_or_else(|| {
            Error::arg("recipe", format!("model.kind '{}' is not an image model", recipe.model.kind))
        })?;
        if let Some(size) = recipe.model.image_size {
            spec = spec.scaled(size);
        }
        let task = ImageTask::builder(self.engine, model)
            .train(s.train)
            .val(s.val)
            .classes(classes)
            .augment(recipe.augment.clone())
            .spec(spec)
            .label_smoothing(recipe.train.label_smoothing)
            .build()?;
        Ok(Built::new(TaskBox::Image(task), TestSet::Images(s.test), report, None))
    }

    /// A text classifier; with a `[source]` section, the checkpoint's previous head is kept
    /// beside the new one (retention, LwF, EWC).
    fn texts(&self, s: Splits<TextItem>, labels: Option<&LabelMap>) -> Result<Built> {
        let recipe = self.recipe;
        let classes = labels.map_or(0, LabelMap::len);
        let (model, report, source) = match &recipe.source {
            None => {
                let (m, r) = self.model(Some(classes))?;
                (m, r, None)
            }
            Some(src) => {
                let (m, r, kept) = self.with_source_head(src, classes)?;
                (m, r, Some(kept))
            }
        };
        let tok = tokenizer_for(recipe)?;
        let mut task = TextTask::builder(self.engine, model, tok.clone())
            .train(s.train)
            .val(s.val)
            .classes(classes)
            .max_len(recipe.data.max_len)
            .label_smoothing(recipe.train.label_smoothing)
            .build()?;
        if let Some(kept) = source {
            self.keep_source(&mut task, kept)?;
        }
        Ok(Built::new(TaskBox::Text(task), TestSet::Texts(s.test), report, Some(tok)))
    }

    /// A causal language model over corpus blocks.
    fn blocks(&self, tokens: Vec<u32>, tok: TextTokenizer, s: Splits<Range<usize>>) -> Result<Built> {
        let (model, report) = self.model(None)?;
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
        let task =
            LmTask::builder(self.engine, model, tokens).train(s.train).val(s.val).vocab(vocab).build()?;
        Ok(Built::new(TaskBox::Lm(task), TestSet::Blocks(s.test), report, Some(tok)))
    }

    /// Load the checkpoint with its source-task head, keep that head aside, and give the model
    /// a fresh head of `classes` outputs for the new task. The source labels come from the run
    /// folder's `labels.json` beside the checkpoint when there is one (the order the head was
    /// trained with), else from the source table.
    fn with_source_head(
        &self,
        src: &SourceSection,
        classes: usize,
    ) -> Result<(AnyModel, BindingReport, SourceHead)> {
        let recipe = self.recipe;
        let saved = recipe.model.path.join("labels.json");
        let fixed = if saved.is_file() { Some(LabelMap::load(&saved)?) } else { None };
        let table = source_table(recipe, src, &src.test, fixed.clone(), &skip_policy(recipe), false)?;
        let labels = fixed.unwrap_or_else(|| table.labels.clone());
        let test = subset(table.items, |t| t.label.unwrap_or(0), src.limit, split_seed(recipe))?;
        let (mut model, report) = self.model(Some(labels.len()))?;
        let name = src.name.clone().unwrap_or_else(|| src.test.display().to_string());
        let kept = SourceHead::capture(model.params(), name, labels, test)?;
        model.replace_head(classes, recipe.train.seed)?;
        Ok((model, report, kept))
    }

    /// Hand the source head to `task` with the anti-forgetting terms the recipe asks for.
    fn keep_source(&self, task: &mut TextTask, kept: SourceHead) -> Result<()> {
        let recipe = self.recipe;
        let labels = kept.labels.clone();
        task.source = Some(kept);
        if let Some(l) = recipe.train.lwf {
            task.record_teacher(l.weight, l.temperature)?;
        }
        if let (Some(e), Some(src)) = (recipe.train.ewc, &recipe.source) {
            let path = src
                .train
                .as_ref()
                .ok_or_else(|| Error::arg("recipe", "train.ewc estimates its Fisher on source.train"))?;
            let table = source_table(recipe, src, path, Some(labels), &skip_policy(recipe), true)?;
            let items = subset(table.items, |t| t.label.unwrap_or(0), Some(e.items), split_seed(recipe))?;
            task.estimate_ewc(e.lambda, &items)?;
        }
        Ok(())
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

/// `model.quantize` once the first epoch's trainable set is known: weights that stay frozen for
/// the whole run are converted (`q8_0`, `q4_0`, `f16`, `bf16`) or keep the checkpoint's blocks (`keep`), and
/// every weight that trains is f32 (a later unfreeze expands its weights then).
fn settle_storage(params: &mut Params, head: &Select, recipe: &Recipe) -> Result<()> {
    let to = match recipe.model.quantize.as_str() {
        "q8_0" => Some(QuantType::Q8_0),
        "q4_0" => Some(QuantType::Q4_0),
        "f16" => Some(QuantType::F16),
        "bf16" => Some(QuantType::BF16),
        _ => None,
    };
    let mixed = recipe.train.precision == "mixed" && recipe.model.quantize == "keep";
    // An f32 model kept as it is needs no decision, and its trainable flags stay untouched
    // until the driver applies the plan (an EWC estimate, say, still sees every parameter).
    if to.is_none() && !mixed && !params.entries().iter().any(|e| e.tensor.quant_type().is_some()) {
        return Ok(());
    }
    let plan = super::settings::plan(&recipe.train, head.clone(), params);
    plan.apply(params, 0)?;
    // Mixed precision keeps weights that never train in f16, where a plan says which they are.
    let to = match to {
        None if mixed && matches!(plan, Plan::LinearProbe { .. }) => Some(QuantType::F16),
        to => to,
    };
    if let Some(qt) = to {
        if !matches!(plan, Plan::LinearProbe { .. }) {
            return Err(Error::arg(
                "recipe",
                format!(
                    "model.quantize = \"{}\" quantizes weights that stay frozen, but plan \"{}\" unfreezes them \
                     later; use LoRA or plan = \"linear-probe\", or model.quantize = \"keep\"",
                    qt.name(),
                    recipe.train.plan
                ),
            ));
        }
        params.quantize_frozen(qt)?;
    }
    params.expand_trainable()?;
    Ok(())
}

/// Scratch initialisation, LoRA and L2-SP.
fn adapt(task: &mut TaskBox, head: &Select, recipe: &Recipe, kind: ModelKind) -> Result<()> {
    let t = &recipe.train;
    let params = task.as_task().params_mut();
    if recipe.model.init == "scratch" {
        reinitialise(params, kind.architecture().family, t.seed)?;
    }
    if let Some(l) = &t.lora {
        let cfg = LoraConfig {
            rank: l.rank,
            alpha: l.alpha,
            targets: Select::parse(&l.targets)?,
            freeze_base: true,
            train_also: Some(head.clone()),
            seed: t.seed,
        };
        crate::nn::lora::apply(params, &cfg)?;
    }
    settle_storage(params, head, recipe)?;
    if t.activation_checkpointing {
        task.model_mut().set_activation_checkpointing(true)?;
    }
    if t.precision == "mixed" {
        task.model_mut().set_mixed_precision(true)?;
    }
    if let Some([alpha, beta]) = t.l2sp {
        let r = L2Sp::new(task.as_task().params(), alpha, beta)?;
        task.set_l2sp(r);
    }
    Ok(())
}
