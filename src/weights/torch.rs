//! PyTorch checkpoints (`torch.save` output: `.pth`, `.pt`, `.bin`), read without Python and
//! without executing the pickle (see [`super::pickle`]). Two containers:
//!
//! - **zip** (torch ≥ 1.6): `<prefix>/data.pkl` (the object, storages as persistent ids),
//!   `<prefix>/data/<key>` (each storage's raw bytes, stored uncompressed), `<prefix>/byteorder`.
//! - **legacy**: five concatenated pickles (magic number 0x1950a86a20f9469cfc6c, protocol version,
//!   sys_info, the object, the list of storage keys), then for each key in that list's order a
//!   u64 element count and the storage's raw bytes.
//!
//! **Which tensors.** The object is usually a state dict, sometimes a training checkpoint
//! wrapping one. Rule: if the top-level dict has an entry named `state_dict`, `model_state_dict`,
//! `model`, `module` or `net` (first present, in that order) whose value is a dict holding at
//! least one tensor, that dict is used instead (applied again inside it, so
//! `{"model": {"state_dict": ...}}` works). The chosen dict is flattened: nested dicts become
//! dotted names (`encoder.layer.weight`), tensors are kept, other values (epoch numbers,
//! optimizer lists) are skipped.
//!
//! Every storage's byte range is checked against the file, and every tensor's view
//! (offset + Σ (size−1)·stride) against its storage, when the file is opened. A view may not
//! hold more elements than its storage (a stride-0 expansion would turn a few bytes into
//! gigabytes on read), and flattening is charged to a budget proportional to the pickle's size,
//! since shared sub-dicts can make a small pickle describe an exponentially large tree.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::pickle::{self, Dict, StorageRef, TensorRef, Value};
use super::{format_err, numel, Bytes, TensorInfo, WeightDType, WeightSource};
use crate::error::{Error, Result};

/// The first bytes of a legacy file: PROTO 2, LONG1 of 10 bytes, the magic number.
pub const LEGACY_MAGIC: &[u8] = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19";

/// Keys that wrap the state dict in training checkpoints, in priority order.
pub const WRAPPER_KEYS: [&str; 5] = ["state_dict", "model_state_dict", "model", "module", "net"];

/// Object graphs with more nodes than this are refused while flattening.
const MAX_NODES: usize = 1 << 22;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TorchFormat {
    Zip,
    Legacy,
}

struct Storage {
    dtype: WeightDType,
    numel: u64,
    /// Absolute byte offset in the file.
    begin: usize,
}

/// A PyTorch state dict, memory-mapped.
pub struct TorchFile {
    path: PathBuf,
    bytes: Bytes,
    format: TorchFormat,
    storages: HashMap<Arc<str>, Storage>,
    tensors: Vec<(String, Arc<TensorRef>)>,
    /// Tensor name → position in `tensors`.
    index: HashMap<String, usize>,
}

type Msg<T> = std::result::Result<T, String>;

impl TorchFile {
    /// Open `path` (zip or legacy, told apart by the first bytes).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        Self::from_bytes(path, Bytes::map(path)?)
    }

    /// Parse bytes already in memory; `path` only names them in errors.
    pub fn from_vec(path: impl AsRef<Path>, bytes: Vec<u8>) -> Result<Self> {
        Self::from_bytes(path.as_ref(), Bytes::Owned(bytes))
    }

    fn from_bytes(path: &Path, bytes: Bytes) -> Result<Self> {
        let (format, Parsed { root, storages, pickle_len }) = if bytes.starts_with(b"PK\x03\x04") {
            (TorchFormat::Zip, parse_zip(&bytes).map_err(|e| e.at(path))?)
        } else if bytes.starts_with(LEGACY_MAGIC) {
            (TorchFormat::Legacy, parse_legacy(&bytes).map_err(|m| format_err(path, m))?)
        } else {
            return Err(format_err(
                path,
                "not a PyTorch checkpoint (neither a zip nor the legacy magic number)",
            ));
        };
        let mut walk = Walk::for_pickle(pickle_len);
        let tensors = choose(&root, &mut walk).map_err(|m| format_err(path, m))?;
        let mut index = HashMap::with_capacity(tensors.len());
        for (i, (name, t)) in tensors.iter().enumerate() {
            if index.insert(name.clone(), i).is_some() {
                return Err(format_err(path, format!("tensor name '{name}' appears twice after flattening")));
            }
            check_view(name, t, &storages).map_err(|m| format_err(path, m))?;
        }
        Ok(TorchFile { path: path.to_path_buf(), bytes, format, storages, tensors, index })
    }

    /// Zip or legacy.
    pub fn format(&self) -> TorchFormat {
        self.format
    }

    /// The file this was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Parse failures that are not damage: an unsupported feature (compressed zip entries, a
