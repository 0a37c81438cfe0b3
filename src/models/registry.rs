//! What whet knows about each architecture, in one table: the names a recipe may use, how its
//! weights are drawn from scratch, which parameters are the task head, how images are prepared
//! for it and how a run exports it. Everything outside `models/` asks this table (or the model
//! itself) and never compares kind names.
//!
//! Adding an architecture: its file under `models/` (config, loader, forward, heads), one
//! [`ModelKind`] variant, one row in [`ARCHITECTURES`] and its arms in `zoo.rs`, and its tests.

use crate::data::image::ImageSpec;
use crate::error::{Error, Result};
use crate::nn::init::Family;

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

/// How a run folder holds its exported model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportLayout {
    /// `model/model.safetensors` in the torchvision key layout.
    File,
    /// `model/` as a Hugging Face directory (config.json, model.safetensors, tokenizer.json).
    HfDir,
}

/// One architecture's facts.
#[derive(Debug, Clone)]
pub struct Architecture {
    pub kind: ModelKind,
    /// The recipe's `model.kind`, as printed.
    pub name: &'static str,
    /// Other spellings a recipe may use (compared without case, '-' or '_').
    pub aliases: &'static [&'static str],
    /// The initialisation rules of `model.init = "scratch"`.
    pub family: Family,
    /// The task head: what a linear probe trains (a glob over parameter paths).
    pub head: &'static str,
    /// How images are prepared for it; `None`: it takes text.
    pub image_spec: Option<ImageSpec>,
    pub export: ExportLayout,
    /// `architectures` of an exported classifier's config.json, where Hugging Face names one.
    pub hf_classifier: Option<&'static str>,
    /// A decoder that trains on a corpus (`data.kind = "corpus"`) and generates.
    pub causal_lm: bool,
    /// The weights `whet compare`'s LoRA strategy adapts (the attention's query and value
    /// projections, as PEFT's defaults); `None`: LoRA does not apply.
    pub lora_targets: Option<&'static str>,
}

/// The TF-Lite-friendly EfficientNet-Lite models take (x - 127) / 128, resized to 224 (no
/// 256 → 224 crop).
const LITE: ImageSpec =
    ImageSpec { size: 224, resize: 224, mean: [127.0 / 255.0; 3], std: [128.0 / 255.0; 3] };

pub const ARCHITECTURES: &[Architecture] = &[
    Architecture {
        kind: ModelKind::ResNet,
        name: "resnet",
        aliases: &[],
        family: Family::ConvNet,
        head: "fc.*",
        image_spec: Some(ImageSpec::IMAGENET),
        export: ExportLayout::File,
        causal_lm: false,
        lora_targets: None,
        hf_classifier: None,
    },
    Architecture {
        kind: ModelKind::Vgg,
        name: "vgg",
        aliases: &[],
        family: Family::ConvNet,
        head: "classifier.6.*",
        image_spec: Some(ImageSpec::IMAGENET),
        export: ExportLayout::File,
        causal_lm: false,
        lora_targets: None,
        hf_classifier: None,
    },
    Architecture {
        kind: ModelKind::EfficientNetLite,
        name: "efficientnet-lite",
        aliases: &["efficientnet"],
        family: Family::ConvNet,
        head: "_fc.*",
        image_spec: Some(LITE),
        export: ExportLayout::File,
        causal_lm: false,
        lora_targets: None,
        hf_classifier: None,
    },
    Architecture {
        kind: ModelKind::Bert,
        name: "bert",
        aliases: &[],
        family: Family::Transformer,
        head: "classifier.*",
        image_spec: None,
        export: ExportLayout::HfDir,
        causal_lm: false,
        lora_targets: Some("*.attention.self.{query,value}.weight"),
        hf_classifier: Some("BertForSequenceClassification"),
    },
    Architecture {
        kind: ModelKind::Gpt2,
        name: "gpt2",
        aliases: &[],
        family: Family::Transformer,
        head: "lm_head.*",
        image_spec: None,
        export: ExportLayout::HfDir,
        causal_lm: true,
        lora_targets: Some("*.attn.c_attn.weight"),
        hf_classifier: None,
    },
    Architecture {
        kind: ModelKind::Llama,
        name: "llama",
        aliases: &["smollm2"],
        family: Family::Transformer,
        head: "lm_head.*",
        image_spec: None,
        export: ExportLayout::HfDir,
        causal_lm: true,
        lora_targets: Some("*self_attn.{q_proj,v_proj}.weight"),
        hf_classifier: None,
    },
];

/// The names of the architectures that train on a corpus ("gpt2, llama"), for errors.
pub fn causal_lm_names() -> String {
    ARCHITECTURES.iter().filter(|a| a.causal_lm).map(|a| a.name).collect::<Vec<_>>().join(", ")
}

/// Names compare without case, '-' or '_' ("EfficientNet_Lite" is "efficientnet-lite").
fn canonical(s: &str) -> String {
    s.to_ascii_lowercase().replace(['-', '_'], "")
}

impl ModelKind {
    /// This kind's row of [`ARCHITECTURES`].
    pub fn architecture(self) -> &'static Architecture {
        // Every kind has a row (tests/model_registry.rs); the first row is never reached.
        ARCHITECTURES.iter().find(|a| a.kind == self).unwrap_or(&ARCHITECTURES[0])
    }
}

impl std::str::FromStr for ModelKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let want = canonical(s);
        ARCHITECTURES
            .iter()
            .find(|a| std::iter::once(&a.name).chain(a.aliases).any(|n| canonical(n) == want))
            .map(|a| a.kind)
            .ok_or_else(|| {
                let names: Vec<&str> = ARCHITECTURES.iter().map(|a| a.name).collect();
                Error::arg("model", format!("unknown model '{s}' ({})", names.join(", ")))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_and_alias_parses_to_its_row_and_nothing_else_does() {
        for a in ARCHITECTURES {
            assert_eq!(a.kind.architecture().name, a.name);
            for n in std::iter::once(&a.name).chain(a.aliases) {
                assert_eq!(n.parse::<ModelKind>().unwrap(), a.kind, "{n}");
                assert_eq!(n.to_uppercase().replace('-', "_").parse::<ModelKind>().unwrap(), a.kind, "{n}");
            }
        }
        let kinds: Vec<ModelKind> = ARCHITECTURES.iter().map(|a| a.kind).collect();
        let mut unique = kinds.clone();
        unique.dedup();
        assert_eq!(kinds, unique, "one row per kind");
        let err = "resnet50x".parse::<ModelKind>().unwrap_err().to_string();
        assert!(err.contains("resnet50x") && err.contains("efficientnet-lite, bert"), "{err}");
    }
}
