//! N1: every op's forward AND backward on the GPU against the f64 CPU reference
//! (`whet::ops::reference`, itself gradchecked in `tests/gradcheck.rs`).
//!
//! Gradients come from `loss.backward()` with `loss = sum(out * w)` for a random upstream
//! weighting `w`, so every output element's gradient path is exercised with a distinct weight.
//! Shapes are seeded and include 1, 7, 63, 65, 257 and 1025 elements, M = 1, 0-size dims,
//! broadcasting, and one elementwise dispatch past 65,535 workgroups.
//!
//! Tolerances (docs/reliability.md), `|got - want| <= atol + rtol |want|`:
//! - elementwise: rtol 1e-5, atol 1e-6
//! - softmax: atol 1e-7, rtol 1e-5 (log-softmax as elementwise)
//! - layer/RMS norm: forward atol 5e-6 (rtol 1e-5), gradients atol 5e-4 rtol 1e-3
//! - matmul: rtol 1e-4, atol 1e-5 sqrt(K / 64)
//! - gradients: atol 1e-4, rtol 1e-3, with atol taken relative to the gradient tensor's scale
//!   (max |g| clamped to [1e-2, 1]): a mean over 1025 elements or a cross-entropy over many rows
//!   has gradients ~1e-3, and an absolute 1e-4 would accept a 10% error there
//! - sums: relative to the condition of the sum, `1e-6 + 1e-5 max(1, sqrt(L / 64)) Σ|x|` over the
//!   L summed terms (f32 accumulation error grows with L, as for matmul's K); max is exact.
//!
//! Without an adapter the GPU tests print a loud SKIPPED line and pass; the CPU-only test at the
//! top still runs.

mod common;

use std::sync::MutexGuard;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use whet::ops::elementwise::{BinaryOp, UnaryOp};
use whet::ops::loss::CrossEntropy;
use whet::ops::matmul::{matmul_with, MatmulKernel};
use whet::ops::reference::{
    self as rf, dropout as rdrop, elementwise as rew, embedding as remb, layout as rlay, loss as rloss,
    matmul as rmm, norm as rnorm, reduce as rred, softmax as rsm, RefTensor,
};
use whet::{Engine, Result, Tensor};

const EW: (f64, f64) = (1e-6, 1e-5); // (atol, rtol)
const GRAD: (f64, f64) = (1e-4, 1e-3);
const SOFTMAX: (f64, f64) = (1e-7, 1e-5);
const NORM_FWD: (f64, f64) = (5e-6, 1e-5);
const NORM_GRAD: (f64, f64) = (5e-4, 1e-3);

// ------------------------------------------------------------------ harness

fn gpu(test: &str) -> Option<(MutexGuard<'static, ()>, Engine)> {
    common::gpu("ops_vs_reference", test)
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

    fn close(
        &mut self,
        op: &str,
        shape: &[usize],
        what: &str,
        got: &[f32],
        want: &RefTensor,
        tol: (f64, f64),
    ) {
        self.close_with(op, shape, what, got, want, |_, w| tol.0 + tol.1 * w.abs());
    }

    fn close_with(
        &mut self,
        op: &str,
        shape: &[usize],
        what: &str,
        got: &[f32],
        want: &RefTensor,
        tol: impl Fn(usize, f64) -> f64,
    ) {
        self.checks += 1;
        if let Err(m) = rf::compare_with(got, want, tol) {
            self.fails.push(format!("{op} {what} shape {shape:?}: {m}"));
        }
    }

    /// A gradient comparison: `atol` scaled by the gradient's magnitude (see the file header),
    /// times `fan` (>= 1) for gradients that are sums over `fan^2` broadcast terms.
    #[allow(clippy::too_many_arguments)]
    fn grad(
        &mut self,
        op: &str,
        shape: &[usize],
        what: &str,
        got: &[f32],
        want: &RefTensor,
        tol: (f64, f64),
        fan: f64,
    ) {
        let scale = want.data.iter().fold(0.0f64, |m, v| m.max(v.abs())).clamp(1e-2, 1.0);
        let fan = fan.max(1.0);
        self.close_with(op, shape, what, got, want, |_, v| (tol.0 * scale + tol.1 * v.abs()) * fan);
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

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// f32 values uniform in [lo, hi); the reference sees exactly these values widened to f64.
fn data(r: &mut ChaCha8Rng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| r.random_range(lo..hi)).collect()
}

/// An upstream weighting: ±[0.5, 1.5).
fn weights(r: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| r.random_range(0.5f32..1.5) * if r.random::<bool>() { 1.0 } else { -1.0 }).collect()
}

fn rt(d: &[f32], shape: &[usize]) -> RefTensor {
    RefTensor::from_f32(d, shape)
}

/// Output, output shape and input gradients of one GPU run.
type Outcome = (Vec<f32>, Vec<usize>, Vec<Option<Vec<f32>>>);

/// A Tensor method under test with its expected result.
type Method = (&'static str, fn(&Tensor) -> Result<Tensor>, RefTensor);

/// Inputs of one GPU run: data, shape, and whether a gradient is wanted.
struct Input<'a> {
    data: &'a [f32],
    shape: &'a [usize],
    grad: bool,
}

fn input<'a>(data: &'a [f32], shape: &'a [usize]) -> Input<'a> {
    Input { data, shape, grad: true }
}

/// Run `f` on the device, then `loss = sum(out * w)` and backward. Returns the output, its
/// shape and the gradient of every input that asked for one.
fn run(e: &Engine, inputs: &[Input], w: &[f32], f: impl Fn(&[Tensor]) -> Result<Tensor>) -> Result<Outcome> {
    let ts: Vec<Tensor> =
        inputs
            .iter()
            .map(|i| {
                if i.grad {
                    Tensor::param(e, i.data, i.shape)
                } else {
                    Tensor::from_slice(e, i.data, i.shape)
                }
            })
            .collect::<Result<_>>()?;
    let out = f(&ts)?;
    let shape = out.shape().to_vec();
    let wt = Tensor::from_slice(e, w, &shape)?;
    let loss = out.mul(&wt)?.sum_all()?;
    let grads = loss.backward()?;
    let gs = ts
        .iter()
        .zip(inputs)
        .map(|(t, i)| {
            if !i.grad {
                return Ok(None);
            }
            match grads.get(t) {
                Some(g) => g.to_vec().map(Some),
                None => Ok(Some(vec![f32::NAN; t.numel()])),
            }
        })
        .collect::<Result<_>>()?;
    Ok((out.to_vec()?, shape, gs))
}

/// Run, and on an error record it in the report instead of stopping the test.
fn run_or_fail(
    rep: &mut Report,
    what: &str,
    e: &Engine,
    inputs: &[Input],
    w: &[f32],
    f: impl Fn(&[Tensor]) -> Result<Tensor>,
) -> Option<Outcome> {
    match run(e, inputs, w, f) {
        Ok(r) => Some(r),
        Err(err) => {
            rep.fail(format!("{what}: error {err}"));
            None
        }
    }
}

/// Per-element tolerance of a sum over `len` terms whose absolute values sum to `abs_sum`.
fn sum_tol(len: usize, abs_sum: f64) -> f64 {
    1e-6 + 1e-5 * (len as f64 / 64.0).sqrt().max(1.0) * abs_sum
}

// ------------------------------------------------------------------ CPU-only part

