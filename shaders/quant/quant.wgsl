// Frozen weights kept block-quantized on the device (GGML's formats) and dequantized in
// registers: the products a frozen linear weight takes part in (forward, and the backward with
// respect to the input), the embedding gather, and a plain dequantize.
//
// Device layout (src/tensor/quant.rs): the file's blocks with a 2-byte header padded to a word,
// so every block starts on a u32 and no byte is read across a word:
//   Q4_0  5 words / 32:  [d f16 | pad] [16 bytes of nibbles]          x = (q - 8) d
//   Q4_1  5 words / 32:  [d f16 | m f16] [16 bytes of nibbles]        x = q d + m
//   Q8_0  9 words / 32:  [d f16 | pad] [32 signed bytes]              x = q d
//   Q4_K 36 words / 256: [d | dmin] [12 bytes of 6-bit scales/mins] [128 bytes of nibbles]
//   F16, BF16  4 words / 8: two values a word, the lower element in the low half
// In a 32-element (sub-)block the low nibbles are elements 0..16 and the high ones 16..32.
// A weight `[rows, cols]` is row-major with cols a multiple of the block, so element e of the
// flat order is element e % B of block e / B.

override QTYPE: u32 = 0u; // 0 Q4_0, 1 Q4_1, 2 Q8_0, 3 Q4_K, 4 F16, 5 BF16

@group(0) @binding(1) var<storage, read> qw: array<u32>;

// Eight 4-bit codes starting at bit `shift` of each byte of two words, as floats.
fn nibbles8(w0: u32, w1: u32, shift: u32) -> array<vec4<f32>, 2> {
    let a = vec4<u32>(w0 >> shift, w0 >> (shift + 8u), w0 >> (shift + 16u), w0 >> (shift + 24u));
    let b = vec4<u32>(w1 >> shift, w1 >> (shift + 8u), w1 >> (shift + 16u), w1 >> (shift + 24u));
    return array<vec4<f32>, 2>(vec4<f32>(a & vec4<u32>(15u)), vec4<f32>(b & vec4<u32>(15u)));
}

// The four signed bytes of a word, as floats (arithmetic shifts sign-extend).
fn bytes4_signed(w: u32) -> vec4<f32> {
    let v = bitcast<vec4<i32>>(vec4<u32>(w << 24u, w << 16u, w << 8u, w));
    return vec4<f32>(v >> vec4<u32>(24u));
}

// Byte j of a Q4_K block's 12 scale bytes (words 1..4 of the block).
fn k_scale_byte(base: u32, j: u32) -> u32 {
    return (qw[base + 1u + (j >> 2u)] >> ((j & 3u) * 8u)) & 255u;
}

// Sub-block j's 6-bit (scale, min) of a Q4_K block: pairs 0..4 are the low 6 bits of bytes
// 0..4 / 4..8; pairs 4..8 take their low nibble from bytes 8..12 and their top two bits from
// the spare high bits of bytes 0..8.
fn k_scale_min(base: u32, j: u32) -> vec2<f32> {
    if (j < 4u) {
        return vec2<f32>(f32(k_scale_byte(base, j) & 63u), f32(k_scale_byte(base, j + 4u) & 63u));
    }
    let hi = k_scale_byte(base, j + 4u);
    let sc = (hi & 15u) | ((k_scale_byte(base, j - 4u) >> 6u) << 4u);
    let mn = (hi >> 4u) | ((k_scale_byte(base, j) >> 6u) << 4u);
    return vec2<f32>(f32(sc), f32(mn));
}

// Eight 16-bit floats from four words, in element order. bf16 is the high half of an f32, so
// shifting it up is the exact conversion; f16 needs no shader-f16 support either.
fn halves8(at: u32) -> array<vec4<f32>, 2> {
    let w = vec4<u32>(qw[at], qw[at + 1u], qw[at + 2u], qw[at + 3u]);
    if (QTYPE == 4u) {
        return array<vec4<f32>, 2>(
            vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y)),
            vec4<f32>(unpack2x16float(w.z), unpack2x16float(w.w)));
    }
    let lo = bitcast<vec4<f32>>(w << vec4<u32>(16u));
    let hi = bitcast<vec4<f32>>(w & vec4<u32>(0xffff0000u));
    return array<vec4<f32>, 2>(vec4<f32>(lo.x, hi.x, lo.y, hi.y), vec4<f32>(lo.z, hi.z, lo.w, hi.w));
}

