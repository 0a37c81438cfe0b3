//! BERT encoder from any Hugging Face `BertModel` config, with the pooler and the
//! sequence-classification and token-classification heads of `BertFor*`.
//!
//! Parameter paths are HF's `BertFor*` names (`bert.embeddings.word_embeddings.weight`,
//! `bert.encoder.layer.3.attention.self.query.weight`, `classifier.weight`). A bare `BertModel`
//! checkpoint (keys without `bert.`) binds the same way. Post-norm blocks, GELU (erf) by
//! default, absolute position embeddings.

use serde::Deserialize;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::models::bert_flavor::{bert_json, roberta_positions, Flavor};
use crate::models::model::{Model, TextEncoder};
use crate::models::registry::{Architecture, ExportLayout};
use crate::nn::attention::sdpa;
use crate::nn::init::Family;
use crate::nn::{Binder, BindingReport, Init, Linear, Mode, Origin, ParamGetter, Params, Pid, Slot};
use crate::ops::embedding::embedding;
use crate::ops::norm::layer_norm;
use crate::tensor::{DType, Tensor};
use crate::weights::WeightSource;

/// The fields of a HF BERT `config.json` that shape the model.
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_ln_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f32,
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f32,
    #[serde(default = "default_init_range")]
    pub initializer_range: f32,
    /// `classifier_dropout` (falls back to `hidden_dropout_prob`, as in HF).
    #[serde(default)]
    pub classifier_dropout: Option<f32>,
    /// RoBERTa's positions start past it (1 in its checkpoints).
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    /// BERT, RoBERTa or DistilBERT (`model_type`).
    #[serde(skip)]
    pub flavor: Flavor,
}

fn default_act() -> String {
    "gelu".into()
}
fn default_max_pos() -> usize {
    512
}
fn default_type_vocab() -> usize {
    2
}
fn default_ln_eps() -> f64 {
    1e-12
}
fn default_dropout() -> f32 {
    0.1
}
fn default_init_range() -> f32 {
    0.02
}

impl BertConfig {
    /// Parse a `config.json` value, naming the file in errors.
    pub fn from_json(v: &serde_json::Value, path: &str) -> Result<Self> {
        let flavor = Flavor::of(v);
        let mut c: BertConfig = serde_json::from_value(bert_json(v, flavor, path)?).map_err(|e| {
            Error::Format { path: path.into(), line: None, message: format!("BERT config: {e}") }
        })?;
        c.flavor = flavor;
        if c.num_attention_heads == 0 || !c.hidden_size.is_multiple_of(c.num_attention_heads) {
            return Err(Error::Format {
                path: path.into(),
                line: None,
                message: format!(
                    "hidden_size {} is not a multiple of num_attention_heads {}",
                    c.hidden_size, c.num_attention_heads
                ),
            });
        }
        Ok(c)
    }
}

/// Which head sits on the encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BertTask {
    /// The bare encoder (last hidden state, pooled output when the checkpoint has a pooler).
    Encoder,
    /// Pooler + `classifier` over the [CLS] token (`BertForSequenceClassification`).
    SequenceClassification { num_labels: usize },
    /// `classifier` on every token (`BertForTokenClassification`).
    TokenClassification { num_labels: usize },
}

/// One tokenised batch: row-major `[batch, seq]` arrays.
#[derive(Debug, Clone, Copy)]
pub struct BertInput<'a> {
    pub ids: &'a [u32],
    /// Segment ids; all zero when `None`.
    pub type_ids: Option<&'a [u32]>,
    /// 1 for real tokens, 0 for padding; all ones when `None`.
    pub attention_mask: Option<&'a [u32]>,
    pub batch: usize,
    pub seq: usize,
    /// Added to the summed input embeddings (word + position + type, before the embedding
    /// LayerNorm), `[batch, seq, hidden]`. A zero leaf that requires grad here receives
    /// d output / d embeddings, which attributions need; `None` for ordinary use.
    pub embed_offset: Option<&'a Tensor>,
}

/// What a forward pass returns.
pub struct BertOutput {
    /// `[B, T, H]`.
    pub last_hidden: Tensor,
    /// `[B, H]` when the model has a pooler.
    pub pooled: Option<Tensor>,
    /// `[B, labels]` (sequence) or `[B, T, labels]` (token) when the model has a head.
    pub logits: Option<Tensor>,
}

struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    attn_out: Linear,
    ln1: (Pid, Pid),
    inter: Linear,
    out: Linear,
    ln2: (Pid, Pid),
}

