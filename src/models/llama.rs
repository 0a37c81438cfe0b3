//! Llama-family decoder (Llama 2/3, SmolLM2, TinyLlama, Mistral, Qwen2/Qwen2.5) with Hugging
//! Face key names: RMSNorm, RoPE in the `rotate_half` layout, grouped-query attention, SwiGLU
//! MLP, optionally tied embeddings. The family's members differ in what their `config.json`
//! says: Qwen2 adds biases to the q, k and v projections (not o); Mistral attends within a
//! sliding window of keys, as Qwen2 does in the layers its `layer_types` name.
//!
//! GGUF checkpoints (llama.cpp) arrive through a weight source that renames their tensors to
//! these keys and undoes the converter's q/k row permutation, so this file sees one layout.

use std::sync::Arc;

use serde::Deserialize;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::models::bert::{BertInput, BertOutput};
use crate::models::decoder::{causal_lm_loss, chunked_causal_lm_loss, CausalLm, KvCache};
use crate::models::model::{model_basics, Model, TextEncoder};
use crate::models::registry::{Architecture, ExportLayout};
use crate::models::seq_head;
use crate::nn::init::Family;
use crate::nn::rope::Rope;
use crate::nn::{Binder, BindingReport, Init, Linear, Mode, ParamGetter, Params, Pid};
use crate::ops::attention::{attention, Attention};
use crate::ops::embedding::embedding_as;
use crate::ops::linear::linear;
use crate::ops::norm::rms_norm;
use crate::tensor::{DType, Tensor};
use crate::weights::WeightSource;

/// Logit bytes of one chunk of the checkpointed loss: a few dozen rows of a large vocabulary,
/// enough for the head's product to run at full speed.
const LOSS_CHUNK_BYTES: u64 = 16 << 20;

/// The fields of a HF Llama `config.json` that shape the model.
#[derive(Debug, Clone, Deserialize)]
pub struct LlamaConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    #[serde(default)]
    pub head_dim: Option<usize>,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// `rope_theta` (older configs) — `rope_parameters.rope_theta` is read by `from_json`.
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub mlp_bias: bool,
    #[serde(default = "default_init_range")]
    pub initializer_range: f32,
    /// `llama`, `mistral`, `qwen2`: which member of the family (biases, windows).
    #[serde(default)]
    pub model_type: Option<String>,
    /// Keys an attention row sees at most, in the layers that slide (Mistral: every layer).
    #[serde(default)]
    pub sliding_window: Option<usize>,
    /// Qwen2: windows apply only with this set, from layer `max_window_layers` on.
    #[serde(default)]
    pub use_sliding_window: bool,
    #[serde(default)]
    pub max_window_layers: Option<usize>,
    /// Per layer `full_attention` or `sliding_attention` (transformers 5 writes it for Qwen2).
    #[serde(default)]
    pub layer_types: Option<Vec<String>>,
}

fn default_eps() -> f64 {
    1e-6
}
fn default_max_pos() -> usize {
    2048
}
fn default_act() -> String {
    "silu".into()
}
fn default_init_range() -> f32 {
    0.02
}

impl LlamaConfig {
    pub fn from_json(v: &serde_json::Value, path: &str) -> Result<Self> {
        let fmt = |m: String| Error::Format { path: path.into(), line: None, message: m };
        let mut c: LlamaConfig =
            serde_json::from_value(v.clone()).map_err(|e| fmt(format!("Llama config: {e}")))?;
        if c.rope_theta.is_none() {
            c.rope_theta = v.pointer("/rope_parameters/rope_theta").and_then(|t| t.as_f64());
        }
        if let Some(kind) =
            v.pointer("/rope_parameters/rope_type").or_else(|| v.pointer("/rope_scaling/rope_type"))
        {
            if kind.as_str() != Some("default") {
                return Err(Error::Unsupported(format!("{path}: RoPE scaling {kind}")));
            }
        }
        c.validate().map_err(fmt)?;
        Ok(c)
    }

    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    pub fn theta(&self) -> f64 {
        self.rope_theta.unwrap_or(10_000.0)
    }

