//! The zoo by name: one entry point that binds a checkpoint to a model kind and returns the
//! model with its binding report (used by `whet inspect --model` and the training driver).

use std::path::Path;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::models::bert::{Bert, BertConfig, BertTask};
use crate::models::efficientnet::EfficientNetLite;
use crate::models::gpt2::{Gpt2, Gpt2Config};
use crate::models::llama::{Llama, LlamaConfig};
use crate::models::resnet::ResNet;
use crate::models::vgg::Vgg;
use crate::nn::{BindingReport, Params};

/// Model families the zoo binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    ResNet,
    Vgg,
    EfficientNetLite,
    Bert,
    Gpt2,
    Llama,
}

impl std::str::FromStr for ModelKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "resnet" => ModelKind::ResNet,
            "vgg" => ModelKind::Vgg,
            "efficientnet" | "efficientnetlite" => ModelKind::EfficientNetLite,
            "bert" => ModelKind::Bert,
            "gpt2" => ModelKind::Gpt2,
            "llama" | "smollm2" => ModelKind::Llama,
            _ => {
                return Err(Error::arg(
                    "model",
                    format!("unknown model '{s}' (resnet, vgg, efficientnet-lite, bert, gpt2, llama)"),
                ))
            }
        })
    }
}

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