/// big-endian file) is `Unsupported`, the rest `Format`.
enum Fail {
    Format(String),
    Unsupported(String),
}

impl Fail {
    fn at(self, path: &Path) -> Error {
        match self {
            Fail::Format(m) => format_err(path, m),
            Fail::Unsupported(m) => Error::Unsupported(format!("{}: {m}", path.display())),
        }
    }
}

impl From<&str> for Fail {
    fn from(m: &str) -> Self {
        Fail::Format(m.into())
    }
}

impl From<String> for Fail {
    fn from(m: String) -> Self {
        Fail::Format(m)
    }
}

/// What a container yields: the unpickled object, its storages, and the pickle's size (the
/// flattening budget is proportional to it).
struct Parsed {
    root: Value,
    storages: HashMap<Arc<str>, Storage>,
    pickle_len: usize,
}

/// Record each storage's dtype and claimed size, refusing a key used with two dtypes.
fn storage_table(refs: &[Arc<StorageRef>]) -> Msg<HashMap<Arc<str>, (WeightDType, u64)>> {
    let mut t: HashMap<Arc<str>, (WeightDType, u64)> = HashMap::new();
    for s in refs {
        match t.get(&s.key) {
            Some(&(dt, n)) if (dt, n) != (s.dtype, s.numel) => {
                return Err(format!(
                    "storage '{}' is named as {dt:?}×{n} and as {:?}×{}",
                    s.key, s.dtype, s.numel
                ))
            }
            _ => {
                t.insert(s.key.clone(), (s.dtype, s.numel));
            }
        }
    }
    Ok(t)
}

fn nbytes(dt: WeightDType, numel: u64, key: &str) -> Msg<u64> {
    numel.checked_mul(dt.size() as u64).ok_or_else(|| format!("storage '{key}': size overflows"))
}

