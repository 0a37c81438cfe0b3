//! Reference inverted dropout (`ops::dropout`), mask bit for bit.
//!
//! Element `w` of sample `s` is kept iff
//! `lowbias32(w ^ lowbias32(seed_lo ^ lowbias32(seed_hi + 0x9e3779b9 + s · 0x85ebca6b)))` is at
//! least `threshold(p) = min(p · 2^32, 2^32 - 1)`, all arithmetic wrapping on u32 as in
//! `shaders/dropout/dropout.wgsl`. Kept elements are scaled by `1 / (1 - p)`.

use super::RefTensor;

/// Chris Wellons' "lowbias32" integer hash.
pub fn lowbias32(v: u32) -> u32 {
    let mut x = v;
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

/// The 32-bit hash that decides element `i` of a tensor with one sample under `seed`.
pub fn hash(seed: u64, i: u32) -> u32 {
    sample_hash(seed, 0, i)
}

/// The 32-bit hash that decides element `w` of global sample `sample` under `seed`.
pub fn sample_hash(seed: u64, sample: u32, w: u32) -> u32 {
    let (lo, hi) = (seed as u32, (seed >> 32) as u32);
    let s = hi.wrapping_add(0x9e37_79b9).wrapping_add(sample.wrapping_mul(0x85eb_ca6b));
    lowbias32(w ^ lowbias32(lo ^ lowbias32(s)))
}

/// `p · 2^32`, saturated at `u32::MAX`: hashes below it are dropped.
pub fn threshold(p: f32) -> u32 {
    let t = p as f64 * 4_294_967_296.0;
    if t >= u32::MAX as f64 {
        u32::MAX
    } else {
        t as u32
    }
}

/// Which of `n` elements are kept.
pub fn keep_mask(n: usize, p: f32, seed: u64) -> Vec<bool> {
    keyed_mask(n, p, seed, n.max(1), 0)
}

/// Which of `n` elements are kept when they are samples of `per_sample` elements, the first
/// being global sample `first_item` (`ops::dropout::dropout_keyed`).
pub fn keyed_mask(n: usize, p: f32, seed: u64, per_sample: usize, first_item: u32) -> Vec<bool> {
    let t = threshold(p);
    (0..n)
        .map(|i| {
            let (s, w) = (i / per_sample, i % per_sample);
            sample_hash(seed, first_item.wrapping_add(s as u32), w as u32) >= t
        })
        .collect()
}

/// The scale of kept elements, `1 / (1 - p)` (0 when `p == 1`: nothing is kept anyway).
pub fn scale(p: f32) -> f64 {
    if p >= 1.0 {
        0.0
    } else {
        1.0 / (1.0 - p as f64)
    }
}

fn apply(x: &RefTensor, p: f32, seed: u64) -> RefTensor {
    if p == 0.0 {
        return x.clone();
    }
    let mask = keep_mask(x.numel(), p, seed);
    let s = scale(p);
    RefTensor::new(x.data.iter().zip(&mask).map(|(&v, &k)| if k { v * s } else { 0.0 }).collect(), &x.shape)
}

/// Inverted dropout of `x` (identity when `p == 0`).
pub fn dropout(x: &RefTensor, p: f32, seed: u64) -> RefTensor {
    apply(x, p, seed)
}

/// Gradient of [`dropout`]: the same mask and scale applied to `g`.
pub fn dropout_backward(g: &RefTensor, p: f32, seed: u64) -> RefTensor {
    apply(g, p, seed)
}
