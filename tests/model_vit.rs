//! ViT as transformers' `ViTForImageClassification` (tests/fixtures/families/vit.*, made by
//! tools/family_fixtures.py), against float64 PyTorch: logits, loss and the listed gradients
//! at the checkpoint's image size and at the other sizes the fixture lists, where the position
//! embeddings are resized bicubically as `interpolate_pos_encoding` does (their gradient
//! checks the resize). Also: the kind and the image size come from config.json, and the
//! export keeps the source's keys and reloads.

mod common;

use common::fixtures::{self as fx, Parity};
use whet::models::zoo::{self, AnyModel, ModelKind};
use whet::nn::{BindingReport, Mode};
use whet::ops::loss::{cross_entropy, CrossEntropy};
use whet::weights::safetensors::SafeTensorsFile;
use whet::{Engine, Tensor};

fn fixture() -> (serde_json::Value, SafeTensorsFile) {
    let dir = fx::local_dir().join("families");
    (fx::json(&dir, "vit"), SafeTensorsFile::open(dir.join("vit.safetensors")).unwrap())
}

fn model_dir(meta: &serde_json::Value) -> std::path::PathBuf {
    fx::local_dir().join(meta["weights"].as_str().expect("weights"))
}

/// `(key prefix, pixels [N, 3, H, W], labels, classes)` of every input the fixture lists.
fn inputs(
    e: &Engine,
    meta: &serde_json::Value,
    io: &SafeTensorsFile,
) -> Vec<(String, Tensor, Vec<u32>, usize)> {
    let model = meta["model"].as_str().expect("model");
    let list = meta["inputs"].as_array().expect("inputs");
    assert!(list.len() > 1, "the fixture should list the checkpoint's size and others");
    list.iter()
        .map(|i| {
            let key = format!("{model}.{}.", i["name"].as_str().expect("input name"));
            let (px, shape) = fx::f32s(io, &format!("{key}pixels"));
            let (_, logits) = fx::f32s(io, &format!("{key}logits"));
            let x = Tensor::from_slice(e, &px, &shape).unwrap();
            (key.clone(), x, fx::u32s(io, &format!("{key}labels")), logits[1])
        })
        .collect()
}

fn load(e: &Engine, dir: &std::path::Path, classes: usize) -> (AnyModel, BindingReport) {
    let kind = ModelKind::detect(dir).unwrap().expect("config.json names its model_type");
    zoo::load(e, dir, kind, Some(classes), 0).unwrap()
}

#[test]
fn vit_matches_pytorch_at_every_image_size() {
    let case = "vit_matches_pytorch_at_every_image_size";
    let Some((_g, e)) = common::gpu("model_vit", case) else { return };
    let (meta, io) = fixture();
    let grads: Vec<&str> =
        meta["grads"].as_array().expect("grads").iter().filter_map(|g| g.as_str()).collect();
    let mut p = Parity::new("vit");
    for (key, x, labels, classes) in inputs(&e, &meta, &io) {
        let (m, report) = load(&e, &model_dir(&meta), classes);
        assert!(report.is_clean() && report.fresh.is_empty(), "{report}");
        let logits = m.classify_images(&x, Mode::EVAL).unwrap();
        p.abs(
            &format!("{key}logits"),
            &logits.to_vec().unwrap(),
            &fx::f32s(&io, &format!("{key}logits")).0,
            1e-3,
        );
        let loss = cross_entropy(&logits, &labels, CrossEntropy::default()).unwrap();
        p.abs(&format!("{key}loss"), &[loss.item().unwrap()], &fx::f32s(&io, &format!("{key}loss")).0, 1e-4);
        let g = loss.backward().unwrap();
        for n in &grads {
            let got = g.get(m.params().by_path(n).unwrap()).unwrap_or_else(|| panic!("no gradient for {n}"));
            let want = fx::f32s(&io, &format!("{key}grad.{n}")).0;
            p.rel(&format!("{key}grad.{n}"), &got.to_vec().unwrap(), &want, 1e-3);
        }
    }
    p.finish();
}

/// The kind, the input size and ViT's normalisation come from the checkpoint; the export holds
/// the source's keys and reloads to the same logits; an image whose sides are not whole patches
/// is refused by name.
#[test]
fn vit_reads_its_image_size_exports_and_refuses_partial_patches() {
    let case = "vit_reads_its_image_size_exports_and_refuses_partial_patches";
    let Some((_g, e)) = common::gpu("model_vit", case) else { return };
    let (meta, io) = fixture();
    let dir = model_dir(&meta);
    let cfg = fx::json(&dir, "config");
    let (_, x, _, classes) = inputs(&e, &meta, &io).remove(0);
    let (m, report) = load(&e, &dir, classes);
    assert_eq!(m.kind().architecture().name, "vit");
    let spec = m.image_spec().expect("an image model");
    assert_eq!(spec.size as u64, cfg["image_size"].as_u64().unwrap());
    assert_eq!(spec.mean, [0.5; 3]);
    let _ng = e.no_grad();
    let out = common::export::exported_like_source(m.params(), &report, &dir, "vit");
    let (back, _) = load(&e, out.path(), classes);
    let before = m.classify_images(&x, Mode::EVAL).unwrap().to_vec().unwrap();
    assert_eq!(before, back.classify_images(&x, Mode::EVAL).unwrap().to_vec().unwrap());
    let patch = cfg["patch_size"].as_u64().unwrap() as usize;
    let odd = Tensor::zeros(&e, &[1, 3, patch + 1, patch]).unwrap();
    let err = m.classify_images(&odd, Mode::EVAL).unwrap_err().to_string();
    assert!(err.contains("multiples of the patch size"), "{err}");
}
