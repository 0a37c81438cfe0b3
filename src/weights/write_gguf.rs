//! Writing GGUF v3, the layout [`super::gguf`] reads: magic `GGUF`, version 3, tensor count,
//! metadata count, the metadata key/values, the tensor infos (name, dims innermost-first, ggml
//! type, offset), padding to the alignment, then each tensor's bytes at an aligned offset.
//! Written from the format description (ggml's docs/gguf.md); no code of another writer.

use super::gguf::{MetaArray, MetaValue};
use super::WeightDType;

/// The data alignment written (GGUF's default, so no `general.alignment` key is needed).
pub const ALIGNMENT: usize = 32;

/// One tensor to write: its row-major shape (as [`super::TensorInfo`] reports it) and its bytes
/// already in `dtype`'s file layout (see [`super::quantize::quantize`]).
#[derive(Debug, Clone)]
pub struct GgufTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: WeightDType,
    pub bytes: Vec<u8>,
}

/// ggml's type id of `dt`, for the types a GGUF tensor may have.
fn ggml_type_id(dt: WeightDType) -> Option<u32> {
    use WeightDType::*;
    Some(match dt {
        F32 => 0,
        F16 => 1,
        Q4_0 => 2,
        Q4_1 => 3,
        Q5_0 => 6,
        Q5_1 => 7,
        Q8_0 => 8,
        Q4_K => 12,
        Q6_K => 14,
        I8 => 24,
        I16 => 25,
        I32 => 26,
        I64 => 27,
        F64 => 28,
        BF16 => 30,
        U8 | Bool => return None,
    })
}

/// The whole file. Errors name the tensor whose bytes do not match its shape and type.
pub fn gguf_bytes(metadata: &[(String, MetaValue)], tensors: &[GgufTensor]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    out.extend_from_slice(b"GGUF");
    out.extend(3u32.to_le_bytes());
    out.extend((tensors.len() as u64).to_le_bytes());
    out.extend((metadata.len() as u64).to_le_bytes());
    for (k, v) in metadata {
        string(&mut out, k);
        out.extend(value_type(v).to_le_bytes());
        value(&mut out, v);
    }
    let mut offset = 0usize;
    for t in tensors {
        check(t)?;
        string(&mut out, &t.name);
        out.extend((t.shape.len() as u32).to_le_bytes());
        // ggml's ne[0] (the row length) comes first.
        for &d in t.shape.iter().rev() {
            out.extend((d as u64).to_le_bytes());
        }
        let ty =
            ggml_type_id(t.dtype).ok_or_else(|| format!("'{}': {:?} has no ggml type", t.name, t.dtype))?;
        out.extend(ty.to_le_bytes());
        out.extend((offset as u64).to_le_bytes());
        offset = (offset + t.bytes.len()).next_multiple_of(ALIGNMENT);
    }
    for t in tensors {
        out.resize(out.len().next_multiple_of(ALIGNMENT), 0);
        out.extend_from_slice(&t.bytes);
    }
    Ok(out)
}

/// A tensor's bytes must be exactly its shape in its type, in whole blocks along the row.
fn check(t: &GgufTensor) -> Result<(), String> {
    let (be, bb) = t.dtype.block();
    let n: usize = t.shape.iter().product();
    // The row (ggml's ne[0]) is the last row-major dimension; blocks never straddle rows.
    if t.shape.last().is_none_or(|&r| r % be != 0) {
        return Err(format!(
            "'{}': shape {:?} is not whole {:?} blocks of {be} per row",
            t.name, t.shape, t.dtype
        ));
    }
    if n / be * bb != t.bytes.len() {
        return Err(format!(
            "'{}': {} bytes for shape {:?} in {:?} (expected {})",
            t.name,
            t.bytes.len(),
            t.shape,
            t.dtype,
            n / be * bb
        ));
    }
    Ok(())
}

