//! Crash-safe training checkpoints (check T1).
//!
//! Layout under `out_dir/checkpoints/`:
//!
//! ```text
//! step-<n>/params.safetensors   every parameter and buffer (BN running stats), keyed by path
//! step-<n>/optim.safetensors    optimizer moments keyed `<path>.<exp_avg|…>`; step and join
//!                               steps in the metadata
//! step-<n>/state.json           loop position, best metric, counters, config digest
//! step-<n>/manifest.json        format version, size and CRC-32 of the three files above
//! latest.json, best.json        the same manifest plus the directory it describes
//! ```
//!
//! Every manifest carries [`FORMAT_VERSION`] and the whet version that wrote it; a checkpoint of
//! another format is refused naming both versions ([`Error::CheckpointVersion`]) rather than
//! misread. A checked-in golden checkpoint (`tests/data/golden_run/`) is resumed by CI, so a
//! change that breaks today's checkpoints fails a test: bump the version instead.
//!
//! Reading trusts nothing in the files: manifests are bounded in size before they are read,
//! their directory names must be `step-<n>` inside `checkpoints/` and their file names the
//! three above, every file's size is compared with the manifest's before it is read, and
//! counts in the optimizer's metadata are bounded by the tensors actually present.
//!
//! A save writes a temporary directory, fsyncs each file and the directory, renames it into
//! place, fsyncs the parent, and only then replaces `latest.json` (and `best.json`) atomically.
//! A crash at any point leaves either the previous manifest or the new one, each describing a
//! complete directory. Loading verifies sizes and checksums and falls back to the newest
//! directory that verifies; leftover temporary directories are never read and are removed by
//! the next save. The last two checkpoints and the best are kept; older ones are pruned.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::nn::Params;
use crate::optim::OptimState;

/// Folder of the checkpoints inside a run's output directory.
pub const CHECKPOINTS: &str = "checkpoints";
const PARAMS: &str = "params.safetensors";
const OPTIM: &str = "optim.safetensors";
const STATE: &str = "state.json";
const MANIFEST: &str = "manifest.json";
const LATEST: &str = "latest.json";
const BEST: &str = "best.json";
const TMP_PREFIX: &str = ".tmp-";
/// Checkpoints kept besides the best.
const KEEP_LAST: usize = 2;
/// A manifest is a few hundred bytes; anything far larger is not one.
const MANIFEST_MAX: u64 = 1 << 20;

/// The checkpoint (and run folder) format this whet writes and reads. Bump it whenever a
/// change would make an older checkpoint load differently, and refresh the golden checkpoint.
pub const FORMAT_VERSION: u32 = 1;

/// Named tensors as `(path, shape, values)`, in file order.
pub type NamedTensors = Vec<(String, Vec<usize>, Vec<f32>)>;

/// The best evaluation so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BestMark {
    pub step: u64,
    /// Name of the metric compared.
    pub metric: String,
    pub value: f64,
    /// Every metric of that evaluation (non-finite values as `null`).
    pub metrics: BTreeMap<String, Option<f64>>,
}

/// Where the training loop stands: everything besides weights and moments that an exact
/// resume needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimizer steps taken.
    pub step: u64,
    /// Current epoch (0-based); `cursor == 0` means it has not started.
    pub epoch: usize,
    /// Position in the epoch's permutation (items consumed).
    pub cursor: usize,
    /// Steps attempted (taken + skipped): the clock of the dropout seeds.
    pub attempts: u64,
    /// Training items per epoch when saved (the permutation depends on it).
    pub train_len: usize,
    /// Micro-batches gathered but not applied (always 0: checkpoints fall on step boundaries).
    pub accum_pos: usize,
    pub best: Option<BestMark>,
    /// Evaluations since the best one (the early-stopping patience counter).
    pub since_best: usize,
    /// Consecutive skipped (non-finite) steps.
    pub bad_steps: usize,
    pub skipped_steps: u64,
    /// Items of every skipped step.
    pub skipped_items: Vec<usize>,
    /// Training seconds spent so far, across resumes.
    pub train_secs: f64,
    /// The last evaluation's metrics, if any.
    pub last_metrics: Option<BTreeMap<String, Option<f64>>>,
    /// Digest of the settings an exact resume depends on (seed, batch size, accumulation,
    /// optimizer method).
    pub config_digest: String,
    /// Ranks the run trained on when saved (data-parallel; absent from one process's
    /// checkpoints, which stay as they were before ranks existed).
    #[serde(default = "one_rank", skip_serializing_if = "is_one_rank")]
    pub ranks: usize,
    /// The dynamic loss scale, when the run scales its loss (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_scale: Option<crate::train::loss_scale::LossScaleState>,
}

