//! What whet knows about each architecture, one row each: the names a recipe may use, how its
//! weights are drawn from scratch, which parameters are the task head, how images are prepared
//! for it, how a run exports it, and the loader that binds a checkpoint to it. Everything
//! outside `models/` asks a row (or the model, through [`Model`](crate::models::model::Model))
//! and never compares kind names: a `model.kind` string is parsed into a [`ModelKind`] once.
//!
//! Adding an architecture (the steps `CONTRIBUTING.md` counts):
//! 1. its file under `models/`: config, loader, forward, heads, depth map, an
//!    `impl Model` and its `pub static ARCHITECTURE: Architecture` row;
//! 2. one line in `BUILTIN`;
//! 3. its tests (parity against PyTorch from the shared fixtures).
//!
//! A host program (or a test) adds one at run time with [`register`], without touching whet:
//! `tests/model_plugin.rs` trains such a model through `whet::run::train`.

use std::path::Path;
use std::sync::RwLock;

use crate::data::image::ImageSpec;
use crate::error::{Error, Result};
use crate::models::model::{LoadSpec, Loaded};
use crate::models::{bert, bert_flavor, efficientnet, gpt2, llama, resnet, vgg, vit};
use crate::nn::init::Family;

/// How a run folder holds its exported model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportLayout {
    /// `model/model.safetensors` in the checkpoint's key layout.
    File,
    /// `model/` as a Hugging Face directory (config.json, model.safetensors, tokenizer.json).
    HfDir,
}

/// One architecture's facts.
#[derive(Debug)]
pub struct Architecture {
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
    /// What its checkpoints call it: `model_type` in a Hugging Face `config.json`,
    /// `general.architecture` in a GGUF file. A recipe without `model.kind` is matched by these.
    pub config_types: &'static [&'static str],
    /// Binds a checkpoint to this architecture.
    pub load: fn(&LoadSpec) -> Result<Loaded>,
}

/// The architectures whet ships, one line each.
static BUILTIN: [&Architecture; 9] = [
    &resnet::ARCHITECTURE,
    &vgg::ARCHITECTURE,
    &efficientnet::ARCHITECTURE,
    &bert::ARCHITECTURE,
    &bert_flavor::ROBERTA_ARCHITECTURE,
    &bert_flavor::DISTILBERT_ARCHITECTURE,
    &gpt2::ARCHITECTURE,
    &llama::ARCHITECTURE,
    &vit::ARCHITECTURE,
];

/// Rows a host program added with [`register`]. Rows are leaked: an architecture, once known,
/// stays known for the life of the process, so a [`ModelKind`] can be a plain reference.
static REGISTERED: RwLock<Vec<&'static Architecture>> = RwLock::new(Vec::new());

/// Every known architecture: the built-in ones, then the registered ones in order.
pub fn architectures() -> Vec<&'static Architecture> {
    let extra = REGISTERED.read().map(|r| r.clone()).unwrap_or_else(|p| p.into_inner().clone());
    BUILTIN.iter().copied().chain(extra).collect()
}

/// Add an architecture; its name and aliases must be new (compared as recipes compare them).
pub fn register(arch: Architecture) -> Result<ModelKind> {
    let mut rows = REGISTERED.write().unwrap_or_else(|p| p.into_inner());
    let known: Vec<&Architecture> = BUILTIN.iter().copied().chain(rows.iter().copied()).collect();
    for n in std::iter::once(&arch.name).chain(arch.aliases) {
        if let Some(a) = known.iter().find(|a| spells(a, n)) {
            return Err(Error::arg("register", format!("'{n}' already names the architecture {}", a.name)));
        }
    }
    let row: &'static Architecture = Box::leak(Box::new(arch));
    rows.push(row);
    Ok(ModelKind(row))
}

/// The names of the architectures that train on a corpus ("gpt2, llama"), for errors.
pub fn causal_lm_names() -> String {
    architectures().iter().filter(|a| a.causal_lm).map(|a| a.name).collect::<Vec<_>>().join(", ")
}

/// Names compare without case, '-' or '_' ("EfficientNet_Lite" is "efficientnet-lite").
fn canonical(s: &str) -> String {
    s.to_ascii_lowercase().replace(['-', '_'], "")
}

/// Whether `a` answers to `name` (its own name or an alias).
fn spells(a: &Architecture, name: &str) -> bool {
    let want = canonical(name);
    std::iter::once(&a.name).chain(a.aliases).any(|n| canonical(n) == want)
}

