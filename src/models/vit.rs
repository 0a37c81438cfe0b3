//! Vision Transformer as transformers' `ViTForImageClassification` builds it, with its key
//! names (`vit.embeddings.patch_embeddings.projection.weight`,
//! `vit.encoder.layer.3.attention.attention.query.weight`, `classifier.weight`): patches
//! embedded by a strided convolution, a learned [CLS] token and position embeddings, pre-norm
//! blocks, a final LayerNorm, and the classifier on the [CLS] token (no pooler).
//!
//! Images of another size than the checkpoint's are embedded at their own patch grid, the
//! position embeddings resized to it by bicubic interpolation as transformers'
//! `interpolate_pos_encoding` does (`torch.nn.functional.interpolate`, `align_corners=False`).
//! The resize is a fixed linear map of the embeddings (`bicubic_matrix`), so their gradient
//! flows back through it; its matrix is made once per grid and kept.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Deserialize;

use crate::data::image::ImageSpec;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::models::bert::activation;
use crate::models::model::{model_basics, Model};
use crate::models::registry::{Architecture, ExportLayout};
use crate::nn::attention::sdpa;
use crate::nn::init::Family;
use crate::nn::{Binder, BindingReport, Init, Linear, Mode, Origin, Params, Pid, Slot};
use crate::ops::conv::{conv2d, Conv2d};
use crate::ops::layout::concat;
use crate::ops::norm::layer_norm;
use crate::tensor::Tensor;
use crate::weights::WeightSource;

/// The fields of a HF ViT `config.json` that shape the model (transformers' defaults).
#[derive(Debug, Clone, Deserialize)]
pub struct VitConfig {
    #[serde(default = "d768")]
    pub hidden_size: usize,
    #[serde(default = "d12")]
    pub num_hidden_layers: usize,
    #[serde(default = "d12")]
    pub num_attention_heads: usize,
    #[serde(default = "d3072")]
    pub intermediate_size: usize,
    #[serde(default = "gelu")]
    pub hidden_act: String,
    #[serde(default)]
    pub hidden_dropout_prob: f32,
    #[serde(default = "eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "d224")]
    pub image_size: usize,
    #[serde(default = "d16")]
    pub patch_size: usize,
    #[serde(default = "d3")]
    pub num_channels: usize,
    #[serde(default = "yes")]
    pub qkv_bias: bool,
    #[serde(default = "init_range")]
    pub initializer_range: f32,
}

fn d768() -> usize {
    768
}
fn d12() -> usize {
    12
}
fn d3072() -> usize {
    3072
}
fn d224() -> usize {
    224
}
fn d16() -> usize {
    16
}
fn d3() -> usize {
    3
}
fn gelu() -> String {
    "gelu".into()
}
fn eps() -> f64 {
    1e-12
}
fn yes() -> bool {
    true
}
fn init_range() -> f32 {
    0.02
}

impl VitConfig {
    /// Parse a `config.json` value, naming the file in errors.
    pub fn from_json(v: &serde_json::Value, path: &str) -> Result<Self> {
        let bad = |message: String| Error::Format { path: path.into(), line: None, message };
        let c: VitConfig = serde_json::from_value(v.clone()).map_err(|e| bad(format!("ViT config: {e}")))?;
        if c.num_attention_heads == 0 || !c.hidden_size.is_multiple_of(c.num_attention_heads) {
            return Err(bad(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                c.hidden_size, c.num_attention_heads
            )));
        }
        if c.patch_size == 0 || c.image_size < c.patch_size || c.num_channels != 3 {
            return Err(bad(format!(
                "image_size {}, patch_size {}, num_channels {}: whet's ViT takes RGB images of at least one patch",
                c.image_size, c.patch_size, c.num_channels
            )));
        }
        Ok(c)
    }

    /// Patches per side of the checkpoint's image size.
    fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }
}

#[derive(Clone, Copy)]
struct Layer {
    ln_before: (Pid, Pid),
    q: Linear,
    k: Linear,
    v: Linear,
    attn_out: Linear,
    ln_after: (Pid, Pid),
    inter: Linear,
    out: Linear,
}

/// A ViT image classifier.
pub struct Vit {
    pub config: VitConfig,
    pub params: Params,
    cls: Pid,
    pos: Pid,
    patch: (Pid, Pid),
    layers: Vec<Layer>,
    ln_f: (Pid, Pid),
    head: Option<Linear>,
    /// The bicubic resize of the position grid to each other grid met so far.
    resized: Mutex<HashMap<(usize, usize), Tensor>>,
}

