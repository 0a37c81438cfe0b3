//! GPT-2 with Hugging Face key names (`transformer.h.3.attn.c_attn.weight`, …).
//!
//! Its projections are `Conv1D`s: weights stored `[in, out]`, the transpose of `nn.Linear`. A
//! square `c_proj` would load either way, so only golden outputs catch a wrong orientation; we
//! keep the stored layout and multiply `x W`. The LM head is tied to `wte` unless the config
//! says otherwise.

use serde::Deserialize;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::models::bert::activation;
use crate::models::bert::{BertInput, BertOutput};
use crate::models::decoder::{CausalLm, KvCache};
use crate::models::model::{model_basics, Model, TextEncoder};
use crate::models::registry::{Architecture, ExportLayout};
use crate::models::seq_head;
use crate::nn::attention::sdpa;
use crate::nn::init::Family;
use crate::nn::{Binder, BindingReport, Init, Linear, Mode, ParamGetter, Params, Pid};
use crate::ops::embedding::embedding;
use crate::ops::linear::linear;
use crate::ops::norm::layer_norm;
use crate::tensor::Tensor;
use crate::weights::WeightSource;

/// The fields of a HF GPT-2 `config.json` that shape the model.
#[derive(Debug, Clone, Deserialize)]
pub struct Gpt2Config {
    pub vocab_size: usize,
    pub n_embd: usize,
    pub n_head: usize,
    pub n_layer: usize,
    pub n_positions: usize,
    #[serde(default)]
    pub n_inner: Option<usize>,
    #[serde(default = "default_act")]
    pub activation_function: String,
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
    #[serde(default = "default_pdrop")]
    pub resid_pdrop: f32,
    #[serde(default = "default_pdrop")]
    pub embd_pdrop: f32,
    #[serde(default = "default_init_range")]
    pub initializer_range: f32,
    #[serde(default = "default_true")]
    pub tie_word_embeddings: bool,
    #[serde(default = "default_true")]
    pub scale_attn_weights: bool,
}

fn default_act() -> String {
    "gelu_new".into()
}
fn default_eps() -> f64 {
    1e-5
}
fn default_pdrop() -> f32 {
    0.1
}
fn default_init_range() -> f32 {
    0.02
}
fn default_true() -> bool {
    true
}

impl Gpt2Config {
    pub fn from_json(v: &serde_json::Value, path: &str) -> Result<Self> {
        let c: Gpt2Config = serde_json::from_value(v.clone()).map_err(|e| Error::Format {
            path: path.into(),
            line: None,
            message: format!("GPT-2 config: {e}"),
        })?;
        if c.n_head == 0 || !c.n_embd.is_multiple_of(c.n_head) {
            return Err(Error::Format {
                path: path.into(),
                line: None,
                message: format!("n_embd {} is not a multiple of n_head {}", c.n_embd, c.n_head),
            });
        }
        Ok(c)
    }
}

struct Block {
    ln1: (Pid, Pid),
    c_attn: Linear,
    c_proj: Linear,
    ln2: (Pid, Pid),
    c_fc: Linear,
    mlp_proj: Linear,
}

/// GPT-2 language model.
pub struct Gpt2 {
    pub config: Gpt2Config,
    pub params: Params,
    wte: Pid,
    wpe: Pid,
    blocks: Vec<Block>,
    ln_f: (Pid, Pid),
    /// Untied head (`lm_head.weight` `[V, E]`), when `tie_word_embeddings` is false.
    lm_head: Option<Pid>,
    /// `score.weight` `[classes, E]` of a sequence classifier (`seq_head`), which has no
    /// language-model head of its own.
    score: Option<Pid>,
    engine: Engine,
    /// Training or evaluation behaviour of [`CausalLm::logits`] (dropout).
    pub mode: Mode,
}

impl Gpt2 {
    /// Bind a checkpoint (HF `GPT2LMHeadModel` or bare `GPT2Model` keys).
    pub fn load(
        engine: &Engine,
        source: &dyn WeightSource,
        name: &str,
        config: Gpt2Config,
    ) -> Result<(Gpt2, BindingReport)> {
        Self::bind(engine, source, name, config, None)
    }

