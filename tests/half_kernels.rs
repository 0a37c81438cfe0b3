//! f16 activations (`DType::F16`, the half variants of kernels written over `act`) against the
//! CPU: a half kernel loads f16, computes in f32 and rounds once on the store, so its output
//! must equal the f32 kernel's output on the same (f16-rounded) inputs, rounded to f16 on the
//! host, bit for bit. Sizes are awkward: one element, odd counts (the last word half used),
//! tails that are and are not multiples of 4, and broadcasts over a middle dimension.

mod common;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use whet::ops::elementwise::{binary, unary, BinaryOp, UnaryOp};
use whet::tensor::DType;
use whet::{Engine, Tensor};

fn gpu(test: &str) -> Option<(std::sync::MutexGuard<'static, ()>, Engine)> {
    let (g, e) = common::gpu("half_kernels", test)?;
    if !e.has_f16() {
        eprintln!("!!!!!!!! {test}: ADAPTER WITHOUT SHADER_F16, F16 CHECKS SKIPPED !!!!!!!!");
        return None;
    }
    Some((g, e))
}

fn round16(v: f32) -> f32 {
    half::f16::from_f32(v).to_f32()
}

/// Values in [-3, 3], already representable in f16.
fn random16(n: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..n).map(|_| round16(rng.random_range(-3.0f32..3.0))).collect()
}

/// Bitwise comparison that treats every NaN alike.
fn assert_bits(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()), "{what}[{i}]: {g} vs {w}");
    }
}

#[test]
fn casts_round_to_nearest_even_and_overflow_to_infinity() {
    let Some((_g, e)) = gpu("casts_round_to_nearest_even_and_overflow_to_infinity") else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for n in [1usize, 3, 1001] {
        let mut v: Vec<f32> = (0..n).map(|_| rng.random_range(-70000.0f32..70000.0)).collect();
        // Ties, subnormals, the largest finite half and just past it.
        let specials = [1.0 + 1.0 / 2048.0, 3.0e-7, -6.0e-8, 65504.0, 65520.0, -1.0e6, 0.0, -0.0];
        for (i, s) in specials.iter().enumerate().take(n) {
            v[i] = *s;
        }
        let x = Tensor::from_slice(&e, &v, &[n]).unwrap();
        let h = x.to_dtype(DType::F16).unwrap();
        assert_eq!(h.dtype(), DType::F16);
        assert_eq!(h.nbytes(), (n as u64 * 2).next_multiple_of(4));
        let want: Vec<f32> = v.iter().map(|&a| round16(a)).collect();
        assert_bits(&h.to_vec().unwrap(), &want, &format!("f32 -> f16, n = {n}"));
        let back = h.to_dtype(DType::F32).unwrap();
        assert_eq!(back.dtype(), DType::F32);
        assert_bits(&back.to_vec().unwrap(), &want, &format!("f16 -> f32, n = {n}"));
    }
}

#[test]
fn unary_ops_in_f16_equal_the_f32_kernels_rounded() {
    let Some((_g, e)) = gpu("unary_ops_in_f16_equal_the_f32_kernels_rounded") else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for n in [1usize, 7, 777] {
        let v = random16(n, &mut rng);
        let gv = random16(n, &mut rng);
        for op in UnaryOp::ALL {
            let (alpha, beta) = if op == UnaryOp::Pow { (2.0, 0.0) } else { (0.75, 0.5) };
            let x32 = Tensor::from_slice(&e, &v, &[n]).unwrap().requires_grad_(true);
            let x16 = Tensor::from_slice_f16(&e, &v, &[n]).unwrap().requires_grad_(true);
            let y32 = unary(&x32, op, alpha, beta).unwrap();
            let y16 = unary(&x16, op, alpha, beta).unwrap();
            assert_eq!(y16.dtype(), DType::F16);
            let want: Vec<f32> = y32.to_vec().unwrap().iter().map(|&a| round16(a)).collect();
            assert_bits(&y16.to_vec().unwrap(), &want, &format!("{} forward, n = {n}", op.name()));

            // Backward with an f16 upstream gradient: g · f'(x), one rounding.
            let g32 = Tensor::from_slice(&e, &gv, &[n]).unwrap();
            let g16 = Tensor::from_slice_f16(&e, &gv, &[n]).unwrap();
            let d32 = y32.mul(&g32).unwrap().sum_all().unwrap().backward().unwrap();
            let d16 =
                y16.mul(&g16).unwrap().to_dtype(DType::F32).unwrap().sum_all().unwrap().backward().unwrap();
            let dx16 = d16.get(&x16).unwrap();
            assert_eq!(dx16.dtype(), DType::F16, "the gradient of an f16 tensor is f16");
            // The f16 path rounds g·y's gradient (g) once more only where g is not exact; here
            // g is f16 already, so the one rounding is the backward kernel's store.
            let want: Vec<f32> =
                d32.get(&x32).unwrap().to_vec().unwrap().iter().map(|&a| round16(a)).collect();
            let got = dx16.to_vec().unwrap();
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                let tol = 2.0 * f32::EPSILON.max(b.abs() * 1e-3);
                assert!(
                    a == b || (a - b).abs() <= tol || (a.is_nan() && b.is_nan()),
                    "{} backward[{i}]: {a} vs {b}",
                    op.name()
                );
            }
        }
    }
}

