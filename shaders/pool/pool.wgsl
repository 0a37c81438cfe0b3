// 2-D pooling on NCHW tensors (src/ops/pool.rs). x, gx: (N·C, H, W); y, g, arg: (N·C, HO, WO).
// max/avg: window (KH, KW), stride (SH, SW), zero-based padding (PT, PL) with floor-mode sizes.
// Backward kernels are gather-form (one invocation per input element, no atomics).

struct Params {
    planes: u32,
    h: u32,
    w: u32,
    ho: u32,
    wo: u32,
    kh: u32,
    kw: u32,
    sh: u32,
    sw: u32,
    pt: u32,
    pl: u32,
    flag: u32, // avg: count_include_pad
}

@group(0) @binding(0) var<uniform> p: Params;

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> arg: array<u32>;

// Max over the window; arg is the flat index ih * W + iw of the first maximum in window
// order (rows, then columns), as torch. Padding counts as -inf (never selected while the
// window holds a real element, which floor mode with pad <= k/2 guarantees).
@compute @workgroup_size(WG1)
fn max_pool_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_index(wid, nwg, lid);
    if (i >= p.planes * p.ho * p.wo) {
        return;
    }
    let oj = i % p.wo;
    let oi = (i / p.wo) % p.ho;
    let plane = i / (p.ho * p.wo);
    let base = plane * p.h * p.w;
    var best = bitcast<f32>(0xff800000u);
    var at = 0xffffffffu;
    for (var ki = 0u; ki < p.kh; ki++) {
        let ih = i32(oi * p.sh + ki) - i32(p.pt);
        if (ih < 0 || ih >= i32(p.h)) {
            continue;
        }
        for (var kj = 0u; kj < p.kw; kj++) {
            let iw = i32(oj * p.sw + kj) - i32(p.pl);
            if (iw < 0 || iw >= i32(p.w)) {
                continue;
            }
            let idx = u32(ih) * p.w + u32(iw);
            let v = x[base + idx];
            // NaN propagates (torch): a NaN is taken and then kept.
            if (at == 0xffffffffu || v > best || (v != v && best == best)) {
                best = v;
                at = idx;
            }
        }
    }
    y[i] = best;
    arg[i] = at;
}

@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> am: array<u32>;
@group(0) @binding(3) var<storage, read_write> gx: array<f32>;

// Range of outputs along one axis whose window covers input position i: [lo, hi).
fn out_range(i: u32, pad: u32, k: u32, s: u32, n_out: u32) -> vec2<u32> {
    let a = i32(i + pad) - i32(k) + 1; // first window start that still covers i
    var lo = 0u;
    if (a > 0) {
        lo = (u32(a) + s - 1u) / s;
    }
    let hi = min((i + pad) / s + 1u, n_out);
    return vec2<u32>(lo, hi);
}

@compute @workgroup_size(WG1)
fn max_pool_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_index(wid, nwg, lid);
    if (i >= p.planes * p.h * p.w) {
        return;
    }
    let iw = i % p.w;
    let ih = (i / p.w) % p.h;
    let plane = i / (p.h * p.w);
    let me = ih * p.w + iw;
    let rh = out_range(ih, p.pt, p.kh, p.sh, p.ho);
    let rw = out_range(iw, p.pl, p.kw, p.sw, p.wo);
    var acc = 0.0;
    for (var oi = rh.x; oi < rh.y; oi++) {
        for (var oj = rw.x; oj < rw.y; oj++) {
            let o = (plane * p.ho + oi) * p.wo + oj;
            if (am[o] == me) {
                acc += g[o];
            }
        }
    }
    gx[i] = acc;
}

// Divisor of one avg window: kh·kw with count_include_pad, else the in-bounds elements.
fn avg_divisor(oi: u32, oj: u32) -> f32 {
    if (p.flag == 1u) {
        return f32(p.kh * p.kw);
    }
    let h0 = max(i32(oi * p.sh) - i32(p.pt), 0);
    let h1 = min(i32(oi * p.sh + p.kh) - i32(p.pt), i32(p.h));
    let w0 = max(i32(oj * p.sw) - i32(p.pl), 0);
    let w1 = min(i32(oj * p.sw + p.kw) - i32(p.pl), i32(p.w));
    return f32(max(h1 - h0, 0) * max(w1 - w0, 0));
}

