//! N2 (extreme inputs stay finite and right) and N3 (the NaN/Inf detector counts every
//! non-finite bit pattern and nothing else), on the GPU against the f64 reference.
//!
//! Without an adapter each test prints a loud SKIPPED line and passes; the CPU-only test that
//! pins down the reference's own overflow behaviour still runs.
//!
//! Overflow is specified, not just tolerated: `exp(x)` for x > ln(f32::MAX) ≈ 88.72 is +inf on
//! the device, exactly what rounding the f64 result to f32 gives (`(100f64).exp() as f32` is
//! +inf), and `exp(x)` for x < -103.97 (below the smallest subnormal) is 0.

mod common;

use std::sync::MutexGuard;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use whet::ops::attention::{attention_with, Attention, AttentionKernel};
use whet::ops::check::{count_nonfinite, NonFinite};
use whet::ops::elementwise::UnaryOp;
use whet::ops::loss::CrossEntropy;
use whet::ops::reference::attention::{self as ratt, RefAttention};
use whet::ops::reference::{
    self as rf, elementwise as rew, loss as rloss, norm as rnorm, softmax as rsm, RefTensor,
};
use whet::{Engine, Result, Tensor};

fn gpu(test: &str) -> Option<(MutexGuard<'static, ()>, Engine)> {
    common::gpu("extremes", test)
}

fn all_finite(v: &[f32]) -> bool {
    v.iter().all(|x| x.is_finite())
}

#[track_caller]
fn assert_close(what: &str, got: &[f32], want: &RefTensor, atol: f64, rtol: f64) {
    if let Err(m) = rf::compare(got, want, atol, rtol) {
        panic!("{what} shape {:?}: {m}\n  got  {got:?}\n  want {:?}", want.shape, want.to_f32());
    }
}

/// Forward and input gradient (`loss = sum(out)`) of a unary method.
fn fwd_grad(e: &Engine, x: &[f32], f: impl Fn(&Tensor) -> Result<Tensor>) -> (Vec<f32>, Vec<f32>) {
    let t = Tensor::param(e, x, &[x.len()]).unwrap();
    let y = f(&t).unwrap();
    let g = y.sum_all().unwrap().backward().unwrap();
    (y.to_vec().unwrap(), g.get(&t).unwrap().to_vec().unwrap())
}

// ------------------------------------------------------------------ CPU-only

#[test]
fn reference_overflow_is_what_f32_rounding_gives() {
    // The contract the GPU test below checks against: the f64 value rounded to f32.
    assert_eq!((100f64).exp() as f32, f32::INFINITY);
    assert_eq!((88.0f64).exp() as f32, 1.6516363e38);
    assert_eq!((-100f64).exp() as f32, f32::from_bits(27)); // 3.78e-44, a subnormal
    assert_eq!((-110f64).exp() as f32, 0.0);
    let x = RefTensor::new(vec![-100.0, 100.0], &[2]);
    let s = rew::unary(&x, UnaryOp::Sigmoid, 0.0, 0.0);
    assert_eq!(s.data[1], 1.0);
    assert!(s.data[0] > 0.0 && s.data[0] < 1e-43);
}

// ------------------------------------------------------------------ N2

#[test]
fn softmax_of_1234_and_0_is_exactly_one_and_zero() {
    let Some((_g, e)) = gpu("softmax_of_1234_and_0_is_exactly_one_and_zero") else { return };
    let x = Tensor::from_slice(&e, &[1234.0, 0.0], &[2]).unwrap();
    assert_eq!(x.softmax().unwrap().to_vec().unwrap(), vec![1.0, 0.0]);
    assert_eq!(x.log_softmax().unwrap().to_vec().unwrap(), vec![0.0, -1234.0]);
    // Masked rows (every score at a large negative mask value) are uniform, not NaN.
    for mask in [-1e9f32, -1e30, f32::MIN] {
        let t = Tensor::from_slice(&e, &[mask; 8], &[2, 4]).unwrap();
        assert_eq!(t.softmax().unwrap().to_vec().unwrap(), vec![0.25; 8], "mask {mask}");
    }
    // One unmasked score among masked ones takes all the mass.
    let t = Tensor::from_slice(&e, &[f32::MIN, 3.0, -1e30, f32::MIN], &[4]).unwrap();
    assert_eq!(t.softmax().unwrap().to_vec().unwrap(), vec![0.0, 1.0, 0.0, 0.0]);
}

