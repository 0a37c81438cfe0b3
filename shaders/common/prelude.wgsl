// Prepended to every whet shader (see src/engine/shaders.rs).

// Invocations per workgroup of every 1-D kernel; src/ops/mod.rs WG1 must match.
const WG1: u32 = 256u;

// Linear index of this invocation in a 1-D kernel whose workgroups were folded into a 2-D grid
// because there were more than max_compute_workgroups_per_dimension of them (dispatch.rs).
fn linear_index(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.y * nwg.x + wid.x) * WG1 + lid.x;
}

// Linear workgroup index for kernels that give one workgroup per output.
fn linear_group(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y * nwg.x + wid.x;
}

// tanh that stays finite: lavapipe's builtin evaluates (e^2x - 1)/(e^2x + 1), which is inf/inf
// past |x| ~ 44. tanh(15) rounds to 1 in f32 already.
fn tanh_safe(x: f32) -> f32 {
    if (abs(x) > 15.0) {
        return sign(x);
    }
    return tanh(x);
}

fn sigmoid_f(x: f32) -> f32 {
    // exp(-x) overflows to +inf for x < -88, and 1/(1+inf) = 0: finite either way.
    return 1.0 / (1.0 + exp(-x));
}

// erf with |error| < 1.2e-7 (Numerical Recipes' erfc Chebyshev fit); WGSL has no builtin.
fn erf_f(x: f32) -> f32 {
    let z = abs(x);
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
        t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
        t * (-0.82215223 + t * 0.17087277)))))))));
    let e = 1.0 - r;
    return select(e, -e, x < 0.0);
}

// Unpack up to 8 dims stored as two vec4<u32> (uniform arrays need 16-byte elements).
fn dim8(v: array<vec4<u32>, 2>, i: u32) -> u32 {
    return v[i / 4u][i % 4u];
}
