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

// The kernel's size as pipeline constants (a pipeline per size: 3×3 and 5×5 in practice), so
// the tap loops have fixed bounds: the compiler unrolls them and keeps the taps in registers.
override DKH: u32 = 3u;
override DKW: u32 = 3u;
// Largest kernel side the depthwise kernels take (ops::conv checks it).
const DMAX: u32 = 7u;

// x at (window row ki's start, column iw), 0 in the padding.
fn x_or_zero(start: i32, iw: i32) -> f32 {
    if (start < 0 || iw < 0 || iw >= i32(p.w)) {
        return 0.0;
    }
    return dx[u32(start + iw)];
}

// Stride 1, no dilation (most depthwise layers): the window slides one column a step, so each
// output pixel loads one new column of DKH values instead of the whole window.
fn depthwise_row_sliding(taps: ptr<function, array<f32, 49>>, xrow: ptr<function, array<i32, DMAX>>,
                         b0: f32, row: u32) {
    var win: array<f32, 49>;
    let iw0 = -i32(p.pl);
    // The window left of the first pixel's: its last DKW - 1 columns are the first pixel's first.
    for (var ki = 0u; ki < DKH; ki++) {
        for (var kj = 0u; kj + 1u < DKW; kj++) {
            win[ki * DKW + kj + 1u] = x_or_zero((*xrow)[ki], iw0 + i32(kj));
        }
    }
    for (var oj = 0u; oj < p.wo; oj++) {
        var acc = b0;
        let last = iw0 + i32(oj + DKW - 1u);
        for (var ki = 0u; ki < DKH; ki++) {
            for (var kj = 0u; kj + 1u < DKW; kj++) {
                win[ki * DKW + kj] = win[ki * DKW + kj + 1u];
            }
            win[ki * DKW + DKW - 1u] = x_or_zero((*xrow)[ki], last);
            for (var kj = 0u; kj < DKW; kj++) {
                acc += win[ki * DKW + kj] * (*taps)[ki * DKW + kj];
            }
        }
        dy[row * p.wo + oj] = acc;
    }
}

// One invocation per output row (n, o, oi). The row's taps are loaded once, and the rows of x
// its window reads are settled once; output pixels whose window lies inside the row skip the
// bounds checks (all but the edges).
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
    var taps: array<f32, 49>;
    for (var t = 0u; t < DKH * DKW; t++) {
        taps[t] = dwt[o * DKH * DKW + t];
    }
    // Start of each window row in x, or -1 where it lies in the padding.
    var xrow: array<i32, DMAX>;
    for (var ki = 0u; ki < DKH; ki++) {
        let ih = i32(oi * p.sh + ki * p.dh) - i32(p.pt);
        xrow[ki] = select(-1, i32(xb) + ih * i32(p.w), ih >= 0 && ih < i32(p.h));
    }
    var b0 = 0.0;
    if (p.flag == 1u) {
        b0 = dbias[o];
    }
    if (p.sw == 1u && p.dw == 1u) {
        depthwise_row_sliding(&taps, &xrow, b0, row);
        return;
    }
    let span = i32((DKW - 1u) * p.dw);
    for (var oj = 0u; oj < p.wo; oj++) {
        var acc = b0;
        let iw0 = i32(oj * p.sw) - i32(p.pl);
        let inside = iw0 >= 0 && iw0 + span < i32(p.w);
        for (var ki = 0u; ki < DKH; ki++) {
            if (xrow[ki] < 0) {
                continue;
            }
            let at = xrow[ki] + iw0;
            for (var kj = 0u; kj < DKW; kj++) {
                let iw = iw0 + i32(kj * p.dw);
                if (inside || (iw >= 0 && iw < i32(p.w))) {
                    acc += dx[u32(at + i32(kj * p.dw))] * taps[ki * DKW + kj];
                }
            }
        }
        dy[row * p.wo + oj] = acc;
    }
}

@group(0) @binding(1) var<storage, read> dg: array<f32>;
@group(0) @binding(2) var<storage, read> dw2: array<f32>;
@group(0) @binding(3) var<storage, read_write> dgx: array<f32>;