#[test]
fn cpu_reference_shapes_and_hash_agree_with_the_crate() {
    // The broadcasting cases used below: the reference's broadcasting (written separately)
    // agrees with the crate's on every pair, including the ones that must fail.
    let pairs: &[(&[usize], &[usize])] = &[
        (&[7], &[7]),
        (&[3, 1, 5], &[4, 1]),
        (&[2, 3], &[3]),
        (&[], &[4, 5]),
        (&[0, 3], &[3]),
        (&[65, 1], &[1, 63]),
        (&[1], &[257]),
        (&[2, 3], &[4]),
        (&[257, 65], &[1, 65]),
        (&[5, 0], &[5, 1]),
        (&[3, 0], &[3, 2]),
    ];
    for (a, b) in pairs {
        let crate_says = whet::tensor::shape::broadcast("t", a, b).ok();
        assert_eq!(rf::broadcast_shape(a, b), crate_says, "broadcast {a:?} {b:?}");
    }
    for p in [0.0f32, 0.1, 0.5, 0.9, 1.0] {
        assert_eq!(rdrop::threshold(p), whet::ops::dropout::threshold(p));
    }
    // The comparison helper itself: NaN matches NaN, inf matches inf, a 1-ulp miss of 0 fails at 0.
    let want = RefTensor::new(vec![f64::NAN, f64::INFINITY, 1.0, 0.0], &[4]);
    assert!(rf::compare(&[f32::NAN, f32::INFINITY, 1.0, 0.0], &want, 0.0, 0.0).is_ok());
    let m = rf::compare(&[f32::NAN, f32::INFINITY, 1.0, 1e-30], &want, 0.0, 0.0).unwrap_err();
    assert_eq!((m.index, m.failures), (3, 1));
}

// ------------------------------------------------------------------ elementwise

/// (op, alpha, beta, lo, hi): domains where the function is finite.
fn unary_cases() -> Vec<(UnaryOp, f32, f32, f32, f32)> {
    use UnaryOp::*;
    vec![
        (Neg, 0.0, 0.0, -5.0, 5.0),
        (Exp, 0.0, 0.0, -10.0, 10.0),
        (Log, 0.0, 0.0, 0.05, 20.0),
        (Sqrt, 0.0, 0.0, 0.05, 20.0),
        (Rsqrt, 0.0, 0.0, 0.05, 20.0),
        (Relu, 0.0, 0.0, -5.0, 5.0),
        (GeluErf, 0.0, 0.0, -8.0, 8.0),
        (GeluTanh, 0.0, 0.0, -8.0, 8.0),
        (Silu, 0.0, 0.0, -12.0, 12.0),
        (Sigmoid, 0.0, 0.0, -12.0, 12.0),
        (Tanh, 0.0, 0.0, -6.0, 6.0),
        (Pow, 2.0, 0.0, -3.0, 3.0),
        (Pow, 3.0, 0.0, -3.0, 3.0),
        (Pow, 0.5, 0.0, 0.05, 4.0),
        (Pow, -1.5, 0.0, 0.2, 4.0),
        (Pow, 1.7, 0.0, 0.05, 4.0),
        (Affine, 1.7, -0.3, -5.0, 5.0),
        (Relu6, 0.0, 0.0, -3.0, 9.0),
        (Abs, 0.0, 0.0, -5.0, 5.0),
    ]
}

/// The shapes of the elementwise sweep: 1, 7, 63, 65, 257, 1025 elements, 2-D, 0-size.
fn sweep_shapes() -> Vec<Vec<usize>> {
    vec![
        vec![1],
        vec![7],
        vec![63],
        vec![65],
        vec![257],
        vec![5, 205],
        vec![3, 7, 3],
        vec![0],
        vec![4, 0, 3],
        vec![],
    ]
}

#[test]
fn unary_ops_forward_and_backward() {
    let Some((_g, e)) = gpu("unary_ops_forward_and_backward") else { return };
    let mut rep = Report::new("unary_ops_forward_and_backward");
    let mut r = rng(100);
    for op in UnaryOp::ALL {
        assert!(unary_cases().iter().any(|c| c.0 == op), "{} not covered", op.name());
    }
    for (op, alpha, beta, lo, hi) in unary_cases() {
        for shape in sweep_shapes() {
            let n = numel(&shape);
            let x = data(&mut r, n, lo, hi);
            let w = weights(&mut r, n);
            let name = format!("{}(alpha={alpha}, beta={beta})", op.name());
            let Some((out, _, g)) = run_or_fail(&mut rep, &name, &e, &[input(&x, &shape)], &w, |t| {
                whet::ops::elementwise::unary(&t[0], op, alpha, beta)
            }) else {
                continue;
            };
            let xr = rt(&x, &shape);
            let want = rew::unary(&xr, op, alpha as f64, beta as f64);
            rep.close(&name, &shape, "forward", &out, &want, EW);
            let gw = rew::unary_backward(&xr, &rt(&w, &shape), op, alpha as f64, beta as f64);
            rep.grad(&name, &shape, "grad x", g[0].as_ref().unwrap(), &gw, GRAD, 1.0);
        }
    }
    // The Tensor methods dispatch the ops they name.
    let x = data(&mut r, 65, 0.1, 3.0);
    let shape = [65];
    let xr = rt(&x, &shape);
    let methods: Vec<Method> = vec![
        ("neg", Tensor::neg, rew::unary(&xr, UnaryOp::Neg, 0.0, 0.0)),
        ("exp", Tensor::exp, rew::unary(&xr, UnaryOp::Exp, 0.0, 0.0)),
        ("log", Tensor::log, rew::unary(&xr, UnaryOp::Log, 0.0, 0.0)),
        ("sqrt", Tensor::sqrt, rew::unary(&xr, UnaryOp::Sqrt, 0.0, 0.0)),
        ("rsqrt", Tensor::rsqrt, rew::unary(&xr, UnaryOp::Rsqrt, 0.0, 0.0)),
        ("relu", Tensor::relu, rew::unary(&xr, UnaryOp::Relu, 0.0, 0.0)),
        ("relu6", Tensor::relu6, rew::unary(&xr, UnaryOp::Relu6, 0.0, 0.0)),
        ("gelu", Tensor::gelu, rew::unary(&xr, UnaryOp::GeluErf, 0.0, 0.0)),
        ("gelu_tanh", Tensor::gelu_tanh, rew::unary(&xr, UnaryOp::GeluTanh, 0.0, 0.0)),
        ("silu", Tensor::silu, rew::unary(&xr, UnaryOp::Silu, 0.0, 0.0)),
        ("sigmoid", Tensor::sigmoid, rew::unary(&xr, UnaryOp::Sigmoid, 0.0, 0.0)),
        ("tanh", Tensor::tanh, rew::unary(&xr, UnaryOp::Tanh, 0.0, 0.0)),
        ("abs", Tensor::abs, rew::unary(&xr, UnaryOp::Abs, 0.0, 0.0)),
        ("powf(2.5)", |t| t.powf(2.5), rew::unary(&xr, UnaryOp::Pow, 2.5, 0.0)),
        ("affine(-2, 0.5)", |t| t.affine(-2.0, 0.5), xr.map(|v| -2.0 * v + 0.5)),
        ("add_scalar(3)", |t| t.add_scalar(3.0), xr.map(|v| v + 3.0)),
        ("mul_scalar(-0.5)", |t| t.mul_scalar(-0.5), xr.map(|v| -0.5 * v)),
    ];
    let w = weights(&mut r, 65);
    for (name, f, want) in methods {
        if let Some((out, _, _)) = run_or_fail(&mut rep, name, &e, &[input(&x, &shape)], &w, |t| f(&t[0])) {
            rep.close(name, &shape, "forward (method)", &out, &want, EW);
        }
    }
    rep.finish();
}

