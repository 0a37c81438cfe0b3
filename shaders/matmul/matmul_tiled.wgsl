// C = A · B with workgroup-memory tiling: the variant for real GPUs. A workgroup of 16x16
// invocations computes a 64x64 tile of C, each invocation a 4x4 block, staging 64x16 slices of
// A and 16x64 slices of B in workgroup memory. Any M, N, K (edges are zero-padded).
// A: (batch, M, K), B: (batch, K, N), C: (batch, M, N), strides per batch in floats.

const TILE: u32 = 64u;
const KT: u32 = 16u;

struct Params {
    m: u32,
    n: u32,
    k: u32,
    batch: u32,
    stride_a: u32,
    stride_b: u32,
    stride_c: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// Operands and result in `act` (f16 in the half variant); tiles and sums in f32.
@group(0) @binding(1) var<storage, read> a: array<act>;
@group(0) @binding(2) var<storage, read> b: array<act>;
@group(0) @binding(3) var<storage, read_write> c: array<act>;

var<workgroup> ta: array<f32, 1024>; // TILE * KT, [row][k]
var<workgroup> tb: array<f32, 1024>; // KT * TILE, [k][col]

@compute @workgroup_size(16, 16, 1)
fn matmul_tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    let a0 = wid.z * p.stride_a;
    let b0 = wid.z * p.stride_b;
    let t = lid.y * 16u + lid.x;
    var acc: array<vec4<f32>, 4>;
    for (var k0 = 0u; k0 < p.k; k0 += KT) {
        // 256 invocations load 1024 values of each tile: 4 each.
        for (var q = 0u; q < 4u; q++) {
            let e = t + q * 256u;
            let ar = e / KT;
            let ak = e % KT;
            let gr = row0 + ar;
            let gk = k0 + ak;
            ta[e] = select(0.0, f32(a[a0 + min(gr, p.m - 1u) * p.k + min(gk, p.k - 1u)]), gr < p.m && gk < p.k);
            let bk = e / TILE;
            let bc = e % TILE;
            let gk2 = k0 + bk;
            let gc = col0 + bc;
            tb[e] = select(0.0, f32(b[b0 + min(gk2, p.k - 1u) * p.n + min(gc, p.n - 1u)]), gk2 < p.k && gc < p.n);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < KT; kk++) {
            let bv = vec4<f32>(tb[kk * TILE + lid.x * 4u], tb[kk * TILE + lid.x * 4u + 1u],
                tb[kk * TILE + lid.x * 4u + 2u], tb[kk * TILE + lid.x * 4u + 3u]);
            for (var i = 0u; i < 4u; i++) {
                acc[i] = fma(vec4<f32>(ta[(lid.y * 4u + i) * KT + kk]), bv, acc[i]);
            }
        }
        workgroupBarrier();
    }
    let c0 = wid.z * p.stride_c;
    for (var i = 0u; i < 4u; i++) {
        let r = row0 + lid.y * 4u + i;
        if (r < p.m) {
            for (var j = 0u; j < 4u; j++) {
                let col = col0 + lid.x * 4u + j;
                if (col < p.n) {
                    c[c0 + r * p.n + col] = act(acc[i][j]);
                }
            }
        }
    }
}
