//! CNN ops on the GPU (conv2d, pooling, batch_norm; forward and backward) against the f64 CPU
//! reference (`whet::ops::reference::{conv, pool, batch_norm}`, gradchecked in
//! `tests/gradcheck_cnn.rs`), on seeded awkward shapes: stride 2, dilation 2, groups 2,
//! depthwise (with a channel multiplier), TF "SAME" on odd and even sizes, 1×1 (the matmul
//! path and the strided im2col path), the ResNet stem (7×7 stride 2 padding 3), batch 1, odd
//! sizes 7, 13, 33, asymmetric padding, and the batch-chunked im2col path.
//!
//! Tolerances, `|got - want| <= atol + rtol |want|`:
//! - conv forward (a matmul): rtol 1e-4, atol 1e-5 sqrt(K / 64), K = C/groups·kh·kw
//! - gradients: atol 1e-4 (times the gradient's scale, as tests/ops_vs_reference.rs), rtol 1e-3,
//!   widened by sqrt(L / 64) for sums over L terms (weight and bias gradients, pooled windows)
//! - pooling and batch_norm forward: atol 1e-5, rtol 1e-5 (max pooling is exact)

mod common;

use std::sync::MutexGuard;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use whet::ops::batch_norm::{batch_norm, BatchNorm};
use whet::ops::conv::{conv2d, conv2d_geometry, set_max_cols_bytes, Conv2d, Padding};
use whet::ops::pool::{adaptive_avg_pool2d, avg_pool2d, max_pool2d};
use whet::ops::reference::{self as rf, batch_norm as rbn, conv as rconv, pool as rpool, RefTensor};
use whet::{Engine, Result, Tensor};

const GRAD: (f64, f64) = (1e-4, 1e-3);
const FWD: (f64, f64) = (1e-5, 1e-5);

fn gpu(test: &str) -> Option<(MutexGuard<'static, ()>, Engine)> {
    common::gpu("cnn_vs_reference", test)
}

/// Collects every mismatch of a test, so one run reports all of them.
struct Report {
    test: &'static str,
    checks: usize,
    fails: Vec<String>,
}

impl Report {
    fn new(test: &'static str) -> Report {
        Report { test, checks: 0, fails: Vec::new() }
    }

    fn close(&mut self, op: &str, what: &str, got: &[f32], want: &RefTensor, tol: (f64, f64)) {
        self.checks += 1;
        if let Err(m) = rf::compare(got, want, tol.0, tol.1) {
            self.fails.push(format!("{op} {what}: {m}"));
        }
    }

    /// A gradient: atol scaled by the gradient's magnitude, times `fan` (>= 1).
    fn grad(&mut self, op: &str, what: &str, got: &[f32], want: &RefTensor, fan: f64) {
        self.checks += 1;
        let scale = want.data.iter().fold(0.0f64, |m, v| m.max(v.abs())).clamp(1e-2, 1.0);
        let fan = fan.max(1.0);
        if let Err(m) = rf::compare_with(got, want, |_, v| (GRAD.0 * scale + GRAD.1 * v.abs()) * fan) {
            self.fails.push(format!("{op} {what}: {m}"));
        }
    }

    fn fail(&mut self, msg: String) {
        self.checks += 1;
        self.fails.push(msg);
    }

    fn finish(self) {
        eprintln!("{}: {} comparisons, {} failed", self.test, self.checks, self.fails.len());
        assert!(
            self.fails.is_empty(),
            "{}: {} failure(s):\n  {}",
            self.test,
            self.fails.len(),
            self.fails.join("\n  ")
        );
    }
}

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

fn data(r: &mut ChaCha8Rng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| r.random_range(lo..hi)).collect()
}

fn weights(r: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| r.random_range(0.5f32..1.5) * if r.random::<bool>() { 1.0 } else { -1.0 }).collect()
}