impl Vit {
    /// Bind a checkpoint (`ViTForImageClassification`, or a bare `ViTModel`). With `classes`,
    /// the classifier is the checkpoint's when its shape fits, else fresh (N(0,
    /// initializer_range²), bias 0, drawn from `seed`); without, the checkpoint's if it has one.
    pub fn load(
        engine: &Engine,
        source: &dyn WeightSource,
        name: &str,
        config: VitConfig,
        classes: Option<usize>,
        seed: u64,
    ) -> Result<(Vit, BindingReport)> {
        let b = Binder::new(engine, Some(source), name, "vit").strip_prefix("vit.").seed(seed);
        Self::build(b, config, classes)
    }

    fn build(mut b: Binder, config: VitConfig, classes: Option<usize>) -> Result<(Vit, BindingReport)> {
        let c = &config;
        let (h, ps) = (c.hidden_size, c.patch_size);
        let positions = c.grid() * c.grid() + 1;
        let cls = b.param("vit.embeddings.cls_token", &[1, 1, h])?;
        let pos = b.param("vit.embeddings.position_embeddings", &[1, positions, h])?;
        let proj = "vit.embeddings.patch_embeddings.projection";
        let patch =
            (b.param(&format!("{proj}.weight"), &[h, 3, ps, ps])?, b.param(&format!("{proj}.bias"), &[h])?);
        let ln = |b: &mut Binder, path: &str| -> Result<(Pid, Pid)> {
            Ok((b.param(&format!("{path}.weight"), &[h])?, b.param(&format!("{path}.bias"), &[h])?))
        };
        let lin =
            |b: &mut Binder, path: &str, i: usize, o: usize, bias: bool| Linear::load(b, path, i, o, bias);
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for l in 0..c.num_hidden_layers {
            let p = |part: &str| format!("vit.encoder.layer.{l}.{part}");
            layers.push(Layer {
                ln_before: ln(&mut b, &p("layernorm_before"))?,
                q: lin(&mut b, &p("attention.attention.query"), h, h, c.qkv_bias)?,
                k: lin(&mut b, &p("attention.attention.key"), h, h, c.qkv_bias)?,
                v: lin(&mut b, &p("attention.attention.value"), h, h, c.qkv_bias)?,
                attn_out: lin(&mut b, &p("attention.output.dense"), h, h, true)?,
                ln_after: ln(&mut b, &p("layernorm_after"))?,
                inter: lin(&mut b, &p("intermediate.dense"), h, c.intermediate_size, true)?,
                out: lin(&mut b, &p("output.dense"), c.intermediate_size, h, true)?,
            });
        }
        let ln_f = ln(&mut b, "vit.layernorm")?;
        // ViTForImageClassification has no pooler; a ViTModel checkpoint's travels with the export.
        b.consume("vit.pooler.dense.weight");
        b.consume("vit.pooler.dense.bias");
        let own = b.shape_of("classifier.weight").filter(|s| s.len() == 2 && s[1] == h).map(|s| s[0]);
        let head = match (classes, own) {
            (Some(n), Some(m)) if n == m => Some(Linear::load(&mut b, "classifier", h, n, true)?),
            (Some(n), _) => {
                let normal = Init::Normal { std: c.initializer_range };
                Some(Linear::fresh(&mut b, "classifier", h, n, normal, Some(Init::Zeros))?)
            }
            (None, Some(m)) => Some(Linear::load(&mut b, "classifier", h, m, true)?),
            (None, None) => None,
        };
        let (mut params, report) = b.finish()?;
        params.set_depths(|p| depth(p, config.num_hidden_layers));
        let model =
            Vit { config, params, cls, pos, patch, layers, ln_f, head, resized: Mutex::new(HashMap::new()) };
        Ok((model, report))
    }

