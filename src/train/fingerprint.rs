//! What a run is: a flat map of everything that changes its result (check T6).
//!
//! A run folder stores the fingerprint of the run that made it (`run.json`); a later run in the
//! same folder resumes only when its own fingerprint is the same, and otherwise is refused with
//! the keys that differ, old → new. Entries are plain strings so the difference can be printed
//! as it is: recipe values in their JSON form, files as size plus content hashes.
//!
//! Keys listed by [`Fingerprint::extend_only`] (the run's length: epochs, max steps) may differ:
//! changing them extends (or shortens) the same run rather than making a new one.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Files up to this size are hashed whole; larger ones by their size, first and last MiB.
const FULL_HASH_MAX: u64 = 16 << 20;
/// Bytes hashed at each end of a large file.
const END_BYTES: u64 = 1 << 20;
/// Folders deeper than this are not walked (a symlink loop or a mistaken root).
const MAX_DEPTH: usize = 16;

/// One entry that differs between two fingerprints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub key: String,
    /// `None`: the key is new.
    pub old: Option<String>,
    /// `None`: the key is gone.
    pub new: Option<String>,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(absent)".into());
        write!(f, "{}: {} → {}", self.key, show(&self.old), show(&self.new))
    }
}

/// Everything that changes a run's result, as `key → value` strings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    entries: BTreeMap<String, String>,
    /// Keys whose change extends the same run instead of making a new one.
    #[serde(default)]
    extend_only: Vec<String>,
}

impl Fingerprint {
    pub fn new() -> Fingerprint {
        Fingerprint::default()
    }

    /// Record `key = value` (replacing an earlier value).
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.entries.insert(key.into(), value.into());
        self
    }

    /// Record `key = value` and mark it as one that may change within the same run.
    pub fn set_extendable(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        let key = key.into();
        if !self.extend_only.contains(&key) {
            self.extend_only.push(key.clone());
        }
        self.set(key, value)
    }

    /// Record the content of a file or folder at `path` under `key` (see [`content_digest`]).
    pub fn file(&mut self, key: impl Into<String>, path: &Path) -> Result<&mut Self> {
        let d = content_digest(path)?;
        Ok(self.set(key, d))
    }

    /// Every entry of `other` (a host's own keys beside the driver's).
    pub fn merge(&mut self, other: &Fingerprint) -> &mut Self {
        for (k, v) in &other.entries {
            self.entries.insert(k.clone(), v.clone());
        }
        for k in &other.extend_only {
            if !self.extend_only.contains(k) {
                self.extend_only.push(k.clone());
            }
        }
        self
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    pub fn entries(&self) -> &BTreeMap<String, String> {
        &self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Keys that may change within the same run.
    pub fn extend_only(&self) -> &[String] {
        &self.extend_only
    }

    /// Every key whose value differs from `old`'s, in key order.
    pub fn changes_from(&self, old: &Fingerprint) -> Vec<Change> {
        let mut keys: Vec<&String> = old.entries.keys().chain(self.entries.keys()).collect();
        keys.sort();
        keys.dedup();
        keys.into_iter()
            .filter_map(|k| {
                let (o, n) = (old.entries.get(k), self.entries.get(k));
                (o != n).then(|| Change { key: k.clone(), old: o.cloned(), new: n.cloned() })
            })
            .collect()
    }

    /// Whether a change of `key` only extends the run.
    pub fn is_extendable(&self, key: &str) -> bool {
        self.extend_only.iter().any(|k| k == key)
    }
}

/// A file's or folder's content in one string, cheap enough for every run start:
/// - a file up to 16 MiB: its size and SHA-256;
/// - a larger file: its size and the SHA-256 of its first and last MiB (a model file edited in
///   the middle without changing size is the one change this misses);
/// - a folder: file count, total bytes, and one SHA-256 over every file's relative path, size
///   and digest as above, in sorted order.
pub fn content_digest(path: &Path) -> Result<String> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        let mut files = Vec::new();
        walk(path, path, 0, &mut files)?;
        files.sort();
        let mut h = Sha256::new();
        let mut bytes = 0u64;
        for (rel, p) in &files {
            let (size, digest) = file_digest(p)?;
            bytes += size;
            h.update(rel.as_bytes());
            h.update([0]);
            h.update(size.to_le_bytes());
            h.update(digest.as_bytes());
        }
        Ok(format!("folder: {} files, {bytes} bytes, sha256 {}", files.len(), hex(&h.finalize())))
    } else {
        let (size, digest) = file_digest(path)?;
        Ok(format!("{size} bytes, {digest}"))
    }
}

