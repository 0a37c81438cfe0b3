//! Reference scaled dot-product attention and RoPE (`ops::attention`, `ops::rope`).
//!
//! Attention is written per (batch, query head, query row) straight from the definition: the
//! visible keys of a row, their scaled scores, a max-subtracted softmax over them, the weighted
//! sum of values. Nothing is folded or shared with the GPU's grouped-head layout.

use super::RefTensor;

/// Options of [`attention`]; `key_padding` is `[B, Tk]`, 0 masks a key, anything else keeps it.
#[derive(Debug, Clone, Copy)]
pub struct RefAttention<'a> {
    pub scale: f64,
    pub causal: bool,
    pub key_padding: Option<&'a RefTensor>,
    /// Causal sliding window: row `i` sees keys `j > i + Tk - Tq - window` only.
    pub window: Option<usize>,
}

struct Dims {
    b: usize,
    hq: usize,
    hkv: usize,
    tq: usize,
    tk: usize,
    d: usize,
}

fn dims(q: &RefTensor, k: &RefTensor, v: &RefTensor) -> Dims {
    assert!(q.rank() == 4 && k.rank() == 4, "reference: attention needs rank-4 q, k");
    assert_eq!(k.shape, v.shape, "reference: attention k and v differ");
    let d = Dims {
        b: q.shape[0],
        hq: q.shape[1],
        hkv: k.shape[1],
        tq: q.shape[2],
        tk: k.shape[2],
        d: q.shape[3],
    };
    assert!(k.shape[0] == d.b && k.shape[3] == d.d, "reference: attention q {:?} k {:?}", q.shape, k.shape);
    assert!(d.hkv > 0 && d.hq.is_multiple_of(d.hkv), "reference: attention heads {} / {}", d.hq, d.hkv);
    d
}

/// Visible keys of query row `i` in batch `b`.
fn visible(o: &RefAttention, d: &Dims, b: usize, i: usize) -> Vec<usize> {
    (0..d.tk)
        .filter(|&j| !o.causal || j + d.tq <= i + d.tk)
        .filter(|&j| o.window.is_none_or(|w| j + d.tq + w > i + d.tk))
        .filter(|&j| o.key_padding.is_none_or(|m| m.data[b * d.tk + j] != 0.0))
        .collect()
}

/// Offsets of q's row (b, h, i) and of k's / v's row (b, kvh, j).
fn qrow(d: &Dims, b: usize, h: usize, i: usize) -> usize {
    ((b * d.hq + h) * d.tq + i) * d.d
}
fn kvrow(d: &Dims, b: usize, kvh: usize, j: usize) -> usize {
    ((b * d.hkv + kvh) * d.tk + j) * d.d
}

/// Softmax weights of row `(b, h, i)` over its visible keys `keys`.
fn weights(
    q: &RefTensor,
    k: &RefTensor,
    o: &RefAttention,
    d: &Dims,
    (b, h, i): (usize, usize, usize),
    keys: &[usize],
) -> Vec<f64> {
    let kvh = h / (d.hq / d.hkv);
    let qo = qrow(d, b, h, i);
    let scores: Vec<f64> = keys
        .iter()
        .map(|&j| {
            let ko = kvrow(d, b, kvh, j);
            o.scale * (0..d.d).map(|c| q.data[qo + c] * k.data[ko + c]).sum::<f64>()
        })
        .collect();
    let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
    let total: f64 = e.iter().sum();
    e.iter().map(|x| x / total).collect()
}

/// `softmax(scale q kᵀ + masks) v` with grouped-query heads; rows with no visible key are 0.
pub fn attention(q: &RefTensor, k: &RefTensor, v: &RefTensor, o: &RefAttention) -> RefTensor {
    let d = dims(q, k, v);
    let mut out = RefTensor::zeros(&q.shape);
    for b in 0..d.b {
        for h in 0..d.hq {
            let kvh = h / (d.hq / d.hkv);
            for i in 0..d.tq {
                let keys = visible(o, &d, b, i);
                let p = weights(q, k, o, &d, (b, h, i), &keys);
                let qo = qrow(&d, b, h, i);
                for (&j, &pj) in keys.iter().zip(&p) {
                    let vo = kvrow(&d, b, kvh, j);
                    for c in 0..d.d {
                        out.data[qo + c] += pj * v.data[vo + c];
                    }
                }
            }
        }
    }
    out
}

