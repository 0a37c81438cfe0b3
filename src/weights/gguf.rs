//! GGUF (v2 and v3), memory-mapped. Layout: magic `GGUF`, version u32, tensor count u64,
//! metadata count u64, the metadata key/values, the tensor infos, padding to
//! `general.alignment` (default 32), then the tensor data (offsets relative to its start).
//!
//! Dims are stored innermost-first (ggml's ne[0] is the row length); [`TensorInfo::shape`] is
//! reported row-major, as torch and HF would (`[rows, cols]`). Every count and length is checked
//! against the bytes left before anything is allocated, and every tensor's byte range against
//! the file, so a crafted file is an error and never a panic or a huge allocation. Metadata
//! arrays are stored by element type ([`MetaArray`]), so they cost memory in proportion to
//! their bytes in the file, and keys and tensor names are looked up by hash.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use super::gguf_meta::{MetaArray, MetaValue};
use super::{format_err, numel, quant, Bytes, TensorInfo, WeightDType, WeightSource};
use crate::error::{Error, Result};

struct Entry {
    info: TensorInfo,
    /// Absolute byte range in the file.
    begin: usize,
    end: usize,
}

/// A validated, memory-mapped GGUF file.
pub struct GgufFile {
    path: PathBuf,
    bytes: Bytes,
    pub version: u32,
    metadata: Vec<(String, MetaValue)>,
    /// Metadata key → position in `metadata`.
    keys: HashMap<String, usize>,
    entries: Vec<Entry>,
    /// Tensor name → position in `entries`.
    names: HashMap<String, usize>,
    alignment: usize,
}

/// Nested metadata arrays deeper than this are refused.
const MAX_ARRAY_DEPTH: usize = 8;
/// Tensor ranks above this are refused (ggml's limit is 4).
const MAX_DIMS: u32 = 8;

