//! A1: f64 central-difference gradcheck of every differentiable op's CPU reference
//! (`whet::ops::reference`), away from kinks, plus tests that the checker itself fails on wrong
//! gradients. Needs no GPU. The GPU ops are then checked against these references in
//! `tests/ops_vs_reference.rs`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use whet::ops::elementwise::{BinaryOp, UnaryOp};
use whet::ops::loss::CrossEntropy;
use whet::ops::reference::gradcheck::{gradcheck, gradcheck_with, upstream, Tolerance};
use whet::ops::reference::{
    dropout as rdrop, elementwise as rew, embedding as remb, layout as rlay, loss as rloss, matmul as rmm,
    norm as rnorm, reduce as rred, softmax as rsm, RefTensor,
};

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

fn uniform(r: &mut ChaCha8Rng, shape: &[usize], lo: f64, hi: f64) -> RefTensor {
    let n = shape.iter().product();
    RefTensor::new((0..n).map(|_| r.random_range(lo..hi)).collect(), shape)
}

/// Uniform in [lo, hi) but at least `gap` away from every point in `kinks`.
fn away(r: &mut ChaCha8Rng, shape: &[usize], lo: f64, hi: f64, kinks: &[f64], gap: f64) -> RefTensor {
    let n = shape.iter().product();
    let data = (0..n)
        .map(|_| loop {
            let v = r.random_range(lo..hi);
            if kinks.iter().all(|k| (v - k).abs() > gap) {
                break v;
            }
        })
        .collect();
    RefTensor::new(data, shape)
}

/// Panic with the checker's message, naming the case.
fn check<F, B>(what: &str, forward: F, backward: B, inputs: &[RefTensor])
where
    F: Fn(&[RefTensor]) -> RefTensor,
    B: Fn(&[RefTensor], &RefTensor) -> Vec<Option<RefTensor>>,
{
    let shapes: Vec<_> = inputs.iter().map(|t| t.shape.clone()).collect();
    match gradcheck(forward, backward, inputs) {
        Ok(rep) => {
            assert!(rep.checked > 0 || inputs.iter().all(|t| t.numel() == 0), "{what}: nothing checked")
        }
        Err(e) => panic!("{what} {shapes:?}: {e}"),
    }
}

// ---------------------------------------------------------------- elementwise

/// (op, alpha, beta, domain lo, hi, kinks to avoid)
fn unary_cases() -> Vec<(UnaryOp, f64, f64, f64, f64, Vec<f64>)> {
    use UnaryOp::*;
    vec![
        (Neg, 0.0, 0.0, -3.0, 3.0, vec![]),
        (Exp, 0.0, 0.0, -4.0, 4.0, vec![]),
        (Log, 0.0, 0.0, 0.2, 4.0, vec![]),
        (Sqrt, 0.0, 0.0, 0.2, 4.0, vec![]),
        (Rsqrt, 0.0, 0.0, 0.2, 4.0, vec![]),
        (Relu, 0.0, 0.0, -3.0, 3.0, vec![0.0]),
        (GeluErf, 0.0, 0.0, -6.0, 6.0, vec![]),
        (GeluTanh, 0.0, 0.0, -6.0, 6.0, vec![]),
        (Silu, 0.0, 0.0, -8.0, 8.0, vec![]),
        (Sigmoid, 0.0, 0.0, -8.0, 8.0, vec![]),
        (Tanh, 0.0, 0.0, -3.0, 3.0, vec![]),
        (Pow, 2.0, 0.0, -2.0, 2.0, vec![]),
        (Pow, 3.0, 0.0, -2.0, 2.0, vec![]),
        (Pow, -2.0, 0.0, -2.0, 2.0, vec![0.0]),
        (Pow, 0.5, 0.0, 0.2, 3.0, vec![]),
        (Pow, -1.5, 0.0, 0.2, 3.0, vec![]),
        (Pow, 1.7, 0.0, 0.2, 3.0, vec![]),
        (Affine, 1.7, -0.3, -3.0, 3.0, vec![]),
        (Affine, -0.25, 2.0, -3.0, 3.0, vec![]),
        (Relu6, 0.0, 0.0, -2.0, 8.0, vec![0.0, 6.0]),
        (Abs, 0.0, 0.0, -3.0, 3.0, vec![0.0]),
    ]
}

