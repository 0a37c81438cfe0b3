// Whole-arena helpers of the optimizer: the global gradient norm for clipping (two fixed-order
// passes, deterministic, no atomics) and gradient accumulation.

struct Params {
    n: u32,
    // sumsq_partial: where this page's partial sums start in `partials`.
    base: u32,
    // clip_scale: how many partial sums there are.
    count: u32,
    max_norm: f32,
    // sumsq_partial, clip_scale: 1 / the loss scale the gradients carry (exact for a power of two).
    inv_scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;

// ---- sumsq_partial: partials[base + wg] = sum of x² over workgroup wg's chunk.
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;

var<workgroup> acc: array<f32, WG1>;

@compute @workgroup_size(WG1)
fn sumsq_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>) {
    let groups = nwg.x;
    let chunk = (p.n + groups - 1u) / groups;
    let start = wid.x * chunk;
    let end = min(start + chunk, p.n);
    var s = 0.0;
    for (var i = start + lid.x; i < end; i = i + WG1) {
        // Unscaled before squaring: the norm overflows only when the true gradients would.
        let v = x[i] * p.inv_scale;
        s = s + v * v;
    }
    acc[lid.x] = s;
    workgroupBarrier();
    for (var stride = WG1 / 2u; stride > 0u; stride = stride / 2u) {
        if (lid.x < stride) {
            acc[lid.x] = acc[lid.x] + acc[lid.x + stride];
        }
        workgroupBarrier();
    }
    if (lid.x == 0u) {
        partials[p.base + wid.x] = acc[0];
    }
}

// ---- clip_scale: out[0] = min(1, max_norm / (norm + 1e-6)) (torch clip_grad_norm_), out[1] = norm,
// both of the unscaled gradients; out[0] also divides the loss scale out of the update.
@group(0) @binding(1) var<storage, read> parts: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG1)
fn clip_scale(@builtin(local_invocation_id) lid: vec3<u32>) {
    var s = 0.0;
    for (var i = lid.x; i < p.count; i = i + WG1) {
        s = s + parts[i];
    }
    acc[lid.x] = s;
    workgroupBarrier();
    for (var stride = WG1 / 2u; stride > 0u; stride = stride / 2u) {
        if (lid.x < stride) {
            acc[lid.x] = acc[lid.x] + acc[lid.x + stride];
        }
        workgroupBarrier();
    }
    if (lid.x == 0u) {
        let norm = sqrt(acc[0]);
        out[0] = min(1.0, p.max_norm / (norm + 1e-6)) * p.inv_scale;
        out[1] = norm;
    }
}

// ---- accumulate: dst += src (a micro-batch's gradients into the arena).
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(WG1)
fn accumulate(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_index(wid, nwg, lid);
    if (i < p.n) {
        dst[i] = dst[i] + src[i];
    }
}
