//! A1 for attention and RoPE: f64 central-difference gradchecks of the CPU references
//! (`whet::ops::reference::attention`), which `tests/attention_vs_reference.rs` then holds the
//! GPU kernels to. Needs no GPU.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use whet::ops::reference::attention::{self as ratt, RefAttention};
use whet::ops::reference::gradcheck::{gradcheck, upstream};
use whet::ops::reference::RefTensor;

fn uniform(r: &mut ChaCha8Rng, shape: &[usize], lo: f64, hi: f64) -> RefTensor {
    let n = shape.iter().product();
    RefTensor::new((0..n).map(|_| r.random_range(lo..hi)).collect(), shape)
}

/// A `[B, Tk]` keep/mask pattern with roughly `keep` of the keys kept.
fn mask(r: &mut ChaCha8Rng, b: usize, tk: usize, keep: f64) -> RefTensor {
    RefTensor::new((0..b * tk).map(|_| if r.random_bool(keep) { 1.0 } else { 0.0 }).collect(), &[b, tk])
}

/// (B, Hq, Hkv, Tq, Tk, D, causal, masked)
type Case = (usize, usize, usize, usize, usize, usize, bool, bool);
const CASES: &[Case] = &[
    (1, 1, 1, 1, 1, 1, false, false),
    (1, 2, 2, 3, 3, 4, false, false),
    (2, 2, 2, 4, 4, 3, true, false),
    (1, 4, 2, 3, 5, 2, true, false), // GQA, Tq < Tk with the causal offset
    (2, 3, 1, 2, 4, 3, false, true), // multi-query, padding
    (2, 4, 2, 4, 4, 2, true, true),  // everything at once
    (1, 2, 1, 1, 6, 3, true, true),  // KV-cache decode step
];

#[test]
fn attention_reference_gradients_match_central_differences() {
    let mut r = ChaCha8Rng::seed_from_u64(900);
    for &(b, hq, hkv, tq, tk, d, causal, masked) in CASES {
        let q = uniform(&mut r, &[b, hq, tq, d], -1.5, 1.5);
        let k = uniform(&mut r, &[b, hkv, tk, d], -1.5, 1.5);
        let v = uniform(&mut r, &[b, hkv, tk, d], -1.5, 1.5);
        let mut m = mask(&mut r, b, tk, 0.7);
        // Keep at least one key per batch in most rows, but one batch fully masked when B > 1.
        if b > 1 {
            for j in 0..tk {
                m.data[j] = 0.0;
            }
            m.data[tk + tk - 1] = 1.0;
        }
        let mask = masked.then_some(&m);
        let scale = 1.0 / (d as f64).sqrt();
        let o = RefAttention { scale, causal, key_padding: mask, window: None };
        if let Err(e) = check_attention(&o, [q, k, v]) {
            panic!("attention case {:?}: {e}", (b, hq, hkv, tq, tk, d, causal, masked));
        }
    }
}

#[test]
fn windowed_reference_gradients_match_central_differences() {
    let mut r = ChaCha8Rng::seed_from_u64(902);
    // (B, Hq, Hkv, Tq, Tk, D, window): windows of 1, 2 and 3 keys, with a KV-cache offset.
    for (b, hq, hkv, tq, tk, d, w) in [(1, 2, 1, 5, 5, 3, 2), (2, 2, 2, 4, 4, 2, 1), (1, 2, 1, 3, 6, 3, 3)] {
        let q = uniform(&mut r, &[b, hq, tq, d], -1.5, 1.5);
        let k = uniform(&mut r, &[b, hkv, tk, d], -1.5, 1.5);
        let v = uniform(&mut r, &[b, hkv, tk, d], -1.5, 1.5);
        let o = RefAttention { scale: 0.7, causal: true, key_padding: None, window: Some(w) };
        if let Err(e) = check_attention(&o, [q, k, v]) {
            panic!("windowed attention case {:?}: {e}", (b, hq, hkv, tq, tk, d, w));
        }
    }
}

/// The reference's gradients of q, k and v against central differences (at least one checked).
fn check_attention(o: &RefAttention, qkv: [RefTensor; 3]) -> Result<(), String> {
    let rep = gradcheck(
        |xs| ratt::attention(&xs[0], &xs[1], &xs[2], o),
        |xs, g| {
            let (gq, gk, gv) = ratt::attention_backward(&xs[0], &xs[1], &xs[2], o, g);
            vec![Some(gq), Some(gk), Some(gv)]
        },
        &qkv,
    )
    .map_err(|e| e.to_string())?;
    if rep.checked == 0 {
        Err("nothing checked".into())
    } else {
        Ok(())
    }
}