fn one_rank() -> usize {
    1
}

fn is_one_rank(ranks: &usize) -> bool {
    *ranks == 1
}

/// Size and CRC-32 of one file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct FileSum {
    size: u64,
    crc32: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Manifest {
    /// [`FORMAT_VERSION`] when written; manifests from before versioning have none (0).
    #[serde(default)]
    format: u32,
    /// The whet version that wrote it.
    #[serde(default)]
    whet: String,
    step: u64,
    /// Directory name under `checkpoints/`.
    dir: String,
    files: BTreeMap<String, FileSum>,
}

impl Manifest {
    fn new(step: u64, dir: String, files: BTreeMap<String, FileSum>) -> Manifest {
        Manifest { format: FORMAT_VERSION, whet: env!("CARGO_PKG_VERSION").into(), step, dir, files }
    }
}

/// A verified checkpoint read back.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub step: u64,
    pub dir: PathBuf,
    /// `(path, shape, values)` of every saved tensor, in file order.
    pub params: NamedTensors,
    pub optim: OptimState,
    pub state: TrainState,
}

thread_local! {
    /// Test hook: file writes left before one fails as if the disk were full.
    static FAIL_AFTER: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Make the `n`-th next checkpoint file write on this thread fail with "no space left on
/// device" (`None` disarms). Only for tests of the error path: running as root, permissions
/// cannot make a directory unwritable.
#[doc(hidden)]
pub fn fail_writes_after(n: Option<usize>) {
    FAIL_AFTER.with(|c| c.set(n));
}

fn injected_failure() -> Option<std::io::Error> {
    FAIL_AFTER.with(|c| match c.get() {
        Some(0) => {
            c.set(None);
            Some(std::io::Error::from_raw_os_error(28)) // ENOSPC
        }
        Some(n) => {
            c.set(Some(n - 1));
            None
        }
        None => None,
    })
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut c = flate2::Crc::new();
    c.update(bytes);
    c.sum()
}

/// Write `bytes` to a new file and fsync it; returns its checksum entry.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<FileSum> {
    if let Some(e) = injected_failure() {
        return Err(Error::io(path, e));
    }
    let mut f = File::create(path).map_err(|e| Error::io(path, e))?;
    f.write_all(bytes).map_err(|e| Error::io(path, e))?;
    f.sync_all().map_err(|e| Error::io(path, e))?;
    Ok(FileSum { size: bytes.len() as u64, crc32: crc32(bytes) })
}

/// fsync a directory so a rename inside it is durable.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(dir, e))
}

/// Replace `path` atomically: write a sibling temporary, fsync, rename, fsync the parent.
pub fn replace_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    // A bare file name has the parent "", which cannot be opened to fsync: use ".".
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = parent.join(format!("{TMP_PREFIX}{name}"));
    write_synced(&tmp, bytes)?;
    fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    sync_dir(parent)
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Serialize named f32 tensors (`(key, shape, values)`) as safetensors.
fn safetensors_bytes(
    what: &Path,
    tensors: &[(String, Vec<usize>, Vec<f32>)],
    metadata: Option<HashMap<String, String>>,
) -> Result<Vec<u8>> {
    let bytes: Vec<Vec<u8>> = tensors.iter().map(|(_, _, v)| f32_bytes(v)).collect();
    let mut views = Vec::with_capacity(tensors.len());
    for ((k, shape, _), b) in tensors.iter().zip(&bytes) {
        let v = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), b)
            .map_err(|e| Error::arg("checkpoint", format!("{}: tensor '{k}': {e}", what.display())))?;
        views.push((k.clone(), v));
    }
    safetensors::tensor::serialize(views, metadata)
        .map_err(|e| Error::arg("checkpoint", format!("{}: {e}", what.display())))
}