#[test]
fn unary_ops() {
    let mut r = rng(1);
    let cases = unary_cases();
    // Every op in the enum is covered.
    for op in UnaryOp::ALL {
        assert!(cases.iter().any(|c| c.0 == op), "{} has no gradcheck case", op.name());
    }
    for (op, alpha, beta, lo, hi, kinks) in cases {
        for shape in [vec![1], vec![7], vec![3, 5]] {
            let x = away(&mut r, &shape, lo, hi, &kinks, 1e-2);
            check(
                &format!("{}(alpha={alpha}, beta={beta})", op.name()),
                |xs| rew::unary(&xs[0], op, alpha, beta),
                |xs, g| vec![Some(rew::unary_backward(&xs[0], g, op, alpha, beta))],
                &[x],
            );
        }
    }
}

#[test]
fn gelu_tails_and_erf() {
    // Far tails, where 1 + erf(x/√2) cancels: the reference uses erfc there.
    let x = RefTensor::new(vec![-12.0, -9.0, -7.5, -5.0, 5.0, 7.5, 9.0, 12.0], &[8]);
    for op in [UnaryOp::GeluErf, UnaryOp::GeluTanh] {
        check(
            op.name(),
            |xs| rew::unary(&xs[0], op, 0.0, 0.0),
            |xs, g| vec![Some(rew::unary_backward(&xs[0], g, op, 0.0, 0.0))],
            std::slice::from_ref(&x),
        );
    }
    // erf / erfc against published values (Abramowitz & Stegun, 16+ digits).
    let known = [
        (0.0, 0.0),
        (0.1, 0.1124629160182849),
        (0.5, 0.5204998778130465),
        (1.0, 0.8427007929497149),
        (2.0, 0.9953222650189527),
        (2.9, 0.9999589021219005),
        (3.5, 0.9999992569016276),
    ];
    for (x, want) in known {
        let got = rew::erf(x);
        assert!((got - want).abs() <= 2e-16 + 2e-15 * want, "erf({x}) = {got:e}, want {want:e}");
        assert!((rew::erf(-x) + want).abs() <= 2e-16 + 2e-15 * want, "erf odd at {x}");
    }
    let known_erfc =
        [(3.0, 2.209049699858544e-05), (5.0, 1.537459794428035e-12), (10.0, 2.088487583762545e-45)];
    for (x, want) in known_erfc {
        let got = rew::erfc(x);
        assert!((got - want).abs() <= 1e-13 * want, "erfc({x}) = {got:e}, want {want:e}");
    }
    // gelu(x) = x Φ(x): Φ(-3) = 0.0013498980316301.
    let g = rew::unary_scalar(UnaryOp::GeluErf, -3.0, 0.0, 0.0);
    assert!((g - -3.0 * 0.0013498980316301035).abs() < 1e-15, "gelu(-3) = {g}");
}

#[test]
fn binary_ops_with_broadcasting() {
    let mut r = rng(2);
    let pairs: &[(&[usize], &[usize])] = &[
        (&[7], &[7]),
        (&[2, 3], &[3]),
        (&[3, 1, 4], &[2, 1]),
        (&[1, 5], &[4, 1]),
        (&[], &[2, 3]),
        (&[2, 3], &[]),
        (&[1], &[5]),
    ];
    for op in BinaryOp::ALL {
        for (sa, sb) in pairs {
            let a = uniform(&mut r, sa, -2.0, 2.0);
            // Divisors well away from 0.
            let b = if op == BinaryOp::Div {
                away(&mut r, sb, -2.0, 2.0, &[0.0], 0.5)
            } else {
                uniform(&mut r, sb, -2.0, 2.0)
            };
            check(
                op.name(),
                |xs| rew::binary(&xs[0], &xs[1], op),
                |xs, g| {
                    let (ga, gb) = rew::binary_backward(&xs[0], &xs[1], g, op);
                    vec![Some(ga), Some(gb)]
                },
                &[a, b],
            );
        }
    }
    // The same operand on both sides (x * x): gradients add up to 2x in the VJP sum.
    let x = uniform(&mut r, &[4], -2.0, 2.0);
    check(
        "x*x",
        |xs| rew::binary(&xs[0], &xs[0], BinaryOp::Mul),
        |xs, g| {
            let (ga, gb) = rew::binary_backward(&xs[0], &xs[0], g, BinaryOp::Mul);
            vec![Some(ga.zip(&gb, |a, b| a + b))]
        },
        &[x],
    );
}