fn rt(d: &[f32], shape: &[usize]) -> RefTensor {
    RefTensor::from_f32(d, shape)
}

type Outcome = (Vec<f32>, Vec<usize>, Vec<Vec<f32>>);

/// Upload `inputs` as params, run `f`, backward of `sum(out * w)` for a weighting drawn from
/// `r`; returns output, shape, the input gradients, and the weighting.
fn run(
    e: &Engine,
    r: &mut ChaCha8Rng,
    inputs: &[(&[f32], &[usize])],
    f: impl Fn(&[Tensor]) -> Result<Tensor>,
) -> Result<(Outcome, Vec<f32>)> {
    let ts: Vec<Tensor> = inputs.iter().map(|(d, s)| Tensor::param(e, d, s)).collect::<Result<_>>()?;
    let out = f(&ts)?;
    let shape = out.shape().to_vec();
    let w = weights(r, out.numel());
    let wt = Tensor::from_slice(e, &w, &shape)?;
    let grads = out.mul(&wt)?.sum_all()?.backward()?;
    let gs = ts
        .iter()
        .map(|t| match grads.get(t) {
            Some(g) => g.to_vec(),
            None => Ok(vec![f32::NAN; t.numel()]),
        })
        .collect::<Result<_>>()?;
    Ok(((out.to_vec()?, shape, gs), w))
}

// ------------------------------------------------------------------ conv2d

struct ConvCase {
    x: [usize; 4],
    w: [usize; 4],
    cfg: Conv2d,
    bias: bool,
}

fn cc(
    x: [usize; 4],
    w: [usize; 4],
    stride: usize,
    padding: Padding,
    dilation: usize,
    groups: usize,
    bias: bool,
) -> ConvCase {
    ConvCase {
        x,
        w,
        cfg: Conv2d { stride: (stride, stride), padding, dilation: (dilation, dilation), groups },
        bias,
    }
}

fn sym(p: usize) -> Padding {
    Padding::symmetric(p, p)
}

fn conv_cases() -> Vec<ConvCase> {
    let same = Padding::Same;
    vec![
        cc([2, 3, 9, 9], [4, 3, 3, 3], 2, sym(1), 1, 1, true), // stride 2
        cc([1, 4, 13, 13], [5, 4, 3, 3], 1, sym(2), 2, 1, false), // dilation 2, batch 1
        cc([2, 4, 7, 7], [6, 2, 3, 3], 1, sym(1), 1, 2, true), // groups 2
        cc([2, 6, 13, 13], [6, 1, 3, 3], 1, sym(1), 1, 6, true), // depthwise
        cc([2, 6, 13, 13], [6, 1, 3, 3], 2, sym(1), 1, 6, false), // depthwise stride 2
        cc([1, 4, 7, 7], [8, 1, 5, 5], 1, sym(2), 2, 4, true), // depthwise x2, dilated
        cc([1, 3, 7, 7], [4, 3, 3, 3], 2, same, 1, 1, true),   // SAME, odd
        cc([2, 3, 8, 8], [4, 3, 3, 3], 2, same, 1, 1, false),  // SAME, even (extra pad after)
        cc([1, 4, 33, 33], [4, 1, 5, 5], 2, same, 1, 4, true), // SAME depthwise 5x5 (EfficientNet)
        cc([2, 5, 8, 6], [4, 5, 4, 2], 2, same, 1, 1, true),   // SAME, even kernel
        cc([2, 8, 7, 7], [5, 8, 1, 1], 1, sym(0), 1, 1, true), // 1x1 on a small map: im2col path
        cc([3, 12, 13, 13], [16, 12, 1, 1], 1, sym(0), 1, 1, false), // 1x1, P >= 128: per-image matmul path
        cc([2, 8, 7, 7], [6, 8, 1, 1], 2, sym(0), 1, 1, true), // 1x1 stride 2 (downsample)
        cc([1, 3, 33, 33], [8, 3, 7, 7], 2, sym(3), 1, 1, false), // ResNet stem
        cc([2, 16, 13, 13], [16, 16, 3, 3], 1, sym(1), 1, 1, true), // K = 144: blocked matmul
        cc([1, 4, 8, 8], [8, 2, 3, 3], 1, sym(1), 1, 2, false), // groups 2, K % 4 = 2
        cc([1, 2, 5, 5], [3, 2, 5, 5], 1, sym(0), 1, 1, true), // 1x1 output
        cc(
            [2, 3, 7, 13],
            [4, 3, 2, 3],
            1,
            Padding::Explicit { top: 1, bottom: 0, left: 2, right: 1 },
            1,
            1,
            true,
        ),
    ]
}

