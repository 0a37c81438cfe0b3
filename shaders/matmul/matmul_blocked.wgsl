// C = A · B, register-blocked with vec4 loads and no workgroup memory: the variant for CPU
// adapters (lavapipe, WARP), where workgroup memory and barriers are slow and each invocation
// is a SIMD lane. Each invocation computes TM rows x (4*TN4) columns of C.
// A: (batch, M, K), B: (batch, K, N), C: (batch, M, N), row-major, K % 4 == 0 and N % 4 == 0.
// Strides are per batch in vec4 units; 0 broadcasts an operand over the batch.

const TM: u32 = 8u;
const TN4: u32 = 4u;

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
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> c: array<vec4<f32>>;

@compute @workgroup_size(8, 8, 1)
fn matmul_blocked(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n4 = p.n / 4u;
    let k4 = p.k / 4u;
    let col4 = gid.x * TN4;
    let row = gid.y * TM;
    if (row >= p.m || col4 >= n4 || gid.z >= p.batch) {
        return;
    }
    let a0 = gid.z * p.stride_a;
    let b0 = gid.z * p.stride_b;
    // Rows and columns past the edge read the last valid one (their results are not stored),
    // so the inner loop needs no branches.
    var arow: array<u32, TM>;
    for (var i = 0u; i < TM; i++) {
        arow[i] = a0 + min(row + i, p.m - 1u) * k4;
    }
    var bcol: array<u32, TN4>;
    for (var j = 0u; j < TN4; j++) {
        bcol[j] = b0 + min(col4 + j, n4 - 1u);
    }
    var acc: array<vec4<f32>, 32>; // TM * TN4
    for (var kk = 0u; kk < k4; kk++) {
        var bv: array<vec4<f32>, 16>; // 4 rows of B x TN4
        let brow = kk * 4u * n4;
        for (var r = 0u; r < 4u; r++) {
            for (var j = 0u; j < TN4; j++) {
                bv[r * TN4 + j] = b[brow + r * n4 + bcol[j]];
            }
        }
        for (var i = 0u; i < TM; i++) {
            let av = a[arow[i] + kk];
            for (var j = 0u; j < TN4; j++) {
                var s = acc[i * TN4 + j];
                s = fma(vec4<f32>(av.x), bv[j], s);
                s = fma(vec4<f32>(av.y), bv[TN4 + j], s);
                s = fma(vec4<f32>(av.z), bv[2u * TN4 + j], s);
                s = fma(vec4<f32>(av.w), bv[3u * TN4 + j], s);
                acc[i * TN4 + j] = s;
            }
        }
    }
    let c0 = gid.z * p.stride_c;
    for (var i = 0u; i < TM; i++) {
        if (row + i < p.m) {
            for (var j = 0u; j < TN4; j++) {
                if (col4 + j < n4) {
                    c[c0 + (row + i) * n4 + col4 + j] = acc[i * TN4 + j];
                }
            }
        }
    }
}