#[test]
fn binary_ops_with_broadcasting() {
    let Some((_g, e)) = gpu("binary_ops_with_broadcasting") else { return };
    let mut rep = Report::new("binary_ops_with_broadcasting");
    let mut r = rng(101);
    let pairs: &[(&[usize], &[usize])] = &[
        (&[1], &[1]),
        (&[7], &[7]),
        (&[1025], &[1025]),
        (&[3, 1, 5], &[4, 1]),
        (&[2, 3], &[3]),
        (&[3], &[2, 3]),
        (&[], &[4, 5]),
        (&[4, 5], &[]),
        (&[0, 3], &[3]),
        (&[5, 0], &[5, 1]),
        (&[65, 1], &[1, 63]),
        (&[1], &[257]),
        (&[2, 1, 3, 1], &[1, 4, 1, 5]),
        (&[257, 4], &[257, 1]),
        // A tail of 4k elements: the vec4 row kernel (more columns than one workgroup, and
        // more rows than one grid dimension).
        (&[65, 8], &[8]),
        (&[3, 2, 12], &[2, 12]),
        (&[5, 1028], &[1, 1028]),
        (&[70_000, 4], &[4]),
    ];
    for op in BinaryOp::ALL {
        for (sa, sb) in pairs {
            let a = data(&mut r, numel(sa), -3.0, 3.0);
            let mut b = data(&mut r, numel(sb), -3.0, 3.0);
            if op == BinaryOp::Div {
                // |b| in [0.25, 3]: the quotient and its gradient stay well conditioned.
                for v in &mut b {
                    *v = v.signum() * v.abs().max(0.25);
                }
            }
            let ar = rt(&a, sa);
            let br = rt(&b, sb);
            let want = rew::binary(&ar, &br, op);
            let w = weights(&mut r, want.numel());
            let name = op.name();
            let f = |t: &[Tensor]| match op {
                BinaryOp::Add => t[0].add(&t[1]),
                BinaryOp::Sub => t[0].sub(&t[1]),
                BinaryOp::Mul => t[0].mul(&t[1]),
                BinaryOp::Div => t[0].div(&t[1]),
            };
            let Some((out, shape, g)) =
                run_or_fail(&mut rep, name, &e, &[input(&a, sa), input(&b, sb)], &w, f)
            else {
                continue;
            };
            let shape_s = format!("{sa:?} (op) {sb:?} -> {shape:?}");
            if shape != want.shape {
                rep.fail(format!("{name} {shape_s}: output shape {shape:?}, want {:?}", want.shape));
                continue;
            }
            rep.close(&format!("{name} {shape_s}"), &shape, "forward", &out, &want, EW);
            let (ga, gb) = rew::binary_backward(&ar, &br, &rt(&w, &shape), op);
            // Broadcast gradients are sums: tolerance grows with the number of summed terms.
            let fan_a = want.numel() / ar.numel().max(1);
            let fan_b = want.numel() / br.numel().max(1);
            let fan = |f: usize| (f as f64).sqrt();
            let label = format!("{name} {shape_s}");
            rep.grad(&label, sa, "grad a", g[0].as_ref().unwrap(), &ga, GRAD, fan(fan_a));
            rep.grad(&label, sb, "grad b", g[1].as_ref().unwrap(), &gb, GRAD, fan(fan_b));
        }
    }
    // One input frozen: only the other gets a gradient, and it is still right.
    let (a, b) = (data(&mut r, 12, -2.0, 2.0), data(&mut r, 4, 0.5, 2.0));
    let w = weights(&mut r, 12);
    let ins = [input(&a, &[3, 4]), Input { data: &b, shape: &[4], grad: false }];
    if let Some((_, _, g)) = run_or_fail(&mut rep, "div frozen b", &e, &ins, &w, |t| t[0].div(&t[1])) {
        let (ga, _) = rew::binary_backward(&rt(&a, &[3, 4]), &rt(&b, &[4]), &rt(&w, &[3, 4]), BinaryOp::Div);
        rep.grad("div", &[3, 4], "grad a (b frozen)", g[0].as_ref().unwrap(), &ga, GRAD, 1.0);
        assert!(g[1].is_none());
    }
    rep.finish();
}

/// More than WG1 * 65,535 elements (WG1 = invocations per 1-D workgroup): the 1-D grid folds
/// into 2-D, and every element (the tail included) must still be computed exactly once.
#[test]
fn elementwise_dispatch_wider_than_65535_workgroups() {
    let Some((_g, e)) = gpu("elementwise_dispatch_wider_than_65535_workgroups") else { return };
    let mut rep = Report::new("elementwise_dispatch_wider_than_65535_workgroups");
    let max = e.limits().max_compute_workgroups_per_dimension as usize;
    let wg = whet::ops::WG1 as usize;
    // (rows, cols) for the broadcast case below; n = rows * cols is past the cap.
    let cols = 1500usize;
    let rows = wg * max.min(65_535) / cols + 1;
    let n = rows * cols;
    assert!(n > wg * max.min(65_535), "not past the per-dimension cap");
    let mut r = rng(102);
    let x = data(&mut r, n, -6.0, 6.0);
    let w = weights(&mut r, n);
    let shape = [n];
    if let Some((out, _, g)) =
        run_or_fail(&mut rep, "silu past the cap", &e, &[input(&x, &shape)], &w, |t| t[0].silu())
    {
        let xr = rt(&x, &shape);
        rep.close("silu", &shape, "forward", &out, &rew::unary(&xr, UnaryOp::Silu, 0.0, 0.0), EW);
        let gw = rew::unary_backward(&xr, &rt(&w, &shape), UnaryOp::Silu, 0.0, 0.0);
        rep.grad("silu", &shape, "grad x", g[0].as_ref().unwrap(), &gw, GRAD, 1.0);
    }
    // Broadcast binary forward and backward past the cap too; b's gradient sums every row.
    let b = data(&mut r, cols, -2.0, 2.0);
    let sa = [rows, cols];
    let sb = [cols];
    if let Some((out, _, g)) =
        run_or_fail(&mut rep, "mul broadcast past the cap", &e, &[input(&x, &sa), input(&b, &sb)], &w, |t| {
            t[0].mul(&t[1])
        })
    {
        let (ar, br, wr) = (rt(&x, &sa), rt(&b, &sb), rt(&w, &sa));
        rep.close("mul", &sa, "forward", &out, &rew::binary(&ar, &br, BinaryOp::Mul), EW);
        let (ga, gb) = rew::binary_backward(&ar, &br, &wr, BinaryOp::Mul);
        rep.grad("mul", &sa, "grad a", g[0].as_ref().unwrap(), &ga, GRAD, 1.0);
        let abs = rred::sum(&ar.zip(&wr, |a, w| (a * w).abs()), 0, false);
        rep.close_with("mul", &sb, "grad b (sum over rows)", g[1].as_ref().unwrap(), &gb, |i, _| {
            sum_tol(rows, abs.data[i])
        });
    }
    rep.finish();
}

// ------------------------------------------------------------------ reductions

