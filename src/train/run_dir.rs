//! Claiming a run folder (check T6): one process per folder, and a folder resumes only the
//! run that made it.
//!
//! `run.json` in the folder records the run's [`Fingerprint`], the folder format and the whet
//! version that wrote it. [`RunDir::claim`] decides what a new run may do with the folder:
//!
//! - no `run.json` (and no checkpoints): a new run; `run.json` is written once the folder is
//!   locked;
//! - the same fingerprint: resume (keys that only set the run's length may differ: the run is
//!   extended, and `run.json` records the new length). A key recorded on one side only is
//!   one that another build of whet (or of the host) records and this one does not, or the
//!   reverse, never a user's edit (every build records all of its keys, `null` included):
//!   it is reported, not refused, so an upgrade resumes its runs;
//! - another fingerprint: refused before anything in the folder is touched, naming every key
//!   that differs, old → new ([`Error::RunMismatch`]), unless the caller asked to start over
//!   ([`Resume::Fresh`]), which clears the previous run's files first;
//! - checkpoints without `run.json`, or another folder format: [`Error::CheckpointVersion`].
//!
//! The decision is made twice: once read-only (so a refusal leaves the folder exactly as it
//! was, not even a lock file), then again under the lock (so two processes cannot both pass).
//! The lock is an advisory `flock` on `whet.lock`, released when the [`RunDir`] is dropped;
//! a process killed while holding it releases it with its file descriptors.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::train::checkpoint::{self, FORMAT_VERSION};
use crate::train::fingerprint::{Change, Fingerprint};

/// The run description in a run folder.
pub const RUN_FILE: &str = "run.json";
/// The lock file in a run folder.
pub const LOCK_FILE: &str = "whet.lock";
/// A `run.json` is a few KiB; anything far larger is not one.
const RUN_FILE_MAX: u64 = 4 << 20;
/// What [`Resume::Fresh`] removes: the files a run writes, and nothing else.
const RUN_OUTPUTS: [&str; 8] = [
    checkpoint::CHECKPOINTS,
    "log.csv",
    "log.jsonl",
    "metrics.json",
    "model",
    "labels.json",
    "recipe.toml",
    RUN_FILE,
];

/// What to do with a folder that already holds a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Resume {
    /// Refuse it ([`Error::RunExists`]): the library never reuses a folder unless asked.
    #[default]
    Refuse,
    /// Continue it when its fingerprint equals this run's; refuse it, naming the differences,
    /// when not.
    IfSame,
    /// Start over: remove the previous run's checkpoints, logs and outputs first.
    Fresh,
}

/// What the claimed folder holds for this run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Opening {
    /// Nothing of an earlier run.
    New,
    /// The same run: continue from its latest checkpoint. `extended` lists the length keys
    /// (epochs, max steps) that changed; `one_sided` the keys only one of the two builds
    /// records.
    Resume { extended: Vec<Change>, one_sided: Vec<Change> },
    /// An earlier run's files were removed ([`Resume::Fresh`]).
    Fresh,
}

/// `run.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunFile {
    /// Folder and checkpoint format ([`FORMAT_VERSION`]).
    format: u32,
    /// The whet version that last wrote the folder.
    whet: String,
    fingerprint: Fingerprint,
}

/// A locked run folder; dropping it releases the lock.
#[derive(Debug)]
pub struct RunDir {
    dir: PathBuf,
    opening: Opening,
    lock: Option<File>,
}

impl RunDir {
    /// Lock `dir` for this process and decide how a run with fingerprint `fp` may use it
    /// (see the module docs). Creates the folder if needed.
    pub fn claim(dir: &Path, fp: &Fingerprint, resume: Resume) -> Result<RunDir> {
        // Read-only first: a refused run leaves the folder untouched.
        decide(dir, fp, resume)?;
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let lock = lock(dir)?;
        let opening = decide(dir, fp, resume)?;
        if opening == Opening::Fresh {
            clear(dir)?;
        }
        let rewrite = match &opening {
            Opening::Resume { extended, one_sided } => !extended.is_empty() || !one_sided.is_empty(),
            _ => true,
        };
        if rewrite {
            write_run_file(dir, fp)?;
        }
        Ok(RunDir { dir: dir.to_path_buf(), opening, lock })
    }

