// Permuted copy. out: (N) elements of shape `shape`; `sx` are the input strides reordered to
// the output's dims, so out[i] = x[sum_d coord_d(i) * sx[d]].

struct Params {
    n: u32,
    rank: u32,
    _pad0: u32,
    _pad1: u32,
    shape: array<vec4<u32>, 2>,
    sx: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

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
