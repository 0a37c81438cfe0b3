// Cross-entropy with ignore_index and label smoothing, one invocation per row.
// logits (N, C), targets (N) u32 (checked < C or == ignore on the host), loss_rows (N).
// loss_i = -(1 - eps) * logp[t_i] - eps / C * sum_c logp[c]; ignored rows give 0.
// The mean over non-ignored rows is taken by the caller (scale = 1 / count).

struct Params {
    rows: u32,
    cols: u32,
    ignore: u32,
    smoothing: f32,
    scale: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

// Logits and their gradient are `act` (f16 in the half variant); the softmax and the loss are
// computed in f32.
@group(0) @binding(1) var<storage, read> logits: array<act>;
@group(0) @binding(2) var<storage, read> targets: array<u32>;
@group(0) @binding(3) var<storage, read_write> loss_rows: array<f32>;

@compute @workgroup_size(WG1)
fn cross_entropy_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = linear_index(wid, nwg, lid);
    if (r >= p.rows) {
        return;
    }
    let t = targets[r];
    if (t == p.ignore) {
        loss_rows[r] = 0.0;
        return;
    }
    let base = r * p.cols;
    var m = f32(logits[base]);
    for (var c = 1u; c < p.cols; c++) {
        m = max(m, f32(logits[base + c]));
    }
    // Everything relative to the max: log p[c] = (x[c] - m) - log(s). Forming lse = m + log(s)
    // first would round it to the spacing of |m| (~1e-3 for logits near 1e4).
    var s = 0.0;
    var sum_d = 0.0;
    for (var c = 0u; c < p.cols; c++) {
        let d = f32(logits[base + c]) - m;
        s += exp(d);
        sum_d += d;
    }
    let ls = log(s);
    let n = f32(p.cols);
    let logp_t = (f32(logits[base + t]) - m) - ls;
    let sum_logp = sum_d - n * ls;
    loss_rows[r] = -(1.0 - p.smoothing) * logp_t - p.smoothing / n * sum_logp;
}

// gx[r, c] = g * scale * (softmax[c] - (1 - eps) [c == t] - eps / C); 0 on ignored rows.
// g is the scalar upstream gradient, read on the device (no host round trip).
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> lg: array<act>;
@group(0) @binding(3) var<storage, read> tg: array<u32>;
@group(0) @binding(4) var<storage, read_write> gx: array<act>;

@compute @workgroup_size(WG1)
fn cross_entropy_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                          @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = linear_index(wid, nwg, lid);
    if (r >= p.rows) {
        return;
    }
    let base = r * p.cols;
    let t = tg[r];
    if (t == p.ignore) {
        for (var c = 0u; c < p.cols; c++) {
            gx[base + c] = act(0.0);
        }
        return;
    }
    var m = f32(lg[base]);
    for (var c = 1u; c < p.cols; c++) {
        m = max(m, f32(lg[base + c]));
    }
    var s = 0.0;
    for (var c = 0u; c < p.cols; c++) {
        s += exp(f32(lg[base + c]) - m);
    }
    let k = g[0] * p.scale;
    let inv = 1.0 / s;
    let u = p.smoothing / f32(p.cols);
    for (var c = 0u; c < p.cols; c++) {
        let hit = select(0.0, 1.0 - p.smoothing, c == t);
        gx[base + c] = act(k * (exp(f32(lg[base + c]) - m) * inv - hit - u));
    }
}