    /// The folder another process (rank 0 of a data-parallel run) has claimed as `opening`:
    /// no lock and no writes; this process only reads its checkpoints when it resumes.
    pub fn follow(dir: &Path, opening: Opening) -> RunDir {
        RunDir { dir: dir.to_path_buf(), opening, lock: None }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn opening(&self) -> &Opening {
        &self.opening
    }

    /// Whether the run continues from the folder's checkpoints.
    pub fn resumes(&self) -> bool {
        matches!(self.opening, Opening::Resume { .. })
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if self.lock.take().is_some() {
            // Removed while still held: a process that opened the old file and then gets the
            // lock sees that the path no longer names it, and tries again (see `lock`).
            let _ = fs::remove_file(self.dir.join(LOCK_FILE));
        }
    }
}

/// The fingerprint recorded in `dir`'s `run.json`, if there is one.
pub fn recorded(dir: &Path) -> Result<Option<Fingerprint>> {
    Ok(read_run_file(dir)?.map(|r| r.fingerprint))
}

fn decide(dir: &Path, fp: &Fingerprint, resume: Resume) -> Result<Opening> {
    if !dir.exists() {
        return Ok(Opening::New);
    }
    let Some(stored) = read_run_file(dir)? else {
        if dir.join(checkpoint::CHECKPOINTS).exists() && resume != Resume::Fresh {
            return Err(Error::CheckpointVersion {
                path: dir.display().to_string(),
                found: 0,
                written_by: "a whet before run folders were versioned".into(),
                supported: FORMAT_VERSION,
            });
        }
        return Ok(Opening::New);
    };
    if resume == Resume::Fresh {
        return Ok(Opening::Fresh);
    }
    if stored.format != FORMAT_VERSION {
        return Err(Error::CheckpointVersion {
            path: dir.join(RUN_FILE).display().to_string(),
            found: stored.format,
            written_by: format!("whet {}", stored.whet),
            supported: FORMAT_VERSION,
        });
    }
    if resume == Resume::Refuse {
        return Err(Error::RunExists { dir: dir.display().to_string() });
    }
    let (mut extended, mut one_sided, mut hard) = (Vec::new(), Vec::new(), Vec::new());
    for c in fp.changes_from(&stored.fingerprint) {
        if fp.is_extendable(&c.key) {
            extended.push(c);
        } else if c.old.is_none() || c.new.is_none() {
            one_sided.push(c);
        } else {
            hard.push(c);
        }
    }
    if !hard.is_empty() {
        return Err(Error::RunMismatch {
            dir: dir.display().to_string(),
            changes: hard.iter().map(Change::to_string).collect(),
        });
    }
    Ok(Opening::Resume { extended, one_sided })
}

fn read_run_file(dir: &Path) -> Result<Option<RunFile>> {
    let path = dir.join(RUN_FILE);
    let bad = |message: String| Error::Format { path: path.display().to_string(), line: None, message };
    let f = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let len = f.metadata().map_err(|e| Error::io(&path, e))?.len();
    if len > RUN_FILE_MAX {
        return Err(bad(format!("{len} bytes: not a run description (at most {RUN_FILE_MAX})")));
    }
    let bytes = fs::read(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_slice(&bytes).map(Some).map_err(|e| Error::Format {
        path: path.display().to_string(),
        line: Some(e.line()),
        message: e.to_string(),
    })
}

fn write_run_file(dir: &Path, fp: &Fingerprint) -> Result<()> {
    let r =
        RunFile { format: FORMAT_VERSION, whet: env!("CARGO_PKG_VERSION").into(), fingerprint: fp.clone() };
    let json = serde_json::to_vec_pretty(&r).map_err(|e| Error::arg("run.json", e.to_string()))?;
    checkpoint::replace_atomically(&dir.join(RUN_FILE), &json)
}

/// Remove what an earlier run wrote (only the names a run writes).
fn clear(dir: &Path) -> Result<()> {
    for name in RUN_OUTPUTS {
        let p = dir.join(name);
        let r = match fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => fs::remove_dir_all(&p),
            Ok(_) => fs::remove_file(&p),
            Err(_) => continue,
        };
        r.map_err(|e| Error::io(&p, e))?;
    }
    Ok(())
}

/// Take the folder's lock without waiting; `None` where the file system has no locks.
fn lock(dir: &Path) -> Result<Option<File>> {
    let path = dir.join(LOCK_FILE);
    for _ in 0..8 {
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match f.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let holder = fs::read_to_string(&path).unwrap_or_default();
                return Err(Error::RunLocked {
                    dir: dir.display().to_string(),
                    holder: holder.trim().into(),
                });
            }
            Err(fs::TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => {
                log::warn!(
                    "{}: this file system has no file locks; not locking the run folder",
                    dir.display()
                );
                return Ok(None);
            }
            Err(fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        if same_file(&f, &path) {
            let _ = f.set_len(0);
            let _ = writeln!(f, "pid {}", std::process::id());
            return Ok(Some(f));
        }
        // The holder removed the file as we opened it: try the new one.
    }
    Err(Error::RunLocked { dir: dir.display().to_string(), holder: "(contended)".into() })
}

#[cfg(unix)]
fn same_file(f: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (f.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_: &File, path: &Path) -> bool {
    path.exists()
}