// g at (output row start, column oj), 0 outside the output.
fn g_or_zero(start: i32, oj: i32) -> f32 {
    if (start < 0 || oj < 0 || oj >= i32(p.wo)) {
        return 0.0;
    }
    return dg[u32(start + oj)];
}

// One invocation per input row (n, c, ih). The output rows each tap row reaches are settled
// once per row. With one output channel per input channel (M = 1) the taps sit in registers,
// and at stride 1 without dilation the window of g slides one column a step.
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
    // Output row oi each tap row ki reaches from this input row, or -1.
    var orow: array<i32, DMAX>;
    for (var ki = 0u; ki < DKH; ki++) {
        orow[ki] = out_pos(ih + i32(p.pt) - i32(ki * p.dh), p.sh, p.ho);
    }
    if (m == 1u && p.sw == 1u && p.dw == 1u) {
        depthwise_grad_input_sliding(&orow, (n * p.o + c) * pp, c, row);
        return;
    }
    for (var iw = 0u; iw < p.w; iw++) {
        var acc = 0.0;
        for (var ki = 0u; ki < DKH; ki++) {
            let oi = orow[ki];
            if (oi < 0) {
                continue;
            }
            for (var kj = 0u; kj < DKW; kj++) {
                let oj = out_pos(i32(iw + p.pl) - i32(kj * p.dw), p.sw, p.wo);
                if (oj < 0) {
                    continue;
                }
                for (var j = 0u; j < m; j++) {
                    let o = c * m + j;
                    acc += dg[(n * p.o + o) * pp + u32(oi) * p.wo + u32(oj)] * dw2[(o * DKH + ki) * DKW + kj];
                }
            }
        }
        dgx[row * p.w + iw] = acc;
    }
}

// M = 1, stride 1, no dilation: gx[iw] = sum over taps of g[oi(ki), iw + pl - kj] w[ki, kj]; the
// window holds g's columns iw + pl - (DKW - 1) .. iw + pl, so tap kj reads window column
// DKW - 1 - kj.
fn depthwise_grad_input_sliding(orow: ptr<function, array<i32, DMAX>>, gbase: u32, c: u32, row: u32) {
    var taps: array<f32, 49>;
    for (var t = 0u; t < DKH * DKW; t++) {
        taps[t] = dw2[c * DKH * DKW + t];
    }
    var start: array<i32, DMAX>;
    for (var ki = 0u; ki < DKH; ki++) {
        start[ki] = select(-1, i32(gbase) + (*orow)[ki] * i32(p.wo), (*orow)[ki] >= 0);
    }
    var win: array<f32, 49>;
    let first = i32(p.pl) - i32(DKW - 1u);
    for (var ki = 0u; ki < DKH; ki++) {
        for (var j = 0u; j + 1u < DKW; j++) {
            win[ki * DKW + j + 1u] = g_or_zero(start[ki], first + i32(j));
        }
    }
    for (var iw = 0u; iw < p.w; iw++) {
        var acc = 0.0;
        let newest = i32(iw + p.pl);
        for (var ki = 0u; ki < DKH; ki++) {
            for (var j = 0u; j + 1u < DKW; j++) {
                win[ki * DKW + j] = win[ki * DKW + j + 1u];
            }
            win[ki * DKW + DKW - 1u] = g_or_zero(start[ki], newest);
            for (var kj = 0u; kj < DKW; kj++) {
                acc += win[ki * DKW + DKW - 1u - kj] * taps[ki * DKW + kj];
            }
        }
        dgx[row * p.w + iw] = acc;
    }
}

// gw[o, ki, kj] = sum over n, oi, oj of g[n, o, oi, oj] x[n, c, ih, iw]: a workgroup per output
// channel. Each invocation adds its share of the output rows (n, oi) into all DKH·DKW taps at
// once (one load of g feeds every tap; at stride 1 without dilation the window of x slides a
// column a step), then the workgroup sums tap by tap.
@group(0) @binding(1) var<storage, read> wg: array<f32>;
@group(0) @binding(2) var<storage, read> wx: array<f32>;
@group(0) @binding(3) var<storage, read_write> wgw: array<f32>;

