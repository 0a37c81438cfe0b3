//! ResNet-18/34/50/101 with torchvision (and timm, which uses the same) key names:
//! `conv1`, `bn1`, `layer{1..4}.{i}.conv{1,2,3}` / `bn{1,2,3}` / `downsample.{0,1}`, `fc`.
//! Bottleneck blocks stride on the 3×3 conv (torchvision's "v1.5"). The architecture is read
//! from the checkpoint's keys, so any of the four depths binds without naming it.

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

/// Shape of a ResNet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResNetConfig {
    /// Bottleneck (1×1, 3×3, 1×1, expansion 4) blocks instead of basic (3×3, 3×3) ones.
    pub bottleneck: bool,
    /// Blocks per stage.
    pub layers: [usize; 4],
    pub num_classes: usize,
}

impl ResNetConfig {
    pub fn resnet18(num_classes: usize) -> Self {
        ResNetConfig { bottleneck: false, layers: [2, 2, 2, 2], num_classes }
    }
    pub fn resnet34(num_classes: usize) -> Self {
        ResNetConfig { bottleneck: false, layers: [3, 4, 6, 3], num_classes }
    }
    pub fn resnet50(num_classes: usize) -> Self {
        ResNetConfig { bottleneck: true, layers: [3, 4, 6, 3], num_classes }
    }
    pub fn resnet101(num_classes: usize) -> Self {
        ResNetConfig { bottleneck: true, layers: [3, 4, 23, 3], num_classes }
    }

    /// Width of the features entering the head.
    pub fn features(&self) -> usize {
        if self.bottleneck {
            2048
        } else {
            512
        }
    }
}

struct Block {
    convs: Vec<(ConvLayer, BatchNorm2d)>,
    downsample: Option<(ConvLayer, BatchNorm2d)>,
}

/// A ResNet classifier.
pub struct ResNet {
    pub config: ResNetConfig,
    pub params: Params,
    stem: (ConvLayer, BatchNorm2d),
    blocks: Vec<Block>,
    fc: Linear,
}

const BN_EPS: f32 = 1e-5;
const BN_MOMENTUM: f32 = 0.1;

fn conv(stride: usize, pad: usize) -> Conv2d {
    Conv2d { stride: (stride, stride), padding: Padding::symmetric(pad, pad), ..Conv2d::default() }
}

impl ResNet {
    /// Read the architecture from a checkpoint's keys.
    pub fn infer(source: &dyn WeightSource) -> Result<ResNetConfig> {
        let names: std::collections::HashSet<String> = source.tensors().into_iter().map(|t| t.name).collect();
        let strip = |k: &str| names.contains(k);
        if !strip("conv1.weight") || !strip("fc.weight") {
            return Err(Error::arg(
                "resnet",
                "not a torchvision/timm ResNet checkpoint (no conv1.weight / fc.weight)",
            ));
        }
        let bottleneck = strip("layer1.0.conv3.weight");
        // Blocks are counted by any key under `layer{i}.{j}.`, so one damaged or missing
        // tensor is reported as missing instead of changing the architecture.
        let mut layers = [0; 4];
        for (i, l) in layers.iter_mut().enumerate() {
            while names.iter().any(|n| n.starts_with(&format!("layer{}.{}.", i + 1, *l))) {
                *l += 1;
            }
        }
        let classes =
            source.tensors().into_iter().find(|t| t.name == "fc.weight").map(|t| t.shape[0]).unwrap_or(0);
        Ok(ResNetConfig { bottleneck, layers, num_classes: classes })
    }

    /// Bind a torchvision/timm checkpoint. With `num_classes` different from the checkpoint's
    /// head, the head is replaced by a fresh one (torch Linear default init, seeded).
    pub fn load(
        engine: &Engine,
        source: &dyn WeightSource,
        name: &str,
        num_classes: Option<usize>,
        seed: u64,
    ) -> Result<(ResNet, BindingReport)> {
        let mut config = Self::infer(source)?;
        let replace = num_classes.is_some_and(|n| n != config.num_classes);
        if let Some(n) = num_classes {
            config.num_classes = n;
        }
        let b =
            Binder::new(engine, Some(source), name, "resnet").ignore_suffix("num_batches_tracked").seed(seed);
        Self::build(b, config, false, replace)
    }

    /// A randomly initialised ResNet (torchvision init: kaiming-normal convs, BN 1/0).
    pub fn scratch(engine: &Engine, config: ResNetConfig, seed: u64) -> Result<ResNet> {
        let b = Binder::new(engine, None, "(scratch)", "resnet").seed(seed);
        Ok(Self::build(b, config, true, true)?.0)
    }