#[test]
fn log_softmax_and_cross_entropy_of_plus_minus_1e4_are_finite_and_right() {
    let Some((_g, e)) = gpu("log_softmax_and_cross_entropy_of_plus_minus_1e4_are_finite_and_right") else {
        return;
    };
    let rows: Vec<f32> = vec![
        1e4, -1e4, 0.0, 5.0, //
        -1e4, -1e4, -1e4, -1e4, //
        1e4, 1e4, 1e4, 1e4, //
        -1e4, 1e4, -1e4, 1e4, //
    ];
    let shape = [4, 4];
    let x = Tensor::param(&e, &rows, &shape).unwrap();
    let y = x.log_softmax().unwrap();
    let g = y
        .mul(&Tensor::from_slice(&e, &[0.5; 16], &shape).unwrap())
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let (yv, gv) = (y.to_vec().unwrap(), g.get(&x).unwrap().to_vec().unwrap());
    assert!(all_finite(&yv) && all_finite(&gv), "log_softmax(±1e4): {yv:?} grad {gv:?}");
    let xr = RefTensor::from_f32(&rows, &shape);
    assert_close("log_softmax(±1e4)", &yv, &rsm::log_softmax(&xr), 1e-6, 1e-5);
    assert_close(
        "log_softmax(±1e4) grad",
        &gv,
        &rsm::log_softmax_backward(&xr, &RefTensor::full(&shape, 0.5)),
        1e-6,
        1e-5,
    );
    // Cross-entropy on the same logits, with smoothing (which sums every log-probability).
    for opts in [CrossEntropy::default(), CrossEntropy { ignore_index: None, label_smoothing: 0.1 }] {
        let targets = [1u32, 0, 3, 2];
        let l = whet::ops::loss::cross_entropy(&x, &targets, opts).unwrap();
        let got = l.item().unwrap();
        let want = rloss::cross_entropy(&xr, &targets, opts);
        assert!(got.is_finite(), "cross_entropy(±1e4) = {got}");
        assert!(
            ((got as f64) - want).abs() <= 1e-5 * want.abs() + 1e-5,
            "cross_entropy(±1e4) {opts:?}: {got} vs {want}"
        );
        let gv = l.backward().unwrap().get(&x).unwrap().to_vec().unwrap();
        let gw = rloss::cross_entropy_backward(&xr, &targets, opts, 1.0);
        assert_close("cross_entropy(±1e4) grad", &gv, &gw, 1e-6, 1e-5);
    }
}

#[test]
fn cross_entropy_of_logits_with_a_large_common_offset_keeps_its_precision() {
    let Some((_g, e)) = gpu("cross_entropy_of_logits_with_a_large_common_offset_keeps_its_precision") else {
        return;
    };
    // Logits near 1e4 (f32 spacing there is ~1e-3) whose differences are O(1): the loss is O(1)
    // and must be as accurate as for logits near 0.
    let mut r = ChaCha8Rng::seed_from_u64(301);
    let (n, c) = (6, 5);
    for offset in [0.0f32, 1e4, -1e4] {
        let logits: Vec<f32> = (0..n * c).map(|_| offset + r.random_range(-3.0f32..3.0)).collect();
        let targets: Vec<u32> = (0..n).map(|_| r.random_range(0..c as u32)).collect();
        let lr = RefTensor::from_f32(&logits, &[n, c]);
        let x = Tensor::param(&e, &logits, &[n, c]).unwrap();
        for opts in [CrossEntropy::default(), CrossEntropy { ignore_index: None, label_smoothing: 0.2 }] {
            let l = whet::ops::loss::cross_entropy(&x, &targets, opts).unwrap();
            let got = l.item().unwrap() as f64;
            let want = rloss::cross_entropy(&lr, &targets, opts);
            assert!(
                (got - want).abs() <= 1e-5 * want.abs() + 1e-6,
                "cross_entropy offset {offset} {opts:?}: {got} vs {want}"
            );
            let gv = l.backward().unwrap().get(&x).unwrap().to_vec().unwrap();
            assert_close(
                &format!("cross_entropy offset {offset} grad"),
                &gv,
                &rloss::cross_entropy_backward(&lr, &targets, opts, 1.0),
                1e-6,
                1e-4,
            );
        }
        let y = x.log_softmax().unwrap().to_vec().unwrap();
        assert_close(&format!("log_softmax offset {offset}"), &y, &rsm::log_softmax(&lr), 1e-6, 1e-5);
    }
}

