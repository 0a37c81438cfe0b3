// SGD with momentum, dampening, Nesterov and (coupled, L2) weight decay, as torch.optim.SGD.
// w, g, buf: (N) views of the parameter-arena pages. `first` = 1 on the first step, when
// torch seeds the buffer with the gradient. gscale[0] multiplies every gradient (1, or the
// global-norm clip factor computed on the device).

struct Params {
    n: u32,
    lr: f32,
    momentum: f32,
    dampening: f32,
    weight_decay: f32,
    nesterov: u32,
    first: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> w: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> buf: array<f32>;
@group(0) @binding(4) var<storage, read> gscale: array<f32>;

@compute @workgroup_size(WG1)
fn sgd_step(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_index(wid, nwg, lid);
    if (i >= p.n) {
        return;
    }
    var d = g[i] * gscale[0] + p.weight_decay * w[i];
    if (p.momentum != 0.0) {
        var b = d;
        if (p.first == 0u) {
            b = p.momentum * buf[i] + (1.0 - p.dampening) * d;
        }
        buf[i] = b;
        d = select(b, d + p.momentum * b, p.nesterov != 0u);
    }
    w[i] = w[i] - p.lr * d;
}