/// ggml type id → dtype; `Err` carries the type's name when known.
fn ggml_type(t: u32) -> std::result::Result<WeightDType, String> {
    use WeightDType::*;
    Ok(match t {
        0 => F32,
        1 => F16,
        2 => Q4_0,
        3 => Q4_1,
        6 => Q5_0,
        7 => Q5_1,
        8 => Q8_0,
        12 => Q4_K,
        14 => Q6_K,
        24 => I8,
        25 => I16,
        26 => I32,
        27 => I64,
        28 => F64,
        30 => BF16,
        9 => return Err("Q8_1".into()),
        10 => return Err("Q2_K".into()),
        11 => return Err("Q3_K".into()),
        13 => return Err("Q5_K".into()),
        15 => return Err("Q8_K".into()),
        16..=23 | 29 => return Err(format!("IQ/TQ type {t}")),
        _ => return Err(format!("unknown type {t}")),
    })
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: u64, what: &str) -> std::result::Result<&'a [u8], String> {
        let left = (self.buf.len() - self.pos) as u64;
        if n > left {
            return Err(format!(
                "{what} needs {n} bytes at offset {} but the file has {left} left",
                self.pos
            ));
        }
        let s = &self.buf[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }
    fn arr<const N: usize>(&mut self, what: &str) -> std::result::Result<[u8; N], String> {
        Ok(self.take(N as u64, what)?.try_into().unwrap())
    }
    fn u32(&mut self, what: &str) -> std::result::Result<u32, String> {
        Ok(u32::from_le_bytes(self.arr(what)?))
    }
    fn u64(&mut self, what: &str) -> std::result::Result<u64, String> {
        Ok(u64::from_le_bytes(self.arr(what)?))
    }
    fn string(&mut self, what: &str) -> std::result::Result<String, String> {
        let n = self.u64(what)?;
        let at = self.pos;
        String::from_utf8(self.take(n, what)?.to_vec())
            .map_err(|_| format!("{what} at offset {at} is not UTF-8"))
    }
    fn value(&mut self, ty: u32, key: &str, depth: usize) -> std::result::Result<MetaValue, String> {
        Ok(match ty {
            0 => MetaValue::U8(self.arr::<1>(key)?[0]),
            1 => MetaValue::I8(self.arr::<1>(key)?[0] as i8),
            2 => MetaValue::U16(u16::from_le_bytes(self.arr(key)?)),
            3 => MetaValue::I16(i16::from_le_bytes(self.arr(key)?)),
            4 => MetaValue::U32(u32::from_le_bytes(self.arr(key)?)),
            5 => MetaValue::I32(i32::from_le_bytes(self.arr(key)?)),
            6 => MetaValue::F32(f32::from_le_bytes(self.arr(key)?)),
            7 => match self.arr::<1>(key)?[0] {
                0 => MetaValue::Bool(false),
                1 => MetaValue::Bool(true),
                b => return Err(format!("metadata '{key}': bool byte {b}")),
            },
            8 => MetaValue::Str(self.string(key)?),
            9 => MetaValue::Array(self.array(key, depth)?),
            10 => MetaValue::U64(u64::from_le_bytes(self.arr(key)?)),
            11 => MetaValue::I64(i64::from_le_bytes(self.arr(key)?)),
            12 => MetaValue::F64(f64::from_le_bytes(self.arr(key)?)),
            t => return Err(format!("metadata '{key}': unknown value type {t}")),
        })
    }

    /// An array: element type, count, elements. The count is checked against the bytes left
    /// (at the element type's smallest encoding) before anything is allocated.
    fn array(&mut self, key: &str, depth: usize) -> std::result::Result<MetaArray, String> {
        if depth >= MAX_ARRAY_DEPTH {
            return Err(format!("metadata '{key}': arrays nested deeper than {MAX_ARRAY_DEPTH}"));
        }
        let ety = self.u32(key)?;
        let n = self.u64(key)?;
        let min = match ety {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            8 | 10..=12 => 8,
            // A nested array's own type and count.
            9 => 12,
            t => return Err(format!("metadata '{key}': unknown value type {t}")),
        };
        let left = (self.buf.len() - self.pos) as u64;
        if n.checked_mul(min).is_none_or(|b| b > left) {
            return Err(format!("metadata '{key}': array of {n} elements is longer than the file"));
        }
        let n = n as usize;
        Ok(match ety {
            0 => MetaArray::U8(self.take(n as u64, key)?.to_vec()),
            1 => MetaArray::I8(self.fixed(n, key, |b: [u8; 1]| b[0] as i8)?),
            2 => MetaArray::U16(self.fixed(n, key, u16::from_le_bytes)?),
            3 => MetaArray::I16(self.fixed(n, key, i16::from_le_bytes)?),
            4 => MetaArray::U32(self.fixed(n, key, u32::from_le_bytes)?),
            5 => MetaArray::I32(self.fixed(n, key, i32::from_le_bytes)?),
            6 => MetaArray::F32(self.fixed(n, key, f32::from_le_bytes)?),
            7 => {
                let b = self.take(n as u64, key)?;
                if let Some(x) = b.iter().find(|&&x| x > 1) {
                    return Err(format!("metadata '{key}': bool byte {x}"));
                }
                MetaArray::Bool(b.iter().map(|&x| x == 1).collect())
            }
            8 => MetaArray::Str((0..n).map(|_| self.string(key)).collect::<std::result::Result<_, _>>()?),
            9 => MetaArray::Array(
                (0..n).map(|_| self.array(key, depth + 1)).collect::<std::result::Result<_, _>>()?,
            ),
            10 => MetaArray::U64(self.fixed(n, key, u64::from_le_bytes)?),
            11 => MetaArray::I64(self.fixed(n, key, i64::from_le_bytes)?),
            _ => MetaArray::F64(self.fixed(n, key, f64::from_le_bytes)?),
        })
    }

    /// `n` fixed-size little-endian elements.
    fn fixed<const N: usize, T>(
        &mut self,
        n: usize,
        key: &str,
        f: impl Fn([u8; N]) -> T,
    ) -> std::result::Result<Vec<T>, String> {
        let b = self.take((n * N) as u64, key)?;
        Ok(b.chunks_exact(N)
            .map(|c| {
                let mut a = [0u8; N];
                a.copy_from_slice(c);
                f(a)
            })
            .collect())
    }
}

