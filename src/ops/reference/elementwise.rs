//! Reference unary and broadcasting binary ops (`ops::elementwise`), with erf in f64.

use super::{broadcast_index, broadcast_shape, reduce::sum_to_shape, unravel, RefTensor};
use crate::ops::elementwise::{BinaryOp, UnaryOp};

const FRAC_2_SQRT_PI: f64 = std::f64::consts::FRAC_2_SQRT_PI;

/// erf(x) for 0 <= x < 3 by the all-positive series
/// `erf(x) = 2/√π e^{-x²} Σ_n (2x²)^n x / (1·3·…·(2n+1))`: no cancellation, ~1 ulp.
fn erf_series(x: f64) -> f64 {
    let x2 = 2.0 * x * x;
    let mut term = x;
    let mut sum = x;
    let mut n = 0.0;
    while term > 1e-18 * sum {
        n += 1.0;
        term *= x2 / (2.0 * n + 1.0);
        sum += term;
    }
    FRAC_2_SQRT_PI * (-x * x).exp() * sum
}

/// erfc(x) for x >= 3 by the continued fraction
/// `erfc(x) = e^{-x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …))))`, evaluated bottom-up.
fn erfc_cf(x: f64) -> f64 {
    let mut t = x;
    for k in (1..=80).rev() {
        t = x + (k as f64 / 2.0) / t;
    }
    (-x * x).exp() / std::f64::consts::PI.sqrt() / t
}

/// The error function, to about 1e-16 relative.
pub fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x < 0.0 {
        return -erf(-x);
    }
    if x < 3.0 {
        erf_series(x)
    } else {
        1.0 - erfc_cf(x)
    }
}

/// The complementary error function 1 - erf(x), accurate in the tails (no cancellation for x > 3).
pub fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x < 0.0 {
        return 2.0 - erfc(-x);
    }
    if x < 3.0 {
        1.0 - erf_series(x)
    } else {
        erfc_cf(x)
    }
}

/// `sqrt(2/pi)`, the GELU tanh-approximation constant.
pub fn gelu_k0() -> f64 {
    (2.0 / std::f64::consts::PI).sqrt()
}
/// The cubic coefficient of the GELU tanh approximation.
pub const GELU_K1: f64 = 0.044715;

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// `x^a` with PyTorch's rule: `x^0 = 1`, a negative base with a non-integral exponent is NaN,
/// with an integral one takes the sign of `x` when the exponent is odd.
pub fn pow_signed(x: f64, a: f64) -> f64 {
    if a == 0.0 {
        return 1.0;
    }
    let m = x.abs().powf(a);
    if x < 0.0 {
        if a - a.floor() != 0.0 {
            return f64::NAN;
        }
        let half = a * 0.5;
        return if half - half.floor() != 0.0 { -m } else { m };
    }
    m
}

/// `f(x)` for a unary op (`alpha`, `beta` as in [`crate::ops::elementwise::unary`]).
pub fn unary_scalar(op: UnaryOp, x: f64, alpha: f64, beta: f64) -> f64 {
    match op {
        UnaryOp::Neg => -x,
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => x.ln(),
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Rsqrt => 1.0 / x.sqrt(),
        UnaryOp::Relu => x.max(0.0),
        UnaryOp::GeluErf => 0.5 * x * erfc(-x / std::f64::consts::SQRT_2),
        UnaryOp::GeluTanh => 0.5 * x * (1.0 + (gelu_k0() * (x + GELU_K1 * x * x * x)).tanh()),
        UnaryOp::Silu => x * sigmoid(x),
        UnaryOp::Sigmoid => sigmoid(x),
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Pow => pow_signed(x, alpha),
        UnaryOp::Affine => x * alpha + beta,
        UnaryOp::Relu6 => x.clamp(0.0, 6.0),
        UnaryOp::Abs => x.abs(),
    }
}

