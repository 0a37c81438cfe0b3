// Softmax / log-softmax over the last axis. x, y, g, gx: (R, C); one invocation per row.
// LOG = 0: y = softmax(x); LOG = 1: y = log_softmax(x). Max-subtracted, so softmax([1234, 0])
// is [1, 0] and log_softmax(±1e4) stays finite.

override LOG: bool;

struct Params {
    rows: u32,
    cols: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG1)
fn softmax_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = linear_index(wid, nwg, lid);
    if (r >= p.rows) {
        return;
    }
    let base = r * p.cols;
    var m = x[base];
    for (var c = 1u; c < p.cols; c++) {
        m = max(m, x[base + c]);
    }
    var s = 0.0;
    for (var c = 0u; c < p.cols; c++) {
        s += exp(x[base + c] - m);
    }
    if (LOG) {
        // (x - m) - log(s), not x - (m + log(s)): m + log(s) rounds to the spacing of |m|
        // (~1e-3 at 1e4), which would shift every output of a row of large logits.
        let ls = log(s);
        for (var c = 0u; c < p.cols; c++) {
            y[base + c] = (x[base + c] - m) - ls;
        }
    } else {
        let inv = 1.0 / s;
        for (var c = 0u; c < p.cols; c++) {
            y[base + c] = exp(x[base + c] - m) * inv;
        }
    }
}

// softmax:     gx = y * (g - sum(g * y))
// log_softmax: gx = g - exp(y) * sum(g)
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> yb: array<f32>;
@group(0) @binding(3) var<storage, read_write> gx: array<f32>;

@compute @workgroup_size(WG1)
fn softmax_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = linear_index(wid, nwg, lid);
    if (r >= p.rows) {
        return;
    }
    let base = r * p.cols;
    var s = 0.0;
    for (var c = 0u; c < p.cols; c++) {
        if (LOG) {
            s += g[base + c];
        } else {
            s += g[base + c] * yb[base + c];
        }
    }
    for (var c = 0u; c < p.cols; c++) {
        if (LOG) {
            gx[base + c] = g[base + c] - exp(yb[base + c]) * s;
        } else {
            gx[base + c] = yb[base + c] * (g[base + c] - s);
        }
    }
}
