//! Kernel throughput on whatever adapter the engine picks (lavapipe in CI).
//!
//! Each sample times record + submit + wait (`iter_custom`), so the figures are device time
//! plus the fixed cost of one submit, never just the recording. Throughput is reported by
//! criterion as "elements" = FLOPs (matmul: GFLOP/s) or bytes moved (GB/s).
//!
//! `cargo bench --bench kernels`

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use whet::ops::attention::{attention_with, Attention, AttentionKernel};
use whet::ops::matmul::{matmul_with, MatmulKernel};
use whet::{Engine, Tensor};

fn engine() -> Engine {
    Engine::new(whet::EngineOptions::from_env().expect("WHET_MAX_MEMORY"))
        .expect("kernels bench needs an adapter (lavapipe or a GPU)")
}

/// The same deterministic values `whet bench` times on.
fn rand(n: usize, seed: u64) -> Vec<f32> {
    whet::bench::values(n, seed)
}

fn time<F: FnMut()>(e: &Engine, iters: u64, mut f: F) -> Duration {
    e.sync().unwrap();
    let t = Instant::now();
    for _ in 0..iters {
        f();
        e.sync().unwrap();
    }
    t.elapsed()
}

fn matmul(c: &mut Criterion) {
    let e = engine();
    let mut g = c.benchmark_group("matmul");
    g.sample_size(10).warm_up_time(Duration::from_secs(2)).measurement_time(Duration::from_secs(8));
    for &(m, k, n) in &[(512, 512, 512), (1024, 1024, 1024), (2048, 2048, 2048), (2048, 384, 1536)] {
        let a = Tensor::from_slice(&e, &rand(m * k, 1), &[m, k]).unwrap();
        let b = Tensor::from_slice(&e, &rand(k * n, 2), &[k, n]).unwrap();
        g.throughput(Throughput::Elements(2 * (m * k * n) as u64));
        let label = format!("{m}x{k}x{n}");
        let mut kernels = vec![MatmulKernel::Auto];
        if std::env::var_os("WHET_BENCH_ALL_KERNELS").is_some() {
            kernels.extend([MatmulKernel::Blocked, MatmulKernel::Tiled, MatmulKernel::Generic]);
            if e.subgroup_size() == Some(8) {
                kernels.push(MatmulKernel::Subgroup);
            }
        }
        for kern in kernels {
            if matches!(kern, MatmulKernel::Blocked | MatmulKernel::Subgroup) && (k % 4 != 0 || n % 4 != 0) {
                continue;
            }
            g.bench_with_input(BenchmarkId::new(format!("{kern:?}"), &label), &(), |bch, _| {
                bch.iter_custom(|iters| {
                    time(&e, iters, || {
                        matmul_with(&a, &b, false, false, kern).unwrap();
                    })
                })
            });
        }
    }
    g.finish();
}

fn elementwise(c: &mut Criterion) {
    let e = engine();
    let mut g = c.benchmark_group("bandwidth");
    g.sample_size(20).measurement_time(Duration::from_secs(5));
    let n = 1 << 22;
    let a = Tensor::from_slice(&e, &rand(n, 3), &[n]).unwrap();
    let b = Tensor::from_slice(&e, &rand(n, 4), &[n]).unwrap();
    // add reads two arrays and writes one.
    g.throughput(Throughput::Bytes(3 * 4 * n as u64));
    g.bench_function("add_4M", |bch| bch.iter_custom(|it| time(&e, it, || drop(a.add(&b).unwrap()))));
    let rows = 4096;
    let x = Tensor::from_slice(&e, &rand(rows * 1024, 5), &[rows, 1024]).unwrap();
    g.throughput(Throughput::Bytes(2 * 4 * (rows * 1024) as u64));
    g.bench_function("softmax_4096x1024", |bch| {
        bch.iter_custom(|it| time(&e, it, || drop(x.softmax().unwrap())))
    });
    g.finish();

    let mut g = c.benchmark_group("dispatch");
    g.sample_size(20).measurement_time(Duration::from_secs(4));
    let one = Tensor::from_slice(&e, &[1.0], &[1]).unwrap();
    g.bench_function("one_dispatch_submit_wait", |bch| {
        bch.iter_custom(|it| time(&e, it, || drop(one.add_scalar(1.0).unwrap())))
    });
    // 100 dependent dispatches recorded into one submit: the per-dispatch cost inside a batch.
    g.throughput(Throughput::Elements(100));
    g.bench_function("100_dispatches_one_submit", |bch| {
        bch.iter_custom(|it| {
            time(&e, it, || {
                let mut t = one.clone();
                for _ in 0..100 {
                    t = t.add_scalar(1.0).unwrap();
                }
            })
        })
    });
    g.finish();
}