/// Every tensor of `params` (parameters and buffers) read back, refusing non-finite values.
fn host_params(params: &Params) -> Result<NamedTensors> {
    let mut out = Vec::with_capacity(params.len());
    for e in params.entries() {
        let v = e.tensor.to_vec()?;
        if v.iter().any(|x| !x.is_finite()) {
            return Err(Error::NonFiniteWeights { path: e.path.clone() });
        }
        out.push((e.path.clone(), e.tensor.shape().to_vec(), v));
    }
    Ok(out)
}

/// Save every parameter and buffer of `params` to `path` as safetensors, keyed by parameter
/// path (written to a temporary sibling and renamed, so `path` is never half-written).
/// Non-finite values are refused with [`Error::NonFiniteWeights`].
pub fn save_params(params: &Params, path: &Path) -> Result<()> {
    let bytes = safetensors_bytes(path, &host_params(params)?, None)?;
    replace_atomically(path, &bytes)
}

fn optim_tensors(o: &OptimState, names: &[&str]) -> Result<(NamedTensors, HashMap<String, String>)> {
    let mut tensors = Vec::new();
    for (path, kinds) in &o.moments {
        for (k, v) in kinds.iter().enumerate() {
            let name = names.get(k).copied().unwrap_or("state");
            tensors.push((format!("{path}.{name}"), vec![v.len()], v.clone()));
        }
    }
    let mut meta = HashMap::new();
    meta.insert("step".to_string(), o.step.to_string());
    let born = serde_json::to_string(&o.born).map_err(|e| Error::arg("checkpoint", e.to_string()))?;
    meta.insert("born".to_string(), born);
    let layout: BTreeMap<&String, usize> = o.moments.iter().map(|(p, k)| (p, k.len())).collect();
    meta.insert(
        "moments".to_string(),
        serde_json::to_string(&layout).map_err(|e| Error::arg("checkpoint", e.to_string()))?,
    );
    meta.insert("names".to_string(), names.join(","));
    meta.insert("format".to_string(), FORMAT_VERSION.to_string());
    Ok((tensors, meta))
}

fn step_dir_name(step: u64) -> String {
    format!("step-{step}")
}