fn conv_case(rep: &mut Report, e: &Engine, r: &mut ChaCha8Rng, c: &ConvCase, tag: &str) {
    let name = format!("conv2d{tag} x{:?} w{:?} {:?}", c.x, c.w, c.cfg);
    let geo = conv2d_geometry(&c.x, &c.w, &c.cfg).unwrap();
    let xs: Vec<f32> = data(r, c.x.iter().product(), -1.0, 1.0);
    let ws: Vec<f32> = data(r, c.w.iter().product(), -1.0, 1.0);
    let bs: Vec<f32> = data(r, c.w[0], -1.0, 1.0);
    let b_shape = [c.w[0]];
    let mut inputs: Vec<(&[f32], &[usize])> = vec![(&xs, &c.x), (&ws, &c.w)];
    if c.bias {
        inputs.push((&bs, &b_shape));
    }
    let cfg = c.cfg;
    let res = run(e, r, &inputs, |t| conv2d(&t[0], &t[1], t.get(2), &cfg));
    let ((out, shape, g), w) = match res {
        Ok(v) => v,
        Err(err) => return rep.fail(format!("{name}: error {err}")),
    };
    let (xr, wr, br) = (rt(&xs, &c.x), rt(&ws, &c.w), rt(&bs, &b_shape));
    let want = rconv::conv2d(&xr, &wr, c.bias.then_some(&br), &c.cfg);
    if shape != want.shape {
        return rep.fail(format!("{name}: output shape {shape:?}, want {:?}", want.shape));
    }
    let k = geo.k() as f64;
    rep.close(&name, "forward", &out, &want, (1e-5 * (k / 64.0).sqrt().max(1.0), 1e-4));
    let (gx, gw, gb) = rconv::conv2d_backward(&xr, &wr, &c.cfg, &rt(&w, &shape));
    let terms = (geo.n * geo.ho * geo.wo) as f64;
    rep.grad(&name, "grad x", &g[0], &gx, (geo.o as f64 * geo.kh as f64 * geo.kw as f64 / 64.0).sqrt());
    rep.grad(&name, "grad w", &g[1], &gw, (terms / 64.0).sqrt());
    if c.bias {
        rep.grad(&name, "grad bias", &g[2], &gb, (terms / 64.0).sqrt());
    }
}

#[test]
fn conv2d_forward_and_gradients() {
    let Some((_g, e)) = gpu("conv2d_forward_and_gradients") else { return };
    let mut rep = Report::new("conv2d_forward_and_gradients");
    let mut r = rng(301);
    for c in conv_cases() {
        conv_case(&mut rep, &e, &mut r, &c, "");
    }
    rep.finish();
}