fn parse_zip(buf: &[u8]) -> std::result::Result<Parsed, Fail> {
    let mut z =
        zip::ZipArchive::new(std::io::Cursor::new(buf)).map_err(|e| format!("bad zip archive: {e}"))?;
    // Entry name → index; the archive's top folder is named after the file, so find data.pkl.
    let names: HashMap<String, usize> =
        (0..z.len()).filter_map(|i| z.by_index_raw(i).ok().map(|f| (f.name().to_string(), i))).collect();
    let pkl = names
        .keys()
        .filter(|n| n.ends_with("data.pkl") && n.matches('/').count() <= 1)
        .min_by_key(|n| n.len())
        .ok_or("zip archive has no data.pkl: not a torch.save file")?
        .clone();
    let prefix = &pkl[..pkl.len() - "data.pkl".len()];
    // Stored entries are read straight from the map; returns the absolute byte range.
    let mut entry = |name: &str| -> std::result::Result<Option<(usize, usize)>, Fail> {
        let Some(&i) = names.get(name) else { return Ok(None) };
        let f = z.by_index_raw(i).map_err(|e| format!("zip entry {name}: {e}"))?;
        if f.compression() != zip::CompressionMethod::Stored {
            return Err(Fail::Unsupported(format!(
                "zip entry {name} is compressed ({:?}); torch.save stores entries uncompressed",
                f.compression()
            )));
        }
        let start = f.data_start().ok_or_else(|| format!("zip entry {name}: no data offset"))?;
        let size = f.compressed_size();
        if size != f.size() || start.checked_add(size).is_none_or(|e| e > buf.len() as u64) {
            return Err(format!(
                "zip entry {name}: {size} bytes at {start} run past the {}-byte file",
                buf.len()
            )
            .into());
        }
        Ok(Some((start as usize, (start + size) as usize)))
    };
    if let Some((b, e)) = entry(&format!("{prefix}byteorder"))? {
        if &buf[b..e] != b"little" {
            return Err(Fail::Unsupported(format!("byte order '{}'", String::from_utf8_lossy(&buf[b..e]))));
        }
    }
    let (b, e) = entry(&pkl)?.ok_or("data.pkl vanished")?;
    let loaded = pickle::load(&buf[b..e]).map_err(|m| format!("{pkl}: {m}"))?;
    let table = storage_table(&loaded.storages)?;
    let mut storages = HashMap::new();
    for (key, (dtype, numel)) in table {
        let name = format!("{prefix}data/{key}");
        let (b, e) = entry(&name)?.ok_or_else(|| format!("storage '{key}' has no entry {name}"))?;
        let need = nbytes(dtype, numel, &key)?;
        if (e - b) as u64 != need {
            return Err(format!(
                "storage '{key}': {need} bytes expected ({numel} × {dtype:?}) but {name} has {}",
                e - b
            )
            .into());
        }
        storages.insert(key, Storage { dtype, numel, begin: b });
    }
    Ok(Parsed { root: loaded.value, storages, pickle_len: e - b })
}

fn parse_legacy(buf: &[u8]) -> Msg<Parsed> {
    let mut pos = 0;
    let mut next = |what: &str| -> Msg<pickle::Loaded> {
        let l = pickle::load(&buf[pos..]).map_err(|m| format!("legacy {what} pickle at byte {pos}: {m}"))?;
        pos += l.end;
        Ok(l)
    };
    // LEGACY_MAGIC already matched the magic number; the protocol version must be 1001.
    next("magic")?;
    match next("protocol version")?.value {
        Value::Int(1001) => {}
        v => return Err(format!("legacy protocol version is a {} other than 1001", v.kind())),
    }
    if let Value::Dict(d) = next("sys_info")?.value {
        if matches!(d.get("little_endian"), Some(Value::Bool(false))) {
            return Err("big-endian legacy checkpoints are not supported".into());
        }
    }
    let main = next("object")?;
    let table = storage_table(&main.storages)?;
    let keys = match next("storage keys")?.value {
        Value::List(l) => l.items().clone(),
        v => return Err(format!("legacy storage key list is a {}", v.kind())),
    };
    let mut storages = HashMap::new();
    for k in keys {
        let name: std::borrow::Cow<str> = match &k {
            Value::Str(s) => (&**s).into(),
            Value::Int(i) => i.to_string().into(),
            v => return Err(format!("legacy storage key is a {}", v.kind())),
        };
        // The table's own key is reused: the list may repeat one huge memoized string.
        let (key, &(dtype, numel)) = table
            .get_key_value(&*name)
            .ok_or_else(|| format!("storage key '{}' is not used by the object", short(&name)))?;
        let key = key.clone();
        if pos + 8 > buf.len() {
            return Err(format!("storage '{key}': file ends at {} before its size header", buf.len()));
        }
        let n = u64::from_le_bytes(buf[pos..pos + 8].try_into().unwrap());
        if n != numel {
            return Err(format!("storage '{key}': header says {n} elements, the pickle {numel}"));
        }
        let need = nbytes(dtype, numel, &key)?;
        let begin = pos + 8;
        if need > (buf.len() - begin) as u64 {
            return Err(format!(
                "storage '{key}' truncated: needs {need} bytes at {begin} but the file has {} left",
                buf.len() - begin
            ));
        }
        pos = begin + need as usize;
        if storages.insert(key.clone(), Storage { dtype, numel, begin }).is_some() {
            return Err(format!("storage key '{key}' listed twice"));
        }
    }
    if let Some(k) = table.keys().find(|k| !storages.contains_key(*k)) {
        return Err(format!("storage '{k}' is used but not in the key list"));
    }
    if pos != buf.len() {
        return Err(format!("{} trailing bytes after the last storage", buf.len() - pos));
    }
    Ok(Parsed { root: main.value, storages, pickle_len: main.end })
}

