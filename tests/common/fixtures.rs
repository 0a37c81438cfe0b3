//! Reading the PyTorch reference fixtures (../shared/fixtures) and the fetched real weights
//! (assets/, `make assets`), and comparing tensors with a report of the worst element.

#![allow(dead_code)]

use std::path::PathBuf;

use whet::weights::safetensors::SafeTensorsFile;

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures")
}

/// tests/fixtures: the compact references checked in with the code (always present).
pub fn local_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A fixture's JSON description (`NAME.json` in `dir`).
pub fn json(dir: &std::path::Path, name: &str) -> serde_json::Value {
    let p = dir.join(format!("{name}.json"));
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub fn assets_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets")
}

fn skip(test: &str, what: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "!!!!!!!! {test}: {what} ABSENT, CHECK SKIPPED !!!!!!!!");
}

/// `NAME.io.safetensors`, or `None` after a loud line when the fixtures folder is absent.
pub fn io(test: &str, name: &str) -> Option<SafeTensorsFile> {
    let p = fixtures_dir().join(format!("{name}.io.safetensors"));
    if !fixtures_dir().exists() {
        skip(test, "../shared/fixtures");
        return None;
    }
    Some(SafeTensorsFile::open(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
}

/// A path under assets/, or `None` after a loud line (run `make assets`).
pub fn asset(test: &str, rel: &str) -> Option<PathBuf> {
    let p = assets_dir().join(rel);
    if p.exists() {
        Some(p)
    } else {
        skip(test, &format!("assets/{rel} (run `make assets`)"));
        None
    }
}

/// f32 values of a fixture tensor (integer tensors converted).
pub fn f32s(f: &SafeTensorsFile, name: &str) -> (Vec<f32>, Vec<usize>) {
    use whet::weights::{WeightDType, WeightSource};
    let info =
        f.tensors().into_iter().find(|t| t.name == name).unwrap_or_else(|| panic!("fixture lacks {name}"));
    if info.dtype == WeightDType::I64 {
        let b = f.bytes(name).unwrap();
        let v = b.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f32).collect();
        return (v, info.shape);
    }
    f.read_f32(name).unwrap()
}

/// u32 values of an integer fixture tensor (ids, labels, masks).
pub fn u32s(f: &SafeTensorsFile, name: &str) -> Vec<u32> {
    let b = f.bytes(name).unwrap();
    b.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as u32).collect()
}

/// Largest |got − want|, its index, and the largest |want|.
// `!(d <= worst)` on purpose: a NaN difference must become the worst, which `d > worst` skips.
#[allow(clippy::neg_cmp_op_on_partial_ord)]
pub fn max_diff(got: &[f32], want: &[f32]) -> (f64, usize, f64) {
    assert_eq!(got.len(), want.len(), "length mismatch");
    let mut worst = (0.0f64, 0usize);
    let mut scale = 0.0f64;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let d = (*g as f64 - *w as f64).abs();
        if !(d <= worst.0) {
            worst = (d, i);
        }
        scale = scale.max((*w as f64).abs());
    }
    (worst.0, worst.1, scale)
}

/// Collects comparisons; panics at the end with every failure.
/// Rows 0, s, 2s, ... of a tensor of `rows` rows (dim 0), the subsample a fixture stores of a
/// large gradient where its `row_stride` names s.
pub fn strided_rows(v: &[f32], rows: usize, stride: usize) -> Vec<f32> {
    v.chunks(v.len() / rows.max(1)).step_by(stride).flatten().copied().collect()
}

/// The stride a fixture's `row_stride` or `elem_stride` map names for `name` (1 when absent:
/// the whole tensor is stored).
pub fn stride(strides: &serde_json::Map<String, serde_json::Value>, name: &str) -> usize {
    strides.get(name).map_or(1, |s| s.as_u64().expect("stride") as usize)
}

pub struct Parity {
    pub case: &'static str,
    pub lines: Vec<String>,
    pub fails: usize,
}

impl Parity {
    pub fn new(case: &'static str) -> Parity {
        Parity { case, lines: Vec::new(), fails: 0 }
    }

    /// |got − want| ≤ atol everywhere.
    pub fn abs(&mut self, what: &str, got: &[f32], want: &[f32], atol: f64) {
        let (d, i, s) = max_diff(got, want);
        let ok = d <= atol;
        self.fails += !ok as usize;
        self.lines.push(format!(
            "{} {what}: max|Δ| {d:.3e} at {i} (got {}, want {}; max|want| {s:.3e}) atol {atol:.0e}",
            if ok { "ok  " } else { "FAIL" },
            got.get(i).copied().unwrap_or(f32::NAN),
            want.get(i).copied().unwrap_or(f32::NAN),
        ));
    }

    /// Relative to the tensor's scale: |got − want| ≤ rtol · max|want| everywhere, the
    /// criterion for gradients (f32 vs f64 error grows with the tensor's magnitude, not with
    /// each element's).
    pub fn rel(&mut self, what: &str, got: &[f32], want: &[f32], rtol: f64) {
        let (d, i, s) = max_diff(got, want);
        let ok = d <= rtol * s.max(1e-12);
        self.fails += !ok as usize;
        self.lines.push(format!(
            "{} {what}: max|Δ| {d:.3e} = {:.2e}·max|want| at {i} (got {}, want {}) rtol {rtol:.0e}",
            if ok { "ok  " } else { "FAIL" },
            d / s.max(1e-30),
            got.get(i).copied().unwrap_or(f32::NAN),
            want.get(i).copied().unwrap_or(f32::NAN),
        ));
    }

    /// A line for the report that checks nothing.
    pub fn note(&mut self, line: String) {
        self.lines.push(format!("info {line}"));
    }

    pub fn finish(self) {
        use std::io::Write;
        let mut err = std::io::stderr();
        for l in &self.lines {
            let _ = writeln!(err, "[{}] {l}", self.case);
        }
        assert_eq!(self.fails, 0, "{}: {} parity check(s) failed (see above)", self.case, self.fails);
    }
}