#[test]
fn conv2d_batch_chunked_im2col() {
    let Some((_g, e)) = gpu("conv2d_batch_chunked_im2col") else { return };
    let mut rep = Report::new("conv2d_batch_chunked_im2col");
    let mut r = rng(302);
    // A cap of one image's columns (or less) forces one chunk per image; 2.5 images' worth
    // leaves a short last chunk.
    let cases = [
        (cc([3, 4, 9, 9], [6, 4, 3, 3], 1, sym(1), 1, 1, true), 1u64),
        (cc([5, 4, 9, 9], [6, 2, 3, 3], 2, sym(1), 1, 2, true), 2 * 20 * 25 * 4 * 5 / 2),
        (cc([4, 3, 13, 13], [4, 3, 7, 7], 2, sym(3), 1, 1, false), 150 * 49 * 4 * 2),
    ];
    for (c, cap) in &cases {
        set_max_cols_bytes(*cap);
        conv_case(&mut rep, &e, &mut r, c, &format!("[chunk cap {cap} B]"));
    }
    set_max_cols_bytes(0);
    rep.finish();
}

#[test]
fn conv2d_shape_errors_name_the_op() {
    let Some((_g, e)) = gpu("conv2d_shape_errors_name_the_op") else { return };
    let x = Tensor::zeros(&e, &[1, 4, 5, 5]).unwrap();
    let bad = [
        (vec![2, 3, 3, 3], Conv2d::default()), // C/groups mismatch
        (vec![2, 4, 3, 3], Conv2d { groups: 3, ..Conv2d::default() }), // groups does not divide
        (vec![2, 4, 7, 7], Conv2d::default()), // kernel larger than input
        (vec![2, 4, 3, 3], Conv2d { stride: (0, 1), ..Conv2d::default() }), // stride 0
        (vec![2, 4, 3], Conv2d::default()),    // rank
    ];
    for (ws, cfg) in bad {
        let w = Tensor::zeros(&e, &ws).unwrap();
        let err = conv2d(&x, &w, None, &cfg).unwrap_err().to_string();
        assert!(err.contains("conv2d"), "{ws:?} {cfg:?}: {err}");
    }
    let w = Tensor::zeros(&e, &[2, 4, 3, 3]).unwrap();
    let b = Tensor::zeros(&e, &[3]).unwrap();
    assert!(conv2d(&x, &w, Some(&b), &Conv2d::default()).unwrap_err().to_string().contains("conv2d"));
}

// ------------------------------------------------------------------ pooling