#[test]
fn reductions_sum_mean_max() {
    let Some((_g, e)) = gpu("reductions_sum_mean_max") else { return };
    let mut rep = Report::new("reductions_sum_mean_max");
    let mut r = rng(103);
    // (shape) — every axis of each; [2, 300] and [1025] take the one-workgroup-per-output path.
    let shapes: Vec<Vec<usize>> = vec![
        vec![1],
        vec![7],
        vec![1025],
        vec![4, 65],
        vec![2, 300],
        vec![3, 257, 2],
        vec![63, 1],
        vec![1, 1, 1],
        vec![5, 0, 3],
        vec![0, 4],
    ];
    for shape in &shapes {
        for axis in 0..shape.len() {
            for keepdim in [false, true] {
                let ax = if keepdim { axis as isize - shape.len() as isize } else { axis as isize };
                let n = numel(shape);
                let x = data(&mut r, n, -2.0, 2.0);
                let xr = rt(&x, shape);
                let len = shape[axis];
                let abs = rred::sum(&xr.map(f64::abs), ax, keepdim);
                for (name, mean) in [("sum", false), ("mean", true)] {
                    let want = if mean { rred::mean(&xr, ax, keepdim) } else { rred::sum(&xr, ax, keepdim) };
                    let w = weights(&mut r, want.numel());
                    let name = format!("{name}(axis={ax}, keepdim={keepdim})");
                    let Some((out, os, g)) = run_or_fail(&mut rep, &name, &e, &[input(&x, shape)], &w, |t| {
                        if mean {
                            t[0].mean(ax, keepdim)
                        } else {
                            t[0].sum(ax, keepdim)
                        }
                    }) else {
                        continue;
                    };
                    if os != want.shape {
                        rep.fail(format!("{name} {shape:?}: output shape {os:?}, want {:?}", want.shape));
                        continue;
                    }
                    let scale = if mean { len.max(1) as f64 } else { 1.0 };
                    rep.close_with(&name, shape, "forward", &out, &want, |i, _| {
                        sum_tol(len, abs.data[i]) / scale
                    });
                    let wr = rt(&w, &want.shape);
                    let gw = if mean {
                        rred::mean_backward(shape, ax, &wr)
                    } else {
                        rred::sum_backward(shape, ax, &wr)
                    };
                    rep.grad(&name, shape, "grad x", g[0].as_ref().unwrap(), &gw, GRAD, 1.0);
                }
                if len == 0 {
                    continue;
                }
                // Max: exact (it returns one of its inputs); the gradient goes to the first arg max.
                let (want, _) = rred::max(&xr, ax, keepdim);
                let w = weights(&mut r, want.numel());
                let name = format!("max(axis={ax}, keepdim={keepdim})");
                if let Some((out, _, g)) =
                    run_or_fail(&mut rep, &name, &e, &[input(&x, shape)], &w, |t| t[0].max(ax, keepdim))
                {
                    rep.close(&name, shape, "forward", &out, &want, (0.0, 0.0));
                    let gw = rred::max_backward(&xr, ax, &rt(&w, &want.shape));
                    rep.close(&name, shape, "grad x", g[0].as_ref().unwrap(), &gw, (0.0, 0.0));
                }
            }
        }
    }
    // Ties: the first index wins in both kernels (row and wide).
    for (shape, ax) in [(vec![3, 4], 1isize), (vec![2, 600], 1)] {
        let n = numel(&shape);
        let x: Vec<f32> = (0..n).map(|i| if i % 7 == 3 { 5.0 } else { (i % 5) as f32 * 0.1 }).collect();
        let xr = rt(&x, &shape);
        let (want, _) = rred::max(&xr, ax, false);
        let w = weights(&mut r, want.numel());
        if let Some((out, _, g)) =
            run_or_fail(&mut rep, "max ties", &e, &[input(&x, &shape)], &w, |t| t[0].max(ax, false))
        {
            rep.close("max (ties)", &shape, "forward", &out, &want, (0.0, 0.0));
            rep.close(
                "max (ties)",
                &shape,
                "grad x",
                g[0].as_ref().unwrap(),
                &rred::max_backward(&xr, ax, &rt(&w, &want.shape)),
                (0.0, 0.0),
            );
        }
    }
    // Max over an empty axis is a typed error, not a NaN.
    let t = Tensor::from_slice(&e, &[], &[3, 0]).unwrap();
    assert!(t.max(1, false).is_err());
    // sum_all / mean_all, including a long wide reduction.
    for shape in [vec![1], vec![7], vec![63, 65], vec![1025], vec![2, 3, 257], vec![0, 5]] {
        let n = numel(&shape);
        let x = data(&mut r, n, -2.0, 2.0);
        let xr = rt(&x, &shape);
        let abs: f64 = xr.data.iter().map(|v| v.abs()).sum();
        for mean in [false, true] {
            let want = if mean { rred::mean_all(&xr) } else { rred::sum_all(&xr) };
            let w = weights(&mut r, 1);
            let name = if mean { "mean_all" } else { "sum_all" };
            let Some((out, _, g)) = run_or_fail(&mut rep, name, &e, &[input(&x, &shape)], &w, |t| {
                if mean {
                    t[0].mean_all()
                } else {
                    t[0].sum_all()
                }
            }) else {
                continue;
            };
            let scale = if mean { n.max(1) as f64 } else { 1.0 };
            rep.close_with(name, &shape, "forward", &out, &want, |_, _| sum_tol(n, abs) / scale);
            let gw = if mean {
                rred::mean_all_backward(&shape, w[0] as f64)
            } else {
                rred::sum_all_backward(&shape, w[0] as f64)
            };
            rep.grad(name, &shape, "grad x", g[0].as_ref().unwrap(), &gw, GRAD, 1.0);
        }
    }
    rep.finish();
}

// ------------------------------------------------------------------ matmul

fn kernel_name(k: MatmulKernel) -> &'static str {
    match k {
        MatmulKernel::Auto => "auto",
        MatmulKernel::Blocked => "blocked",
        MatmulKernel::Subgroup => "subgroup",
        MatmulKernel::Tiled => "tiled",
        MatmulKernel::Generic => "generic",
    }
}

/// One matmul case: forward with `kernel`, gradients (backward picks its own kernels).
#[allow(clippy::too_many_arguments)]
fn matmul_case(
    rep: &mut Report,
    e: &Engine,
    r: &mut ChaCha8Rng,
    kernel: MatmulKernel,
    sa: &[usize],
    sb: &[usize],
    ta: bool,
    tb: bool,
    k: usize,
) {
    let a = data(r, numel(sa), -1.0, 1.0);
    let b = data(r, numel(sb), -1.0, 1.0);
    let (ar, br) = (rt(&a, sa), rt(&b, sb));
    let want = rmm::matmul(&ar, &br, ta, tb);
    let w = weights(r, want.numel());
    let name = format!("matmul[{}](ta={ta}, tb={tb}) {sa:?} x {sb:?}", kernel_name(kernel));
    let Some((out, os, g)) = run_or_fail(rep, &name, e, &[input(&a, sa), input(&b, sb)], &w, |t| {
        matmul_with(&t[0], &t[1], ta, tb, kernel)
    }) else {
        return;
    };
    if os != want.shape {
        rep.fail(format!("{name}: output shape {os:?}, want {:?}", want.shape));
        return;
    }
    let atol = 1e-5 * (k as f64 / 64.0).sqrt();
    rep.close(&name, &os, "forward", &out, &want, (atol, 1e-4));
    let (ga, gb) = rmm::matmul_backward(&ar, &br, ta, tb, &rt(&w, &os));
    rep.grad(&name, sa, "grad a", g[0].as_ref().unwrap(), &ga, GRAD, 1.0);
    rep.grad(&name, sb, "grad b", g[1].as_ref().unwrap(), &gb, GRAD, 1.0);
}

