// Counts NaN and ±Inf by bit pattern: exponent bits all ones. WGSL lets compilers assume
// finite floats, so `x != x` may be folded to false; integer tests on the bits cannot be.
// x: (N) read as u32; counts: [nan, inf] atomics (integer adds: exact and order-free).

struct Params {
    n: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> bits: array<u32>;
@group(0) @binding(2) var<storage, read_write> counts: array<atomic<u32>, 2>;

@compute @workgroup_size(WG1)
fn count_nonfinite(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_index(wid, nwg, lid);
    if (i >= p.n) {
        return;
    }
    let v = bits[i];
    if ((v & 0x7f800000u) == 0x7f800000u) {
        if ((v & 0x007fffffu) != 0u) {
            atomicAdd(&counts[0], 1u);
        } else {
            atomicAdd(&counts[1], 1u);
        }
    }
}
