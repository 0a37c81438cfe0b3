//! SentencePiece vocabularies in GGUF (`tokenizer.ggml.model = "llama"`, the Llama / Mistral /
//! TinyLlama kind) against SentencePiece itself: tests/fixtures/spm_vocab.json holds a small BPE
//! vocabulary trained as Llama's was (identity normalization, dummy prefix, byte fallback; see
//! tools/spm_refs.py) and, per test string, SentencePiece's ids and decoded text. The vocabulary
//! is written into a GGUF file as llama.cpp lays it out and read back by
//! `TextTokenizer::from_gguf`; every id and every decoded string must match. Everything expected
//! comes from the fixture.

use std::path::Path;

use whet::data::tokenize::TextTokenizer;
use whet::weights::gguf::{MetaArray, MetaValue};
use whet::weights::write_gguf::gguf_bytes;

fn fixture() -> serde_json::Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/spm_vocab.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// The fixture's vocabulary as GGUF metadata; `add_bos` as given.
fn gguf(fx: &serde_json::Value, add_bos: bool, dir: &Path) -> std::path::PathBuf {
    let v = &fx["vocab"];
    let strs = |k: &str| v[k].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect();
    let id = |k: &str| MetaValue::U32(v[k].as_u64().unwrap() as u32);
    let meta = vec![
        ("general.architecture".to_string(), MetaValue::Str("llama".into())),
        ("tokenizer.ggml.model".to_string(), MetaValue::Str(fx["model"].as_str().unwrap().into())),
        ("tokenizer.ggml.tokens".to_string(), MetaValue::Array(MetaArray::Str(strs("tokens")))),
        (
            "tokenizer.ggml.scores".to_string(),
            MetaValue::Array(MetaArray::F32(
                v["scores"].as_array().unwrap().iter().map(|s| s.as_f64().unwrap() as f32).collect(),
            )),
        ),
        (
            "tokenizer.ggml.token_type".to_string(),
            MetaValue::Array(MetaArray::I32(
                v["token_types"].as_array().unwrap().iter().map(|t| t.as_i64().unwrap() as i32).collect(),
            )),
        ),
        ("tokenizer.ggml.bos_token_id".to_string(), id("bos_token_id")),
        ("tokenizer.ggml.eos_token_id".to_string(), id("eos_token_id")),
        ("tokenizer.ggml.unknown_token_id".to_string(), id("unknown_token_id")),
        ("tokenizer.ggml.add_bos_token".to_string(), MetaValue::Bool(add_bos)),
        (
            "tokenizer.ggml.add_space_prefix".to_string(),
            MetaValue::Bool(fx["add_space_prefix"].as_bool().unwrap()),
        ),
    ];
    let path = dir.join(format!("vocab_bos_{add_bos}.gguf"));
    std::fs::write(&path, gguf_bytes(&meta, &[]).unwrap()).unwrap();
    path
}

fn ids(c: &serde_json::Value) -> Vec<u32> {
    c["ids"].as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as u32).collect()
}

#[test]
fn a_sentencepiece_gguf_vocabulary_encodes_and_decodes_as_sentencepiece_does() {
    let fx = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let tok = TextTokenizer::from_gguf(&gguf(&fx, false, tmp.path())).unwrap();
    let cases = fx["cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    let byte_pieces = fx["vocab"]["token_types"].as_array().unwrap().iter().filter(|t| t.as_i64() == Some(6));
    assert!(byte_pieces.count() == 256, "the fixture's vocabulary has byte fallback");
    let mut failures = Vec::new();
    for c in cases {
        let text = c["text"].as_str().unwrap();
        let want = ids(c);
        let got = tok.encode(text, false).unwrap();
        if got != want {
            failures.push(format!("{text:?}: ids {got:?}, SentencePiece {want:?}"));
            continue;
        }
        let decoded = tok.decode(&got, true).unwrap();
        if decoded != c["decoded"].as_str().unwrap() {
            failures.push(format!("{text:?}: decoded {decoded:?}, SentencePiece {:?}", c["decoded"]));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn the_bos_token_leads_when_the_file_asks_for_it() {
    let fx = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let tok = TextTokenizer::from_gguf(&gguf(&fx, true, tmp.path())).unwrap();
    let bos = fx["vocab"]["bos_token_id"].as_u64().unwrap() as u32;
    assert_eq!(tok.bos_id(), Some(bos));
    let c =
        fx["cases"].as_array().unwrap().iter().find(|c| !c["ids"].as_array().unwrap().is_empty()).unwrap();
    let got = tok.encode(c["text"].as_str().unwrap(), true).unwrap();
    assert_eq!(got[0], bos);
    assert_eq!(got[1..], ids(c)[..]);
}

#[test]
fn an_unknown_vocabulary_kind_is_named() {
    let fx = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let path = gguf(&fx, false, tmp.path());
    let bytes = std::fs::read(&path).unwrap();
    // Same length as "llama": the metadata stays well-formed.
    let at = bytes.windows(5).position(|w| w == b"llama").unwrap();
    let at = at + bytes[at + 1..].windows(5).position(|w| w == b"llama").unwrap() + 1;
    let mut bad = bytes.clone();
    bad[at..at + 5].copy_from_slice(b"rwkv5");
    std::fs::write(&path, bad).unwrap();
    let err = TextTokenizer::from_gguf(&path).unwrap_err().to_string();
    assert!(err.contains("rwkv5") && err.contains("SentencePiece"), "{err}");
}
