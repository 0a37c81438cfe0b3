// BatchNorm over (N, C, HW) (src/ops/batch_norm.rs): statistics per channel over N·HW.
// x, y, g, gx: (N, C, HW); w, b, mean, rstd, running_mean, running_var, gw, gb: (C).
// Per-channel reductions use one workgroup per channel, summed in workgroup memory; the mean
// is subtracted before squaring (two passes), as layer_norm does.

struct Params {
    n: u32,
    c: u32,
    hw: u32,
    flag: u32, // stats: update running stats; backward_input: training mode
    momentum: f32,
    eps: f32,
    count: u32, // backward_input: values per channel over all ranks (sync batch norm); 0: N·HW
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

var<workgroup> partial: array<f32, WG1>;
var<workgroup> partial2: array<f32, WG1>;

// Sum partial[] (and partial2[]) over the workgroup; every invocation sees the totals. Two
// levels of 16 rather than a tree: three barriers instead of nine, which matters on CPU
// adapters (lavapipe switches every invocation out at a barrier).
fn tree_sum(t: u32) {
    workgroupBarrier();
    if (t < 16u) {
        var a = 0.0;
        var b = 0.0;
        for (var i = 0u; i < WG1 / 16u; i++) {
            a += partial[t * (WG1 / 16u) + i];
            b += partial2[t * (WG1 / 16u) + i];
        }
        partial[t * (WG1 / 16u)] = a;
        partial2[t * (WG1 / 16u)] = b;
    }
    workgroupBarrier();
    if (t == 0u) {
        var a = 0.0;
        var b = 0.0;
        for (var i = 0u; i < 16u; i++) {
            a += partial[i * (WG1 / 16u)];
            b += partial2[i * (WG1 / 16u)];
        }
        partial[0] = a;
        partial2[0] = b;
    }
    workgroupBarrier();
}

// Invocation t's walk over channel c's N·HW elements, WG1 apart, as (image, offset) stepped
// without a division per element: the index of element (n, k) is (n·C + c)·HW + k.
struct Walk {
    n: u32,
    k: u32,
}

fn walk_start(t: u32) -> Walk {
    return Walk(t / p.hw, t % p.hw);
}

fn walk_next(w: Walk) -> Walk {
    var next = Walk(w.n + WG1 / p.hw, w.k + WG1 % p.hw);
    if (next.k >= p.hw) {
        next.k -= p.hw;
        next.n += 1u;
    }
    return next;
}

fn at(c: u32, w: Walk) -> u32 {
    return (w.n * p.c + c) * p.hw + w.k;
}

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> mean: array<f32>;
@group(0) @binding(3) var<storage, read_write> rstd: array<f32>;
@group(0) @binding(4) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(5) var<storage, read_write> running_var: array<f32>;

@compute @workgroup_size(WG1)
fn bn_stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let c = linear_group(wid, nwg);
    let t = lid.x;
    let valid = c < p.c;
    let m = p.n * p.hw;
    var s = 0.0;
    if (valid) {
        for (var w = walk_start(t); w.n < p.n; w = walk_next(w)) {
            s += x[at(c, w)];
        }
    }
    partial[t] = s;
    partial2[t] = 0.0;
    tree_sum(t);
    let mu = partial[0] / f32(m);
    workgroupBarrier();
    var v = 0.0;
    if (valid) {
        for (var w = walk_start(t); w.n < p.n; w = walk_next(w)) {
            let d = x[at(c, w)] - mu;
            v += d * d;
        }
    }
    partial[t] = v;
    tree_sum(t);
    if (t == 0u && valid) {
        let var_b = partial[0] / f32(m);
        mean[c] = mu;
        rstd[c] = inverseSqrt(var_b + p.eps);
        if (p.flag == 1u) {
            let var_u = partial[0] / f32(max(m, 2u) - 1u);
            running_mean[c] = (1.0 - p.momentum) * running_mean[c] + p.momentum * mu;
            running_var[c] = (1.0 - p.momentum) * running_var[c] + p.momentum * var_u;
        }
    }
}

