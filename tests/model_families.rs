//! The Llama family's other members as users have them: a Hugging Face directory whose
//! `config.json` says `qwen2` or `mistral`, bound without `model.kind`, against transformers in
//! float64 (tests/fixtures/families, made by tools/family_fixtures.py): logits at every
//! position, the causal-LM loss and the listed gradients, on every input the fixture lists.
//! Qwen2 brings q/k/v biases, tied embeddings and a sliding window from layer 1 on; Mistral a
//! head_dim that is not hidden / heads, an untied head and a window in every layer. Also: the
//! same weights without their windows miss the references (the windows are exercised),
//! KV-cache generation slides its windows as recomputation does, the export keeps the
//! source's keys and reloads to the same logits, and a Qwen2 GGUF file (as llama.cpp's converter
//! writes one) binds and matches transformers too.

mod common;

use std::path::{Path, PathBuf};

use common::fixtures::{self as fx, Parity};
use whet::models::decoder::{causal_lm_loss, generate, CausalLm, Generate, Sampling};
use whet::models::llama::{Llama, LlamaConfig};
use whet::models::zoo::{self, AnyModel, ModelKind};
use whet::nn::{Mode, Params};
use whet::run::export_gguf::{export_gguf, GgufSpec};
use whet::weights::safetensors::SafeTensorsFile;
use whet::weights::WeightDType;
use whet::Engine;

fn families_dir() -> PathBuf {
    fx::local_dir().join("families")
}

/// The fixture's description and its tensors.
fn fixture() -> (serde_json::Map<String, serde_json::Value>, SafeTensorsFile) {
    let dir = families_dir();
    let meta = fx::json(&dir, "families");
    let models = meta["models"].as_object().expect("families.json: models").clone();
    assert!(!models.is_empty(), "families.json lists no models");
    (models, SafeTensorsFile::open(dir.join("families.safetensors")).unwrap())
}

/// The model at `path`, its kind read from its config.json as a recipe without `model.kind`.
fn load(e: &Engine, path: &Path) -> AnyModel {
    let kind = ModelKind::detect(path).unwrap().expect("config.json names its model_type");
    let (m, report) = zoo::load(e, path, kind, None, 0).unwrap();
    assert!(report.is_clean() && report.fresh.is_empty(), "{}: {report}", path.display());
    m
}

/// `(key prefix, ids, batch, seq)` of every input the fixture lists for `spec`'s model.
fn inputs(
    io: &SafeTensorsFile,
    name: &str,
    spec: &serde_json::Value,
) -> Vec<(String, Vec<u32>, usize, usize)> {
    let list = spec["inputs"].as_array().expect("inputs");
    assert!(!list.is_empty(), "no inputs for {name}");
    list.iter()
        .map(|i| {
            let key = format!("{name}.{}.", i["name"].as_str().expect("input name"));
            let (_, shape) = fx::f32s(io, &format!("{key}input_ids"));
            assert_eq!(shape.len(), 2, "{key}input_ids must be (batch, seq)");
            (key.clone(), fx::u32s(io, &format!("{key}input_ids")), shape[0], shape[1])
        })
        .collect()
}

/// A parameter by its HF name; a tied model's `lm_head.weight` is its embedding table.
fn param<'a>(params: &'a Params, name: &str) -> &'a whet::Tensor {
    let tied = || (name == "lm_head.weight").then(|| params.find("model.embed_tokens.weight")).flatten();
    let id = params.find(name).or_else(tied).unwrap_or_else(|| panic!("no parameter {name}"));
    params.get(id)
}

#[test]
fn qwen2_and_mistral_match_pytorch() {
    let case = "qwen2_and_mistral_match_pytorch";
    let Some((_g, e)) = common::gpu("model_families", case) else { return };
    let (models, io) = fixture();
    let mut p = Parity::new("families");
    for (name, spec) in &models {
        let mut m = load(&e, &families_dir().join(name));
        let params = m.params().clone();
        let lm = m.as_causal_lm(Mode::EVAL).expect("a causal LM");
        let grads: Vec<&str> =
            spec["grads"].as_array().expect("grads").iter().filter_map(|g| g.as_str()).collect();
        for (key, ids, batch, seq) in inputs(&io, name, spec) {
            let logits = lm.logits(&ids, batch, seq, None).unwrap();
            p.abs(
                &format!("{key}logits"),
                &logits.to_vec().unwrap(),
                &fx::f32s(&io, &format!("{key}logits")).0,
                1e-3,
            );
            let loss = causal_lm_loss(&logits, &ids, None).unwrap();
            p.abs(
                &format!("{key}loss"),
                &[loss.item().unwrap()],
                &fx::f32s(&io, &format!("{key}loss")).0,
                1e-4,
            );
            let g = loss.backward().unwrap();
            for n in &grads {
                let got = g.get(param(&params, n)).unwrap_or_else(|| panic!("no gradient for {n}"));
                p.rel(
                    &format!("{key}grad.{n}"),
                    &got.to_vec().unwrap(),
                    &fx::f32s(&io, &format!("{key}grad.{n}")).0,
                    1e-3,
                );
            }
        }
        // Generate past the widest window, so the cached keys it leaves out matter.
        let widest = spec["windows_per_layer"].as_array().expect("windows_per_layer");
        let widest = widest.iter().filter_map(|w| w.as_u64()).max().unwrap_or(0) as usize;
        cache_matches_recompute(&e, lm, &inputs(&io, name, spec)[0].1, widest + 4);
    }
    p.finish();
}

