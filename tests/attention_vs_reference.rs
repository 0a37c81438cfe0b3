//! N1 for attention and RoPE: forward AND backward on the GPU against the f64 CPU reference
//! (`whet::ops::reference::attention`, gradchecked in `tests/gradcheck_attention.rs`).
//!
//! Gradients come from `loss.backward()` with `loss = sum(out * w)` for a random upstream `w`.
//! Seeded shapes cover T = 1, 7, 63, 65, 130, D = 16, 32, 64, Tq < Tk with the causal offset
//! (and a KV-cache decode step, Tq = 1), grouped-query heads 4/2 and 9/3, multi-query, padding
//! masks with fully masked rows, and B = 1; causal sliding windows (1, shorter than T, T) with
//! and without the offset.
//!
//! Tolerances, `|got - want| <= atol + rtol |want|`: forward atol 1e-5, rtol 1e-4; gradients
//! atol 1e-4, rtol 1e-3 with atol scaled by the gradient tensor's max |g| clamped to [1e-2, 1]
//! (as in `tests/ops_vs_reference.rs`). RoPE is a 2x2 rotation per pair: 1e-6 / 1e-5.
//!
//! Without an adapter the GPU tests print a loud SKIPPED line and pass.

mod common;

use std::sync::MutexGuard;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use whet::ops::attention::{attention, attention_with, Attention, AttentionKernel};
use whet::ops::reference::attention::{self as ratt, RefAttention};
use whet::ops::reference::{self as rf, RefTensor};
use whet::ops::rope::{rope, RopeTable};
use whet::{Engine, Error, Tensor};

const FWD: (f64, f64) = (1e-5, 1e-4);
const GRAD: (f64, f64) = (1e-4, 1e-3);
const ROPE: (f64, f64) = (1e-6, 1e-5);

fn gpu(test: &str) -> Option<(MutexGuard<'static, ()>, Engine)> {
    common::gpu("attention_vs_reference", test)
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

    fn close(&mut self, what: &str, got: &[f32], want: &RefTensor, tol: (f64, f64)) {
        self.checks += 1;
        if let Err(m) = rf::compare(got, want, tol.0, tol.1) {
            self.fails.push(format!("{what}: {m}"));
        }
    }

    /// A gradient: atol scaled by the gradient's magnitude.
    fn grad(&mut self, what: &str, got: &[f32], want: &RefTensor) {
        self.checks += 1;
        let scale = want.data.iter().fold(0.0f64, |m, v| m.max(v.abs())).clamp(1e-2, 1.0);
        if let Err(m) = rf::compare_with(got, want, |_, v| GRAD.0 * scale + GRAD.1 * v.abs()) {
            self.fails.push(format!("{what}: {m}"));
        }
    }

    fn check(&mut self, what: &str, ok: bool) {
        self.checks += 1;
        if !ok {
            self.fails.push(what.to_string());
        }
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

fn data(r: &mut ChaCha8Rng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| r.random_range(lo..hi)).collect()
}

fn weights(r: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| r.random_range(0.5f32..1.5) * if r.random::<bool>() { 1.0 } else { -1.0 }).collect()
}

/// Padding patterns of a `[B, Tk]` mask.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Pad {
    None,
    /// Trailing padding of a different length per batch (HF right padding).
    Right,
    /// Random keys masked, the first batch fully masked, and the first 3 keys of the others
    /// masked (so with causal the first query rows see nothing).
    Holes,
}

fn pad_mask(r: &mut ChaCha8Rng, pad: Pad, b: usize, tk: usize) -> Option<Vec<f32>> {
    match pad {
        Pad::None => None,
        Pad::Right => Some(
            (0..b)
                .flat_map(|bi| {
                    let len = (tk - (bi * 5) % tk).max(1);
                    (0..tk).map(move |j| if j < len { 1.0 } else { 0.0 })
                })
                .collect(),
        ),
        Pad::Holes => {
            let mut m: Vec<f32> = (0..b * tk).map(|_| if r.random_bool(0.8) { 1.0 } else { 0.0 }).collect();
            m[..tk].fill(0.0);
            for bi in 1..b {
                for j in 0..3.min(tk) {
                    m[bi * tk + j] = 0.0;
                }
            }
            Some(m)
        }
    }
}

