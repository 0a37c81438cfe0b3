//! VGG-11/13/16/19, with and without BatchNorm, torchvision key names (`features.{i}`,
//! `classifier.{0,3,6}`). The variant and the classifier widths are read from the checkpoint.
//!
//! VGG-16's first classifier layer is 25088 × 4096 floats (411 MB): on adapters whose storage
//! bindings hold less (lavapipe: 128 MiB), binding reports it as too big — a typed error
//! before any GPU call — rather than failing inside the driver.

use crate::data::image::ImageSpec;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::models::model::{model_basics, Model};
use crate::models::registry::{Architecture, ExportLayout};
use crate::nn::conv::{BatchNorm2d, ConvLayer};
use crate::nn::init::Family;
use crate::nn::{Binder, BindingReport, Init, Linear, Mode, Params};
use crate::ops::conv::{Conv2d, Padding};
use crate::ops::pool::{adaptive_avg_pool2d, max_pool2d};
use crate::tensor::Tensor;
use crate::weights::WeightSource;

/// Channel plan of each variant; 0 = max pool.
const CFGS: [(usize, &[usize]); 4] = [
    (11, &[64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0]),
    (13, &[64, 64, 0, 128, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0]),
    (16, &[64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0]),
    (19, &[64, 64, 0, 128, 128, 0, 256, 256, 256, 256, 0, 512, 512, 512, 512, 0, 512, 512, 512, 512, 0]),
];

enum Layer {
    Conv(ConvLayer, Option<BatchNorm2d>),
    Pool,
}

/// A VGG classifier.
pub struct Vgg {
    pub params: Params,
    /// 11, 13, 16 or 19.
    pub depth: usize,
    pub batch_norm: bool,
    pub num_classes: usize,
    /// Dropout of the classifier's two hidden layers in training mode (torchvision: 0.5).
    pub dropout: f32,
    layers: Vec<Layer>,
    fc: [Linear; 3],
}

fn shape_of(src: &dyn WeightSource, key: &str) -> Option<Vec<usize>> {
    src.tensors().into_iter().find(|t| t.name == key).map(|t| t.shape)
}

impl Vgg {
    /// Bind a torchvision VGG checkpoint; a different `num_classes` replaces the last layer.
    pub fn load(
        engine: &Engine,
        src: &dyn WeightSource,
        name: &str,
        num_classes: Option<usize>,
        seed: u64,
    ) -> Result<(Vgg, BindingReport)> {
        let convs = src
            .tensors()
            .iter()
            .filter(|t| t.name.starts_with("features.") && t.name.ends_with(".weight") && t.shape.len() == 4)
            .count();
        let (depth, plan) = CFGS
            .iter()
            .find(|(_, p)| p.iter().filter(|c| **c > 0).count() == convs)
            .ok_or_else(|| Error::arg("vgg", format!("{name}: {convs} conv layers match no VGG variant")))?;
        let batch_norm = shape_of(src, "features.1.running_mean").is_some();
        let mut b =
            Binder::new(engine, Some(src), name, "vgg").ignore_suffix("num_batches_tracked").seed(seed);
        let mut layers = Vec::new();
        let (mut idx, mut c_in) = (0usize, 3usize);
        for &c in plan.iter() {
            if c == 0 {
                layers.push(Layer::Pool);
                idx += 1;
                continue;
            }
            let cfg = Conv2d { padding: Padding::symmetric(1, 1), ..Conv2d::default() };
            let conv = ConvLayer::new(&mut b, &format!("features.{idx}"), [c, c_in, 3, 3], true, cfg, false)?;
            let bn = if batch_norm {
                Some(BatchNorm2d::new(&mut b, &format!("features.{}", idx + 1), c, 1e-5, 0.1, false)?)
            } else {
                None
            };
            idx += if batch_norm { 3 } else { 2 };
            layers.push(Layer::Conv(conv, bn));
            c_in = c;
        }
        let hidden = shape_of(src, "classifier.0.weight").map(|s| s[0]).unwrap_or(4096);
        let ckpt_classes = shape_of(src, "classifier.6.weight").map(|s| s[0]).unwrap_or(1000);
        let classes = num_classes.unwrap_or(ckpt_classes);
        let fc0 = Linear::load(&mut b, "classifier.0", 512 * 7 * 7, hidden, true)?;
        let fc3 = Linear::load(&mut b, "classifier.3", hidden, hidden, true)?;
        let fc6 = if classes == ckpt_classes {
            Linear::load(&mut b, "classifier.6", hidden, classes, true)?
        } else {
            let init = Init::Normal { std: 0.01 };
            Linear::fresh(&mut b, "classifier.6", hidden, classes, init, Some(Init::Zeros))?
        };
        let (mut params, report) = b.finish()?;
        let n = layers.len();
        params.set_depths(|p| vgg_depth(p, n));
        Ok((
            Vgg {
                params,
                depth: *depth,
                batch_norm,
                num_classes: classes,
                dropout: 0.5,
                layers,
                fc: [fc0, fc3, fc6],
            },
            report,
        ))
    }