/// Write a checkpoint of `step` under `out_dir/checkpoints/` (see the module docs for the
/// protocol); `is_best` also points `best.json` at it. Returns the checkpoint directory.
pub(crate) fn save(
    out_dir: &Path,
    params: &Params,
    optim: &OptimState,
    state_names: &[&str],
    state: &TrainState,
    is_best: bool,
) -> Result<PathBuf> {
    let root = out_dir.join(CHECKPOINTS);
    fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
    remove_leftovers(&root);
    let name = step_dir_name(state.step);
    let tmp = root.join(format!("{TMP_PREFIX}{name}"));
    let result = write_dir(&tmp, params, optim, state_names, state);
    let files = match result {
        Ok(f) => f,
        Err(e) => {
            // Best effort: a leftover would be ignored by loading and removed by the next save.
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    let dst = root.join(&name);
    if dst.exists() {
        // Saving the same step again: move the old one aside first (rename cannot replace a
        // non-empty directory).
        let old = root.join(format!("{TMP_PREFIX}old-{name}"));
        fs::rename(&dst, &old).map_err(|e| Error::io(&dst, e))?;
        let _ = fs::remove_dir_all(&old);
    }
    fs::rename(&tmp, &dst).map_err(|e| Error::io(&dst, e))?;
    sync_dir(&root)?;
    let manifest = Manifest::new(state.step, name, files);
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::arg("checkpoint", e.to_string()))?;
    replace_atomically(&root.join(LATEST), &json)?;
    if is_best {
        replace_atomically(&root.join(BEST), &json)?;
    }
    prune(&root);
    Ok(dst)
}

fn write_dir(
    tmp: &Path,
    params: &Params,
    optim: &OptimState,
    state_names: &[&str],
    state: &TrainState,
) -> Result<BTreeMap<String, FileSum>> {
    if tmp.exists() {
        fs::remove_dir_all(tmp).map_err(|e| Error::io(tmp, e))?;
    }
    fs::create_dir(tmp).map_err(|e| Error::io(tmp, e))?;
    let mut files = BTreeMap::new();
    let p = tmp.join(PARAMS);
    files.insert(PARAMS.to_string(), write_synced(&p, &safetensors_bytes(&p, &host_params(params)?, None)?)?);
    let p = tmp.join(OPTIM);
    let (tensors, meta) = optim_tensors(optim, state_names)?;
    files.insert(OPTIM.to_string(), write_synced(&p, &safetensors_bytes(&p, &tensors, Some(meta))?)?);
    let p = tmp.join(STATE);
    let json = serde_json::to_vec_pretty(state).map_err(|e| Error::arg("checkpoint", e.to_string()))?;
    files.insert(STATE.to_string(), write_synced(&p, &json)?);
    let m = Manifest::new(state.step, String::new(), files.clone());
    let json = serde_json::to_vec_pretty(&m).map_err(|e| Error::arg("checkpoint", e.to_string()))?;
    write_synced(&tmp.join(MANIFEST), &json)?;
    sync_dir(tmp)?;
    Ok(files)
}

/// Remove temporary directories and files a killed save left behind.
fn remove_leftovers(root: &Path) {
    let Ok(rd) = fs::read_dir(root) else { return };
    for e in rd.flatten() {
        if e.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
            let p = e.path();
            let _ = if p.is_dir() { fs::remove_dir_all(&p) } else { fs::remove_file(&p) };
        }
    }
}

/// Step numbers of the `step-<n>` directories, newest first.
fn step_dirs(root: &Path) -> Vec<u64> {
    let mut v: Vec<u64> = fs::read_dir(root)
        .map(|rd| {
            rd.flatten().filter_map(|e| e.file_name().to_str()?.strip_prefix("step-")?.parse().ok()).collect()
        })
        .unwrap_or_default();
    v.sort_unstable_by(|a, b| b.cmp(a));
    v
}

/// Read a manifest: bounded in size, of this format, naming only the files a checkpoint has.
fn read_manifest(path: &Path) -> Result<Manifest> {
    let bad = |message: String| Error::Format { path: path.display().to_string(), line: None, message };
    let bytes = read_bounded(path, MANIFEST_MAX)?;
    let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| Error::Format {
        path: path.display().to_string(),
        line: Some(e.line()),
        message: e.to_string(),
    })?;
    if m.format != FORMAT_VERSION {
        let written_by = if m.whet.is_empty() {
            "a whet before checkpoints were versioned".into()
        } else {
            format!("whet {}", m.whet)
        };
        return Err(Error::CheckpointVersion {
            path: path.display().to_string(),
            found: m.format,
            written_by,
            supported: FORMAT_VERSION,
        });
    }
    if let Some(k) = m.files.keys().find(|k| ![PARAMS, OPTIM, STATE].contains(&k.as_str())) {
        return Err(bad(format!("lists '{k}', which is not a checkpoint file")));
    }
    Ok(m)
}

/// The checkpoint directory a top-level manifest names: `step-<n>` for its own step, so a
/// crafted manifest cannot point outside `checkpoints/`.
fn named_dir(root: &Path, m: &Manifest, manifest: &Path) -> Result<PathBuf> {
    if m.dir != step_dir_name(m.step) {
        return Err(Error::Format {
            path: manifest.display().to_string(),
            line: None,
            message: format!("names directory '{}', expected '{}'", m.dir, step_dir_name(m.step)),
        });
    }
    Ok(root.join(&m.dir))
}