// ---------------------------------------------------------------- reductions

#[test]
fn reductions() {
    let mut r = rng(3);
    for shape in [vec![7], vec![3, 5], vec![2, 3, 4], vec![1, 1], vec![4, 1, 3]] {
        for axis in 0..shape.len() as isize {
            for keepdim in [false, true] {
                for ax in [axis, axis - shape.len() as isize] {
                    let x = uniform(&mut r, &shape, -2.0, 2.0);
                    check(
                        &format!("sum(axis={ax}, keepdim={keepdim})"),
                        |xs| rred::sum(&xs[0], ax, keepdim),
                        |xs, g| vec![Some(rred::sum_backward(&xs[0].shape, ax, g))],
                        std::slice::from_ref(&x),
                    );
                    check(
                        &format!("mean(axis={ax}, keepdim={keepdim})"),
                        |xs| rred::mean(&xs[0], ax, keepdim),
                        |xs, g| vec![Some(rred::mean_backward(&xs[0].shape, ax, g))],
                        std::slice::from_ref(&x),
                    );
                    // Max away from ties: distinct values spaced far beyond eps.
                    let n = x.numel();
                    let mut vals: Vec<f64> = (0..n).map(|i| i as f64 * 0.1).collect();
                    for i in (1..n).rev() {
                        vals.swap(i, r.random_range(0..=i));
                    }
                    let xm = RefTensor::new(vals, &shape);
                    check(
                        &format!("max(axis={ax}, keepdim={keepdim})"),
                        |xs| rred::max(&xs[0], ax, keepdim).0,
                        |xs, g| vec![Some(rred::max_backward(&xs[0], ax, g))],
                        &[xm],
                    );
                }
            }
        }
    }
    for shape in [vec![1], vec![13], vec![2, 3, 2]] {
        let x = uniform(&mut r, &shape, -2.0, 2.0);
        check(
            "sum_all",
            |xs| rred::sum_all(&xs[0]),
            |xs, g| vec![Some(rred::sum_all_backward(&xs[0].shape, g.item()))],
            std::slice::from_ref(&x),
        );
        check(
            "mean_all",
            |xs| rred::mean_all(&xs[0]),
            |xs, g| vec![Some(rred::mean_all_backward(&xs[0].shape, g.item()))],
            &[x],
        );
    }
}

// ---------------------------------------------------------------- matmul

#[test]
fn matmul_all_transposes_batched_and_broadcast() {
    let mut r = rng(4);
    let stored = |m: usize, k: usize, t: bool| if t { vec![k, m] } else { vec![m, k] };
    for (m, k, n) in [(1, 1, 1), (1, 5, 3), (4, 3, 2), (3, 7, 5)] {
        for ta in [false, true] {
            for tb in [false, true] {
                let sa = stored(m, k, ta);
                let sb = stored(k, n, tb);
                let with_batch = |b: &[usize], s: &[usize]| [b, s].concat();
                let cases: Vec<(Vec<usize>, Vec<usize>)> = vec![
                    (sa.clone(), sb.clone()),
                    (with_batch(&[2], &sa), with_batch(&[2], &sb)),
                    (with_batch(&[2, 2], &sa), with_batch(&[2, 2], &sb)),
                    (with_batch(&[3], &sa), sb.clone()),
                    (sa.clone(), with_batch(&[3], &sb)),
                ];
                for (shape_a, shape_b) in cases {
                    let a = uniform(&mut r, &shape_a, -1.5, 1.5);
                    let b = uniform(&mut r, &shape_b, -1.5, 1.5);
                    check(
                        &format!("matmul(ta={ta}, tb={tb})"),
                        |xs| rmm::matmul(&xs[0], &xs[1], ta, tb),
                        |xs, g| {
                            let (ga, gb) = rmm::matmul_backward(&xs[0], &xs[1], ta, tb, g);
                            vec![Some(ga), Some(gb)]
                        },
                        &[a, b],
                    );
                }
            }
        }
    }
}