/// What [`parse`] finds: version, metadata (with its key index), tensors, alignment.
struct Parsed {
    version: u32,
    metadata: Vec<(String, MetaValue)>,
    keys: HashMap<String, usize>,
    entries: Vec<Entry>,
    names: HashMap<String, usize>,
    alignment: usize,
}

fn parse(buf: &[u8]) -> std::result::Result<Parsed, String> {
    let mut c = Cursor { buf, pos: 0 };
    if c.take(4, "magic")? != b"GGUF" {
        return Err("not a GGUF file (magic is not 'GGUF')".into());
    }
    let version = c.u32("version")?;
    if !(2..=3).contains(&version) {
        return Err(format!("GGUF version {version} is not supported (2 and 3 are)"));
    }
    let n_tensors = c.u64("tensor count")?;
    let n_kv = c.u64("metadata count")?;
    // Each key/value needs >= 13 bytes and each tensor info >= 24: counts past that are lies.
    let left = (buf.len() - c.pos) as u64;
    if n_kv > left / 13 || n_tensors > left / 24 {
        return Err(format!("{n_kv} metadata entries and {n_tensors} tensors cannot fit in {left} bytes"));
    }
    let mut metadata: Vec<(String, MetaValue)> = Vec::with_capacity(n_kv as usize);
    let mut keys = HashMap::with_capacity(n_kv as usize);
    for _ in 0..n_kv {
        let key = c.string("metadata key")?;
        if keys.contains_key(&key) {
            return Err(format!("duplicate metadata key '{}'", key.chars().take(80).collect::<String>()));
        }
        let ty = c.u32(&key)?;
        let v = c.value(ty, &key, 0)?;
        keys.insert(key.clone(), metadata.len());
        metadata.push((key, v));
    }
    let alignment = match keys.get("general.alignment").map(|&i| &metadata[i].1) {
        None => 32,
        Some(v) => match v.as_i64() {
            Some(a) if a > 0 && (a as u64).is_power_of_two() && a <= 1 << 20 => a as usize,
            _ => return Err(format!("general.alignment {v:?} is not a power of two")),
        },
    };
    let (entries, names) = tensor_infos(&mut c, n_tensors, alignment)?;
    Ok(Parsed { version, metadata, keys, entries, names, alignment })
}