/// Read a whole file of at most `max` bytes (its size is checked before anything is read).
fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>> {
    let len = fs::metadata(path).map_err(|e| Error::io(path, e))?.len();
    if len > max {
        return Err(Error::Format {
            path: path.display().to_string(),
            line: None,
            message: format!("{len} bytes, more than the {max} a checkpoint manifest may have"),
        });
    }
    fs::read(path).map_err(|e| Error::io(path, e))
}

/// A version mismatch is final: an older checkpoint of the same run has the same format, so
/// falling back to it would only hide the message.
fn is_version(e: &Error) -> bool {
    matches!(e, Error::CheckpointVersion { .. })
}

/// Keep the newest `KEEP_LAST` checkpoints, the one `latest.json` names and the best.
fn prune(root: &Path) {
    let mut keep: Vec<u64> = step_dirs(root).into_iter().take(KEEP_LAST).collect();
    for m in [LATEST, BEST] {
        if let Ok(m) = read_manifest(&root.join(m)) {
            keep.push(m.step);
        }
    }
    for s in step_dirs(root) {
        if !keep.contains(&s) {
            let _ = fs::remove_dir_all(root.join(step_dir_name(s)));
        }
    }
}

/// The newest checkpoint under `out_dir` that verifies: the one `latest.json` names, else the
/// newest `step-<n>` directory whose own manifest, sizes and checksums match. `Ok(None)` when
/// there is none at all; an error naming the folder when checkpoints exist but none verifies.
pub fn load_latest(out_dir: &Path) -> Result<Option<Checkpoint>> {
    let root = out_dir.join(CHECKPOINTS);
    if !root.exists() {
        return Ok(None);
    }
    let mut problems = Vec::new();
    let mut tried = None;
    let latest = root.join(LATEST);
    match read_manifest(&latest).and_then(|m| Ok((named_dir(&root, &m, &latest)?, m))) {
        Ok((dir, m)) => {
            tried = Some(m.step);
            match load_verified(&dir, &m.files) {
                Ok(c) => return Ok(Some(c)),
                Err(e) if is_version(&e) => return Err(e),
                Err(e) => problems.push(e.to_string()),
            }
        }
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) if is_version(&e) => return Err(e),
        Err(e) => problems.push(e.to_string()),
    }
    let dirs = step_dirs(&root);
    for s in dirs.iter().copied().filter(|s| Some(*s) != tried) {
        match load_dir(&root.join(step_dir_name(s))) {
            Ok(c) => {
                log::warn!("resuming from {} ({})", c.dir.display(), problems.join("; "));
                return Ok(Some(c));
            }
            Err(e) if is_version(&e) => return Err(e),
            Err(e) => problems.push(e.to_string()),
        }
    }
    if problems.is_empty() {
        return Ok(None);
    }
    Err(Error::Format {
        path: root.display().to_string(),
        line: None,
        message: format!("no checkpoint verifies: {}", problems.join("; ")),
    })
}

