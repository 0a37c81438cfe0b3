//! BERT's relatives that share its encoder block and differ in names, positions and heads:
//! RoBERTa (and XLM-R, CamemBERT) and DistilBERT, as transformers builds them.
//!
//! - **RoBERTa**: `roberta.*` keys; one token type; positions count real tokens from
//!   `pad_token_id + 1`, and a pad takes position `pad_token_id` (transformers'
//!   `create_position_ids_from_input_ids`); the classifier is `classifier.dense` → tanh →
//!   `classifier.out_proj` on the first token, with dropout before each, and no pooler.
//! - **DistilBERT**: `distilbert.*` keys with its own names (`transformer.layer.N.attention.q_lin`,
//!   `sa_layer_norm`, `ffn.lin1`, `output_layer_norm`) and config fields (`dim`, `n_layers`, …);
//!   no token types; the classifier is `pre_classifier` → ReLU → dropout → `classifier` on the
//!   first token.

use crate::error::{Error, Result};
use crate::models::bert::{Bert, BertConfig, BertTask};
use crate::models::registry::{Architecture, ExportLayout};
use crate::nn::init::Family;

/// Which member of the family a config describes (its `model_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Flavor {
    #[default]
    Bert,
    Roberta,
    DistilBert,
}

/// Where a flavor keeps its tensors.
pub struct Keys {
    /// The base model's prefix (`bert`, `roberta`, `distilbert`).
    pub root: &'static str,
    /// The layer list under the root (`encoder.layer`, `transformer.layer`).
    pub layers: &'static str,
    pub q: &'static str,
    pub k: &'static str,
    pub v: &'static str,
    pub attn_out: &'static str,
    pub ln1: &'static str,
    pub inter: &'static str,
    pub out: &'static str,
    pub ln2: &'static str,
    /// The dense layer before the classifier: BERT's pooler, RoBERTa's `classifier.dense`,
    /// DistilBERT's `pre_classifier`.
    pub pre_head: &'static str,
    /// The sequence classifier's output layer (token classifiers use `classifier`).
    pub head: &'static str,
}

impl Keys {
    /// The output layer of `task`'s head: RoBERTa's sequence head is `classifier.out_proj`, its
    /// token head (`RobertaForTokenClassification`) a plain `classifier`, like every other.
    pub fn head_for(&self, task: BertTask) -> &'static str {
        match task {
            BertTask::TokenClassification { .. } => "classifier",
            _ => self.head,
        }
    }
}

const BERT: Keys = Keys {
    root: "bert",
    layers: "encoder.layer",
    q: "attention.self.query",
    k: "attention.self.key",
    v: "attention.self.value",
    attn_out: "attention.output.dense",
    ln1: "attention.output.LayerNorm",
    inter: "intermediate.dense",
    out: "output.dense",
    ln2: "output.LayerNorm",
    pre_head: "bert.pooler.dense",
    head: "classifier",
};

const ROBERTA: Keys =
    Keys { root: "roberta", pre_head: "classifier.dense", head: "classifier.out_proj", ..BERT };

const DISTILBERT: Keys = Keys {
    root: "distilbert",
    layers: "transformer.layer",
    q: "attention.q_lin",
    k: "attention.k_lin",
    v: "attention.v_lin",
    attn_out: "attention.out_lin",
    ln1: "sa_layer_norm",
    inter: "ffn.lin1",
    out: "ffn.lin2",
    ln2: "output_layer_norm",
    pre_head: "pre_classifier",
    head: "classifier",
};

impl Flavor {
    /// The flavor of a `config.json`'s `model_type` (BERT when absent or unknown).
    pub fn of(config: &serde_json::Value) -> Flavor {
        match config.get("model_type").and_then(|v| v.as_str()) {
            Some("roberta" | "xlm-roberta" | "camembert") => Flavor::Roberta,
            Some("distilbert") => Flavor::DistilBert,
            _ => Flavor::Bert,
        }
    }

    pub fn keys(self) -> &'static Keys {
        match self {
            Flavor::Bert => &BERT,
            Flavor::Roberta => &ROBERTA,
            Flavor::DistilBert => &DISTILBERT,
        }
    }

    /// RoBERTa's pad id (its positions start past it; 1 unless the config says otherwise).
    pub fn pad(self, pad_token_id: Option<u32>) -> u32 {
        pad_token_id.unwrap_or(1)
    }

    /// The longest sequence `max_position_embeddings` rows hold: RoBERTa's first
    /// `pad + 1` rows are never a real token's (514 rows → 512 tokens).
    pub fn longest(self, max_positions: usize, pad_token_id: Option<u32>) -> usize {
        match self {
            Flavor::Roberta => max_positions.saturating_sub(self.pad(pad_token_id) as usize + 1),
            _ => max_positions,
        }
    }

    /// Whether the model adds token-type embeddings (DistilBERT has none).
    pub fn has_token_types(self) -> bool {
        self != Flavor::DistilBert
    }

    /// Whether the classifier's pre-head runs on dropped-out features (RoBERTa's head does).
    pub fn drops_before_pre_head(self) -> bool {
        self == Flavor::Roberta
    }

    /// Whether the pre-head's activation is tanh (BERT's pooler, RoBERTa) or ReLU (DistilBERT).
    pub fn pre_head_tanh(self) -> bool {
        self != Flavor::DistilBert
    }
}