/// One case: (B, Hq, Hkv, Tq, Tk, D, causal, padding).
type Case = (usize, usize, usize, usize, usize, usize, bool, Pad);

const CASES: &[Case] = &[
    (1, 1, 1, 1, 1, 16, false, Pad::None),
    (2, 2, 2, 7, 7, 16, true, Pad::None),
    (2, 2, 2, 7, 7, 32, false, Pad::Holes),
    (1, 4, 2, 63, 63, 32, true, Pad::None),
    (2, 4, 2, 63, 63, 16, true, Pad::Holes),
    (2, 9, 3, 65, 65, 64, true, Pad::None),
    (2, 9, 3, 65, 65, 64, false, Pad::Right),
    (1, 2, 1, 130, 130, 32, false, Pad::Right),
    (2, 2, 2, 130, 130, 16, true, Pad::Holes),
    (2, 4, 2, 5, 130, 16, true, Pad::Right), // Tq < Tk: causal offset 125
    (2, 9, 3, 1, 65, 64, true, Pad::None),   // KV-cache decode step
    (3, 3, 1, 7, 63, 32, true, Pad::Holes),  // multi-query, offset 56
    (1, 2, 2, 64, 64, 32, false, Pad::None), // the blocked-matmul path (D, Tk % 4 == 0)
];

#[test]
fn attention_forward_and_backward_match_the_reference() {
    let Some((_g, e)) = gpu("attention_forward_and_backward_match_the_reference") else { return };
    let mut rep = Report::new("attention_forward_and_backward_match_the_reference");
    let mut r = ChaCha8Rng::seed_from_u64(7000);
    for (c, kern) in
        CASES.iter().flat_map(|c| [AttentionKernel::Composite, AttentionKernel::Flash].map(|k| (c, k)))
    {
        check_case(&e, &mut rep, &mut r, c, None, kern);
    }
    rep.finish();
}

/// Causal cases with a sliding window (Mistral's, Qwen2's): windows shorter than the sequence,
/// with a KV-cache offset (Tq < Tk) and a decode step, with padding holes, a window of 1 (each
/// row sees itself) and one as long as the sequence (plain causal).
const WINDOWED: &[(Case, usize)] = &[
    ((2, 2, 2, 7, 7, 16, true, Pad::None), 3),
    ((2, 4, 2, 63, 63, 32, true, Pad::Holes), 10),
    ((2, 4, 2, 5, 130, 16, true, Pad::Right), 40),
    ((2, 9, 3, 1, 65, 64, true, Pad::None), 16),
    ((1, 2, 1, 65, 65, 32, true, Pad::None), 65),
    ((1, 2, 2, 64, 64, 32, true, Pad::None), 1),
];

#[test]
fn sliding_window_attention_matches_the_reference() {
    let Some((_g, e)) = gpu("sliding_window_attention_matches_the_reference") else { return };
    let mut rep = Report::new("sliding_window_attention_matches_the_reference");
    let mut r = ChaCha8Rng::seed_from_u64(7002);
    for ((c, w), kern) in
        WINDOWED.iter().flat_map(|c| [AttentionKernel::Composite, AttentionKernel::Flash].map(|k| (c, k)))
    {
        check_case(&e, &mut rep, &mut r, c, Some(*w), kern);
    }
    // A window needs causal attention, and holds at least one key.
    let t = Tensor::from_slice(&e, &[0.5; 8], &[1, 1, 2, 4]).unwrap();
    for (causal, window) in [(false, Some(2)), (true, Some(0))] {
        let opts = Attention { scale: 1.0, causal, key_padding: None, window };
        let err = attention(&t, &t, &t, &opts).err();
        rep.check(
            &format!("causal={causal} window={window:?} is refused"),
            matches!(err, Some(Error::InvalidArgument { .. })),
        );
    }
    rep.finish();
}

