// C = A · B, register-blocked with vec4 loads and no workgroup memory: the variant for CPU
// adapters (lavapipe, WARP), where workgroup memory and barriers are slow and each invocation
// is one SIMD lane. Each invocation computes 16 rows x 16 columns of C, in 64 vec4
// accumulators held in named registers. The loops are unrolled by hand: lavapipe's LLVM keeps
// dynamically indexed private arrays in memory, which measured ~10x slower.
// A: (batch, M, K), B: (batch, K, N), C: (batch, M, N), row-major, K % 4 == 0 and N % 4 == 0.
// Strides are per batch in vec4 units; 0 broadcasts an operand over the batch.
// Workgroup 64x1; src/ops/matmul.rs BLOCK_* constants must match.

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

@compute @workgroup_size(64, 1, 1)
fn matmul_blocked(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n4 = p.n / 4u;
    let k4 = p.k / 4u;
    let col4 = gid.x * 4u;
    let row = gid.y * 16u;
    if (row >= p.m || col4 >= n4 || gid.z >= p.batch) {
        return;
    }
    let a0 = gid.z * p.stride_a;
    let b0 = gid.z * p.stride_b;
    // Rows and columns past the edge read the last valid one (their results are not stored),
    // so the inner loop has no branches.
    let last_row = p.m - 1u;
    let last_col = n4 - 1u;
    let ar0 = a0 + min(row + 0u, last_row) * k4;
    let ar1 = a0 + min(row + 1u, last_row) * k4;
    let ar2 = a0 + min(row + 2u, last_row) * k4;
    let ar3 = a0 + min(row + 3u, last_row) * k4;
    let ar4 = a0 + min(row + 4u, last_row) * k4;
    let ar5 = a0 + min(row + 5u, last_row) * k4;
    let ar6 = a0 + min(row + 6u, last_row) * k4;
    let ar7 = a0 + min(row + 7u, last_row) * k4;
    let ar8 = a0 + min(row + 8u, last_row) * k4;
    let ar9 = a0 + min(row + 9u, last_row) * k4;
    let ar10 = a0 + min(row + 10u, last_row) * k4;
    let ar11 = a0 + min(row + 11u, last_row) * k4;
    let ar12 = a0 + min(row + 12u, last_row) * k4;
    let ar13 = a0 + min(row + 13u, last_row) * k4;
    let ar14 = a0 + min(row + 14u, last_row) * k4;
    let ar15 = a0 + min(row + 15u, last_row) * k4;
    let bc0 = b0 + min(col4 + 0u, last_col);
    let bc1 = b0 + min(col4 + 1u, last_col);
    let bc2 = b0 + min(col4 + 2u, last_col);
    let bc3 = b0 + min(col4 + 3u, last_col);
    var c0_0 = vec4<f32>(0.0);
    var c0_1 = vec4<f32>(0.0);
    var c0_2 = vec4<f32>(0.0);
    var c0_3 = vec4<f32>(0.0);
    var c1_0 = vec4<f32>(0.0);
    var c1_1 = vec4<f32>(0.0);
    var c1_2 = vec4<f32>(0.0);
    var c1_3 = vec4<f32>(0.0);
    var c2_0 = vec4<f32>(0.0);
    var c2_1 = vec4<f32>(0.0);
    var c2_2 = vec4<f32>(0.0);
    var c2_3 = vec4<f32>(0.0);
    var c3_0 = vec4<f32>(0.0);
    var c3_1 = vec4<f32>(0.0);
    var c3_2 = vec4<f32>(0.0);
    var c3_3 = vec4<f32>(0.0);
    var c4_0 = vec4<f32>(0.0);
    var c4_1 = vec4<f32>(0.0);
    var c4_2 = vec4<f32>(0.0);
    var c4_3 = vec4<f32>(0.0);
    var c5_0 = vec4<f32>(0.0);
    var c5_1 = vec4<f32>(0.0);
    var c5_2 = vec4<f32>(0.0);
    var c5_3 = vec4<f32>(0.0);
    var c6_0 = vec4<f32>(0.0);
    var c6_1 = vec4<f32>(0.0);
    var c6_2 = vec4<f32>(0.0);
    var c6_3 = vec4<f32>(0.0);
    var c7_0 = vec4<f32>(0.0);
    var c7_1 = vec4<f32>(0.0);
    var c7_2 = vec4<f32>(0.0);
    var c7_3 = vec4<f32>(0.0);
    var c8_0 = vec4<f32>(0.0);
    var c8_1 = vec4<f32>(0.0);
    var c8_2 = vec4<f32>(0.0);
    var c8_3 = vec4<f32>(0.0);
    var c9_0 = vec4<f32>(0.0);
    var c9_1 = vec4<f32>(0.0);
    var c9_2 = vec4<f32>(0.0);
    var c9_3 = vec4<f32>(0.0);
    var c10_0 = vec4<f32>(0.0);
    var c10_1 = vec4<f32>(0.0);
    var c10_2 = vec4<f32>(0.0);
    var c10_3 = vec4<f32>(0.0);
    var c11_0 = vec4<f32>(0.0);
    var c11_1 = vec4<f32>(0.0);
    var c11_2 = vec4<f32>(0.0);
    var c11_3 = vec4<f32>(0.0);
    var c12_0 = vec4<f32>(0.0);
    var c12_1 = vec4<f32>(0.0);
    var c12_2 = vec4<f32>(0.0);
    var c12_3 = vec4<f32>(0.0);
    var c13_0 = vec4<f32>(0.0);
    var c13_1 = vec4<f32>(0.0);
    var c13_2 = vec4<f32>(0.0);
    var c13_3 = vec4<f32>(0.0);
    var c14_0 = vec4<f32>(0.0);
    var c14_1 = vec4<f32>(0.0);
    var c14_2 = vec4<f32>(0.0);
    var c14_3 = vec4<f32>(0.0);
    var c15_0 = vec4<f32>(0.0);
    var c15_1 = vec4<f32>(0.0);
    var c15_2 = vec4<f32>(0.0);
    var c15_3 = vec4<f32>(0.0);
    for (var kk = 0u; kk < k4; kk++) {
        let r0 = kk * 4u * n4;
        let r1 = r0 + n4;
        let r2 = r1 + n4;
        let r3 = r2 + n4;
        let b0_0 = b[r0 + bc0];
        let b0_1 = b[r0 + bc1];
        let b0_2 = b[r0 + bc2];
        let b0_3 = b[r0 + bc3];
        let b1_0 = b[r1 + bc0];
        let b1_1 = b[r1 + bc1];
        let b1_2 = b[r1 + bc2];
        let b1_3 = b[r1 + bc3];
        let b2_0 = b[r2 + bc0];
        let b2_1 = b[r2 + bc1];
        let b2_2 = b[r2 + bc2];
        let b2_3 = b[r2 + bc3];
        let b3_0 = b[r3 + bc0];
        let b3_1 = b[r3 + bc1];
        let b3_2 = b[r3 + bc2];
        let b3_3 = b[r3 + bc3];
        let a0 = a[ar0 + kk];
        c0_0 = fma(vec4<f32>(a0.x), b0_0, fma(vec4<f32>(a0.y), b1_0, fma(vec4<f32>(a0.z), b2_0, fma(vec4<f32>(a0.w), b3_0, c0_0))));
        c0_1 = fma(vec4<f32>(a0.x), b0_1, fma(vec4<f32>(a0.y), b1_1, fma(vec4<f32>(a0.z), b2_1, fma(vec4<f32>(a0.w), b3_1, c0_1))));
        c0_2 = fma(vec4<f32>(a0.x), b0_2, fma(vec4<f32>(a0.y), b1_2, fma(vec4<f32>(a0.z), b2_2, fma(vec4<f32>(a0.w), b3_2, c0_2))));
        c0_3 = fma(vec4<f32>(a0.x), b0_3, fma(vec4<f32>(a0.y), b1_3, fma(vec4<f32>(a0.z), b2_3, fma(vec4<f32>(a0.w), b3_3, c0_3))));
        let a1 = a[ar1 + kk];
        c1_0 = fma(vec4<f32>(a1.x), b0_0, fma(vec4<f32>(a1.y), b1_0, fma(vec4<f32>(a1.z), b2_0, fma(vec4<f32>(a1.w), b3_0, c1_0))));
        c1_1 = fma(vec4<f32>(a1.x), b0_1, fma(vec4<f32>(a1.y), b1_1, fma(vec4<f32>(a1.z), b2_1, fma(vec4<f32>(a1.w), b3_1, c1_1))));
        c1_2 = fma(vec4<f32>(a1.x), b0_2, fma(vec4<f32>(a1.y), b1_2, fma(vec4<f32>(a1.z), b2_2, fma(vec4<f32>(a1.w), b3_2, c1_2))));
        c1_3 = fma(vec4<f32>(a1.x), b0_3, fma(vec4<f32>(a1.y), b1_3, fma(vec4<f32>(a1.z), b2_3, fma(vec4<f32>(a1.w), b3_3, c1_3))));
        let a2 = a[ar2 + kk];
        c2_0 = fma(vec4<f32>(a2.x), b0_0, fma(vec4<f32>(a2.y), b1_0, fma(vec4<f32>(a2.z), b2_0, fma(vec4<f32>(a2.w), b3_0, c2_0))));
        c2_1 = fma(vec4<f32>(a2.x), b0_1, fma(vec4<f32>(a2.y), b1_1, fma(vec4<f32>(a2.z), b2_1, fma(vec4<f32>(a2.w), b3_1, c2_1))));
        c2_2 = fma(vec4<f32>(a2.x), b0_2, fma(vec4<f32>(a2.y), b1_2, fma(vec4<f32>(a2.z), b2_2, fma(vec4<f32>(a2.w), b3_2, c2_2))));
        c2_3 = fma(vec4<f32>(a2.x), b0_3, fma(vec4<f32>(a2.y), b1_3, fma(vec4<f32>(a2.z), b2_3, fma(vec4<f32>(a2.w), b3_3, c2_3))));
        let a3 = a[ar3 + kk];
        c3_0 = fma(vec4<f32>(a3.x), b0_0, fma(vec4<f32>(a3.y), b1_0, fma(vec4<f32>(a3.z), b2_0, fma(vec4<f32>(a3.w), b3_0, c3_0))));
        c3_1 = fma(vec4<f32>(a3.x), b0_1, fma(vec4<f32>(a3.y), b1_1, fma(vec4<f32>(a3.z), b2_1, fma(vec4<f32>(a3.w), b3_1, c3_1))));
        c3_2 = fma(vec4<f32>(a3.x), b0_2, fma(vec4<f32>(a3.y), b1_2, fma(vec4<f32>(a3.z), b2_2, fma(vec4<f32>(a3.w), b3_2, c3_2))));
        c3_3 = fma(vec4<f32>(a3.x), b0_3, fma(vec4<f32>(a3.y), b1_3, fma(vec4<f32>(a3.z), b2_3, fma(vec4<f32>(a3.w), b3_3, c3_3))));
        let a4 = a[ar4 + kk];
        c4_0 = fma(vec4<f32>(a4.x), b0_0, fma(vec4<f32>(a4.y), b1_0, fma(vec4<f32>(a4.z), b2_0, fma(vec4<f32>(a4.w), b3_0, c4_0))));
        c4_1 = fma(vec4<f32>(a4.x), b0_1, fma(vec4<f32>(a4.y), b1_1, fma(vec4<f32>(a4.z), b2_1, fma(vec4<f32>(a4.w), b3_1, c4_1))));
        c4_2 = fma(vec4<f32>(a4.x), b0_2, fma(vec4<f32>(a4.y), b1_2, fma(vec4<f32>(a4.z), b2_2, fma(vec4<f32>(a4.w), b3_2, c4_2))));
        c4_3 = fma(vec4<f32>(a4.x), b0_3, fma(vec4<f32>(a4.y), b1_3, fma(vec4<f32>(a4.z), b2_3, fma(vec4<f32>(a4.w), b3_3, c4_3))));
        let a5 = a[ar5 + kk];
        c5_0 = fma(vec4<f32>(a5.x), b0_0, fma(vec4<f32>(a5.y), b1_0, fma(vec4<f32>(a5.z), b2_0, fma(vec4<f32>(a5.w), b3_0, c5_0))));
        c5_1 = fma(vec4<f32>(a5.x), b0_1, fma(vec4<f32>(a5.y), b1_1, fma(vec4<f32>(a5.z), b2_1, fma(vec4<f32>(a5.w), b3_1, c5_1))));
        c5_2 = fma(vec4<f32>(a5.x), b0_2, fma(vec4<f32>(a5.y), b1_2, fma(vec4<f32>(a5.z), b2_2, fma(vec4<f32>(a5.w), b3_2, c5_2))));
        c5_3 = fma(vec4<f32>(a5.x), b0_3, fma(vec4<f32>(a5.y), b1_3, fma(vec4<f32>(a5.z), b2_3, fma(vec4<f32>(a5.w), b3_3, c5_3))));
        let a6 = a[ar6 + kk];
        c6_0 = fma(vec4<f32>(a6.x), b0_0, fma(vec4<f32>(a6.y), b1_0, fma(vec4<f32>(a6.z), b2_0, fma(vec4<f32>(a6.w), b3_0, c6_0))));
        c6_1 = fma(vec4<f32>(a6.x), b0_1, fma(vec4<f32>(a6.y), b1_1, fma(vec4<f32>(a6.z), b2_1, fma(vec4<f32>(a6.w), b3_1, c6_1))));
        c6_2 = fma(vec4<f32>(a6.x), b0_2, fma(vec4<f32>(a6.y), b1_2, fma(vec4<f32>(a6.z), b2_2, fma(vec4<f32>(a6.w), b3_2, c6_2))));
        c6_3 = fma(vec4<f32>(a6.x), b0_3, fma(vec4<f32>(a6.y), b1_3, fma(vec4<f32>(a6.z), b2_3, fma(vec4<f32>(a6.w), b3_3, c6_3))));
        let a7 = a[ar7 + kk];
        c7_0 = fma(vec4<f32>(a7.x), b0_0, fma(vec4<f32>(a7.y), b1_0, fma(vec4<f32>(a7.z), b2_0, fma(vec4<f32>(a7.w), b3_0, c7_0))));
        c7_1 = fma(vec4<f32>(a7.x), b0_1, fma(vec4<f32>(a7.y), b1_1, fma(vec4<f32>(a7.z), b2_1, fma(vec4<f32>(a7.w), b3_1, c7_1))));
        c7_2 = fma(vec4<f32>(a7.x), b0_2, fma(vec4<f32>(a7.y), b1_2, fma(vec4<f32>(a7.z), b2_2, fma(vec4<f32>(a7.w), b3_2, c7_2))));
        c7_3 = fma(vec4<f32>(a7.x), b0_3, fma(vec4<f32>(a7.y), b1_3, fma(vec4<f32>(a7.z), b2_3, fma(vec4<f32>(a7.w), b3_3, c7_3))));
        let a8 = a[ar8 + kk];
        c8_0 = fma(vec4<f32>(a8.x), b0_0, fma(vec4<f32>(a8.y), b1_0, fma(vec4<f32>(a8.z), b2_0, fma(vec4<f32>(a8.w), b3_0, c8_0))));
        c8_1 = fma(vec4<f32>(a8.x), b0_1, fma(vec4<f32>(a8.y), b1_1, fma(vec4<f32>(a8.z), b2_1, fma(vec4<f32>(a8.w), b3_1, c8_1))));
        c8_2 = fma(vec4<f32>(a8.x), b0_2, fma(vec4<f32>(a8.y), b1_2, fma(vec4<f32>(a8.z), b2_2, fma(vec4<f32>(a8.w), b3_2, c8_2))));
        c8_3 = fma(vec4<f32>(a8.x), b0_3, fma(vec4<f32>(a8.y), b1_3, fma(vec4<f32>(a8.z), b2_3, fma(vec4<f32>(a8.w), b3_3, c8_3))));
        let a9 = a[ar9 + kk];
        c9_0 = fma(vec4<f32>(a9.x), b0_0, fma(vec4<f32>(a9.y), b1_0, fma(vec4<f32>(a9.z), b2_0, fma(vec4<f32>(a9.w), b3_0, c9_0))));
        c9_1 = fma(vec4<f32>(a9.x), b0_1, fma(vec4<f32>(a9.y), b1_1, fma(vec4<f32>(a9.z), b2_1, fma(vec4<f32>(a9.w), b3_1, c9_1))));
        c9_2 = fma(vec4<f32>(a9.x), b0_2, fma(vec4<f32>(a9.y), b1_2, fma(vec4<f32>(a9.z), b2_2, fma(vec4<f32>(a9.w), b3_2, c9_2))));
        c9_3 = fma(vec4<f32>(a9.x), b0_3, fma(vec4<f32>(a9.y), b1_3, fma(vec4<f32>(a9.z), b2_3, fma(vec4<f32>(a9.w), b3_3, c9_3))));
        let a10 = a[ar10 + kk];
        c10_0 = fma(vec4<f32>(a10.x), b0_0, fma(vec4<f32>(a10.y), b1_0, fma(vec4<f32>(a10.z), b2_0, fma(vec4<f32>(a10.w), b3_0, c10_0))));
        c10_1 = fma(vec4<f32>(a10.x), b0_1, fma(vec4<f32>(a10.y), b1_1, fma(vec4<f32>(a10.z), b2_1, fma(vec4<f32>(a10.w), b3_1, c10_1))));
        c10_2 = fma(vec4<f32>(a10.x), b0_2, fma(vec4<f32>(a10.y), b1_2, fma(vec4<f32>(a10.z), b2_2, fma(vec4<f32>(a10.w), b3_2, c10_2))));
        c10_3 = fma(vec4<f32>(a10.x), b0_3, fma(vec4<f32>(a10.y), b1_3, fma(vec4<f32>(a10.z), b2_3, fma(vec4<f32>(a10.w), b3_3, c10_3))));
        let a11 = a[ar11 + kk];
        c11_0 = fma(vec4<f32>(a11.x), b0_0, fma(vec4<f32>(a11.y), b1_0, fma(vec4<f32>(a11.z), b2_0, fma(vec4<f32>(a11.w), b3_0, c11_0))));
        c11_1 = fma(vec4<f32>(a11.x), b0_1, fma(vec4<f32>(a11.y), b1_1, fma(vec4<f32>(a11.z), b2_1, fma(vec4<f32>(a11.w), b3_1, c11_1))));
        c11_2 = fma(vec4<f32>(a11.x), b0_2, fma(vec4<f32>(a11.y), b1_2, fma(vec4<f32>(a11.z), b2_2, fma(vec4<f32>(a11.w), b3_2, c11_2))));
        c11_3 = fma(vec4<f32>(a11.x), b0_3, fma(vec4<f32>(a11.y), b1_3, fma(vec4<f32>(a11.z), b2_3, fma(vec4<f32>(a11.w), b3_3, c11_3))));
        let a12 = a[ar12 + kk];
        c12_0 = fma(vec4<f32>(a12.x), b0_0, fma(vec4<f32>(a12.y), b1_0, fma(vec4<f32>(a12.z), b2_0, fma(vec4<f32>(a12.w), b3_0, c12_0))));
        c12_1 = fma(vec4<f32>(a12.x), b0_1, fma(vec4<f32>(a12.y), b1_1, fma(vec4<f32>(a12.z), b2_1, fma(vec4<f32>(a12.w), b3_1, c12_1))));
        c12_2 = fma(vec4<f32>(a12.x), b0_2, fma(vec4<f32>(a12.y), b1_2, fma(vec4<f32>(a12.z), b2_2, fma(vec4<f32>(a12.w), b3_2, c12_2))));
        c12_3 = fma(vec4<f32>(a12.x), b0_3, fma(vec4<f32>(a12.y), b1_3, fma(vec4<f32>(a12.z), b2_3, fma(vec4<f32>(a12.w), b3_3, c12_3))));
        let a13 = a[ar13 + kk];
        c13_0 = fma(vec4<f32>(a13.x), b0_0, fma(vec4<f32>(a13.y), b1_0, fma(vec4<f32>(a13.z), b2_0, fma(vec4<f32>(a13.w), b3_0, c13_0))));
        c13_1 = fma(vec4<f32>(a13.x), b0_1, fma(vec4<f32>(a13.y), b1_1, fma(vec4<f32>(a13.z), b2_1, fma(vec4<f32>(a13.w), b3_1, c13_1))));
        c13_2 = fma(vec4<f32>(a13.x), b0_2, fma(vec4<f32>(a13.y), b1_2, fma(vec4<f32>(a13.z), b2_2, fma(vec4<f32>(a13.w), b3_2, c13_2))));
        c13_3 = fma(vec4<f32>(a13.x), b0_3, fma(vec4<f32>(a13.y), b1_3, fma(vec4<f32>(a13.z), b2_3, fma(vec4<f32>(a13.w), b3_3, c13_3))));
        let a14 = a[ar14 + kk];
        c14_0 = fma(vec4<f32>(a14.x), b0_0, fma(vec4<f32>(a14.y), b1_0, fma(vec4<f32>(a14.z), b2_0, fma(vec4<f32>(a14.w), b3_0, c14_0))));
        c14_1 = fma(vec4<f32>(a14.x), b0_1, fma(vec4<f32>(a14.y), b1_1, fma(vec4<f32>(a14.z), b2_1, fma(vec4<f32>(a14.w), b3_1, c14_1))));
        c14_2 = fma(vec4<f32>(a14.x), b0_2, fma(vec4<f32>(a14.y), b1_2, fma(vec4<f32>(a14.z), b2_2, fma(vec4<f32>(a14.w), b3_2, c14_2))));
        c14_3 = fma(vec4<f32>(a14.x), b0_3, fma(vec4<f32>(a14.y), b1_3, fma(vec4<f32>(a14.z), b2_3, fma(vec4<f32>(a14.w), b3_3, c14_3))));
        let a15 = a[ar15 + kk];
        c15_0 = fma(vec4<f32>(a15.x), b0_0, fma(vec4<f32>(a15.y), b1_0, fma(vec4<f32>(a15.z), b2_0, fma(vec4<f32>(a15.w), b3_0, c15_0))));
        c15_1 = fma(vec4<f32>(a15.x), b0_1, fma(vec4<f32>(a15.y), b1_1, fma(vec4<f32>(a15.z), b2_1, fma(vec4<f32>(a15.w), b3_1, c15_1))));
        c15_2 = fma(vec4<f32>(a15.x), b0_2, fma(vec4<f32>(a15.y), b1_2, fma(vec4<f32>(a15.z), b2_2, fma(vec4<f32>(a15.w), b3_2, c15_2))));
        c15_3 = fma(vec4<f32>(a15.x), b0_3, fma(vec4<f32>(a15.y), b1_3, fma(vec4<f32>(a15.z), b2_3, fma(vec4<f32>(a15.w), b3_3, c15_3))));
    }
    let c0 = gid.z * p.stride_c;
    if (row + 0u < p.m) {
        let o = c0 + (row + 0u) * n4 + col4;
        c[o] = c0_0;
        if (col4 + 1u < n4) { c[o + 1u] = c0_1; }
        if (col4 + 2u < n4) { c[o + 2u] = c0_2; }
        if (col4 + 3u < n4) { c[o + 3u] = c0_3; }
    }
    if (row + 1u < p.m) {
        let o = c0 + (row + 1u) * n4 + col4;
        c[o] = c1_0;
        if (col4 + 1u < n4) { c[o + 1u] = c1_1; }
        if (col4 + 2u < n4) { c[o + 2u] = c1_2; }
        if (col4 + 3u < n4) { c[o + 3u] = c1_3; }
    }
    if (row + 2u < p.m) {
        let o = c0 + (row + 2u) * n4 + col4;
        c[o] = c2_0;
        if (col4 + 1u < n4) { c[o + 1u] = c2_1; }
        if (col4 + 2u < n4) { c[o + 2u] = c2_2; }
        if (col4 + 3u < n4) { c[o + 3u] = c2_3; }
    }
    if (row + 3u < p.m) {
        let o = c0 + (row + 3u) * n4 + col4;
        c[o] = c3_0;
        if (col4 + 1u < n4) { c[o + 1u] = c3_1; }
        if (col4 + 2u < n4) { c[o + 2u] = c3_2; }
        if (col4 + 3u < n4) { c[o + 3u] = c3_3; }
    }
    if (row + 4u < p.m) {
        let o = c0 + (row + 4u) * n4 + col4;
        c[o] = c4_0;
        if (col4 + 1u < n4) { c[o + 1u] = c4_1; }
        if (col4 + 2u < n4) { c[o + 2u] = c4_2; }
        if (col4 + 3u < n4) { c[o + 3u] = c4_3; }
    }
    if (row + 5u < p.m) {
        let o = c0 + (row + 5u) * n4 + col4;
        c[o] = c5_0;
        if (col4 + 1u < n4) { c[o + 1u] = c5_1; }
        if (col4 + 2u < n4) { c[o + 2u] = c5_2; }
        if (col4 + 3u < n4) { c[o + 3u] = c5_3; }
    }
    if (row + 6u < p.m) {
        let o = c0 + (row + 6u) * n4 + col4;
        c[o] = c6_0;
        if (col4 + 1u < n4) { c[o + 1u] = c6_1; }
        if (col4 + 2u < n4) { c[o + 2u] = c6_2; }
        if (col4 + 3u < n4) { c[o + 3u] = c6_3; }
    }
    if (row + 7u < p.m) {
        let o = c0 + (row + 7u) * n4 + col4;
        c[o] = c7_0;
        if (col4 + 1u < n4) { c[o + 1u] = c7_1; }
        if (col4 + 2u < n4) { c[o + 2u] = c7_2; }
        if (col4 + 3u < n4) { c[o + 3u] = c7_3; }
    }
    if (row + 8u < p.m) {
        let o = c0 + (row + 8u) * n4 + col4;
        c[o] = c8_0;
        if (col4 + 1u < n4) { c[o + 1u] = c8_1; }
        if (col4 + 2u < n4) { c[o + 2u] = c8_2; }
        if (col4 + 3u < n4) { c[o + 3u] = c8_3; }
    }
    if (row + 9u < p.m) {
        let o = c0 + (row + 9u) * n4 + col4;
        c[o] = c9_0;
        if (col4 + 1u < n4) { c[o + 1u] = c9_1; }
        if (col4 + 2u < n4) { c[o + 2u] = c9_2; }
        if (col4 + 3u < n4) { c[o + 3u] = c9_3; }
    }
    if (row + 10u < p.m) {
        let o = c0 + (row + 10u) * n4 + col4;
        c[o] = c10_0;
        if (col4 + 1u < n4) { c[o + 1u] = c10_1; }
        if (col4 + 2u < n4) { c[o + 2u] = c10_2; }
        if (col4 + 3u < n4) { c[o + 3u] = c10_3; }
    }
    if (row + 11u < p.m) {
        let o = c0 + (row + 11u) * n4 + col4;
        c[o] = c11_0;
        if (col4 + 1u < n4) { c[o + 1u] = c11_1; }
        if (col4 + 2u < n4) { c[o + 2u] = c11_2; }
        if (col4 + 3u < n4) { c[o + 3u] = c11_3; }
    }
    if (row + 12u < p.m) {
        let o = c0 + (row + 12u) * n4 + col4;
        c[o] = c12_0;
        if (col4 + 1u < n4) { c[o + 1u] = c12_1; }
        if (col4 + 2u < n4) { c[o + 2u] = c12_2; }
        if (col4 + 3u < n4) { c[o + 3u] = c12_3; }
    }
    if (row + 13u < p.m) {
        let o = c0 + (row + 13u) * n4 + col4;
        c[o] = c13_0;
        if (col4 + 1u < n4) { c[o + 1u] = c13_1; }
        if (col4 + 2u < n4) { c[o + 2u] = c13_2; }
        if (col4 + 3u < n4) { c[o + 3u] = c13_3; }
    }
    if (row + 14u < p.m) {
        let o = c0 + (row + 14u) * n4 + col4;
        c[o] = c14_0;
        if (col4 + 1u < n4) { c[o + 1u] = c14_1; }
        if (col4 + 2u < n4) { c[o + 2u] = c14_2; }
        if (col4 + 3u < n4) { c[o + 3u] = c14_3; }
    }
    if (row + 15u < p.m) {
        let o = c0 + (row + 15u) * n4 + col4;
        c[o] = c15_0;
        if (col4 + 1u < n4) { c[o + 1u] = c15_1; }
        if (col4 + 2u < n4) { c[o + 2u] = c15_2; }
        if (col4 + 3u < n4) { c[o + 3u] = c15_3; }
    }
}
