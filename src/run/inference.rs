//! Using a finished run: load its exported model folder and classify images or texts, or
//! generate text (`whet predict`), or evaluate it again (`whet eval`).

use std::path::{Path, PathBuf};

use crate::data::image::{decode, eval_transform, ImageLimits, ImageSpec};
use crate::data::labels::LabelMap;
use crate::data::tokenize::{check_ids, TextTokenizer};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::models::decoder::{generate, Generate};
use crate::models::registry::ExportLayout;
use crate::models::zoo::{self, AnyModel, ModelKind};
use crate::nn::Mode;
use crate::tensor::Tensor;

use super::recipe::Recipe;

/// One prediction: (label, probability), most likely first.
pub type Ranked = Vec<(String, f32)>;

/// A fine-tuned model loaded from a run folder.
pub struct Trained {
    pub engine: Engine,
    pub recipe: Recipe,
    pub model: AnyModel,
    pub labels: Option<LabelMap>,
    pub tokenizer: Option<TextTokenizer>,
    pub spec: Option<ImageSpec>,
}

/// The exported model inside a run folder, as `zoo::load` takes it.
pub fn exported_model_path(run: &Path, kind: ModelKind) -> PathBuf {
    let dir = run.join("model");
    match kind.architecture().export {
        ExportLayout::File => dir.join("model.safetensors"),
        ExportLayout::HfDir => dir,
    }
}

/// `recipe.toml` of a run with the model path pointed at the run's own exported model.
pub fn run_recipe(run: &Path) -> Result<Recipe> {
    let path = run.join("recipe.toml");
    if !path.is_file() {
        return Err(Error::arg("run", format!("{} is not a run folder (no recipe.toml)", run.display())));
    }
    let mut recipe = Recipe::load(&path)?;
    let kind: ModelKind = recipe.model.kind.parse()?;
    let model = run.join("model");
    if model.join(super::export_adapter::ADAPTER_CONFIG).is_file()
        && !model.join("model.safetensors").is_file()
    {
        return Err(Error::Unsupported(format!(
            "{} holds a PEFT adapter only (output.adapter_only): load it with PEFT over {}, or export \
             the merged model (output.adapter_only = false) to use it with whet",
            model.display(),
            recipe.model.path.display()
        )));
    }
    recipe.model.path = exported_model_path(run, kind);
    recipe.model.tokenizer = Some(run.join("model").join("tokenizer.json")).filter(|p| p.is_file());
    recipe.output.dir = run.to_path_buf();
    // The export is the trained model with the new task's head: how it was trained (drawn
    // from scratch, the source task it kept, LwF / EWC) must not be applied to it again.
    recipe.model.init = "pretrained".into();
    recipe.source = None;
    recipe.train.lwf = None;
    recipe.train.ewc = None;
    Ok(recipe)
}

impl Trained {
    /// Load the run folder `run` (see [`crate::run`] for its layout).
    pub fn open(engine: &Engine, run: &Path) -> Result<Trained> {
        let recipe = run_recipe(run)?;
        let kind: ModelKind = recipe.model.kind.parse()?;
        let labels_path = run.join("labels.json");
        let labels = if labels_path.is_file() { Some(LabelMap::load(&labels_path)?) } else { None };
        let (model, _) = zoo::load(
            engine,
            &recipe.model.path,
            kind,
            labels.as_ref().map(LabelMap::len),
            recipe.train.seed,
        )?;
        let tokenizer = match &recipe.model.tokenizer {
            Some(p) => Some(TextTokenizer::from_file(p)?),
            None => None,
        };
        let mut spec = model.image_spec();
        if let (Some(s), Some(size)) = (spec.as_mut(), recipe.model.image_size) {
            *s = s.scaled(size);
        }
        Ok(Trained { engine: engine.clone(), recipe, model, labels, tokenizer, spec })
    }

    fn rank(&self, probs: &[f32]) -> Result<Ranked> {
        let labels =
            self.labels.as_ref().ok_or_else(|| Error::arg("predict", "the run has no labels.json"))?;
        let mut r: Ranked =
            probs.iter().enumerate().map(|(i, &p)| (labels.name(i).unwrap_or("?").to_string(), p)).collect();
        r.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(r)
    }

    fn softmax_rows(&self, logits: &Tensor) -> Result<Vec<Ranked>> {
        let k = logits.shape().last().copied().unwrap_or(1).max(1);
        let probs = logits.softmax()?.to_vec()?;
        probs.chunks(k).map(|row| self.rank(row)).collect()
    }

    /// Classify image files.
    pub fn classify_images(&self, paths: &[PathBuf]) -> Result<Vec<Ranked>> {
        let spec = self
            .spec
            .as_ref()
            .ok_or_else(|| Error::arg("predict", "the run's model is not an image model"))?;
        let _g = self.engine.no_grad();
        let s = spec.size as usize;
        let mut out = Vec::with_capacity(paths.len());
        for chunk in paths.chunks(super::tasks::IMAGE_EVAL_BATCH) {
            let mut flat = Vec::with_capacity(chunk.len() * 3 * s * s);
            for p in chunk {
                flat.extend(eval_transform(&decode(p, &ImageLimits::default())?, spec));
            }
            let x = Tensor::from_slice(&self.engine, &flat, &[chunk.len(), 3, s, s])?;
            out.extend(self.softmax_rows(&self.model.classify_images(&x, Mode::EVAL)?)?);
        }
        Ok(out)
    }

    /// Classify texts.
    pub fn classify_texts(&self, texts: &[String]) -> Result<Vec<Ranked>> {
        let tok = self.tokenizer.as_ref().ok_or_else(|| Error::arg("predict", "the run has no tokenizer"))?;
        // Image models have no vocabulary; a decoder's classify_text below says it is none.
        let vocab = self
            .model
            .vocab_size()
            .ok_or_else(|| Error::arg("predict", "the run's model is not a text classifier"))?;
        let _g = self.engine.no_grad();
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(super::tasks::EVAL_BATCH) {
            let items: Vec<(&str, Option<&str>)> = chunk.iter().map(|t| (t.as_str(), None)).collect();
            let b = tok.encode_batch(&items, self.recipe.data.max_len)?;
            check_ids(&b.ids, vocab, "token ids")?;
            let input = super::tasks::text::bert_input(&b);
            out.extend(self.softmax_rows(&self.model.classify_text(&input, Mode::EVAL)?)?);
        }
        Ok(out)
    }

    /// Continue `prompt` with the run's `[generate]` settings (`max_new_tokens` overrides).
    pub fn generate(&mut self, prompt: &str, max_new_tokens: Option<usize>) -> Result<String> {
        let tok = self.tokenizer.as_ref().ok_or_else(|| Error::arg("predict", "the run has no tokenizer"))?;
        let g = &self.recipe.generate;
        let ids = tok.encode(prompt, false)?;
        let sampling = g.sampling();
        let opts = Generate {
            max_new_tokens: max_new_tokens.unwrap_or(g.max_new_tokens),
            sampling,
            seed: self.recipe.train.seed,
            eos: tok.eos_id(),
        };
        let new = generate(self.model.causal_lm(Mode::EVAL)?, &ids, &opts)?;
        Ok(format!("{prompt}{}", tok.decode(&new, true)?))
    }
}