/// One case on one kernel: forward and the three gradients against the f64 reference.
fn check_case(
    e: &Engine,
    rep: &mut Report,
    r: &mut ChaCha8Rng,
    &(b, hq, hkv, tq, tk, d, causal, pad): &Case,
    window: Option<usize>,
    kern: AttentionKernel,
) {
    let (qs, ks) = ([b, hq, tq, d], [b, hkv, tk, d]);
    let q = data(r, qs.iter().product(), -2.0, 2.0);
    let k = data(r, ks.iter().product(), -2.0, 2.0);
    let v = data(r, ks.iter().product(), -2.0, 2.0);
    let w = weights(r, qs.iter().product());
    let m = pad_mask(r, pad, b, tk);
    let scale = 1.0 / (d as f32).sqrt();
    let name = format!(
        "attention {kern:?} B{b} H{hq}/{hkv} Tq{tq} Tk{tk} D{d} causal={causal} {pad:?} window={window:?}"
    );

    let run = || -> whet::Result<(Vec<f32>, [Vec<f32>; 3])> {
        let (qt, kt, vt) =
            (Tensor::param(e, &q, &qs)?, Tensor::param(e, &k, &ks)?, Tensor::param(e, &v, &ks)?);
        let mt = m.as_ref().map(|m| Tensor::from_slice(e, m, &[b, tk])).transpose()?;
        let opts = Attention { scale, causal, key_padding: mt.as_ref(), window };
        let o = attention_with(&qt, &kt, &vt, &opts, kern)?;
        let loss = o.mul(&Tensor::from_slice(e, &w, &qs)?)?.sum_all()?;
        let gs = loss.backward()?;
        let g = |t: &Tensor| gs.get(t).map(|g| g.to_vec()).unwrap_or(Ok(vec![f32::NAN; t.numel()]));
        Ok((o.to_vec()?, [g(&qt)?, g(&kt)?, g(&vt)?]))
    };
    let (out, grads) = match run() {
        Ok(x) => x,
        Err(err) => {
            rep.check(&format!("{name}: error {err}"), false);
            return;
        }
    };
    let mr = m.as_ref().map(|m| RefTensor::from_f32(m, &[b, tk]));
    let o = RefAttention { scale: scale as f64, causal, key_padding: mr.as_ref(), window };
    let (qr, kr, vr) =
        (RefTensor::from_f32(&q, &qs), RefTensor::from_f32(&k, &ks), RefTensor::from_f32(&v, &ks));
    let want = ratt::attention(&qr, &kr, &vr, &o);
    rep.close(&format!("{name} forward"), &out, &want, FWD);
    let (gq, gk, gv) = ratt::attention_backward(&qr, &kr, &vr, &o, &RefTensor::from_f32(&w, &qs));
    rep.grad(&format!("{name} grad q"), &grads[0], &gq);
    rep.grad(&format!("{name} grad k"), &grads[1], &gk);
    rep.grad(&format!("{name} grad v"), &grads[2], &gv);
    rep.check(
        &format!("{name}: non-finite output or gradient"),
        out.iter().chain(grads.iter().flatten()).all(|x| x.is_finite()),
    );
    // Rows that see no key are exactly 0.
    if pad == Pad::Holes {
        let zero_rows = (0..hq).all(|h| out[h * tq * d..(h * tq + tq) * d].iter().all(|&x| x == 0.0));
        rep.check(&format!("{name}: fully masked batch 0 is not exactly 0"), zero_rows);
    }
}

