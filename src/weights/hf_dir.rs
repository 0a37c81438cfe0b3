//! A Hugging Face model directory: `config.json` plus the weights, looked for in this order:
//! `model.safetensors`, the sharded `model.safetensors.index.json` (its `weight_map` names a
//! shard per tensor), then `pytorch_model.bin` (read by [`super::torch`]).
//!
//! A sharded index is checked completely when the directory is opened: every shard it names
//! is a plain file name inside the directory and exists, every key it maps is in that shard,
//! and every tensor of every shard is mapped to that shard, so a load never finds out halfway.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::safetensors::SafeTensorsFile;
use super::torch::TorchFile;
use super::{format_err, TensorInfo, WeightSource};
use crate::error::{Error, Result};

enum Weights {
    Single(SafeTensorsFile),
    Sharded {
        shards: Vec<SafeTensorsFile>,
        /// Tensor name → shard index, and the tensor list in index order.
        map: HashMap<String, usize>,
        order: Vec<TensorInfo>,
    },
    Torch(TorchFile),
}

/// An opened HF model directory.
pub struct HfDir {
    path: PathBuf,
    config: serde_json::Value,
    weights: Weights,
}

pub(crate) fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Format {
        path: path.display().to_string(),
        line: Some(e.line()),
        message: format!("not valid JSON: {e}"),
    })
}

impl HfDir {
    /// Open the model directory `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let cfg_path = dir.join("config.json");
        if !cfg_path.is_file() {
            return Err(format_err(dir, "not a Hugging Face model directory: no config.json"));
        }
        let config = read_json(&cfg_path)?;
        if !config.is_object() {
            return Err(format_err(&cfg_path, "config.json is not a JSON object"));
        }
        let single = dir.join("model.safetensors");
        let index = dir.join("model.safetensors.index.json");
        let bin = dir.join("pytorch_model.bin");
        let weights = if single.is_file() {
            Weights::Single(SafeTensorsFile::open(&single)?)
        } else if index.is_file() {
            open_sharded(dir, &index)?
        } else if bin.is_file() {
            Weights::Torch(TorchFile::open(&bin)?)
        } else {
            return Err(format_err(
                dir,
                "no weights: expected model.safetensors, model.safetensors.index.json or pytorch_model.bin",
            ));
        };
        Ok(HfDir { path: dir.to_path_buf(), config, weights })
    }

    /// `config.json`, as parsed.
    pub fn config(&self) -> &serde_json::Value {
        &self.config
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The files the weights come from.
    pub fn weight_files(&self) -> Vec<PathBuf> {
        match &self.weights {
            Weights::Single(f) => vec![f.path().to_path_buf()],
            Weights::Sharded { shards, .. } => shards.iter().map(|s| s.path().to_path_buf()).collect(),
            Weights::Torch(t) => vec![t.path().to_path_buf()],
        }
    }
}

fn open_sharded(dir: &Path, index: &Path) -> Result<Weights> {
    let v = read_json(index)?;
    let err = |m: String| format_err(index, m);
    let wm =
        v.get("weight_map").and_then(|w| w.as_object()).ok_or_else(|| err("no weight_map object".into()))?;
    let mut shard_names: Vec<&str> = Vec::new();
    let mut shard_index: HashMap<&str, usize> = HashMap::new();
    let mut map = HashMap::new();
    for (k, f) in wm {
        let f = f.as_str().ok_or_else(|| err(format!("weight_map['{k}'] is not a string")))?;
        // A shard must be a file beside the index: no paths out of the directory.
        if f.is_empty() || f.contains('/') || f.contains('\\') || f == "." || f == ".." {
            return Err(err(format!("weight_map['{k}'] names '{f}', not a file in the directory")));
        }
        let i = *shard_index.entry(f).or_insert_with(|| {
            shard_names.push(f);
            shard_names.len() - 1
        });
        map.insert(k.clone(), i);
    }
    if map.is_empty() {
        return Err(err("weight_map is empty".into()));
    }
    let mut shards = Vec::new();
    for f in &shard_names {
        let p = dir.join(f);
        if !p.is_file() {
            return Err(err(format!("shard '{f}' does not exist")));
        }
        shards.push(SafeTensorsFile::open(&p)?);
    }
    let mut order = Vec::new();
    for (i, s) in shards.iter().enumerate() {
        for t in s.tensors() {
            match map.get(&t.name) {
                Some(&j) if j == i => order.push(t),
                Some(&j) => {
                    return Err(err(format!(
                        "'{}' is in shard '{}' but weight_map says '{}'",
                        t.name, shard_names[i], shard_names[j]
                    )))
                }
                None => {
                    return Err(err(format!(
                        "'{}' in shard '{}' is not in weight_map",
                        t.name, shard_names[i]
                    )))
                }
            }
        }
    }
    if order.len() != map.len() {
        let have: std::collections::HashSet<&str> = order.iter().map(|t| t.name.as_str()).collect();
        let missing = map.iter().find(|(k, _)| !have.contains(k.as_str()));
        return Err(err(match missing {
            Some((k, &i)) => format!("weight_map maps '{k}' to '{}', which does not hold it", shard_names[i]),
            None => "weight_map and the shards disagree".into(),
        }));
    }
    Ok(Weights::Sharded { shards, map, order })
}

impl WeightSource for HfDir {
    fn tensors(&self) -> Vec<TensorInfo> {
        match &self.weights {
            Weights::Single(f) => f.tensors(),
            Weights::Sharded { order, .. } => order.clone(),
            Weights::Torch(t) => t.tensors(),
        }
    }

    fn read_f32(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>)> {
        match &self.weights {
            Weights::Single(f) => f.read_f32(name),
            Weights::Sharded { shards, map, .. } => match map.get(name) {
                Some(&i) => shards[i].read_f32(name),
                None => Err(format_err(&self.path, format!("no tensor named '{name}'"))),
            },
            Weights::Torch(t) => t.read_f32(name),
        }
    }

    fn read_blocks(&self, name: &str) -> Result<Option<super::QuantBlocks>> {
        match &self.weights {
            Weights::Single(f) => f.read_blocks(name),
            Weights::Sharded { shards, map, .. } => match map.get(name) {
                Some(&i) => shards[i].read_blocks(name),
                None => Err(format_err(&self.path, format!("no tensor named '{name}'"))),
            },
            Weights::Torch(t) => t.read_blocks(name),
        }
    }
}