/// Gradients `(dq, dk, dv)` of [`attention`] given `g` of the output.
pub fn attention_backward(
    q: &RefTensor,
    k: &RefTensor,
    v: &RefTensor,
    o: &RefAttention,
    g: &RefTensor,
) -> (RefTensor, RefTensor, RefTensor) {
    let d = dims(q, k, v);
    let (mut gq, mut gk, mut gv) =
        (RefTensor::zeros(&q.shape), RefTensor::zeros(&k.shape), RefTensor::zeros(&v.shape));
    for b in 0..d.b {
        for h in 0..d.hq {
            let kvh = h / (d.hq / d.hkv);
            for i in 0..d.tq {
                let keys = visible(o, &d, b, i);
                let p = weights(q, k, o, &d, (b, h, i), &keys);
                let qo = qrow(&d, b, h, i);
                // dp_j = g · v_j; ds_j = p_j (dp_j - Σ p dp).
                let dp: Vec<f64> = keys
                    .iter()
                    .map(|&j| {
                        let vo = kvrow(&d, b, kvh, j);
                        (0..d.d).map(|c| g.data[qo + c] * v.data[vo + c]).sum()
                    })
                    .collect();
                let mean: f64 = p.iter().zip(&dp).map(|(a, b)| a * b).sum();
                for (n, &j) in keys.iter().enumerate() {
                    let ds = p[n] * (dp[n] - mean);
                    let ko = kvrow(&d, b, kvh, j);
                    for c in 0..d.d {
                        gv.data[ko + c] += p[n] * g.data[qo + c];
                        gq.data[qo + c] += o.scale * ds * k.data[ko + c];
                        gk.data[ko + c] += o.scale * ds * q.data[qo + c];
                    }
                }
            }
        }
    }
    (gq, gk, gv)
}

/// RoPE tables in exact f64 arithmetic: `cos`, `sin` of `pos · theta^(-2i/D)`, each
/// `[max_positions, D/2]` (the device table rounds the angle the way HF does; see
/// `ops::rope::RopeTable`).
pub fn rope_table(head_dim: usize, max_positions: usize, theta: f64) -> (RefTensor, RefTensor) {
    let half = head_dim / 2;
    let mut c = Vec::new();
    let mut s = Vec::new();
    for pos in 0..max_positions {
        for i in 0..half {
            let a = pos as f64 * theta.powf(-((2 * i) as f64) / head_dim as f64);
            c.push(a.cos());
            s.push(a.sin());
        }
    }
    (RefTensor::new(c, &[max_positions, half]), RefTensor::new(s, &[max_positions, half]))
}

/// Rotate each pair `(x_i, x_{i+D/2})` of `x` `[B, H, T, D]` at position `offset + t` by
/// `sign` times its angle, from tables `[P, D/2]`.
fn rotate(x: &RefTensor, cos: &RefTensor, sin: &RefTensor, offset: usize, sign: f64) -> RefTensor {
    assert_eq!(x.rank(), 4, "reference: rope needs [B, H, T, D]");
    let (t, dd) = (x.shape[2], x.shape[3]);
    let half = dd / 2;
    assert_eq!(cos.shape[1], half, "reference: rope table width");
    let mut y = RefTensor::zeros(&x.shape);
    for row in 0..x.numel() / dd {
        let pos = offset + row % t;
        for i in 0..half {
            let (c, s) = (cos.data[pos * half + i], sign * sin.data[pos * half + i]);
            let (a, b) = (x.data[row * dd + i], x.data[row * dd + i + half]);
            // x cos + rotate_half(x) sin, rotate_half(x) = cat(-x[h:], x[:h]).
            y.data[row * dd + i] = a * c - b * s;
            y.data[row * dd + i + half] = b * c + a * s;
        }
    }
    y
}

/// `x · cos + rotate_half(x) · sin` at positions `offset..offset + T`.
pub fn rope(x: &RefTensor, cos: &RefTensor, sin: &RefTensor, offset: usize) -> RefTensor {
    rotate(x, cos, sin, offset, 1.0)
}

/// Gradient of [`rope`]: the transpose rotation of `g`.
pub fn rope_backward(g: &RefTensor, cos: &RefTensor, sin: &RefTensor, offset: usize) -> RefTensor {
    rotate(g, cos, sin, offset, -1.0)
}
