//! Selecting parameters by path or depth: the language of freezing, learning-rate groups and
//! LoRA targets.
//!
//! - `Glob("encoder.layer.[0-3].*")`: shell-style, `*` crosses dots, `[0-3]` classes, `{a,b}`;
//! - `Regex("^bert\\.encoder\\.layer\\.(0|1)\\.")`: unanchored unless you anchor it;
//! - `Depth(0..=4)`: the model's depth of a path (0 = embeddings/stem, L+1 = head);
//! - `Prefix("classifier")`, `Any(vec![..])`, `All`.

use std::ops::RangeInclusive;

use crate::error::{Error, Result};

/// A rule choosing parameters.
#[derive(Debug, Clone)]
pub enum Select {
    All,
    Glob(String),
    Regex(String),
    Prefix(String),
    Depth(RangeInclusive<usize>),
    Any(Vec<Select>),
    Not(Box<Select>),
}

/// A compiled [`Select`].
#[derive(Debug, Clone)]
pub struct Matcher {
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    All,
    Glob(globset::GlobMatcher),
    Regex(regex::Regex),
    Prefix(String),
    Depth(RangeInclusive<usize>),
    Any(Vec<Matcher>),
    Not(Box<Matcher>),
}

impl Select {
    /// Parse the CLI form: `re:<regex>`, `depth:<a>-<b>` or `depth:<a>`, anything else a glob.
    pub fn parse(s: &str) -> Result<Select> {
        if let Some(r) = s.strip_prefix("re:") {
            return Ok(Select::Regex(r.to_string()));
        }
        if let Some(d) = s.strip_prefix("depth:") {
            let bad = || Error::arg("select", format!("'{s}': depth wants N or A-B"));
            let (a, b) = match d.split_once('-') {
                Some((a, b)) => (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?),
                None => {
                    let n = d.trim().parse().map_err(|_| bad())?;
                    (n, n)
                }
            };
            return Ok(Select::Depth(a..=b));
        }
        Ok(Select::Glob(s.to_string()))
    }

    /// Compile; a bad glob or regex is a typed error quoting it.
    pub fn compile(&self) -> Result<Matcher> {
        let kind = match self {
            Select::All => Kind::All,
            Select::Glob(g) => Kind::Glob(
                globset::GlobBuilder::new(g)
                    .literal_separator(false)
                    .build()
                    .map_err(|e| Error::arg("select", format!("glob '{g}': {e}")))?
                    .compile_matcher(),
            ),
            Select::Regex(r) => Kind::Regex(
                regex::Regex::new(r).map_err(|e| Error::arg("select", format!("regex '{r}': {e}")))?,
            ),
            Select::Prefix(p) => Kind::Prefix(p.clone()),
            Select::Depth(r) => Kind::Depth(r.clone()),
            Select::Any(v) => Kind::Any(v.iter().map(|s| s.compile()).collect::<Result<_>>()?),
            Select::Not(s) => Kind::Not(Box::new(s.compile()?)),
        };
        Ok(Matcher { kind })
    }
}

impl Matcher {
    /// Whether the parameter at `path` with model depth `depth` is selected.
    pub fn matches(&self, path: &str, depth: usize) -> bool {
        match &self.kind {
            Kind::All => true,
            Kind::Glob(g) => g.is_match(path),
            Kind::Regex(r) => r.is_match(path),
            Kind::Prefix(p) => path == p || path.starts_with(&format!("{p}.")),
            Kind::Depth(r) => r.contains(&depth),
            Kind::Any(v) => v.iter().any(|m| m.matches(path, depth)),
            Kind::Not(m) => !m.matches(path, depth),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_regexes_and_depths_select_what_they_say() {
        let g = Select::parse("bert.encoder.layer.[0-3].*").unwrap().compile().unwrap();
        assert!(g.matches("bert.encoder.layer.2.attention.self.query.weight", 3));
        assert!(!g.matches("bert.encoder.layer.4.output.dense.bias", 5));
        assert!(!g.matches("bert.encoder.layer.10.output.dense.bias", 11));
        let e = Select::parse("*embeddings*").unwrap().compile().unwrap();
        assert!(e.matches("bert.embeddings.word_embeddings.weight", 0));
        let r = Select::parse("re:^layer4\\.").unwrap().compile().unwrap();
        assert!(r.matches("layer4.1.conv2.weight", 4) && !r.matches("xlayer4.1", 4));
        let d = Select::parse("depth:0-2").unwrap().compile().unwrap();
        assert!(d.matches("anything", 2) && !d.matches("anything", 3));
        let p = Select::Prefix("fc".into()).compile().unwrap();
        assert!(p.matches("fc.weight", 0) && !p.matches("fc2.weight", 0));
        let n = Select::Not(Box::new(Select::Prefix("fc".into()))).compile().unwrap();
        assert!(!n.matches("fc.bias", 0));
        assert!(Select::parse("re:(").unwrap().compile().is_err());
        assert!(Select::parse("depth:x").is_err());
        assert!(Select::parse("a[").unwrap().compile().is_err());
    }
}
