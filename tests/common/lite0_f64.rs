//! EfficientNet-Lite0 in float64 on the CPU reference ops (`whet::ops::reference`), training
//! forward and backward written out by hand, so a parity test can take the gradient of the
//! float64 network with the kink sides (the ReLU6 derivative masks) of another run.
//!
//! Why: a ReLU6 input within float32 rounding of 0 or 6 can land on the other side of the kink
//! in a float32 run, and through train-mode BatchNorm that one element moves whole gradient
//! tensors by up to a few percent (issue 13, item 9; PyTorch's own float32 run does the same).
//! So the GPU gradients are compared with this network's gradients *for the GPU's kink sides*,
//! and this network (with its own sides) with PyTorch's float64 references.

#![allow(dead_code)]

use std::collections::HashMap;

use whet::models::efficientnet::{BlockSpec, EfficientNetLite};
use whet::ops::conv::{Conv2d, Padding};
use whet::ops::loss::CrossEntropy;
use whet::ops::reference::{batch_norm as rbn, conv as rconv, loss as rloss, matmul as rmm, RefTensor};

const BN_EPS: f64 = 1e-3;

/// ReLU6 derivative masks by site name (the BatchNorm that feeds the ReLU6, as in
/// `EfficientNetLite::forward_inspected`); a site without an entry uses its own `0 < z < 6`.
pub type Kinks = HashMap<String, Vec<bool>>;

/// `0 < z < 6`, the side of each element as torch's `hardtanh_backward` decides it.
pub fn inside(z: &[f32]) -> Vec<bool> {
    z.iter().map(|&v| v > 0.0 && v < 6.0).collect()
}

/// One convolution + BatchNorm (+ ReLU6 when `relu6`) of a forward: what its backward reads.
struct ConvBn {
    conv: String,
    bn: String,
    cfg: Conv2d,
    relu6: bool,
    x: RefTensor,
    c: RefTensor,
    /// The BatchNorm output (the ReLU6 input when `relu6`).
    z: RefTensor,
}

impl ConvBn {
    fn out(&self) -> RefTensor {
        if self.relu6 {
            self.z.map(|v| v.clamp(0.0, 6.0))
        } else {
            self.z.clone()
        }
    }
}

struct BlockTrace {
    expand: Option<ConvBn>,
    depthwise: ConvBn,
    project: ConvBn,
    skip: bool,
}

/// Everything a training forward keeps for its backward.
pub struct Trace {
    stem: ConvBn,
    blocks: Vec<BlockTrace>,
    head: ConvBn,
    pooled: RefTensor,
    pub logits: RefTensor,
    pub loss: f64,
}

impl Trace {
    /// The ReLU6 inputs by site name.
    pub fn relu6_inputs(&self) -> Vec<(&str, &RefTensor)> {
        let mut v = vec![(self.stem.bn.as_str(), &self.stem.z)];
        for b in &self.blocks {
            if let Some(e) = &b.expand {
                v.push((e.bn.as_str(), &e.z));
            }
            v.push((b.depthwise.bn.as_str(), &b.depthwise.z));
        }
        v.push((self.head.bn.as_str(), &self.head.z));
        v
    }
}

/// The network's weights in float64 (widened from the model's float32 parameters).
pub struct Lite0F64 {
    w: HashMap<String, RefTensor>,
    specs: Vec<BlockSpec>,
}

fn same(stride: usize, groups: usize) -> Conv2d {
    Conv2d { stride: (stride, stride), padding: Padding::Same, groups, ..Conv2d::default() }
}

/// A 1x1 unpadded stride-1 convolution as one matrix product per image: the reference conv
/// visits every (output, tap) pair through a closure, 20x slower on these layers.
fn pointwise(cfg: &Conv2d, w: &RefTensor) -> bool {
    w.shape[2] == 1
        && w.shape[3] == 1
        && cfg.stride == (1, 1)
        && cfg.groups == 1
        && cfg.padding == Padding::symmetric(0, 0)
}

