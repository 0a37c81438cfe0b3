//! Activation checkpointing (`graph::checkpoint`, `Llama::activation_checkpointing`): the
//! recomputed blocks give the plain path's loss and gradients, for full fine-tuning and for
//! LoRA over a quantized base, while the step keeps fewer activations and peaks lower. The
//! chunked causal-LM loss (`models::lm_loss`) equals the whole one, with padding ignored and
//! chunks that do not divide the rows.

mod common;

use whet::models::decoder::{causal_lm_loss, chunked_causal_lm_loss, CausalLm};
use whet::models::llama::{Llama, LlamaConfig};
use whet::ops::linear::linear;
use whet::tensor::QuantType;
use whet::Engine;

fn gpu(test: &str) -> Option<(std::sync::MutexGuard<'static, ()>, Engine)> {
    common::gpu("checkpointing", test)
}

fn config(layers: usize, hidden: usize) -> LlamaConfig {
    let v = serde_json::json!({
        "vocab_size": 96, "hidden_size": hidden, "intermediate_size": 2 * hidden,
        "num_hidden_layers": layers, "num_attention_heads": 4, "num_key_value_heads": 2,
        "max_position_embeddings": 256, "rms_norm_eps": 1e-6,
    });
    LlamaConfig::from_json(&v, "test config").unwrap()
}

/// A model from seed 3; with `lora`, its matrices quantized to Q8_0 under LoRA adapters.
fn model(e: &Engine, cfg: &LlamaConfig, lora: bool) -> Llama {
    let mut m = Llama::scratch(e, cfg.clone(), 3).unwrap();
    if lora {
        common::export::lora_with_random_b(&mut m.params, "*self_attn.{q_proj,v_proj}.weight", 4, 8.0, None);
        assert!(m.params.quantize_frozen(QuantType::Q8_0).unwrap() > 0);
    }
    m
}

/// Loss, every trainable gradient (by path), and the step's peak device bytes and saved bytes.
fn step(e: &Engine, m: &Llama, ids: &[u32], batch: usize) -> (f32, Vec<(String, Vec<f32>)>, u64, u64) {
    e.sync().unwrap();
    e.reset_peak();
    let saved0 = e.stats().saved_bytes;
    // The model's own loss: with checkpointing, the head and the loss run in checkpointed chunks.
    let loss = m.loss(ids, batch, ids.len() / batch, None).unwrap();
    let saved = e.stats().saved_bytes - saved0;
    let grads = loss.backward().unwrap();
    let mut out = Vec::new();
    for en in m.params.entries().iter().filter(|en| en.trainable()) {
        let g = grads.get(&en.tensor).unwrap_or_else(|| panic!("{} has no gradient", en.path));
        out.push((en.path.clone(), g.to_vec().unwrap()));
    }
    (loss.item().unwrap(), out, e.stats().peak_bytes, saved)
}

fn assert_same_gradients(what: &str, a: &[(String, Vec<f32>)], b: &[(String, Vec<f32>)]) {
    assert_eq!(a.len(), b.len(), "{what}: trainable tensors");
    assert!(!a.is_empty(), "{what}: nothing trains");
    for ((path, x), (_, y)) in a.iter().zip(b) {
        let scale = x.iter().fold(1e-30f32, |m, v| m.max(v.abs()));
        let worst = x.iter().zip(y).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
        assert!(worst <= 1e-6 * scale, "{what}: {path}: gradients differ by {worst} (largest {scale})");
    }
}