#[test]
fn pooling_forward_and_gradients() {
    let Some((_g, e)) = gpu("pooling_forward_and_gradients") else { return };
    let mut rep = Report::new("pooling_forward_and_gradients");
    let mut r = rng(303);
    // (input, kernel, stride, padding)
    type Window = ([usize; 4], (usize, usize), (usize, usize), (usize, usize));
    let windows: &[Window] = &[
        ([2, 3, 7, 7], (3, 3), (2, 2), (1, 1)), // ResNet's max pool on an odd size
        ([1, 2, 13, 13], (2, 2), (2, 2), (0, 0)), // VGG's
        ([2, 2, 8, 9], (3, 2), (2, 1), (1, 0)), // rectangular
        ([1, 3, 33, 33], (3, 3), (2, 2), (1, 1)),
        ([3, 1, 5, 6], (5, 3), (1, 3), (2, 1)), // overlapping, padding = k/2
        ([1, 1, 4, 4], (4, 4), (4, 4), (0, 0)), // one window
    ];
    for &(xs, k, s, p) in windows {
        let x = data(&mut r, xs.iter().product(), -2.0, 2.0);
        let xr = rt(&x, &xs);
        let name = format!("max_pool2d x{xs:?} k{k:?} s{s:?} p{p:?}");
        match run(&e, &mut r, &[(&x, &xs)], |t| max_pool2d(&t[0], k, s, p)) {
            Ok(((out, shape, g), w)) => {
                rep.close(&name, "forward", &out, &rpool::max_pool2d(&xr, k, s, p), (0.0, 0.0));
                let want = rpool::max_pool2d_backward(&xr, k, s, p, &rt(&w, &shape));
                rep.grad(&name, "grad x", &g[0], &want, 1.0);
            }
            Err(err) => rep.fail(format!("{name}: error {err}")),
        }
        for include in [true, false] {
            let name = format!("avg_pool2d(count_include_pad={include}) x{xs:?} k{k:?} s{s:?} p{p:?}");
            match run(&e, &mut r, &[(&x, &xs)], |t| avg_pool2d(&t[0], k, s, p, include)) {
                Ok(((out, shape, g), w)) => {
                    rep.close(&name, "forward", &out, &rpool::avg_pool2d(&xr, k, s, p, include), FWD);
                    let want = rpool::avg_pool2d_backward(&xr, k, s, p, include, &rt(&w, &shape));
                    rep.grad(&name, "grad x", &g[0], &want, 1.0);
                }
                Err(err) => rep.fail(format!("{name}: error {err}")),
            }
        }
    }
    // Adaptive: VGG's 7x7 from 1x1, 2x2 and 13x13 inputs, global average pooling, uneven bins.
    let adaptive: &[([usize; 4], (usize, usize))] = &[
        ([2, 3, 1, 1], (7, 7)),
        ([1, 2, 2, 2], (7, 7)),
        ([1, 2, 13, 13], (7, 7)),
        ([2, 5, 33, 33], (1, 1)),
        ([2, 3, 7, 7], (3, 5)),
        ([1, 1, 10, 6], (4, 4)),
    ];
    for &(xs, o) in adaptive {
        let x = data(&mut r, xs.iter().product(), -2.0, 2.0);
        let xr = rt(&x, &xs);
        let name = format!("adaptive_avg_pool2d x{xs:?} -> {o:?}");
        match run(&e, &mut r, &[(&x, &xs)], |t| adaptive_avg_pool2d(&t[0], o)) {
            Ok(((out, shape, g), w)) => {
                rep.close(&name, "forward", &out, &rpool::adaptive_avg_pool2d(&xr, o), FWD);
                let want = rpool::adaptive_avg_pool2d_backward(&xr, o, &rt(&w, &shape));
                rep.grad(&name, "grad x", &g[0], &want, 1.0);
            }
            Err(err) => rep.fail(format!("{name}: error {err}")),
        }
    }
    // Ties: the gradient goes to the first maximum in window order only.
    let x = vec![1.0f32; 16];
    match run(&e, &mut r, &[(&x, &[1, 1, 4, 4])], |t| max_pool2d(&t[0], (2, 2), (2, 2), (0, 0))) {
        Ok(((_, shape, g), w)) => {
            let want =
                rpool::max_pool2d_backward(&rt(&x, &[1, 1, 4, 4]), (2, 2), (2, 2), (0, 0), &rt(&w, &shape));
            rep.close("max_pool2d ties", "grad x", &g[0], &want, (0.0, 0.0));
        }
        Err(err) => rep.fail(format!("max_pool2d ties: error {err}")),
    }
    let x4 = Tensor::zeros(&e, &[1, 1, 4, 4]).unwrap();
    assert!(max_pool2d(&x4, (3, 3), (1, 1), (2, 2)).unwrap_err().to_string().contains("max_pool2d"));
    assert!(avg_pool2d(&x4, (5, 5), (1, 1), (0, 0), true).unwrap_err().to_string().contains("avg_pool2d"));
    assert!(adaptive_avg_pool2d(&Tensor::zeros(&e, &[4, 4]).unwrap(), (1, 1)).is_err());
    rep.finish();
}

// ------------------------------------------------------------------ batch_norm