#[test]
fn layer_norm_of_constant_and_huge_rows_is_finite() {
    let Some((_g, e)) = gpu("layer_norm_of_constant_and_huge_rows_is_finite") else { return };
    let c = 7;
    let w: Vec<f32> = (0..c).map(|i| 0.5 + i as f32 * 0.1).collect();
    let b: Vec<f32> = (0..c).map(|i| -0.3 + i as f32 * 0.05).collect();
    let (wr, br) = (RefTensor::from_f32(&w, &[c]), RefTensor::from_f32(&b, &[c]));
    let eps = 1e-5f32;
    // Constant rows: xhat = 0, so the output is exactly the bias and the input gradient is 0
    // (the row's mean equals every element). Values whose row sums round in f32 included.
    let consts = [0.0f32, 1.0, 0.1, -3.7, 100.0, -1234.5, 7e9, -7e9, 1e30];
    let mut x = Vec::new();
    for v in consts {
        x.extend(std::iter::repeat_n(v, c));
    }
    // ±7e9 rows: mean ~0, variance ~4.9e19, still far from f32 overflow.
    x.extend([7e9, -7e9, 7e9, -7e9, 7e9, -7e9, 7e9]);
    x.extend([7e9, 7e9, 7e9, -7e9, 7e9, 7e9, 7e9]);
    x.extend([7e9, 1.0, -7e9, 0.5, 7e9, -0.25, -7e9]);
    let rows = x.len() / c;
    let shape = [rows, c];
    let xr = RefTensor::from_f32(&x, &shape);
    let up: Vec<f32> = (0..x.len()).map(|i| if i % 3 == 0 { -0.7 } else { 1.1 }).collect();
    let upr = RefTensor::from_f32(&up, &shape);

    for (name, rms) in [("layer_norm", false), ("rms_norm", true)] {
        let xt = Tensor::param(&e, &x, &shape).unwrap();
        let wt = Tensor::param(&e, &w, &[c]).unwrap();
        let bt = Tensor::param(&e, &b, &[c]).unwrap();
        let y = if rms {
            whet::ops::norm::rms_norm(&xt, &wt, eps).unwrap()
        } else {
            whet::ops::norm::layer_norm(&xt, &wt, &bt, eps).unwrap()
        };
        let loss = y.mul(&Tensor::from_slice(&e, &up, &shape).unwrap()).unwrap().sum_all().unwrap();
        let g = loss.backward().unwrap();
        let yv = y.to_vec().unwrap();
        let gx = g.get(&xt).unwrap().to_vec().unwrap();
        let gw = g.get(&wt).unwrap().to_vec().unwrap();
        assert!(all_finite(&yv), "{name} output not finite: {yv:?}");
        assert!(all_finite(&gx) && all_finite(&gw), "{name} gradients not finite: {gx:?} {gw:?}");
        let (want, want_gx) = if rms {
            (rnorm::rms_norm(&xr, &wr, eps as f64), rnorm::rms_norm_backward(&xr, &wr, eps as f64, &upr).0)
        } else {
            (
                rnorm::layer_norm(&xr, &wr, &br, eps as f64),
                rnorm::layer_norm_backward(&xr, &wr, eps as f64, &upr).0,
            )
        };
        // Rows past |x| ~ 1.8e19 overflow x² in f32: RMSNorm's sum of squares is +inf there,
        // rstd = 0 and the row comes out 0 (finite, as in PyTorch's f32 x.pow(2).mean()). The
        // f64 reference does not overflow, so that row (1e30) is only required to be finite.
        let skip_row = if rms { consts.iter().position(|&v| v == 1e30) } else { None };
        let keep = |i: usize| Some(i / c) != skip_row;
        let (yk, wk): (Vec<f32>, Vec<f64>) =
            (0..yv.len()).filter(|&i| keep(i)).map(|i| (yv[i], want.data[i])).unzip();
        let want_k = RefTensor::new(wk, &[yk.len()]);
        assert_close(&format!("{name} (constant and ±7e9 rows)"), &yk, &want_k, 5e-6, 1e-5);
        // The input gradient scales with rstd = 1/sqrt(var + eps): tiny for ±7e9 rows, and
        // 1/sqrt(eps) ~ 316 for constant rows, where the reference's is exactly 0. Compare
        // relative to that scale.
        let scale = |i: usize| {
            let r = i / c;
            let row = &xr.data[r * c..(r + 1) * c];
            let mu = if rms { 0.0 } else { row.iter().sum::<f64>() / c as f64 };
            let var = row.iter().map(|v| (v - mu) * (v - mu)).sum::<f64>() / c as f64;
            1.0 / (var + eps as f64).sqrt()
        };
        let tol = |i: usize, v: f64| {
            if keep(i) {
                5e-4 * scale(i).min(1.0) + 1e-3 * v.abs()
            } else {
                f64::INFINITY
            }
        };
        if let Err(m) = rf::compare_with(&gx, &want_gx, tol) {
            panic!("{name} grad x (constant and ±7e9 rows): {m}");
        }
        if !rms {
            // Constant rows give exactly the bias.
            for (k, v) in consts.iter().enumerate() {
                assert_eq!(&yv[k * c..(k + 1) * c], &b[..], "layer_norm of a constant row of {v}");
            }
        }
    }
}

