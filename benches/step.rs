//! One full training step — forward, backward, AdamW — of an MLP 1024 → 4096 → 1024 (GELU) at
//! batch 256 with an MSE loss: the shape burn and PyTorch were timed on for the engine issue
//! (burn 0.22.1 wgpu on lavapipe: 1.08 s; PyTorch + MKL on the same 2 cores: 0.09 s).
//! Reports samples/s; the step's dispatch and submit counts are printed once.
//!
//! `cargo bench --bench step`

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use whet::nn::{Origin, Params, Slot};
use whet::ops::loss::mse;
use whet::optim::{Method, OptimConfig, Optimizer};
use whet::{Engine, Tensor};

const BATCH: usize = 256;
const D_IN: usize = 1024;
const HIDDEN: usize = 4096;

fn values(n: usize, seed: u32, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) as f32 / (1 << 24) as f32 - 0.5
        })
        .map(|v| v * scale)
        .collect()
}

fn step(c: &mut Criterion) {
    let e = Engine::new(whet::EngineOptions::from_env().expect("WHET_MAX_MEMORY"))
        .expect("step bench needs an adapter (lavapipe or a GPU)");
    let mut params = Params::new();
    let mut add = |n: &str, t: Tensor| params.push(n, t, Slot::Param, Origin::Fresh).unwrap();
    let w1 = add("w1", Tensor::param(&e, &values(D_IN * HIDDEN, 1, 0.06), &[D_IN, HIDDEN]).unwrap());
    let b1 = add("b1", Tensor::param(&e, &vec![0.0; HIDDEN], &[HIDDEN]).unwrap());
    let w2 = add("w2", Tensor::param(&e, &values(HIDDEN * D_IN, 2, 0.03), &[HIDDEN, D_IN]).unwrap());
    let b2 = add("b2", Tensor::param(&e, &vec![0.0; D_IN], &[D_IN]).unwrap());
    let x = Tensor::from_slice(&e, &values(BATCH * D_IN, 3, 2.0), &[BATCH, D_IN]).unwrap();
    let y = Tensor::from_slice(&e, &values(BATCH * D_IN, 4, 2.0), &[BATCH, D_IN]).unwrap();
    let mut opt = Optimizer::new(&e, OptimConfig::new(Method::ADAMW, 1e-4).weight_decay(0.01)).unwrap();
    let mut run = || {
        let p = &params;
        let h = x.matmul(p.get(w1)).unwrap().add(p.get(b1)).unwrap().gelu().unwrap();
        let loss = mse(&h.matmul(p.get(w2)).unwrap().add(p.get(b2)).unwrap(), &y).unwrap();
        let g = loss.backward().unwrap();
        opt.step(&mut params, &g).unwrap();
        e.sync().unwrap();
    };
    run();
    let before = e.stats();
    run();
    let after = e.stats();
    eprintln!(
        "mlp step: {} dispatches, {} submit(s), {} new buffers, {} new pipelines, peak {:.1} MiB",
        after.dispatches - before.dispatches,
        after.submits - before.submits,
        after.buffers_created - before.buffers_created,
        after.pipelines_compiled - before.pipelines_compiled,
        after.peak_bytes as f64 / (1 << 20) as f64
    );
    let mut g = c.benchmark_group("mlp_1024_4096_1024_b256");
    g.sample_size(10).warm_up_time(Duration::from_secs(3)).measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("train_step_adamw", |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                run();
            }
            t.elapsed()
        })
    });
    g.finish();
}

criterion_group!(benches, step);
criterion_main!(benches);
