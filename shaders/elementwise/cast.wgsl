// Conversions between f32 and `act` (f16 in the half variant, where these run; the f32
// variant is a plain copy). f32 -> f16 rounds to nearest even; past ±65504 it gives ±inf, which
// is what loss scaling needs to see. (N) -> (N)

struct Params {
    n: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

@group(0) @binding(1) var<storage, read> from32: array<f32>;
@group(0) @binding(2) var<storage, read_write> to_act: array<act>;

@compute @workgroup_size(WG1)
fn cast_to_act(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_index(wid, nwg, lid);
    if (i < p.n) {
        to_act[i] = act(from32[i]);
    }
}

@group(0) @binding(1) var<storage, read> from_act: array<act>;
@group(0) @binding(2) var<storage, read_write> to32: array<f32>;

@compute @workgroup_size(WG1)
fn cast_from_act(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_index(wid, nwg, lid);
    if (i < p.n) {
        to32[i] = f32(from_act[i]);
    }
}