/// A BERT encoder with an optional task head.
pub struct Bert {
    pub config: BertConfig,
    pub task: BertTask,
    pub params: Params,
    word: Pid,
    pos: Pid,
    /// Token-type embeddings (none in DistilBERT).
    typ: Option<Pid>,
    emb_ln: (Pid, Pid),
    layers: Vec<Layer>,
    pooler: Option<Linear>,
    head: Option<Linear>,
    /// The encoder's activations: f32, or f16 under mixed precision (the embedding sum and its
    /// LayerNorm stay f32; the outputs are handed back in f32).
    act: DType,
}

impl Bert {
    /// Bind a checkpoint to a model of `config` with `task`'s head. The head is loaded when the
    /// checkpoint has one of the right shape (resuming a fine-tuned model), else initialised
    /// fresh as HF does: weights N(0, initializer_range²), bias 0, seeded by `seed`.
    pub fn load(
        engine: &Engine,
        source: &dyn WeightSource,
        source_name: &str,
        config: BertConfig,
        task: BertTask,
        seed: u64,
    ) -> Result<(Bert, BindingReport)> {
        let root = config.flavor.keys().root;
        let b = Binder::new(engine, Some(source), source_name, root)
            .strip_prefix(&format!("{root}."))
            .ignore_suffix("embeddings.position_ids")
            .seed(seed);
        let (model, params, report) = Self::build(b, config, task)?;
        Ok((Self::assemble(model, params), report))
    }

    /// A randomly initialised model (training from scratch; the ablation's baseline).
    pub fn scratch(engine: &Engine, config: BertConfig, task: BertTask, seed: u64) -> Result<Bert> {
        let b = Binder::new(engine, None, "(scratch)", "bert").seed(seed);
        let (model, params, _) = Self::build(b, config, task)?;
        Ok(Self::assemble(model, params))
    }

    fn assemble(mut model: Bert, params: Params) -> Bert {
        model.params = params;
        model
    }

    fn build(mut b: Binder, config: BertConfig, task: BertTask) -> Result<(Bert, Params, BindingReport)> {
        let c = &config;
        let h = c.hidden_size;
        let keys = c.flavor.keys();
        let root = keys.root;
        let scratch = !b.has(&format!("{root}.embeddings.word_embeddings.weight"));
        let normal = Init::Normal { std: c.initializer_range };
        // From scratch every tensor is fresh; otherwise everything but the head must load.
        let mut get = |b: &mut Binder, path: &str, shape: &[usize], init: Init| {
            if scratch {
                b.fresh(path, shape, init)
            } else {
                b.param(path, shape)
            }
        };
        let emb = |part: &str| format!("{root}.embeddings.{part}");
        let word = get(&mut b, &emb("word_embeddings.weight"), &[c.vocab_size, h], normal)?;
        let pos = get(&mut b, &emb("position_embeddings.weight"), &[c.max_position_embeddings, h], normal)?;
        let typ = if c.flavor.has_token_types() {
            Some(get(&mut b, &emb("token_type_embeddings.weight"), &[c.type_vocab_size, h], normal)?)
        } else {
            None
        };
        let ln = |b: &mut Binder, path: &str, get: &mut ParamGetter| {
            Ok::<_, Error>((
                get(b, &format!("{path}.weight"), &[h], Init::Ones)?,
                get(b, &format!("{path}.bias"), &[h], Init::Zeros)?,
            ))
        };
        let emb_ln = ln(&mut b, &emb("LayerNorm"), &mut get)?;
        let lin = |b: &mut Binder, path: &str, i: usize, o: usize, get: &mut ParamGetter| {
            Ok::<_, Error>(Linear {
                weight: get(b, &format!("{path}.weight"), &[o, i], normal)?,
                bias: Some(get(b, &format!("{path}.bias"), &[o], Init::Zeros)?),
                in_features: i,
                out_features: o,
                in_major: false,
            })
        };
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for l in 0..c.num_hidden_layers {
            let p = |part: &str| format!("{root}.{}.{l}.{part}", keys.layers);
            layers.push(Layer {
                q: lin(&mut b, &p(keys.q), h, h, &mut get)?,
                k: lin(&mut b, &p(keys.k), h, h, &mut get)?,
                v: lin(&mut b, &p(keys.v), h, h, &mut get)?,
                attn_out: lin(&mut b, &p(keys.attn_out), h, h, &mut get)?,
                ln1: ln(&mut b, &p(keys.ln1), &mut get)?,
                inter: lin(&mut b, &p(keys.inter), h, c.intermediate_size, &mut get)?,
                out: lin(&mut b, &p(keys.out), c.intermediate_size, h, &mut get)?,
                ln2: ln(&mut b, &p(keys.ln2), &mut get)?,
            });
        }
        let wants_pooler = matches!(task, BertTask::SequenceClassification { .. });
        let pre = keys.pre_head;
        let pooler = if scratch && wants_pooler || !scratch && b.has(&format!("{pre}.weight")) {
            Some(lin(&mut b, pre, h, h, &mut get)?)
        } else if wants_pooler {
            // A checkpoint without a pooler (some sentence encoders, a pretrained RoBERTa or
            // DistilBERT before its classifier exists): a fresh one, reported.
            Some(Linear::fresh(&mut b, pre, h, h, normal, Some(Init::Zeros))?)
        } else {
            None
        };
        if c.flavor == Flavor::Roberta {
            // RoBERTa's classifier has no pooler; a checkpoint's travels with the export.
            b.consume("roberta.pooler.dense.weight");
            b.consume("roberta.pooler.dense.bias");
        }
        let head = match task {
            BertTask::Encoder => None,
            BertTask::SequenceClassification { num_labels }
            | BertTask::TokenClassification { num_labels } => {
                let name = keys.head_for(task);
                if !scratch && b.shape_of(&format!("{name}.weight")).as_deref() == Some(&[num_labels, h][..])
                {
                    Some(Linear::load(&mut b, name, h, num_labels, true)?)
                } else {
                    Some(Linear::fresh(&mut b, name, h, num_labels, normal, Some(Init::Zeros))?)
                }
            }
        };
        let (mut params, report) = b.finish()?;
        params.set_depths(|p| depth(p, config.num_hidden_layers));
        let model = Bert {
            config,
            task,
            params: Params::new(),
            word,
            pos,
            typ,
            emb_ln,
            layers,
            pooler,
            head,
            act: DType::F32,
        };
        Ok((model, params, report))
    }