#[test]
fn reference_attention_matches_a_hand_computed_case_and_masks_exactly() {
    // One query, two keys with scores 0 and ln 3 (scale 1): weights 1/4 and 3/4.
    let q = RefTensor::new(vec![1.0], &[1, 1, 1, 1]);
    let k = RefTensor::new(vec![0.0, 3f64.ln()], &[1, 1, 2, 1]);
    let v = RefTensor::new(vec![4.0, 8.0], &[1, 1, 2, 1]);
    let o = RefAttention { scale: 1.0, causal: false, key_padding: None, window: None };
    let y = ratt::attention(&q, &k, &v, &o);
    assert!((y.data[0] - 7.0).abs() < 1e-12, "{y:?}");
    // Masking the second key leaves the first with all the weight; masking both gives 0.
    let m = RefTensor::new(vec![1.0, 0.0], &[1, 2]);
    let y = ratt::attention(&q, &k, &v, &RefAttention { key_padding: Some(&m), ..o });
    assert_eq!(y.data[0], 4.0);
    let m0 = RefTensor::new(vec![0.0, 0.0], &[1, 2]);
    let o0 = RefAttention { key_padding: Some(&m0), ..o };
    assert_eq!(ratt::attention(&q, &k, &v, &o0).data[0], 0.0);
    let (gq, gk, gv) = ratt::attention_backward(&q, &k, &v, &o0, &RefTensor::new(vec![1.0], &[1, 1, 1, 1]));
    assert!(gq.data.iter().chain(&gk.data).chain(&gv.data).all(|&x| x == 0.0));
    // Causal with Tq = 1 < Tk = 2: the single query is the last position and sees both keys.
    let y = ratt::attention(&q, &k, &v, &RefAttention { causal: true, ..o });
    assert!((y.data[0] - 7.0).abs() < 1e-12);
    // Causal with Tq = Tk = 2: the first query sees only the first key.
    let q2 = RefTensor::new(vec![1.0, 1.0], &[1, 1, 2, 1]);
    let y = ratt::attention(&q2, &k, &v, &RefAttention { causal: true, ..o });
    assert_eq!(y.data[0], 4.0);
    assert!((y.data[1] - 7.0).abs() < 1e-12);
    // A sliding window of one key: each query sees only its own position.
    let y = ratt::attention(&q2, &k, &v, &RefAttention { causal: true, window: Some(1), ..o });
    assert_eq!((y.data[0], y.data[1]), (4.0, 8.0));
}

#[test]
fn rope_reference_gradient_is_the_transpose_rotation() {
    let mut r = ChaCha8Rng::seed_from_u64(901);
    for (shape, offset) in [([1, 1, 1, 2], 0), ([2, 3, 5, 8], 0), ([1, 2, 4, 6], 7), ([2, 1, 3, 16], 13)] {
        let (cos, sin) = ratt::rope_table(shape[3], 20, 10_000.0);
        let x = uniform(&mut r, &shape, -2.0, 2.0);
        let res = gradcheck(
            |xs| ratt::rope(&xs[0], &cos, &sin, offset),
            |_, g| vec![Some(ratt::rope_backward(g, &cos, &sin, offset))],
            std::slice::from_ref(&x),
        );
        if let Err(e) = res {
            panic!("rope {shape:?} offset {offset}: {e}");
        }
        // A rotation preserves every pair's norm, and backward∘forward is the identity.
        let y = ratt::rope(&x, &cos, &sin, offset);
        let n2 = |t: &RefTensor| t.data.iter().map(|v| v * v).sum::<f64>();
        assert!((n2(&y) - n2(&x)).abs() < 1e-9 * n2(&x));
        let back = ratt::rope_backward(&y, &cos, &sin, offset);
        assert!(back.data.iter().zip(&x.data).all(|(a, b)| (a - b).abs() < 1e-12));
    }
}

#[test]
fn rope_reference_matches_hf_rotate_half_at_position_one() {
    // D = 4, theta = 100: inv_freq = [1, 0.1]; position 1 rotates (x0, x2) by 1 rad and
    // (x1, x3) by 0.1 rad.
    let (cos, sin) = ratt::rope_table(4, 2, 100.0);
    let x = RefTensor::new(vec![0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0], &[1, 1, 2, 4]);
    let y = ratt::rope(&x, &cos, &sin, 0);
    assert_eq!(&y.data[..4], &[0.0; 4]);
    let want = [
        1.0 * 1f64.cos() - 3.0 * 1f64.sin(),
        2.0 * 0.1f64.cos() - 4.0 * 0.1f64.sin(),
        3.0 * 1f64.cos() + 1.0 * 1f64.sin(),
        4.0 * 0.1f64.cos() + 2.0 * 0.1f64.sin(),
    ];
    for (g, w) in y.data[4..].iter().zip(want) {
        assert!((g - w).abs() < 1e-12, "{:?} vs {want:?}", &y.data[4..]);
    }
    // The upstream weighting used by gradcheck is deterministic.
    assert_eq!(upstream(&[3], 1), upstream(&[3], 1));
}