/// The checkpoint `best.json` names, verified.
pub fn load_best(out_dir: &Path) -> Result<Option<Checkpoint>> {
    let root = out_dir.join(CHECKPOINTS);
    let best = root.join(BEST);
    match read_manifest(&best) {
        Ok(m) => load_verified(&named_dir(&root, &m, &best)?, &m.files).map(Some),
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Read and verify one checkpoint directory against its own `manifest.json`.
pub fn load_dir(dir: &Path) -> Result<Checkpoint> {
    let m = read_manifest(&dir.join(MANIFEST))?;
    load_verified(dir, &m.files)
}

fn read_checked(dir: &Path, name: &str, files: &BTreeMap<String, FileSum>) -> Result<Vec<u8>> {
    let path = dir.join(name);
    let bad = |message: String| Error::Format { path: path.display().to_string(), line: None, message };
    let want = files.get(name).ok_or_else(|| bad("not listed in the manifest".into()))?;
    // Compared before reading: the manifest's number never sizes an allocation.
    let len = fs::metadata(&path).map_err(|e| Error::io(&path, e))?.len();
    if len != want.size {
        return Err(bad(format!("{len} bytes, the manifest says {}", want.size)));
    }
    let bytes = fs::read(&path).map_err(|e| Error::io(&path, e))?;
    if bytes.len() as u64 != want.size {
        return Err(bad(format!("{} bytes, the manifest says {}", bytes.len(), want.size)));
    }
    let got = crc32(&bytes);
    if got != want.crc32 {
        return Err(bad(format!("checksum {got:08x}, the manifest says {:08x}", want.crc32)));
    }
    Ok(bytes)
}

fn f32_tensors(path: &Path, bytes: &[u8]) -> Result<(NamedTensors, HashMap<String, String>)> {
    let bad = |message: String| Error::Format { path: path.display().to_string(), line: None, message };
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| bad(e.to_string()))?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| bad(e.to_string()))?;
    let mut out = Vec::new();
    for (k, v) in st.iter() {
        if v.dtype() != safetensors::Dtype::F32 {
            return Err(bad(format!("tensor '{k}' is {:?}, checkpoints hold F32", v.dtype())));
        }
        let vals: Vec<f32> =
            v.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        out.push((k.to_string(), v.shape().to_vec(), vals));
    }
    Ok((out, meta.metadata().clone().unwrap_or_default()))
}

fn load_verified(dir: &Path, files: &BTreeMap<String, FileSum>) -> Result<Checkpoint> {
    let pp = dir.join(PARAMS);
    let (params, _) = f32_tensors(&pp, &read_checked(dir, PARAMS, files)?)?;
    let op = dir.join(OPTIM);
    let (tensors, meta) = f32_tensors(&op, &read_checked(dir, OPTIM, files)?)?;
    let bad = |message: String| Error::Format { path: op.display().to_string(), line: None, message };
    let get = |k: &str| meta.get(k).ok_or_else(|| bad(format!("metadata '{k}' missing")));
    let step: u64 = get("step")?.parse().map_err(|e| bad(format!("metadata 'step': {e}")))?;
    let born: BTreeMap<String, u64> =
        serde_json::from_str(get("born")?).map_err(|e| bad(format!("metadata 'born': {e}")))?;
    let layout: BTreeMap<String, usize> =
        serde_json::from_str(get("moments")?).map_err(|e| bad(format!("metadata 'moments': {e}")))?;
    let names: Vec<&str> = get("names")?.split(',').filter(|s| !s.is_empty()).collect();
    if let Some(f) = meta.get("format") {
        if f != &FORMAT_VERSION.to_string() {
            return Err(bad(format!("metadata 'format' is {f}, the manifest's is {FORMAT_VERSION}")));
        }
    }
    let mut by_key: HashMap<String, Vec<f32>> = tensors.into_iter().map(|(k, _, v)| (k, v)).collect();
    let mut moments = BTreeMap::new();
    for (path, n) in layout {
        // Each moment is a tensor of the file: a larger count is a damaged file, and must not
        // size an allocation.
        if n > names.len().max(1) || n > by_key.len() {
            return Err(bad(format!("metadata 'moments' gives '{path}' {n} tensors; the file has fewer")));
        }
        let mut kinds = Vec::with_capacity(n);
        for k in 0..n {
            let name = names.get(k).copied().unwrap_or("state");
            let key = format!("{path}.{name}");
            kinds.push(by_key.remove(&key).ok_or_else(|| bad(format!("tensor '{key}' missing")))?);
        }
        moments.insert(path, kinds);
    }
    let sp = dir.join(STATE);
    let sb = read_checked(dir, STATE, files)?;
    let state: TrainState = serde_json::from_slice(&sb).map_err(|e| Error::Format {
        path: sp.display().to_string(),
        line: Some(e.line()),
        message: e.to_string(),
    })?;
    if state.step != step {
        return Err(bad(format!("optimizer step {step} but state.json says {}", state.step)));
    }
    Ok(Checkpoint { step, dir: dir.to_path_buf(), params, optim: OptimState { step, born, moments }, state })
}
