//! Hugging Face model ids (`org/name`, optionally `@revision`) resolved offline from a local
//! Hugging Face cache, laid out as `huggingface_hub` writes it:
//!
//! ```text
//! <cache>/models--<org>--<name>/refs/<branch or tag>   the commit hash, one line
//! <cache>/models--<org>--<name>/snapshots/<commit>/    the files of that commit
//! ```
//!
//! The library reads no environment variable: [`HfCache::from_env`] is for the CLI (and any host
//! that wants the same rules), the others pass a folder.
//!
//! With the `hub` feature, an id absent from the cache is downloaded into it
//! ([`HfCache::online`], `weights::hub`) unless `HF_HUB_OFFLINE` is set; without it, the error
//! says how to fetch the model.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A Hugging Face hub cache folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HfCache {
    pub root: PathBuf,
    /// Download what the cache lacks from this endpoint (the `hub` feature; `None`: offline).
    /// `Some("")` is hf-hub's default endpoint.
    pub online: Option<String>,
}

/// A parsed model id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HfId {
    pub org: String,
    pub name: String,
    /// A branch, tag or commit hash; `main` when the id names none.
    pub revision: String,
}

impl HfId {
    /// `org/name` or `org/name@revision`, each part of letters, digits, `-`, `_` and `.` (not
    /// starting with `.`); `None` for anything else (a path).
    pub fn parse(s: &str) -> Option<HfId> {
        let (repo, revision) = match s.split_once('@') {
            Some((r, rev)) if !rev.is_empty() => (r, rev),
            Some(_) => return None,
            None => (s, "main"),
        };
        let (org, name) = repo.split_once('/')?;
        let part = |p: &str| {
            !p.is_empty()
                && !p.starts_with('.')
                && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        let rev_ok = revision.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
        (part(org) && part(name) && rev_ok && !revision.contains("..")).then(|| HfId {
            org: org.into(),
            name: name.into(),
            revision: revision.into(),
        })
    }

    /// The repository's folder name in the cache: `models--org--name`.
    pub fn folder(&self) -> String {
        format!("models--{}--{}", self.org, self.name)
    }
}

impl std::fmt::Display for HfId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}@{}", self.org, self.name, self.revision)
    }
}

impl HfCache {
    pub fn new(root: impl Into<PathBuf>) -> HfCache {
        HfCache { root: root.into(), online: None }
    }

    /// `huggingface_hub`'s rules: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
    /// `~/.cache/huggingface/hub` (`None` without a home folder).
    pub fn from_env() -> Option<HfCache> {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        let root = var("HF_HUB_CACHE")
            .or_else(|| var("HF_HOME").map(|h| h.join("hub")))
            .or_else(|| var("HOME").map(|h| h.join(".cache/huggingface/hub")))?;
        let offline = var("HF_HUB_OFFLINE").is_some_and(|v| v.as_os_str() != "0");
        let endpoint = var("HF_ENDPOINT").map(|e| e.to_string_lossy().into_owned()).unwrap_or_default();
        let online = (cfg!(feature = "hub") && !offline).then_some(endpoint);
        Some(HfCache { root, online })
    }

    /// This cache, downloading what it lacks from `endpoint` (`""`: the Hub itself).
    pub fn online(self, endpoint: impl Into<String>) -> HfCache {
        HfCache { online: Some(endpoint.into()), ..self }
    }

    /// The snapshot folder of `id`: in the cache, else downloaded into it when the cache is
    /// [online](HfCache::online) and whet has the `hub` feature; otherwise an error that lists
    /// every place looked in.
    pub fn resolve(&self, id: &HfId) -> Result<PathBuf> {
        match (self.offline_resolve(id), &self.online) {
            (Ok(p), _) => Ok(p),
            #[cfg(feature = "hub")]
            (Err(_), Some(endpoint)) => {
                crate::weights::hub::download(self, id, endpoint)?;
                self.offline_resolve(id)
            }
            (Err(e), _) => Err(e),
        }
    }