// x at (row start, column iw), 0 in the padding.
fn wx_or_zero(start: i32, iw: i32) -> f32 {
    if (start < 0 || iw < 0 || iw >= i32(p.w)) {
        return 0.0;
    }
    return wx[u32(start + iw)];
}

// Invocations per depthwise_grad_weight workgroup, and their per-tap sums: all taps are
// summed after one barrier (a tree per tap would cost DKH·DKW rounds of barriers, which a CPU
// adapter pays dearly).
const DW_WG: u32 = 64u;
var<workgroup> tap_sums: array<f32, 3136>; // 49 taps × DW_WG

// The rows (n, oi) of invocation t: x's row start for each tap row, or -1 in the padding.
fn dw_x_rows(j: u32, c: u32) -> array<i32, DMAX> {
    let n = j / p.ho;
    let oi = j % p.ho;
    var xr: array<i32, DMAX>;
    for (var ki = 0u; ki < DKH; ki++) {
        let ih = i32(oi * p.sh + ki * p.dh) - i32(p.pt);
        xr[ki] = select(-1, i32(((n * p.c + c) * p.h) * p.w) + ih * i32(p.w), ih >= 0 && ih < i32(p.h));
    }
    return xr;
}

@compute @workgroup_size(DW_WG)
fn depthwise_grad_weight(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_id) lid: vec3<u32>) {
    let o = wid.y * nwg.x + wid.x;
    let t = lid.x;
    let valid = o < p.o;
    let c = o / max(p.o / p.c, 1u);
    var acc: array<f32, 49>;
    if (valid && p.sw == 1u && p.dw == 1u) {
        for (var j = t; j < p.n * p.ho; j += DW_WG) {
            let grow = ((j / p.ho * p.o + o) * p.ho + j % p.ho) * p.wo;
            let xr = dw_x_rows(j, c);
            var win: array<f32, 49>;
            for (var ki = 0u; ki < DKH; ki++) {
                for (var kj = 0u; kj + 1u < DKW; kj++) {
                    win[ki * DKW + kj + 1u] = wx_or_zero(xr[ki], i32(kj) - i32(p.pl));
                }
            }
            for (var oj = 0u; oj < p.wo; oj++) {
                let gv = wg[grow + oj];
                let newest = i32(oj + DKW - 1u) - i32(p.pl);
                for (var ki = 0u; ki < DKH; ki++) {
                    for (var kj = 0u; kj + 1u < DKW; kj++) {
                        win[ki * DKW + kj] = win[ki * DKW + kj + 1u];
                    }
                    win[ki * DKW + DKW - 1u] = wx_or_zero(xr[ki], newest);
                    for (var kj = 0u; kj < DKW; kj++) {
                        acc[ki * DKW + kj] += gv * win[ki * DKW + kj];
                    }
                }
            }
        }
    } else if (valid) {
        for (var j = t; j < p.n * p.ho; j += DW_WG) {
            let grow = ((j / p.ho * p.o + o) * p.ho + j % p.ho) * p.wo;
            let xr = dw_x_rows(j, c);
            for (var oj = 0u; oj < p.wo; oj++) {
                let gv = wg[grow + oj];
                let iw0 = i32(oj * p.sw) - i32(p.pl);
                for (var ki = 0u; ki < DKH; ki++) {
                    for (var kj = 0u; kj < DKW; kj++) {
                        acc[ki * DKW + kj] += gv * wx_or_zero(xr[ki], iw0 + i32(kj * p.dw));
                    }
                }
            }
        }
    }
    for (var tap = 0u; tap < DKH * DKW; tap++) {
        tap_sums[tap * DW_WG + t] = acc[tap];
    }
    workgroupBarrier();
    if (valid && t < DKH * DKW) {
        var sum = 0.0;
        for (var i = 0u; i < DW_WG; i++) {
            sum += tap_sums[t * DW_WG + i];
        }
        wgw[o * DKH * DKW + t] = sum;
    }
}
