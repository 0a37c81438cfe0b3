//! A model whet does not ship, added the way a host program adds one: this file and one
//! [`registry::register`] call. Nothing else in whet learns its name, yet the recipe path
//! (`whet::run::train`) binds it, trains it on an image folder, evaluates it with intervals,
//! exports it, and [`Trained::open`] loads the export back and predicts the same. This is the
//! acceptance check of "adding a model touches only its file and the registry" (issue 18).

#[allow(dead_code)]
mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use safetensors::tensor::{Dtype, TensorView};
use whet::data::image::ImageSpec;
use whet::models::model::{LoadSpec, Loaded, Model};
use whet::models::registry::{self, Architecture, ExportLayout, ModelKind};
use whet::nn::init::Family;
use whet::nn::{Binder, Init, Linear, Mode, Params};
use whet::ops::pool::adaptive_avg_pool2d;
use whet::run::inference::Trained;
use whet::run::{self, Recipe, RunOptions};
use whet::train::stop::StopFlag;
use whet::Tensor;

/// Colour in, class out: the image averaged to 2 × 2 per channel (12 features), one hidden
/// ReLU layer of 8, a head.
struct PooledMlp {
    params: Params,
    body: Linear,
    head: Linear,
}

const FEATURES: usize = 12;
const HIDDEN: usize = 8;

/// The architecture's registry row, registered once per process.
fn kind() -> ModelKind {
    static KIND: OnceLock<ModelKind> = OnceLock::new();
    *KIND.get_or_init(|| {
        registry::register(Architecture {
            name: "pooled-mlp",
            aliases: &["pooled"],
            family: Family::ConvNet,
            head: "head.*",
            image_spec: Some(ImageSpec { size: 16, resize: 16, mean: [0.5; 3], std: [0.25; 3] }),
            export: ExportLayout::File,
            hf_classifier: None,
            causal_lm: false,
            lora_targets: None,
            config_types: &[],
            load: load_pooled,
        })
        .unwrap()
    })
}

/// Bind `body.*` and `head.*` from a safetensors file; a head of another size is drawn fresh.
fn load_pooled(s: &LoadSpec) -> whet::Result<Loaded> {
    let src = whet::weights::open(s.path)?;
    let ckpt_classes = src.tensors().iter().find(|t| t.name == "head.weight").map(|t| t.shape[0]);
    let classes = s.classes.or(ckpt_classes).unwrap_or(2);
    let mut b = Binder::new(s.engine, Some(src.as_ref()), &s.name(), "pooled-mlp").seed(s.seed);
    let body = Linear::load(&mut b, "body", FEATURES, HIDDEN, true)?;
    let head = if ckpt_classes == Some(classes) {
        Linear::load(&mut b, "head", HIDDEN, classes, true)?
    } else {
        Linear::fresh(&mut b, "head", HIDDEN, classes, Init::Normal { std: 0.1 }, Some(Init::Zeros))?
    };
    let (mut params, report) = b.finish()?;
    params.set_depths(|p| usize::from(p.starts_with("head")));
    Ok((Box::new(PooledMlp { params, body, head }), report))
}

impl Model for PooledMlp {
    fn architecture(&self) -> &'static Architecture {
        kind().architecture()
    }
    fn params(&self) -> &Params {
        &self.params
    }
    fn params_mut(&mut self) -> &mut Params {
        &mut self.params
    }
    fn classify_images(&self, x: &Tensor, _mode: Mode) -> whet::Result<Tensor> {
        let n = x.shape()[0];
        let h = adaptive_avg_pool2d(x, (2, 2))?.reshape(&[n, FEATURES])?;
        let h = self.body.forward(&self.params, &h)?.relu()?;
        self.head.forward(&self.params, &h)
    }
    fn replace_head(&mut self, classes: usize, seed: u64) -> whet::Result<()> {
        self.head.reinit(&mut self.params, classes, Init::Normal { std: 0.1 }, Init::Zeros, seed)
    }
}