#[test]
fn matmul_reference_matches_a_hand_computed_product() {
    let a = RefTensor::new(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    let b = RefTensor::new(vec![7.0, 8.0, 9.0, 10.0, 11.0, 12.0], &[3, 2]);
    assert_eq!(rmm::matmul(&a, &b, false, false).data, vec![58.0, 64.0, 139.0, 154.0]);
    // aᵀ stored as (3, 2): same product with ta.
    let at = rlay::transpose(&a, 0, 1);
    assert_eq!(rmm::matmul(&at, &b, true, false).data, vec![58.0, 64.0, 139.0, 154.0]);
    let bt = rlay::transpose(&b, 0, 1);
    assert_eq!(rmm::matmul(&a, &bt, false, true).data, vec![58.0, 64.0, 139.0, 154.0]);
}

// ---------------------------------------------------------------- softmax, norms

#[test]
fn softmax_and_log_softmax() {
    let mut r = rng(5);
    for shape in [vec![1], vec![7], vec![3, 5], vec![2, 2, 4]] {
        let x = uniform(&mut r, &shape, -3.0, 3.0);
        check(
            "softmax",
            |xs| rsm::softmax(&xs[0]),
            |xs, g| vec![Some(rsm::softmax_backward(&xs[0], g))],
            std::slice::from_ref(&x),
        );
        check(
            "log_softmax",
            |xs| rsm::log_softmax(&xs[0]),
            |xs, g| vec![Some(rsm::log_softmax_backward(&xs[0], g))],
            &[x],
        );
    }
    // Rows sum to one, shift invariance.
    let x = RefTensor::new(vec![1234.0, 0.0, -3.0, 2.0], &[2, 2]);
    let y = rsm::softmax(&x);
    assert_eq!(y.data[0], 1.0);
    assert!(y.data[1] < 1e-300);
    assert!((y.data[2] + y.data[3] - 1.0).abs() < 1e-15);
}

#[test]
fn layer_norm_and_rms_norm() {
    let mut r = rng(6);
    for shape in [vec![1, 1], vec![1, 7], vec![3, 5], vec![2, 2, 6]] {
        let c = *shape.last().unwrap();
        let x = uniform(&mut r, &shape, -2.0, 2.0);
        let w = uniform(&mut r, &[c], 0.5, 1.5);
        let b = uniform(&mut r, &[c], -0.5, 0.5);
        for eps in [1e-5, 1e-2] {
            if c > 1 || eps > 1e-3 {
                // A single column with tiny eps has xhat = 0 and rstd = 1/sqrt(eps): fine but
                // ill-conditioned for differences of 1e-6 in x; checked with eps = 1e-2.
                check(
                    &format!("layer_norm(eps={eps})"),
                    |xs| rnorm::layer_norm(&xs[0], &xs[1], &xs[2], eps),
                    |xs, g| {
                        let (gx, gw, gb) = rnorm::layer_norm_backward(&xs[0], &xs[1], eps, g);
                        vec![Some(gx), Some(gw), Some(gb)]
                    },
                    &[x.clone(), w.clone(), b.clone()],
                );
            }
            check(
                &format!("rms_norm(eps={eps})"),
                |xs| rnorm::rms_norm(&xs[0], &xs[1], eps),
                |xs, g| {
                    let (gx, gw) = rnorm::rms_norm_backward(&xs[0], &xs[1], eps, g);
                    vec![Some(gx), Some(gw)]
                },
                &[x.clone(), w.clone()],
            );
        }
    }
    // Biased variance: rows normalise to mean 0, mean square 1 (up to eps).
    let x = RefTensor::new(vec![1.0, 2.0, 3.0, 4.0], &[1, 4]);
    let y = rnorm::layer_norm(&x, &RefTensor::full(&[4], 1.0), &RefTensor::zeros(&[4]), 0.0);
    let ms: f64 = y.data.iter().map(|v| v * v).sum::<f64>() / 4.0;
    assert!((ms - 1.0).abs() < 1e-12 && y.data.iter().sum::<f64>().abs() < 1e-12, "{y:?}");
}

// ---------------------------------------------------------------- embedding, losses

#[test]
fn embedding_table_gradient() {
    let mut r = rng(7);
    let table = uniform(&mut r, &[5, 3], -1.0, 1.0);
    for (ids, shape) in
        [(vec![0u32], vec![1]), (vec![4, 1, 1, 0, 4, 4], vec![2, 3]), (vec![2, 2, 2], vec![3])]
    {
        check(
            "embedding",
            |xs| remb::embedding(&xs[0], &ids, &shape),
            |xs, g| vec![Some(remb::embedding_backward(xs[0].shape[0], xs[0].shape[1], &ids, g))],
            std::slice::from_ref(&table),
        );
    }
}

#[test]
fn cross_entropy_and_mse() {
    let mut r = rng(8);
    let cases = [
        (vec![0u32], 1usize, CrossEntropy::default()),
        (vec![2, 0, 4, 1], 5, CrossEntropy::default()),
        (vec![2, 0, 4, 1], 5, CrossEntropy { ignore_index: Some(0), label_smoothing: 0.0 }),
        (vec![2, 7, 4, 7, 1], 7, CrossEntropy { ignore_index: Some(7), label_smoothing: 0.1 }),
        (vec![3, 3, 3], 4, CrossEntropy { ignore_index: None, label_smoothing: 1.0 }),
        (vec![9, 9], 3, CrossEntropy { ignore_index: Some(9), label_smoothing: 0.2 }),
    ];
    for (targets, c, opts) in cases {
        let logits = uniform(&mut r, &[targets.len(), c], -3.0, 3.0);
        check(
            &format!("cross_entropy({opts:?})"),
            |xs| RefTensor::scalar(rloss::cross_entropy(&xs[0], &targets, opts)),
            |xs, g| vec![Some(rloss::cross_entropy_backward(&xs[0], &targets, opts, g.item()))],
            &[logits],
        );
    }
    // Known value: logits [1, 2, 3], target 0 -> lse - 1 = 2.4076059644443806.
    let l = RefTensor::new(vec![1.0, 2.0, 3.0], &[1, 3]);
    let ce = rloss::cross_entropy(&l, &[0], CrossEntropy::default());
    assert!((ce - 2.4076059644443806).abs() < 1e-14, "{ce}");
    // All rows ignored: loss 0.
    assert_eq!(
        rloss::cross_entropy(&l, &[5], CrossEntropy { ignore_index: Some(5), label_smoothing: 0.0 }),
        0.0
    );

    for shape in [vec![1], vec![7], vec![3, 4]] {
        let a = uniform(&mut r, &shape, -2.0, 2.0);
        let b = uniform(&mut r, &shape, -2.0, 2.0);
        check(
            "mse",
            |xs| RefTensor::scalar(rloss::mse(&xs[0], &xs[1])),
            |xs, g| {
                let (ga, gb) = rloss::mse_backward(&xs[0], &xs[1], g.item());
                vec![Some(ga), Some(gb)]
            },
            &[a, b],
        );
    }
}

// ---------------------------------------------------------------- layout, dropout

#[test]
fn layout_ops() {
    let mut r = rng(9);
    let x = uniform(&mut r, &[2, 3, 4], -1.0, 1.0);
    check(
        "reshape",
        |xs| rlay::reshape(&xs[0], &[4, 6]),
        |xs, g| vec![Some(rlay::reshape_backward(&xs[0].shape, g))],
        std::slice::from_ref(&x),
    );
    for perm in [[0, 1, 2], [2, 0, 1], [1, 2, 0], [2, 1, 0], [0, 2, 1]] {
        check(
            &format!("permute({perm:?})"),
            |xs| rlay::permute(&xs[0], &perm),
            |_, g| vec![Some(rlay::permute_backward(&perm, g))],
            std::slice::from_ref(&x),
        );
    }
    for (a, b) in [(0, 1), (-1, -2), (0, 2)] {
        check(
            "transpose",
            |xs| rlay::transpose(&xs[0], a, b),
            |xs, g| vec![Some(rlay::permute_backward(&rlay::transpose_perm(xs[0].rank(), a, b), g))],
            std::slice::from_ref(&x),
        );
    }
    for (axis, start, len) in [(0, 0, 1), (1, 1, 2), (2, 0, 4), (-1, 3, 1), (1, 2, 0)] {
        check(
            &format!("slice({axis}, {start}, {len})"),
            |xs| rlay::slice(&xs[0], axis, start, len),
            |xs, g| vec![Some(rlay::slice_backward(&xs[0].shape, axis, start, g))],
            std::slice::from_ref(&x),
        );
    }
    let y = uniform(&mut r, &[2, 1, 4], -1.0, 1.0);
    let z = uniform(&mut r, &[2, 2, 4], -1.0, 1.0);
    check(
        "concat",
        |xs| rlay::concat(&[&xs[0], &xs[1], &xs[2]], 1),
        |xs, g| {
            let shapes: Vec<_> = xs.iter().map(|t| t.shape.clone()).collect();
            rlay::concat_backward(&shapes, 1, g).into_iter().map(Some).collect()
        },
        &[x.clone(), y, z],
    );
}

#[test]
fn dropout_is_linear_in_its_input() {
    let mut r = rng(10);
    for (p, seed) in [(0.0f32, 1u64), (0.1, 2), (0.5, 0xdead_beef_0000_0001), (0.9, u64::MAX), (1.0, 3)] {
        let x = uniform(&mut r, &[5, 7], -1.0, 1.0);
        check(
            &format!("dropout(p={p})"),
            |xs| rdrop::dropout(&xs[0], p, seed),
            |_, g| vec![Some(rdrop::dropout_backward(g, p, seed))],
            &[x],
        );
    }
}

#[test]
fn dropout_reference_threshold_matches_the_op_and_drops_about_p() {
    for p in [0.0f32, 1e-9, 0.1, 0.25, 0.5, 0.75, 0.9, 0.999_999_9, 1.0] {
        assert_eq!(rdrop::threshold(p), whet::ops::dropout::threshold(p), "threshold({p})");
    }
    // lowbias32 fixes 0 and is a bijection on a sample (no collisions among 1<<16 inputs).
    assert_eq!(rdrop::lowbias32(0), 0);
    let mut seen: Vec<u32> = (0..1u32 << 16).map(rdrop::lowbias32).collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 1 << 16);
    let n = 200_000;
    for p in [0.1f32, 0.5, 0.9] {
        let kept = rdrop::keep_mask(n, p, 42).iter().filter(|&&k| k).count() as f64 / n as f64;
        // 5 sigma of a binomial proportion.
        let sigma = ((p * (1.0 - p)) as f64 / n as f64).sqrt();
        assert!((kept - (1.0 - p as f64)).abs() < 5.0 * sigma, "p={p}: kept {kept}");
    }
    assert!(rdrop::keep_mask(1000, 1.0, 7).iter().all(|&k| !k));
    assert!(rdrop::keep_mask(1000, 0.0, 7).iter().all(|&k| k));
    // Different seeds give different masks; the high half of the seed matters too.
    assert_ne!(rdrop::keep_mask(256, 0.5, 1), rdrop::keep_mask(256, 0.5, 2));
    assert_ne!(rdrop::keep_mask(256, 0.5, 1), rdrop::keep_mask(256, 0.5, 1 | 1 << 32));
}