// The eight weights at flat elements e..e+8 (e a multiple of 8).
fn deq8(e: u32) -> array<vec4<f32>, 2> {
    if (QTYPE >= 4u) {
        return halves8(e >> 1u);
    }
    if (QTYPE == 3u) {
        let base = (e >> 8u) * 36u;
        let w = e & 255u;
        let sub = w >> 5u;
        let at = base + 4u + (sub >> 1u) * 8u + ((w >> 3u) & 3u) * 2u;
        let q = nibbles8(qw[at], qw[at + 1u], (sub & 1u) * 4u);
        let dm = unpack2x16float(qw[base]);
        let sm = k_scale_min(base, sub);
        let a = dm.x * sm.x;
        let b = -dm.y * sm.y;
        return array<vec4<f32>, 2>(q[0] * a + b, q[1] * a + b);
    }
    if (QTYPE == 2u) {
        let base = (e >> 5u) * 9u;
        let at = base + 1u + ((e & 31u) >> 2u);
        let d = unpack2x16float(qw[base]).x;
        return array<vec4<f32>, 2>(bytes4_signed(qw[at]) * d, bytes4_signed(qw[at + 1u]) * d);
    }
    let base = (e >> 5u) * 5u;
    let o8 = (e & 31u) >> 3u;
    let at = base + 1u + (o8 & 1u) * 2u;
    let q = nibbles8(qw[at], qw[at + 1u], (o8 >> 1u) * 4u);
    let dm = unpack2x16float(qw[base]);
    // Q4_0: (q - 8) d; Q4_1: q d + m.
    let b = select(-8.0 * dm.x, dm.y, QTYPE == 1u);
    return array<vec4<f32>, 2>(q[0] * dm.x + b, q[1] * dm.x + b);
}