#[test]
fn batch_norm_training_eval_and_running_stats() {
    let Some((_g, e)) = gpu("batch_norm_training_eval_and_running_stats") else { return };
    let mut rep = Report::new("batch_norm_training_eval_and_running_stats");
    let mut r = rng(304);
    let shapes: &[&[usize]] = &[&[4, 3, 5, 5], &[8, 6], &[1, 4, 7, 7], &[2, 5, 33, 33], &[3, 2, 1, 1]];
    for &xs in shapes {
        let c = xs[1];
        for training in [true, false] {
            let momentum = 0.1f32;
            let eps = 1e-5f32;
            let x = data(&mut r, xs.iter().product(), -3.0, 5.0);
            let wv = data(&mut r, c, 0.5, 1.5);
            let bv = data(&mut r, c, -1.0, 1.0);
            let rmv = data(&mut r, c, -0.5, 0.5);
            let rvv = data(&mut r, c, 0.5, 2.0);
            let rm = Tensor::from_slice(&e, &rmv, &[c]).unwrap();
            let rv = Tensor::from_slice(&e, &rvv, &[c]).unwrap();
            let cfg = BatchNorm { training, momentum, eps };
            let name = format!("batch_norm(training={training}) x{xs:?}");
            let res = run(&e, &mut r, &[(&x, xs), (&wv, &[c]), (&bv, &[c])], |t| {
                batch_norm(&t[0], &t[1], &t[2], &rm, &rv, &cfg)
            });
            let ((out, shape, g), w) = match res {
                Ok(v) => v,
                Err(err) => {
                    rep.fail(format!("{name}: error {err}"));
                    continue;
                }
            };
            let (xr, wr, br, rmr, rvr) =
                (rt(&x, xs), rt(&wv, &[c]), rt(&bv, &[c]), rt(&rmv, &[c]), rt(&rvv, &[c]));
            let want = rbn::batch_norm(&xr, &wr, &br, &rmr, &rvr, training, eps as f64);
            rep.close(&name, "forward", &out, &want, (5e-6, 1e-5));
            let (gx, gw, gb) =
                rbn::batch_norm_backward(&xr, &wr, &rmr, &rvr, training, eps as f64, &rt(&w, &shape));
            let m = (xs.iter().product::<usize>() / c) as f64;
            rep.grad(&name, "grad x", &g[0], &gx, 5.0);
            rep.grad(&name, "grad weight", &g[1], &gw, (m / 64.0).sqrt());
            rep.grad(&name, "grad bias", &g[2], &gb, (m / 64.0).sqrt());
            let (want_m, want_v) = if training {
                rbn::updated_running_stats(&xr, &rmr, &rvr, momentum as f64)
            } else {
                (rmr.clone(), rvr.clone())
            };
            rep.close(&name, "running_mean", &rm.to_vec().unwrap(), &want_m, (1e-6, 1e-5));
            rep.close(&name, "running_var", &rv.to_vec().unwrap(), &want_v, (1e-6, 1e-5));
        }
    }
    // Typed errors.
    let x = Tensor::zeros(&e, &[1, 3]).unwrap();
    let p = Tensor::zeros(&e, &[3]).unwrap();
    let err = batch_norm(&x, &p, &p, &p, &p, &BatchNorm::default()).unwrap_err().to_string();
    assert!(err.contains("batch_norm"), "{err}");
    let x = Tensor::zeros(&e, &[2, 4]).unwrap();
    assert!(batch_norm(&x, &p, &p, &p, &p, &BatchNorm::default())
        .unwrap_err()
        .to_string()
        .contains("batch_norm"));
    rep.finish();
}