/// The tensor infos after the metadata, each checked against the data section.
fn tensor_infos(
    c: &mut Cursor,
    n_tensors: u64,
    alignment: usize,
) -> std::result::Result<(Vec<Entry>, HashMap<String, usize>), String> {
    let buf = c.buf;
    let mut raw = Vec::with_capacity(n_tensors as usize);
    let mut names = HashMap::with_capacity(n_tensors as usize);
    for i in 0..n_tensors as usize {
        let name = c.string("tensor name")?;
        if names.insert(name.clone(), i).is_some() {
            return Err(format!("duplicate tensor '{name}'"));
        }
        let nd = c.u32(&name)?;
        if nd > MAX_DIMS {
            return Err(format!("'{name}': {nd} dims (at most {MAX_DIMS})"));
        }
        let mut dims = Vec::with_capacity(nd as usize);
        for _ in 0..nd {
            let d = c.u64(&name)?;
            dims.push(usize::try_from(d).map_err(|_| format!("'{name}': dim {d} overflows"))?);
        }
        let ty = c.u32(&name)?;
        let dtype = ggml_type(ty).map_err(|t| format!("'{name}': ggml type {t} is not supported"))?;
        let offset = c.u64(&name)?;
        raw.push((name, dims, dtype, offset));
    }
    let data_start = c.pos.div_ceil(alignment) * alignment;
    if data_start > buf.len() {
        return Err(format!("data section starts at {data_start}, past the {}-byte file", buf.len()));
    }
    let data_len = (buf.len() - data_start) as u64;
    let mut entries = Vec::with_capacity(raw.len());
    for (name, dims, dtype, offset) in raw {
        let n = numel(&dims).ok_or_else(|| format!("'{name}': dims {dims:?} overflow"))?;
        let (be, bb) = dtype.block();
        // Blocks run along the row (ne[0]); a row that is not whole blocks cannot be decoded.
        if dims.first().is_some_and(|&r| r % be != 0) {
            return Err(format!(
                "'{name}': row length {} is not a multiple of the {dtype:?} block of {be}",
                dims[0]
            ));
        }
        let bytes = (n / be).checked_mul(bb).ok_or_else(|| format!("'{name}': size overflows"))? as u64;
        if offset % alignment as u64 != 0 {
            return Err(format!("'{name}': offset {offset} is not aligned to {alignment}"));
        }
        if offset.checked_add(bytes).is_none_or(|e| e > data_len) {
            return Err(format!(
                "'{name}': {bytes} bytes at data offset {offset} run past the {data_len} data bytes"
            ));
        }
        let begin = data_start + offset as usize;
        let shape: Vec<usize> = dims.iter().rev().copied().collect();
        entries.push(Entry { info: TensorInfo { name, dtype, shape }, begin, end: begin + bytes as usize });
    }
    Ok((entries, names))
}

/// Whether the file at `path` starts with GGUF's magic (without reading further).
pub fn is_gguf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && &magic == b"GGUF"
}