#[test]
fn binary_ops_in_f16_equal_the_f32_kernels_rounded_for_every_broadcast() {
    let Some((_g, e)) = gpu("binary_ops_in_f16_equal_the_f32_kernels_rounded") else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    // same shape, a tail of 4k (vec4 rows), an odd tail, a middle broadcast, a scalar.
    let cases: [(&[usize], &[usize]); 5] =
        [(&[5, 9], &[5, 9]), (&[3, 12], &[12]), (&[7, 5], &[5]), (&[4, 3, 6], &[4, 1, 6]), (&[11], &[1])];
    for (sa, sb) in cases {
        let na: usize = sa.iter().product();
        let nb: usize = sb.iter().product();
        let (va, vb) = (random16(na, &mut rng), random16(nb, &mut rng));
        // Keep divisors away from zero.
        let vb: Vec<f32> = vb.iter().map(|&b| if b.abs() < 0.25 { round16(b + 1.0) } else { b }).collect();
        for op in BinaryOp::ALL {
            let a32 = Tensor::from_slice(&e, &va, sa).unwrap();
            let b32 = Tensor::from_slice(&e, &vb, sb).unwrap();
            let a16 = Tensor::from_slice_f16(&e, &va, sa).unwrap();
            let b16 = Tensor::from_slice_f16(&e, &vb, sb).unwrap();
            let want: Vec<f32> =
                binary(&a32, &b32, op).unwrap().to_vec().unwrap().iter().map(|&v| round16(v)).collect();
            let got = binary(&a16, &b16, op).unwrap();
            assert_eq!(got.dtype(), DType::F16);
            assert_bits(&got.to_vec().unwrap(), &want, &format!("{} {sa:?} {sb:?}", op.name()));
        }
    }
}

#[test]
fn mixing_f16_and_f32_operands_is_a_typed_error() {
    let Some((_g, e)) = gpu("mixing_f16_and_f32_operands_is_a_typed_error") else { return };
    let a = Tensor::from_slice(&e, &[1.0, 2.0], &[2]).unwrap();
    let b = Tensor::from_slice_f16(&e, &[1.0, 2.0], &[2]).unwrap();
    let err = a.add(&b).unwrap_err().to_string();
    assert!(err.contains("f16") && err.contains("f32") && err.contains("add"), "{err}");
}

#[test]
fn gradients_cross_casts_in_the_dtype_of_each_side() {
    let Some((_g, e)) = gpu("gradients_cross_casts_in_the_dtype_of_each_side") else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let v = random16(300, &mut rng);
    // An f32 master weight used through an f16 copy: its gradient comes back as f32.
    let w = Tensor::from_slice(&e, &v, &[300]).unwrap().requires_grad_(true);
    let y = w.to_dtype(DType::F16).unwrap().silu().unwrap().mul_scalar(0.5).unwrap();
    let grads = y.to_dtype(DType::F32).unwrap().sum_all().unwrap().backward().unwrap();
    let gw = grads.get(&w).unwrap();
    assert_eq!(gw.dtype(), DType::F32);
    let w32 = Tensor::from_slice(&e, &v, &[300]).unwrap().requires_grad_(true);
    let want = w32.silu().unwrap().mul_scalar(0.5).unwrap().sum_all().unwrap().backward().unwrap();
    let want = want.get(&w32).unwrap().to_vec().unwrap();
    for (i, (a, b)) in gw.to_vec().unwrap().iter().zip(&want).enumerate() {
        // Two f16 roundings (the scaled gradient, then silu's backward).
        assert!((a - b).abs() <= 2e-3 * b.abs().max(1e-2), "[{i}] {a} vs {b}");
    }
}

