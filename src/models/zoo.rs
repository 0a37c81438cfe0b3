//! The zoo by name: one entry point that binds a checkpoint to a model kind and returns the
//! model with its binding report (used by `whet inspect --model` and the training driver).

use std::path::Path;

use crate::data::image::ImageSpec;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::models::bert::BertInput;
use crate::models::bert::{Bert, BertConfig, BertTask};
use crate::models::decoder::CausalLm;
use crate::models::efficientnet::EfficientNetLite;
use crate::models::gpt2::{Gpt2, Gpt2Config};
use crate::models::llama::{Llama, LlamaConfig};
pub use crate::models::registry::ModelKind;
use crate::models::resnet::ResNet;
use crate::models::vgg::Vgg;
use crate::nn::{BindingReport, Mode, Origin, Params, Select, Slot};
use crate::tensor::Tensor;

/// A bound model of any kind.
pub enum AnyModel {
    ResNet(ResNet),
    Vgg(Vgg),
    EfficientNetLite(EfficientNetLite),
    Bert(Bert),
    Gpt2(Gpt2),
    Llama(Llama),
}

impl AnyModel {
    pub fn params(&self) -> &Params {
        match self {
            AnyModel::ResNet(m) => &m.params,
            AnyModel::Vgg(m) => &m.params,
            AnyModel::EfficientNetLite(m) => &m.params,
            AnyModel::Bert(m) => &m.params,
            AnyModel::Gpt2(m) => &m.params,
            AnyModel::Llama(m) => &m.params,
        }
    }
}

fn config_json(path: &Path) -> Result<(serde_json::Value, String)> {
    let dir = crate::weights::hf_dir::HfDir::open(path)?;
    Ok((dir.config().clone(), path.join("config.json").display().to_string()))
}

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
    let name = path.display().to_string();
    Ok(match kind {
        ModelKind::Llama if path.is_file() => {
            let (m, r) = Llama::from_gguf(engine, path)?;
            (AnyModel::Llama(m), r)
        }
        ModelKind::Bert | ModelKind::Gpt2 | ModelKind::Llama => {
            let (cfg, cfg_name) = config_json(path)?;
            let src = crate::weights::open(path)?;
            match kind {
                ModelKind::Bert => {
                    let task = match classes {
                        Some(n) => BertTask::SequenceClassification { num_labels: n },
                        None => BertTask::Encoder,
                    };
                    let (m, r) = Bert::load(
                        engine,
                        src.as_ref(),
                        &name,
                        BertConfig::from_json(&cfg, &cfg_name)?,
                        task,
                        seed,
                    )?;
                    (AnyModel::Bert(m), r)
                }
                ModelKind::Gpt2 => {
                    let (m, r) =
                        Gpt2::load(engine, src.as_ref(), &name, Gpt2Config::from_json(&cfg, &cfg_name)?)?;
                    (AnyModel::Gpt2(m), r)
                }
                _ => {
                    let (m, r) =
                        Llama::load(engine, src.as_ref(), &name, LlamaConfig::from_json(&cfg, &cfg_name)?)?;
                    (AnyModel::Llama(m), r)
                }
            }
        }
        ModelKind::ResNet | ModelKind::Vgg | ModelKind::EfficientNetLite => {
            let src = crate::weights::open(path)?;
            match kind {
                ModelKind::ResNet => {
                    let (m, r) = ResNet::load(engine, src.as_ref(), &name, classes, seed)?;
                    (AnyModel::ResNet(m), r)
                }
                ModelKind::Vgg => {
                    let (m, r) = Vgg::load(engine, src.as_ref(), &name, classes, seed)?;
                    (AnyModel::Vgg(m), r)
                }
                _ => {
                    let (m, r) = EfficientNetLite::load(engine, src.as_ref(), &name, classes, seed)?;
                    (AnyModel::EfficientNetLite(m), r)
                }
            }
        }
    })
}

impl AnyModel {
    pub fn params_mut(&mut self) -> &mut Params {
        match self {
            AnyModel::ResNet(m) => &mut m.params,
            AnyModel::Vgg(m) => &mut m.params,
            AnyModel::EfficientNetLite(m) => &mut m.params,
            AnyModel::Bert(m) => &mut m.params,
            AnyModel::Gpt2(m) => &mut m.params,
            AnyModel::Llama(m) => &mut m.params,
        }
    }

