//! f64 central-difference gradchecks of the CNN references (`reference::{conv, pool,
//! batch_norm}`), which `tests/cnn_vs_reference.rs` then holds the GPU ops to. Needs no GPU.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use whet::ops::conv::{Conv2d, Padding};
use whet::ops::reference::gradcheck::gradcheck;
use whet::ops::reference::{batch_norm as rbn, conv as rconv, pool as rpool, RefTensor};

fn uniform(r: &mut ChaCha8Rng, shape: &[usize], lo: f64, hi: f64) -> RefTensor {
    let n = shape.iter().product();
    RefTensor::new((0..n).map(|_| r.random_range(lo..hi)).collect(), shape)
}

fn check<F, B>(what: &str, forward: F, backward: B, inputs: &[RefTensor])
where
    F: Fn(&[RefTensor]) -> RefTensor,
    B: Fn(&[RefTensor], &RefTensor) -> Vec<Option<RefTensor>>,
{
    match gradcheck(forward, backward, inputs) {
        Ok(rep) => assert!(rep.checked > 0, "{what}: nothing checked"),
        Err(e) => panic!("{what}: {e}"),
    }
}

#[test]
fn conv2d_every_configuration() {
    let mut r = ChaCha8Rng::seed_from_u64(401);
    let cfg = |s: usize, p: Padding, d: usize, g: usize| Conv2d {
        stride: (s, s),
        padding: p,
        dilation: (d, d),
        groups: g,
    };
    let sym = Padding::symmetric;
    let cases: Vec<([usize; 4], [usize; 4], Conv2d)> = vec![
        ([2, 3, 6, 5], [4, 3, 3, 3], cfg(1, sym(1, 1), 1, 1)),
        ([1, 2, 7, 7], [3, 2, 3, 3], cfg(2, sym(1, 1), 1, 1)),
        ([1, 2, 7, 7], [2, 2, 3, 3], cfg(1, sym(2, 2), 2, 1)),
        ([2, 4, 5, 5], [4, 2, 3, 3], cfg(1, sym(1, 1), 1, 2)),
        ([1, 3, 6, 6], [6, 1, 3, 3], cfg(2, sym(1, 1), 1, 3)),
        ([1, 2, 7, 6], [3, 2, 3, 3], cfg(2, Padding::Same, 1, 1)),
        ([1, 2, 8, 8], [2, 1, 4, 4], cfg(2, Padding::Same, 1, 2)),
        ([2, 3, 4, 4], [2, 3, 1, 1], cfg(1, sym(0, 0), 1, 1)),
        ([1, 3, 9, 9], [2, 3, 7, 7], cfg(2, sym(3, 3), 1, 1)),
        (
            [1, 2, 5, 7],
            [2, 2, 2, 3],
            cfg(1, Padding::Explicit { top: 1, bottom: 0, left: 2, right: 1 }, 1, 1),
        ),
    ];
    for (xs, ws, c) in cases {
        let x = uniform(&mut r, &xs, -1.0, 1.0);
        let w = uniform(&mut r, &ws, -1.0, 1.0);
        let b = uniform(&mut r, &[ws[0]], -1.0, 1.0);
        check(
            &format!("conv2d x{xs:?} w{ws:?} {c:?}"),
            |t| rconv::conv2d(&t[0], &t[1], Some(&t[2]), &c),
            |t, g| {
                let (gx, gw, gb) = rconv::conv2d_backward(&t[0], &t[1], &c, g);
                vec![Some(gx), Some(gw), Some(gb)]
            },
            &[x, w, b],
        );
    }
    // SAME padding: ceil(H / s) outputs, the odd padding pixel after.
    let x = RefTensor::new((0..7).map(|v| v as f64).collect(), &[1, 1, 1, 7]);
    let w = RefTensor::new(vec![1.0, 1.0], &[1, 1, 1, 2]);
    let y = rconv::conv2d(&x, &w, None, &cfg(2, Padding::Same, 1, 1));
    // out = 4, total pad = (4-1)*2 + 2 - 7 = 1 (after): windows [0,1], [2,3], [4,5], [6,pad].
    assert_eq!(y.data, vec![1.0, 5.0, 9.0, 6.0]);
}

