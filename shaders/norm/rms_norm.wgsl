// RMSNorm over the last axis (Llama). x, y, g, gx: (R, C); w, gw: (C); rstd: (R).
// y = x * rstd * w, rstd = 1 / sqrt(mean(x²) + eps). x, y, g, gx in `act` (f16 in the half
// variant); w, gw, rstd and every sum in f32.

struct Params {
    rows: u32,
    cols: u32,
    eps: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

@group(0) @binding(1) var<storage, read> x: array<act>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<act>;
@group(0) @binding(4) var<storage, read_write> rstd: array<f32>;

@compute @workgroup_size(WG1)
fn rms_norm_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = linear_index(wid, nwg, lid);
    if (r >= p.rows) {
        return;
    }
    let base = r * p.cols;
    var s = 0.0;
    for (var c = 0u; c < p.cols; c++) {
        let v = f32(x[base + c]);
        s += v * v;
    }
    let rs = inverseSqrt(s / f32(p.cols) + p.eps);
    for (var c = 0u; c < p.cols; c++) {
        y[base + c] = act(f32(x[base + c]) * rs * w[c]);
    }
    rstd[r] = rs;
}

// dx_j = rstd * g_j w_j - x_j * rstd³ * mean_k(g_k w_k x_k)
@group(0) @binding(1) var<storage, read> g: array<act>;
@group(0) @binding(2) var<storage, read> xb: array<act>;
@group(0) @binding(3) var<storage, read> wb: array<f32>;
@group(0) @binding(4) var<storage, read> rb: array<f32>;
@group(0) @binding(5) var<storage, read_write> gx: array<act>;

@compute @workgroup_size(WG1)
fn rms_norm_backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                           @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = linear_index(wid, nwg, lid);
    if (r >= p.rows) {
        return;
    }
    let base = r * p.cols;
    let rs = rb[r];
    var s = 0.0;
    for (var c = 0u; c < p.cols; c++) {
        s += f32(g[base + c]) * wb[c] * f32(xb[base + c]);
    }
    let k = rs * rs * rs * s / f32(p.cols);
    for (var c = 0u; c < p.cols; c++) {
        gx[base + c] = act(rs * f32(g[base + c]) * wb[c] - f32(xb[base + c]) * k);
    }
}

// gw[c] = sum_r g[r, c] * x[r, c] * rstd[r]
@group(0) @binding(1) var<storage, read> gp: array<act>;
@group(0) @binding(2) var<storage, read> xp: array<act>;
@group(0) @binding(3) var<storage, read> rp: array<f32>;
@group(0) @binding(4) var<storage, read_write> gw: array<f32>;

@compute @workgroup_size(WG1)
fn rms_norm_backward_weight(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                            @builtin(local_invocation_id) lid: vec3<u32>) {
    let c = linear_index(wid, nwg, lid);
    if (c >= p.cols) {
        return;
    }
    var s = 0.0;
    for (var r = 0u; r < p.rows; r++) {
        s += f32(gp[r * p.cols + c]) * f32(xp[r * p.cols + c]) * rp[r];
    }
    gw[c] = s;
}
