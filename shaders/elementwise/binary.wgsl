// Elementwise binary ops with broadcasting. OP: 0 add, 1 sub, 2 mul, 3 div.
// a, b broadcast to out: (N) = prod(shape); strides are 0 on broadcast dims. Storage in `act`
// (f32, or f16 in the half variant); arithmetic in f32.

override OP: u32;

struct Params {
    n: u32,
    rank: u32,
    // binary_tail: elements of b, which repeats along the leading dims of a.
    tail: u32,
    // binary_rows4: rows of a (n / tail).
    rows: u32,
    shape: array<vec4<u32>, 2>,
    sa: array<vec4<u32>, 2>,
    sb: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<uniform> p: Params;

fn f(a: f32, b: f32) -> f32 {
    switch OP {
        case 0u: { return a + b; }
        case 1u: { return a - b; }
        case 2u: { return a * b; }
        default: { return a / b; }
    }
}

// Offsets into a and b of output element i.
fn offsets(i: u32) -> vec2<u32> {
    var rem = i;
    var oa = 0u;
    var ob = 0u;
    for (var d = i32(p.rank) - 1; d >= 0; d--) {
        let size = dim8(p.shape, u32(d));
        let c = rem % size;
        rem = rem / size;
        oa += c * dim8(p.sa, u32(d));
        ob += c * dim8(p.sb, u32(d));
    }
    return vec2<u32>(oa, ob);
}

@group(0) @binding(1) var<storage, read> a: array<act>;
@group(0) @binding(2) var<storage, read> b: array<act>;
@group(0) @binding(3) var<storage, read_write> out: array<act>;

// Same shapes: no index arithmetic.
@compute @workgroup_size(WG1)
fn binary_same(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    // Clamp instead of branching: the tail lanes redo the last element (same value, same
    // address). On lavapipe a branch puts the loads under an execution mask, which makes
    // every lane load separately.
    let i = min(linear_index(wid, nwg, lid), p.n - 1u);
    out[i] = act(f(f32(a[i]), f32(b[i])));
}

// b matches a's trailing dims (a bias over rows): one modulo instead of a rank-long index walk
// (3-4x faster on lavapipe for the bias adds of every linear layer).
@compute @workgroup_size(WG1)
fn binary_tail(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = min(linear_index(wid, nwg, lid), p.n - 1u);
    out[i] = act(f(f32(a[i]), f32(b[i % p.tail])));
}

fn f4(a: vec4<f32>, b: vec4<f32>) -> vec4<f32> {
    switch OP {
        case 0u: { return a + b; }
        case 1u: { return a - b; }
        case 2u: { return a * b; }
        default: { return a / b; }
    }
}

@group(0) @binding(1) var<storage, read> a4: array<vec4<act>>;
@group(0) @binding(2) var<storage, read> b4: array<vec4<act>>;
@group(0) @binding(3) var<storage, read_write> out4: array<vec4<act>>;

// binary_tail when the tail is a multiple of 4: vec4 columns over x, rows over y (folded into
// z past the grid's limit), so no division at all; llvmpipe runs vector u32 division lane by
// lane, which made the modulo above most of a bias add's time.
@compute @workgroup_size(WG1)
fn binary_rows4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
    let t4 = p.tail / 4u;
    let row = wid.z * nwg.y + wid.y;
    if (row >= p.rows) {
        return;
    }
    // Clamped, not branched (see binary_same).
    let c = min(wid.x * WG1 + lid.x, t4 - 1u);
    let i = row * t4 + c;
    out4[i] = vec4<act>(f4(vec4<f32>(a4[i]), vec4<f32>(b4[c])));
}

@compute @workgroup_size(WG1)
fn binary_broadcast(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_index(wid, nwg, lid);
    if (i < p.n) {
        let o = offsets(i);
        out[i] = act(f(f32(a[o.x]), f32(b[o.y])));
    }
}

// Backward of mul and div in one pass, at the output's shape (the caller sums broadcast dims):
// mul: ga = g*b, gb = g*a;  div: ga = g/b, gb = -g*a/b^2.
@group(0) @binding(1) var<storage, read> g: array<act>;
@group(0) @binding(2) var<storage, read> a2: array<act>;
@group(0) @binding(3) var<storage, read> b2: array<act>;
@group(0) @binding(4) var<storage, read_write> ga: array<act>;
@group(0) @binding(5) var<storage, read_write> gb: array<act>;

@compute @workgroup_size(WG1)
fn binary_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_index(wid, nwg, lid);
    if (i < p.n) {
        let o = offsets(i);
        let av = f32(a2[o.x]);
        let bv = f32(b2[o.y]);
        let gv = f32(g[i]);
        if (OP == 2u) {
            ga[i] = act(gv * bv);
            gb[i] = act(gv * av);
        } else {
            let q = gv / bv;
            ga[i] = act(q);
            gb[i] = act(-q * av / bv);
        }
    }
}
