// The fused middle of scaled dot-product attention (src/ops/attention.rs): the two products
// around it are batched matmuls. Grouped-query heads are folded into rows, so the score matrix
// is (Z, G*Tq, Tk) with Z = B*Hkv and G = Hq/Hkv; row r is query position r % Tq of batch
// (r / (G*Tq)) / Hkv. One invocation per row.
//
// A key is visible to row r when it is below the causal limit (j <= i + Tk - Tq when CAUSAL),
// inside a sliding window when one is set (j > i + Tk - Tq - WINDOW: Mistral's, Qwen2's) and,
// with a padding mask, kmask[b * Tk + j] != 0. Invisible keys are left out of the softmax
// entirely (probability exactly 0, not exp(-large)); a row with no visible key has
// probabilities 0, so its output and every gradient through it are 0, never NaN.
//
// Scores and probabilities are `act` (f16 in the half variant); the softmax runs in f32.

struct Params {
    rows: u32,
    tk: u32,
    tq: u32,
    // G * Tq: rows per (batch, kv head).
    group_rows: u32,
    hkv: u32,
    causal: u32,
    has_mask: u32,
    // Tk - Tq (the causal offset of a KV-cache step).
    shift: u32,
    scale: f32,
    // Keys a causal row sees at most (a sliding window); 0: unlimited.
    window: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

// Keys [0, limit) can be visible to row r.
fn key_limit(r: u32) -> u32 {
    if (p.causal == 0u) {
        return p.tk;
    }
    return min(p.tk, r % p.tq + p.shift + 1u);
}

// Keys below this are outside row r's sliding window (0 without one).
fn key_start(r: u32) -> u32 {
    let end = r % p.tq + p.shift + 1u;
    if (p.causal == 0u || p.window == 0u || end <= p.window) {
        return 0u;
    }
    return end - p.window;
}

// ---------------------------------------------------------------- forward

@group(0) @binding(1) var<storage, read> s: array<act>;
@group(0) @binding(2) var<storage, read> kmask: array<f32>;
@group(0) @binding(3) var<storage, read_write> probs: array<act>;

fn visible(b: u32, j: u32) -> bool {
    if (p.has_mask == 0u) {
        return true;
    }
    return kmask[b * p.tk + j] != 0.0;
}

// probs = softmax over visible keys of scale * s (0 at invisible keys).
@compute @workgroup_size(WG1)
fn attn_softmax_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = linear_index(wid, nwg, lid);
    if (r >= p.rows) {
        return;
    }
    let base = r * p.tk;
    let b = (r / p.group_rows) / p.hkv;
    let lim = key_limit(r);
    let start = key_start(r);
    var m = 0.0;
    var seen = false;
    for (var j = start; j < lim; j++) {
        if (visible(b, j)) {
            let v = f32(s[base + j]) * p.scale;
            if (!seen || v > m) {
                m = v;
            }
            seen = true;
        }
    }
    var total = 0.0;
    for (var j = start; j < lim; j++) {
        if (visible(b, j)) {
            total += exp(f32(s[base + j]) * p.scale - m);
        }
    }
    // total >= 1 when any key is visible (the max contributes exp(0)).
    let inv = select(0.0, 1.0 / total, seen);
    for (var j = 0u; j < p.tk; j++) {
        var y = 0.0;
        if (j >= start && j < lim && visible(b, j)) {
            y = exp(f32(s[base + j]) * p.scale - m) * inv;
        }
        probs[base + j] = act(y);
    }
}

// ---------------------------------------------------------------- backward

// In place: ds = scale * probs * (dp - sum(dp * probs)) per row, the gradient w.r.t. the
// unscaled scores. Invisible keys have probs 0, so their gradient is exactly 0.
@group(0) @binding(1) var<storage, read> pb: array<act>;
@group(0) @binding(2) var<storage, read_write> dp: array<act>;

@compute @workgroup_size(WG1)
fn attn_softmax_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = linear_index(wid, nwg, lid);
    if (r >= p.rows) {
        return;
    }
    let base = r * p.tk;
    let lim = key_limit(r);
    var acc = 0.0;
    for (var j = key_start(r); j < lim; j++) {
        acc += f32(dp[base + j]) * f32(pb[base + j]);
    }
    for (var j = 0u; j < p.tk; j++) {
        dp[base + j] = act(p.scale * f32(pb[base + j]) * (f32(dp[base + j]) - acc));
    }
}