#[test]
fn attention_gradients_for_a_subset_of_inputs_and_determinism() {
    let Some((_g, e)) = gpu("attention_gradients_for_a_subset_of_inputs_and_determinism") else { return };
    let mut rep = Report::new("attention_gradients_for_a_subset_of_inputs_and_determinism");
    let mut r = ChaCha8Rng::seed_from_u64(7001);
    let (qs, ks) = ([2, 4, 9, 16], [2, 2, 9, 16]);
    let q = data(&mut r, 2 * 4 * 9 * 16, -1.0, 1.0);
    let k = data(&mut r, 2 * 2 * 9 * 16, -1.0, 1.0);
    let v = data(&mut r, 2 * 2 * 9 * 16, -1.0, 1.0);
    let opts = Attention { scale: 0.25, causal: true, key_padding: None, window: None };
    let ro = RefAttention { scale: 0.25, causal: true, key_padding: None, window: None };
    let (qr, kr, vr) =
        (RefTensor::from_f32(&q, &qs), RefTensor::from_f32(&k, &ks), RefTensor::from_f32(&v, &ks));
    let (gq, gk, gv) = ratt::attention_backward(&qr, &kr, &vr, &ro, &RefTensor::full(&qs, 1.0));
    for kern in [AttentionKernel::Composite, AttentionKernel::Flash] {
        // Each input alone requiring grad.
        for which in 0..3 {
            let mk = |i: usize, d: &[f32], s: &[usize]| {
                if i == which {
                    Tensor::param(&e, d, s)
                } else {
                    Tensor::from_slice(&e, d, s)
                }
            };
            let ts = [mk(0, &q, &qs).unwrap(), mk(1, &k, &ks).unwrap(), mk(2, &v, &ks).unwrap()];
            let loss = attention_with(&ts[0], &ts[1], &ts[2], &opts, kern).unwrap().sum_all().unwrap();
            let gs = loss.backward().unwrap();
            let got = gs.get(&ts[which]).unwrap().to_vec().unwrap();
            rep.grad(&format!("{kern:?} only input {which}"), &got, [&gq, &gk, &gv][which]);
            rep.check(&format!("{kern:?} only input {which}: one gradient"), gs.len() == 1);
        }
        // Bitwise determinism of forward and backward.
        let once = || {
            let ts = [
                Tensor::param(&e, &q, &qs).unwrap(),
                Tensor::param(&e, &k, &ks).unwrap(),
                Tensor::param(&e, &v, &ks).unwrap(),
            ];
            let o = attention_with(&ts[0], &ts[1], &ts[2], &opts, kern).unwrap();
            let gs = o.sum_all().unwrap().backward().unwrap();
            let mut all = o.to_vec().unwrap();
            for t in &ts {
                all.extend(gs.get(t).unwrap().to_vec().unwrap());
            }
            all.iter().map(|x| x.to_bits()).collect::<Vec<u32>>()
        };
        rep.check(&format!("{kern:?}: two runs differ bitwise"), once() == once());
    }
    // The default is the kernel auto_kernel names (flash at this head dim unless the engine
    // runs the subgroup matmul, where composite is faster).
    let (qt, kt, vt) = (
        Tensor::from_slice(&e, &q, &qs).unwrap(),
        Tensor::from_slice(&e, &k, &ks).unwrap(),
        Tensor::from_slice(&e, &v, &ks).unwrap(),
    );
    let auto = attention(&qt, &kt, &vt, &opts).unwrap().to_vec().unwrap();
    let chosen = whet::ops::attention::auto_kernel(&e, 16);
    assert_ne!(chosen, AttentionKernel::Auto);
    let same = attention_with(&qt, &kt, &vt, &opts, chosen).unwrap().to_vec().unwrap();
    rep.check(&format!("Auto is not the {chosen:?} kernel at D = 16"), auto == same);
    // No grad mode records nothing.
    {
        let _ng = e.no_grad();
        let qt = Tensor::param(&e, &q, &qs).unwrap();
        let kt = Tensor::from_slice(&e, &k, &ks).unwrap();
        let vt = Tensor::from_slice(&e, &v, &ks).unwrap();
        let o = attention(&qt, &kt, &vt, &opts).unwrap();
        rep.check("no_grad recorded a node", whet::graph::count_nodes(&o) == 0);
    }
    rep.finish();
}

