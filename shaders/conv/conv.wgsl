// 2-D convolution on NCHW tensors (src/ops/conv.rs): im2col / col2im gathers around the matmul
// kernels, bias and layout helpers, and direct depthwise kernels.
// x, gx: (N, C, H, W); w, gw: (O, C/G, KH, KW); y, g: (N, O, HO, WO); P = HO * WO.
// cols, gcols: (G, KP, NB, P) for a chunk of NB images starting at image N0, where
// K = C/G * KH * KW rows padded with zero rows to KP (a multiple of 4 for the blocked matmul).
// tmp: (G, O/G, NB, P) = (O, NB, P), the matmul's product layout.

struct Params {
    n: u32,
    c: u32,
    h: u32,
    w: u32,
    o: u32,
    ho: u32,
    wo: u32,
    groups: u32,
    kh: u32,
    kw: u32,
    sh: u32,
    sw: u32,
    dh: u32,
    dw: u32,
    pt: u32,
    pl: u32,
    n0: u32,
    nb: u32,
    kp: u32,
    flag: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

// ---------------------------------------------------------------- im2col
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> cols: array<f32>;

// One invocation per output row (g, k, n, oi), looping over oj: the index arithmetic (integer
// division is slow lane by lane on CPU adapters) is paid once per row, not per element.
@compute @workgroup_size(WG1)
fn im2col(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_index(wid, nwg, lid);
    if (i >= p.groups * p.kp * p.nb * p.ho) {
        return;
    }
    let oi = i % p.ho;
    let n = (i / p.ho) % p.nb;
    let k = (i / (p.ho * p.nb)) % p.kp;
    let g = i / (p.ho * p.nb * p.kp);
    let kk = p.kh * p.kw;
    let cg = p.c / p.groups;
    let out = i * p.wo;
    var row_ok = k < cg * kk;
    var xrow = 0u;
    var kj = 0u;
    if (row_ok) {
        let c = g * cg + k / kk;
        let r = k % kk;
        kj = r % p.kw;
        let ih = i32(oi * p.sh + (r / p.kw) * p.dh) - i32(p.pt);
        row_ok = ih >= 0 && ih < i32(p.h);
        if (row_ok) {
            xrow = (((p.n0 + n) * p.c + c) * p.h + u32(ih)) * p.w;
        }
    }
    if (!row_ok) {
        for (var oj = 0u; oj < p.wo; oj++) {
            cols[out + oj] = 0.0;
        }
        return;
    }
    var iw = i32(kj * p.dw) - i32(p.pl);
    for (var oj = 0u; oj < p.wo; oj++) {
        var v = 0.0;
        if (iw >= 0 && iw < i32(p.w)) {
            v = x[xrow + u32(iw)];
        }
        cols[out + oj] = v;
        iw += i32(p.sw);
    }
}

// The columns transposed, colst: (G, NB·P, KP), for the weight gradient gw = g · colsᵀ
// without a transpose copy. One invocation per (g, n, q) row of KP values; the loop nest over
// (c, ki, kj) needs no division.
@group(0) @binding(1) var<storage, read> xt: array<f32>;
@group(0) @binding(2) var<storage, read_write> colst: array<f32>;

@compute @workgroup_size(WG1)
fn im2col_t(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_index(wid, nwg, lid);
    let pp = p.ho * p.wo;
    if (i >= p.groups * p.nb * pp) {
        return;
    }
    let q = i % pp;
    let n = (i / pp) % p.nb;
    let g = i / (pp * p.nb);
    let cg = p.c / p.groups;
    let ih0 = i32((q / p.wo) * p.sh) - i32(p.pt);
    let iw0 = i32((q % p.wo) * p.sw) - i32(p.pl);
    var out = i * p.kp;
    for (var cl = 0u; cl < cg; cl++) {
        let plane = ((p.n0 + n) * p.c + g * cg + cl) * p.h;
        for (var ki = 0u; ki < p.kh; ki++) {
            let ih = ih0 + i32(ki * p.dh);
            let row_ok = ih >= 0 && ih < i32(p.h);
            let xrow = (plane + u32(max(ih, 0))) * p.w;
            var iw = iw0;
            for (var kj = 0u; kj < p.kw; kj++) {
                var v = 0.0;
                if (row_ok && iw >= 0 && iw < i32(p.w)) {
                    v = xt[xrow + u32(iw)];
                }
                colst[out] = v;
                out += 1u;
                iw += i32(p.dw);
            }
        }
    }
    for (var k = cg * p.kh * p.kw; k < p.kp; k++) {
        colst[out] = 0.0;
        out += 1u;
    }
}

// Output position whose window tap lands on padded coordinate v (= input + pad - tap·dil)
// along one axis, or -1 when none does. Stride 1 (the common case) skips the division, which
// CPU adapters execute lane by lane; the branch is uniform.
fn out_pos(v: i32, s: u32, n_out: u32) -> i32 {
    if (v < 0) {
        return -1;
    }
    var q = u32(v);
    if (s != 1u) {
        if (q % s != 0u) {
            return -1;
        }
        q = q / s;
    }
    return select(-1, i32(q), q < n_out);
}

// ---------------------------------------------------------------- col2im (gather, no atomics)
@group(0) @binding(1) var<storage, read> gcols: array<f32>;
@group(0) @binding(2) var<storage, read_write> gx: array<f32>;

// One invocation per input row (n, c, ih) of the chunk.
@compute @workgroup_size(WG1)
fn col2im(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = linear_index(wid, nwg, lid);
    if (row >= p.nb * p.c * p.h) {
        return;
    }
    let ih = i32(row % p.h);
    let c = (row / p.h) % p.c;
    let n = row / (p.h * p.c);
    let cg = p.c / p.groups;
    let g = c / cg;
    let pp = p.ho * p.wo;
    let kbase = (c % cg) * p.kh;
    let out = p.n0 * p.c * p.h * p.w + row * p.w;
    for (var iw = 0u; iw < p.w; iw++) {
        var acc = 0.0;
        for (var ki = 0u; ki < p.kh; ki++) {
            let oi = out_pos(ih + i32(p.pt) - i32(ki * p.dh), p.sh, p.ho);
            if (oi < 0) {
                continue;
            }
            for (var kj = 0u; kj < p.kw; kj++) {
                let oj = out_pos(i32(iw + p.pl) - i32(kj * p.dw), p.sw, p.wo);
                if (oj < 0) {
                    continue;
                }
                let k = (kbase + ki) * p.kw + kj;
                acc += gcols[((g * p.kp + k) * p.nb + n) * pp + u32(oi) * p.wo + u32(oj)];
            }
        }
        gx[out + iw] = acc;
    }
}

// ---------------------------------------------------------------- layout helpers
// y[n0 + n, o, q] = tmp[o, n, q] (+ bias[o] when flag = 1)
@group(0) @binding(1) var<storage, read> tmp: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG1)
fn tmp_to_out(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_index(wid, nwg, lid);
    let pp = p.ho * p.wo;
    if (i >= p.nb * p.o * pp) {
        return;
    }
    let q = i % pp;
    let o = (i / pp) % p.o;
    let n = i / (pp * p.o);
    var v = tmp[(o * p.nb + n) * pp + q];
    if (p.flag == 1u) {
        v += bias[o];
    }
    y[p.n0 * p.o * pp + i] = v;
}