#[test]
fn pooling() {
    let mut r = ChaCha8Rng::seed_from_u64(402);
    let cases = [
        ([2, 2, 7, 7], (3, 3), (2, 2), (1, 1)),
        ([1, 1, 6, 5], (2, 3), (1, 2), (1, 1)),
        ([1, 2, 5, 5], (2, 2), (2, 2), (0, 0)),
    ];
    for (xs, k, s, p) in cases {
        // Distinct values (a permutation) so the max has no ties within eps.
        let n: usize = xs.iter().product();
        let mut vals: Vec<f64> = (0..n).map(|i| i as f64 * 0.1).collect();
        for i in (1..n).rev() {
            vals.swap(i, r.random_range(0..=i));
        }
        let x = RefTensor::new(vals, &xs);
        check(
            &format!("max_pool2d {xs:?}"),
            |t| rpool::max_pool2d(&t[0], k, s, p),
            |t, g| vec![Some(rpool::max_pool2d_backward(&t[0], k, s, p, g))],
            std::slice::from_ref(&x),
        );
        for inc in [true, false] {
            check(
                &format!("avg_pool2d {xs:?} include_pad={inc}"),
                |t| rpool::avg_pool2d(&t[0], k, s, p, inc),
                |t, g| vec![Some(rpool::avg_pool2d_backward(&t[0], k, s, p, inc, g))],
                std::slice::from_ref(&x),
            );
        }
    }
    for (xs, o) in [([1, 2, 5, 7], (3, 4)), ([1, 1, 2, 2], (7, 7)), ([2, 1, 6, 6], (1, 1))] {
        let x = uniform(&mut r, &xs, -1.0, 1.0);
        check(
            &format!("adaptive_avg_pool2d {xs:?} -> {o:?}"),
            |t| rpool::adaptive_avg_pool2d(&t[0], o),
            |t, g| vec![Some(rpool::adaptive_avg_pool2d_backward(&t[0], o, g))],
            &[x],
        );
    }
    // Torch's bins: 10 -> 4 gives [0,3), [2,5), [5,8), [7,10).
    let x = RefTensor::new((0..10).map(|v| v as f64).collect(), &[1, 1, 1, 10]);
    assert_eq!(rpool::adaptive_avg_pool2d(&x, (1, 4)).data, vec![1.0, 3.0, 6.0, 8.0]);
}

#[test]
fn batch_norm_training_and_eval() {
    let mut r = ChaCha8Rng::seed_from_u64(403);
    for xs in [vec![3, 2, 3, 3], vec![5, 3], vec![1, 2, 2, 3]] {
        let c = xs[1];
        let x = uniform(&mut r, &xs, -2.0, 2.0);
        let w = uniform(&mut r, &[c], 0.5, 1.5);
        let b = uniform(&mut r, &[c], -1.0, 1.0);
        let rm = uniform(&mut r, &[c], -0.5, 0.5);
        let rv = uniform(&mut r, &[c], 0.5, 2.0);
        for training in [true, false] {
            let (rm2, rv2) = (rm.clone(), rv.clone());
            check(
                &format!("batch_norm {xs:?} training={training}"),
                |t| rbn::batch_norm(&t[0], &t[1], &t[2], &rm, &rv, training, 1e-5),
                |t, g| {
                    let (gx, gw, gb) = rbn::batch_norm_backward(&t[0], &t[1], &rm2, &rv2, training, 1e-5, g);
                    vec![Some(gx), Some(gw), Some(gb)]
                },
                &[x.clone(), w.clone(), b.clone()],
            );
        }
    }
    // The running update: unbiased variance, torch's momentum convention.
    let x = RefTensor::new(vec![1.0, 2.0, 3.0, 6.0], &[4, 1]);
    let (m, v) = rbn::updated_running_stats(
        &x,
        &RefTensor::new(vec![0.0], &[1]),
        &RefTensor::new(vec![1.0], &[1]),
        0.1,
    );
    assert!((m.data[0] - 0.3).abs() < 1e-12);
    // mean 3, squared deviations 4 + 1 + 0 + 9 = 14, unbiased 14/3.
    assert!((v.data[0] - (0.9 + 0.1 * 14.0 / 3.0)).abs() < 1e-12);
}