    /// Replace the task head by a fresh one for `num_labels` classes: weights N(0,
    /// initializer_range²), bias 0 (HF's `_init_weights`), drawn from `seed`.
    pub fn replace_head(&mut self, task: BertTask, seed: u64) -> Result<()> {
        let e = self.params.get(self.word).engine().clone();
        let h = self.config.hidden_size;
        let n = match task {
            BertTask::Encoder => {
                self.head = None;
                self.task = task;
                return Ok(());
            }
            BertTask::SequenceClassification { num_labels }
            | BertTask::TokenClassification { num_labels } => num_labels,
        };
        let head = self.config.flavor.keys().head_for(task);
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed);
        let w = Init::Normal { std: self.config.initializer_range }.sample(n * h, &mut rng)?;
        let wt = Tensor::from_slice(&e, &w, &[n, h])?;
        let bt = Tensor::zeros(&e, &[n])?;
        let head = match self.head {
            Some(old) => {
                self.params.reset(old.weight, wt, Origin::Fresh)?;
                let bias = old.bias.ok_or_else(|| Error::arg("bert.replace_head", "head without bias"))?;
                self.params.reset(bias, bt, Origin::Fresh)?;
                Linear { out_features: n, ..old }
            }
            None => Linear {
                weight: self.params.push(&format!("{head}.weight"), wt, Slot::Param, Origin::Fresh)?,
                bias: Some(self.params.push(&format!("{head}.bias"), bt, Slot::Param, Origin::Fresh)?),
                in_features: h,
                out_features: n,
                in_major: false,
            },
        };
        if wants_pooler(task) && self.pooler.is_none() {
            return Err(Error::arg("bert.replace_head", "sequence classification needs a pooler"));
        }
        self.head = Some(head);
        self.task = task;
        Ok(())
    }

    /// Depth of a parameter path for layer-wise schedules: 0 = embeddings, 1..=L = encoder
    /// layers, L+1 = pooler and head.
    pub fn depth_of(&self, path: &str) -> usize {
        depth(path, self.config.num_hidden_layers)
    }

    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// The word (token) embeddings of `input.ids`, `[batch, seq, hidden]`: the part of
    /// [`Bert::embeddings`] that depends on which token stands where.
    pub fn word_embeddings(&self, input: &BertInput) -> Result<Tensor> {
        check_len("input ids", input.ids.len(), input.batch * input.seq)?;
        embedding(self.params.get(self.word), input.ids, &[input.batch, input.seq])
    }

    /// The summed input embeddings (word + position + type) of `input`, `[batch, seq, hidden]`:
    /// what the embedding LayerNorm normalises, before `input.embed_offset` is added.
    pub fn embeddings(&self, input: &BertInput) -> Result<Tensor> {
        let c = &self.config;
        let (bsz, t) = (input.batch, input.seq);
        let n = bsz * t;
        check_len("input ids", input.ids.len(), n)?;
        let longest = c.flavor.longest(c.max_position_embeddings, c.pad_token_id);
        if t > longest {
            return Err(Error::arg(
                "bert",
                format!(
                    "sequence length {t} exceeds the {longest} positions of max_position_embeddings {}",
                    c.max_position_embeddings
                ),
            ));
        }
        let zeros;
        let type_ids = match input.type_ids {
            Some(tt) => {
                check_len("token type ids", tt.len(), n)?;
                tt
            }
            None => {
                zeros = vec![0u32; n];
                &zeros
            }
        };
        let p = &self.params;
        let positions: Vec<u32> = match c.flavor {
            Flavor::Roberta => roberta_positions(input.ids, t, c.flavor.pad(c.pad_token_id)),
            _ => (0..n).map(|i| (i % t) as u32).collect(),
        };
        let x = embedding(p.get(self.word), input.ids, &[bsz, t])?.add(&embedding(
            p.get(self.pos),
            &positions,
            &[bsz, t],
        )?)?;
        match self.typ {
            Some(typ) => x.add(&embedding(p.get(typ), type_ids, &[bsz, t])?),
            None => Ok(x),
        }
    }

    /// The forward pass.
    pub fn forward(&self, input: &BertInput, mode: Mode) -> Result<BertOutput> {
        let c = &self.config;
        let (bsz, t, h) = (input.batch, input.seq, c.hidden_size);
        let n = bsz * t;
        let mut x = self.embeddings(input)?;
        if let Some(off) = input.embed_offset {
            if off.shape() != [bsz, t, h] {
                return Err(Error::arg(
                    "bert",
                    format!("embed_offset has shape {:?}, expected [{bsz}, {t}, {h}]", off.shape()),
                ));
            }
            x = x.add(off)?;
        }
        let mask: Option<Vec<f32>> = match input.attention_mask {
            Some(m) => {
                check_len("attention mask", m.len(), n)?;
                Some(m.iter().map(|&v| if v != 0 { 1.0 } else { 0.0 }).collect())
            }
            None => None,
        };
        let p = &self.params;
        let eps = c.layer_norm_eps as f32;
        let mut x = layer_norm(&x, p.get(self.emb_ln.0), p.get(self.emb_ln.1), eps)?.to_dtype(self.act)?;
        x = mode.dropout_in(&x, c.hidden_dropout_prob, 0, !p.get(self.word).requires_grad())?;
        let nh = c.num_attention_heads;
        let dh = h / nh;
        let scale = 1.0 / (dh as f32).sqrt();
        let heads = |y: Tensor| y.reshape(&[bsz, t, nh, dh])?.permute(&[0, 2, 1, 3]);
        for (li, l) in self.layers.iter().enumerate() {
            let site = 1 + 3 * li as u64;
            let q = heads(l.q.forward(p, &x)?)?;
            let k = heads(l.k.forward(p, &x)?)?;
            let v = heads(l.v.forward(p, &x)?)?;
            // Attention-probability dropout is not applied (the fused kernel has no dropout);
            // hidden dropout below covers the regularisation HF fine-tuning relies on.
            let ctx = sdpa(&q, &k, &v, scale, false, mask.as_deref())?;
            let ctx = ctx.permute(&[0, 2, 1, 3])?.reshape(&[bsz, t, h])?;
            let frozen = !p.get(l.attn_out.weight).requires_grad();
            let a = mode.dropout_in(&l.attn_out.forward(p, &ctx)?, c.hidden_dropout_prob, site, frozen)?;
            x = layer_norm(&a.add(&x)?, p.get(l.ln1.0), p.get(l.ln1.1), eps)?;
            let f = activation(&c.hidden_act, &l.inter.forward(p, &x)?)?;
            let f = mode.dropout_in(&l.out.forward(p, &f)?, c.hidden_dropout_prob, site + 1, frozen)?;
            x = layer_norm(&f.add(&x)?, p.get(l.ln2.0), p.get(l.ln2.1), eps)?;
        }
        let drop = c.classifier_dropout.unwrap_or(c.hidden_dropout_prob);
        let site = 1 + 3 * self.layers.len() as u64;
        let pooled = match &self.pooler {
            Some(pl) => {
                let mut first = x.slice(1, 0, 1)?.reshape(&[bsz, h])?;
                if c.flavor.drops_before_pre_head() {
                    first = mode.dropout(&first, drop, site + 1)?;
                }
                let d = pl.forward(p, &first)?;
                Some(if c.flavor.pre_head_tanh() { d.tanh()? } else { d.relu()? })
            }
            None => None,
        };
        let logits = match (&self.head, self.task) {
            (Some(hd), BertTask::SequenceClassification { .. }) => {
                let pooled = pooled.as_ref().ok_or_else(|| Error::arg("bert", "no pooler"))?;
                Some(hd.forward(p, &mode.dropout(pooled, drop, site)?)?)
            }
            (Some(hd), BertTask::TokenClassification { .. }) => {
                Some(hd.forward(p, &mode.dropout(&x, drop, site)?)?)
            }
            _ => None,
        };
        // Consumers (heads' losses, probabilities, attribution) read f32 whatever ran inside.
        let f32 = |t: Tensor| t.to_dtype(DType::F32);
        Ok(BertOutput {
            last_hidden: f32(x)?,
            pooled: pooled.map(f32).transpose()?,
            logits: logits.map(f32).transpose()?,
        })
    }
}