    /// Replace the last classifier layer for `num_classes` (torchvision init: N(0, 0.01²), bias 0).
    pub fn replace_head(&mut self, num_classes: usize, seed: u64) -> Result<()> {
        self.fc[2].reinit(&mut self.params, num_classes, Init::Normal { std: 0.01 }, Init::Zeros, seed)?;
        self.num_classes = num_classes;
        Ok(())
    }

    /// Class logits `[N, classes]` of images `[N, 3, H, W]` (H, W ≥ 32).
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let p = &self.params;
        if x.rank() != 4 || x.shape()[1] != 3 {
            return Err(Error::shape("vgg", x.shape(), &[0, 3, 0, 0], "input must be [N, 3, H, W]"));
        }
        let mut h = x.clone();
        for l in &self.layers {
            h = match l {
                Layer::Pool => max_pool2d(&h, (2, 2), (2, 2), (0, 0))?,
                Layer::Conv(c, bn) => {
                    let y = c.forward(p, &h)?;
                    match bn {
                        Some(bn) => bn.forward(p, &y, mode)?,
                        None => y,
                    }
                    .relu()?
                }
            };
        }
        let n = h.shape()[0];
        let h = adaptive_avg_pool2d(&h, (7, 7))?.reshape(&[n, 512 * 49])?;
        let h = mode.dropout(&self.fc[0].forward(p, &h)?.relu()?, self.dropout, 1)?;
        let h = mode.dropout(&self.fc[1].forward(p, &h)?.relu()?, self.dropout, 2)?;
        self.fc[2].forward(p, &h)
    }
}

/// 0..L−1 = feature layers by position, L = classifier.
fn vgg_depth(path: &str, _layers: usize) -> usize {
    path.strip_prefix("features.")
        .and_then(|r| r.split('.').next())
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(64)
}

/// VGG's registry row.
pub static ARCHITECTURE: Architecture = Architecture {
    name: "vgg",
    aliases: &[],
    family: Family::ConvNet,
    head: "classifier.6.*",
    image_spec: Some(ImageSpec::IMAGENET),
    export: ExportLayout::File,
    hf_classifier: None,
    causal_lm: false,
    lora_targets: None,
    config_types: &[],
    load: |s| {
        let (m, r) =
            Vgg::load(s.engine, crate::weights::open(s.path)?.as_ref(), &s.name(), s.classes, s.seed)?;
        Ok((Box::new(m), r))
    },
};

impl Model for Vgg {
    model_basics!(ARCHITECTURE);
    fn classify_images(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.forward(x, mode)
    }
    fn replace_head(&mut self, classes: usize, seed: u64) -> Result<()> {
        Vgg::replace_head(self, classes, seed)
    }
}
