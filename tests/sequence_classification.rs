//! Sequence classification as transformers' `*ForSequenceClassification` does it, against
//! float64 PyTorch on a right-padded batch (tests/fixtures/families, made by
//! tools/family_fixtures.py): the logits, the cross-entropy loss and the listed gradients.
//!
//! - Decoders (`seqcls.*`: Qwen2, Mistral, GPT-2): a bias-free `score` of the final hidden state
//!   at each row's last real token; a causal-LM checkpoint gets a fresh `score` in place of its
//!   head.
//! - Encoders (`encoders.*`: RoBERTa, DistilBERT): their own key names, RoBERTa's positions
//!   past the pad id and its `classifier.dense`/`out_proj` head, DistilBERT's `pre_classifier`;
//!   kinds read from config.json; the export keeps the source's keys and reloads.
//!
//! In both, every row alone gets its batched logits (padding changes nothing).

mod common;

use std::path::PathBuf;

use common::fixtures::{self as fx, Parity};
use whet::models::bert::BertInput;
use whet::models::zoo::{self, AnyModel, ModelKind};
use whet::nn::{BindingReport, Mode};
use whet::ops::loss::{cross_entropy, CrossEntropy};
use whet::weights::safetensors::SafeTensorsFile;
use whet::Engine;

fn families_dir() -> PathBuf {
    fx::local_dir().join("families")
}

/// One classifier of the fixture: its name, description, padded batch and labels.
struct Case {
    name: String,
    spec: serde_json::Value,
    ids: Vec<u32>,
    mask: Vec<u32>,
    labels: Vec<u32>,
    batch: usize,
    seq: usize,
    classes: usize,
}

impl Case {
    fn input(&self) -> BertInput<'_> {
        BertInput {
            ids: &self.ids,
            type_ids: None,
            attention_mask: Some(&self.mask),
            batch: self.batch,
            seq: self.seq,
            embed_offset: None,
        }
    }

    fn key(&self, what: &str) -> String {
        format!("{}.{what}", self.name)
    }
}

/// The fixtures: decoders (`seqcls`) and encoders (`encoders`).
const FIXTURES: [&str; 2] = ["seqcls", "encoders"];

fn cases(fixture: &str) -> (Vec<Case>, SafeTensorsFile) {
    let dir = families_dir();
    let meta = fx::json(&dir, fixture);
    let io = SafeTensorsFile::open(dir.join(format!("{fixture}.safetensors"))).unwrap();
    let models = meta["models"].as_object().unwrap_or_else(|| panic!("{fixture}.json: models"));
    assert!(!models.is_empty(), "{fixture}.json lists no models");
    let cases = models
        .iter()
        .map(|(name, spec)| {
            let (_, shape) = fx::f32s(&io, &format!("{name}.input_ids"));
            let (_, logits) = fx::f32s(&io, &format!("{name}.logits"));
            assert_eq!(shape.len(), 2, "{name}.input_ids must be (batch, seq)");
            Case {
                name: name.clone(),
                spec: spec.clone(),
                ids: fx::u32s(&io, &format!("{name}.input_ids")),
                mask: fx::u32s(&io, &format!("{name}.attention_mask")),
                labels: fx::u32s(&io, &format!("{name}.labels")),
                batch: shape[0],
                seq: shape[1],
                classes: logits[1],
            }
        })
        .collect();
    (cases, io)
}

/// The classifier at `dir` with `classes` outputs, its kind read from config.json.
fn load(e: &Engine, dir: &std::path::Path, classes: usize) -> (AnyModel, BindingReport) {
    let kind = ModelKind::detect(dir).unwrap().expect("config.json names its model_type");
    zoo::load(e, dir, kind, Some(classes), 0).unwrap()
}

#[test]
fn classifiers_match_transformers() {
    let case = "classifiers_match_transformers";
    let Some((_g, e)) = common::gpu("sequence_classification", case) else { return };
    for fixture in FIXTURES {
        check_fixture(&e, fixture);
    }
}