/// `ops::linear::linear` against matmul + bias in f64: leading dims folded into rows, both
/// weight layouts, with and without a bias, on shapes the subgroup kernel's fused bias takes
/// (in and out multiples of 4) and shapes it leaves to a separate add.
#[test]
fn linear_matches_matmul_plus_bias() {
    let Some((_g, e)) = gpu("linear_matches_matmul_plus_bias") else { return };
    let mut rep = Report::new("linear_matches_matmul_plus_bias");
    let mut r = rng(111);
    // (x shape, out features)
    let cases: &[(&[usize], usize)] =
        &[(&[2, 9, 12], 20), (&[70, 8], 36), (&[3, 7], 5), (&[1, 1, 4], 4), (&[5, 16], 68)];
    for &(xs, out) in cases {
        let fan_in = xs[xs.len() - 1];
        let rows = numel(xs) / fan_in;
        for in_major in [false, true] {
            for with_bias in [true, false] {
                let ws: Vec<usize> = if in_major { vec![fan_in, out] } else { vec![out, fan_in] };
                let x = data(&mut r, numel(xs), -1.0, 1.0);
                let wv = data(&mut r, numel(&ws), -1.0, 1.0);
                let bv = data(&mut r, out, -1.0, 1.0);
                let (xr, wr) = (rt(&x, &[rows, fan_in]), rt(&wv, &ws));
                let mut want = rmm::matmul(&xr, &wr, false, !in_major);
                if with_bias {
                    let brows: Vec<f32> = (0..rows).flat_map(|_| bv.iter().cloned()).collect();
                    want = want.zip(&rt(&brows, &[rows, out]), |a, b| a + b);
                }
                let mut os = xs.to_vec();
                *os.last_mut().unwrap() = out;
                let up = weights(&mut r, rows * out);
                let name = format!("linear x {xs:?} w {ws:?} bias {with_bias}");
                let bs = [out];
                let mut inputs = vec![input(&x, xs), input(&wv, &ws)];
                if with_bias {
                    inputs.push(input(&bv, &bs));
                }
                let Some((got, gs, g)) = run_or_fail(&mut rep, &name, &e, &inputs, &up, |t| {
                    whet::ops::linear::linear(&t[0], &t[1], t.get(2), in_major)
                }) else {
                    continue;
                };
                if gs != os {
                    rep.fail(format!("{name}: output shape {gs:?}, want {os:?}"));
                    continue;
                }
                let atol = 1e-5 * (fan_in as f64 / 64.0).sqrt();
                rep.close(&name, &os, "forward", &got, &want, (atol, 1e-4));
                let upr = rt(&up, &[rows, out]);
                let (gx, gw) = rmm::matmul_backward(&xr, &wr, false, !in_major, &upr);
                rep.grad(&name, xs, "grad x", g[0].as_ref().unwrap(), &gx, GRAD, 1.0);
                rep.grad(&name, &ws, "grad w", g[1].as_ref().unwrap(), &gw, GRAD, 1.0);
                if with_bias {
                    let gb = rred::sum(&upr, 0, false);
                    rep.grad(&name, &bs, "grad bias", g[2].as_ref().unwrap(), &gb, GRAD, 1.0);
                }
            }
        }
    }
    // Bad shapes are typed errors naming the op.
    let z = |s: &[usize]| Tensor::zeros(&e, s).unwrap();
    for (what, res) in [
        ("inputs", whet::ops::linear::linear(&z(&[2, 3]), &z(&[4, 5]), None, false)),
        ("bias", whet::ops::linear::linear(&z(&[2, 5]), &z(&[4, 5]), Some(&z(&[5])), false)),
        ("weight rank", whet::ops::linear::linear(&z(&[2, 5]), &z(&[5]), None, false)),
    ] {
        match res {
            Err(err) if err.to_string().contains("linear") => {}
            Err(err) => rep.fail(format!("bad {what}: the error does not name linear: {err}")),
            Ok(_) => rep.fail(format!("linear accepted bad {what}")),
        }
    }
    rep.finish();
}

fn stored(rows: usize, cols: usize, t: bool) -> Vec<usize> {
    if t {
        vec![cols, rows]
    } else {
        vec![rows, cols]
    }
}

#[test]
fn matmul_every_kernel_transpose_and_batch() {
    let Some((_g, e)) = gpu("matmul_every_kernel_transpose_and_batch") else { return };
    let mut rep = Report::new("matmul_every_kernel_transpose_and_batch");
    let mut r = rng(104);
    // (M, K, N): awkward sizes, M = 1, N = 1, K = 0 and M = 0.
    let any_sizes = [
        (1, 1, 1),
        (1, 7, 65),
        (7, 63, 1),
        (63, 65, 7),
        (65, 257, 63),
        (257, 7, 65),
        (1, 257, 257),
        (5, 0, 7),
        (0, 7, 5),
    ];
    // K % 4 == 0 && N % 4 == 0: the blocked kernel's domain (edges in M and N/4 still awkward).
    // M = 32 / 33 straddle the subgroup kernel's short (16-row) and wide (64-row) variants;
    // M % 4 == 0 (32, 68, 4) lets it read a transposed A in place.
    let blocked_sizes = [
        (1, 4, 4),
        (7, 64, 68),
        (65, 256, 12),
        (257, 20, 64),
        (63, 8, 260),
        (1, 256, 256),
        (17, 0, 8),
        (32, 12, 132),
        (33, 16, 196),
        (68, 20, 36),
        (4, 8, 4),
    ];
    let mut kernels = vec![MatmulKernel::Generic, MatmulKernel::Tiled, MatmulKernel::Blocked];
    if e.subgroup_size() == Some(8) {
        kernels.push(MatmulKernel::Subgroup);
    } else {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: the subgroup matmul kernel (this adapter's subgroups: {:?})",
            e.subgroup_size()
        );
    }
    kernels.push(MatmulKernel::Auto);
    for kernel in kernels {
        let four = matches!(kernel, MatmulKernel::Blocked | MatmulKernel::Subgroup);
        let sizes: Vec<(usize, usize, usize)> = if four {
            blocked_sizes.to_vec()
        } else {
            any_sizes.iter().chain(&blocked_sizes).cloned().collect()
        };
        for &(m, k, n) in &sizes {
            for ta in [false, true] {
                for tb in [false, true] {
                    let (sa, sb) = (stored(m, k, ta), stored(k, n, tb));
                    matmul_case(&mut rep, &e, &mut r, kernel, &sa, &sb, ta, tb, k);
                }
            }
        }
        // Batched, and a 2-D operand broadcast over the other's batch.
        let (m, k, n) = if four { (9, 12, 20) } else { (9, 7, 13) };
        for ta in [false, true] {
            for tb in [false, true] {
                let (sa, sb) = (stored(m, k, ta), stored(k, n, tb));
                let cat = |b: &[usize], s: &[usize]| [b, s].concat();
                matmul_case(&mut rep, &e, &mut r, kernel, &cat(&[3], &sa), &cat(&[3], &sb), ta, tb, k);
                matmul_case(&mut rep, &e, &mut r, kernel, &cat(&[2, 2], &sa), &cat(&[2, 2], &sb), ta, tb, k);
                matmul_case(&mut rep, &e, &mut r, kernel, &cat(&[4], &sa), &sb, ta, tb, k);
                matmul_case(&mut rep, &e, &mut r, kernel, &sa, &cat(&[4], &sb), ta, tb, k);
            }
        }
    }
    // The blocked kernel refuses shapes outside its domain with a typed error.
    let a = Tensor::from_slice(&e, &[0.0; 6], &[2, 3]).unwrap();
    let b = Tensor::from_slice(&e, &[0.0; 12], &[3, 4]).unwrap();
    assert!(matmul_with(&a, &b, false, false, MatmulKernel::Blocked).is_err());
    assert!(matmul_with(&a, &b, false, false, MatmulKernel::Subgroup).is_err());
    // Tensor::matmul and matmul_t are the same product.
    let (a, b) = (data(&mut r, 5 * 8, -1.0, 1.0), data(&mut r, 8 * 3, -1.0, 1.0));
    let want = rmm::matmul(&rt(&a, &[5, 8]), &rt(&b, &[8, 3]), false, false);
    let w = weights(&mut r, 15);
    for (name, f) in [
        ("Tensor::matmul", (|t: &[Tensor]| t[0].matmul(&t[1])) as fn(&[Tensor]) -> Result<Tensor>),
        ("matmul_t", |t: &[Tensor]| whet::ops::matmul::matmul_t(&t[0], &t[1], false, false)),
    ] {
        if let Some((out, _, _)) =
            run_or_fail(&mut rep, name, &e, &[input(&a, &[5, 8]), input(&b, &[8, 3])], &w, f)
        {
            rep.close(name, &[5, 3], "forward", &out, &want, (1e-5 * (8.0f64 / 64.0).sqrt(), 1e-4));
        }
    }
    rep.finish();
}

// ------------------------------------------------------------------ softmax, norms

#[test]
fn softmax_and_log_softmax() {
    let Some((_g, e)) = gpu("softmax_and_log_softmax") else { return };
    let mut rep = Report::new("softmax_and_log_softmax");
    let mut r = rng(105);
    let shapes: Vec<Vec<usize>> = vec![
        vec![1],
        vec![7],
        vec![1, 63],
        vec![65, 7],
        vec![3, 257],
        vec![2, 1025],
        vec![4, 3, 5],
        vec![0, 5],
        vec![3, 1],
    ];
    for shape in &shapes {
        for log in [false, true] {
            let n = numel(shape);
            let x = data(&mut r, n, -5.0, 5.0);
            let w = weights(&mut r, n);
            let name = if log { "log_softmax" } else { "softmax" };
            let Some((out, _, g)) = run_or_fail(&mut rep, name, &e, &[input(&x, shape)], &w, |t| {
                if log {
                    t[0].log_softmax()
                } else {
                    t[0].softmax()
                }
            }) else {
                continue;
            };
            let xr = rt(&x, shape);
            let wr = rt(&w, shape);
            let (want, gw) = if log {
                (rsm::log_softmax(&xr), rsm::log_softmax_backward(&xr, &wr))
            } else {
                (rsm::softmax(&xr), rsm::softmax_backward(&xr, &wr))
            };
            rep.close(name, shape, "forward", &out, &want, if log { EW } else { SOFTMAX });
            rep.grad(name, shape, "grad x", g[0].as_ref().unwrap(), &gw, GRAD, 1.0);
        }
    }
    rep.finish();
}