/// What the checkpoint at `path` says it is, and where it says so: `model_type` of a Hugging
/// Face directory's `config.json`, or `general.architecture` of a GGUF file. `None` for a file
/// that does not say (a torchvision state dict) or a path that does not exist.
pub fn declared_type(path: &Path) -> Result<Option<(String, String)>> {
    let config = path.join("config.json");
    if path.is_dir() && config.is_file() {
        let json = crate::weights::hf_dir::read_json(&config)?;
        let t = json.get("model_type").and_then(|v| v.as_str());
        return Ok(t.map(|t| (t.to_string(), format!("{} (model_type)", config.display()))));
    }
    if path.is_file() && crate::weights::gguf::is_gguf(path) {
        let g = crate::weights::gguf::GgufFile::open(path)?;
        let t = g.get_str("general.architecture").ok();
        return Ok(t.map(|t| (t.to_string(), format!("{} (general.architecture)", path.display()))));
    }
    Ok(None)
}

/// A model architecture, parsed once from a recipe's `model.kind` (or [`register`]ed): a handle
/// to its registry row.
#[derive(Clone, Copy)]
pub struct ModelKind(&'static Architecture);

impl ModelKind {
    /// The kind of a row.
    pub fn of(arch: &'static Architecture) -> ModelKind {
        ModelKind(arch)
    }

    /// The kind a name or alias spells ("bert", "SmolLM2"), or a typed error listing the known
    /// names.
    pub fn named(name: &str) -> Result<ModelKind> {
        let rows = architectures();
        rows.iter().find(|a| spells(a, name)).map(|a| ModelKind(a)).ok_or_else(|| {
            let names: Vec<&str> = rows.iter().map(|a| a.name).collect();
            Error::arg("model", format!("unknown model '{name}' ({})", names.join(", ")))
        })
    }

    /// The kind the checkpoint at `path` declares ([`declared_type`]); a declared type no row
    /// binds is an error naming it and the types whet knows.
    pub fn detect(path: &Path) -> Result<Option<ModelKind>> {
        let Some((t, source)) = declared_type(path)? else { return Ok(None) };
        let rows = architectures();
        if let Some(a) = rows.iter().find(|a| a.config_types.contains(&t.as_str())) {
            return Ok(Some(ModelKind(a)));
        }
        let known: Vec<String> = rows
            .iter()
            .flat_map(|a| a.config_types.iter().map(move |c| format!("{c} ({})", a.name)))
            .collect();
        Err(Error::arg(
            "model",
            format!("{source} is '{t}', which whet does not bind (it binds {})", known.join(", ")),
        ))
    }

    /// This kind's row.
    pub fn architecture(self) -> &'static Architecture {
        self.0
    }

    pub fn name(self) -> &'static str {
        self.0.name
    }
}

/// Kinds are their names: rows are never duplicated under one name ([`register`] refuses).
impl PartialEq for ModelKind {
    fn eq(&self, other: &Self) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for ModelKind {}

impl std::fmt::Debug for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.name)
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.name)
    }
}

impl std::str::FromStr for ModelKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        ModelKind::named(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_and_alias_parses_to_its_row_and_nothing_else_does() {
        let rows = architectures();
        for a in &rows {
            for n in std::iter::once(&a.name).chain(a.aliases) {
                assert_eq!(n.parse::<ModelKind>().unwrap().name(), a.name, "{n}");
                assert_eq!(n.to_uppercase().replace('-', "_").parse::<ModelKind>().unwrap().name(), a.name);
            }
        }
        let mut names: Vec<&str> = rows.iter().map(|a| a.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), rows.len(), "one row per name");
        let err = "resnet50x".parse::<ModelKind>().unwrap_err().to_string();
        assert!(err.contains("resnet50x") && err.contains("efficientnet-lite, bert"), "{err}");
    }

    #[test]
    fn a_name_or_alias_already_taken_is_refused() {
        let row = |name, aliases| Architecture {
            name,
            aliases,
            family: Family::ConvNet,
            head: "fc.*",
            image_spec: None,
            export: ExportLayout::File,
            hf_classifier: None,
            causal_lm: false,
            lora_targets: None,
            config_types: &[],
            load: |_| Err(Error::arg("test", "not loadable")),
        };
        let err = register(row("Res_Net", &[])).unwrap_err().to_string();
        assert!(err.contains("'Res_Net' already names the architecture resnet"), "{err}");
        let err = register(row("registry-test-new", &["smollm2"])).unwrap_err().to_string();
        assert!(err.contains("architecture llama"), "{err}");
        let kind = register(row("registry-test-ok", &[])).unwrap();
        assert_eq!("REGISTRY_TEST_OK".parse::<ModelKind>().unwrap(), kind);
    }
}
