// Inverted dropout with a counter-based RNG: element i is kept iff hash(seed, sample, w) >= p * 2^32,
// where the tensor holds `per_sample` elements per sample (batch-major), i is element w of local
// sample i / per_sample, and `sample` counts from `first_item`: the mask of a sample depends on
// its index in the global batch, not on which rank or micro-batch runs it, nor on how long the
// other sequences of its batch are. Nothing is stored between forward and backward: backward
// recomputes the same mask, so the mask costs no memory and is identical by construction.
// x, y, g, gx: (N)

struct Params {
    n: u32,
    threshold: u32, // p * 2^32, saturated
    seed_lo: u32,
    seed_hi: u32,
    scale: f32,     // 1 / (1 - p)
    per_sample: u32, // elements per sample (N for an unkeyed call)
    first_item: u32, // global index of the first sample
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

// "lowbias32" integer hash (Chris Wellons): full avalanche on 32 bits. ops::reference::dropout
// mirrors it bit for bit.
fn mix32(v: u32) -> u32 {
    var x = v;
    x ^= x >> 16u;
    x *= 0x7feb352du;
    x ^= x >> 15u;
    x *= 0x846ca68bu;
    x ^= x >> 16u;
    return x;
}

fn keep(i: u32) -> bool {
    let local = i / p.per_sample;
    let w = i - local * p.per_sample;
    let sample = p.first_item + local;
    let h = mix32(w ^ mix32(p.seed_lo ^ mix32(p.seed_hi + 0x9e3779b9u + sample * 0x85ebca6bu)));
    return h >= p.threshold;
}

// x, y, g, gx in `act` (f16 in the half variant).
@group(0) @binding(1) var<storage, read> x: array<act>;
@group(0) @binding(2) var<storage, read_write> y: array<act>;

@compute @workgroup_size(WG1)
fn dropout_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_index(wid, nwg, lid);
    if (i < p.n) {
        y[i] = act(select(0.0, f32(x[i]) * p.scale, keep(i)));
    }
}

@group(0) @binding(1) var<storage, read> g: array<act>;
@group(0) @binding(2) var<storage, read_write> gx: array<act>;

@compute @workgroup_size(WG1)
fn dropout_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_index(wid, nwg, lid);
    if (i < p.n) {
        gx[i] = act(select(0.0, f32(g[i]) * p.scale, keep(i)));
    }
}