// tmpg[o, n, q] = g[n0 + n, o, q]
@group(0) @binding(1) var<storage, read> gy: array<f32>;
@group(0) @binding(2) var<storage, read_write> tmpg: array<f32>;

@compute @workgroup_size(WG1)
fn out_to_tmp(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_index(wid, nwg, lid);
    let pp = p.ho * p.wo;
    if (i >= p.nb * p.o * pp) {
        return;
    }
    let q = i % pp;
    let n = (i / pp) % p.nb;
    let o = i / (pp * p.nb);
    tmpg[i] = gy[((p.n0 + n) * p.o + o) * pp + q];
}

// wp[g, og, k] = w[g * OG + og, k] for k < K, 0 for K <= k < KP: (O, K) -> (O, KP)
@group(0) @binding(1) var<storage, read> wsrc: array<f32>;
@group(0) @binding(2) var<storage, read_write> wpad: array<f32>;

@compute @workgroup_size(WG1)
fn pad_weight(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_index(wid, nwg, lid);
    if (i >= p.o * p.kp) {
        return;
    }
    let kk = (p.c / p.groups) * p.kh * p.kw;
    let k = i % p.kp;
    let o = i / p.kp;
    wpad[i] = select(0.0, wsrc[o * kk + k], k < kk);
}

