// Reductions over one axis. x: (O, L, I) -> out: (O, I); idx: (O, I) argmax for max.
// *_rows: one invocation per output (many outputs). *_wide: one workgroup per output, for few
// outputs over a long axis (e.g. a loss summed to a scalar), tree-reduced in workgroup memory.

struct Params {
    outer: u32,
    len: u32,
    inner: u32,
    scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> idx: array<u32>;

@compute @workgroup_size(WG1)
fn sum_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let o = linear_index(wid, nwg, lid);
    if (o >= p.outer * p.inner) {
        return;
    }
    let base = (o / p.inner) * p.len * p.inner + o % p.inner;
    var acc = 0.0;
    for (var l = 0u; l < p.len; l++) {
        acc += x[base + l * p.inner];
    }
    out[o] = acc * p.scale;
}

@compute @workgroup_size(WG1)
fn max_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let o = linear_index(wid, nwg, lid);
    if (o >= p.outer * p.inner) {
        return;
    }
    let base = (o / p.inner) * p.len * p.inner + o % p.inner;
    var best = x[base];
    var arg = 0u;
    for (var l = 1u; l < p.len; l++) {
        let v = x[base + l * p.inner];
        if (v > best) {
            best = v;
            arg = l;
        }
    }
    out[o] = best;
    idx[o] = arg;
}

var<workgroup> partial: array<f32, WG1>;
var<workgroup> partial_idx: array<u32, WG1>;

@compute @workgroup_size(WG1)
fn sum_wide(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let o = linear_group(wid, nwg);
    let t = lid.x;
    // Every invocation reaches the barriers; out-of-range groups just reduce zeros.
    let valid = o < p.outer * p.inner;
    let base = (o / p.inner) * p.len * p.inner + o % p.inner;
    var acc = 0.0;
    if (valid) {
        for (var l = t; l < p.len; l += WG1) {
            acc += x[base + l * p.inner];
        }
    }
    partial[t] = acc;
    workgroupBarrier();
    for (var s = WG1 / 2u; s > 0u; s = s / 2u) {
        if (t < s) {
            partial[t] += partial[t + s];
        }
        workgroupBarrier();
    }
    if (t == 0u && valid) {
        out[o] = partial[0] * p.scale;
    }
}

@compute @workgroup_size(WG1)
fn max_wide(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let o = linear_group(wid, nwg);
    let t = lid.x;
    let valid = o < p.outer * p.inner;
    let base = (o / p.inner) * p.len * p.inner + o % p.inner;
    var best = bitcast<f32>(0xff800000u); // -inf
    var arg = 0xffffffffu;
    if (valid) {
        for (var l = t; l < p.len; l += WG1) {
            let v = x[base + l * p.inner];
            if (v > best || arg == 0xffffffffu) {
                best = v;
                arg = l;
            }
        }
    }
    partial[t] = best;
    partial_idx[t] = arg;
    workgroupBarrier();
    for (var s = WG1 / 2u; s > 0u; s = s / 2u) {
        if (t < s) {
            let v = partial[t + s];
            let i = partial_idx[t + s];
            // Larger value wins; ties go to the lower index, as in the row kernel.
            let take = i != 0xffffffffu && (partial_idx[t] == 0xffffffffu || v > partial[t] ||
                (v == partial[t] && i < partial_idx[t]));
            if (take) {
                partial[t] = v;
                partial_idx[t] = i;
            }
        }
        workgroupBarrier();
    }
    if (t == 0u && valid) {
        out[o] = partial[0];
        idx[o] = partial_idx[0];
    }
}

// Backward of sum/mean: gx[o, l, i] = g[o, i] * scale. gx: (O, L, I)
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read_write> gx: array<f32>;

@compute @workgroup_size(WG1)
fn expand_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_id) lid: vec3<u32>) {
    let j = linear_index(wid, nwg, lid);
    if (j >= p.outer * p.len * p.inner) {
        return;
    }
    let o = j / (p.len * p.inner);
    let i = j % p.inner;
    gx[j] = g[o * p.inner + i] * p.scale;
}

// Backward of max: the gradient flows to the (first) arg max only.
@group(0) @binding(1) var<storage, read> gm: array<f32>;
@group(0) @binding(2) var<storage, read> am: array<u32>;
@group(0) @binding(3) var<storage, read_write> gxm: array<f32>;

@compute @workgroup_size(WG1)
fn max_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
    let j = linear_index(wid, nwg, lid);
    if (j >= p.outer * p.len * p.inner) {
        return;
    }
    let o = j / (p.len * p.inner);
    let l = (j / p.inner) % p.len;
    let i = j % p.inner;
    let k = o * p.inner + i;
    gxm[j] = select(0.0, gm[k], am[k] == l);
}