/// Convolution forward and forward + backward (input and weight gradients) throughput in
/// FLOPs: forward 2·N·O·Ho·Wo·K, backward twice that (the input and the weight gradient).
/// forward_backward runs `conv2d(x, w).sum_all().backward()` (the sum and its expand are two
/// cheap extra dispatches).
fn conv(c: &mut Criterion) {
    use whet::ops::conv::{conv2d, conv2d_geometry, Conv2d, Padding};
    let e = engine();
    let mut g = c.benchmark_group("conv");
    // Flat sampling: one iteration takes ~0.1–1 s on lavapipe, so linear sampling's
    // 1 + 2 + … + 10 iterations per benchmark would take minutes.
    g.sample_size(10)
        .sampling_mode(criterion::SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8));
    let cases = [
        ("resnet3x3_64to64_32x32_b8", [8, 64, 32, 32], [64, 64, 3, 3], 1),
        ("depthwise3x3_96ch_64x64_b8", [8, 96, 64, 64], [96, 1, 3, 3], 96),
    ];
    for (label, xs, ws, groups) in cases {
        let cfg = Conv2d { padding: Padding::symmetric(1, 1), groups, ..Conv2d::default() };
        let geo = conv2d_geometry(&xs, &ws, &cfg).unwrap();
        let x = Tensor::param(&e, &rand(xs.iter().product(), 7), &xs).unwrap();
        let w = Tensor::param(&e, &rand(ws.iter().product(), 8), &ws).unwrap();
        g.throughput(Throughput::Elements(geo.flops()));
        g.bench_function(BenchmarkId::new("forward", label), |bch| {
            bch.iter_custom(|it| {
                time(&e, it, || {
                    let _ng = e.no_grad();
                    drop(conv2d(&x, &w, None, &cfg).unwrap());
                })
            })
        });
        g.throughput(Throughput::Elements(3 * geo.flops()));
        g.bench_function(BenchmarkId::new("forward_backward", label), |bch| {
            bch.iter_custom(|it| {
                time(&e, it, || {
                    let y = conv2d(&x, &w, None, &cfg).unwrap();
                    drop(y.sum_all().unwrap().backward().unwrap());
                })
            })
        });
    }
    g.finish();
}

/// Scaled dot-product attention on two model geometries: MiniLM (B=16, H=12, T=128, D=32,
/// padding mask; a quarter of the keys of half the batch padded) and SmolLM2's decoder
/// (B=2, Hq=9, Hkv=3, T=128, D=64, causal). Throughput: FLOPs of the two forward products.
fn attention(c: &mut Criterion) {
    let e = engine();
    let mut g = c.benchmark_group("attention");
    g.sample_size(10).warm_up_time(Duration::from_secs(2)).measurement_time(Duration::from_secs(8));
    // (label, B, Hq, Hkv, T, D, causal, padded)
    for &(label, b, hq, hkv, t, d, causal, padded) in &[
        ("minilm_b16_h12_t128_d32_pad", 16, 12, 12, 128, 32, false, true),
        ("smollm2_b2_h9kv3_t128_d64_causal", 2, 9, 3, 128, 64, true, false),
    ] {
        let q = Tensor::from_slice(&e, &rand(b * hq * t * d, 11), &[b, hq, t, d]).unwrap();
        let k = Tensor::from_slice(&e, &rand(b * hkv * t * d, 12), &[b, hkv, t, d]).unwrap();
        let v = Tensor::from_slice(&e, &rand(b * hkv * t * d, 13), &[b, hkv, t, d]).unwrap();
        let mask: Vec<f32> =
            (0..b * t).map(|i| if (i / t) % 2 == 1 && i % t >= 3 * t / 4 { 0.0 } else { 1.0 }).collect();
        let mask = Tensor::from_slice(&e, &mask, &[b, t]).unwrap();
        let opts = Attention {
            scale: 1.0 / (d as f32).sqrt(),
            causal,
            key_padding: if padded { Some(&mask) } else { None },
            window: None,
        };
        g.throughput(Throughput::Elements(4 * (b * hq * t * t * d) as u64));
        let (qp, kp, vp) =
            (q.clone().requires_grad_(true), k.clone().requires_grad_(true), v.clone().requires_grad_(true));
        for kern in [AttentionKernel::Composite, AttentionKernel::Flash] {
            g.bench_function(BenchmarkId::new(format!("{kern:?}/forward"), label), |bch| {
                bch.iter_custom(|it| time(&e, it, || drop(attention_with(&q, &k, &v, &opts, kern).unwrap())))
            });
            g.bench_function(BenchmarkId::new(format!("{kern:?}/forward_backward"), label), |bch| {
                bch.iter_custom(|it| {
                    time(&e, it, || {
                        let o = attention_with(&qp, &kp, &vp, &opts, kern).unwrap();
                        drop(o.sum_all().unwrap().backward().unwrap());
                    })
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, matmul, elementwise, conv, attention);
criterion_main!(benches);