/// `len` values where the batch has `n` = batch × seq positions.
fn check_len(name: &str, len: usize, n: usize) -> Result<()> {
    if len != n {
        Err(Error::arg("bert", format!("{name} has {len} values, expected batch*seq = {n}")))
    } else {
        Ok(())
    }
}

fn wants_pooler(task: BertTask) -> bool {
    matches!(task, BertTask::SequenceClassification { .. })
}

/// HF activation names.
pub(crate) fn activation(name: &str, x: &Tensor) -> Result<Tensor> {
    match name {
        "gelu" => x.gelu(),
        "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => x.gelu_tanh(),
        "relu" => x.relu(),
        "silu" | "swish" => x.silu(),
        "tanh" => x.tanh(),
        other => Err(Error::Unsupported(format!("activation '{other}'"))),
    }
}

/// Depth of a parameter path (see `depth_of`).
fn depth(path: &str, layers: usize) -> usize {
    if path.contains("embeddings.") {
        0
    } else if let Some(rest) =
        path.split("encoder.layer.").nth(1).or_else(|| path.split("transformer.layer.").nth(1))
    {
        rest.split('.').next().and_then(|s| s.parse::<usize>().ok()).map_or(0, |l| l + 1)
    } else {
        layers + 1
    }
}

/// BERT's registry row: a Hugging Face directory, with a sequence-classification head when
/// the task has classes (the checkpoint's own when its shape fits), else the bare encoder.
pub static ARCHITECTURE: Architecture = Architecture {
    name: "bert",
    aliases: &[],
    family: Family::Transformer,
    head: "classifier.*",
    image_spec: None,
    export: ExportLayout::HfDir,
    hf_classifier: Some("BertForSequenceClassification"),
    causal_lm: false,
    lora_targets: Some("*.attention.self.{query,value}.weight"),
    config_types: &["bert"],
    load: crate::models::bert_flavor::load,
};