// ---------------------------------------------------------------- the checker can fail

#[test]
fn checker_fails_on_a_wrong_derivative() {
    let mut r = rng(11);
    let x = uniform(&mut r, &[9], -3.0, 3.0);
    // sigmoid' written as s instead of s (1 - s).
    let err = gradcheck(
        |xs| rew::unary(&xs[0], UnaryOp::Sigmoid, 0.0, 0.0),
        |xs, g| vec![Some(xs[0].zip(g, |v, gv| gv / (1.0 + (-v).exp())))],
        std::slice::from_ref(&x),
    )
    .expect_err("a wrong sigmoid derivative must fail");
    assert_eq!(err.input, 0);
    assert!(err.failures > 0 && err.ratio > 1.0, "{err}");
    assert!(err.to_string().contains("index"), "{err}");
}

#[test]
fn checker_reports_the_worst_index() {
    let mut r = rng(12);
    let x = uniform(&mut r, &[4, 5], -1.0, 1.0);
    // Correct tanh gradient except one element off by 1%: the checker must name exactly it.
    let bad = 13;
    let err = gradcheck(
        |xs| rew::unary(&xs[0], UnaryOp::Tanh, 0.0, 0.0),
        |xs, g| {
            let mut gx = rew::unary_backward(&xs[0], g, UnaryOp::Tanh, 0.0, 0.0);
            gx.data[bad] *= 1.01;
            vec![Some(gx)]
        },
        &[x],
    )
    .expect_err("a 1% error must fail at rtol 1e-3");
    assert_eq!((err.index, err.coords.clone(), err.failures), (bad, vec![2, 3], 1), "{err}");
}

