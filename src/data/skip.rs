//! "Nothing is dropped silently": every bad item a dataset reader meets is recorded as a
//! [`Skipped`], and [`enforce`] turns the list into either an error (the default) or a list the
//! caller prints, bounded by a threshold.

use std::fmt;

use crate::error::{Error, Result};

/// What to do with bad items (undecodable images, malformed lines).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SkipPolicy {
    /// Skip bad items (each one listed) instead of failing on the first.
    pub skip_bad: bool,
    /// With `skip_bad`, fail anyway when more than this fraction of the items is bad.
    pub max_skipped: f64,
}

impl Default for SkipPolicy {
    fn default() -> Self {
        SkipPolicy { skip_bad: false, max_skipped: 0.05 }
    }
}

/// One bad item: its file, the 1-based line for text data, and why it is bad.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub path: String,
    pub line: Option<usize>,
    pub reason: String,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.path, l, self.reason),
            None => write!(f, "{}: {}", self.path, self.reason),
        }
    }
}

/// Apply `policy` to the bad items found among `total` items. `what` names the dataset (for
/// example `image folder data/pets`) and is the path of the threshold error.
///
/// Without `skip_bad`, any bad item is an error naming the first one (path, line, reason). With
/// it, more than `max_skipped * total` bad items is an error listing every one; otherwise the
/// list comes back for the caller to print.
pub fn enforce(policy: &SkipPolicy, skipped: Vec<Skipped>, total: usize, what: &str) -> Result<Vec<Skipped>> {
    if !(0.0..=1.0).contains(&policy.max_skipped) {
        return Err(Error::arg(
            "SkipPolicy",
            format!("max_skipped {} is not a fraction in [0, 1]", policy.max_skipped),
        ));
    }
    let Some(first) = skipped.first() else { return Ok(skipped) };
    if !policy.skip_bad {
        let more = match skipped.len() {
            1 => String::new(),
            n => format!(" ({} more bad item(s) in {what})", n - 1),
        };
        return Err(Error::Format {
            path: first.path.clone(),
            line: first.line,
            message: format!("{}{more}; with skip_bad, bad items are listed and left out", first.reason),
        });
    }
    let limit = policy.max_skipped * total as f64;
    if skipped.len() as f64 > limit {
        let mut message = format!(
            "{} of {total} items are bad ({:.1}%), over the limit of {:.1}%:",
            skipped.len(),
            100.0 * skipped.len() as f64 / total.max(1) as f64,
            100.0 * policy.max_skipped
        );
        for s in &skipped {
            message.push_str("\n  ");
            message.push_str(&s.to_string());
        }
        return Err(Error::Format { path: what.to_string(), line: None, message });
    }
    Ok(skipped)
}