fn check_fixture(e: &Engine, fixture: &'static str) {
    let (cases, io) = cases(fixture);
    let mut p = Parity::new(fixture);
    for c in &cases {
        let (m, report) = load(e, &families_dir().join(&c.name), c.classes);
        assert!(report.is_clean() && report.fresh.is_empty(), "{}: {report}", c.name);
        // A bound classifier (not fresh) is still the head a linear probe trains.
        let head = c.spec["grads"][0].as_str().expect("the head's gradient comes first");
        assert!(m.head_select().compile().unwrap().matches(head, 0), "{}: {head} is not the head", c.name);
        let logits = m.classify_text(&c.input(), Mode::EVAL).unwrap();
        assert_eq!(logits.shape(), [c.batch, c.classes]);
        p.abs(&c.key("logits"), &logits.to_vec().unwrap(), &fx::f32s(&io, &c.key("logits")).0, 1e-3);
        let loss = cross_entropy(&logits, &c.labels, CrossEntropy::default()).unwrap();
        p.abs(&c.key("loss"), &[loss.item().unwrap()], &fx::f32s(&io, &c.key("loss")).0, 1e-4);
        let g = loss.backward().unwrap();
        let grads = c.spec["grads"].as_array().expect("grads");
        for n in grads.iter().filter_map(|n| n.as_str()) {
            let t = m.params().by_path(n).unwrap();
            let got = g.get(t).unwrap_or_else(|| panic!("{}: no gradient for {n}", c.name));
            let want = fx::f32s(&io, &c.key(&format!("grad.{n}"))).0;
            p.rel(&c.key(&format!("grad.{n}")), &got.to_vec().unwrap(), &want, 1e-3);
        }
    }
    p.finish();
}

/// Each row run alone, without padding, gets the logits it has in the padded batch; and the
/// fixture pads at least one row, so the check means something.
#[test]
fn padding_changes_no_row() {
    let case = "padding_changes_no_row";
    let Some((_g, e)) = common::gpu("sequence_classification", case) else { return };
    let _ng = e.no_grad();
    for c in FIXTURES.iter().flat_map(|f| cases(f).0) {
        assert!(c.mask.contains(&0), "{}: the fixture's batch has no padding", c.name);
        let (m, _) = load(&e, &families_dir().join(&c.name), c.classes);
        let batched = m.classify_text(&c.input(), Mode::EVAL).unwrap().to_vec().unwrap();
        for r in 0..c.batch {
            let len = c.mask[r * c.seq..(r + 1) * c.seq].iter().filter(|&&v| v != 0).count();
            let ids = &c.ids[r * c.seq..r * c.seq + len];
            let alone = BertInput {
                ids,
                type_ids: None,
                attention_mask: None,
                batch: 1,
                seq: len,
                embed_offset: None,
            };
            let got = m.classify_text(&alone, Mode::EVAL).unwrap().to_vec().unwrap();
            let want = &batched[r * c.classes..(r + 1) * c.classes];
            let (worst, _, _) = fx::max_diff(&got, want);
            assert!(worst < 1e-4, "{} row {r} ({len} tokens): alone {got:?}, batched {want:?}", c.name);
        }
    }
}

/// The causal LM the classifier was made from binds with a fresh `score` (its lm_head left out,
/// not written back), and is no longer offered as a language model.
#[test]
fn a_causal_lm_checkpoint_gets_a_fresh_score() {
    let case = "a_causal_lm_checkpoint_gets_a_fresh_score";
    let Some((_g, e)) = common::gpu("sequence_classification", case) else { return };
    let (cases, _) = cases("seqcls");
    for c in &cases {
        let of = c.spec["decoder_of"].as_str().expect("decoder_of");
        let (mut m, report) = load(&e, &families_dir().join(of), c.classes);
        let fresh: Vec<&str> = report.fresh.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(fresh, ["score.weight"], "{of}: {report}");
        assert!(report.ignored.iter().all(|k| k != "lm_head.weight"), "{of}: lm_head would be exported");
        let hidden = m.text("score").unwrap().hidden_size();
        assert_eq!(m.params().by_path("score.weight").unwrap().shape(), [c.classes, hidden]);
        assert!(m.as_causal_lm(Mode::EVAL).is_none(), "{of}: a classifier is offered as a language model");
        // The same checkpoint as a language model still has its head.
        let dir = families_dir().join(of);
        let (mut lm, _) = zoo::load(&e, &dir, ModelKind::detect(&dir).unwrap().unwrap(), None, 0).unwrap();
        assert!(lm.as_causal_lm(Mode::EVAL).is_some(), "{of}: not a language model without classes");
    }
}