/// Runs `op` on f32 tensors and on f16 tensors of the same (f16-exact) values, then the
/// backward with the same upstream gradient; the f16 outputs and input gradients must match
/// the f32 ones within `rtol` of each tensor's largest magnitude (f16 keeps 11 bits; the half
/// path rounds each stored intermediate once).
fn matches_f32<F>(e: &Engine, shapes: &[&[usize]], rtol: f32, what: &str, op: F)
where
    F: Fn(&[Tensor]) -> whet::Result<Tensor>,
{
    let mut rng = ChaCha8Rng::seed_from_u64(what.len() as u64);
    let values: Vec<Vec<f32>> = shapes.iter().map(|s| random16(s.iter().product(), &mut rng)).collect();
    let run = |half: bool| {
        let ins: Vec<Tensor> = values
            .iter()
            .zip(shapes)
            .map(|(v, s)| {
                let t = if half { Tensor::from_slice_f16(e, v, s) } else { Tensor::from_slice(e, v, s) };
                t.unwrap().requires_grad_(true)
            })
            .collect();
        let y = op(&ins).unwrap();
        assert_eq!(y.dtype(), if half { DType::F16 } else { DType::F32 }, "{what}: output dtype");
        let up = random16(y.numel(), &mut ChaCha8Rng::seed_from_u64(99));
        let up = if half {
            Tensor::from_slice_f16(e, &up, y.shape())
        } else {
            Tensor::from_slice(e, &up, y.shape())
        };
        let loss = y.mul(&up.unwrap()).unwrap().to_dtype(DType::F32).unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        let mut outs = vec![y.to_vec().unwrap()];
        for t in &ins {
            let g = grads.get(t).unwrap_or_else(|| panic!("{what}: no gradient"));
            assert_eq!(g.dtype(), t.dtype(), "{what}: gradient dtype");
            outs.push(g.to_vec().unwrap());
        }
        outs
    };
    let (want, got) = (run(false), run(true));
    for (i, (w, g)) in want.iter().zip(&got).enumerate() {
        let scale = w.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
        let worst = w.iter().zip(g).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        let which = if i == 0 { "output".to_string() } else { format!("gradient {}", i - 1) };
        assert!(worst <= rtol * scale, "{what} {which}: max |Δ| {worst} vs scale {scale}");
    }
}

