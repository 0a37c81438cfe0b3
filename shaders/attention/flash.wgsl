// Flash-style fused attention (src/ops/attention.rs, `AttentionKernel::Flash`): one invocation
// per query row (or, in `flash_backward_kv`, per key row), the scores recomputed from q and k
// instead of stored. Same folded layout and masking rules (sliding window included) as
// attention.wgsl: q, o, go are
// (Z, G*Tq, D), k, v, dk, dv are (Z, Tk, D) with Z = B*Hkv; row r is query position r % Tq of
// batch (r / (G*Tq)) / Hkv. The forward saves only each row's softmax statistics (max m and
// log of the sum l, kept apart: m + log l would round to the spacing of |m|, ~1e-3 at 1e4);
// m = NO_KEYS for a row that sees no key, so exp(s - m) = 0 there and everything through it is
// 0. Head dims up to MAX_D (private arrays need a constant size).

const MAX_D: u32 = 128u;
const NO_KEYS: f32 = 3.0e38;

struct Params {
    rows: u32,
    tk: u32,
    tq: u32,
    group_rows: u32,
    hkv: u32,
    causal: u32,
    has_mask: u32,
    shift: u32,
    scale: f32,
    d: u32,
    // Keys a causal row sees at most (a sliding window); 0: unlimited.
    window: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

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

@group(0) @binding(1) var<storage, read> q: array<act>;
@group(0) @binding(2) var<storage, read> k: array<act>;
@group(0) @binding(3) var<storage, read> v: array<act>;
@group(0) @binding(4) var<storage, read> kmask: array<f32>;
@group(0) @binding(5) var<storage, read_write> o: array<act>;
@group(0) @binding(6) var<storage, read_write> lse: array<f32>;

fn visible(b: u32, j: u32) -> bool {
    if (p.has_mask == 0u) {
        return true;
    }
    return kmask[b * p.tk + j] != 0.0;
}

// Online softmax: running max m, running sum l, running weighted sum acc (rescaled when the
// max grows).
@compute @workgroup_size(WG1)
fn flash_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = linear_index(wid, nwg, lid);
    if (r >= p.rows) {
        return;
    }
    let z = r / p.group_rows;
    let b = z / p.hkv;
    let lim = key_limit(r);
    let qo = r * p.d;
    let kb = z * p.tk * p.d;
    var qv: array<f32, MAX_D>;
    var acc: array<f32, MAX_D>;
    for (var c = 0u; c < p.d; c++) {
        qv[c] = f32(q[qo + c]);
        acc[c] = 0.0;
    }
    var m = 0.0;
    var l = 0.0;
    var seen = false;
    for (var j = key_start(r); j < lim; j++) {
        if (!visible(b, j)) {
            continue;
        }
        let ko = kb + j * p.d;
        var s = 0.0;
        for (var c = 0u; c < p.d; c++) {
            s += qv[c] * f32(k[ko + c]);
        }
        s *= p.scale;
        if (!seen) {
            m = s;
            seen = true;
        }
        let mn = max(m, s);
        let corr = exp(m - mn);
        let pj = exp(s - mn);
        l = l * corr + pj;
        for (var c = 0u; c < p.d; c++) {
            acc[c] = acc[c] * corr + pj * f32(v[ko + c]);
        }
        m = mn;
    }
    let inv = select(0.0, 1.0 / l, seen);
    for (var c = 0u; c < p.d; c++) {
        o[qo + c] = act(acc[c] * inv);
    }
    lse[2u * r] = select(NO_KEYS, m, seen);
    lse[2u * r + 1u] = select(0.0, log(l), seen);
}

// ---------------------------------------------------------------- backward

// stats = (m, log l, delta) per row, delta_r = sum(go_r * o_r).
@group(0) @binding(1) var<storage, read> go_s: array<act>;
@group(0) @binding(2) var<storage, read> o_s: array<act>;
@group(0) @binding(3) var<storage, read> lse_s: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats_w: array<f32>;

@compute @workgroup_size(WG1)
fn flash_backward_stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = linear_index(wid, nwg, lid);
    if (r >= p.rows) {
        return;
    }
    var acc = 0.0;
    for (var c = 0u; c < p.d; c++) {
        acc += f32(go_s[r * p.d + c]) * f32(o_s[r * p.d + c]);
    }
    stats_w[3u * r] = lse_s[2u * r];
    stats_w[3u * r + 1u] = lse_s[2u * r + 1u];
    stats_w[3u * r + 2u] = acc;
}

