// Rotary position embedding, HF `rotate_half` layout (src/ops/rope.rs). x, y: (R, D) with
// R = B*H*T rows and position offset + (row % T); cos, sin: (P, D/2) tables. One invocation per
// pair (i, i + D/2) of one row:
//   y[i]       = x[i] cos - x[i + D/2] sin
//   y[i + D/2] = x[i + D/2] cos + x[i] sin
// SIGN = -1 applies the transpose (rotation by minus the angle): the backward pass. x, y in
// `act` (f16 in the half variant), tables and arithmetic in f32.

struct Params {
    pairs: u32,
    t: u32,
    half: u32,
    offset: u32,
    sign: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<act>;
@group(0) @binding(2) var<storage, read> cos_t: array<f32>;
@group(0) @binding(3) var<storage, read> sin_t: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<act>;

@compute @workgroup_size(WG1)
fn rope_apply(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let n = linear_index(wid, nwg, lid);
    if (n >= p.pairs) {
        return;
    }
    let row = n / p.half;
    let i = n % p.half;
    let pos = p.offset + row % p.t;
    let c = cos_t[pos * p.half + i];
    let sn = sin_t[pos * p.half + i] * p.sign;
    let lo = row * 2u * p.half + i;
    let hi = lo + p.half;
    let a = f32(x[lo]);
    let b = f32(x[hi]);
    y[lo] = act(a * c - b * sn);
    y[hi] = act(b * c + a * sn);
}