#[test]
fn conv2d_frozen_input_and_frozen_weight() {
    let Some((_g, e)) = gpu("conv2d_frozen_input_and_frozen_weight") else { return };
    let mut rep = Report::new("conv2d_frozen_input_and_frozen_weight");
    let mut r = rng(305);
    // One case per path: im2col, depthwise, 1x1 on a large map.
    let cases = [
        cc([2, 3, 9, 9], [4, 3, 3, 3], 2, sym(1), 1, 1, true),
        cc([2, 6, 9, 9], [6, 1, 3, 3], 1, sym(1), 1, 6, true),
        cc([2, 8, 12, 12], [4, 8, 1, 1], 1, sym(0), 1, 1, true),
    ];
    for c in &cases {
        let xs = data(&mut r, c.x.iter().product(), -1.0, 1.0);
        let ws = data(&mut r, c.w.iter().product(), -1.0, 1.0);
        let bs = data(&mut r, c.w[0], -1.0, 1.0);
        let (xr, wr) = (rt(&xs, &c.x), rt(&ws, &c.w));
        for frozen_x in [true, false] {
            let name = format!("conv2d x{:?} w{:?} frozen {}", c.x, c.w, if frozen_x { "x" } else { "w" });
            let x = Tensor::from_slice(&e, &xs, &c.x).unwrap().requires_grad_(!frozen_x);
            let w = Tensor::from_slice(&e, &ws, &c.w).unwrap().requires_grad_(frozen_x);
            let b = Tensor::param(&e, &bs, &[c.w[0]]).unwrap();
            let y = conv2d(&x, &w, Some(&b), &c.cfg).unwrap();
            let gw = weights(&mut r, y.numel());
            let loss = y.mul(&Tensor::from_slice(&e, &gw, y.shape()).unwrap()).unwrap().sum_all().unwrap();
            let grads = loss.backward().unwrap();
            let (gx_want, gw_want, gb_want) = rconv::conv2d_backward(&xr, &wr, &c.cfg, &rt(&gw, y.shape()));
            let (live, frozen, want) = if frozen_x { (&w, &x, &gw_want) } else { (&x, &w, &gx_want) };
            if grads.get(frozen).is_some() {
                rep.fail(format!("{name}: a frozen input got a gradient"));
            }
            match grads.get(live) {
                Some(g) => rep.grad(&name, "grad", &g.to_vec().unwrap(), want, 4.0),
                None => rep.fail(format!("{name}: no gradient")),
            }
            rep.grad(&name, "grad bias", &grads.get(&b).unwrap().to_vec().unwrap(), &gb_want, 4.0);
        }
    }
    // Under no_grad nothing is recorded.
    let x = Tensor::param(&e, &[0.5; 2 * 3 * 5 * 5], &[2, 3, 5, 5]).unwrap();
    let w = Tensor::param(&e, &[0.5; 4 * 3 * 3 * 3], &[4, 3, 3, 3]).unwrap();
    {
        let _ng = e.no_grad();
        let y = conv2d(&x, &w, None, &Conv2d::default()).unwrap();
        assert_eq!(whet::graph::count_nodes(&y), 0);
    }
    rep.finish();
}

// ------------------------------------------------------------------ ReLU6 kinks

/// Integers in -2..=2 summing to 0, shuffled: a channel whose batch mean is exactly 0, so every
/// 0 in it normalises to exactly 0 in float32 and float64 alike.
fn zero_mean_channel(r: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..n - n % 5).map(|j| (j % 5) as f32 - 2.0).collect();
    v.extend([0.0; 4].iter().take(n % 5));
    for i in (1..n).rev() {
        v.swap(i, r.random_range(0..=i));
    }
    v
}