#[test]
fn layer_norm_and_rms_norm() {
    let Some((_g, e)) = gpu("layer_norm_and_rms_norm") else { return };
    let mut rep = Report::new("layer_norm_and_rms_norm");
    let mut r = rng(106);
    let shapes: Vec<Vec<usize>> = vec![
        vec![1, 1],
        vec![1, 7],
        vec![7],
        vec![63, 65],
        vec![3, 257],
        vec![2, 1025],
        vec![2, 3, 64],
        vec![0, 8],
    ];
    for shape in &shapes {
        let c = *shape.last().unwrap();
        let rows = numel(shape) / c.max(1);
        let x = data(&mut r, numel(shape), -3.0, 3.0);
        let w = data(&mut r, c, 0.5, 1.5);
        let b = data(&mut r, c, -0.5, 0.5);
        let up = weights(&mut r, numel(shape));
        let (xr, wr, br, upr) = (rt(&x, shape), rt(&w, &[c]), rt(&b, &[c]), rt(&up, shape));
        let eps = 1e-5f32;
        let cs = [c];
        let ins = [input(&x, shape), input(&w, &cs), input(&b, &cs)];
        if let Some((out, _, g)) = run_or_fail(&mut rep, "layer_norm", &e, &ins, &up, |t| {
            whet::ops::norm::layer_norm(&t[0], &t[1], &t[2], eps)
        }) {
            rep.close(
                "layer_norm",
                shape,
                "forward",
                &out,
                &rnorm::layer_norm(&xr, &wr, &br, eps as f64),
                NORM_FWD,
            );
            let (gx, gw, gb) = rnorm::layer_norm_backward(&xr, &wr, eps as f64, &upr);
            rep.grad("layer_norm", shape, "grad x", g[0].as_ref().unwrap(), &gx, NORM_GRAD, 1.0);
            // gw, gb sum over the rows.
            let fan = (rows as f64).sqrt();
            rep.grad("layer_norm", &[c], "grad w", g[1].as_ref().unwrap(), &gw, NORM_GRAD, fan);
            rep.grad("layer_norm", &[c], "grad b", g[2].as_ref().unwrap(), &gb, NORM_GRAD, fan);
        }
        let ins = [input(&x, shape), input(&w, &cs)];
        if let Some((out, _, g)) =
            run_or_fail(&mut rep, "rms_norm", &e, &ins, &up, |t| whet::ops::norm::rms_norm(&t[0], &t[1], eps))
        {
            rep.close("rms_norm", shape, "forward", &out, &rnorm::rms_norm(&xr, &wr, eps as f64), NORM_FWD);
            let (gx, gw) = rnorm::rms_norm_backward(&xr, &wr, eps as f64, &upr);
            rep.grad("rms_norm", shape, "grad x", g[0].as_ref().unwrap(), &gx, NORM_GRAD, 1.0);
            let fan = (rows as f64).sqrt();
            rep.grad("rms_norm", &[c], "grad w", g[1].as_ref().unwrap(), &gw, NORM_GRAD, fan);
        }
    }
    // Only x needs a gradient (frozen affine parameters, as in a frozen backbone).
    let shape = [4, 9];
    let x = data(&mut r, 36, -2.0, 2.0);
    let (w, b) = (data(&mut r, 9, 0.5, 1.5), data(&mut r, 9, -0.5, 0.5));
    let up = weights(&mut r, 36);
    let ins = [
        input(&x, &shape),
        Input { data: &w, shape: &[9], grad: false },
        Input { data: &b, shape: &[9], grad: false },
    ];
    if let Some((_, _, g)) = run_or_fail(&mut rep, "layer_norm frozen", &e, &ins, &up, |t| {
        whet::ops::norm::layer_norm(&t[0], &t[1], &t[2], 1e-5)
    }) {
        let (gx, _, _) = rnorm::layer_norm_backward(&rt(&x, &shape), &rt(&w, &[9]), 1e-5, &rt(&up, &shape));
        rep.grad("layer_norm (w, b frozen)", &shape, "grad x", g[0].as_ref().unwrap(), &gx, NORM_GRAD, 1.0);
    }
    rep.finish();
}

// ------------------------------------------------------------------ embedding, losses

#[test]
fn embedding_forward_and_table_gradient() {
    let Some((_g, e)) = gpu("embedding_forward_and_table_gradient") else { return };
    let mut rep = Report::new("embedding_forward_and_table_gradient");
    let mut r = rng(107);
    // (vocab, dim, ids shape)
    let cases: Vec<(usize, usize, Vec<usize>)> = vec![
        (1, 1, vec![1]),
        (1, 7, vec![3]),
        (50, 7, vec![2, 9]),
        (300, 65, vec![257]),
        (10, 1025, vec![4]),
        (5, 3, vec![0]),
        (7, 0, vec![3]),
        // dim % 4 == 0: the vec4 kernel (a BERT-width row; more ids than one grid dimension).
        (30, 384, vec![2, 64]),
        (9, 4, vec![70_000]),
    ];
    for (v, d, ids_shape) in cases {
        let table = data(&mut r, v * d, -1.0, 1.0);
        // Repeats guaranteed: ids drawn from at most half the vocabulary.
        let ids: Vec<u32> = (0..numel(&ids_shape)).map(|_| r.random_range(0..v.div_ceil(2)) as u32).collect();
        let tr = rt(&table, &[v, d]);
        let want = remb::embedding(&tr, &ids, &ids_shape);
        let w = weights(&mut r, want.numel());
        let shape = [v, d];
        let Some((out, _, g)) = run_or_fail(&mut rep, "embedding", &e, &[input(&table, &shape)], &w, |t| {
            t[0].embedding(&ids, &ids_shape)
        }) else {
            continue;
        };
        rep.close("embedding", &want.shape, "forward", &out, &want, (0.0, 0.0));
        let gt = remb::embedding_backward(v, d, &ids, &rt(&w, &want.shape));
        rep.grad("embedding", &shape, "grad table", g[0].as_ref().unwrap(), &gt, GRAD, 1.0);
    }
    // An id past the vocabulary is a typed error before any GPU work.
    let t = Tensor::param(&e, &[0.0; 6], &[3, 2]).unwrap();
    assert!(whet::ops::embedding::embedding(&t, &[0, 3], &[2]).is_err());
    rep.finish();
}

