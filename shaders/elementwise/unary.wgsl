// Elementwise unary ops, forward and backward. x, y, g, gx: (N) in `act` (f32, or f16 in the
// half variant); the function itself runs in f32.
// OP selects the function (src/ops/elementwise.rs UnaryOp); alpha/beta are per-call scalars.

override OP: u32;

struct Params {
    n: u32,
    alpha: f32,
    beta: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

const SQRT_HALF: f32 = 0.70710678118654752;
const INV_SQRT_2PI: f32 = 0.39894228040143268;
const GELU_K0: f32 = 0.79788456080286536; // sqrt(2/pi)
const GELU_K1: f32 = 0.044715;

// x^a with PyTorch's sign rule for integral exponents of negative bases.
fn pow_signed(x: f32, a: f32) -> f32 {
    if (a == 0.0) {
        return 1.0;
    }
    let m = pow(abs(x), a);
    if (x < 0.0) {
        if (fract(a) != 0.0) {
            return bitcast<f32>(0x7fc00000u); // NaN, as torch
        }
        let odd = fract(a * 0.5) != 0.0;
        return select(m, -m, odd);
    }
    return m;
}

fn f(x: f32) -> f32 {
    switch OP {
        case 0u: { return -x; }
        case 1u: { return exp(x); }
        case 2u: { return log(x); }
        case 3u: { return sqrt(x); }
        case 4u: { return inverseSqrt(x); }
        case 5u: { return max(x, 0.0); }
        case 6u: { return 0.5 * x * (1.0 + erf_f(x * SQRT_HALF)); }
        case 7u: { return 0.5 * x * (1.0 + tanh_safe(GELU_K0 * (x + GELU_K1 * x * x * x))); }
        case 8u: { return x * sigmoid_f(x); }
        case 9u: { return sigmoid_f(x); }
        case 10u: { return tanh_safe(x); }
        case 11u: { return pow_signed(x, p.alpha); }
        case 12u: { return x * p.alpha + p.beta; }
        case 13u: { return clamp(x, 0.0, 6.0); }
        case 14u: { return abs(x); }
        default: { return x; }
    }
}

// d f / d x
fn df(x: f32) -> f32 {
    switch OP {
        case 0u: { return -1.0; }
        case 1u: { return exp(x); }
        case 2u: { return 1.0 / x; }
        case 3u: { return 0.5 * inverseSqrt(x); }
        case 4u: { return -0.5 * inverseSqrt(x) / x; }
        case 5u: { return select(0.0, 1.0, x > 0.0); }
        case 6u: {
            let cdf = 0.5 * (1.0 + erf_f(x * SQRT_HALF));
            return cdf + x * INV_SQRT_2PI * exp(-0.5 * x * x);
        }
        case 7u: {
            let t = tanh_safe(GELU_K0 * (x + GELU_K1 * x * x * x));
            return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_K0 * (1.0 + 3.0 * GELU_K1 * x * x);
        }
        case 8u: {
            let s = sigmoid_f(x);
            return s + x * s * (1.0 - s);
        }
        case 9u: {
            let s = sigmoid_f(x);
            return s * (1.0 - s);
        }
        case 10u: {
            let t = tanh_safe(x);
            return 1.0 - t * t;
        }
        case 11u: { return p.alpha * pow_signed(x, p.alpha - 1.0); }
        case 12u: { return p.alpha; }
        case 13u: { return select(0.0, 1.0, x > 0.0 && x < 6.0); }
        case 14u: { return sign(x); }
        default: { return 1.0; }
    }
}

@group(0) @binding(1) var<storage, read> x: array<act>;
@group(0) @binding(2) var<storage, read_write> y: array<act>;

@compute @workgroup_size(WG1)
fn unary_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_index(wid, nwg, lid);
    if (i < p.n) {
        y[i] = act(f(f32(x[i])));
    }
}

// gx = g * f'(x)
@group(0) @binding(1) var<storage, read> g: array<act>;
@group(0) @binding(2) var<storage, read> xb: array<act>;
@group(0) @binding(3) var<storage, read_write> gx: array<act>;

@compute @workgroup_size(WG1)
fn unary_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_index(wid, nwg, lid);
    if (i < p.n) {
        gx[i] = act(f32(g[i]) * df(f32(xb[i])));
    }
}
