//! Export a fine-tuned model under the ORIGINAL framework's key names, as a folder PyTorch /
//! transformers (and whet) load back: `model.safetensors` (+ `config.json` and `tokenizer.json`
//! for Hugging Face models). Pretrained tensors keep the checkpoint key they were bound from;
//! new ones (the head) get the model's path, with the same prefix rewrite the checkpoint used
//! (a sentence-transformers BERT has no `bert.` prefix, so neither does its exported pooler).
//! Tensors the model does not use but the checkpoint had (`num_batches_tracked`,
//! `position_ids`) are copied through, so the key set equals the source's, head aside.
//! LoRA adapters are merged into their base weights first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, TensorView};

use crate::error::{Error, Result};
use crate::nn::{BindingReport, Params};
use crate::weights::{WeightDType, WeightSource};

/// What was written.
#[derive(Debug, Clone)]
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

/// Write `params` (LoRA merged) to `path` as safetensors under the checkpoint's key names,
/// copying through the checkpoint's ignored tensors from `source`. The file is written to a
/// temporary name, synced and renamed, so a crash never leaves a partial `model.safetensors`.
pub fn export_safetensors(
    params: &Params,
    report: &BindingReport,
    source: Option<&dyn WeightSource>,
    path: &Path,
) -> Result<Exported> {
    let keys = export_keys(params, report);
    let lora_side: std::collections::HashSet<String> = params
        .loras()
        .flat_map(|(_, l)| [params.entry(l.a).path.clone(), params.entry(l.b).path.clone()])
        .collect();
    let mut blobs: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (model_path, t) in crate::nn::lora::merged(params)? {
        if lora_side.contains(&model_path) {
            continue;
        }
        let key = keys.get(&model_path).cloned().unwrap_or(model_path);
        let data = t.to_vec()?;
        if data.iter().any(|v| !v.is_finite()) {
            return Err(Error::arg("export", format!("{key} holds non-finite values; refusing to export")));
        }
        blobs.push((key, Dtype::F32, t.shape().to_vec(), bytemuck::cast_slice(&data).to_vec()));
    }
    if let Some(src) = source {
        let infos = src.tensors();
        for name in &report.ignored {
            let Some(info) = infos.iter().find(|i| &i.name == name) else { continue };
            let (vals, shape) = src.read_f32(name)?;
            let (dtype, bytes) = match info.dtype {
                WeightDType::I64 => (Dtype::I64, vals.iter().flat_map(|&v| (v as i64).to_le_bytes()).collect()),
                WeightDType::I32 => (Dtype::I32, vals.iter().flat_map(|&v| (v as i32).to_le_bytes()).collect()),
                _ => (Dtype::F32, bytemuck::cast_slice(&vals).to_vec()),
            };
            blobs.push((name.clone(), dtype, shape, bytes));
        }
    }
    let mut views = Vec::with_capacity(blobs.len());
    for (k, dtype, shape, bytes) in &blobs {
        let v = TensorView::new(*dtype, shape.clone(), bytes)
            .map_err(|e| Error::arg("export", format!("{k}: {e}")))?;
        views.push((k.clone(), v));
    }
    let mut meta = std::collections::HashMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    let bytes = safetensors::tensor::serialize(views, Some(meta))
        .map_err(|e| Error::arg("export", format!("{}: {e}", path.display())))?;
    crate::train::checkpoint::replace_atomically(path, &bytes)?;
    Ok(Exported {
        path: path.to_path_buf(),
        tensors: blobs.into_iter().map(|(k, _, s, _)| (k, s)).collect(),
    })
}
