//! What every architecture answers, as one trait: its parameters, its row of facts in the
//! registry, and the heads and hooks the tasks, strategies, attribution and export ask for.
//! `run/` holds models as `Box<dyn Model>` ([`AnyModel`](crate::models::zoo::AnyModel)) and
//! never asks which architecture it holds.
//!
//! A model implements what it can do and leaves the rest to the defaults, which refuse with a
//! typed error naming the architecture ("vgg is not a causal language model").

use std::any::Any;
use std::path::Path;

use crate::data::image::ImageSpec;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::models::bert::{BertInput, BertOutput};
use crate::models::decoder::CausalLm;
use crate::models::registry::{Architecture, ModelKind};
use crate::nn::{BindingReport, Mode, Origin, Params, Select, Slot};
use crate::tensor::Tensor;

/// What a registry row's loader is asked for: bind the checkpoint at `path` (a file or a
/// directory) with a classifier of `classes` outputs (`None`: the checkpoint's own head, or no
/// head), fresh parameters drawn from `seed`.
#[derive(Clone, Copy)]
pub struct LoadSpec<'a> {
    pub engine: &'a Engine,
    pub path: &'a Path,
    pub classes: Option<usize>,
    pub seed: u64,
    /// Keep a checkpoint's block-quantized matrices quantized on the device (models that read
    /// GGUF files honour it; the run expands whatever trains).
    pub keep_quantized: bool,
}

impl LoadSpec<'_> {
    /// The path as error messages and binding reports name it.
    pub fn name(&self) -> String {
        self.path.display().to_string()
    }

    /// A Hugging Face directory's `config.json` and the name its errors give it.
    pub fn hf_config(&self) -> Result<(serde_json::Value, String)> {
        let dir = crate::weights::hf_dir::HfDir::open(self.path)?;
        Ok((dir.config().clone(), self.path.join("config.json").display().to_string()))
    }
}

/// A bound model and how its checkpoint bound.
pub type Loaded = (Box<dyn Model>, BindingReport);

/// A text encoder's hooks (BERT's today): the whole output of a tokenised batch (hidden
/// states, pooled features, logits), and the word vectors of its tokens, which gradient ×
/// input attribution multiplies with.
pub trait TextEncoder {
    fn hidden_size(&self) -> usize;
    fn encode(&self, input: &BertInput, mode: Mode) -> Result<BertOutput>;
    fn word_embeddings(&self, input: &BertInput) -> Result<Tensor>;
}

/// Lets `dyn Model` be downcast to the concrete model (tests and model-specific tools).
pub trait AsAny: Any {
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: Any> AsAny for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// The accessors every built-in model writes the same way, inside its `impl Model`: its
/// registry row and its `params` field.
macro_rules! model_basics {
    ($row:expr) => {
        fn architecture(&self) -> &'static $crate::models::registry::Architecture {
            &$row
        }
        fn params(&self) -> &$crate::nn::Params {
            &self.params
        }
        fn params_mut(&mut self) -> &mut $crate::nn::Params {
            &mut self.params
        }
    };
}
pub(crate) use model_basics;

/// One architecture's behaviour. The depth map that freezing, gradual unfreezing and layer-wise
/// learning rates use is set on the parameters at binding time (`Params::set_depths`).
pub trait Model: AsAny + Send {
    /// This model's row of the registry.
    fn architecture(&self) -> &'static Architecture;
    fn params(&self) -> &Params;
    fn params_mut(&mut self) -> &mut Params;

    /// The token vocabulary of a text model (`None` for image models).
    fn vocab_size(&self) -> Option<usize> {
        None
    }

    /// Class logits `[N, classes]` of normalised images `[N, 3, H, W]`.
    fn classify_images(&self, _x: &Tensor, _mode: Mode) -> Result<Tensor> {
        Err(self.cannot("classify_images", "an image model"))
    }

    /// How images are prepared for this model (`None` for text models): its registry row's,
    /// unless the checkpoint says otherwise (a ViT's `image_size`).
    fn own_image_spec(&self) -> Option<ImageSpec> {
        self.architecture().image_spec.clone()
    }

    /// The text encoder inside, for text classification, source-task heads and attribution.
    fn text_encoder(&self) -> Option<&dyn TextEncoder> {
        None
    }

    /// The model as a causal LM running in `mode` (dropout seeds for training).
    fn as_causal_lm(&mut self, _mode: Mode) -> Option<&dyn CausalLm> {
        None
    }

