//! The engine's bind-group cache: a warm training step of a real model creates no bind groups,
//! and a cached group never binds a buffer other than the one it was made for (a pooled buffer
//! reused for a new tensor shows the new numbers; groups over freed buffers are not served).

use whet::models::decoder::{causal_lm_loss, CausalLm};
use whet::models::gpt2::{Gpt2, Gpt2Config};
use whet::nn::Mode;
use whet::optim::{Method, OptimConfig, Optimizer};
use whet::{Engine, EngineOptions, Tensor};

mod common;

const FILE: &str = "bind_groups";

fn engine(test: &str) -> Option<Engine> {
    common::own_engine(FILE, test, EngineOptions::default())
}

fn values(n: usize, seed: f32) -> Vec<f32> {
    (0..n).map(|i| ((i as f32 + seed) * 0.37).sin()).collect()
}

fn exp_of(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| x.exp()).collect()
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "{what}[{i}]: {g} vs {w}");
    }
}

#[test]
fn a_warm_gpt2_training_step_creates_no_bind_groups() {
    let Some(e) = engine("a_warm_gpt2_training_step_creates_no_bind_groups") else { return };
    let json =
        serde_json::json!({"vocab_size": 64, "n_embd": 32, "n_head": 4, "n_layer": 2, "n_positions": 16});
    let mut m = Gpt2::scratch(&e, Gpt2Config::from_json(&json, "test").unwrap(), 7).unwrap();
    let mut opt = Optimizer::new(&e, OptimConfig::new(Method::ADAMW, 1e-3).weight_decay(0.01)).unwrap();
    let ids: Vec<u32> = (0..2 * 12).map(|i| (i * 7 % 64) as u32).collect();
    let mut losses = Vec::new();
    let mut step = |seed: u64| {
        m.mode = Mode::train(seed);
        let logits = m.logits(&ids, 2, 12, None).unwrap();
        let loss = causal_lm_loss(&logits, &ids, None).unwrap();
        let g = loss.backward().unwrap();
        opt.step(&mut m.params, &g).unwrap();
        losses.push(loss.to_vec().unwrap()[0]);
    };
    // The first step creates the buffers, the second meets the pool as every later step will.
    step(0);
    step(1);
    let before = e.stats();
    for seed in 2..5 {
        step(seed);
    }
    let after = e.stats();
    assert!(after.dispatches - before.dispatches > 100, "the step should be a real one");
    assert_eq!(after.bind_groups_created, before.bind_groups_created, "bind groups created in a warm step");
    assert_eq!(after.bind_group_hits - before.bind_group_hits, after.dispatches - before.dispatches);
    assert_eq!(after.buffers_created, before.buffers_created, "buffers created in a warm step");
    assert!(losses.iter().all(|l| l.is_finite()) && losses[4] < losses[0], "training went wrong: {losses:?}");
}

#[test]
fn a_reused_buffer_binds_its_new_contents() {
    let Some(e) = engine("a_reused_buffer_binds_its_new_contents") else { return };
    let (v1, v2) = (values(1000, 0.0), values(1000, 5.0));
    let want = |v: &[f32]| v.iter().map(|x| x.tanh().exp()).collect::<Vec<f32>>();
    let (s1, s2) =
        (Tensor::from_slice(&e, &v1, &[1000]).unwrap(), Tensor::from_slice(&e, &v2, &[1000]).unwrap());
    // Each round frees its two results, and the next takes the same two buffers back from the
    // pool with new numbers in them: the exp dispatch soon finds its group cached, and must
    // still read this round's numbers.
    let hits = e.stats().bind_group_hits;
    for (round, (s, v)) in [(&s1, &v1), (&s2, &v2), (&s1, &v1), (&s2, &v2)].into_iter().enumerate() {
        let r = s.tanh().unwrap().exp().unwrap();
        assert_close(&r.to_vec().unwrap(), &want(v), &format!("round {round}"));
    }
    assert!(e.stats().bind_group_hits > hits, "no dispatch used the cache");
    // Two live tensors of one size sit in two buffers: same sizes, different groups.
    let (y1, y2) = (s1.exp().unwrap(), s2.exp().unwrap());
    assert_close(&y2.to_vec().unwrap(), &exp_of(&v2), "second live tensor");
    assert_close(&y1.to_vec().unwrap(), &exp_of(&v1), "first live tensor");
}

#[test]
fn groups_over_freed_buffers_are_never_served() {
    // A memory cap small enough that one large tensor makes the pool free its parked buffers.
    let options = EngineOptions { max_memory_bytes: Some(1 << 20), ..Default::default() };
    let Some(e) = common::own_engine(FILE, "groups_over_freed_buffers_are_never_served", options) else {
        return;
    };
    let n = 64 << 10;
    let (v1, v2) = (values(n, 1.0), values(n, 3.0));
    let x1 = Tensor::from_slice(&e, &v1, &[n]).unwrap();
    assert_close(&x1.exp().unwrap().to_vec().unwrap(), &exp_of(&v1), "before");
    drop(x1);
    let created = e.stats().buffers_created;
    let big = Tensor::zeros(&e, &[200_000]).unwrap();
    drop(big);
    let x2 = Tensor::from_slice(&e, &v2, &[n]).unwrap();
    let y2 = x2.exp().unwrap();
    assert!(e.stats().buffers_created >= created + 3, "the pool should have freed and re-created buffers");
    assert_close(&y2.to_vec().unwrap(), &exp_of(&v2), "after the pool was trimmed");
}