#[test]
fn attention_shape_errors_name_the_op() {
    let Some((_g, e)) = gpu("attention_shape_errors_name_the_op") else { return };
    let z = |s: &[usize]| Tensor::zeros(&e, s).unwrap();
    let opts = Attention::new(4);
    let cases: Vec<(&str, whet::Result<Tensor>)> = vec![
        ("rank", attention(&z(&[2, 4, 4]), &z(&[2, 2, 4, 4]), &z(&[2, 2, 4, 4]), &opts)),
        ("heads", attention(&z(&[1, 3, 4, 4]), &z(&[1, 2, 4, 4]), &z(&[1, 2, 4, 4]), &opts)),
        ("head dim", attention(&z(&[1, 2, 4, 4]), &z(&[1, 2, 4, 8]), &z(&[1, 2, 4, 8]), &opts)),
        ("k vs v", attention(&z(&[1, 2, 4, 4]), &z(&[1, 2, 4, 4]), &z(&[1, 2, 5, 4]), &opts)),
        ("batch", attention(&z(&[2, 2, 4, 4]), &z(&[1, 2, 4, 4]), &z(&[1, 2, 4, 4]), &opts)),
        (
            "causal Tq > Tk",
            attention(
                &z(&[1, 2, 5, 4]),
                &z(&[1, 2, 4, 4]),
                &z(&[1, 2, 4, 4]),
                &Attention { causal: true, ..opts },
            ),
        ),
        (
            "mask shape",
            attention(
                &z(&[1, 2, 4, 4]),
                &z(&[1, 2, 4, 4]),
                &z(&[1, 2, 4, 4]),
                &Attention { key_padding: Some(&z(&[1, 5])), ..opts },
            ),
        ),
        ("empty", attention(&z(&[1, 2, 0, 4]), &z(&[1, 2, 4, 4]), &z(&[1, 2, 4, 4]), &opts)),
    ];
    for (what, res) in cases {
        match res {
            Err(Error::Shape { op, .. }) => assert_eq!(op, "attention", "{what}"),
            other => panic!("{what}: expected a shape error from attention, got {other:?}"),
        }
    }
    // The flash kernel's private arrays cap the head dim; the default falls back instead.
    let big = [1, 1, 2, 136];
    let res = attention_with(&z(&big), &z(&big), &z(&big), &Attention::new(136), AttentionKernel::Flash);
    assert!(matches!(res, Err(Error::Shape { op: "attention", .. })), "{res:?}");
    assert!(attention(&z(&big), &z(&big), &z(&big), &Attention::new(136)).is_ok());
    let u = Tensor::from_u32(&e, &[1; 4], &[1, 4]).unwrap();
    let res = attention(
        &z(&[1, 2, 4, 4]),
        &z(&[1, 2, 4, 4]),
        &z(&[1, 2, 4, 4]),
        &Attention { key_padding: Some(&u), ..opts },
    );
    assert!(matches!(res, Err(Error::DType { op: "attention", .. })), "{res:?}");
}

// ------------------------------------------------------------------ RoPE

