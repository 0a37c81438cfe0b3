// Mean squared error. a, b, d2, ga, gb: (N). forward writes (a - b)² for a following sum;
// backward: ga = 2 (a - b) g / N, gb = -ga, with g the scalar upstream gradient.

struct Params {
    n: u32,
    scale: f32, // 2 / N
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> d2: array<f32>;

@compute @workgroup_size(WG1)
fn mse_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_index(wid, nwg, lid);
    if (i < p.n) {
        let d = a[i] - b[i];
        d2[i] = d * d;
    }
}

@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> ab: array<f32>;
@group(0) @binding(3) var<storage, read> bb: array<f32>;
@group(0) @binding(4) var<storage, read_write> ga: array<f32>;
@group(0) @binding(5) var<storage, read_write> gb: array<f32>;

@compute @workgroup_size(WG1)
fn mse_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_index(wid, nwg, lid);
    if (i < p.n) {
        let v = (ab[i] - bb[i]) * p.scale * g[0];
        ga[i] = v;
        gb[i] = -v;
    }
}