#[test]
fn recomputed_blocks_give_the_plain_gradients() {
    let Some((_g, e)) = gpu("recomputed_blocks_give_the_plain_gradients") else { return };
    let cfg = config(3, 64);
    let ids: Vec<u32> = (0..2 * 24u32).map(|i| (i * 37 + 11) % 96).collect();
    for lora in [false, true] {
        let mut m = model(&e, &cfg, lora);
        let plain = step(&e, &m, &ids, 2);
        m.activation_checkpointing = true;
        let ck = step(&e, &m, &ids, 2);
        let what = if lora { "LoRA over Q8_0" } else { "full fine-tuning" };
        assert!((plain.0 - ck.0).abs() <= 1e-6 * plain.0.abs(), "{what}: loss {} vs {}", plain.0, ck.0);
        assert_same_gradients(what, &plain.1, &ck.1);
        assert!(ck.3 < plain.3, "{what}: saved bytes {} with checkpointing, {} without", ck.3, plain.3);
        println!("{what}: saved {} -> {} bytes, peak {} -> {}", plain.3, ck.3, plain.2, ck.2);
    }
}

#[test]
fn checkpointing_lowers_the_peak_of_a_deep_model() {
    let Some((_g, e)) = gpu("checkpointing_lowers_the_peak_of_a_deep_model") else { return };
    // Activations dominate: 8 blocks over 4 x 128 tokens, LoRA over a quantized base.
    let cfg = config(8, 128);
    let ids: Vec<u32> = (0..4 * 128u32).map(|i| (i * 53 + 7) % 96).collect();
    let mut m = model(&e, &cfg, true);
    let plain = step(&e, &m, &ids, 4);
    m.activation_checkpointing = true;
    let ck = step(&e, &m, &ids, 4);
    assert_same_gradients("deep", &plain.1, &ck.1);
    assert!(
        (ck.2 as f64) < 0.8 * plain.2 as f64,
        "peak {} bytes with checkpointing, {} without",
        ck.2,
        plain.2
    );
}

/// `hidden · headᵀ`'s causal-LM loss in chunks of 5 rows (48 rows: the last chunk short, one
/// chunk all padding) against the whole loss: value and the gradients of both inputs, with the
/// head f32 and trainable, and with it frozen in Q8_0 blocks.
#[test]
fn the_chunked_loss_equals_the_whole_one() {
    let Some((_g, e)) = gpu("the_chunked_loss_equals_the_whole_one") else { return };
    let (b, t, h, v) = (2, 24, 32, 96);
    let noise = |n: usize, seed: u64| common::export::noise(n, seed, 0.5);
    // Row 1 ends in padding (id 0, ignored): rows 40..48 count for nothing.
    let ids: Vec<u32> =
        (0..(b * t) as u32).map(|i| if i >= 40 { 0 } else { 1 + (i * 37 + 11) % 95 }).collect();
    let hidden = whet::Tensor::param(&e, &noise(b * t * h, 1), &[b, t, h]).unwrap();
    for quantized in [false, true] {
        let mut head = whet::Tensor::param(&e, &noise(v * h, 2), &[v, h]).unwrap();
        if quantized {
            let blocks =
                whet::weights::quantize::quantize(QuantType::Q8_0.weight_dtype(), &noise(v * h, 2)).unwrap();
            head = whet::Tensor::from_quantized(&e, QuantType::Q8_0, &blocks, &[v, h]).unwrap();
        }
        let whole = {
            let logits = linear(&hidden, &head, None, false).unwrap();
            causal_lm_loss(&logits, &ids, Some(0)).unwrap()
        };
        let chunked = chunked_causal_lm_loss(&hidden, &head, &ids, Some(0), 5).unwrap();
        let (lw, lc) = (whole.item().unwrap(), chunked.item().unwrap());
        assert!((lw - lc).abs() <= 1e-6 * lw.abs(), "quantized {quantized}: loss {lw} vs {lc}");
        let (gw, gc) = (whole.backward().unwrap(), chunked.backward().unwrap());
        let mut inputs = vec![("hidden", &hidden)];
        if !quantized {
            inputs.push(("head", &head));
        }
        let grads = |g: &whet::GradStore| -> Vec<(String, Vec<f32>)> {
            inputs.iter().map(|(n, x)| (n.to_string(), g.get(x).unwrap().to_vec().unwrap())).collect()
        };
        assert_same_gradients(&format!("chunked loss, quantized head {quantized}"), &grads(&gw), &grads(&gc));
    }
}