    /// [`Self::load`] as a sequence classifier of `classes` outputs when `Some`
    /// (`GPT2ForSequenceClassification`: `score.weight` bound, or fresh; `lm_head` left unread).
    pub fn bind(
        engine: &Engine,
        source: &dyn WeightSource,
        name: &str,
        config: Gpt2Config,
        classes: Option<usize>,
    ) -> Result<(Gpt2, BindingReport)> {
        let b = Binder::new(engine, Some(source), name, "gpt2")
            .strip_prefix("transformer.")
            .ignore_suffix(".attn.bias")
            .ignore_suffix(".attn.masked_bias");
        Self::build(engine, b, config, false, classes)
    }

    /// A randomly initialised model (HF init: N(0, 0.02²), LayerNorm 1/0, biases 0).
    pub fn scratch(engine: &Engine, config: Gpt2Config, seed: u64) -> Result<Gpt2> {
        let b = Binder::new(engine, None, "(scratch)", "gpt2").seed(seed);
        Ok(Self::build(engine, b, config, true, None)?.0)
    }

    fn build(
        engine: &Engine,
        mut b: Binder,
        config: Gpt2Config,
        scratch: bool,
        classes: Option<usize>,
    ) -> Result<(Gpt2, BindingReport)> {
        let c = &config;
        let (e, inner) = (c.n_embd, c.n_inner.unwrap_or(4 * c.n_embd));
        let normal = Init::Normal { std: c.initializer_range };
        let mut get = |b: &mut Binder, path: &str, shape: &[usize], init: Init| {
            if scratch {
                b.fresh(path, shape, init)
            } else {
                b.param(path, shape)
            }
        };
        let ln = |b: &mut Binder, path: &str, get: &mut ParamGetter| {
            Ok::<_, Error>((
                get(b, &format!("{path}.weight"), &[e], Init::Ones)?,
                get(b, &format!("{path}.bias"), &[e], Init::Zeros)?,
            ))
        };
        let conv1d = |b: &mut Binder, path: &str, i: usize, o: usize, get: &mut ParamGetter| {
            Ok::<_, Error>(Linear {
                weight: get(b, &format!("{path}.weight"), &[i, o], normal)?,
                bias: Some(get(b, &format!("{path}.bias"), &[o], Init::Zeros)?),
                in_features: i,
                out_features: o,
                in_major: true,
            })
        };
        let wte = get(&mut b, "transformer.wte.weight", &[c.vocab_size, e], normal)?;
        let wpe = get(&mut b, "transformer.wpe.weight", &[c.n_positions, e], normal)?;
        let mut blocks = Vec::new();
        for l in 0..c.n_layer {
            let p = format!("transformer.h.{l}");
            blocks.push(Block {
                ln1: ln(&mut b, &format!("{p}.ln_1"), &mut get)?,
                c_attn: conv1d(&mut b, &format!("{p}.attn.c_attn"), e, 3 * e, &mut get)?,
                c_proj: conv1d(&mut b, &format!("{p}.attn.c_proj"), e, e, &mut get)?,
                ln2: ln(&mut b, &format!("{p}.ln_2"), &mut get)?,
                c_fc: conv1d(&mut b, &format!("{p}.mlp.c_fc"), e, inner, &mut get)?,
                mlp_proj: conv1d(&mut b, &format!("{p}.mlp.c_proj"), inner, e, &mut get)?,
            });
        }
        let ln_f = ln(&mut b, "transformer.ln_f", &mut get)?;
        let score = match classes {
            Some(n) => Some(seq_head::bind_score(&mut b, n, e, c.initializer_range, scratch)?),
            None => None,
        };
        let lm_head = if score.is_some() {
            b.discard("lm_head.weight");
            None
        } else if c.tie_word_embeddings {
            b.consume("lm_head.weight");
            None
        } else {
            Some(get(&mut b, "lm_head.weight", &[c.vocab_size, e], normal)?)
        };
        let (mut params, report) = b.finish()?;
        for blk in &blocks {
            for l in [&blk.c_attn, &blk.c_proj, &blk.c_fc, &blk.mlp_proj] {
                params.set_in_major(l.weight);
            }
        }
        params.set_depths(|p| depth(p, config.n_layer));
        Ok((
            Gpt2 {
                config,
                params,
                wte,
                wpe,
                blocks,
                ln_f,
                lm_head,
                score,
                engine: engine.clone(),
                mode: Mode::EVAL,
            },
            report,
        ))
    }