fn conv(x: &RefTensor, w: &RefTensor, cfg: &Conv2d) -> RefTensor {
    if !pointwise(cfg, w) {
        return rconv::conv2d(x, w, None, cfg);
    }
    let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
    let o = w.shape[0];
    rmm::matmul(&w.reshape(&[o, c]), &x.reshape(&[n, c, h * wd]), false, false).reshape(&[n, o, h, wd])
}

/// (gx, gw) of [`conv`].
fn conv_backward(x: &RefTensor, w: &RefTensor, cfg: &Conv2d, g: &RefTensor) -> (RefTensor, RefTensor) {
    if !pointwise(cfg, w) {
        let (gx, gw, _) = rconv::conv2d_backward(x, w, cfg, g);
        return (gx, gw);
    }
    let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
    let o = w.shape[0];
    let (gw, gx) = rmm::matmul_backward(
        &w.reshape(&[o, c]),
        &x.reshape(&[n, c, h * wd]),
        false,
        false,
        &g.reshape(&[n, o, h * wd]),
    );
    (gx.reshape(&x.shape), gw.reshape(&w.shape))
}

impl Lite0F64 {
    /// The weights of a loaded model (its float32 values, exactly as the checkpoint holds them).
    pub fn of(m: &EfficientNetLite) -> Lite0F64 {
        let w = m
            .params
            .entries()
            .iter()
            .map(|e| (e.path.clone(), RefTensor::from_f32(&e.tensor.to_vec().unwrap(), e.tensor.shape())))
            .collect();
        Lite0F64 { w, specs: m.blocks_spec.clone() }
    }

    fn get(&self, key: &str) -> &RefTensor {
        self.w.get(key).unwrap_or_else(|| panic!("float64 Lite0: no weight {key}"))
    }

    fn conv_bn(&self, x: RefTensor, conv_: &str, bn: &str, cfg: Conv2d, relu6: bool) -> ConvBn {
        let c = conv(&x, self.get(&format!("{conv_}.weight")), &cfg);
        let g = |s: &str| self.get(&format!("{bn}.{s}"));
        let z =
            rbn::batch_norm(&c, g("weight"), g("bias"), g("running_mean"), g("running_var"), true, BN_EPS);
        ConvBn { conv: conv_.into(), bn: bn.into(), cfg, relu6, x, c, z }
    }

    /// Training-mode forward (BatchNorm with batch statistics) and the mean cross-entropy.
    pub fn forward_train(&self, x: RefTensor, labels: &[u32]) -> Trace {
        let stem = self.conv_bn(x, "_conv_stem", "_bn0", same(2, 1), true);
        let mut h = stem.out();
        let mut blocks = Vec::new();
        for (i, s) in self.specs.iter().enumerate() {
            let p = format!("_blocks.{i}");
            let expand = (s.expanded != s.input).then(|| {
                self.conv_bn(
                    h.clone(),
                    &format!("{p}._expand_conv"),
                    &format!("{p}._bn0"),
                    Conv2d::default(),
                    true,
                )
            });
            let e = expand.as_ref().map_or_else(|| h.clone(), ConvBn::out);
            let dw_cfg = same(s.stride, s.expanded);
            let depthwise =
                self.conv_bn(e, &format!("{p}._depthwise_conv"), &format!("{p}._bn1"), dw_cfg, true);
            let project = self.conv_bn(
                depthwise.out(),
                &format!("{p}._project_conv"),
                &format!("{p}._bn2"),
                Conv2d::default(),
                false,
            );
            let skip = s.stride == 1 && s.input == s.output;
            h = if skip { project.z.zip(&h, |a, b| a + b) } else { project.z.clone() };
            blocks.push(BlockTrace { expand, depthwise, project, skip });
        }
        let head = self.conv_bn(h, "_conv_head", "_bn1", Conv2d::default(), true);
        let a = head.out();
        let (n, c, hw) = (a.shape[0], a.shape[1], a.shape[2] * a.shape[3]);
        let pooled: Vec<f64> = a.data.chunks(hw).map(|r| r.iter().sum::<f64>() / hw as f64).collect();
        let pooled = RefTensor::new(pooled, &[n, c]);
        let mut logits = rmm::matmul(&pooled, self.get("_fc.weight"), false, true);
        let bias = self.get("_fc.bias");
        let k = bias.numel();
        logits.data.iter_mut().enumerate().for_each(|(i, v)| *v += bias.data[i % k]);
        let loss = rloss::cross_entropy(&logits, labels, CrossEntropy::default());
        Trace { stem, blocks, head, pooled, logits, loss }
    }

