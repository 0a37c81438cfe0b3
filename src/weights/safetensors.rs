//! safetensors, memory-mapped and validated strictly (check F1 in shared/docs/reliability.md).
//!
//! The reference parser accepts duplicate keys, unknown fields and empty names; a checkpoint
//! with any of those is more likely damaged or hostile than meant, so this reader refuses it
//! with an error naming the file and the problem. Checked before any tensor is touched: header
//! length against the file, UTF-8 and JSON, known dtypes, shape × dtype size == byte range
//! (without overflow), ranges inside the data, no overlaps, no holes, no trailing bytes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::safetensors_header::{Header, RawTensor};
use super::{Bytes, TensorInfo, WeightDType, WeightSource};
use crate::error::{Error, Result};

/// Headers larger than this are refused (the reference implementation's limit).
pub const MAX_HEADER: u64 = 100_000_000;

struct Entry {
    info: TensorInfo,
    begin: usize,
    end: usize,
}

/// A validated, memory-mapped safetensors file.
pub struct SafeTensorsFile {
    path: PathBuf,
    map: Bytes,
    data_start: usize,
    entries: Vec<Entry>,
    /// Tensor name → position in `entries`.
    index: HashMap<String, usize>,
    /// `__metadata__` (string → string), if present.
    pub metadata: Vec<(String, String)>,
}

fn dtype(s: &str) -> Option<WeightDType> {
    Some(match s {
        "F64" => WeightDType::F64,
        "F32" => WeightDType::F32,
        "F16" => WeightDType::F16,
        "BF16" => WeightDType::BF16,
        "I64" => WeightDType::I64,
        "I32" => WeightDType::I32,
        "I16" => WeightDType::I16,
        "I8" => WeightDType::I8,
        "U8" => WeightDType::U8,
        "BOOL" => WeightDType::Bool,
        _ => return None,
    })
}

impl SafeTensorsFile {
    /// Open and validate `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        Self::from_bytes(path, Bytes::map(path)?)
    }

    /// Parse bytes already in memory; `path` only names them in errors.
    pub fn from_vec(path: impl AsRef<Path>, bytes: Vec<u8>) -> Result<Self> {
        Self::from_bytes(path.as_ref(), Bytes::Owned(bytes))
    }

    fn from_bytes(path: &Path, map: Bytes) -> Result<Self> {
        let (data_start, entries, metadata) = parse(&map).map_err(|message| Error::Format {
            path: path.display().to_string(),
            line: None,
            message,
        })?;
        let index = entries.iter().enumerate().map(|(i, e)| (e.info.name.clone(), i)).collect();
        Ok(SafeTensorsFile { path: path.to_path_buf(), map, data_start, entries, index, metadata })
    }

    /// The file this was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Raw little-endian bytes of `name`.
    pub fn bytes(&self, name: &str) -> Result<&[u8]> {
        let e = self.entry(name)?;
        Ok(&self.map[self.data_start + e.begin..self.data_start + e.end])
    }

    fn entry(&self, name: &str) -> Result<&Entry> {
        self.index.get(name).and_then(|&i| self.entries.get(i)).ok_or_else(|| Error::Format {
            path: self.path.display().to_string(),
            line: None,
            message: format!("no tensor named '{name}'"),
        })
    }
}

/// Start of the data, tensor entries, and `__metadata__`.
type Layout = (usize, Vec<Entry>, Vec<(String, String)>);

/// Validate the layout, or say what is wrong.
fn parse(buf: &[u8]) -> std::result::Result<Layout, String> {
    if buf.len() < 8 {
        return Err(format!("{} bytes is too short for a safetensors header length", buf.len()));
    }
    let n = u64::from_le_bytes(buf[..8].try_into().unwrap());
    if n > MAX_HEADER {
        return Err(format!("header length {n} exceeds the {MAX_HEADER}-byte limit"));
    }
    if n > (buf.len() - 8) as u64 {
        return Err(format!("header length {n} is past the end of the {}-byte file", buf.len()));
    }
    let n = n as usize;
    let header = std::str::from_utf8(&buf[8..8 + n]).map_err(|e| format!("header is not UTF-8: {e}"))?;
    // Syntax first (a pass that allocates nothing), so damage reads as such rather than as the
    // first type mismatch the structured pass happens to meet.
    serde_json::from_str::<serde::de::IgnoredAny>(header)
        .map_err(|e| format!("header is not a JSON object: {e}"))?;
    let mut de = serde_json::Deserializer::from_str(header);
    let h: Header = serde::Deserialize::deserialize(&mut de).map_err(|e| format!("header: {e}"))?;
    // Trailing spaces are how writers pad the header to alignment; anything else is garbage.
    de.end().map_err(|e| format!("header has trailing content: {e}"))?;
    let data_len = buf.len() - 8 - n;
    let entries =
        h.tensors.into_iter().map(|t| entry(t, data_len)).collect::<std::result::Result<Vec<_>, _>>()?;
    // Ranges must tile the data exactly: sorted, each starting where the previous ended.
    let mut ranges: Vec<(usize, usize, &str)> =
        entries.iter().map(|e| (e.begin, e.end, e.info.name.as_str())).collect();
    ranges.sort();
    let mut at = 0;
    for (b, e, name) in ranges {
        if b < at {
            return Err(format!(
                "'{name}' overlaps the previous tensor (starts at {b}, previous ends at {at})"
            ));
        }
        if b > at {
            return Err(format!("hole of {} bytes before '{name}'", b - at));
        }
        at = e;
    }
    if at != data_len {
        return Err(format!("{} trailing bytes after the last tensor", data_len - at));
    }
    Ok((8 + n, entries, h.metadata))
}