    /// Depth of a parameter path: 0 = embeddings, 1..=L = blocks, L+1 = final norm and head.
    pub fn depth_of(&self, path: &str) -> usize {
        depth(path, self.config.n_layer)
    }

    fn forward(&self, ids: &[u32], bsz: usize, t: usize, cache: Option<&mut KvCache>) -> Result<Tensor> {
        let x = self.hidden(ids, bsz, t, cache, self.mode, None)?;
        let head = self.params.get(self.lm_head.unwrap_or(self.wte));
        // As a linear layer, so a quantized (tied) table is read by the quantized kernels.
        linear(&x, head, None, false)
    }

    /// The final LayerNorm's output `[B, T, E]`, with `offset` `[B, T, E]` added to the token
    /// embeddings when given (attribution).
    fn hidden(
        &self,
        ids: &[u32],
        bsz: usize,
        t: usize,
        mut cache: Option<&mut KvCache>,
        mode: Mode,
        offset: Option<&Tensor>,
    ) -> Result<Tensor> {
        let c = &self.config;
        if ids.len() != bsz * t {
            return Err(Error::arg("gpt2", format!("{} ids for batch {bsz} x seq {t}", ids.len())));
        }
        let past = cache.as_ref().map_or(0, |k| k.len());
        if past + t > c.n_positions {
            return Err(Error::arg(
                "gpt2",
                format!("position {} exceeds n_positions {}", past + t, c.n_positions),
            ));
        }
        let (p, e) = (&self.params, c.n_embd);
        let positions: Vec<u32> = (0..bsz * t).map(|i| (past + i % t) as u32).collect();
        let mut x = embedding(p.get(self.wte), ids, &[bsz, t])?.add(&embedding(
            p.get(self.wpe),
            &positions,
            &[bsz, t],
        )?)?;
        if let Some(off) = offset {
            if off.shape() != [bsz, t, e] {
                let msg = format!("shape {:?}, expected [{bsz}, {t}, {e}]", off.shape());
                return Err(Error::arg("embed_offset", msg));
            }
            x = x.add(off)?;
        }
        let mut x = mode.dropout_in(&x, c.embd_pdrop, 0, !p.get(self.wte).requires_grad())?;
        let (nh, eps) = (c.n_head, c.layer_norm_epsilon as f32);
        let dh = e / nh;
        let scale = if c.scale_attn_weights { 1.0 / (dh as f32).sqrt() } else { 1.0 };
        for (li, blk) in self.blocks.iter().enumerate() {
            let h = layer_norm(&x, p.get(blk.ln1.0), p.get(blk.ln1.1), eps)?;
            let qkv = blk.c_attn.forward(p, &h)?.reshape(&[bsz, t, 3, nh, dh])?.permute(&[2, 0, 3, 1, 4])?;
            let part = |i: usize| qkv.slice(0, i, 1)?.reshape(&[bsz, nh, t, dh]);
            let (q, k, v) = (part(0)?, part(1)?, part(2)?);
            let (k, v) = match cache.as_deref_mut() {
                Some(kv) => kv.extend(li, k, v)?,
                None => (k, v),
            };
            let a = sdpa(&q, &k, &v, scale, true, None)?.permute(&[0, 2, 1, 3])?.reshape(&[bsz, t, e])?;
            let frozen = !p.get(blk.c_proj.weight).requires_grad();
            let a = mode.dropout_in(&blk.c_proj.forward(p, &a)?, c.resid_pdrop, 1 + 2 * li as u64, frozen)?;
            x = x.add(&a)?;
            let h = layer_norm(&x, p.get(blk.ln2.0), p.get(blk.ln2.1), eps)?;
            let f = activation(&c.activation_function, &blk.c_fc.forward(p, &h)?)?;
            let f =
                mode.dropout_in(&blk.mlp_proj.forward(p, &f)?, c.resid_pdrop, 2 + 2 * li as u64, frozen)?;
            x = x.add(&f)?;
        }
        if let Some(kv) = cache {
            kv.advance(t);
        }
        layer_norm(&x, p.get(self.ln_f.0), p.get(self.ln_f.1), eps)
    }
}