#[test]
fn checker_catches_a_subtly_wrong_layer_norm_backward() {
    let mut r = rng(13);
    let x = uniform(&mut r, &[3, 6], -2.0, 2.0);
    let w = uniform(&mut r, &[6], 0.5, 1.5);
    let b = uniform(&mut r, &[6], -0.5, 0.5);
    // Forget the variance path (the xhat * mean(gh * xhat) term) of dx: a classic bug.
    let err = gradcheck(
        |xs| rnorm::layer_norm(&xs[0], &xs[1], &xs[2], 1e-5),
        |xs, g| {
            let (gx, gw, gb) = rnorm::layer_norm_backward(&xs[0], &xs[1], 1e-5, g);
            let (gx_mean_only, _, _) = {
                // dx without the variance term: rstd * (gh - mean(gh)).
                let c = 6;
                let mut out = gx.clone();
                for i in 0..3 {
                    let row = &xs[0].data[i * c..(i + 1) * c];
                    let mu = row.iter().sum::<f64>() / c as f64;
                    let var = row.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / c as f64;
                    let rs = 1.0 / (var + 1e-5f64).sqrt();
                    let gh: Vec<f64> = (0..c).map(|j| g.data[i * c + j] * xs[1].data[j]).collect();
                    let m1 = gh.iter().sum::<f64>() / c as f64;
                    for (j, h) in gh.iter().enumerate() {
                        out.data[i * c + j] = rs * (h - m1);
                    }
                }
                (out, (), ())
            };
            vec![Some(gx_mean_only), Some(gw), Some(gb)]
        },
        &[x, w, b],
    )
    .expect_err("dropping the variance term must fail");
    assert_eq!(err.input, 0, "{err}");
}