/// "Pretrained" weights: a body that passes colour through, a 5-class head the task replaces.
fn checkpoint(path: &Path) {
    let body: Vec<f32> =
        (0..HIDDEN * FEATURES).map(|i| if i % (FEATURES + 1) == 0 { 1.0 } else { 0.05 }).collect();
    let tensors: Vec<(&str, Vec<f32>, Vec<usize>)> = vec![
        ("body.weight", body, vec![HIDDEN, FEATURES]),
        ("body.bias", vec![0.1; HIDDEN], vec![HIDDEN]),
        ("head.weight", vec![0.01; 5 * HIDDEN], vec![5, HIDDEN]),
        ("head.bias", vec![0.0; 5], vec![5]),
    ];
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .into_iter()
        .map(|(n, v, s)| (n.to_string(), v.iter().flat_map(|x| x.to_le_bytes()).collect(), s))
        .collect();
    let views: HashMap<String, TensorView> = bytes
        .iter()
        .map(|(n, b, s)| (n.clone(), TensorView::new(Dtype::F32, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(&views, None, path).unwrap();
}

/// `root/{train,val}/{blue,red}/*.png`, 20 × 20 with noise.
fn image_folder(root: &Path) -> Vec<(PathBuf, usize)> {
    let mut val = Vec::new();
    for (split, n) in [("train", 16), ("val", 6)] {
        for (ci, class) in ["blue", "red"].iter().enumerate() {
            let dir = root.join(split).join(class);
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..n {
                let img = image::RgbImage::from_fn(20, 20, |x, y| {
                    let noise = ((x * 7 + y * 13 + i * 31) % 60) as u8;
                    if ci == 0 {
                        image::Rgb([noise, noise, 180 + noise])
                    } else {
                        image::Rgb([180 + noise, noise, noise])
                    }
                });
                let p = dir.join(format!("{i:03}.png"));
                img.save(&p).unwrap();
                if split == "val" {
                    val.push((p, ci));
                }
            }
        }
    }
    val
}

#[test]
fn a_registered_model_trains_exports_and_predicts_through_the_recipe_path() {
    let case = "a_registered_model_trains_exports_and_predicts_through_the_recipe_path";
    let Some((_g, engine)) = common::gpu("model_plugin", case) else { return };
    let kind = kind();
    assert_eq!("POOLED".parse::<ModelKind>().unwrap(), kind);
    let unknown = "no-such-net".parse::<ModelKind>().unwrap_err().to_string();
    assert!(unknown.contains("pooled-mlp"), "the known names list the registered one: {unknown}");

    let tmp = tempfile::tempdir().unwrap();
    let weights = tmp.path().join("pooled.safetensors");
    checkpoint(&weights);
    let data = tmp.path().join("data");
    let val = image_folder(&data);
    let recipe_path = tmp.path().join("recipe.toml");
    std::fs::write(
        &recipe_path,
        format!(
            "[model]\nkind = \"pooled-mlp\"\npath = \"{}\"\n\
             [data]\nkind = \"image-folder\"\ntrain = \"{}\"\n\
             [train]\nepochs = 12\nbatch_size = 8\noptimizer = \"adam\"\nlr = 0.05\nschedule = \"constant\"\n\
             [output]\ndir = \"{}\"\nbootstrap = 1000\n",
            weights.display(),
            data.display(),
            tmp.path().join("run").display()
        ),
    )
    .unwrap();
    let recipe = Recipe::load(&recipe_path).unwrap();
    let opts = RunOptions { baseline: true, ..Default::default() };
    let out = run::train(&engine, &recipe, &StopFlag::new(), opts).unwrap();

    // The task's two classes replaced the checkpoint's five; body and head train.
    assert_eq!(out.trainable_params as usize, HIDDEN * FEATURES + HIDDEN + 2 * HIDDEN + 2);
    let test = out.test.as_ref().expect("a held-out evaluation");
    let acc = test.metrics["accuracy"].point;
    assert!(acc >= 0.9, "blue against red should be learnt: accuracy {acc}");
    let before = out.baseline.as_ref().expect("the untuned baseline").metrics["log_loss"].point;
    let after = test.metrics["log_loss"].point;
    assert!(after < 0.5 * before, "training should cut the held-out log loss: {before} -> {after}");
    let exported = out.dir.join("model/model.safetensors");
    assert!(exported.is_file(), "ExportLayout::File puts the weights at {}", exported.display());

    // The export loads back through the same row and predicts what the run measured.
    let trained = Trained::open(&engine, &out.dir).unwrap();
    let paths: Vec<PathBuf> = val.iter().map(|(p, _)| p.clone()).collect();
    let ranked = trained.classify_images(&paths).unwrap();
    let right = ranked.iter().zip(&val).filter(|(r, (_, c))| r[0].0 == ["blue", "red"][*c]).count();
    assert!(right as f64 / val.len() as f64 >= 0.9, "{right} of {} right after reloading", val.len());
}
