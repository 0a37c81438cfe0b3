// Permuted copy. out: (N) elements of shape `shape`; `sx` are the input strides reordered to
// the output's dims, so out[i] = x[sum_d coord_d(i) * sx[d]]. Elements of `act` (u32 data is
// copied bit for bit as f32; f16 takes the half variant).

struct Params {
    n: u32,
    rank: u32,
    _pad0: u32,
    _pad1: u32,
    shape: array<vec4<u32>, 2>,
    sx: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<act>;
@group(0) @binding(2) var<storage, read_write> out: array<act>;

@compute @workgroup_size(WG1)
fn permute(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_index(wid, nwg, lid);
    if (i >= p.n) {
        return;
    }
    var rem = i;
    var off = 0u;
    for (var d = i32(p.rank) - 1; d >= 0; d--) {
        let size = dim8(p.shape, u32(d));
        off += (rem % size) * dim8(p.sx, u32(d));
        rem = rem / size;
    }
    out[i] = x[off];
}

// Permuted copy that keeps the last axis in place, in 16-byte units (bit-exact for any dtype:
// 4 elements of 4 bytes or 8 of f16), for up to 4 collapsed dims: out (d0, d1, d2, d3v) with d0 = workgroup z, d1 =
// workgroup y, and d2 x d3v flattened over x. One integer division per vec4 instead of one
// per dim and element (llvmpipe runs vector u32 division lane by lane, ~30x an add); the
// head split/merge of attention ([B, T, H, D] <-> [B, H, T, D]) is the case it exists for.
struct Params4 {
    d3v: u32,
    inner: u32,
    d1: u32,
    _pad: u32,
    // Input strides (vec4 units) of the output's dims 0, 1, 2.
    s0: u32,
    s1: u32,
    s2: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> q: Params4;
@group(0) @binding(1) var<storage, read> x4: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> out4: array<vec4<u32>>;

@compute @workgroup_size(WG1)
fn permute_rows4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let i = gid.x;
    if (i >= q.inner) {
        return;
    }
    let c2 = i / q.d3v;
    let c3 = i - c2 * q.d3v;
    out4[(wid.z * q.d1 + wid.y) * q.inner + i] = x4[wid.z * q.s0 + wid.y * q.s1 + c2 * q.s2 + c3];
}