    /// Replace the classifier by a fresh one of `classes` outputs drawn from `seed`.
    fn replace_head(&mut self, _classes: usize, _seed: u64) -> Result<()> {
        Err(self.cannot("replace_head", "a model with a classification head"))
    }

    /// Recompute each block in backward instead of keeping its activations.
    fn set_activation_checkpointing(&mut self, _on: bool) -> Result<()> {
        Err(self.cannot("activation_checkpointing", "a model with checkpointed blocks (the llama family)"))
    }

    /// Activations in f16 (`train.precision = "mixed"`): every activation the model stores
    /// between kernels is f16, every sum inside a kernel f32, and trainable weights stay f32
    /// masters (used through f16 copies whose gradients return in f32). Needs an adapter with
    /// `SHADER_F16`.
    fn set_mixed_precision(&mut self, _on: bool) -> Result<()> {
        Err(self.cannot("precision = \"mixed\"", "a model with f16 activations (BERT and the llama family)"))
    }

    /// The typed refusal of the default methods.
    fn cannot(&self, what: &'static str, needs: &str) -> Error {
        Error::arg(what, format!("{} is not {needs}", self.architecture().name))
    }
}

/// The questions every caller asks of any model, answered from its registry row and trait.
impl dyn Model {
    pub fn kind(&self) -> ModelKind {
        ModelKind::of(self.architecture())
    }

    /// Whether `causal_lm()` gives a language model.
    pub fn is_causal_lm(&self) -> bool {
        self.architecture().causal_lm
    }

    /// How images are prepared for this model: input size and the normalisation its pretrained
    /// weights were trained with (`None` for text models).
    pub fn image_spec(&self) -> Option<ImageSpec> {
        self.own_image_spec()
    }

    /// The task head: what a linear probe trains. Freshly initialised parameters count as head
    /// too (BERT's pooler when the checkpoint has none).
    pub fn head_select(&self) -> Select {
        let named = self.architecture().head;
        let fresh: Vec<Select> = self
            .params()
            .entries()
            .iter()
            .filter(|e| e.origin == Origin::Fresh && e.slot == Slot::Param)
            .map(|e| Select::Prefix(e.path.clone()))
            .collect();
        Select::Any(std::iter::once(Select::Glob(named.into())).chain(fresh).collect())
    }

    /// The text encoder, or a typed error naming what `what` needed.
    pub fn text(&self, what: &'static str) -> Result<&dyn TextEncoder> {
        self.text_encoder().ok_or_else(|| self.cannot(what, "a text encoder"))
    }

    /// Class logits `[N, classes]` of a tokenised batch (a text encoder with a sequence head).
    pub fn classify_text(&self, input: &BertInput, mode: Mode) -> Result<Tensor> {
        self.text("classify_text")?.encode(input, mode)?.logits.ok_or_else(|| {
            Error::arg("classify_text", "the model has no classification head (load it with classes)")
        })
    }

    /// The text encoder's whole output of a tokenised batch.
    pub fn text_outputs(&self, input: &BertInput, mode: Mode) -> Result<BertOutput> {
        self.text("text_outputs")?.encode(input, mode)
    }

    /// The model as a causal LM running in `mode`, or a typed error.
    pub fn causal_lm(&mut self, mode: Mode) -> Result<&dyn CausalLm> {
        let name = self.architecture().name;
        self.as_causal_lm(mode)
            .ok_or_else(|| Error::arg("causal_lm", format!("{name} is not a causal language model")))
    }

    /// The concrete model, when it is a `T`.
    pub fn downcast_ref<T: Model>(&self) -> Option<&T> {
        self.as_any().downcast_ref()
    }

    pub fn downcast_mut<T: Model>(&mut self) -> Option<&mut T> {
        self.as_any_mut().downcast_mut()
    }
}

/// The activations' dtype for `train.precision = "mixed"` (`on`) or f32. Without SHADER_F16
/// the f32 kernels run unchanged (a warning says so): frozen matrices still sit in 16 bits,
/// since their kernels convert without it, and the driver still scales the loss.
pub(crate) fn activations_dtype(on: bool, engine: &crate::Engine) -> crate::tensor::DType {
    if on && !engine.has_f16() {
        log::warn!(
            "precision = \"mixed\": {} has no SHADER_F16; activations stay f32",
            engine.adapter_name()
        );
    }
    if on && engine.has_f16() {
        crate::tensor::DType::F16
    } else {
        crate::tensor::DType::F32
    }
}