#[test]
fn norms_rope_layout_and_attention_in_f16_match_f32() {
    let Some((_g, e)) = gpu("norms_rope_layout_and_attention_in_f16_match_f32") else { return };
    use whet::ops::attention::{attention_with, Attention, AttentionKernel};
    use whet::ops::norm::rms_norm;
    use whet::ops::rope::{rope, RopeTable};
    let w = Tensor::from_slice(&e, &random16(37, &mut ChaCha8Rng::seed_from_u64(5)), &[37]).unwrap();
    matches_f32(&e, &[&[6, 37]], 4e-3, "rms_norm", |x| rms_norm(&x[0], &w, 1e-6));
    let b = Tensor::from_slice(&e, &random16(37, &mut ChaCha8Rng::seed_from_u64(7)), &[37]).unwrap();
    matches_f32(&e, &[&[6, 37]], 4e-3, "layer_norm", |x| whet::ops::norm::layer_norm(&x[0], &w, &b, 1e-5));
    // The same seed keeps the same elements in either dtype.
    matches_f32(&e, &[&[5, 33]], 2e-3, "dropout", |x| whet::ops::dropout::dropout(&x[0], 0.3, 17));
    let table = RopeTable::new(&e, 8, 16, 10000.0).unwrap();
    matches_f32(&e, &[&[2, 3, 5, 8]], 4e-3, "rope", |x| rope(&x[0], &table, 2));
    // Permutes with and without the 16-byte row kernel, and a slice.
    matches_f32(&e, &[&[2, 5, 3, 8]], 0.0, "permute rows", |x| x[0].permute(&[0, 2, 1, 3]));
    matches_f32(&e, &[&[2, 5, 3, 6]], 0.0, "permute any", |x| x[0].permute(&[3, 1, 0, 2]));
    matches_f32(&e, &[&[7, 5]], 0.0, "slice", |x| x[0].slice(0, 2, 4));
    for (kernel, name) in [(AttentionKernel::Composite, "composite"), (AttentionKernel::Flash, "flash")] {
        for causal in [false, true] {
            let opts = Attention { scale: 0.35, causal, key_padding: None, window: None };
            let what = format!("attention {name} causal {causal}");
            matches_f32(&e, &[&[2, 4, 5, 8], &[2, 2, 5, 8], &[2, 2, 5, 8]], 1e-2, &what, |x| {
                attention_with(&x[0], &x[1], &x[2], &opts, kernel)
            });
        }
    }
}

#[test]
fn products_and_the_loss_in_f16_match_f32() {
    let Some((_g, e)) = gpu("products_and_the_loss_in_f16_match_f32") else { return };
    use whet::ops::linear::linear;
    use whet::ops::loss::{cross_entropy, CrossEntropy};
    use whet::tensor::QuantType;
    // Awkward sizes for the generic kernel, both transposes.
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let (a, b): (&[usize], &[usize]) = match (ta, tb) {
            (false, false) => (&[7, 13], &[13, 5]),
            (true, false) => (&[13, 7], &[13, 5]),
            (false, true) => (&[7, 13], &[5, 13]),
            (true, true) => (&[13, 7], &[5, 13]),
        };
        matches_f32(&e, &[a, b], 5e-3, &format!("matmul ta {ta} tb {tb}"), |x| {
            whet::ops::matmul::matmul_t(&x[0], &x[1], ta, tb)
        });
    }
    // An f32 master weight and bias under an f16 input: the weight's gradient comes back in f32.
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let w32 = Tensor::from_slice(&e, &random16(9 * 24, &mut rng), &[9, 24]).unwrap().requires_grad_(true);
    let b32 = Tensor::from_slice(&e, &random16(9, &mut rng), &[9]).unwrap();
    let y = linear(
        &Tensor::from_slice_f16(&e, &random16(5 * 24, &mut rng), &[5, 24]).unwrap(),
        &w32,
        Some(&b32),
        false,
    )
    .unwrap();
    assert_eq!(y.dtype(), DType::F16);
    let g = y.to_dtype(DType::F32).unwrap().sum_all().unwrap().backward().unwrap();
    assert_eq!(g.get(&w32).unwrap().dtype(), DType::F32);
    // Frozen quantized and 16-bit weights read by f16 activations (forward and input gradient).
    for qt in [QuantType::Q8_0, QuantType::Q4_0, QuantType::F16] {
        let k = 256;
        let vals = random16(12 * k, &mut rng);
        let blocks = whet::weights::quantize::quantize(qt.weight_dtype(), &vals).unwrap();
        let wq = Tensor::from_quantized(&e, qt, &blocks, &[12, k]).unwrap();
        for rows in [1usize, 33] {
            matches_f32(&e, &[&[rows, k]], 5e-3, &format!("linear {} rows {rows}", qt.name()), |x| {
                linear(&x[0], &wq, None, false)
            });
        }
    }
    let targets: Vec<u32> = (0..9).map(|i| (i * 7 % 11) as u32).collect();
    matches_f32(&e, &[&[9, 11]], 5e-3, "cross_entropy", |x| {
        let l = cross_entropy(&x[0], &targets, CrossEntropy { ignore_index: Some(3), label_smoothing: 0.1 })?;
        // The loss is f32 whatever the logits; the harness wants the input's dtype back.
        l.to_dtype(x[0].dtype())
    });
}