@group(0) @binding(1) var<storage, read> ax: array<f32>;
@group(0) @binding(2) var<storage, read_write> ay: array<f32>;

@compute @workgroup_size(WG1)
fn avg_pool_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_index(wid, nwg, lid);
    if (i >= p.planes * p.ho * p.wo) {
        return;
    }
    let oj = i % p.wo;
    let oi = (i / p.wo) % p.ho;
    let base = (i / (p.ho * p.wo)) * p.h * p.w;
    var acc = 0.0;
    for (var ki = 0u; ki < p.kh; ki++) {
        let ih = i32(oi * p.sh + ki) - i32(p.pt);
        if (ih < 0 || ih >= i32(p.h)) {
            continue;
        }
        for (var kj = 0u; kj < p.kw; kj++) {
            let iw = i32(oj * p.sw + kj) - i32(p.pl);
            if (iw >= 0 && iw < i32(p.w)) {
                acc += ax[base + u32(ih) * p.w + u32(iw)];
            }
        }
    }
    ay[i] = acc / avg_divisor(oi, oj);
}

@group(0) @binding(1) var<storage, read> ag: array<f32>;
@group(0) @binding(2) var<storage, read_write> agx: array<f32>;

@compute @workgroup_size(WG1)
fn avg_pool_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_index(wid, nwg, lid);
    if (i >= p.planes * p.h * p.w) {
        return;
    }
    let iw = i % p.w;
    let ih = (i / p.w) % p.h;
    let plane = i / (p.h * p.w);
    let rh = out_range(ih, p.pt, p.kh, p.sh, p.ho);
    let rw = out_range(iw, p.pl, p.kw, p.sw, p.wo);
    var acc = 0.0;
    for (var oi = rh.x; oi < rh.y; oi++) {
        for (var oj = rw.x; oj < rw.y; oj++) {
            acc += ag[(plane * p.ho + oi) * p.wo + oj] / avg_divisor(oi, oj);
        }
    }
    agx[i] = acc;
}

// Adaptive average pooling, torch bins: rows [floor(i·H/HO), ceil((i+1)·H/HO)).
fn bin_lo(i: u32, n: u32, m: u32) -> u32 {
    return (i * n) / m;
}
fn bin_hi(i: u32, n: u32, m: u32) -> u32 {
    return ((i + 1u) * n + m - 1u) / m;
}

@compute @workgroup_size(WG1)
fn adaptive_avg_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_index(wid, nwg, lid);
    if (i >= p.planes * p.ho * p.wo) {
        return;
    }
    let oj = i % p.wo;
    let oi = (i / p.wo) % p.ho;
    let base = (i / (p.ho * p.wo)) * p.h * p.w;
    let h0 = bin_lo(oi, p.h, p.ho);
    let h1 = bin_hi(oi, p.h, p.ho);
    let w0 = bin_lo(oj, p.w, p.wo);
    let w1 = bin_hi(oj, p.w, p.wo);
    var acc = 0.0;
    for (var ih = h0; ih < h1; ih++) {
        for (var iw = w0; iw < w1; iw++) {
            acc += ax[base + ih * p.w + iw];
        }
    }
    ay[i] = acc / f32((h1 - h0) * (w1 - w0));
}

@compute @workgroup_size(WG1)
fn adaptive_avg_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_index(wid, nwg, lid);
    if (i >= p.planes * p.h * p.w) {
        return;
    }
    let iw = i % p.w;
    let ih = (i / p.w) % p.h;
    let plane = i / (p.h * p.w);
    var acc = 0.0;
    for (var oi = 0u; oi < p.ho; oi++) {
        let h0 = bin_lo(oi, p.h, p.ho);
        let h1 = bin_hi(oi, p.h, p.ho);
        if (ih < h0 || ih >= h1) {
            continue;
        }
        for (var oj = 0u; oj < p.wo; oj++) {
            let w0 = bin_lo(oj, p.w, p.wo);
            let w1 = bin_hi(oj, p.w, p.wo);
            if (iw >= w0 && iw < w1) {
                acc += ag[(plane * p.ho + oi) * p.wo + oj] / f32((h1 - h0) * (w1 - w0));
            }
        }
    }
    agx[i] = acc;
}
