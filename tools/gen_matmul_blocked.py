import sys
TM=int(sys.argv[1]); TN4=int(sys.argv[2]); WX=int(sys.argv[3]); WY=int(sys.argv[4])
L=[]
w=L.append
w(f"""// C = A · B, register-blocked with vec4 loads and no workgroup memory: the variant for CPU
// adapters (lavapipe, WARP), where workgroup memory and barriers are slow and each invocation
// is one SIMD lane. Each invocation computes {TM} rows x {4*TN4} columns of C, in {TM*TN4} vec4
// accumulators held in named registers. The loops are unrolled by hand: lavapipe's LLVM keeps
// dynamically indexed private arrays in memory, which measured ~10x slower.
// A: (batch, M, K), B: (batch, K, N), C: (batch, M, N), row-major, K % 4 == 0 and N % 4 == 0.
// Strides are per batch in vec4 units; 0 broadcasts an operand over the batch.
// Workgroup {WX}x{WY}; src/ops/matmul.rs BLOCK_* constants must match.

struct Params {{
    m: u32,
    n: u32,
    k: u32,
    batch: u32,
    stride_a: u32,
    stride_b: u32,
    stride_c: u32,
    _pad: u32,
}}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> c: array<vec4<f32>>;

@compute @workgroup_size({WX}, {WY}, 1)
fn matmul_blocked(@builtin(global_invocation_id) gid: vec3<u32>) {{
    let n4 = p.n / 4u;
    let k4 = p.k / 4u;
    let col4 = gid.x * {TN4}u;
    let row = gid.y * {TM}u;
    if (row >= p.m || col4 >= n4 || gid.z >= p.batch) {{
        return;
    }}
    let a0 = gid.z * p.stride_a;
    let b0 = gid.z * p.stride_b;
    // Rows and columns past the edge read the last valid one (their results are not stored),
    // so the inner loop has no branches.
    let last_row = p.m - 1u;
    let last_col = n4 - 1u;""")
for i in range(TM):
    w(f"    let ar{i} = a0 + min(row + {i}u, last_row) * k4;")
for j in range(TN4):
    w(f"    let bc{j} = b0 + min(col4 + {j}u, last_col);")
for i in range(TM):
    for j in range(TN4):
        w(f"    var c{i}_{j} = vec4<f32>(0.0);")
w("    for (var kk = 0u; kk < k4; kk++) {")
w("        let r0 = kk * 4u * n4;")
w("        let r1 = r0 + n4;")
w("        let r2 = r1 + n4;")
w("        let r3 = r2 + n4;")
for r in range(4):
    for j in range(TN4):
        w(f"        let b{r}_{j} = b[r{r} + bc{j}];")
for i in range(TM):
    w(f"        let a{i} = a[ar{i} + kk];")
    for j in range(TN4):
        w(f"        c{i}_{j} = fma(vec4<f32>(a{i}.x), b0_{j}, fma(vec4<f32>(a{i}.y), b1_{j}, fma(vec4<f32>(a{i}.z), b2_{j}, fma(vec4<f32>(a{i}.w), b3_{j}, c{i}_{j}))));")
w("    }")
w("    let c0 = gid.z * p.stride_c;")
for i in range(TM):
    w(f"    if (row + {i}u < p.m) {{")
    w(f"        let o = c0 + (row + {i}u) * n4 + col4;")
    for j in range(TN4):
        if j==0:
            w(f"        c[o] = c{i}_0;")
        else:
            w(f"        if (col4 + {j}u < n4) {{ c[o + {j}u] = c{i}_{j}; }}")
    w("    }")
w("}")
print("\n".join(L))