    fn build(
        mut b: Binder,
        config: ResNetConfig,
        scratch: bool,
        fresh_head: bool,
    ) -> Result<(ResNet, BindingReport)> {
        let bn =
            |b: &mut Binder, path: &str, c: usize| BatchNorm2d::new(b, path, c, BN_EPS, BN_MOMENTUM, scratch);
        let stem = (
            ConvLayer::new(&mut b, "conv1", [64, 3, 7, 7], false, conv(2, 3), scratch)?,
            bn(&mut b, "bn1", 64)?,
        );
        let mut blocks = Vec::new();
        let mut inplanes = 64;
        let expansion = if config.bottleneck { 4 } else { 1 };
        for (si, &n) in config.layers.iter().enumerate() {
            let planes = 64 << si;
            for bi in 0..n {
                let stride = if si > 0 && bi == 0 { 2 } else { 1 };
                let p = format!("layer{}.{bi}", si + 1);
                let mut convs = Vec::new();
                if config.bottleneck {
                    let specs = [
                        ([planes, inplanes, 1, 1], conv(1, 0)),
                        ([planes, planes, 3, 3], conv(stride, 1)),
                        ([planes * 4, planes, 1, 1], conv(1, 0)),
                    ];
                    for (k, (shape, cfg)) in specs.into_iter().enumerate() {
                        let c = ConvLayer::new(
                            &mut b,
                            &format!("{p}.conv{}", k + 1),
                            shape,
                            false,
                            cfg,
                            scratch,
                        )?;
                        convs.push((c, bn(&mut b, &format!("{p}.bn{}", k + 1), shape[0])?));
                    }
                } else {
                    let specs =
                        [([planes, inplanes, 3, 3], conv(stride, 1)), ([planes, planes, 3, 3], conv(1, 1))];
                    for (k, (shape, cfg)) in specs.into_iter().enumerate() {
                        let c = ConvLayer::new(
                            &mut b,
                            &format!("{p}.conv{}", k + 1),
                            shape,
                            false,
                            cfg,
                            scratch,
                        )?;
                        convs.push((c, bn(&mut b, &format!("{p}.bn{}", k + 1), shape[0])?));
                    }
                }
                let downsample = if stride != 1 || inplanes != planes * expansion {
                    let c = ConvLayer::new(
                        &mut b,
                        &format!("{p}.downsample.0"),
                        [planes * expansion, inplanes, 1, 1],
                        false,
                        conv(stride, 0),
                        scratch,
                    )?;
                    Some((c, bn(&mut b, &format!("{p}.downsample.1"), planes * expansion)?))
                } else {
                    None
                };
                inplanes = planes * expansion;
                blocks.push(Block { convs, downsample });
            }
        }
        let f = config.features();
        let fc = if fresh_head {
            let init = Init::TorchDefault { fan_in: f };
            Linear::fresh(&mut b, "fc", f, config.num_classes, init, Some(init))?
        } else {
            Linear::load(&mut b, "fc", f, config.num_classes, true)?
        };
        let (mut params, report) = b.finish()?;
        params.set_depths(depth);
        Ok((ResNet { config, params, stem, blocks, fc }, report))
    }

    /// Replace the classifier by a fresh one for `num_classes` (torch Linear default init:
    /// U(±1/√fan_in) for weight and bias, seeded).
    pub fn replace_head(&mut self, num_classes: usize, seed: u64) -> Result<()> {
        let init = Init::TorchDefault { fan_in: self.config.features() };
        self.fc.reinit(&mut self.params, num_classes, init, init, seed)?;
        self.config.num_classes = num_classes;
        Ok(())
    }

    /// Pooled features `[N, 512 or 2048]` of images `[N, 3, H, W]`.
    pub fn features(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let p = &self.params;
        if x.rank() != 4 || x.shape()[1] != 3 {
            return Err(Error::shape("resnet", x.shape(), &[0, 3, 0, 0], "input must be [N, 3, H, W]"));
        }
        let h = self.stem.1.forward(p, &self.stem.0.forward(p, x)?, mode)?.relu()?;
        let mut h = max_pool2d(&h, (3, 3), (2, 2), (1, 1))?;
        for blk in &self.blocks {
            let mut y = h.clone();
            let last = blk.convs.len() - 1;
            for (i, (c, bn)) in blk.convs.iter().enumerate() {
                y = bn.forward(p, &c.forward(p, &y)?, mode)?;
                if i != last {
                    y = y.relu()?;
                }
            }
            let skip = match &blk.downsample {
                Some((c, bn)) => bn.forward(p, &c.forward(p, &h)?, mode)?,
                None => h,
            };
            h = y.add(&skip)?.relu()?;
        }
        let n = h.shape()[0];
        adaptive_avg_pool2d(&h, (1, 1))?.reshape(&[n, self.config.features()])
    }

    /// Class logits `[N, classes]`.
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.fc.forward(&self.params, &self.features(x, mode)?)
    }
}

/// 0 = stem, 1..=4 = stages, 5 = head.
fn depth(path: &str) -> usize {
    match path.strip_prefix("layer").and_then(|r| r.chars().next()).and_then(|c| c.to_digit(10)) {
        Some(d) => d as usize,
        None if path.starts_with("fc.") => 5,
        None => 0,
    }
}

/// ResNet's registry row.
pub static ARCHITECTURE: Architecture = Architecture {
    name: "resnet",
    aliases: &[],
    family: Family::ConvNet,
    head: "fc.*",
    image_spec: Some(ImageSpec::IMAGENET),
    export: ExportLayout::File,
    hf_classifier: None,
    causal_lm: false,
    lora_targets: None,
    config_types: &[],
    load: |s| {
        let (m, r) =
            ResNet::load(s.engine, crate::weights::open(s.path)?.as_ref(), &s.name(), s.classes, s.seed)?;
        Ok((Box::new(m), r))
    },
};

impl Model for ResNet {
    model_basics!(ARCHITECTURE);
    fn classify_images(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.forward(x, mode)
    }
    fn replace_head(&mut self, classes: usize, seed: u64) -> Result<()> {
        ResNet::replace_head(self, classes, seed)
    }
}