impl CausalLm for Gpt2 {
    fn logits(&self, ids: &[u32], batch: usize, seq: usize, cache: Option<&mut KvCache>) -> Result<Tensor> {
        self.forward(ids, batch, seq, cache)
    }
    fn new_cache(&self) -> KvCache {
        KvCache::new(self.blocks.len())
    }
    fn max_positions(&self) -> usize {
        self.config.n_positions
    }
    fn engine(&self) -> &Engine {
        &self.engine
    }
}

/// Depth of a parameter path (see `depth_of`).
fn depth(path: &str, layers: usize) -> usize {
    if path.contains(".wte.") || path.contains(".wpe.") {
        0
    } else if let Some(rest) = path.split(".h.").nth(1) {
        rest.split('.').next().and_then(|s| s.parse::<usize>().ok()).map_or(0, |l| l + 1)
    } else {
        layers + 1
    }
}

/// GPT-2's registry row: a Hugging Face directory.
pub static ARCHITECTURE: Architecture = Architecture {
    name: "gpt2",
    aliases: &[],
    family: Family::Transformer,
    head: "{lm_head,score}.*",
    image_spec: None,
    export: ExportLayout::HfDir,
    hf_classifier: None,
    causal_lm: true,
    lora_targets: Some("*.attn.c_attn.weight"),
    config_types: &["gpt2"],
    load: |s| {
        let (cfg, cfg_name) = s.hf_config()?;
        let config = Gpt2Config::from_json(&cfg, &cfg_name)?;
        let (m, r) =
            Gpt2::bind(s.engine, crate::weights::open(s.path)?.as_ref(), &s.name(), config, s.classes)?;
        Ok((Box::new(m), r))
    },
};

impl Model for Gpt2 {
    model_basics!(ARCHITECTURE);
    fn vocab_size(&self) -> Option<usize> {
        Some(self.config.vocab_size)
    }
    fn as_causal_lm(&mut self, mode: Mode) -> Option<&dyn CausalLm> {
        self.mode = mode;
        // A classifier bound without its checkpoint's lm_head is no language model.
        self.score.is_none().then_some(self as &dyn CausalLm)
    }
    fn text_encoder(&self) -> Option<&dyn TextEncoder> {
        Some(self)
    }
    fn replace_head(&mut self, classes: usize, seed: u64) -> Result<()> {
        let (e, std) = (self.config.n_embd, self.config.initializer_range);
        self.score = Some(seq_head::replace_score(&mut self.params, self.score, classes, e, std, seed)?);
        let layers = self.config.n_layer;
        self.params.set_depths(|p| depth(p, layers));
        Ok(())
    }
}

/// The text-classification hooks: the final hidden states, and `score` at the last real token.
impl TextEncoder for Gpt2 {
    fn hidden_size(&self) -> usize {
        self.config.n_embd
    }
    fn encode(&self, input: &BertInput, mode: Mode) -> Result<BertOutput> {
        let hidden = self.hidden(input.ids, input.batch, input.seq, None, mode, input.embed_offset)?;
        let logits = match self.score {
            Some(s) => Some(seq_head::classify_last(&hidden, self.params.get(s), input)?),
            None => None,
        };
        Ok(BertOutput { last_hidden: hidden, pooled: None, logits })
    }
    fn word_embeddings(&self, input: &BertInput) -> Result<Tensor> {
        embedding(self.params.get(self.wte), input.ids, &[input.batch, input.seq])
    }
}