fn string(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn value_type(v: &MetaValue) -> u32 {
    match v {
        MetaValue::U8(_) => 0,
        MetaValue::I8(_) => 1,
        MetaValue::U16(_) => 2,
        MetaValue::I16(_) => 3,
        MetaValue::U32(_) => 4,
        MetaValue::I32(_) => 5,
        MetaValue::F32(_) => 6,
        MetaValue::Bool(_) => 7,
        MetaValue::Str(_) => 8,
        MetaValue::Array(_) => 9,
        MetaValue::U64(_) => 10,
        MetaValue::I64(_) => 11,
        MetaValue::F64(_) => 12,
    }
}

fn array_type(a: &MetaArray) -> u32 {
    match a {
        MetaArray::U8(_) => 0,
        MetaArray::I8(_) => 1,
        MetaArray::U16(_) => 2,
        MetaArray::I16(_) => 3,
        MetaArray::U32(_) => 4,
        MetaArray::I32(_) => 5,
        MetaArray::F32(_) => 6,
        MetaArray::Bool(_) => 7,
        MetaArray::Str(_) => 8,
        MetaArray::Array(_) => 9,
        MetaArray::U64(_) => 10,
        MetaArray::I64(_) => 11,
        MetaArray::F64(_) => 12,
    }
}

fn value(out: &mut Vec<u8>, v: &MetaValue) {
    match v {
        MetaValue::U8(x) => out.push(*x),
        MetaValue::I8(x) => out.extend(x.to_le_bytes()),
        MetaValue::U16(x) => out.extend(x.to_le_bytes()),
        MetaValue::I16(x) => out.extend(x.to_le_bytes()),
        MetaValue::U32(x) => out.extend(x.to_le_bytes()),
        MetaValue::I32(x) => out.extend(x.to_le_bytes()),
        MetaValue::F32(x) => out.extend(x.to_le_bytes()),
        MetaValue::Bool(x) => out.push(*x as u8),
        MetaValue::Str(s) => string(out, s),
        MetaValue::Array(a) => array(out, a),
        MetaValue::U64(x) => out.extend(x.to_le_bytes()),
        MetaValue::I64(x) => out.extend(x.to_le_bytes()),
        MetaValue::F64(x) => out.extend(x.to_le_bytes()),
    }
}

fn array(out: &mut Vec<u8>, a: &MetaArray) {
    out.extend(array_type(a).to_le_bytes());
    out.extend((a.len() as u64).to_le_bytes());
    match a {
        MetaArray::U8(v) => out.extend_from_slice(v),
        MetaArray::I8(v) => out.extend(v.iter().flat_map(|x| x.to_le_bytes())),
        MetaArray::U16(v) => out.extend(v.iter().flat_map(|x| x.to_le_bytes())),
        MetaArray::I16(v) => out.extend(v.iter().flat_map(|x| x.to_le_bytes())),
        MetaArray::U32(v) => out.extend(v.iter().flat_map(|x| x.to_le_bytes())),
        MetaArray::I32(v) => out.extend(v.iter().flat_map(|x| x.to_le_bytes())),
        MetaArray::F32(v) => out.extend(v.iter().flat_map(|x| x.to_le_bytes())),
        MetaArray::Bool(v) => out.extend(v.iter().map(|&b| b as u8)),
        MetaArray::Str(v) => v.iter().for_each(|s| string(out, s)),
        MetaArray::Array(v) => v.iter().for_each(|a| array(out, a)),
        MetaArray::U64(v) => out.extend(v.iter().flat_map(|x| x.to_le_bytes())),
        MetaArray::I64(v) => out.extend(v.iter().flat_map(|x| x.to_le_bytes())),
        MetaArray::F64(v) => out.extend(v.iter().flat_map(|x| x.to_le_bytes())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::gguf::GgufFile;
    use crate::weights::quantize::quantize;
    use crate::weights::WeightSource;

    fn tensor(name: &str, shape: &[usize], dtype: WeightDType, values: &[f32]) -> GgufTensor {
        GgufTensor {
            name: name.into(),
            shape: shape.to_vec(),
            dtype,
            bytes: quantize(dtype, values).unwrap(),
        }
    }

    #[test]
    fn the_reader_reads_back_every_value_and_tensor() {
        let meta = vec![
            ("general.architecture".to_string(), MetaValue::Str("llama".into())),
            ("llama.block_count".to_string(), MetaValue::U32(2)),
            ("llama.rope.freq_base".to_string(), MetaValue::F32(1e4)),
            ("flag".to_string(), MetaValue::Bool(true)),
            (
                "tokenizer.ggml.tokens".to_string(),
                MetaValue::Array(MetaArray::Str(vec!["a".into(), "bc".into()])),
            ),
            ("nested".to_string(), MetaValue::Array(MetaArray::Array(vec![MetaArray::I32(vec![-1, 2])]))),
        ];
        let w: Vec<f32> = (0..3 * 64).map(|i| (i as f32 * 0.37).sin()).collect();
        let norm = [1.0f32, 2.0, 3.0];
        let tensors = vec![
            tensor("norm", &[3], WeightDType::F32, &norm),
            tensor("w16", &[3, 64], WeightDType::F16, &w),
            tensor("w8", &[3, 64], WeightDType::Q8_0, &w),
        ];
        let g = GgufFile::from_vec("mem.gguf", gguf_bytes(&meta, &tensors).unwrap()).unwrap();
        assert_eq!(g.version, 3);
        assert_eq!(g.metadata(), &meta[..]);
        let infos = g.tensors();
        assert_eq!(infos.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["norm", "w16", "w8"]);
        assert_eq!(g.read_f32("norm").unwrap(), (norm.to_vec(), vec![3]));
        for (name, tol) in [("w16", 1e-3f32), ("w8", 1.0 / 127.0)] {
            let (v, shape) = g.read_f32(name).unwrap();
            assert_eq!(shape, [3, 64]);
            let err = v.iter().zip(&w).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(err <= tol, "{name}: {err}");
        }
    }

    #[test]
    fn bytes_that_do_not_match_the_shape_are_refused() {
        let mut t = tensor("w", &[2, 32], WeightDType::Q8_0, &[0.5; 64]);
        t.bytes.pop();
        assert!(gguf_bytes(&[], &[t]).unwrap_err().contains("'w'"));
        let odd =
            GgufTensor { name: "o".into(), shape: vec![2, 16], dtype: WeightDType::Q8_0, bytes: vec![0; 34] };
        assert!(gguf_bytes(&[], &[odd]).unwrap_err().contains("blocks"));
    }
}