#[test]
fn cross_entropy_and_mse() {
    let Some((_g, e)) = gpu("cross_entropy_and_mse") else { return };
    let mut rep = Report::new("cross_entropy_and_mse");
    let mut r = rng(108);
    let ce = |ignore: Option<u32>, s: f32| CrossEntropy { ignore_index: ignore, label_smoothing: s };
    // (rows, classes, options, fraction of rows to mark ignored)
    let cases = [
        (1, 1, ce(None, 0.0), 0.0),
        (1, 7, ce(None, 0.0), 0.0),
        (7, 63, ce(None, 0.1), 0.0),
        (65, 7, ce(Some(999), 0.0), 0.3),
        (3, 257, ce(Some(0), 0.2), 0.0),
        (2, 1025, ce(None, 1.0), 0.0),
        (4, 5, ce(Some(7), 0.1), 1.0),
        (0, 5, ce(None, 0.0), 0.0),
        (1, 5, ce(None, 0.3), 0.0),
        (6, 3, ce(Some(1), 0.5), 0.0),
        (33, 4, ce(Some(4), 0.1), 0.25),
    ];
    for (n, c, opts, frac) in cases {
        let logits = data(&mut r, n * c, -4.0, 4.0);
        let targets: Vec<u32> = (0..n)
            .map(|_| {
                if r.random::<f64>() < frac {
                    opts.ignore_index.unwrap()
                } else {
                    r.random_range(0..c) as u32
                }
            })
            .collect();
        let lr = rt(&logits, &[n, c]);
        let want = rloss::cross_entropy(&lr, &targets, opts);
        let w = weights(&mut r, 1);
        let shape = [n, c];
        let name = format!("cross_entropy({opts:?})");
        let Some((out, _, g)) = run_or_fail(&mut rep, &name, &e, &[input(&logits, &shape)], &w, |t| {
            whet::ops::loss::cross_entropy(&t[0], &targets, opts)
        }) else {
            continue;
        };
        // The loss is a mean of per-row log-sum-exps: f32 error ~ 1e-6 relative to their size.
        rep.close(&name, &shape, "forward", &out, &RefTensor::scalar(want), (1e-5, 1e-5));
        let gw = rloss::cross_entropy_backward(&lr, &targets, opts, w[0] as f64);
        rep.grad(&name, &shape, "grad logits", g[0].as_ref().unwrap(), &gw, GRAD, 1.0);
    }
    for shape in [vec![1], vec![7], vec![63, 65], vec![257], vec![3, 1025]] {
        let n = numel(&shape);
        let a = data(&mut r, n, -3.0, 3.0);
        let b = data(&mut r, n, -3.0, 3.0);
        let (ar, br) = (rt(&a, &shape), rt(&b, &shape));
        let want = rloss::mse(&ar, &br);
        let w = weights(&mut r, 1);
        let Some((out, _, g)) =
            run_or_fail(&mut rep, "mse", &e, &[input(&a, &shape), input(&b, &shape)], &w, |t| {
                whet::ops::loss::mse(&t[0], &t[1])
            })
        else {
            continue;
        };
        let abs: f64 = ar.zip(&br, |x, y| (x - y) * (x - y)).data.iter().sum();
        rep.close_with("mse", &shape, "forward", &out, &RefTensor::scalar(want), |_, _| {
            sum_tol(n, abs) / n as f64
        });
        let (ga, gb) = rloss::mse_backward(&ar, &br, w[0] as f64);
        rep.grad("mse", &shape, "grad a", g[0].as_ref().unwrap(), &ga, GRAD, 1.0);
        rep.grad("mse", &shape, "grad b", g[1].as_ref().unwrap(), &gb, GRAD, 1.0);
    }
    rep.finish();
}

// ------------------------------------------------------------------ layout

#[test]
fn layout_reshape_permute_slice_concat() {
    let Some((_g, e)) = gpu("layout_reshape_permute_slice_concat") else { return };
    let mut rep = Report::new("layout_reshape_permute_slice_concat");
    let mut r = rng(109);
    let exact = (0.0, 0.0);
    // reshape
    for (from, to) in
        [(vec![2, 3, 4], vec![6, 4]), (vec![1025], vec![5, 205]), (vec![0, 3], vec![3, 0]), (vec![1], vec![])]
    {
        let x = data(&mut r, numel(&from), -1.0, 1.0);
        let w = weights(&mut r, numel(&to));
        if let Some((out, _, g)) =
            run_or_fail(&mut rep, "reshape", &e, &[input(&x, &from)], &w, |t| t[0].reshape(&to))
        {
            rep.close("reshape", &from, "forward", &out, &rlay::reshape(&rt(&x, &from), &to), exact);
            rep.close(
                "reshape",
                &from,
                "grad x",
                g[0].as_ref().unwrap(),
                &rlay::reshape_backward(&from, &rt(&w, &to)),
                exact,
            );
        }
    }
    // permute / transpose
    let perms: Vec<(Vec<usize>, Vec<usize>)> = vec![
        (vec![7, 9], vec![1, 0]),
        (vec![2, 3, 4], vec![2, 0, 1]),
        (vec![2, 3, 4], vec![1, 2, 0]),
        (vec![3, 1, 65, 2], vec![3, 2, 0, 1]),
        (vec![2, 3, 2, 3, 2], vec![4, 3, 2, 1, 0]),
        (vec![4, 0, 3], vec![2, 1, 0]),
        (vec![2, 3, 4], vec![0, 1, 2]),
        // The last axis stays (a multiple of 4): the vec4 kernel, after collapsing dims.
        (vec![2, 5, 3, 8], vec![0, 2, 1, 3]),
        (vec![3, 1, 7, 4], vec![2, 0, 1, 3]),
        (vec![5, 300, 12], vec![1, 0, 2]),
        (vec![2, 3, 4, 6, 8], vec![1, 2, 0, 3, 4]),
    ];
    for (shape, perm) in &perms {
        let x = data(&mut r, numel(shape), -1.0, 1.0);
        let xr = rt(&x, shape);
        let want = rlay::permute(&xr, perm);
        let w = weights(&mut r, want.numel());
        let name = format!("permute({perm:?})");
        if let Some((out, os, g)) =
            run_or_fail(&mut rep, &name, &e, &[input(&x, shape)], &w, |t| t[0].permute(perm))
        {
            if os != want.shape {
                rep.fail(format!("{name} {shape:?}: shape {os:?}, want {:?}", want.shape));
                continue;
            }
            rep.close(&name, shape, "forward", &out, &want, exact);
            rep.close(
                &name,
                shape,
                "grad x",
                g[0].as_ref().unwrap(),
                &rlay::permute_backward(perm, &rt(&w, &os)),
                exact,
            );
        }
    }
    for (shape, a, b) in [(vec![63, 65], 0isize, 1isize), (vec![2, 7, 5], -1, -2), (vec![2, 7, 5], 0, 2)] {
        let x = data(&mut r, numel(&shape), -1.0, 1.0);
        let want = rlay::transpose(&rt(&x, &shape), a, b);
        let w = weights(&mut r, want.numel());
        let name = format!("transpose({a}, {b})");
        if let Some((out, os, g)) =
            run_or_fail(&mut rep, &name, &e, &[input(&x, &shape)], &w, |t| t[0].transpose(a, b))
        {
            rep.close(&name, &shape, "forward", &out, &want, exact);
            let gw = rlay::permute_backward(&rlay::transpose_perm(shape.len(), a, b), &rt(&w, &os));
            rep.close(&name, &shape, "grad x", g[0].as_ref().unwrap(), &gw, exact);
        }
    }
    // slice
    let slices: Vec<(Vec<usize>, isize, usize, usize)> = vec![
        (vec![7], 0, 2, 3),
        (vec![1025], 0, 0, 1025),
        (vec![4, 65], 1, 63, 2),
        (vec![4, 65], -2, 1, 2),
        (vec![3, 257, 2], 1, 100, 57),
        (vec![3, 5], 1, 2, 0),
        (vec![0, 5], 1, 1, 3),
    ];
    for (shape, axis, start, len) in &slices {
        let x = data(&mut r, numel(shape), -1.0, 1.0);
        let xr = rt(&x, shape);
        let want = rlay::slice(&xr, *axis, *start, *len);
        let w = weights(&mut r, want.numel());
        let name = format!("slice(axis={axis}, {start}..{})", start + len);
        if let Some((out, os, g)) =
            run_or_fail(&mut rep, &name, &e, &[input(&x, shape)], &w, |t| t[0].slice(*axis, *start, *len))
        {
            rep.close(&name, shape, "forward", &out, &want, exact);
            rep.close(
                &name,
                shape,
                "grad x",
                g[0].as_ref().unwrap(),
                &rlay::slice_backward(shape, *axis, *start, &rt(&w, &os)),
                exact,
            );
        }
    }
    let t = Tensor::from_slice(&e, &[0.0; 6], &[2, 3]).unwrap();
    assert!(t.slice(1, 2, 2).is_err(), "a slice past the end must be a typed error");
    // concat
    let concats: Vec<(Vec<Vec<usize>>, isize)> = vec![
        (vec![vec![2, 3], vec![2, 4]], 1),
        (vec![vec![1, 7], vec![63, 7], vec![1, 7]], 0),
        (vec![vec![2, 1, 3], vec![2, 0, 3], vec![2, 5, 3]], -2),
        (vec![vec![65]], 0),
        (vec![vec![3, 2, 257], vec![3, 2, 1]], 2),
    ];
    for (shapes, axis) in &concats {
        let xs: Vec<Vec<f32>> = shapes.iter().map(|s| data(&mut r, numel(s), -1.0, 1.0)).collect();
        let refs: Vec<RefTensor> = xs.iter().zip(shapes).map(|(x, s)| rt(x, s)).collect();
        let want = rlay::concat(&refs.iter().collect::<Vec<_>>(), *axis);
        let w = weights(&mut r, want.numel());
        let ins: Vec<Input> = xs.iter().zip(shapes).map(|(x, s)| input(x, s)).collect();
        let name = format!("concat(axis={axis})");
        if let Some((out, os, g)) = run_or_fail(&mut rep, &name, &e, &ins, &w, |t| {
            whet::ops::layout::concat(&t.iter().collect::<Vec<_>>(), *axis)
        }) {
            rep.close(&name, &os, "forward", &out, &want, exact);
            for (i, gw) in rlay::concat_backward(shapes, *axis, &rt(&w, &os)).iter().enumerate() {
                rep.close(&name, &shapes[i], &format!("grad input {i}"), g[i].as_ref().unwrap(), gw, exact);
            }
        }
    }
    rep.finish();
}