struct Params {
    m: u32, // rows of x (and of y / dx)
    n: u32, // rows of the weight (its outputs)
    k: u32, // columns of the weight (its inputs), a multiple of the block
    has_bias: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

// Activations (x, y, g, dx, embedding rows) are `act`: f16 in the half variant, accumulated in
// f32 all the same; weights are whatever QTYPE says, dequantized to f32 in registers.
@group(0) @binding(2) var<storage, read> x4: array<vec4<act>>;
@group(0) @binding(3) var<storage, read_write> y: array<act>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;

// Rows of x and weight rows per qmatmul_nt invocation. Lavapipe runs every storage load lane by
// lane, so the tile is as large as keeps loads rare: per 8-element chunk of k, 8 dequantized
// weight chunks and 32 rows of x feed 2048 multiply-adds.
const NT_ROWS: u32 = 32u;
const NT_COLS: u32 = 8u;

// y (m, n) = x (m, k) · Wᵀ (+ bias): each invocation owns 32 rows x 8 weight rows. Rows and
// weight rows past the edge are clamped when read and skipped when written.
@compute @workgroup_size(8)
fn qmatmul_nt(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let n0 = (wid.x * 8u + lid.x) * NT_COLS;
    let m0 = (wid.z * 65535u + wid.y) * NT_ROWS;
    if (n0 >= p.n || m0 >= p.m) {
        return;
    }
    let k4 = p.k / 4u;
    // Row r's outputs n0..n0+4 in acc[2r], n0+4..n0+8 in acc[2r+1].
    var acc: array<vec4<f32>, 64>;
    var rows: array<u32, NT_COLS>;
    for (var c = 0u; c < NT_COLS; c++) {
        rows[c] = min(n0 + c, p.n - 1u) * p.k;
    }
    for (var k = 0u; k < p.k; k += 8u) {
        var lo: array<mat4x4<f32>, 2>; // [half of the chunk]: columns = weight rows 0..4
        var hi: array<mat4x4<f32>, 2>; // weight rows 4..8
        for (var c = 0u; c < 4u; c++) {
            let a = deq8(rows[c] + k);
            let b = deq8(rows[c + 4u] + k);
            lo[0][c] = a[0];
            lo[1][c] = a[1];
            hi[0][c] = b[0];
            hi[1][c] = b[1];
        }
        for (var r = 0u; r < NT_ROWS; r++) {
            let at = min(m0 + r, p.m - 1u) * k4 + k / 4u;
            let xa = vec4<f32>(x4[at]);
            let xb = vec4<f32>(x4[at + 1u]);
            acc[2u * r] += xa * lo[0] + xb * lo[1];
            acc[2u * r + 1u] += xa * hi[0] + xb * hi[1];
        }
    }
    for (var r = 0u; r < NT_ROWS; r++) {
        let row = m0 + r;
        if (row >= p.m) {
            break;
        }
        for (var c = 0u; c < NT_COLS; c++) {
            let col = n0 + c;
            if (col < p.n) {
                var o = acc[2u * r + c / 4u][c % 4u];
                if (p.has_bias != 0u) {
                    o += bias[col];
                }
                y[row * p.n + col] = act(o);
            }
        }
    }
}

@group(0) @binding(2) var<storage, read> g: array<act>;
@group(0) @binding(3) var<storage, read_write> out4: array<vec4<act>>;

// Rows of g per qmatmul_nn invocation: per 4 weight rows, 4 dequantized chunks and 32 loads
// of g (4 values each) feed 1024 multiply-adds (lavapipe runs every storage load lane by lane).
const NN_ROWS: u32 = 32u;

@group(0) @binding(2) var<storage, read> g4: array<vec4<act>>;

// Four weight rows' chunks as the columns of two matrices: M · (g values) sums them.
struct Chunk4 {
    lo: mat4x4<f32>,
    hi: mat4x4<f32>,
}

fn chunk4(n: u32, k0: u32) -> Chunk4 {
    let a = deq8(n * p.k + k0);
    let b = deq8((n + 1u) * p.k + k0);
    let c = deq8((n + 2u) * p.k + k0);
    let d = deq8((n + 3u) * p.k + k0);
    return Chunk4(mat4x4<f32>(a[0], b[0], c[0], d[0]), mat4x4<f32>(a[1], b[1], c[1], d[1]));
}

// dx (m, k) = g (m, n) · W for n % 4 == 0: each invocation owns 32 rows x 8 columns of dx (one
// chunk), summing over the weight's rows in order, four at a time.
@compute @workgroup_size(8)
fn qmatmul_nn(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let k0 = (wid.x * 8u + lid.x) * 8u;
    let m0 = (wid.z * 65535u + wid.y) * NN_ROWS;
    if (k0 >= p.k || m0 >= p.m) {
        return;
    }
    let n4 = p.n / 4u;
    var lo: array<vec4<f32>, NN_ROWS>;
    var hi: array<vec4<f32>, NN_ROWS>;
    for (var j = 0u; j < n4; j++) {
        let w = chunk4(4u * j, k0);
        for (var r = 0u; r < NN_ROWS; r++) {
            let gv = vec4<f32>(g4[min(m0 + r, p.m - 1u) * n4 + j]);
            lo[r] += w.lo * gv;
            hi[r] += w.hi * gv;
        }
    }
    let k4 = p.k / 4u;
    for (var r = 0u; r < NN_ROWS; r++) {
        let row = m0 + r;
        if (row >= p.m) {
            break;
        }
        out4[row * k4 + k0 / 4u] = vec4<act>(lo[r]);
        out4[row * k4 + k0 / 4u + 1u] = vec4<act>(hi[r]);
    }
}

// The same for any n: one weight row at a time, 8 rows of dx per invocation.
@compute @workgroup_size(8)
fn qmatmul_nn_any(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let k0 = (wid.x * 8u + lid.x) * 8u;
    let m0 = (wid.z * 65535u + wid.y) * 8u;
    if (k0 >= p.k || m0 >= p.m) {
        return;
    }
    var lo: array<vec4<f32>, 8>;
    var hi: array<vec4<f32>, 8>;
    for (var n = 0u; n < p.n; n++) {
        let w = deq8(n * p.k + k0);
        for (var r = 0u; r < 8u; r++) {
            let gv = vec4<f32>(f32(g[min(m0 + r, p.m - 1u) * p.n + n]));
            lo[r] = fma(gv, w[0], lo[r]);
            hi[r] = fma(gv, w[1], hi[r]);
        }
    }
    let k4 = p.k / 4u;
    for (var r = 0u; r < 8u; r++) {
        let row = m0 + r;
        if (row >= p.m) {
            break;
        }
        out4[row * k4 + k0 / 4u] = vec4<act>(lo[r]);
        out4[row * k4 + k0 / 4u + 1u] = vec4<act>(hi[r]);
    }
}

@group(0) @binding(2) var<storage, read> ids: array<u32>;

// out (rows, k) = W[ids] (p.m = rows, p.k = the row length): one chunk of 8 per invocation.
@compute @workgroup_size(WG1)
fn qembedding(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let j = linear_index(wid, nwg, lid);
    let chunks = p.k / 8u;
    if (j >= p.m * chunks) {
        return;
    }
    let t = j / chunks;
    let c = j % chunks;
    let w = deq8(ids[t] * p.k + c * 8u);
    out4[t * (p.k / 4u) + c * 2u] = vec4<act>(w[0]);
    out4[t * (p.k / 4u) + c * 2u + 1u] = vec4<act>(w[1]);
}

@group(0) @binding(2) var<storage, read_write> dq4: array<vec4<f32>>;

// dq4 = the whole weight in f32 (p.m = elements / 8): one chunk of 8 per invocation.
@compute @workgroup_size(WG1)
fn dequantize(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let j = linear_index(wid, nwg, lid);
    if (j >= p.m) {
        return;
    }
    let w = deq8(j * 8u);
    dq4[2u * j] = w[0];
    dq4[2u * j + 1u] = w[1];
}