@group(0) @binding(1) var<storage, read> qb: array<act>;
@group(0) @binding(2) var<storage, read> kb_: array<act>;
@group(0) @binding(3) var<storage, read> vb: array<act>;
@group(0) @binding(4) var<storage, read> kmask_b: array<f32>;
@group(0) @binding(5) var<storage, read> stats: array<f32>;
@group(0) @binding(6) var<storage, read> gob: array<act>;
@group(0) @binding(7) var<storage, read_write> g0: array<act>;
@group(0) @binding(8) var<storage, read_write> g1: array<act>;

fn visible_b(b: u32, j: u32) -> bool {
    if (p.has_mask == 0u) {
        return true;
    }
    return kmask_b[b * p.tk + j] != 0.0;
}

// Gradient of q, one query row per invocation (g0 = dq; g1 is not bound).
// ds_j = p_j (dp_j - delta), dq = scale * sum_j ds_j k_j.
@compute @workgroup_size(WG1)
fn flash_backward_q(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = linear_index(wid, nwg, lid);
    if (r >= p.rows) {
        return;
    }
    let z = r / p.group_rows;
    let b = z / p.hkv;
    let lim = key_limit(r);
    let qo = r * p.d;
    let kbase = z * p.tk * p.d;
    let m = stats[3u * r];
    let logl = stats[3u * r + 1u];
    let delta = stats[3u * r + 2u];
    var qv: array<f32, MAX_D>;
    var gv: array<f32, MAX_D>;
    var acc: array<f32, MAX_D>;
    for (var c = 0u; c < p.d; c++) {
        qv[c] = f32(qb[qo + c]);
        gv[c] = f32(gob[qo + c]);
        acc[c] = 0.0;
    }
    for (var j = key_start(r); j < lim; j++) {
        if (!visible_b(b, j)) {
            continue;
        }
        let ko = kbase + j * p.d;
        var s = 0.0;
        var dp = 0.0;
        for (var c = 0u; c < p.d; c++) {
            s += qv[c] * f32(kb_[ko + c]);
            dp += gv[c] * f32(vb[ko + c]);
        }
        let pj = exp((s * p.scale - m) - logl);
        let ds = pj * (dp - delta) * p.scale;
        for (var c = 0u; c < p.d; c++) {
            acc[c] += ds * f32(kb_[ko + c]);
        }
    }
    for (var c = 0u; c < p.d; c++) {
        g0[qo + c] = act(acc[c]);
    }
}

// Gradients of k and v, one key row (z, j) per invocation, summed over the G*Tq query rows of
// its kv head that see it (g0 = dk, g1 = dv): dv = sum_r p_r go_r, dk = scale sum_r ds_r q_r.
@compute @workgroup_size(WG1)
fn flash_backward_kv(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_id) lid: vec3<u32>) {
    let n = linear_index(wid, nwg, lid);
    let zs = p.rows / p.group_rows;
    if (n >= zs * p.tk) {
        return;
    }
    let z = n / p.tk;
    let j = n % p.tk;
    let b = z / p.hkv;
    let ko = n * p.d;
    var kv: array<f32, MAX_D>;
    var vv: array<f32, MAX_D>;
    var dk: array<f32, MAX_D>;
    var dv: array<f32, MAX_D>;
    for (var c = 0u; c < p.d; c++) {
        kv[c] = f32(kb_[ko + c]);
        vv[c] = f32(vb[ko + c]);
        dk[c] = 0.0;
        dv[c] = 0.0;
    }
    if (visible_b(b, j)) {
        for (var rr = 0u; rr < p.group_rows; rr++) {
            let r = z * p.group_rows + rr;
            if (j >= key_limit(r) || j < key_start(r)) {
                continue;
            }
            let qo = r * p.d;
            var s = 0.0;
            var dp = 0.0;
            for (var c = 0u; c < p.d; c++) {
                s += f32(qb[qo + c]) * kv[c];
                dp += f32(gob[qo + c]) * vv[c];
            }
            let pj = exp((s * p.scale - stats[3u * r]) - stats[3u * r + 1u]);
            let ds = pj * (dp - stats[3u * r + 2u]) * p.scale;
            for (var c = 0u; c < p.d; c++) {
                dv[c] += pj * f32(gob[qo + c]);
                dk[c] += ds * f32(qb[qo + c]);
            }
        }
    }
    for (var c = 0u; c < p.d; c++) {
        g0[ko + c] = act(dk[c]);
        g1[ko + c] = act(dv[c]);
    }
}