// gw[o, k] (+)= r[o, k] for k < K; r: (G, OG, KP) = (O, KP). flag = 1 accumulates.
@group(0) @binding(1) var<storage, read> r: array<f32>;
@group(0) @binding(2) var<storage, read_write> gw: array<f32>;

@compute @workgroup_size(WG1)
fn store_weight_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_index(wid, nwg, lid);
    let kk = (p.c / p.groups) * p.kh * p.kw;
    if (i >= p.o * kk) {
        return;
    }
    let v = r[(i / kk) * p.kp + i % kk];
    gw[i] = select(v, gw[i] + v, p.flag == 1u);
}

// y[n, o, q] += bias[o], in place (the 1x1 path's matmul output).
@group(0) @binding(1) var<storage, read> bias2: array<f32>;
@group(0) @binding(2) var<storage, read_write> yb: array<f32>;

@compute @workgroup_size(WG1)
fn add_bias(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_index(wid, nwg, lid);
    let pp = p.ho * p.wo;
    if (i >= p.n * p.o * pp) {
        return;
    }
    yb[i] += bias2[(i / pp) % p.o];
}

// gb[o] = sum over n, q of g[n, o, q]: one workgroup per channel, tree-reduced.
@group(0) @binding(1) var<storage, read> gsum: array<f32>;
@group(0) @binding(2) var<storage, read_write> gb: array<f32>;

var<workgroup> partial: array<f32, WG1>;

@compute @workgroup_size(WG1)
fn bias_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
    let o = linear_group(wid, nwg);
    let t = lid.x;
    let valid = o < p.o;
    let pp = p.ho * p.wo;
    var acc = 0.0;
    if (valid) {
        for (var j = t; j < p.n * pp; j += WG1) {
            acc += gsum[((j / pp) * p.o + o) * pp + j % pp];
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
        gb[o] = partial[0];
    }
}

// ---------------------------------------------------------------- depthwise (G = C, O = C * M)
// M = O / C output channels per input channel; w: (O, 1, KH, KW).
@group(0) @binding(1) var<storage, read> dx: array<f32>;
@group(0) @binding(2) var<storage, read> dwt: array<f32>;
@group(0) @binding(3) var<storage, read> dbias: array<f32>;
@group(0) @binding(4) var<storage, read_write> dy: array<f32>;

// One invocation per output row (n, o, oi).
@compute @workgroup_size(WG1)
fn depthwise_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = linear_index(wid, nwg, lid);
    if (row >= p.n * p.o * p.ho) {
        return;
    }
    let oi = row % p.ho;
    let o = (row / p.ho) % p.o;
    let n = row / (p.ho * p.o);
    let c = o / (p.o / p.c);
    let xb = (n * p.c + c) * p.h * p.w;
    let wb = o * p.kh * p.kw;
    var b0 = 0.0;
    if (p.flag == 1u) {
        b0 = dbias[o];
    }
    for (var oj = 0u; oj < p.wo; oj++) {
        var acc = b0;
        for (var ki = 0u; ki < p.kh; ki++) {
            let ih = i32(oi * p.sh + ki * p.dh) - i32(p.pt);
            if (ih < 0 || ih >= i32(p.h)) {
                continue;
            }
            var iw = i32(oj * p.sw) - i32(p.pl);
            for (var kj = 0u; kj < p.kw; kj++) {
                if (iw >= 0 && iw < i32(p.w)) {
                    acc += dx[xb + u32(ih) * p.w + u32(iw)] * dwt[wb + ki * p.kw + kj];
                }
                iw += i32(p.dw);
            }
        }
        dy[row * p.wo + oj] = acc;
    }
}