#[test]
fn rope_forward_and_backward_match_the_reference() {
    let Some((_g, e)) = gpu("rope_forward_and_backward_match_the_reference") else { return };
    let mut rep = Report::new("rope_forward_and_backward_match_the_reference");
    let mut r = ChaCha8Rng::seed_from_u64(7100);
    for (shape, offset, theta, max_pos) in [
        ([1, 1, 1, 2], 0, 10_000.0, 4),
        ([2, 3, 7, 16], 0, 10_000.0, 64),
        ([1, 2, 1, 64], 100, 10_000.0, 128),
        ([2, 2, 65, 32], 5, 100_000.0, 130),
        ([1, 9, 130, 64], 0, 10_000.0, 130),
    ] {
        let n: usize = shape.iter().product();
        let x = data(&mut r, n, -2.0, 2.0);
        let w = weights(&mut r, n);
        let name = format!("rope {shape:?} offset {offset} theta {theta}");
        let table = RopeTable::new(&e, shape[3], max_pos, theta).unwrap();
        let xt = Tensor::param(&e, &x, &shape).unwrap();
        let y = rope(&xt, &table, offset).unwrap();
        let gs = y
            .mul(&Tensor::from_slice(&e, &w, &shape).unwrap())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let half = shape[3] / 2;
        let cos = RefTensor::from_f32(table.cos_host(), &[max_pos, half]);
        let sin = RefTensor::from_f32(table.sin_host(), &[max_pos, half]);
        let xr = RefTensor::from_f32(&x, &shape);
        rep.close(
            &format!("{name} forward"),
            &y.to_vec().unwrap(),
            &ratt::rope(&xr, &cos, &sin, offset),
            ROPE,
        );
        let gw = ratt::rope_backward(&RefTensor::from_f32(&w, &shape), &cos, &sin, offset);
        rep.close(&format!("{name} grad"), &gs.get(&xt).unwrap().to_vec().unwrap(), &gw, ROPE);
    }
    rep.finish();
}

#[test]
fn rope_table_follows_the_f32_angle_and_the_exact_formula_closely() {
    let Some((_g, e)) = gpu("rope_table_follows_the_f32_angle_and_the_exact_formula_closely") else { return };
    let (d, p) = (64, 4096);
    let table = RopeTable::new(&e, d, p, 10_000.0).unwrap();
    let (cos, sin) = ratt::rope_table(d, p, 10_000.0);
    // Against the exact angle: the f32 angle pos * inv_freq is off by up to ~pos * 2^-24 rad.
    for (i, (&c, &s)) in table.cos_host().iter().zip(table.sin_host()).enumerate() {
        let pos = i / (d / 2);
        let tol = 1e-6 + 2.0 * pos as f64 * f32::EPSILON as f64;
        assert!((c as f64 - cos.data[i]).abs() <= tol, "cos at {i}: {c} vs {}", cos.data[i]);
        assert!((s as f64 - sin.data[i]).abs() <= tol, "sin at {i}: {s} vs {}", sin.data[i]);
    }
    // Position 0 is the identity, exactly.
    assert!(table.cos_host()[..d / 2].iter().all(|&c| c == 1.0));
    assert!(table.sin_host()[..d / 2].iter().all(|&s| s == 0.0));
}

#[test]
fn rope_errors_are_typed() {
    let Some((_g, e)) = gpu("rope_errors_are_typed") else { return };
    assert!(matches!(RopeTable::new(&e, 7, 16, 10_000.0), Err(Error::InvalidArgument { op: "rope", .. })));
    assert!(matches!(RopeTable::new(&e, 0, 16, 10_000.0), Err(Error::InvalidArgument { op: "rope", .. })));
    let table = RopeTable::new(&e, 8, 16, 10_000.0).unwrap();
    let x = Tensor::zeros(&e, &[1, 2, 10, 8]).unwrap();
    assert!(rope(&x, &table, 6).is_ok());
    let err = rope(&x, &table, 7).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { op: "rope", .. }), "{err}");
    assert!(err.to_string().contains("16 positions"), "{err}");
    let bad = Tensor::zeros(&e, &[1, 2, 10, 6]).unwrap();
    assert!(matches!(rope(&bad, &table, 0), Err(Error::Shape { op: "rope", .. })));
    let bad_rank = Tensor::zeros(&e, &[2, 10, 8]).unwrap();
    assert!(matches!(rope(&bad_rank, &table, 0), Err(Error::Shape { op: "rope", .. })));
}