/// At most 80 characters of a name taken from the file, for messages.
fn short(s: &str) -> String {
    s.chars().take(80).collect()
}

/// What flattening may still spend: dict entries visited, and bytes of names and views kept.
struct Walk {
    nodes: usize,
    bytes: usize,
}

impl Walk {
    fn for_pickle(len: usize) -> Walk {
        let bytes =
            len.saturating_mul(pickle::value::BUDGET_PER_BYTE).saturating_add(pickle::value::BUDGET_BASE);
        Walk { nodes: MAX_NODES, bytes }
    }

    fn visit(&mut self) -> Msg<()> {
        self.nodes = self.nodes.checked_sub(1).ok_or("object graph too large (shared sub-dicts?)")?;
        Ok(())
    }

    fn keep(&mut self, bytes: usize) -> Msg<()> {
        self.bytes = self
            .bytes
            .checked_sub(bytes)
            .ok_or("flattened names take more memory than the pickle's size allows (shared sub-dicts?)")?;
        Ok(())
    }
}

/// Pick the state dict (see the module docs) and flatten it.
fn choose(root: &Value, walk: &mut Walk) -> Msg<Vec<(String, Arc<TensorRef>)>> {
    let Value::Dict(d) = root else {
        return Err(format!("the checkpoint holds a {}, not a dict of tensors", root.kind()));
    };
    let mut d = d.clone();
    // Each step goes one dict deeper, so this ends within the parser's depth limit.
    'descend: loop {
        for key in WRAPPER_KEYS {
            if let Some(Value::Dict(inner)) = d.get(key) {
                if has_tensor(&inner, 0, walk)? {
                    d = inner;
                    continue 'descend;
                }
            }
        }
        break;
    }
    let mut out = Vec::new();
    flatten(&d, "", 0, walk, &mut out)?;
    if out.is_empty() {
        return Err("no tensors in the checkpoint".into());
    }
    Ok(out)
}

/// Whether `d` or a dict inside it holds a tensor.
fn has_tensor(d: &Dict, depth: usize, walk: &mut Walk) -> Msg<bool> {
    if depth > pickle::MAX_DEPTH {
        return Err(format!("dicts nested deeper than {}", pickle::MAX_DEPTH));
    }
    for (_, v) in d.entries().iter() {
        walk.visit()?;
        match v {
            Value::Tensor(_) => return Ok(true),
            Value::Dict(inner) if has_tensor(inner, depth + 1, walk)? => return Ok(true),
            _ => {}
        }
    }
    Ok(false)
}

fn flatten(
    d: &Dict,
    prefix: &str,
    depth: usize,
    walk: &mut Walk,
    out: &mut Vec<(String, Arc<TensorRef>)>,
) -> Msg<()> {
    if depth > pickle::MAX_DEPTH {
        return Err(format!("dicts nested deeper than {}", pickle::MAX_DEPTH));
    }
    for (k, v) in d.entries().iter() {
        walk.visit()?;
        if !matches!(v, Value::Tensor(_) | Value::Dict(_)) {
            continue;
        }
        let key = match k {
            Value::Str(s) => s.to_string(),
            Value::Int(i) => i.to_string(),
            _ => continue,
        };
        let name = if prefix.is_empty() { key } else { format!("{prefix}.{key}") };
        walk.keep(name.len() + 2 * std::mem::size_of::<(String, usize)>())?;
        match v {
            Value::Tensor(t) => out.push((name, t.clone())),
            Value::Dict(inner) => flatten(inner, &name, depth + 1, walk, out)?,
            _ => {}
        }
    }
    Ok(())
}