// Eval mode: the running statistics as (mean, rstd).
@group(0) @binding(1) var<storage, read> rm: array<f32>;
@group(0) @binding(2) var<storage, read> rv: array<f32>;
@group(0) @binding(3) var<storage, read_write> emean: array<f32>;
@group(0) @binding(4) var<storage, read_write> erstd: array<f32>;

@compute @workgroup_size(WG1)
fn bn_eval_stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>) {
    let c = linear_index(wid, nwg, lid);
    if (c < p.c) {
        emean[c] = rm[c];
        erstd[c] = inverseSqrt(rv[c] + p.eps);
    }
}

// y = (x - mean) * rstd * w + b
@group(0) @binding(1) var<storage, read> ax: array<f32>;
@group(0) @binding(2) var<storage, read> amean: array<f32>;
@group(0) @binding(3) var<storage, read> arstd: array<f32>;
@group(0) @binding(4) var<storage, read> aw: array<f32>;
@group(0) @binding(5) var<storage, read> ab: array<f32>;
@group(0) @binding(6) var<storage, read_write> ay: array<f32>;

@compute @workgroup_size(WG1)
fn bn_apply(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_index(wid, nwg, lid);
    if (i >= p.n * p.c * p.hw) {
        return;
    }
    let c = (i / p.hw) % p.c;
    ay[i] = (ax[i] - amean[c]) * arstd[c] * aw[c] + ab[c];
}

// gb[c] = sum g, gw[c] = sum g * xhat over N·HW.
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> gxs: array<f32>;
@group(0) @binding(3) var<storage, read> gmean: array<f32>;
@group(0) @binding(4) var<storage, read> grstd: array<f32>;
@group(0) @binding(5) var<storage, read_write> gw: array<f32>;
@group(0) @binding(6) var<storage, read_write> gb: array<f32>;

@compute @workgroup_size(WG1)
fn bn_backward_reduce(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_id) lid: vec3<u32>) {
    let c = linear_group(wid, nwg);
    let t = lid.x;
    let valid = c < p.c;
    var sg = 0.0;
    var sgx = 0.0;
    if (valid) {
        let mu = gmean[c];
        let rs = grstd[c];
        for (var w = walk_start(t); w.n < p.n; w = walk_next(w)) {
            let k = at(c, w);
            sg += g[k];
            sgx += g[k] * (gxs[k] - mu) * rs;
        }
    }
    partial[t] = sg;
    partial2[t] = sgx;
    tree_sum(t);
    if (t == 0u && valid) {
        gb[c] = partial[0];
        gw[c] = partial2[0];
    }
}

// Training: gx = w rstd (g - gb / M - xhat gw / M); eval: gx = g w rstd.
@group(0) @binding(1) var<storage, read> bg: array<f32>;
@group(0) @binding(2) var<storage, read> bx: array<f32>;
@group(0) @binding(3) var<storage, read> bmean: array<f32>;
@group(0) @binding(4) var<storage, read> brstd: array<f32>;
@group(0) @binding(5) var<storage, read> bw: array<f32>;
@group(0) @binding(6) var<storage, read> bgw: array<f32>;
@group(0) @binding(7) var<storage, read> bgb: array<f32>;
@group(0) @binding(8) var<storage, read_write> bgx: array<f32>;

@compute @workgroup_size(WG1)
fn bn_backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_index(wid, nwg, lid);
    if (i >= p.n * p.c * p.hw) {
        return;
    }
    let c = (i / p.hw) % p.c;
    let rs = brstd[c];
    var d = bg[i];
    if (p.flag == 1u) {
        let m = f32(select(p.n * p.hw, p.count, p.count != 0u));
        let xhat = (bx[i] - bmean[c]) * rs;
        d = d - bgb[c] / m - xhat * bgw[c] / m;
    }
    bgx[i] = bw[c] * rs * d;
}
