//! `--set key=value` on the command line: a recipe value replaced in the recipe's own text
//! before it is read, so an override is checked by exactly the rules of the file (range, type,
//! unknown keys), and its errors name the override. The text is edited in place (`toml_edit`
//! keeps every other line where it was), so an error about an overridden key points at the
//! line the key stands on.

use crate::error::{Error, Result};

/// One `key=value`: a dotted key path and a TOML value. A value that is not TOML (`adamw`,
/// `runs/x`) is taken as a string, so plain words need no quotes.
#[derive(Debug, Clone)]
pub struct Override {
    pub key: Vec<String>,
    pub value: toml_edit::Value,
    /// As given, for error messages.
    pub text: String,
}

impl Override {
    pub fn parse(s: &str) -> Result<Override> {
        let bad = |why: &str| Error::arg("--set", format!("'{s}': {why}"));
        let (key, value) = s.split_once('=').ok_or_else(|| bad("expected key=value, e.g. train.lr=3e-5"))?;
        let key: Vec<String> = key.trim().split('.').map(str::to_string).collect();
        let plain =
            |k: &String| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || "_-".contains(c));
        if !key.iter().all(plain) {
            return Err(bad(
                "a key is dotted names (train.lr); arrays of tables ([[train.groups]]) are not reachable",
            ));
        }
        let value = value.trim();
        let value = value.parse::<toml_edit::Value>().unwrap_or_else(|_| value.into());
        Ok(Override { key, value, text: s.to_string() })
    }
}

/// `text` with every override applied, in order (a later one wins).
pub fn apply(text: &str, overrides: &[Override]) -> Result<String> {
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| Error::arg("--set", format!("the recipe is not TOML: {e}")))?;
    for o in overrides {
        let (last, tables) = o.key.split_last().ok_or_else(|| Error::arg("--set", "empty key"))?;
        let mut table = doc.as_table_mut() as &mut dyn toml_edit::TableLike;
        for (i, part) in tables.iter().enumerate() {
            let item = table.entry(part).or_insert(toml_edit::Item::Table(toml_edit::Table::new()));
            table = item.as_table_like_mut().ok_or_else(|| {
                let at = o.key[..=i].join(".");
                Error::arg("--set", format!("'{}': {at} is a value, not a table", o.text))
            })?;
        }
        table.insert(last, toml_edit::Item::Value(o.value.clone()));
    }
    Ok(doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(text: &str, o: &[&str]) -> Result<String> {
        let o: Vec<Override> = o.iter().map(|s| Override::parse(s)).collect::<Result<_>>()?;
        apply(text, &o)
    }

    #[test]
    fn values_are_replaced_in_place_and_new_keys_join_their_table() {
        let text = "# mine\n[model]\nkind = \"bert\"\n\n[train]\nlr = 1e-3   # tuned\nepochs = 3\n";
        let out = set(text, &["train.lr=3e-5", "train.optimizer=sgd", "output.dir=runs/x", "train.epochs=1"])
            .unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[..5], text.lines().collect::<Vec<_>>()[..5], "lines above the edit stay put: {out}");
        assert!(lines[5].starts_with("lr = 3e-5"), "{out}");
        assert!(
            out.contains("optimizer = \"sgd\"")
                && out.contains("epochs = 1")
                && out.contains("[output]\ndir = \"runs/x\""),
            "{out}"
        );
        let parsed: toml::Table = toml::from_str(&out).unwrap();
        assert_eq!(parsed["train"]["lr"].as_float(), Some(3e-5));
    }

    #[test]
    fn malformed_overrides_are_typed_errors() {
        for (o, says) in [
            ("train.lr", "expected key=value"),
            ("train.groups[0].lr=1", "arrays of tables"),
            ("train..lr=1", "dotted names"),
            ("train.lr.x=1", "train.lr is a value"),
        ] {
            let e = set("[train]\nlr = 1.0\n", &[o]).unwrap_err().to_string();
            assert!(e.contains(says) && e.contains("--set"), "{o}: {e}");
        }
    }
}