    /// The token vocabulary of a text model (`None` for image models).
    pub fn vocab_size(&self) -> Option<usize> {
        match self {
            AnyModel::Bert(m) => Some(m.config.vocab_size),
            AnyModel::Gpt2(m) => Some(m.config.vocab_size),
            AnyModel::Llama(m) => Some(m.config.vocab_size),
            _ => None,
        }
    }

    /// Whether [`AnyModel::causal_lm`] gives a language model.
    pub fn is_causal_lm(&self) -> bool {
        self.kind().architecture().causal_lm
    }

    pub fn kind(&self) -> ModelKind {
        match self {
            AnyModel::ResNet(_) => ModelKind::ResNet,
            AnyModel::Vgg(_) => ModelKind::Vgg,
            AnyModel::EfficientNetLite(_) => ModelKind::EfficientNetLite,
            AnyModel::Bert(_) => ModelKind::Bert,
            AnyModel::Gpt2(_) => ModelKind::Gpt2,
            AnyModel::Llama(_) => ModelKind::Llama,
        }
    }

    /// The task head: what a linear probe trains. Freshly initialised parameters count as head
    /// too (BERT's pooler when the checkpoint has none).
    pub fn head_select(&self) -> Select {
        let named = self.kind().architecture().head;
        let fresh: Vec<Select> = self
            .params()
            .entries()
            .iter()
            .filter(|e| e.origin == Origin::Fresh && e.slot == Slot::Param)
            .map(|e| Select::Prefix(e.path.clone()))
            .collect();
        Select::Any(std::iter::once(Select::Glob(named.into())).chain(fresh).collect())
    }

    /// How images are prepared for this model: input size and the normalisation its pretrained
    /// weights were trained with (None for text models).
    pub fn image_spec(&self) -> Option<ImageSpec> {
        self.kind().architecture().image_spec.clone()
    }

    /// Class logits `[N, classes]` of normalised images `[N, 3, H, W]`.
    pub fn classify_images(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        match self {
            AnyModel::ResNet(m) => m.forward(x, mode),
            AnyModel::Vgg(m) => m.forward(x, mode),
            AnyModel::EfficientNetLite(m) => m.forward(x, mode),
            _ => Err(Error::arg("classify_images", format!("{:?} is not an image model", self.kind()))),
        }
    }

    /// Class logits `[N, classes]` of a tokenised batch (BERT with a sequence head).
    pub fn classify_text(&self, input: &BertInput, mode: Mode) -> Result<Tensor> {
        match self {
            AnyModel::Bert(m) => m.forward(input, mode)?.logits.ok_or_else(|| {
                Error::arg("classify_text", "the model has no classification head (load it with classes)")
            }),
            _ => Err(Error::arg("classify_text", format!("{:?} is not a text classifier", self.kind()))),
        }
    }

    /// BERT's whole output (hidden states, pooled features, logits) of a tokenised batch.
    pub fn text_outputs(&self, input: &BertInput, mode: Mode) -> Result<crate::models::bert::BertOutput> {
        match self {
            AnyModel::Bert(m) => m.forward(input, mode),
            _ => Err(Error::arg("text_outputs", format!("{:?} is not a text encoder", self.kind()))),
        }
    }

    /// The model as a causal LM running in `mode` (dropout seeds for training).
    pub fn causal_lm(&mut self, mode: Mode) -> Result<&dyn CausalLm> {
        match self {
            AnyModel::Gpt2(m) => {
                m.mode = mode;
                Ok(m)
            }
            AnyModel::Llama(m) => {
                m.mode = mode;
                Ok(m)
            }
            _ => Err(Error::arg("causal_lm", format!("{:?} is not a causal language model", self.kind()))),
        }
    }

    /// Replace the classifier for `classes` outputs (image models and BERT).
    pub fn replace_head(&mut self, classes: usize, seed: u64) -> Result<()> {
        match self {
            AnyModel::ResNet(m) => m.replace_head(classes, seed),
            AnyModel::Vgg(m) => m.replace_head(classes, seed),
            AnyModel::EfficientNetLite(m) => m.replace_head(classes, seed),
            AnyModel::Bert(m) => {
                m.replace_head(BertTask::SequenceClassification { num_labels: classes }, seed)
            }
            _ => Err(Error::arg("replace_head", format!("{:?} has no classification head", self.kind()))),
        }
    }
}
