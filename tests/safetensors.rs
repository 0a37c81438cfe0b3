//! Check F1: a corpus of damaged safetensors files, each refused with a specific message, and
//! the valid edge cases (empty tensors, scalars, metadata, real fixture checkpoints) accepted.

use std::path::PathBuf;

use whet::weights::safetensors::SafeTensorsFile;
use whet::weights::WeightSource;

fn file(header: &str, data: &[u8]) -> Vec<u8> {
    let mut v = (header.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(header.as_bytes());
    v.extend_from_slice(data);
    v
}

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("whet-st-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn refused(name: &str, bytes: &[u8], expect: &str) {
    let p = write(name, bytes);
    match SafeTensorsFile::open(&p) {
        Ok(_) => panic!("{name}: accepted a damaged file"),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains(name), "{name}: error should name the file: {msg}");
            assert!(msg.contains(expect), "{name}: expected '{expect}' in: {msg}");
        }
    }
}

const T8: &str = r#""a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#;

#[test]
fn damaged_files_are_refused_with_specific_errors() {
    let d8 = [0u8; 8];
    refused("short.st", &[1, 0, 0], "too short");
    let mut huge = file(&format!("{{{T8}}}"), &d8);
    huge[..8].copy_from_slice(&(200_000_000u64).to_le_bytes());
    refused("huge_header.st", &huge, "exceeds");
    let mut past = file(&format!("{{{T8}}}"), &d8);
    past[..8].copy_from_slice(&(10_000u64).to_le_bytes());
    refused("n_past_end.st", &past, "past the end");
    let mut bad_utf8 = file(&format!("{{{T8}}}"), &d8);
    bad_utf8[10] = 0xff;
    refused("utf8.st", &bad_utf8, "not UTF-8");
    refused("not_json.st", &file("{\"a\": [", &d8), "not a JSON object");
    refused(
        "dtype.st",
        &file(r#"{"a":{"dtype":"F8","shape":[8],"data_offsets":[0,8]}}"#, &d8),
        "unknown dtype",
    );
    refused(
        "overlap.st",
        &file(
            r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
            &d8,
        ),
        "overlaps",
    );
    refused("hole.st", &file(r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, &d8), "hole");
    refused("trailing.st", &file(&format!("{{{T8}}}"), &[0u8; 12]), "trailing bytes");
    refused("truncated.st", &file(&format!("{{{T8}}}"), &[0u8; 4]), "past the 4 data bytes");
    refused(
        "size.st",
        &file(r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, &d8),
        "needs 12 bytes",
    );
    refused(
        "overflow.st",
        &file(r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#, &d8),
        "overflows",
    );
    refused("dup.st", &file(&format!("{{{T8},{T8}}}"), &d8), "duplicate key 'a'");
    refused(
        "unknown_field.st",
        &file(r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":1}}"#, &d8),
        "unknown field 'extra'",
    );
    refused(
        "empty_name.st",
        &file(r#"{"":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, &d8),
        "empty tensor name",
    );
    refused(
        "nul_name.st",
        &file(r#"{"a\u0000b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, &d8),
        "NUL",
    );
    refused(
        "backwards.st",
        &file(r#"{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}"#, &d8),
        "backwards",
    );
    refused("meta.st", &file(&format!(r#"{{"__metadata__":{{"k":1}},{T8}}}"#), &d8), "not a string");
}

#[test]
fn valid_edge_cases_are_accepted() {
    // An empty tensor, a scalar, metadata, and space padding after the JSON (writers align).
    let header = r#"{"__metadata__":{"format":"pt"},"empty":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]},"s":{"dtype":"F64","shape":[],"data_offsets":[0,8]},"h":{"dtype":"F16","shape":[2],"data_offsets":[8,12]}}    "#;
    let mut data = 2.5f64.to_le_bytes().to_vec();
    data.extend(half::f16::from_f32(1.5).to_le_bytes());
    data.extend(half::f16::from_f32(-2.0).to_le_bytes());
    let p = write("valid.st", &file(header, &data));
    let st = SafeTensorsFile::open(&p).unwrap();
    assert_eq!(st.tensors().len(), 3);
    assert_eq!(st.metadata, vec![("format".to_string(), "pt".to_string())]);
    assert_eq!(st.read_f32("s").unwrap(), (vec![2.5], vec![]));
    assert_eq!(st.read_f32("h").unwrap(), (vec![1.5, -2.0], vec![2]));
    assert_eq!(st.read_f32("empty").unwrap(), (vec![], vec![0, 3]));
    assert!(st.read_f32("missing").unwrap_err().to_string().contains("no tensor named 'missing'"));
}

#[test]
fn files_written_by_the_reference_crate_round_trip() {
    let a: Vec<u8> = [1.0f32, -2.0, 3.5].iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![3], &a).unwrap();
    let bytes = safetensors::serialize([("w", view)], None).unwrap();
    let p = write("reference.st", &bytes);
    let st = SafeTensorsFile::open(&p).unwrap();
    assert_eq!(st.read_f32("w").unwrap(), (vec![1.0, -2.0, 3.5], vec![3]));
}

#[test]
fn real_fixture_checkpoints_validate() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures");
    if !dir.exists() {
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "SKIPPED: ../shared/fixtures is absent");
        return;
    }
    for f in ["resnet18_tv.weights.safetensors", "gpt2_tiny/model.safetensors", "minilm_cls.io.safetensors"] {
        let st = SafeTensorsFile::open(dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(!st.tensors().is_empty(), "{f}");
        let float = st
            .tensors()
            .into_iter()
            .find(|t| matches!(t.dtype, whet::weights::WeightDType::F32 | whet::weights::WeightDType::F16))
            .unwrap();
        let (data, shape) = st.read_f32(&float.name).unwrap();
        assert_eq!(data.len(), shape.iter().product::<usize>());
    }
}