/// RoBERTa and DistilBERT are recognised from config.json, export under the source's keys and
/// a transformers class, and reload to the same logits.
#[test]
fn encoders_export_their_source_keys_and_reload() {
    let case = "encoders_export_their_source_keys_and_reload";
    let Some((_g, e)) = common::gpu("sequence_classification", case) else { return };
    let _ng = e.no_grad();
    let (cases, _) = cases("encoders");
    for c in &cases {
        let dir = families_dir().join(&c.name);
        let cfg = fx::json(&dir, "config");
        let kind = ModelKind::detect(&dir).unwrap().unwrap();
        assert_eq!(kind.architecture().name, cfg["model_type"].as_str().unwrap(), "{}", c.name);
        let want_class = cfg["architectures"][0].as_str().unwrap();
        assert_eq!(kind.architecture().hf_classifier, Some(want_class), "{}", c.name);
        let (m, report) = load(&e, &dir, c.classes);
        let out = common::export::exported_like_source(m.params(), &report, &dir, &c.name);
        let before = m.classify_text(&c.input(), Mode::EVAL).unwrap().to_vec().unwrap();
        // RoBERTa's first pad + 1 position rows are no real token's: one more token is refused.
        if cfg["model_type"] == "roberta" {
            let rows = cfg["max_position_embeddings"].as_u64().unwrap() as usize;
            let longest = rows - cfg["pad_token_id"].as_u64().unwrap() as usize - 1;
            let ids = vec![5u32; longest + 1];
            let long = BertInput {
                ids: &ids,
                type_ids: None,
                attention_mask: None,
                batch: 1,
                seq: ids.len(),
                embed_offset: None,
            };
            let err = m.classify_text(&long, Mode::EVAL).unwrap_err().to_string();
            assert!(err.contains(&format!("exceeds the {longest} positions")), "{err}");
        }
        let (back, _) = load(&e, out.path(), c.classes);
        assert_eq!(
            before,
            back.classify_text(&c.input(), Mode::EVAL).unwrap().to_vec().unwrap(),
            "{}",
            c.name
        );
    }
}

/// Under mixed precision (f16 activations) a llama-family classifier gives its f32 logits within
/// f16's rounding, and its head still receives a gradient.
#[test]
fn decoder_classifiers_run_in_mixed_precision() {
    let case = "decoder_classifiers_run_in_mixed_precision";
    let Some((_g, e)) = common::gpu("sequence_classification", case) else { return };
    if !e.has_f16() {
        eprintln!("!!!!!!!! {case}: ADAPTER WITHOUT SHADER_F16, SKIPPED !!!!!!!!");
        return;
    }
    let (cases, _) = cases("seqcls");
    for c in &cases {
        let (mut m, _) = load(&e, &families_dir().join(&c.name), c.classes);
        let f32_logits = m.classify_text(&c.input(), Mode::EVAL).unwrap().to_vec().unwrap();
        // The llama family has f16 activations; GPT-2 refuses by name.
        if let Err(err) = m.set_mixed_precision(true) {
            assert_ne!(m.kind().architecture().name, "llama", "{}: {err}", c.name);
            assert!(err.to_string().contains("is not a model with f16 activations"), "{err}");
            continue;
        }
        let logits = m.classify_text(&c.input(), Mode::EVAL).unwrap();
        let (worst, _, _) = fx::max_diff(&logits.to_vec().unwrap(), &f32_logits);
        assert!(worst < 2e-2, "{}: mixed logits {worst} from f32", c.name);
        let loss = cross_entropy(&logits, &c.labels, CrossEntropy::default()).unwrap();
        let g = loss.backward().unwrap();
        let head = c.spec["grads"][0].as_str().unwrap();
        assert!(g.get(m.params().by_path(head).unwrap()).is_some(), "{}: no gradient for {head}", c.name);
    }
}
