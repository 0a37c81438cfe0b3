//! Downloading a model the local Hugging Face cache lacks (the `hub` feature), with `hf-hub`:
//! the files a Hugging Face directory needs are fetched into the cache in `huggingface_hub`'s
//! layout (blobs, `snapshots/<commit>/`, `refs/<revision>`), so the offline resolver then finds
//! them, and so does any other tool that reads that cache.
//!
//! What is fetched: the top-level JSON files (config, tokenizer, generation and preprocessing
//! settings), vocabularies (`*.txt`, `*.model`), and the weights as safetensors (every shard and
//! its index), or, only where a repository has no safetensors, its PyTorch `.bin` files. ONNX,
//! TensorFlow, Flax and GGUF variants and subfolders are left on the Hub.

use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Repo, RepoType};

use crate::error::{Error, Result};
use crate::weights::hf_cache::{HfCache, HfId};

/// Fetch `id` into `cache` from `endpoint` (`""`: hf-hub's default, the Hub).
pub fn download(cache: &HfCache, id: &HfId, endpoint: &str) -> Result<()> {
    let fail = |what: &str, e: hf_hub::api::sync::ApiError| {
        Error::arg("model.path", format!("{id}: downloading {what} from the Hugging Face Hub failed: {e}"))
    };
    let mut builder = ApiBuilder::new().with_cache_dir(cache.root.clone()).with_progress(false);
    if !endpoint.is_empty() {
        builder = builder.with_endpoint(endpoint.to_string());
    }
    let api = builder.build().map_err(|e| fail("the repository list", e))?;
    let repo = api.repo(Repo::with_revision(
        format!("{}/{}", id.org, id.name),
        RepoType::Model,
        id.revision.clone(),
    ));
    let info = repo.info().map_err(|e| fail("the repository's file list", e))?;
    let names: Vec<String> = info.siblings.into_iter().map(|s| s.rfilename).collect();
    let wanted = wanted_files(&names);
    if !wanted.iter().any(|f| f == "config.json") {
        return Err(Error::arg(
            "model.path",
            format!(
                "{id} on the Hub has no config.json (files: {}): not a transformers model",
                names.join(", ")
            ),
        ));
    }
    for file in &wanted {
        log::info!("downloading {id}: {file}");
        repo.get(file).map_err(|e| fail(file, e))?;
    }
    Ok(())
}

/// The files of a repository's `names` that whet reads (see the module docs).
pub fn wanted_files(names: &[String]) -> Vec<String> {
    let top = |n: &&String| !n.contains('/');
    let has_safetensors = names.iter().filter(top).any(|n| n.ends_with(".safetensors"));
    names
        .iter()
        .filter(top)
        .filter(|n| {
            let settings = n.ends_with(".json") && !n.ends_with(".bin.index.json");
            let vocab = n.ends_with(".txt") || n.ends_with(".model");
            let weights = if has_safetensors {
                n.ends_with(".safetensors")
            } else {
                n.ends_with(".bin") || n.ends_with(".bin.index.json")
            };
            settings || vocab || weights
        })
        .cloned()
        .collect()
}
