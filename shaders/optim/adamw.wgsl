// Adam / AdamW (torch semantics), one fused update per element of a parameter-arena range.
// w, g, m, v: (N) views of the arena pages; gscale[0] multiplies every gradient (1, or the
// global-norm clip factor computed on the device, so clipping needs no host round trip).
// weight_decay is decoupled (AdamW: w *= 1 - lr*wd); l2 is coupled (Adam: g += l2*w).
// bc1 = 1 - beta1^t, bc2 = 1 - beta2^t come from the host, so the step count never enters
// the pipeline key.

struct Params {
    n: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    bc1: f32,
    bc2: f32,
    l2: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> w: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;
@group(0) @binding(5) var<storage, read> gscale: array<f32>;

@compute @workgroup_size(WG1)
fn adamw_step(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_index(wid, nwg, lid);
    if (i >= p.n) {
        return;
    }
    let w0 = w[i];
    let gi = g[i] * gscale[0] + p.l2 * w0;
    let wi = w0 * (1.0 - p.lr * p.weight_decay);
    let mi = p.beta1 * m[i] + (1.0 - p.beta1) * gi;
    let vi = p.beta2 * v[i] + (1.0 - p.beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    let denom = sqrt(vi) / sqrt(p.bc2) + p.eps;
    w[i] = wi - (p.lr / p.bc1) * mi / denom;
}
