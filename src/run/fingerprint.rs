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
            // The table itself is a key too: `train.lora` going from null to a table is a
            // change of one key, not keys that appear (which would read as another build's).
            if !prefix.is_empty() {
                fp.set(format!("recipe.{prefix}"), "{table}");
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe(dir: &Path, train: &str) -> Recipe {
        let model = dir.join("model.safetensors");
        let data = dir.join("data.tsv");
        std::fs::write(&model, b"weights").unwrap();
        std::fs::write(&data, "text\tlabel\nhi\ta\n").unwrap();
        let text = format!(
            "[model]\nkind = \"bert\"\npath = \"{}\"\n[data]\nkind = \"text\"\ntrain = \"{}\"\n[train]\n{train}\n",
            model.display(),
            data.display()
        );
        Recipe::parse(&text, &dir.join("r.toml"), dir).unwrap()
    }

    #[test]
    fn a_table_appearing_is_a_change_of_its_key_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let plain = recipe_fingerprint(&recipe(dir.path(), "lr = 1e-4")).unwrap();
        let lora = recipe(dir.path(), "lr = 1e-4\nlora = { rank = 8, alpha = 16.0, targets = \"*query*\" }");
        let changes = recipe_fingerprint(&lora).unwrap().changes_from(&plain);
        let both_sides: Vec<String> =
            changes.iter().filter(|c| c.old.is_some() && c.new.is_some()).map(|c| c.to_string()).collect();
        assert_eq!(both_sides, ["recipe.train.lora: null → {table}"], "{changes:?}");
    }

    #[test]
    fn reporting_keys_do_not_count_and_length_keys_extend() {
        let dir = tempfile::tempdir().unwrap();
        let a = recipe_fingerprint(&recipe(dir.path(), "epochs = 2\ncheckpoint_every = 5")).unwrap();
        let b = recipe_fingerprint(&recipe(dir.path(), "epochs = 3\ncheckpoint_every = 7")).unwrap();
        let changes = b.changes_from(&a);
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert!(b.is_extendable(&changes[0].key), "{changes:?}");
        assert!(a.get("file.model.path").is_some_and(|d| d.contains("sha256")), "{a:?}");
    }
}
