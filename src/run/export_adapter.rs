//! `output.adapter_only`: the LoRA adapters (and a trained head) as a PEFT adapter folder that
//! `PeftModel.from_pretrained(base, dir)` loads as it is: `adapter_model.safetensors` and
//! `adapter_config.json`, written from PEFT's conventions (its `save_pretrained` output).
//!
//! Keys are `base_model.model.<module>.lora_A.weight` / `.lora_B.weight` (A `[r, in]`, B
//! `[out, r]`, PEFT's shapes whatever the base layout, GPT-2's Conv1D included) and, for a
//! trained head, `base_model.model.<module>.weight` with the module named in
//! `modules_to_save` (PEFT saves a wrapped module's weights under the module's own path).
//! `<module>` is the module's path in the model PEFT wraps: for a causal LM or a sequence
//! classifier that is the Hugging Face task class (`LlamaForCausalLM`,
//! `BertForSequenceClassification`), whose paths whet's models mirror (`model.layers.0…`,
//! `bert.encoder…`, `transformer.h…`), even where the checkpoint's own keys lack the prefix
//! (sentence-transformers BERT, GPT-2); otherwise it is the checkpoint's key.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::models::zoo::ModelKind;
use crate::nn::{BindingReport, Params, Select};
use crate::weights::WeightDType;

use super::export::{encode_float, export_keys, write_safetensors, Blob, Exported};

/// PEFT's file names.
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";
pub const ADAPTER_CONFIG: &str = "adapter_config.json";

/// PEFT's `task_type`, which picks the model class wrapped around the base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeftTask {
    CausalLm,
    SeqCls,
    FeatureExtraction,
    /// A model transformers has no task class for (torchvision's): no `task_type`.
    Custom,
}

impl PeftTask {
    /// The task of a `kind` model, with or without a classifier of labels.
    pub fn of(kind: ModelKind, classifier: bool) -> PeftTask {
        let arch = kind.architecture();
        match (arch.causal_lm, arch.hf_classifier, classifier) {
            (true, _, false) => PeftTask::CausalLm,
            // A decoder with a `score` head (`*ForSequenceClassification`).
            (true, _, true) => PeftTask::SeqCls,
            (false, Some(_), true) => PeftTask::SeqCls,
            (false, Some(_), false) => PeftTask::FeatureExtraction,
            (false, None, _) => PeftTask::Custom,
        }
    }

    fn name(self) -> Option<&'static str> {
        match self {
            PeftTask::CausalLm => Some("CAUSAL_LM"),
            PeftTask::SeqCls => Some("SEQ_CLS"),
            PeftTask::FeatureExtraction => Some("FEATURE_EXTRACTION"),
            PeftTask::Custom => None,
        }
    }

    /// Whether module paths are whet's model paths (the HF task class's) or checkpoint keys.
    fn uses_model_paths(self) -> bool {
        matches!(self, PeftTask::CausalLm | PeftTask::SeqCls)
    }
}

/// What the adapter is of, beyond its parameters.
pub struct AdapterSpec<'a> {
    pub task: PeftTask,
    /// `base_model_name_or_path`: the checkpoint the adapter applies to.
    pub base: &'a Path,
    /// The trained head (saved whole, as `modules_to_save`); `None`: no head.
    pub head: Option<&'a Select>,
    /// Float type of the saved tensors.
    pub dtype: WeightDType,
}

/// One adapted weight: its module path, rank, scale and A / B parameters.
struct Adapted {
    module: String,
    rank: usize,
    scale: f32,
    in_major: bool,
    a: Vec<f32>,
    b: Vec<f32>,
    a_shape: Vec<usize>,
    b_shape: Vec<usize>,
}

/// The module path of model path `path` (a `.weight` / `.bias`), as `task` names modules.
fn module_of(path: &str, keys: &BTreeMap<String, String>, task: PeftTask) -> String {
    let named = if task.uses_model_paths() { path } else { keys.get(path).map_or(path, String::as_str) };
    named.rsplit_once('.').map_or(named, |(m, _)| m).to_string()
}

fn adapted(params: &Params, keys: &BTreeMap<String, String>, task: PeftTask) -> Result<Vec<Adapted>> {
    let mut out = Vec::new();
    for (w, l) in params.loras() {
        let (a, b) = (params.get(l.a), params.get(l.b));
        let e = params.entry(w);
        out.push(Adapted {
            module: module_of(&e.path, keys, task),
            rank: a.shape()[0],
            scale: l.scale,
            in_major: e.in_major,
            a: a.to_vec()?,
            b: b.to_vec()?,
            a_shape: a.shape().to_vec(),
            b_shape: b.shape().to_vec(),
        });
    }
    if out.is_empty() {
        return Err(Error::arg("output.adapter_only", "the model has no LoRA adapters (set train.lora)"));
    }
    out.sort_by(|x, y| x.module.cmp(&y.module));
    Ok(out)
}