/// Train-mode BatchNorm, ReLU6, then a stride-2 TF-SAME depthwise conv (EfficientNet's
/// pattern), with BatchNorm biases 0 and 6 so the zeros of the input land exactly on the two
/// kinks. The GPU must take torch's side there (derivative 0: `hardtanh_backward` passes only
/// 0 < z < 6), and the side matters: with the other side the reference's gradients move by far
/// more than the tolerance. That is why float32 and float64 runs of a network disagree by
/// percents on inputs with a value within rounding of a kink (issue 13 item 9), and why
/// tests/model_cnn.rs compares EfficientNet-Lite0's gradients kink for kink.
#[test]
fn batch_norm_relu6_kinks_decide_the_gradient() {
    let test = "batch_norm_relu6_kinks_decide_the_gradient";
    let Some((_g, e)) = gpu(test) else { return };
    let mut rep = Report::new(test);
    let mut r = rng(913);
    let (n, c, h) = (2usize, 2usize, 6usize);
    let xs = [n, c, h, h];
    let per = n * h * h;
    let channels: Vec<Vec<f32>> = (0..c).map(|_| zero_mean_channel(&mut r, per)).collect();
    let x: Vec<f32> = (0..n * c * h * h)
        .map(|i| channels[(i / (h * h)) % c][(i / (c * h * h)) * h * h + i % (h * h)])
        .collect();
    let (wv, bv) = (vec![0.75f32, 1.25], vec![0.0f32, 6.0]);
    let cw = data(&mut r, c * 9, -1.0, 1.0);
    let (rmv, rvv) = (vec![0.0f32; c], vec![1.0f32; c]);
    let rm = Tensor::from_slice(&e, &rmv, &[c]).unwrap();
    let rv = Tensor::from_slice(&e, &rvv, &[c]).unwrap();
    let bn = BatchNorm { training: true, momentum: 0.1, eps: 1e-3 };
    let dw = Conv2d { stride: (2, 2), padding: Padding::Same, groups: c, ..Conv2d::default() };
    let ((_, shape, g), up) =
        run(&e, &mut r, &[(&x, &xs), (&wv, &[c]), (&bv, &[c]), (&cw, &[c, 1, 3, 3])], |t| {
            conv2d(&batch_norm(&t[0], &t[1], &t[2], &rm, &rv, &bn)?.relu6()?, &t[3], None, &dw)
        })
        .unwrap();

    let (xr, wr, br, rmr, rvr) = (rt(&x, &xs), rt(&wv, &[c]), rt(&bv, &[c]), rt(&rmv, &[c]), rt(&rvv, &[c]));
    let z = rbn::batch_norm(&xr, &wr, &br, &rmr, &rvr, true, 1e-3);
    let on_kink = z.data.iter().filter(|v| **v == 0.0 || **v == 6.0).count();
    assert_eq!(on_kink, x.iter().filter(|v| **v == 0.0).count(), "every zero of x lands on a kink");
    // Reference gradients with the derivative on a kink set to `at_kink`.
    let reference = |at_kink: f64| {
        let a = z.map(|v| v.clamp(0.0, 6.0));
        let (ga, gcw, _) = rconv::conv2d_backward(&a, &rt(&cw, &[c, 1, 3, 3]), &dw, &rt(&up, &shape));
        let d = |v: f64| {
            if v == 0.0 || v == 6.0 {
                at_kink
            } else if v > 0.0 && v < 6.0 {
                1.0
            } else {
                0.0
            }
        };
        let gz = RefTensor::new(ga.data.iter().zip(&z.data).map(|(g, v)| g * d(*v)).collect(), &xs);
        let (gx, gw, gb) = rbn::batch_norm_backward(&xr, &wr, &rmr, &rvr, true, 1e-3, &gz);
        [gx, gw, gb, gcw]
    };
    let names = ["grad x", "grad bn weight", "grad bn bias", "grad conv weight"];
    let torch_side = reference(0.0);
    for ((name, got), want) in names.iter().zip(&g).zip(&torch_side) {
        rep.grad("bn+relu6+depthwise", name, got, want, (per as f64 / 64.0).sqrt());
    }
    // The other side of the kinks: the same GPU gradients of x and the BatchNorm bias must fail
    // by a wide margin (the BatchNorm weight's does not move: its terms carry xhat = 0 there).
    let other_side = reference(1.0);
    for i in [0, 2] {
        let (name, got, want) = (names[i], &g[i], &other_side[i]);
        let scale = want.data.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let d = got.iter().zip(&want.data).fold(0.0f64, |m, (a, b)| m.max((*a as f64 - b).abs()));
        if d < 1e-2 * scale {
            rep.fail(format!("{name}: the kink side moves it by only {:.1e} of its scale", d / scale));
        }
    }
    rep.finish();
}