@group(0) @binding(1) var<storage, read> dg: array<f32>;
@group(0) @binding(2) var<storage, read> dw2: array<f32>;
@group(0) @binding(3) var<storage, read_write> dgx: array<f32>;

// One invocation per input row (n, c, ih).
@compute @workgroup_size(WG1)
fn depthwise_grad_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = linear_index(wid, nwg, lid);
    if (row >= p.n * p.c * p.h) {
        return;
    }
    let ih = i32(row % p.h);
    let c = (row / p.h) % p.c;
    let n = row / (p.h * p.c);
    let m = p.o / p.c;
    let pp = p.ho * p.wo;
    for (var iw = 0u; iw < p.w; iw++) {
        var acc = 0.0;
        for (var ki = 0u; ki < p.kh; ki++) {
            let oi = out_pos(ih + i32(p.pt) - i32(ki * p.dh), p.sh, p.ho);
            if (oi < 0) {
                continue;
            }
            for (var kj = 0u; kj < p.kw; kj++) {
                let oj = out_pos(i32(iw + p.pl) - i32(kj * p.dw), p.sw, p.wo);
                if (oj < 0) {
                    continue;
                }
                for (var j = 0u; j < m; j++) {
                    let o = c * m + j;
                    acc += dg[(n * p.o + o) * pp + u32(oi) * p.wo + u32(oj)] * dw2[(o * p.kh + ki) * p.kw + kj];
                }
            }
        }
        dgx[row * p.w + iw] = acc;
    }
}

// gw[o, ki, kj] = sum over n, oi, oj of g[n, o, oi, oj] x[n, c, ih, iw]: a workgroup per tap.
@group(0) @binding(1) var<storage, read> wg: array<f32>;
@group(0) @binding(2) var<storage, read> wx: array<f32>;
@group(0) @binding(3) var<storage, read_write> wgw: array<f32>;

@compute @workgroup_size(WG1)
fn depthwise_grad_weight(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_id) lid: vec3<u32>) {
    let tap = linear_group(wid, nwg);
    let t = lid.x;
    let kk = p.kh * p.kw;
    let valid = tap < p.o * kk;
    let o = tap / kk;
    let ki = (tap % kk) / p.kw;
    let kj = tap % p.kw;
    let c = o / max(p.o / p.c, 1u);
    let pp = p.ho * p.wo;
    var acc = 0.0;
    if (valid) {
        // One output row (n, oi) per step, so the divisions are paid per row.
        for (var j = t; j < p.n * p.ho; j += WG1) {
            let n = j / p.ho;
            let oi = j % p.ho;
            let ih = i32(oi * p.sh + ki * p.dh) - i32(p.pt);
            if (ih < 0 || ih >= i32(p.h)) {
                continue;
            }
            let grow = ((n * p.o + o) * p.ho + oi) * p.wo;
            let xrow = ((n * p.c + c) * p.h + u32(ih)) * p.w;
            var iw = i32(kj * p.dw) - i32(p.pl);
            for (var oj = 0u; oj < p.wo; oj++) {
                if (iw >= 0 && iw < i32(p.w)) {
                    acc += wg[grow + oj] * wx[xrow + u32(iw)];
                }
                iw += i32(p.sw);
            }
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
        wgw[tap] = partial[0];
    }
}