/// The view must stay inside its storage, hold no more elements than it, and match its dtype.
fn check_view(name: &str, t: &TensorRef, storages: &HashMap<Arc<str>, Storage>) -> Msg<()> {
    let s = storages
        .get(&t.storage.key)
        .ok_or_else(|| format!("'{name}': storage '{}' is missing", t.storage.key))?;
    if s.dtype != t.storage.dtype {
        return Err(format!(
            "'{name}': storage '{}' is {:?}, the tensor says {:?}",
            t.storage.key, s.dtype, t.storage.dtype
        ));
    }
    let n = numel(&t.shape).ok_or_else(|| format!("'{name}': shape {:?} overflows", t.shape))?;
    if n == 0 {
        return Ok(());
    }
    if n as u64 > s.numel {
        return Err(format!(
            "'{name}': view of shape {:?} has {n} elements, more than the {} of storage '{}' (expanded views are not supported)",
            t.shape, s.numel, t.storage.key
        ));
    }
    let last = t
        .shape
        .iter()
        .zip(&t.stride)
        .try_fold(t.offset, |acc, (&d, &st)| {
            ((d - 1) as u64).checked_mul(st as u64).and_then(|x| acc.checked_add(x))
        })
        .ok_or_else(|| format!("'{name}': view overflows"))?;
    if last >= s.numel {
        return Err(format!(
            "'{name}': view (offset {}, shape {:?}, stride {:?}) reaches element {last} past the {} elements of storage '{}'",
            t.offset, t.shape, t.stride, s.numel, t.storage.key
        ));
    }
    Ok(())
}

/// Copy a strided view's elements into row-major order.
fn gather(data: &[u8], t: &TensorRef, el: usize) -> Vec<u8> {
    let n = numel(&t.shape).unwrap_or(0);
    if n == 0 {
        // An empty view's offset is unchecked (nothing is read), so it must not index.
        return Vec::new();
    }
    let mut out = Vec::with_capacity(n * el);
    let contiguous = {
        let mut expect = 1;
        t.shape.iter().zip(&t.stride).rev().all(|(&d, &s)| {
            let ok = d == 1 || s == expect;
            expect *= d;
            ok
        })
    };
    let off = t.offset as usize;
    if contiguous {
        out.extend_from_slice(&data[off * el..(off + n) * el]);
        return out;
    }
    let mut idx = vec![0usize; t.shape.len()];
    for _ in 0..n {
        let e = off + idx.iter().zip(&t.stride).map(|(i, s)| i * s).sum::<usize>();
        out.extend_from_slice(&data[e * el..(e + 1) * el]);
        // Odometer increment, innermost dim fastest.
        for d in (0..idx.len()).rev() {
            idx[d] += 1;
            if idx[d] < t.shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    out
}

impl WeightSource for TorchFile {
    fn tensors(&self) -> Vec<TensorInfo> {
        self.tensors
            .iter()
            .map(|(n, t)| TensorInfo { name: n.clone(), dtype: t.storage.dtype, shape: t.shape.clone() })
            .collect()
    }

    fn read_f32(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>)> {
        let (_, t) = self
            .index
            .get(name)
            .and_then(|&i| self.tensors.get(i))
            .ok_or_else(|| format_err(&self.path, format!("no tensor named '{name}'")))?;
        // Validated at open: the storage exists and the view lies inside it.
        let s = self.storages.get(&t.storage.key).ok_or_else(|| {
            format_err(&self.path, format!("'{name}': storage '{}' is missing", t.storage.key))
        })?;
        let el = s.dtype.size();
        let data = &self.bytes[s.begin..s.begin + s.numel as usize * el];
        let bytes = gather(data, t, el);
        let v = super::safetensors::to_f32(&bytes, s.dtype, name)?;
        Ok((v, t.shape.clone()))
    }
}
