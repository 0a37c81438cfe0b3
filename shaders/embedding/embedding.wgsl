// Embedding gather and its deterministic backward.
// forward:  ids (T) u32, table (V, D) -> out (T, D); ids were checked < V on the host.
// backward: the host groups positions by id (CSR: uniq (U), offsets (U+1), pos (T)), so each
// invocation owns one (row, column) of the table gradient and sums its positions in order:
// no float atomics, bit-identical on every run.

struct Params {
    rows: u32, // T for forward, U for backward
    dim: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG1)
fn embedding_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_id) lid: vec3<u32>) {
    let j = linear_index(wid, nwg, lid);
    if (j >= p.rows * p.dim) {
        return;
    }
    let t = j / p.dim;
    let d = j % p.dim;
    out[j] = table[ids[t] * p.dim + d];
}

@group(0) @binding(2) var<storage, read> table4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out4: array<vec4<f32>>;

// Forward for dim % 4 == 0: vec4 columns over x (32 per workgroup: a BERT row of 384 is 96),
// rows over y, folded into z past the grid's limit; no division (llvmpipe divides lane by
// lane). Columns past the row are clamped rather than branched (see binary_same).
@compute @workgroup_size(32)
fn embedding_forward4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = wid.z * nwg.y + wid.y;
    if (t >= p.rows) {
        return;
    }
    let d4 = p.dim / 4u;
    let c = min(wid.x * 32u + lid.x, d4 - 1u);
    out4[t * d4 + c] = table4[ids[t] * d4 + c];
}

@group(0) @binding(1) var<storage, read> uniq: array<u32>;
@group(0) @binding(2) var<storage, read> offsets: array<u32>;
@group(0) @binding(3) var<storage, read> pos: array<u32>;
@group(0) @binding(4) var<storage, read> g: array<f32>;
@group(0) @binding(5) var<storage, read_write> gtable: array<f32>;

@compute @workgroup_size(WG1)
fn embedding_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_id) lid: vec3<u32>) {
    let j = linear_index(wid, nwg, lid);
    if (j >= p.rows * p.dim) {
        return;
    }
    let u = j / p.dim;
    let d = j % p.dim;
    var s = 0.0;
    for (var q = offsets[u]; q < offsets[u + 1u]; q++) {
        s += g[pos[q] * p.dim + d];
    }
    gtable[uniq[u] * p.dim + d] = s;
}
