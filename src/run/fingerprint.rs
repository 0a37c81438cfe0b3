//! A recipe's fingerprint: what `whet train` compares with a run folder before resuming it.
//!
//! Every value of the resolved recipe counts (defaults filled in, paths absolute) except those
//! that only change what is reported or where: `[output]` (folder, resume, bootstrap
//! resamples), `[generate]` (the sample printed after training) and `train.checkpoint_every`
//! (checkpoints are bitwise resumable wherever they fall). `train.epochs` and
//! `train.max_steps` may change within a run: that extends it. The content of every file or
//! folder the recipe names (model, tokenizer, data, source task) is recorded too, so a model
//! file replaced under the same name is another run.

use std::path::Path;

use crate::error::{Error, Result};
use crate::run::Recipe;
use crate::train::fingerprint::Fingerprint;

/// Recipe keys that do not change the trained model.
const REPORTING_ONLY: [&str; 3] = ["output", "generate", "train.checkpoint_every"];
/// Recipe keys that set the run's length.
const LENGTH: [&str; 2] = ["train.epochs", "train.max_steps"];

/// The fingerprint of `recipe`: its values as `recipe.<key>` and its files as `file.<key>`.
pub fn recipe_fingerprint(recipe: &Recipe) -> Result<Fingerprint> {
    let value = serde_json::to_value(recipe).map_err(|e| Error::arg("recipe", e.to_string()))?;
    let mut fp = Fingerprint::new();
    flatten("", &value, &mut fp);
    let m = &recipe.model;
    let d = &recipe.data;
    let mut files: Vec<(&str, &Path)> = vec![("model.path", &m.path), ("data.train", &d.train)];
    files.extend(m.tokenizer.as_deref().map(|p| ("model.tokenizer", p)));
    files.extend(d.val.as_deref().map(|p| ("data.val", p)));
    files.extend(d.test.as_deref().map(|p| ("data.test", p)));
    if let Some(s) = &recipe.source {
        files.push(("source.test", &s.test));
        files.extend(s.train.as_deref().map(|p| ("source.train", p)));
    }
    for (key, path) in files {
        fp.file(format!("file.{key}"), path)?;
    }
    Ok(fp)
}

/// Tables become dotted keys; every other value is kept as compact JSON.
fn flatten(prefix: &str, v: &serde_json::Value, fp: &mut Fingerprint) {
    if REPORTING_ONLY.contains(&prefix) {
        return;
    }
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, v, fp);
            }
        }
        leaf => {
            let key = format!("recipe.{prefix}");
            if LENGTH.contains(&prefix) {
                fp.set_extendable(key, leaf.to_string());
            } else {
                fp.set(key, leaf.to_string());
            }
        }
    }
}