    fn offline_resolve(&self, id: &HfId) -> Result<PathBuf> {
        let repo = self.root.join(id.folder());
        let reference = repo.join("refs").join(&id.revision);
        let mut looked = vec![reference.display().to_string()];
        let commit = match std::fs::read_to_string(&reference) {
            Ok(text) => text.trim().to_string(),
            // A commit hash names its snapshot directly.
            Err(_) if is_commit(&id.revision) => id.revision.clone(),
            Err(_) => String::new(),
        };
        if !commit.is_empty() {
            let snapshot = repo.join("snapshots").join(&commit);
            if snapshot.is_dir() {
                return Ok(snapshot);
            }
            looked.push(snapshot.display().to_string());
        }
        Err(Error::arg(
            "model.path",
            format!(
                "{id} is not in the Hugging Face cache {} (looked for {}); download it with \
                 `huggingface-cli download {}/{}`, build whet with the `hub` feature, or give a \
                 local path",
                self.root.display(),
                looked.join(" and "),
                id.org,
                id.name
            ),
        ))
    }
}

fn is_commit(s: &str) -> bool {
    s.len() == 40 && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// `path` as a recipe gives it: an existing file or folder (relative to `base`), else a model id
/// resolved in `cache`. A path that exists wins over an id that spells the same.
pub fn resolve_model_path(path: &Path, base: &Path, cache: Option<&HfCache>) -> Result<PathBuf> {
    let local = if path.is_relative() { base.join(path) } else { path.to_path_buf() };
    if local.exists() || path.is_absolute() {
        return Ok(local);
    }
    match (path.to_str().and_then(HfId::parse), cache) {
        (Some(id), Some(cache)) => cache.resolve(&id).map_err(|e| {
            Error::arg(
                "model.path",
                format!("{} does not exist, and as a model id: {}", local.display(), e.detail()),
            )
        }),
        // Not an id, or no cache to look in: the loader reports the missing path.
        _ => Ok(local),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_and_paths_do_not() {
        let id = HfId::parse("HuggingFaceTB/SmolLM2-135M").unwrap();
        assert_eq!(
            (id.org.as_str(), id.name.as_str(), id.revision.as_str()),
            ("HuggingFaceTB", "SmolLM2-135M", "main")
        );
        assert_eq!(id.folder(), "models--HuggingFaceTB--SmolLM2-135M");
        assert_eq!(HfId::parse("org/m@v1.0").unwrap().revision, "v1.0");
        for not in [
            "model.safetensors",
            "a/b/c",
            "./a",
            "../x/y",
            "/abs/path",
            "org/",
            "org/m@",
            "org/m@../x",
            ".org/m",
        ] {
            assert_eq!(HfId::parse(not), None, "{not}");
        }
    }

    #[test]
    fn a_fake_cache_resolves_branches_tags_and_commits_and_says_what_it_looked_for() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = HfCache::new(tmp.path());
        let repo = tmp.path().join("models--org--tiny");
        let commit = "0123456789abcdef0123456789abcdef01234567";
        std::fs::create_dir_all(repo.join("snapshots").join(commit)).unwrap();
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), format!("{commit}\n")).unwrap();
        std::fs::write(repo.join("refs/v2"), commit).unwrap();
        let want = repo.join("snapshots").join(commit);
        for id in ["org/tiny", "org/tiny@v2", &format!("org/tiny@{commit}")] {
            assert_eq!(cache.resolve(&HfId::parse(id).unwrap()).unwrap(), want, "{id}");
        }
        let err = cache.resolve(&HfId::parse("org/tiny@v3").unwrap()).unwrap_err().to_string();
        assert!(err.contains("org/tiny@v3") && err.contains("refs/v3"), "{err}");
        let err = cache.resolve(&HfId::parse("org/other").unwrap()).unwrap_err().to_string();
        assert!(
            err.contains("models--org--other") && err.contains(&tmp.path().display().to_string()),
            "{err}"
        );

        // A local folder of that name wins; a missing one is named beside the id's search.
        let base = tmp.path().join("recipes");
        std::fs::create_dir_all(base.join("org/tiny")).unwrap();
        assert_eq!(
            resolve_model_path(Path::new("org/tiny"), &base, Some(&cache)).unwrap(),
            base.join("org/tiny")
        );
        let elsewhere = tmp.path().join("elsewhere");
        assert_eq!(resolve_model_path(Path::new("org/tiny"), &elsewhere, Some(&cache)).unwrap(), want);
        let err =
            resolve_model_path(Path::new("org/nope"), &elsewhere, Some(&cache)).unwrap_err().to_string();
        assert!(
            err.contains(&elsewhere.join("org/nope").display().to_string())
                && err.contains("models--org--nope"),
            "{err}"
        );
        assert_eq!(
            resolve_model_path(Path::new("org/nope"), &elsewhere, None).unwrap(),
            elsewhere.join("org/nope")
        );
    }
}