/// Greedy generation with the KV cache, past the windows, equals greedy decoding by full
/// recomputation (the cached keys outside a window are masked, not dropped).
fn cache_matches_recompute(e: &Engine, m: &dyn CausalLm, ids: &[u32], new: usize) {
    let prompt = &ids[..ids.len().min(3)];
    let opts = Generate { max_new_tokens: new, sampling: Sampling::Greedy, seed: 0, eos: None };
    let cached = generate(m, prompt, &opts).unwrap();
    let _g = e.no_grad();
    let mut seq = prompt.to_vec();
    for _ in 0..new {
        let l = m.logits(&seq, 1, seq.len(), None).unwrap();
        let v = l.shape()[2];
        let row = l.slice(1, seq.len() - 1, 1).unwrap().reshape(&[v]).unwrap().to_vec().unwrap();
        seq.push((0..v).fold(0, |b, i| if row[i] > row[b] { i } else { b }) as u32);
    }
    assert_eq!(cached, seq[prompt.len()..], "KV-cache generation differs from recomputation");
}

/// `qwen2_tiny.gguf`: architecture `qwen2`, llama.cpp's tensor names, q/k rows as HF has them
/// (llama.cpp runs Qwen2 with rotate-half RoPE, so its converter does not permute them), biases
/// by name. Bound without `model.kind`, it matches transformers' float64 logits of the same
/// weights without the sliding window (GGUF has no key for one).
#[test]
fn a_qwen2_gguf_file_matches_pytorch() {
    let case = "a_qwen2_gguf_file_matches_pytorch";
    let Some((_g, e)) = common::gpu("model_families", case) else { return };
    let (models, io) = fixture();
    let meta = fx::json(&families_dir(), "families");
    let gguf = &meta["gguf"];
    let of = gguf["weights_of"].as_str().expect("gguf.weights_of");
    let wanted: Vec<&str> =
        gguf["inputs"].as_array().expect("gguf.inputs").iter().filter_map(|i| i.as_str()).collect();
    assert!(!wanted.is_empty(), "the GGUF case lists no inputs");
    let mut m = load(&e, &families_dir().join(gguf["file"].as_str().expect("gguf.file")));
    let lm = m.as_causal_lm(Mode::EVAL).expect("a causal LM");
    let mut p = Parity::new("families_gguf");
    for (key, ids, batch, seq) in inputs(&io, of, &models[of]) {
        let name = key.trim_start_matches(&format!("{of}.")).trim_end_matches('.');
        if !wanted.contains(&name) {
            continue;
        }
        let want = fx::f32s(&io, &format!("{of}_gguf.{name}.logits")).0;
        p.abs(
            &format!("{of}_gguf.{name}.logits"),
            &lm.logits(&ids, batch, seq, None).unwrap().to_vec().unwrap(),
            &want,
            1e-3,
        );
    }
    p.finish();
}

/// The same weights with the windows taken out of config.json miss the references: the
/// fixture's sequences are longer than the windows, so a loader that ignored them would fail.
#[test]
fn without_their_windows_the_models_miss_the_references() {
    let case = "without_their_windows_the_models_miss_the_references";
    let Some((_g, e)) = common::gpu("model_families", case) else { return };
    let (models, io) = fixture();
    for (name, spec) in &models {
        let dir = families_dir().join(name);
        let cp = dir.join("config.json");
        let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(&cp).unwrap()).unwrap();
        let windowed = LlamaConfig::from_json(&cfg, name).unwrap();
        assert!(
            (0..windowed.num_hidden_layers).any(|l| windowed.window(l).is_some()),
            "{name}: the fixture has no sliding window to exercise"
        );
        cfg["sliding_window"] = serde_json::Value::Null;
        let st = SafeTensorsFile::open(dir.join("model.safetensors")).unwrap();
        let (m, _) = Llama::load(&e, &st, name, LlamaConfig::from_json(&cfg, name).unwrap()).unwrap();
        let (key, ids, batch, seq) = inputs(&io, name, spec).remove(0);
        let got = m.logits(&ids, batch, seq, None).unwrap().to_vec().unwrap();
        let (worst, _, _) = fx::max_diff(&got, &fx::f32s(&io, &format!("{key}logits")).0);
        assert!(worst > 1e-2, "{name}: logits without the window within {worst} of the reference");
    }
}

/// Exported under the source's key names (the q/k/v biases included, no separate head of a tied
/// model), and the export reloads to the same logits; a GGUF export is refused by name.
#[test]
fn exports_keep_the_source_keys_and_reload() {
    let case = "exports_keep_the_source_keys_and_reload";
    let Some((_g, e)) = common::gpu("model_families", case) else { return };
    let (models, io) = fixture();
    for (name, spec) in &models {
        let dir = families_dir().join(name);
        let kind = ModelKind::detect(&dir).unwrap().unwrap();
        let (mut m, report) = zoo::load(&e, &dir, kind, None, 0).unwrap();
        let out = common::export::exported_like_source(m.params(), &report, &dir, name);
        let (_, ids, batch, seq) = inputs(&io, name, spec).remove(0);
        let before =
            m.as_causal_lm(Mode::EVAL).unwrap().logits(&ids, batch, seq, None).unwrap().to_vec().unwrap();
        let mut back = load(&e, out.path());
        let after =
            back.as_causal_lm(Mode::EVAL).unwrap().logits(&ids, batch, seq, None).unwrap().to_vec().unwrap();
        assert_eq!(before, after, "{name}: the export reloads to other logits");
        // llama.cpp's `llama` layout has no q/k/v biases or windows: GGUF export says so.
        let cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
        let spec = GgufSpec { config: &cfg, source: None, tokenizer: Vec::new(), dtype: WeightDType::F16 };
        let err = export_gguf(&[], &spec, &out.path().join("model.gguf")).unwrap_err().to_string();
        assert!(err.contains("no GGUF writer") && err.contains(cfg["model_type"].as_str().unwrap()), "{err}");
    }
}