    /// Class logits `[N, classes]` of normalised images `[N, 3, H, W]` (H and W multiples of
    /// the patch size).
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let c = &self.config;
        let (p, ps, hd) = (&self.params, c.patch_size, c.hidden_size);
        let shape = x.shape().to_vec();
        if shape.len() != 4
            || shape[1] != 3
            || !shape[2].is_multiple_of(ps)
            || !shape[3].is_multiple_of(ps)
            || shape[2] == 0
        {
            return Err(Error::arg(
                "vit",
                format!(
                    "images {shape:?}: expected [N, 3, H, W] with H and W multiples of the patch size {ps}"
                ),
            ));
        }
        let (n, gh, gw) = (shape[0], shape[2] / ps, shape[3] / ps);
        let conv = Conv2d { stride: (ps, ps), ..Default::default() };
        let patches = conv2d(x, p.get(self.patch.0), Some(p.get(self.patch.1)), &conv)?
            .reshape(&[n, hd, gh * gw])?
            .permute(&[0, 2, 1])?;
        let cls = p.get(self.cls);
        let cls_rows = concat(&vec![cls; n], 0)?;
        let mut x = concat(&[&cls_rows, &patches], 1)?.add(&self.positions(gh, gw)?)?;
        x = mode.dropout(&x, c.hidden_dropout_prob, 0)?;
        let (nh, t, eps) = (c.num_attention_heads, gh * gw + 1, c.layer_norm_eps as f32);
        let dh = hd / nh;
        let heads = |y: Tensor| y.reshape(&[n, t, nh, dh])?.permute(&[0, 2, 1, 3]);
        for (li, l) in self.layers.iter().enumerate() {
            let site = 1 + 2 * li as u64;
            let h = layer_norm(&x, p.get(l.ln_before.0), p.get(l.ln_before.1), eps)?;
            let (q, k, v) =
                (heads(l.q.forward(p, &h)?)?, heads(l.k.forward(p, &h)?)?, heads(l.v.forward(p, &h)?)?);
            let a = sdpa(&q, &k, &v, 1.0 / (dh as f32).sqrt(), false, None)?;
            let a = l.attn_out.forward(p, &a.permute(&[0, 2, 1, 3])?.reshape(&[n, t, hd])?)?;
            x = mode.dropout(&a, c.hidden_dropout_prob, site)?.add(&x)?;
            let h = layer_norm(&x, p.get(l.ln_after.0), p.get(l.ln_after.1), eps)?;
            let f = l.out.forward(p, &activation(&c.hidden_act, &l.inter.forward(p, &h)?)?)?;
            x = mode.dropout(&f, c.hidden_dropout_prob, site + 1)?.add(&x)?;
        }
        let x = layer_norm(&x, p.get(self.ln_f.0), p.get(self.ln_f.1), eps)?;
        let first = x.slice(1, 0, 1)?.reshape(&[n, hd])?;
        let head = self.head.as_ref().ok_or_else(|| {
            Error::arg("vit", "the model has no classifier (load it with classes)".to_string())
        })?;
        head.forward(p, &first)
    }

    /// The position embeddings `[1, 1 + gh·gw, H]` of a `gh` × `gw` patch grid: the checkpoint's
    /// for its own square grid, else its patch rows resized bicubically ([CLS]'s kept).
    fn positions(&self, gh: usize, gw: usize) -> Result<Tensor> {
        let (g, hd) = (self.config.grid(), self.config.hidden_size);
        let pos = self.params.get(self.pos);
        if gh == gw && gh * gw == g * g {
            return Ok(pos.clone());
        }
        let map = {
            let mut cache = self.resized.lock().unwrap_or_else(|e| e.into_inner());
            match cache.get(&(gh, gw)) {
                Some(m) => m.clone(),
                None => {
                    let w = bicubic_grid(g, gh, gw);
                    let m = Tensor::from_slice(pos.engine(), &w, &[gh * gw, g * g])?;
                    cache.insert((gh, gw), m.clone());
                    m
                }
            }
        };
        let table = pos.reshape(&[g * g + 1, hd])?;
        let resized = map.matmul(&table.slice(0, 1, g * g)?)?;
        concat(&[&table.slice(0, 0, 1)?, &resized], 0)?.reshape(&[1, gh * gw + 1, hd])
    }
}

/// The `[gh·gw, g·g]` matrix that resizes a `g` × `g` grid (row-major) to `gh` × `gw`.
fn bicubic_grid(g: usize, gh: usize, gw: usize) -> Vec<f32> {
    let (rows, cols) = (bicubic_matrix(g, gh), bicubic_matrix(g, gw));
    let mut out = vec![0f32; gh * gw * g * g];
    for (i, j) in (0..gh).flat_map(|i| (0..gw).map(move |j| (i, j))) {
        let row = &mut out[(i * gw + j) * g * g..(i * gw + j + 1) * g * g];
        for (a, b) in (0..g).flat_map(|a| (0..g).map(move |b| (a, b))) {
            row[a * g + b] = (rows[i * g + a] * cols[j * g + b]) as f32;
        }
    }
    out
}