impl GgufFile {
    /// Open and validate `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        Self::from_bytes(path, Bytes::map(path)?)
    }

    /// Parse bytes already in memory; `path` only names them in errors.
    pub fn from_vec(path: impl AsRef<Path>, bytes: Vec<u8>) -> Result<Self> {
        Self::from_bytes(path.as_ref(), Bytes::Owned(bytes))
    }

    fn from_bytes(path: &Path, bytes: Bytes) -> Result<Self> {
        let Parsed { version, metadata, keys, entries, names, alignment } =
            parse(&bytes).map_err(|m| format_err(path, m))?;
        Ok(GgufFile { path: path.to_path_buf(), bytes, version, metadata, keys, entries, names, alignment })
    }

    /// The file this was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The data alignment (`general.alignment`, default 32).
    pub fn alignment(&self) -> usize {
        self.alignment
    }

    /// Every metadata entry, in file order.
    pub fn metadata(&self) -> &[(String, MetaValue)] {
        &self.metadata
    }

    /// The metadata value `key`, if present.
    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.keys.get(key).and_then(|&i| self.metadata.get(i)).map(|(_, v)| v)
    }

    fn need(&self, key: &str) -> Result<&MetaValue> {
        self.get(key).ok_or_else(|| format_err(&self.path, format!("missing metadata key '{key}'")))
    }

    fn wrong(&self, key: &str, want: &str, v: &MetaValue) -> Error {
        format_err(&self.path, format!("metadata '{key}' is {}, expected {want}", v.type_name()))
    }

    /// A string value.
    pub fn get_str(&self, key: &str) -> Result<&str> {
        match self.need(key)? {
            MetaValue::Str(s) => Ok(s),
            v => Err(self.wrong(key, "a string", v)),
        }
    }

    /// An integer value of any stored width that fits in u32.
    pub fn get_u32(&self, key: &str) -> Result<u32> {
        let v = self.need(key)?;
        v.as_i64()
            .and_then(|i| u32::try_from(i).ok())
            .ok_or_else(|| self.wrong(key, "an integer fitting u32", v))
    }

    /// An integer value of any stored width that fits in u64.
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        let v = self.need(key)?;
        match v {
            MetaValue::U64(x) => Ok(*x),
            _ => v
                .as_i64()
                .and_then(|i| u64::try_from(i).ok())
                .ok_or_else(|| self.wrong(key, "an unsigned integer", v)),
        }
    }

    /// A float value (f32, f64, or an integer).
    pub fn get_f32(&self, key: &str) -> Result<f32> {
        let v = self.need(key)?;
        v.as_f64().map(|x| x as f32).ok_or_else(|| self.wrong(key, "a number", v))
    }

    /// A bool value.
    pub fn get_bool(&self, key: &str) -> Result<bool> {
        match self.need(key)? {
            MetaValue::Bool(b) => Ok(*b),
            v => Err(self.wrong(key, "a bool", v)),
        }
    }

    /// An array value, elements of any type.
    pub fn get_array(&self, key: &str) -> Result<&MetaArray> {
        match self.need(key)? {
            MetaValue::Array(a) => Ok(a),
            v => Err(self.wrong(key, "an array", v)),
        }
    }

    /// An array of strings (`tokenizer.ggml.tokens`, `tokenizer.ggml.merges`).
    pub fn get_str_array(&self, key: &str) -> Result<Vec<&str>> {
        match self.get_array(key)? {
            MetaArray::Str(v) => Ok(v.iter().map(String::as_str).collect()),
            a => Err(self.wrong_array(key, "strings", a)),
        }
    }

    fn wrong_array(&self, key: &str, want: &str, a: &MetaArray) -> Error {
        format_err(
            &self.path,
            format!("metadata '{key}' is an array of {}, expected {want}", a.elem_type_name()),
        )
    }

    /// An array of f32 (`tokenizer.ggml.scores`).
    pub fn get_f32_array(&self, key: &str) -> Result<&[f32]> {
        match self.get_array(key)? {
            MetaArray::F32(v) => Ok(v),
            a => Err(self.wrong_array(key, "f32", a)),
        }
    }

    /// An array of integers of any width (`tokenizer.ggml.token_type`).
    pub fn get_int_array(&self, key: &str) -> Result<Vec<i64>> {
        let a = self.get_array(key)?;
        a.to_i64().ok_or_else(|| self.wrong_array(key, "integers (fitting i64)", a))
    }

    fn entry(&self, name: &str) -> Result<&Entry> {
        self.names
            .get(name)
            .and_then(|&i| self.entries.get(i))
            .ok_or_else(|| format_err(&self.path, format!("no tensor named '{name}'")))
    }

    /// Raw bytes of `name` (blocks for quantised types).
    pub fn bytes(&self, name: &str) -> Result<&[u8]> {
        let e = self.entry(name)?;
        Ok(&self.bytes[e.begin..e.end])
    }
}

impl WeightSource for GgufFile {
    fn tensors(&self) -> Vec<TensorInfo> {
        self.entries.iter().map(|e| e.info.clone()).collect()
    }

    fn read_f32(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>)> {
        let e = self.entry(name)?;
        let bytes = &self.bytes[e.begin..e.end];
        let data = if e.info.dtype.is_quantized() {
            let n = numel(&e.info.shape).unwrap_or(0);
            quant::dequantize(e.info.dtype, bytes, n)
                .map_err(|m| format_err(&self.path, format!("'{name}': {m}")))?
        } else {
            super::safetensors::to_f32(bytes, e.info.dtype, name)?
        };
        Ok((data, e.info.shape.clone()))
    }

    fn read_blocks(&self, name: &str) -> Result<Option<super::QuantBlocks>> {
        let e = self.entry(name)?;
        if !(e.info.dtype.is_quantized() || e.info.dtype.is_half()) {
            return Ok(None);
        }
        let bytes = self.bytes[e.begin..e.end].to_vec();
        Ok(Some(super::QuantBlocks { dtype: e.info.dtype, bytes, shape: e.info.shape.clone() }))
    }
}