/// `(size, "sha256 …")` of a file, whole or by its ends (see [`content_digest`]).
fn file_digest(path: &Path) -> Result<(u64, String)> {
    let io = |e| Error::io(path, e);
    let mut f = File::open(path).map_err(io)?;
    let size = f.metadata().map_err(io)?.len();
    let mut h = Sha256::new();
    if size <= FULL_HASH_MAX {
        std::io::copy(&mut f, &mut h).map_err(io)?;
        return Ok((size, format!("sha256 {}", hex(&h.finalize()))));
    }
    let mut buf = vec![0u8; END_BYTES as usize];
    f.read_exact(&mut buf).map_err(io)?;
    h.update(&buf);
    f.seek(SeekFrom::Start(size - END_BYTES)).map_err(io)?;
    f.read_exact(&mut buf).map_err(io)?;
    h.update(&buf);
    Ok((size, format!("sha256(first+last MiB) {}", hex(&h.finalize()))))
}

/// Every regular file under `dir` as `(path relative to root, path)`. Symbolic links to files
/// are followed; links to folders are not (a loop would never end).
fn walk(root: &Path, dir: &Path, depth: usize, out: &mut Vec<(String, std::path::PathBuf)>) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(Error::Format {
            path: dir.display().to_string(),
            line: None,
            message: format!("folder nested more than {MAX_DEPTH} levels deep"),
        });
    }
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let p = entry.path();
        let ty = entry.file_type().map_err(|e| Error::io(&p, e))?;
        if ty.is_dir() {
            walk(root, &p, depth + 1, out)?;
        } else if ty.is_file() || (ty.is_symlink() && p.is_file()) {
            let rel = p.strip_prefix(root).unwrap_or(&p).to_string_lossy().replace('\\', "/");
            out.push((rel, p));
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_name_old_and_new_values() {
        let mut a = Fingerprint::new();
        a.set("train.lr", "0.001").set("train.seed", "0").set_extendable("train.epochs", "3");
        let mut b = a.clone();
        b.set("train.lr", "0.0003").set("model.dropout", "0.1");
        let c = b.changes_from(&a);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].to_string(), "model.dropout: (absent) → 0.1");
        assert_eq!(c[1].to_string(), "train.lr: 0.001 → 0.0003");
        assert!(b.is_extendable("train.epochs") && !b.is_extendable("train.lr"));
    }

    #[test]
    fn digests_see_content_not_names() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.txt");
        std::fs::write(&f, b"hello").unwrap();
        let d1 = content_digest(&f).unwrap();
        std::fs::write(&f, b"hellp").unwrap();
        let d2 = content_digest(&f).unwrap();
        assert_ne!(d1, d2, "same size, other bytes");
        let folder1 = content_digest(dir.path()).unwrap();
        std::fs::write(dir.path().join("b.txt"), b"x").unwrap();
        let folder2 = content_digest(dir.path()).unwrap();
        assert!(folder2.starts_with("folder: 2 files"), "{folder2}");
        assert_ne!(folder1, folder2);
    }

    #[test]
    fn a_large_file_is_hashed_by_its_ends() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("big.bin");
        let mut v = vec![7u8; (FULL_HASH_MAX + 3 * END_BYTES) as usize];
        std::fs::write(&f, &v).unwrap();
        let d1 = content_digest(&f).unwrap();
        assert!(d1.contains("first+last MiB"), "{d1}");
        let n = v.len();
        v[n - 1] = 8; // the last byte is in the tail: seen
        std::fs::write(&f, &v).unwrap();
        assert_ne!(d1, content_digest(&f).unwrap());
    }
}
