// C = op(A) · op(B) for any sizes, with either operand transposed in place (TRANS_A, TRANS_B).
// op(A): (batch, M, K), op(B): (batch, K, N), C: (batch, M, N). Stored A is (M, K) or, when
// transposed, (K, M); likewise B. Each invocation computes a 4x4 block of C with scalar loads.
// Strides are per batch in floats; 0 broadcasts an operand over the batch.

override TRANS_A: bool;
override TRANS_B: bool;

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
// Operands and result in `act` (f16 in the half variant); sums in f32.
@group(0) @binding(1) var<storage, read> a: array<act>;
@group(0) @binding(2) var<storage, read> b: array<act>;
@group(0) @binding(3) var<storage, read_write> c: array<act>;

fn load_a(base: u32, m: u32, k: u32) -> f32 {
    if (TRANS_A) {
        return f32(a[base + k * p.m + m]);
    }
    return f32(a[base + m * p.k + k]);
}

fn load_b(base: u32, k: u32, n: u32) -> f32 {
    if (TRANS_B) {
        return f32(b[base + n * p.k + k]);
    }
    return f32(b[base + k * p.n + n]);
}

@compute @workgroup_size(8, 8, 1)
fn matmul_generic(@builtin(global_invocation_id) gid: vec3<u32>) {
    let col = gid.x * 4u;
    let row = gid.y * 4u;
    if (row >= p.m || col >= p.n || gid.z >= p.batch) {
        return;
    }
    let a0 = gid.z * p.stride_a;
    let b0 = gid.z * p.stride_b;
    var rows: array<u32, 4>;
    var cols: array<u32, 4>;
    for (var i = 0u; i < 4u; i++) {
        rows[i] = min(row + i, p.m - 1u);
        cols[i] = min(col + i, p.n - 1u);
    }
    var acc: array<vec4<f32>, 4>;
    for (var k = 0u; k < p.k; k++) {
        let bv = vec4<f32>(load_b(b0, k, cols[0]), load_b(b0, k, cols[1]), load_b(b0, k, cols[2]),
            load_b(b0, k, cols[3]));
        for (var i = 0u; i < 4u; i++) {
            acc[i] = fma(vec4<f32>(load_a(a0, rows[i], k)), bv, acc[i]);
        }
    }
    let c0 = gid.z * p.stride_c;
    for (var i = 0u; i < 4u; i++) {
        if (row + i < p.m) {
            for (var j = 0u; j < 4u; j++) {
                if (col + j < p.n) {
                    c[c0 + (row + i) * p.n + col + j] = act(acc[i][j]);
                }
            }
        }
    }
}