/// The head's parameters: (model path, module path), adapters and their weights excluded.
fn head_params(
    params: &Params,
    head: &Select,
    keys: &BTreeMap<String, String>,
    task: PeftTask,
) -> Result<Vec<(String, String)>> {
    let m = head.compile()?;
    let lora: std::collections::HashSet<usize> =
        params.loras().flat_map(|(w, l)| [w.0, l.a.0, l.b.0]).collect();
    Ok(params
        .entries()
        .iter()
        .enumerate()
        .filter(|(i, e)| !lora.contains(i) && m.matches(&e.path, e.depth))
        .map(|(_, e)| (e.path.clone(), module_of(&e.path, keys, task)))
        .collect())
}

/// Write the adapter folder `dir` (see the module docs).
pub fn export_adapter(
    params: &Params,
    report: &BindingReport,
    spec: &AdapterSpec,
    dir: &Path,
) -> Result<Exported> {
    let keys = export_keys(params, report);
    let adapters = adapted(params, &keys, spec.task)?;
    let heads = match spec.head {
        Some(h) => head_params(params, h, &keys, spec.task)?,
        None => Vec::new(),
    };
    let mut blobs: Vec<Blob> = Vec::new();
    for a in &adapters {
        for (side, values, shape) in [("lora_A", &a.a, &a.a_shape), ("lora_B", &a.b, &a.b_shape)] {
            let key = format!("base_model.model.{}.{side}.weight", a.module);
            let (st, bytes) = encode_float(&key, values, spec.dtype)?;
            blobs.push((key, st, shape.clone(), bytes));
        }
    }
    for (path, module) in &heads {
        let leaf = path.rsplit_once('.').map_or(path.as_str(), |(_, l)| l);
        let key = format!("base_model.model.{module}.{leaf}");
        let t = params.by_path(path)?;
        let (st, bytes) = encode_float(&key, &t.to_vec()?, spec.dtype)?;
        blobs.push((key, st, t.shape().to_vec(), bytes));
    }
    let modules: std::collections::BTreeSet<String> =
        params.entries().iter().map(|e| module_of(&e.path, &keys, spec.task)).collect();
    let config = adapter_config(&adapters, &heads, &modules, spec)?;
    let text = serde_json::to_string_pretty(&config).map_err(|e| Error::arg("export", e.to_string()))?;
    write_safetensors(&blobs, &dir.join(ADAPTER_WEIGHTS))?;
    crate::train::checkpoint::replace_atomically(&dir.join(ADAPTER_CONFIG), text.as_bytes())?;
    Ok(Exported {
        path: dir.join(ADAPTER_WEIGHTS),
        tensors: blobs.into_iter().map(|(k, _, s, _)| (k, s)).collect(),
    })
}

/// `target_modules`: the modules' last names (`["q_proj", "v_proj"]`, as PEFT users write them)
/// when those names pick exactly the adapted modules; otherwise their full paths (PEFT matches
/// a target equal to the whole module name too), so a LoRA on some layers only is not widened
/// to all of them.
fn target_modules(adapters: &[Adapted], all_modules: &std::collections::BTreeSet<String>) -> Vec<String> {
    let last = |m: &str| m.rsplit('.').next().unwrap_or(m).to_string();
    let names: std::collections::BTreeSet<String> = adapters.iter().map(|a| last(&a.module)).collect();
    let picked = all_modules.iter().filter(|m| names.contains(&last(m))).count();
    if picked == adapters.len() {
        names.into_iter().collect()
    } else {
        adapters.iter().map(|a| a.module.clone()).collect()
    }
}

fn adapter_config(
    adapters: &[Adapted],
    heads: &[(String, String)],
    all_modules: &std::collections::BTreeSet<String>,
    spec: &AdapterSpec,
) -> Result<serde_json::Value> {
    let first = &adapters[0];
    if let Some(odd) = adapters.iter().find(|a| a.rank != first.rank || a.scale != first.scale) {
        return Err(Error::arg(
            "output.adapter_only",
            format!(
                "{} has rank {} and scale {}, {} rank {} and scale {}: one adapter config covers one rank and alpha",
                odd.module, odd.rank, odd.scale, first.module, first.rank, first.scale
            ),
        ));
    }
    if let Some(a) = adapters.iter().find(|a| a.in_major != first.in_major) {
        return Err(Error::arg(
            "output.adapter_only",
            format!("{}: Conv1D and Linear targets mixed", a.module),
        ));
    }
    let mut saved: Vec<String> = heads.iter().map(|(_, m)| m.clone()).collect();
    saved.dedup();
    Ok(serde_json::json!({
        "peft_type": "LORA",
        "task_type": spec.task.name(),
        "base_model_name_or_path": spec.base.display().to_string(),
        "revision": null,
        "inference_mode": true,
        "auto_mapping": null,
        "r": first.rank,
        // whet keeps scale = alpha / r; PEFT recomputes it from these two.
        "lora_alpha": first.scale * first.rank as f32,
        "lora_dropout": 0.0,
        "target_modules": target_modules(adapters, all_modules),
        "bias": "none",
        "fan_in_fan_out": first.in_major,
        "modules_to_save": if saved.is_empty() { serde_json::Value::Null } else { saved.into() },
        "init_lora_weights": true,
        "layers_to_transform": null,
        "layers_pattern": null,
        "rank_pattern": {},
        "alpha_pattern": {},
    }))
}