// ------------------------------------------------------------------ dropout

#[test]
fn dropout_mask_is_bit_exact() {
    let Some((_g, e)) = gpu("dropout_mask_is_bit_exact") else { return };
    let mut rep = Report::new("dropout_mask_is_bit_exact");
    let mut r = rng(110);
    let cases: Vec<(Vec<usize>, f32, u64)> = vec![
        (vec![1], 0.5, 0),
        (vec![7], 0.1, 1),
        (vec![1025], 0.5, 12345),
        (vec![65, 63], 0.9, 0xdead_beef_cafe_f00d),
        (vec![257, 257], 0.25, u64::MAX),
        (vec![100_000], 0.5, 1 << 32),
        (vec![1000], 1.0, 9),
        (vec![1000], 0.0, 9),
        (vec![0, 3], 0.5, 9),
    ];
    for (shape, p, seed) in cases {
        let n = numel(&shape);
        // Inputs bounded away from 0, so a zero output means "dropped" and nothing else.
        let x: Vec<f32> =
            data(&mut r, n, 0.5, 2.0).iter().map(|v| if r.random::<bool>() { *v } else { -*v }).collect();
        let w = weights(&mut r, n);
        let name = format!("dropout(p={p}, seed={seed:#x})");
        let Some((out, _, g)) =
            run_or_fail(&mut rep, &name, &e, &[input(&x, &shape)], &w, |t| t[0].dropout(p, seed))
        else {
            continue;
        };
        let mask = if p == 0.0 { vec![true; n] } else { rdrop::keep_mask(n, p, seed) };
        let gpu_mask: Vec<bool> = out.iter().map(|&v| v != 0.0).collect();
        if let Some(i) = (0..n).find(|&i| mask[i] != gpu_mask[i]) {
            let diff = (0..n).filter(|&i| mask[i] != gpu_mask[i]).count();
            rep.fail(format!(
                "{name} shape {shape:?}: mask differs at {diff} of {n} elements, first at index {i} (reference keeps: {})",
                mask[i]
            ));
            continue;
        }
        rep.checks += 1;
        let xr = rt(&x, &shape);
        rep.close(&name, &shape, "forward", &out, &rdrop::dropout(&xr, p, seed), EW);
        rep.close(
            &name,
            &shape,
            "grad x",
            g[0].as_ref().unwrap(),
            &rdrop::dropout_backward(&rt(&w, &shape), p, seed),
            EW,
        );
    }
    // The boundary: an element whose hash equals the threshold exactly is kept (h >= t). Find a
    // seed whose element-0 hash has its low 8 bits clear, so that p = h / 2^32 is an exact f32
    // and threshold(p) == h.
    let seed = (0u64..).find(|&s| rdrop::hash(s, 0) & 0xff == 0 && rdrop::hash(s, 0) > 1 << 28).unwrap();
    let h = rdrop::hash(seed, 0);
    let p = (h as f64 / 4_294_967_296.0) as f32;
    assert_eq!(rdrop::threshold(p), h, "p = {p} does not hit the hash exactly");
    let n = 64;
    let x = vec![1.0f32; n];
    let w = weights(&mut r, n);
    let shape = [n];
    if let Some((out, _, _)) =
        run_or_fail(&mut rep, "dropout boundary", &e, &[input(&x, &shape)], &w, |t| t[0].dropout(p, seed))
    {
        let mask = rdrop::keep_mask(n, p, seed);
        assert!(mask[0], "reference must keep the element at the threshold");
        let gpu_mask: Vec<bool> = out.iter().map(|&v| v != 0.0).collect();
        if gpu_mask != mask {
            rep.fail(format!("dropout(p={p}, seed={seed}) boundary: element 0 has hash == threshold; reference keeps {:?}, GPU {:?}", &mask[..4], &gpu_mask[..4]));
        } else {
            rep.checks += 1;
        }
    }
    assert!(Tensor::from_slice(&e, &[1.0], &[1]).unwrap().dropout(1.5, 0).is_err());
    rep.finish();
}

/// Keyed by sample: the masks of samples 2..5 of a batch-major [6, 3, 5] tensor, computed as
/// their own batch starting at global sample 2, are the whole batch's rows 2..5, bit for bit
/// with the reference (what micro-batches and data-parallel ranks rely on); a tensor whose size
/// is not a multiple of its item count is one sample.
#[test]
fn dropout_keyed_by_sample_is_bit_exact() {
    use whet::ops::dropout::{dropout_keyed, SampleKeys};
    let Some((_g, e)) = gpu("dropout_keyed_by_sample_is_bit_exact") else { return };
    let (p, seed, per) = (0.5, 0xfeed_u64, 15usize);
    let x = vec![1.0f32; 6 * per];
    let whole = Tensor::from_slice(&e, &x, &[6, 3, 5]).unwrap();
    let keys = SampleKeys { first_item: 0, items: 6 };
    let all = dropout_keyed(&whole, p, seed, keys).unwrap().to_vec().unwrap();
    let part = Tensor::from_slice(&e, &x[2 * per..5 * per], &[3, 3, 5]).unwrap();
    let some =
        dropout_keyed(&part, p, seed, SampleKeys { first_item: 2, items: 3 }).unwrap().to_vec().unwrap();
    assert_eq!(&all[2 * per..5 * per], some.as_slice(), "samples 2..5 alone vs in the batch");
    let reference = rdrop::keyed_mask(6 * per, p, seed, per, 0);
    let mask: Vec<bool> = all.iter().map(|&v| v != 0.0).collect();
    assert_eq!(mask, reference);
    assert!(mask.iter().any(|&k| k) && mask.iter().any(|&k| !k));
    // Samples draw different masks (not one mask repeated per sample).
    assert_ne!(&mask[..per], &mask[per..2 * per]);
    let odd = Tensor::from_slice(&e, &x[..7], &[7]).unwrap();
    let y = dropout_keyed(&odd, p, seed, SampleKeys { first_item: 4, items: 2 }).unwrap().to_vec().unwrap();
    let one: Vec<bool> = y.iter().map(|&v| v != 0.0).collect();
    assert_eq!(one, rdrop::keep_mask(7, p, seed));
}