/// The config.json fields of `flavor` as BERT's: DistilBERT's own names are mapped; RoBERTa's
/// are BERT's already.
pub fn bert_json(v: &serde_json::Value, flavor: Flavor, path: &str) -> Result<serde_json::Value> {
    if flavor != Flavor::DistilBert {
        return Ok(v.clone());
    }
    let field = |k: &str| {
        v.get(k).cloned().ok_or_else(|| Error::Format {
            path: path.into(),
            line: None,
            message: format!("DistilBERT config: missing field `{k}`"),
        })
    };
    let or = |k: &str, d: serde_json::Value| v.get(k).cloned().unwrap_or(d);
    Ok(serde_json::json!({
        "vocab_size": field("vocab_size")?,
        "hidden_size": field("dim")?,
        "num_hidden_layers": field("n_layers")?,
        "num_attention_heads": field("n_heads")?,
        "intermediate_size": field("hidden_dim")?,
        "hidden_act": or("activation", "gelu".into()),
        "max_position_embeddings": or("max_position_embeddings", 512.into()),
        "type_vocab_size": 0,
        "layer_norm_eps": 1e-12,
        "hidden_dropout_prob": or("dropout", 0.1.into()),
        "attention_probs_dropout_prob": or("attention_dropout", 0.1.into()),
        "initializer_range": or("initializer_range", 0.02.into()),
        "classifier_dropout": or("seq_classif_dropout", 0.2.into()),
    }))
}

/// RoBERTa's positions of `ids` `[B, T]`: each row's real tokens count up from `pad + 1`; a
/// pad token takes `pad`.
pub fn roberta_positions(ids: &[u32], t: usize, pad: u32) -> Vec<u32> {
    let mut out = Vec::with_capacity(ids.len());
    for row in ids.chunks(t.max(1)) {
        let mut seen = 0;
        for &id in row {
            if id == pad {
                out.push(pad);
            } else {
                seen += 1;
                out.push(pad + seen);
            }
        }
    }
    out
}

/// Binds a BERT, RoBERTa or DistilBERT checkpoint (the flavor is its config's `model_type`),
/// with a sequence-classification head when the task has classes (the checkpoint's own when its
/// shape fits), else the bare encoder.
pub(crate) fn load(s: &crate::models::model::LoadSpec) -> Result<crate::models::model::Loaded> {
    let (cfg, cfg_name) = s.hf_config()?;
    let task = match s.classes {
        Some(n) => BertTask::SequenceClassification { num_labels: n },
        None => BertTask::Encoder,
    };
    let config = BertConfig::from_json(&cfg, &cfg_name)?;
    let src = crate::weights::open(s.path)?;
    let (m, r) = Bert::load(s.engine, src.as_ref(), &s.name(), config, task, s.seed)?;
    Ok((Box::new(m), r))
}

/// RoBERTa's registry row (XLM-R and CamemBERT share it).
pub static ROBERTA_ARCHITECTURE: Architecture = Architecture {
    name: "roberta",
    aliases: &["xlm-roberta", "camembert"],
    family: Family::Transformer,
    head: "classifier.*",
    image_spec: None,
    export: ExportLayout::HfDir,
    hf_classifier: Some("RobertaForSequenceClassification"),
    causal_lm: false,
    lora_targets: Some("*.attention.self.{query,value}.weight"),
    config_types: &["roberta", "xlm-roberta", "camembert"],
    load,
};

/// DistilBERT's registry row.
pub static DISTILBERT_ARCHITECTURE: Architecture = Architecture {
    name: "distilbert",
    aliases: &[],
    family: Family::Transformer,
    head: "{pre_classifier,classifier}.*",
    image_spec: None,
    export: ExportLayout::HfDir,
    hf_classifier: Some("DistilBertForSequenceClassification"),
    causal_lm: false,
    lora_targets: Some("*.attention.{q_lin,v_lin}.weight"),
    config_types: &["distilbert"],
    load,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roberta_positions_count_real_tokens_from_past_the_pad() {
        // Two rows of 4 with pad 1: the second row ends in two pads.
        assert_eq!(roberta_positions(&[0, 5, 6, 2, 0, 7, 1, 1], 4, 1), vec![2, 3, 4, 5, 2, 3, 1, 1]);
    }

    #[test]
    fn roberta_holds_two_positions_fewer_than_its_table() {
        assert_eq!(Flavor::Roberta.longest(514, Some(1)), 512);
        assert_eq!(Flavor::Roberta.longest(514, None), 512);
        assert_eq!(Flavor::Bert.longest(512, Some(0)), 512);
        assert_eq!(ROBERTA.head_for(BertTask::TokenClassification { num_labels: 3 }), "classifier");
        assert_eq!(
            ROBERTA.head_for(BertTask::SequenceClassification { num_labels: 3 }),
            "classifier.out_proj"
        );
    }

    #[test]
    fn distilbert_fields_map_onto_berts() {
        let v = serde_json::json!({"model_type": "distilbert", "vocab_size": 10, "dim": 8, "n_layers": 2,
            "n_heads": 2, "hidden_dim": 16, "activation": "gelu", "seq_classif_dropout": 0.3});
        let j = bert_json(&v, Flavor::of(&v), "c.json").unwrap();
        assert_eq!((j["hidden_size"].as_u64(), j["intermediate_size"].as_u64()), (Some(8), Some(16)));
        assert_eq!(j["type_vocab_size"].as_u64(), Some(0));
        let e = bert_json(&serde_json::json!({"model_type": "distilbert"}), Flavor::DistilBert, "c.json");
        assert!(e.unwrap_err().to_string().contains("missing field `vocab_size`"));
    }
}