impl Model for Bert {
    /// The row of the config's flavor: its head, export class and LoRA targets.
    fn architecture(&self) -> &'static Architecture {
        match self.config.flavor {
            Flavor::Bert => &ARCHITECTURE,
            Flavor::Roberta => &crate::models::bert_flavor::ROBERTA_ARCHITECTURE,
            Flavor::DistilBert => &crate::models::bert_flavor::DISTILBERT_ARCHITECTURE,
        }
    }
    fn params(&self) -> &Params {
        &self.params
    }
    fn params_mut(&mut self) -> &mut Params {
        &mut self.params
    }
    fn vocab_size(&self) -> Option<usize> {
        Some(self.config.vocab_size)
    }
    fn text_encoder(&self) -> Option<&dyn TextEncoder> {
        Some(self)
    }
    fn replace_head(&mut self, classes: usize, seed: u64) -> Result<()> {
        Bert::replace_head(self, BertTask::SequenceClassification { num_labels: classes }, seed)
    }
    fn set_mixed_precision(&mut self, on: bool) -> Result<()> {
        self.act = crate::models::model::activations_dtype(on, self.params.get(self.word).engine());
        Ok(())
    }
}

impl TextEncoder for Bert {
    fn hidden_size(&self) -> usize {
        self.config.hidden_size
    }
    fn encode(&self, input: &BertInput, mode: Mode) -> Result<BertOutput> {
        self.forward(input, mode)
    }
    fn word_embeddings(&self, input: &BertInput) -> Result<Tensor> {
        Bert::word_embeddings(self, input)
    }
}