/// `f'(x)` for a unary op; at kinks the GPU's one-sided choice (relu'(0) = 0, |x|'(0) = 0).
pub fn unary_scalar_grad(op: UnaryOp, x: f64, alpha: f64, _beta: f64) -> f64 {
    match op {
        UnaryOp::Neg => -1.0,
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => 1.0 / x,
        UnaryOp::Sqrt => 0.5 / x.sqrt(),
        UnaryOp::Rsqrt => -0.5 / (x * x.sqrt()),
        UnaryOp::Relu => {
            if x > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        UnaryOp::GeluErf => {
            let cdf = 0.5 * erfc(-x / std::f64::consts::SQRT_2);
            let pdf = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
            cdf + x * pdf
        }
        UnaryOp::GeluTanh => {
            let k0 = gelu_k0();
            let t = (k0 * (x + GELU_K1 * x * x * x)).tanh();
            0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k0 * (1.0 + 3.0 * GELU_K1 * x * x)
        }
        UnaryOp::Silu => {
            let s = sigmoid(x);
            s + x * s * (1.0 - s)
        }
        UnaryOp::Sigmoid => {
            let s = sigmoid(x);
            s * (1.0 - s)
        }
        UnaryOp::Tanh => {
            let t = x.tanh();
            1.0 - t * t
        }
        UnaryOp::Pow => alpha * pow_signed(x, alpha - 1.0),
        UnaryOp::Affine => alpha,
        UnaryOp::Relu6 => {
            if x > 0.0 && x < 6.0 {
                1.0
            } else {
                0.0
            }
        }
        UnaryOp::Abs => {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                0.0
            }
        }
    }
}

/// Elementwise `f(x)`.
pub fn unary(x: &RefTensor, op: UnaryOp, alpha: f64, beta: f64) -> RefTensor {
    x.map(|v| unary_scalar(op, v, alpha, beta))
}

/// `g * f'(x)`.
pub fn unary_backward(x: &RefTensor, g: &RefTensor, op: UnaryOp, alpha: f64, beta: f64) -> RefTensor {
    x.zip(g, |v, gv| gv * unary_scalar_grad(op, v, alpha, beta))
}

fn binary_scalar(op: BinaryOp, a: f64, b: f64) -> f64 {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
    }
}

/// `a (op) b` with NumPy broadcasting.
pub fn binary(a: &RefTensor, b: &RefTensor, op: BinaryOp) -> RefTensor {
    let shape = broadcast_shape(&a.shape, &b.shape)
        .unwrap_or_else(|| panic!("reference: {:?} and {:?} do not broadcast", a.shape, b.shape));
    let n = super::numel(&shape);
    let data = (0..n)
        .map(|i| {
            let c = unravel(i, &shape);
            binary_scalar(op, a.data[broadcast_index(&c, &a.shape)], b.data[broadcast_index(&c, &b.shape)])
        })
        .collect();
    RefTensor::new(data, &shape)
}

/// Gradients of `a (op) b` given `g` of the broadcast output, each summed back to its input's shape.
pub fn binary_backward(a: &RefTensor, b: &RefTensor, g: &RefTensor, op: BinaryOp) -> (RefTensor, RefTensor) {
    let shape = g.shape.clone();
    let n = g.numel();
    let mut ga = RefTensor::zeros(&shape);
    let mut gb = RefTensor::zeros(&shape);
    for i in 0..n {
        let c = unravel(i, &shape);
        let av = a.data[broadcast_index(&c, &a.shape)];
        let bv = b.data[broadcast_index(&c, &b.shape)];
        let gv = g.data[i];
        let (da, db) = match op {
            BinaryOp::Add => (1.0, 1.0),
            BinaryOp::Sub => (1.0, -1.0),
            BinaryOp::Mul => (bv, av),
            BinaryOp::Div => (1.0 / bv, -av / (bv * bv)),
        };
        ga.data[i] = gv * da;
        gb.data[i] = gv * db;
    }
    (sum_to_shape(&ga, &a.shape), sum_to_shape(&gb, &b.shape))
}
