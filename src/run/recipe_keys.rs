//! Where each key of a recipe was written, by key path (`train.groups[2].lr` → line 14), so a
//! value check can name the line as well as the key. The same walk refuses a non-finite number
//! anywhere in the document: `nan` and `inf` are legal TOML, but no recipe value may be one,
//! and a typed field could otherwise hide it (an `f32` field also turns `1e39` into infinity,
//! which the per-field checks catch).

use std::collections::BTreeMap;
use std::path::Path;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::error::{Error, Result};

/// The 1-based line of every key path of one recipe file.
pub(super) struct KeyLines {
    file: String,
    lines: BTreeMap<String, usize>,
    /// Byte offsets of the document's newlines, to turn spans into lines without rescanning.
    newlines: Vec<usize>,
}

impl KeyLines {
    /// Walk `text` (named `path` in errors); a non-finite float is an error naming its key.
    pub(super) fn parse(text: &str, path: &Path) -> Result<KeyLines> {
        let file = path.display().to_string();
        let newlines: Vec<usize> = text.match_indices('\n').map(|(i, _)| i).collect();
        let doc = DeTable::parse(text).map_err(|e| Error::Format {
            path: file.clone(),
            line: e.span().map(|s| line_at(&newlines, s.start)),
            message: e.message().to_string(),
        })?;
        let mut keys = KeyLines { file, lines: BTreeMap::new(), newlines };
        keys.table(doc.get_ref(), "")?;
        Ok(keys)
    }

    /// The line where `key` was written, else where its nearest written parent was (a default
    /// value has no line of its own).
    pub(super) fn line(&self, key: &str) -> Option<usize> {
        let mut k = key;
        loop {
            if let Some(&l) = self.lines.get(k) {
                return Some(l);
            }
            k = &k[..k.rfind(['.', '['])?];
        }
    }

    /// An error about `key` of this file: `file:line: key...: message`.
    pub(super) fn error(&self, key: &str, message: impl std::fmt::Display) -> Error {
        Error::Format { path: self.file.clone(), line: self.line(key), message: format!("{key}{message}") }
    }

    /// `key` was written at byte `offset`.
    fn mark(&mut self, key: &str, offset: usize) {
        let line = line_at(&self.newlines, offset);
        self.lines.insert(key.to_string(), line);
    }

    fn table(&mut self, t: &DeTable, prefix: &str) -> Result<()> {
        for (k, v) in t.iter() {
            let key =
                if prefix.is_empty() { k.get_ref().to_string() } else { format!("{prefix}.{}", k.get_ref()) };
            self.mark(&key, k.span().start);
            self.value(v, &key)?;
        }
        Ok(())
    }

    fn value(&mut self, v: &Spanned<DeValue>, key: &str) -> Result<()> {
        match v.get_ref() {
            DeValue::Float(f) if !f.as_str().parse::<f64>().is_ok_and(f64::is_finite) => {
                self.mark(key, v.span().start);
                Err(self
                    .error(key, format!(" = {f}: not a finite number (nan and inf are refused everywhere)")))
            }
            DeValue::Table(t) => self.table(t, key),
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let key = format!("{key}[{i}]");
                    self.mark(&key, item.span().start);
                    self.value(item, &key)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// The 1-based line of byte `offset`, given the offsets of the newlines.
fn line_at(newlines: &[usize], offset: usize) -> usize {
    newlines.partition_point(|&n| n < offset) + 1
}