    fn is(&self, member: &str) -> bool {
        self.model_type.as_deref() == Some(member)
    }

    /// Whether q, k and v carry biases: `attention_bias`, or Qwen2 (whose config does not say,
    /// its modelling code always has them; o_proj has none).
    pub fn qkv_bias(&self) -> bool {
        self.attention_bias || self.is("qwen2")
    }

    /// The sliding window of layer `l`, as transformers decides it: `layer_types` when the
    /// config lists them; else Mistral's `sliding_window` in every layer; else Qwen2's from
    /// `max_window_layers` on when `use_sliding_window`; else none (Llama).
    pub fn window(&self, l: usize) -> Option<usize> {
        let w = self.sliding_window?;
        if let Some(types) = &self.layer_types {
            return (types.get(l).map(String::as_str) == Some("sliding_attention")).then_some(w);
        }
        if self.is("mistral") {
            return Some(w);
        }
        (self.is("qwen2") && self.use_sliding_window && l >= self.max_window_layers.unwrap_or(0)).then_some(w)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        let (h, kv) = (self.num_attention_heads, self.kv_heads());
        if h == 0 || kv == 0 || h % kv != 0 {
            return Err(format!(
                "num_attention_heads {h} must be a positive multiple of num_key_value_heads {kv}"
            ));
        }
        if !self.head_dim().is_multiple_of(2) {
            return Err(format!("head_dim {} must be even for RoPE", self.head_dim()));
        }
        if self.sliding_window == Some(0) {
            return Err("sliding_window must be at least 1".into());
        }
        if let Some(types) = &self.layer_types {
            if types.len() != self.num_hidden_layers {
                return Err(format!(
                    "layer_types lists {} layers, num_hidden_layers is {}",
                    types.len(),
                    self.num_hidden_layers
                ));
            }
            if let Some(t) =
                types.iter().find(|t| !matches!(t.as_str(), "full_attention" | "sliding_attention"))
            {
                return Err(format!("layer_types: unknown attention type '{t}'"));
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy)]
struct Layer {
    in_norm: Pid,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    post_norm: Pid,
    gate: Linear,
    up: Linear,
    down: Linear,
}

/// A Llama-style causal language model.
pub struct Llama {
    pub config: LlamaConfig,
    pub params: Params,
    embed: Pid,
    layers: Vec<Layer>,
    norm: Pid,
    lm_head: Option<Pid>,
    /// `score.weight` `[classes, H]` of a sequence classifier (`seq_head`); such a model has no
    /// language-model head of its own.
    score: Option<Pid>,
    rope: Arc<Rope>,
    engine: Engine,
    pub mode: Mode,
    /// Recompute each block in backward instead of keeping its activations
    /// (`train.activation_checkpointing`; see `graph::checkpoint`).
    pub activation_checkpointing: bool,
    /// The activations' dtype: f32, or f16 under mixed precision ([`Model::set_mixed_precision`]).
    act: DType,
}

impl Llama {
    /// Bind a checkpoint with HF Llama keys (`model.layers.0.self_attn.q_proj.weight`, …).
    pub fn load(
        engine: &Engine,
        source: &dyn WeightSource,
        name: &str,
        config: LlamaConfig,
    ) -> Result<(Llama, BindingReport)> {
        Self::load_keeping(engine, source, name, config, false)
    }

    /// [`Self::load`], keeping block-quantized and 16-bit (f16, bf16) matrices as they are on
    /// the device when `keep`: no f32 copy is made of them.
    pub fn load_keeping(
        engine: &Engine,
        source: &dyn WeightSource,
        name: &str,
        config: LlamaConfig,
        keep: bool,
    ) -> Result<(Llama, BindingReport)> {
        Self::bind(engine, source, name, config, keep, None)
    }

    /// [`Self::load_keeping`] as a sequence classifier of `classes` outputs when `Some`
    /// (`*ForSequenceClassification`: `score.weight` bound, or fresh; `lm_head` left unread).
    pub fn bind(
        engine: &Engine,
        source: &dyn WeightSource,
        name: &str,
        config: LlamaConfig,
        keep: bool,
        classes: Option<usize>,
    ) -> Result<(Llama, BindingReport)> {
        config.validate().map_err(|m| Error::arg("llama", m))?;
        let b = Binder::new(engine, Some(source), name, "llama")
            .ignore_suffix("rotary_emb.inv_freq")
            .keep_quantized(keep);
        Self::build(engine, b, config, false, classes)
    }

    /// Load a llama.cpp GGUF file (e.g. SmolLM2): tensors renamed to HF keys, q/k rows
    /// un-permuted back to the `rotate_half` layout, every quantised type dequantised to f32.
    pub fn from_gguf(engine: &Engine, path: impl AsRef<std::path::Path>) -> Result<(Llama, BindingReport)> {
        Self::from_gguf_keeping(engine, path, false)
    }

    /// [`Self::from_gguf`], keeping the Q4_0 / Q4_1 / Q8_0 / Q4_K matrices quantized on the
    /// device when `keep` (frozen weights then never exist in f32; see `tensor::quant`).
    pub fn from_gguf_keeping(
        engine: &Engine,
        path: impl AsRef<std::path::Path>,
        keep: bool,
    ) -> Result<(Llama, BindingReport)> {
        Self::gguf(engine, path.as_ref(), keep, None)
    }

    fn gguf(
        engine: &Engine,
        path: &std::path::Path,
        keep: bool,
        classes: Option<usize>,
    ) -> Result<(Llama, BindingReport)> {
        let src = crate::weights::gguf_llama::GgufLlama::open(path)?;
        let name = path.display().to_string();
        let config = LlamaConfig::from_json(&src.config().to_json(), &name)?;
        Self::bind(engine, &src, &name, config, keep, classes)
    }

    /// A randomly initialised model (HF init: N(0, 0.02²), norms 1).
    pub fn scratch(engine: &Engine, config: LlamaConfig, seed: u64) -> Result<Llama> {
        config.validate().map_err(|m| Error::arg("llama", m))?;
        let b = Binder::new(engine, None, "(scratch)", "llama").seed(seed);
        Ok(Self::build(engine, b, config, true, None)?.0)
    }

    fn build(
        engine: &Engine,
        mut b: Binder,
        config: LlamaConfig,
        scratch: bool,
        classes: Option<usize>,
    ) -> Result<(Llama, BindingReport)> {
        let c = &config;
        let (h, hd, nh, kv) = (c.hidden_size, c.head_dim(), c.num_attention_heads, c.kv_heads());
        let normal = Init::Normal { std: c.initializer_range };
        let mut get = |b: &mut Binder, path: &str, shape: &[usize], init: Init| {
            if scratch {
                b.fresh(path, shape, init)
            } else {
                b.param(path, shape)
            }
        };
        let lin = |b: &mut Binder, path: &str, i: usize, o: usize, bias: bool, get: &mut ParamGetter| {
            Ok::<_, Error>(Linear {
                weight: get(b, &format!("{path}.weight"), &[o, i], normal)?,
                bias: if bias { Some(get(b, &format!("{path}.bias"), &[o], Init::Zeros)?) } else { None },
                in_features: i,
                out_features: o,
                in_major: false,
            })
        };
        let embed = get(&mut b, "model.embed_tokens.weight", &[c.vocab_size, h], normal)?;
        let mut layers = Vec::new();
        for l in 0..c.num_hidden_layers {
            let p = format!("model.layers.{l}");
            let (qkv_b, o_b) = (c.qkv_bias(), c.attention_bias);
            layers.push(Layer {
                in_norm: get(&mut b, &format!("{p}.input_layernorm.weight"), &[h], Init::Ones)?,
                q: lin(&mut b, &format!("{p}.self_attn.q_proj"), h, nh * hd, qkv_b, &mut get)?,
                k: lin(&mut b, &format!("{p}.self_attn.k_proj"), h, kv * hd, qkv_b, &mut get)?,
                v: lin(&mut b, &format!("{p}.self_attn.v_proj"), h, kv * hd, qkv_b, &mut get)?,
                o: lin(&mut b, &format!("{p}.self_attn.o_proj"), nh * hd, h, o_b, &mut get)?,
                post_norm: get(&mut b, &format!("{p}.post_attention_layernorm.weight"), &[h], Init::Ones)?,
                gate: lin(
                    &mut b,
                    &format!("{p}.mlp.gate_proj"),
                    h,
                    c.intermediate_size,
                    c.mlp_bias,
                    &mut get,
                )?,
                up: lin(&mut b, &format!("{p}.mlp.up_proj"), h, c.intermediate_size, c.mlp_bias, &mut get)?,
                down: lin(
                    &mut b,
                    &format!("{p}.mlp.down_proj"),
                    c.intermediate_size,
                    h,
                    c.mlp_bias,
                    &mut get,
                )?,
            });
        }
        let norm = get(&mut b, "model.norm.weight", &[h], Init::Ones)?;
        let score = match classes {
            Some(n) => Some(seq_head::bind_score(&mut b, n, h, c.initializer_range, scratch)?),
            None => None,
        };
        let lm_head = if score.is_some() {
            b.discard("lm_head.weight");
            None
        } else if c.tie_word_embeddings {
            b.consume("lm_head.weight");
            None
        } else {
            Some(get(&mut b, "lm_head.weight", &[c.vocab_size, h], normal)?)
        };
        let (mut params, report) = b.finish()?;
        params.set_depths(|p| depth(p, config.num_hidden_layers));
        let rope = Rope::new(engine, hd, c.max_position_embeddings, c.theta())?;
        Ok((
            Llama {
                config,
                params,
                embed,
                layers,
                norm,
                lm_head,
                score,
                rope: Arc::new(rope),
                engine: engine.clone(),
                mode: Mode::EVAL,
                activation_checkpointing: false,
                act: DType::F32,
            },
            report,
        ))
    }

    /// Depth of a parameter path: 0 = embeddings, 1..=L = layers, L+1 = final norm and head.
    pub fn depth_of(&self, path: &str) -> usize {
        depth(path, self.config.num_hidden_layers)
    }

    /// The final norm's output `[B, T, H]`, before the head.
    fn hidden(&self, ids: &[u32], bsz: usize, t: usize, cache: Option<&mut KvCache>) -> Result<Tensor> {
        self.hidden_offset(ids, bsz, t, cache, None)
    }

    /// [`Self::hidden`] with `offset` `[B, T, H]` added to the token embeddings (attribution).
    fn hidden_offset(
        &self,
        ids: &[u32],
        bsz: usize,
        t: usize,
        mut cache: Option<&mut KvCache>,
        offset: Option<&Tensor>,
    ) -> Result<Tensor> {
        let c = &self.config;
        if ids.len() != bsz * t {
            return Err(Error::arg("llama", format!("{} ids for batch {bsz} x seq {t}", ids.len())));
        }
        let past = cache.as_ref().map_or(0, |k| k.len());
        let p = &self.params;
        let mut x = embedding_as(p.get(self.embed), ids, &[bsz, t], self.act)?;
        if let Some(off) = offset {
            check_offset(off, [bsz, t, c.hidden_size])?;
            x = x.add(&off.to_dtype(self.act)?)?;
        }
        let ctx = BlockCtx { config: c.clone(), rope: self.rope.clone(), bsz, t, past };
        let checkpointing = self.activation_checkpointing && cache.is_none() && self.engine.grad_enabled();
        for (li, l) in self.layers.iter().enumerate() {
            x = if checkpointing {
                self.checkpointed(&ctx, li, *l, &x)?
            } else {
                ctx.block(p, li, l, &x, cache.as_deref_mut())?
            };
        }
        if let Some(kv) = cache {
            kv.advance(t);
        }
        rms_norm(&x, p.get(self.norm), c.rms_norm_eps as f32)
    }

    /// The output projection `[V, H]`: its own, or the tied embedding table.
    fn head(&self) -> &Tensor {
        self.params.get(self.lm_head.unwrap_or(self.embed))
    }

    fn forward(&self, ids: &[u32], bsz: usize, t: usize, cache: Option<&mut KvCache>) -> Result<Tensor> {
        let x = self.hidden(ids, bsz, t, cache)?;
        // As a linear layer, so a quantized (tied) table is read by the quantized kernels.
        linear(&x, self.head(), None, false)
    }
}

/// What one decoder block needs besides its weights (cheap to clone into a checkpoint).
#[derive(Clone)]
struct BlockCtx {
    config: LlamaConfig,
    rope: Arc<Rope>,
    bsz: usize,
    t: usize,
    past: usize,
}

impl BlockCtx {
    /// One pre-norm decoder block: attention with RoPE and GQA, then the SwiGLU MLP, each
    /// added to the residual stream.
    fn block(
        &self,
        p: &Params,
        li: usize,
        l: &Layer,
        x: &Tensor,
        cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        let (c, bsz, t, past) = (&self.config, self.bsz, self.t, self.past);
        let (nh, kv, hd, eps) = (c.num_attention_heads, c.kv_heads(), c.head_dim(), c.rms_norm_eps as f32);
        let scale = 1.0 / (hd as f32).sqrt();
        let h = rms_norm(x, p.get(l.in_norm), eps)?;
        let heads = |y: Tensor, n: usize| y.reshape(&[bsz, t, n, hd])?.permute(&[0, 2, 1, 3]);
        let q = self.rope.apply(&heads(l.q.forward(p, &h)?, nh)?, past)?;
        let k = self.rope.apply(&heads(l.k.forward(p, &h)?, kv)?, past)?;
        let v = heads(l.v.forward(p, &h)?, kv)?;
        let (k, v) = match cache {
            Some(c) => c.extend(li, k, v)?,
            None => (k, v),
        };
        let opts = Attention { scale, causal: true, key_padding: None, window: c.window(li) };
        let a = attention(&q, &k, &v, &opts)?.permute(&[0, 2, 1, 3])?.reshape(&[bsz, t, nh * hd])?;
        let x = x.add(&l.o.forward(p, &a)?)?;
        let h = rms_norm(&x, p.get(l.post_norm), eps)?;
        let g = crate::models::bert::activation(&c.hidden_act, &l.gate.forward(p, &h)?)?;
        x.add(&l.down.forward(p, &g.mul(&l.up.forward(p, &h)?)?)?)
    }
}

impl Llama {
    /// Block `li` through `graph::checkpoint`: its inputs are `x` and the block's trainable
    /// tensors (its LoRA adapters, or all its weights in full fine-tuning), which the
    /// recomputation puts back in place of the model's own.
    fn checkpointed(&self, ctx: &BlockCtx, li: usize, l: Layer, x: &Tensor) -> Result<Tensor> {
        let prefix = format!("model.layers.{li}.");
        let trainable: Vec<Pid> = self
            .params
            .entries()
            .iter()
            .filter(|e| e.trainable() && e.path.starts_with(&prefix))
            .filter_map(|e| self.params.find(&e.path))
            .collect();
        let mut inputs = vec![x];
        inputs.extend(trainable.iter().map(|&id| self.params.get(id)));
        let (ctx, base) = (ctx.clone(), self.params.clone());
        let block: crate::graph::checkpoint::Block = Arc::new(move |ins: &[Tensor]| {
            let mut p = base.clone();
            for (&id, t) in trainable.iter().zip(&ins[1..]) {
                p.set_exact(id, t.clone());
            }
            ctx.block(&p, li, &l, &ins[0], None)
        });
        crate::graph::checkpoint::checkpoint(&inputs, block)
    }
}

impl CausalLm for Llama {
    fn logits(&self, ids: &[u32], batch: usize, seq: usize, cache: Option<&mut KvCache>) -> Result<Tensor> {
        // Callers (generation, evaluation) read f32 logits whatever the activations were.
        self.forward(ids, batch, seq, cache)?.to_dtype(DType::F32)
    }
    /// The head and the loss a few rows at a time, so the `[B, T, V]` logits are never held
    /// whole (`lm_loss.rs`): without a tape (evaluation) that costs nothing, and with activation
    /// checkpointing each chunk's logits are recomputed in backward.
    fn loss(&self, ids: &[u32], batch: usize, seq: usize, ignore: Option<u32>) -> Result<Tensor> {
        if self.engine.grad_enabled() && !self.activation_checkpointing {
            return causal_lm_loss(&self.forward(ids, batch, seq, None)?, ids, ignore);
        }
        let hidden = self.hidden(ids, batch, seq, None)?;
        let rows = (LOSS_CHUNK_BYTES / (4 * self.config.vocab_size as u64)).max(1) as usize;
        chunked_causal_lm_loss(&hidden, self.head(), ids, ignore, rows)
    }
    fn new_cache(&self) -> KvCache {
        KvCache::new(self.layers.len())
    }
    fn max_positions(&self) -> usize {
        self.config.max_position_embeddings
    }
    fn engine(&self) -> &Engine {
        &self.engine
    }
}

/// Depth of a parameter path (see `depth_of`).
fn depth(path: &str, layers: usize) -> usize {
    if path.contains("embed_tokens") {
        0
    } else if let Some(rest) = path.split("layers.").nth(1) {
        rest.split('.').next().and_then(|s| s.parse::<usize>().ok()).map_or(0, |l| l + 1)
    } else {
        layers + 1
    }
}

/// The Llama family's registry row: a GGUF file (SmolLM2 as llama.cpp ships it) or a Hugging
/// Face directory of a Llama, Mistral or Qwen2 model (its `model_type` says which).
pub static ARCHITECTURE: Architecture = Architecture {
    name: "llama",
    aliases: &["smollm2", "mistral", "qwen2"],
    family: Family::Transformer,
    head: "{lm_head,score}.*",
    image_spec: None,
    export: ExportLayout::HfDir,
    hf_classifier: None,
    causal_lm: true,
    lora_targets: Some("*self_attn.{q_proj,v_proj}.weight"),
    config_types: &["llama", "mistral", "qwen2"],
    load: |s| {
        let (m, r) = if s.path.is_file() {
            Llama::gguf(s.engine, s.path, s.keep_quantized, s.classes)?
        } else {
            let (cfg, cfg_name) = s.hf_config()?;
            let config = LlamaConfig::from_json(&cfg, &cfg_name)?;
            let source = crate::weights::open(s.path)?;
            Llama::bind(s.engine, source.as_ref(), &s.name(), config, s.keep_quantized, s.classes)?
        };
        Ok((Box::new(m), r))
    },
};

impl Model for Llama {
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
        let (h, std) = (self.config.hidden_size, self.config.initializer_range);
        self.score = Some(seq_head::replace_score(&mut self.params, self.score, classes, h, std, seed)?);
        let layers = self.config.num_hidden_layers;
        self.params.set_depths(|p| depth(p, layers));
        Ok(())
    }
    fn set_activation_checkpointing(&mut self, on: bool) -> Result<()> {
        self.activation_checkpointing = on;
        Ok(())
    }
    fn set_mixed_precision(&mut self, on: bool) -> Result<()> {
        self.act = crate::models::model::activations_dtype(on, &self.engine);
        Ok(())
    }
}

/// The text-classification hooks: the final hidden states, and `score` at the last real token.
impl TextEncoder for Llama {
    fn hidden_size(&self) -> usize {
        self.config.hidden_size
    }
    fn encode(&self, input: &BertInput, _mode: Mode) -> Result<BertOutput> {
        // Consumers read f32 whatever the activations were (one cast, shared with the head).
        let hidden = self
            .hidden_offset(input.ids, input.batch, input.seq, None, input.embed_offset)?
            .to_dtype(DType::F32)?;
        let logits = match self.score {
            Some(s) => Some(seq_head::classify_last(&hidden, self.params.get(s), input)?),
            None => None,
        };
        Ok(BertOutput { last_hidden: hidden, pooled: None, logits })
    }
    fn word_embeddings(&self, input: &BertInput) -> Result<Tensor> {
        embedding_as(self.params.get(self.embed), input.ids, &[input.batch, input.seq], DType::F32)
    }
}

/// An embedding offset must have the embeddings' shape.
fn check_offset(off: &Tensor, want: [usize; 3]) -> Result<()> {
    if off.shape() != want {
        return Err(Error::arg("embed_offset", format!("shape {:?}, expected {want:?}", off.shape())));
    }
    Ok(())
}