#[test]
fn checker_rejects_a_gradient_of_the_wrong_shape_and_skips_none() {
    let x = RefTensor::new(vec![0.5, -0.5, 1.0], &[3]);
    let err = gradcheck(
        |xs| rew::unary(&xs[0], UnaryOp::Exp, 0.0, 0.0),
        |_, _| vec![Some(RefTensor::zeros(&[1, 3]))],
        std::slice::from_ref(&x),
    )
    .expect_err("wrong shape");
    assert!(err.note.is_some(), "{err}");
    // An input marked non-differentiable (None) is skipped, not failed.
    let rep = gradcheck(
        |xs| rew::binary(&xs[0], &xs[1], BinaryOp::Mul),
        |xs, g| vec![Some(rew::binary_backward(&xs[0], &xs[1], g, BinaryOp::Mul).0), None],
        &[x.clone(), x.clone()],
    )
    .unwrap();
    assert_eq!(rep.checked, 3);
    // Tolerances are honoured: the same 1% error passes with rtol 2e-2.
    let rep = gradcheck_with(
        |xs| rew::unary(&xs[0], UnaryOp::Exp, 0.0, 0.0),
        |xs, g| vec![Some(rew::unary_backward(&xs[0], g, UnaryOp::Exp, 0.0, 0.0).map(|v| v * 1.01))],
        &[x],
        Tolerance { rtol: 2e-2, ..Tolerance::default() },
    )
    .unwrap();
    assert!(rep.worst_ratio > 0.4 && rep.worst_ratio <= 1.0, "{rep:?}");
    // The upstream weighting is deterministic and never near zero.
    let w = upstream(&[100], 9);
    assert_eq!(w, upstream(&[100], 9));
    assert!(w.data.iter().all(|v| v.abs() >= 0.5 && v.abs() < 1.5));
}