/// PyTorch's 1-D bicubic resize from `inp` to `out` samples (`align_corners=False`, A = −0.75,
/// edge samples repeated) as an `[out, inp]` matrix.
pub fn bicubic_matrix(inp: usize, out: usize) -> Vec<f64> {
    const A: f64 = -0.75;
    let near = |x: f64| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let far = |x: f64| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    let scale = inp as f64 / out as f64;
    let mut m = vec![0f64; out * inp];
    for i in 0..out {
        let real = scale * (i as f64 + 0.5) - 0.5;
        let base = real.floor();
        let t = real - base;
        let coeffs = [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)];
        for (k, w) in coeffs.iter().enumerate() {
            let src = (base as i64 - 1 + k as i64).clamp(0, inp as i64 - 1) as usize;
            m[i * inp + src] += w;
        }
    }
    m
}

/// Depth of a parameter path: 0 = embeddings, 1..=L = layers, L+1 = final norm and head.
fn depth(path: &str, layers: usize) -> usize {
    if path.contains("embeddings.") {
        0
    } else if let Some(rest) = path.split("encoder.layer.").nth(1) {
        rest.split('.').next().and_then(|s| s.parse::<usize>().ok()).map_or(0, |l| l + 1)
    } else {
        layers + 1
    }
}

/// ViT's preprocessing (google/vit-*): inputs scaled to [−1, 1].
const VIT_IMAGES: ImageSpec = ImageSpec { size: 224, resize: 224, mean: [0.5; 3], std: [0.5; 3] };

/// ViT's registry row: a Hugging Face directory.
pub static ARCHITECTURE: Architecture = Architecture {
    name: "vit",
    aliases: &[],
    family: Family::Transformer,
    head: "classifier.*",
    image_spec: Some(VIT_IMAGES),
    export: ExportLayout::HfDir,
    hf_classifier: Some("ViTForImageClassification"),
    causal_lm: false,
    lora_targets: Some("*.attention.attention.{query,value}.weight"),
    config_types: &["vit"],
    load: |s| {
        let (cfg, cfg_name) = s.hf_config()?;
        let config = VitConfig::from_json(&cfg, &cfg_name)?;
        let src = crate::weights::open(s.path)?;
        let (m, r) = Vit::load(s.engine, src.as_ref(), &s.name(), config, s.classes, s.seed)?;
        Ok((Box::new(m), r))
    },
};

impl Model for Vit {
    model_basics!(ARCHITECTURE);
    fn classify_images(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.forward(x, mode)
    }
    fn replace_head(&mut self, classes: usize, seed: u64) -> Result<()> {
        let (h, std) = (self.config.hidden_size, self.config.initializer_range);
        let e = self.params.get(self.cls).engine().clone();
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed);
        let w = Tensor::from_slice(&e, &Init::Normal { std }.sample(classes * h, &mut rng)?, &[classes, h])?;
        let b = Tensor::zeros(&e, &[classes])?;
        let head = match self.head {
            Some(old) => {
                let bias = old.bias.ok_or_else(|| Error::arg("vit.replace_head", "head without bias"))?;
                self.params.reset(old.weight, w, Origin::Fresh)?;
                self.params.reset(bias, b, Origin::Fresh)?;
                Linear { out_features: classes, ..old }
            }
            None => Linear {
                weight: self.params.push("classifier.weight", w, Slot::Param, Origin::Fresh)?,
                bias: Some(self.params.push("classifier.bias", b, Slot::Param, Origin::Fresh)?),
                in_features: h,
                out_features: classes,
                in_major: false,
            },
        };
        self.head = Some(head);
        let layers = self.config.num_hidden_layers;
        self.params.set_depths(|p| depth(p, layers));
        Ok(())
    }
    /// The checkpoint's own input size, scaled to [−1, 1] and resized without a crop.
    fn own_image_spec(&self) -> Option<ImageSpec> {
        let size = self.config.image_size as u32;
        Some(ImageSpec { size, resize: size, ..VIT_IMAGES })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bicubic_rows_sum_to_one_and_an_equal_size_is_the_identity() {
        for (inp, out) in [(4, 6), (6, 4), (3, 5), (5, 5)] {
            let m = bicubic_matrix(inp, out);
            for r in m.chunks(inp) {
                assert!((r.iter().sum::<f64>() - 1.0).abs() < 1e-12, "{inp}->{out}: {r:?}");
            }
        }
        let id = bicubic_matrix(5, 5);
        for i in 0..5 {
            for j in 0..5 {
                assert!((id[i * 5 + j] - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12);
            }
        }
    }
}
