//! Class names and their indices. The order is fixed once (sorted, or as given) and saved next to
//! a trained model, so a label index means the same class at training and at prediction time.

use std::collections::HashSet;
use std::path::Path;

use crate::error::{Error, Result};

/// An ordered set of class names; a class's index is its position.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelMap {
    names: Vec<String>,
}

impl LabelMap {
    /// A map with exactly these names in this order; empty lists, empty names and duplicates
    /// are rejected.
    pub fn new(names: Vec<String>) -> Result<LabelMap> {
        if names.is_empty() {
            return Err(Error::arg("LabelMap::new", "no label names given"));
        }
        let mut seen = HashSet::new();
        for (i, n) in names.iter().enumerate() {
            if n.is_empty() {
                return Err(Error::arg("LabelMap::new", format!("label {i} is an empty string")));
            }
            if !seen.insert(n.as_str()) {
                return Err(Error::arg("LabelMap::new", format!("label '{n}' appears twice")));
            }
        }
        Ok(LabelMap { names })
    }

    /// The sorted unique labels seen in a dataset. When every label parses as an integer the
    /// order is numeric ("2" before "10"), otherwise it is plain string order.
    pub fn from_observed<'a>(labels: impl IntoIterator<Item = &'a str>) -> LabelMap {
        let mut names: Vec<String> = labels.into_iter().map(str::to_string).collect();
        names.sort();
        names.dedup();
        let numeric: Option<Vec<i64>> = names.iter().map(|n| n.trim().parse::<i64>().ok()).collect();
        if let Some(nums) = numeric {
            let mut pairs: Vec<(i64, String)> = nums.into_iter().zip(names).collect();
            pairs.sort();
            names = pairs.into_iter().map(|(_, n)| n).collect();
        }
        LabelMap { names }
    }

    /// An empty map (unlabelled data); only the crate builds one, `new` rejects it.
    pub(crate) fn empty() -> LabelMap {
        LabelMap { names: Vec::new() }
    }

    /// Number of classes.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when there are no classes (unlabelled data).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The name of class `i`.
    pub fn name(&self, i: usize) -> Option<&str> {
        self.names.get(i).map(String::as_str)
    }

    /// The index of `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// Every name, in index order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Write `{"labels": [...]}`.
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::json!({ "labels": self.names });
        let text = serde_json::to_string_pretty(&json).map_err(|e| Error::Format {
            path: path.display().to_string(),
            line: None,
            message: e.to_string(),
        })?;
        std::fs::write(path, text + "\n").map_err(|e| Error::io(path, e))
    }

    /// Read a file written by [`LabelMap::save`].
    pub fn load(path: &Path) -> Result<LabelMap> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let fail = |line: Option<usize>, message: String| Error::Format {
            path: path.display().to_string(),
            line,
            message,
        };
        let v: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| fail(Some(e.line()), format!("invalid JSON: {e}")))?;
        let arr = v
            .get("labels")
            .and_then(|l| l.as_array())
            .ok_or_else(|| fail(None, "expected an object with a \"labels\" array".into()))?;
        let names = arr
            .iter()
            .enumerate()
            .map(|(i, n)| {
                n.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| fail(None, format!("labels[{i}] is not a string: {n}")))
            })
            .collect::<Result<Vec<_>>>()?;
        LabelMap::new(names).map_err(|e| fail(None, e.to_string()))
    }
}