#[test]
fn activations_at_plus_minus_100_are_finite() {
    let Some((_g, e)) = gpu("activations_at_plus_minus_100_are_finite") else { return };
    let x: Vec<f32> =
        vec![-1e4, -100.0, -89.0, -50.0, -20.0, -15.5, -14.5, 0.0, 14.5, 15.5, 20.0, 50.0, 89.0, 100.0, 1e4];
    let xr = RefTensor::from_f32(&x, &[x.len()]);
    let ones = RefTensor::full(&[x.len()], 1.0);
    type Case = (&'static str, UnaryOp, fn(&Tensor) -> Result<Tensor>);
    let cases: Vec<Case> = vec![
        ("gelu", UnaryOp::GeluErf, Tensor::gelu),
        ("gelu_tanh", UnaryOp::GeluTanh, Tensor::gelu_tanh),
        ("tanh", UnaryOp::Tanh, Tensor::tanh),
        ("sigmoid", UnaryOp::Sigmoid, Tensor::sigmoid),
        ("silu", UnaryOp::Silu, Tensor::silu),
        ("relu", UnaryOp::Relu, Tensor::relu),
        ("relu6", UnaryOp::Relu6, Tensor::relu6),
    ];
    for (name, op, f) in cases {
        let (y, g) = fwd_grad(&e, &x, f);
        assert!(all_finite(&y), "{name}(±100) not finite: {:?}", x.iter().zip(&y).collect::<Vec<_>>());
        assert!(all_finite(&g), "{name}'(±100) not finite: {:?}", x.iter().zip(&g).collect::<Vec<_>>());
        assert_close(&format!("{name} at extremes"), &y, &rew::unary(&xr, op, 0.0, 0.0), 1e-6, 1e-5);
        assert_close(
            &format!("{name}' at extremes"),
            &g,
            &rew::unary_backward(&xr, &ones, op, 0.0, 0.0),
            1e-4,
            1e-3,
        );
    }
    // Saturation is exact where it should be.
    let (y, _) = fwd_grad(&e, &[-100.0, 100.0], Tensor::tanh);
    assert_eq!(y, vec![-1.0, 1.0]);
    let (y, _) = fwd_grad(&e, &[-100.0, 100.0], Tensor::sigmoid);
    assert_eq!(y[1], 1.0);
    let (y, _) = fwd_grad(&e, &[-100.0, 100.0], Tensor::gelu);
    assert_eq!(y[1], 100.0);
}

#[test]
fn exp_underflows_to_zero_and_overflows_to_inf_like_the_reference() {
    let Some((_g, e)) = gpu("exp_underflows_to_zero_and_overflows_to_inf_like_the_reference") else { return };
    let x = [-1e4f32, -200.0, -110.0, -100.0, -80.0, 0.0, 80.0, 88.0, 88.7, 89.0, 100.0, 1e4];
    let (y, g) = fwd_grad(&e, &x, Tensor::exp);
    for (i, &xi) in x.iter().enumerate() {
        let want = (xi as f64).exp() as f32;
        if want.is_infinite() {
            assert_eq!(y[i], f32::INFINITY, "exp({xi}) must overflow to +inf (f64 -> f32 gives {want})");
            assert_eq!(g[i], f32::INFINITY, "exp'({xi}) must overflow to +inf");
        } else if want < f32::MIN_POSITIVE {
            // Subnormal results (exp(-100) ≈ 3.7e-44): a device may flush them to zero.
            assert!(y[i].is_finite() && y[i] >= 0.0 && y[i] <= f32::MIN_POSITIVE, "exp({xi}) = {:e}", y[i]);
        } else {
            let rel = ((y[i] as f64) - want as f64).abs() / want as f64;
            assert!(rel <= 1e-5, "exp({xi}) = {:e}, want {want:e} (rel {rel:e})", y[i]);
        }
    }
    assert!(y[0] == 0.0 && y[1] == 0.0 && y[2] == 0.0, "exp of very negative x is 0: {:?}", &y[..3]);
    // The detector sees the overflow: exp(89), exp(100), exp(1e4) (exp(88.7) = 3.3e38 is finite).
    let t = Tensor::from_slice(&e, &x, &[x.len()]).unwrap().exp().unwrap();
    assert_eq!(count_nonfinite(&t).unwrap(), NonFinite { nan: 0, inf: 3 });
}

// ------------------------------------------------------------------ N3

/// Expected counts on the host, from the bits.
fn host_counts(bits: &[u32]) -> NonFinite {
    let mut c = NonFinite::default();
    for &b in bits {
        let v = f32::from_bits(b);
        if v.is_nan() {
            c.nan += 1;
        } else if v.is_infinite() {
            c.inf += 1;
        }
    }
    c
}

/// Upload raw bit patterns (payloads preserved: no float arithmetic touches them) and count.
fn device_counts(e: &Engine, bits: &[u32]) -> NonFinite {
    let vals: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
    let t = Tensor::from_slice(e, &vals, &[vals.len()]).unwrap();
    count_nonfinite(&t).unwrap()
}

#[test]
fn nonfinite_detector_catches_every_nan_and_inf_bit_pattern() {
    let Some((_g, e)) = gpu("nonfinite_detector_catches_every_nan_and_inf_bit_pattern") else { return };
    // Hand-picked: quiet and signalling NaNs, both signs, smallest and largest payloads, ±inf.
    let named: [(u32, &str); 12] = [
        (0x7fc0_0000, "qNaN"),
        (0xffc0_0000, "-qNaN"),
        (0x7f80_0001, "sNaN, smallest payload"),
        (0xff80_0001, "-sNaN, smallest payload"),
        (0x7fbf_ffff, "sNaN, largest payload"),
        (0x7fff_ffff, "qNaN, all payload bits"),
        (0xffff_ffff, "-qNaN, all bits"),
        (0x7fa5_a5a5, "sNaN, mixed payload"),
        (0xffc0_0001, "-qNaN, payload 1"),
        (f32::NAN.to_bits(), "f32::NAN"),
        (0x7f80_0000, "+inf"),
        (0xff80_0000, "-inf"),
    ];
    for (b, what) in named {
        let got = device_counts(&e, &[b]);
        assert_eq!(got, host_counts(&[b]), "{what} ({b:#010x}) counted as {got:?}");
        assert!(got.any(), "{what} ({b:#010x}) missed");
    }
    // Exhaustive: every pattern with the exponent all ones, both signs (2^24 patterns: 2^24 - 2
    // NaNs and 2 infinities), in chunks past 65,535 workgroups each.
    let chunk = 1usize << 22;
    let mut total = NonFinite::default();
    for sign in [0u32, 0x8000_0000] {
        for start in (0..1u32 << 23).step_by(chunk) {
            let bits: Vec<u32> = (start..start + chunk as u32).map(|m| sign | 0x7f80_0000 | m).collect();
            let got = device_counts(&e, &bits);
            assert_eq!(got, host_counts(&bits), "exponent-0xff patterns {sign:#x} from mantissa {start:#x}");
            total.nan += got.nan;
            total.inf += got.inf;
        }
    }
    assert_eq!(total, NonFinite { nan: (1 << 24) - 2, inf: 2 }, "100% detection");
}

#[test]
fn nonfinite_detector_has_no_false_positives() {
    let Some((_g, e)) = gpu("nonfinite_detector_has_no_false_positives") else { return };
    let named: [(f32, &str); 14] = [
        (0.0, "0"),
        (-0.0, "-0"),
        (f32::from_bits(1), "smallest subnormal"),
        (f32::from_bits(0x8000_0001), "-smallest subnormal"),
        (f32::from_bits(0x007f_ffff), "largest subnormal"),
        (f32::from_bits(0x807f_ffff), "-largest subnormal"),
        (f32::MIN_POSITIVE, "smallest normal"),
        (f32::MAX, "f32::MAX"),
        (f32::MIN, "f32::MIN"),
        (f32::from_bits(0x7f7f_fffe), "MAX - 1 ulp"),
        (1.0, "1"),
        (-1.0, "-1"),
        (f32::EPSILON, "epsilon"),
        (3.4e38, "3.4e38"),
    ];
    let vals: Vec<f32> = named.iter().map(|v| v.0).collect();
    let t = Tensor::from_slice(&e, &vals, &[vals.len()]).unwrap();
    assert_eq!(count_nonfinite(&t).unwrap(), NonFinite::default(), "false positive among {named:?}");
    // Every subnormal, both signs (2^24 patterns, exponent 0), and the top binade below inf.
    let chunk = 1u32 << 22;
    for base in [0u32, 0x8000_0000, 0x7f00_0000, 0xff00_0000] {
        for start in (0..1u32 << 23).step_by(chunk as usize) {
            let bits: Vec<u32> = (start..start + chunk).map(|m| base | m).collect();
            assert_eq!(
                device_counts(&e, &bits),
                NonFinite::default(),
                "finite patterns {base:#x} + {start:#x}"
            );
        }
    }
    // Random patterns of every kind, counts exact against the host.
    let mut r = ChaCha8Rng::seed_from_u64(300);
    let bits: Vec<u32> = (0..1_000_000).map(|_| r.random::<u32>()).collect();
    let want = host_counts(&bits);
    assert!(want.nan > 1000, "the sample holds NaNs too");
    assert_eq!(device_counts(&e, &bits), want);
    // Empty tensors count nothing.
    let t = Tensor::from_slice(&e, &[], &[0]).unwrap();
    assert_eq!(count_nonfinite(&t).unwrap(), NonFinite::default());
    // A NaN produced on the device (0 * inf via exp overflow) is counted like an uploaded one.
    let t = Tensor::from_slice(&e, &[100.0, 1.0], &[2]).unwrap().exp().unwrap();
    let nan = t.mul(&Tensor::from_slice(&e, &[0.0, 1.0], &[2]).unwrap()).unwrap();
    let c = count_nonfinite(&nan).unwrap();
    assert_eq!(c.nan + c.inf, 1, "{c:?}");
}

// ------------------------------------------------------------------ N2: attention

/// Output and (q, k, v) gradients of `sum(attention(q, k, v) * w)`.
fn attention_run(
    e: &Engine,
    (q, k, v, w): (&[f32], &[f32], &[f32], &[f32]),
    (qs, ks): ([usize; 4], [usize; 4]),
    causal: bool,
    mask: Option<&[f32]>,
    kern: AttentionKernel,
) -> (Vec<f32>, Vec<Vec<f32>>) {
    let ts = [
        Tensor::param(e, q, &qs).unwrap(),
        Tensor::param(e, k, &ks).unwrap(),
        Tensor::param(e, v, &ks).unwrap(),
    ];
    let m = mask.map(|m| Tensor::from_slice(e, m, &[ks[0], ks[2]]).unwrap());
    let opts = Attention { scale: 1.0, causal, key_padding: m.as_ref(), window: None };
    let o = attention_with(&ts[0], &ts[1], &ts[2], &opts, kern).unwrap();
    let gs = o.mul(&Tensor::from_slice(e, w, &qs).unwrap()).unwrap().sum_all().unwrap().backward().unwrap();
    (o.to_vec().unwrap(), ts.iter().map(|t| gs.get(t).unwrap().to_vec().unwrap()).collect())
}

#[test]
fn attention_rows_with_every_key_masked_are_exactly_zero_with_zero_gradients() {
    let Some((_g, e)) = gpu("attention_rows_with_every_key_masked_are_exactly_zero_with_zero_gradients")
    else {
        return;
    };
    let mut r = ChaCha8Rng::seed_from_u64(310);
    let (b, h, t, d) = (2, 2, 6, 4);
    let (qs, ks) = ([b, h, t, d], [b, h, t, d]);
    let n = b * h * t * d;
    let q: Vec<f32> = (0..n).map(|_| r.random_range(-3.0f32..3.0)).collect();
    let k: Vec<f32> = (0..n).map(|_| r.random_range(-3.0f32..3.0)).collect();
    let v: Vec<f32> = (0..n).map(|_| r.random_range(-3.0f32..3.0)).collect();
    let w = vec![1.0f32; n];
    // Batch 0: every key masked. Batch 1: keys 0 and 1 masked, so with causal masking query
    // rows 0 and 1 see nothing while rows 2.. see keys 2..=i.
    let mask: Vec<f32> = [[0.0; 6], [0.0, 0.0, 1.0, 1.0, 1.0, 1.0]].concat();
    for kern in [AttentionKernel::Composite, AttentionKernel::Flash] {
        let (out, grads) = attention_run(&e, (&q, &k, &v, &w), (qs, ks), true, Some(&mask), kern);
        assert!(all_finite(&out) && grads.iter().all(|g| all_finite(g)), "non-finite: {out:?} {grads:?}");
        let row = |bi: usize, hi: usize, i: usize| ((bi * h + hi) * t + i) * d;
        for hi in 0..h {
            for i in 0..t {
                let dead = i < 2;
                for c in 0..d {
                    // Batch 0 everywhere, batch 1 on rows 0 and 1: output and q-gradient exactly 0.
                    for (bi, zero) in [(0, true), (1, dead)] {
                        if zero {
                            assert_eq!(out[row(bi, hi, i) + c], 0.0, "out b{bi} h{hi} row {i}");
                            assert_eq!(grads[0][row(bi, hi, i) + c], 0.0, "grad q b{bi} h{hi} row {i}");
                        }
                    }
                    // Masked keys get exactly zero k- and v-gradients.
                    for (bi, j) in [(0, i), (1, 0), (1, 1)] {
                        assert_eq!(grads[1][row(bi, hi, j) + c], 0.0, "grad k b{bi} key {j}");
                        assert_eq!(grads[2][row(bi, hi, j) + c], 0.0, "grad v b{bi} key {j}");
                    }
                }
            }
        }
        // The rest agrees with the reference.
        let (qr, kr, vr) =
            (RefTensor::from_f32(&q, &qs), RefTensor::from_f32(&k, &ks), RefTensor::from_f32(&v, &ks));
        let mr = RefTensor::from_f32(&mask, &[b, t]);
        let o = RefAttention { scale: 1.0, causal: true, key_padding: Some(&mr), window: None };
        assert_close("attention, masked rows", &out, &ratt::attention(&qr, &kr, &vr, &o), 1e-5, 1e-4);
        let (gq, gk, gv) = ratt::attention_backward(&qr, &kr, &vr, &o, &RefTensor::full(&qs, 1.0));
        for (name, got, want) in [("q", &grads[0], gq), ("k", &grads[1], gk), ("v", &grads[2], gv)] {
            assert_close(&format!("attention {kern:?}, masked rows, grad {name}"), got, &want, 1e-4, 1e-3);
        }
    }
}

#[test]
fn attention_scores_of_plus_minus_1e4_are_finite_and_right() {
    let Some((_g, e)) = gpu("attention_scores_of_plus_minus_1e4_are_finite_and_right") else { return };
    let mut r = ChaCha8Rng::seed_from_u64(311);
    // Scores q.k are exactly 0 or ±1e4 (f32 exact, ties included): the softmax is (nearly)
    // one-hot or split evenly between tied keys, and nothing overflows.
    let (b, h, t, d) = (1, 2, 8, 4);
    let (qs, ks) = ([b, h, t, d], [b, h, t, d]);
    let n = b * h * t * d;
    let pm = |r: &mut ChaCha8Rng, m: f32| if r.random::<bool>() { m } else { -m };
    let q: Vec<f32> = (0..n).map(|i| if i % d == 0 { pm(&mut r, 50.0) } else { 0.0 }).collect();
    let k: Vec<f32> = (0..n).map(|i| if i % d == 0 { pm(&mut r, 200.0) } else { 0.0 }).collect();
    let v: Vec<f32> = (0..n).map(|_| r.random_range(-2.0f32..2.0)).collect();
    let w: Vec<f32> = (0..n).map(|_| r.random_range(-1.5f32..1.5)).collect();
    let (qr, kr, vr) =
        (RefTensor::from_f32(&q, &qs), RefTensor::from_f32(&k, &ks), RefTensor::from_f32(&v, &ks));
    for (causal, kern) in [false, true]
        .into_iter()
        .flat_map(|c| [AttentionKernel::Composite, AttentionKernel::Flash].map(|k| (c, k)))
    {
        let (out, grads) = attention_run(&e, (&q, &k, &v, &w), (qs, ks), causal, None, kern);
        assert!(all_finite(&out) && grads.iter().all(|g| all_finite(g)), "±1e4 causal={causal}");
        let o = RefAttention { scale: 1.0, causal, key_padding: None, window: None };
        assert_close("attention(±1e4)", &out, &ratt::attention(&qr, &kr, &vr, &o), 1e-5, 1e-4);
        let (gq, gk, gv) = ratt::attention_backward(&qr, &kr, &vr, &o, &RefTensor::from_f32(&w, &qs));
        for (name, got, want) in [("q", &grads[0], gq), ("k", &grads[1], gk), ("v", &grads[2], gv)] {
            assert_close(&format!("attention(±1e4) grad {name}"), got, &want, 1e-4, 1e-3);
        }
    }
}