/// One tensor entry checked on its own: known dtype, shape × dtype size == byte range.
fn entry(t: RawTensor, data_len: usize) -> std::result::Result<Entry, String> {
    let RawTensor { name, dtype: dt, shape, offsets } = t;
    let dt = dt.ok_or_else(|| format!("'{name}': missing dtype"))?;
    let dt = dtype(&dt).ok_or_else(|| format!("'{name}': unknown dtype '{dt}'"))?;
    let shape: Vec<usize> = shape
        .ok_or_else(|| format!("'{name}': missing shape"))?
        .into_iter()
        .map(usize::try_from)
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| format!("'{name}': shape is not a list of non-negative integers"))?;
    let (begin, end) = offsets.ok_or_else(|| format!("'{name}': data_offsets must be [begin, end]"))?;
    let (begin, end) = (
        usize::try_from(begin).map_err(|_| format!("'{name}': data_offsets overflow"))?,
        usize::try_from(end).map_err(|_| format!("'{name}': data_offsets overflow"))?,
    );
    if begin > end {
        return Err(format!("'{name}': data_offsets [{begin}, {end}] run backwards"));
    }
    if end > data_len {
        return Err(format!("'{name}': data_offsets end {end} is past the {data_len} data bytes"));
    }
    let bytes = shape
        .iter()
        .try_fold(dt.size(), |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("'{name}': shape {shape:?} overflows"))?;
    if bytes != end - begin {
        return Err(format!(
            "'{name}': shape {shape:?} of {dt:?} needs {bytes} bytes but data_offsets span {}",
            end - begin
        ));
    }
    Ok(Entry { info: TensorInfo { name, dtype: dt, shape }, begin, end })
}

/// Convert little-endian bytes of `dt` to f32. Integer tensors (BatchNorm's
/// `num_batches_tracked`, BERT's `position_ids`) convert too, exactly below 2^24: the binder
/// refuses them as weights by dtype before reading, and the exporter copies them through.
pub fn to_f32(bytes: &[u8], dt: WeightDType, name: &str) -> Result<Vec<f32>> {
    let chunks = |k: usize| bytes.chunks_exact(k);
    Ok(match dt {
        WeightDType::F32 => chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect(),
        WeightDType::F64 => chunks(8).map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32).collect(),
        WeightDType::F16 => chunks(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        WeightDType::BF16 => chunks(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        WeightDType::I64 => chunks(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f32).collect(),
        WeightDType::I32 => chunks(4).map(|c| i32::from_le_bytes(c.try_into().unwrap()) as f32).collect(),
        WeightDType::I16 => chunks(2).map(|c| i16::from_le_bytes([c[0], c[1]]) as f32).collect(),
        WeightDType::I8 => bytes.iter().map(|&b| b as i8 as f32).collect(),
        WeightDType::U8 | WeightDType::Bool => bytes.iter().map(|&b| b as f32).collect(),
        other => return Err(Error::arg("read_f32", format!("'{name}' is {other:?}, not a plain dtype"))),
    })
}

impl WeightSource for SafeTensorsFile {
    fn tensors(&self) -> Vec<TensorInfo> {
        self.entries.iter().map(|e| e.info.clone()).collect()
    }

    fn read_f32(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>)> {
        let e = self.entry(name)?;
        let data = to_f32(self.bytes(name)?, e.info.dtype, name)?;
        Ok((data, e.info.shape.clone()))
    }

    fn read_blocks(&self, name: &str) -> Result<Option<super::QuantBlocks>> {
        let e = self.entry(name)?;
        if !e.info.dtype.is_half() {
            return Ok(None);
        }
        let bytes = self.bytes(name)?.to_vec();
        Ok(Some(super::QuantBlocks { dtype: e.info.dtype, bytes, shape: e.info.shape.clone() }))
    }
}
