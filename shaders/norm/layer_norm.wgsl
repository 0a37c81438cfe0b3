// LayerNorm over the last axis. x, y, g, gx: (R, C); w, b, gw, gb: (C); mean, rstd: (R).
// y = (x - mean) * rstd * w + b, rstd = 1 / sqrt(var + eps) with the biased variance (torch).
// x, y, g, gx in `act` (f16 in the half variant); parameters, statistics and sums in f32.

struct Params {
    rows: u32,
    cols: u32,
    eps: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

@group(0) @binding(1) var<storage, read> x: array<act>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<act>;
@group(0) @binding(5) var<storage, read_write> mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> rstd: array<f32>;

@compute @workgroup_size(WG1)
fn layer_norm_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = linear_index(wid, nwg, lid);
    if (r >= p.rows) {
        return;
    }
    let base = r * p.cols;
    let n = f32(p.cols);
    // The mean as x0 + mean(x - x0): a constant row then gives mu == x exactly, so xhat = 0 and
    // y = b. Summing x itself rounds (7 copies of -3.7 do not sum to 7 * -3.7 in f32), and
    // the error, amplified by rstd = 1/sqrt(eps) ~ 316, showed up in y.
    let x0 = f32(x[base]);
    var s = 0.0;
    for (var c = 0u; c < p.cols; c++) {
        s += f32(x[base + c]) - x0;
    }
    let mu = x0 + s / n;
    // Two passes (not E[x²] - E[x]²): rows of ±7e9 would cancel catastrophically.
    var v = 0.0;
    for (var c = 0u; c < p.cols; c++) {
        let d = f32(x[base + c]) - mu;
        v += d * d;
    }
    let rs = inverseSqrt(v / n + p.eps);
    for (var c = 0u; c < p.cols; c++) {
        y[base + c] = act((f32(x[base + c]) - mu) * rs * w[c] + b[c]);
    }
    mean[r] = mu;
    rstd[r] = rs;
}

// dx = rstd * (gh - mean(gh) - xhat * mean(gh * xhat)), gh = g * w, xhat = (x - mean) * rstd
@group(0) @binding(1) var<storage, read> g: array<act>;
@group(0) @binding(2) var<storage, read> xb: array<act>;
@group(0) @binding(3) var<storage, read> wb: array<f32>;
@group(0) @binding(4) var<storage, read> mb: array<f32>;
@group(0) @binding(5) var<storage, read> rb: array<f32>;
@group(0) @binding(6) var<storage, read_write> gx: array<act>;

@compute @workgroup_size(WG1)
fn layer_norm_backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                             @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = linear_index(wid, nwg, lid);
    if (r >= p.rows) {
        return;
    }
    let base = r * p.cols;
    let mu = mb[r];
    let rs = rb[r];
    var s1 = 0.0;
    var s2 = 0.0;
    for (var c = 0u; c < p.cols; c++) {
        let gh = f32(g[base + c]) * wb[c];
        s1 += gh;
        s2 += gh * (f32(xb[base + c]) - mu) * rs;
    }
    let n = f32(p.cols);
    s1 = s1 / n;
    s2 = s2 / n;
    for (var c = 0u; c < p.cols; c++) {
        let xhat = (f32(xb[base + c]) - mu) * rs;
        gx[base + c] = act(rs * (f32(g[base + c]) * wb[c] - s1 - xhat * s2));
    }
}

// gw[c] = sum_r g[r, c] * xhat[r, c], gb[c] = sum_r g[r, c]: one invocation per column, rows
// summed in order so the result is deterministic.
@group(0) @binding(1) var<storage, read> gp: array<act>;
@group(0) @binding(2) var<storage, read> xp: array<act>;
@group(0) @binding(3) var<storage, read> mp: array<f32>;
@group(0) @binding(4) var<storage, read> rp: array<f32>;
@group(0) @binding(5) var<storage, read_write> gw: array<f32>;
@group(0) @binding(6) var<storage, read_write> gb: array<f32>;

@compute @workgroup_size(WG1)
fn layer_norm_backward_params(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                              @builtin(local_invocation_id) lid: vec3<u32>) {
    let c = linear_index(wid, nwg, lid);
    if (c >= p.cols) {
        return;
    }
    var sw = 0.0;
    var sb = 0.0;
    for (var r = 0u; r < p.rows; r++) {
        let gv = f32(gp[r * p.cols + c]);
        sw += gv * (f32(xp[r * p.cols + c]) - mp[r]) * rp[r];
        sb += gv;
    }
    gw[c] = sw;
    gb[c] = sb;
}