    /// Gradient of every parameter, by path, with the ReLU6 kink sides `kinks` (own sides
    /// where a site has none).
    pub fn backward(&self, t: &Trace, labels: &[u32], kinks: &Kinks) -> HashMap<String, RefTensor> {
        let mut grads = HashMap::new();
        let gl = rloss::cross_entropy_backward(&t.logits, labels, CrossEntropy::default(), 1.0);
        let fc_w = self.get("_fc.weight");
        grads.insert("_fc.weight".to_string(), rmm::matmul(&gl, &t.pooled, true, false));
        let (n, k) = (gl.shape[0], gl.shape[1]);
        let gb: Vec<f64> = (0..k).map(|j| (0..n).map(|i| gl.data[i * k + j]).sum()).collect();
        grads.insert("_fc.bias".to_string(), RefTensor::new(gb, &[k]));
        let gp = rmm::matmul(&gl, fc_w, false, false);
        let s = &t.head.z.shape;
        let hw = s[2] * s[3];
        let gh: Vec<f64> = gp.data.iter().flat_map(|&v| std::iter::repeat_n(v / hw as f64, hw)).collect();
        let mut g = self.conv_bn_backward(&t.head, RefTensor::new(gh, s), kinks, &mut grads);
        for b in t.blocks.iter().rev() {
            let gy = self.conv_bn_backward(&b.project, g.clone(), kinks, &mut grads);
            let ge = self.conv_bn_backward(&b.depthwise, gy, kinks, &mut grads);
            let gin = match &b.expand {
                Some(e) => self.conv_bn_backward(e, ge, kinks, &mut grads),
                None => ge,
            };
            g = if b.skip { gin.zip(&g, |a, c| a + c) } else { gin };
        }
        self.conv_bn_backward(&t.stem, g, kinks, &mut grads);
        grads
    }

    /// Backward of one conv + BN (+ ReLU6) given the gradient of its output; returns the
    /// gradient of its input and records the weight, BN weight and BN bias gradients.
    fn conv_bn_backward(
        &self,
        l: &ConvBn,
        g: RefTensor,
        kinks: &Kinks,
        grads: &mut HashMap<String, RefTensor>,
    ) -> RefTensor {
        let gz = if l.relu6 {
            let own;
            let mask = match kinks.get(&l.bn) {
                Some(m) => m,
                None => {
                    own = l.z.data.iter().map(|&v| v > 0.0 && v < 6.0).collect::<Vec<_>>();
                    &own
                }
            };
            assert_eq!(mask.len(), g.numel(), "kink mask of {} has the wrong length", l.bn);
            RefTensor::new(
                g.data.iter().zip(mask).map(|(&v, &m)| if m { v } else { 0.0 }).collect(),
                &g.shape,
            )
        } else {
            g
        };
        let w = |s: &str| self.get(&format!("{}.{s}", l.bn));
        let (gc, gw, gb) = rbn::batch_norm_backward(
            &l.c,
            w("weight"),
            w("running_mean"),
            w("running_var"),
            true,
            BN_EPS,
            &gz,
        );
        grads.insert(format!("{}.weight", l.bn), gw);
        grads.insert(format!("{}.bias", l.bn), gb);
        let (gx, gcw) = conv_backward(&l.x, self.get(&format!("{}.weight", l.conv)), &l.cfg, &gc);
        grads.insert(format!("{}.weight", l.conv), gcw);
        gx
    }
}
