//! f64 central-difference gradient checker for the reference backward functions.
//!
//! The op's output is reduced to a scalar `L = Σ out · w` with a fixed pseudo-random weighting
//! `w` (so every output element contributes with a different weight, and a gradient that mixes
//! up elements cannot pass). The analytic gradient is the op's vector-Jacobian product with `w`;
//! the numerical one is `(L(x + ε e_j) - L(x - ε e_j)) / 2ε` for every input element `j`. An
//! element passes when `|analytic - numeric| <= atol + rtol · |numeric|`.
//!
//! Defaults follow `docs/reliability.md`: ε = 1e-6, atol = 1e-5, rtol = 1e-3. Check ops away
//! from their kinks (relu at 0, abs at 0, max at ties): there the two sides disagree by design.

use super::{unravel, RefTensor};

/// Step and tolerances of a check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    pub eps: f64,
    pub atol: f64,
    pub rtol: f64,
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance { eps: 1e-6, atol: 1e-5, rtol: 1e-3 }
    }
}

/// A passed check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradcheckReport {
    /// Input elements whose derivative was checked.
    pub checked: usize,
    /// Largest `|analytic - numeric| / (atol + rtol |numeric|)` seen (<= 1).
    pub worst_ratio: f64,
}

/// A failed check, at the worst element.
#[derive(Debug, Clone, PartialEq)]
pub struct GradcheckFailure {
    /// Which input (position in `inputs`).
    pub input: usize,
    /// Linear index of the worst element within that input.
    pub index: usize,
    /// Its coordinates.
    pub coords: Vec<usize>,
    pub analytic: f64,
    pub numeric: f64,
    /// `|analytic - numeric| / (atol + rtol |numeric|)` at the worst element (> 1).
    pub ratio: f64,
    /// Elements out of tolerance, over all inputs.
    pub failures: usize,
    /// A problem with the backward function itself (wrong gradient shape), if any.
    pub note: Option<String>,
}

impl std::fmt::Display for GradcheckFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(n) = &self.note {
            return write!(f, "gradcheck: input {}: {n}", self.input);
        }
        write!(
            f,
            "gradcheck: {} element(s) out of tolerance; worst: input {} index {} {:?}: analytic {:e}, numeric {:e} ({:.2}x the tolerance)",
            self.failures, self.input, self.index, self.coords, self.analytic, self.numeric, self.ratio
        )
    }
}

impl std::error::Error for GradcheckFailure {}

/// The fixed upstream weighting for an output of `shape`: values in ±[0.5, 1.5), from a small
/// LCG seeded by `seed`.
pub fn upstream(shape: &[usize], seed: u64) -> RefTensor {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let n = super::numel(shape);
    let data = (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let u = (s >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
            let sign = if (s >> 7) & 1 == 1 { -1.0 } else { 1.0 };
            sign * (0.5 + u)
        })
        .collect();
    RefTensor::new(data, shape)
}

/// Check `backward` (a VJP: inputs and upstream gradient -> one gradient per input, `None` for
/// inputs that are not differentiable) against central differences of `forward`, with the
/// default tolerances.
pub fn gradcheck<F, B>(
    forward: F,
    backward: B,
    inputs: &[RefTensor],
) -> Result<GradcheckReport, GradcheckFailure>
where
    F: Fn(&[RefTensor]) -> RefTensor,
    B: Fn(&[RefTensor], &RefTensor) -> Vec<Option<RefTensor>>,
{
    gradcheck_with(forward, backward, inputs, Tolerance::default())
}

/// [`gradcheck`] with explicit tolerances.
pub fn gradcheck_with<F, B>(
    forward: F,
    backward: B,
    inputs: &[RefTensor],
    tol: Tolerance,
) -> Result<GradcheckReport, GradcheckFailure>
where
    F: Fn(&[RefTensor]) -> RefTensor,
    B: Fn(&[RefTensor], &RefTensor) -> Vec<Option<RefTensor>>,
{
    let out = forward(inputs);
    let w = upstream(&out.shape, out.numel() as u64 ^ 0x5eed);
    let loss = |xs: &[RefTensor]| forward(xs).dot(&w);
    let grads = backward(inputs, &w);
    assert_eq!(
        grads.len(),
        inputs.len(),
        "gradcheck: backward returned {} gradients for {} inputs",
        grads.len(),
        inputs.len()
    );

    let mut worst: Option<GradcheckFailure> = None;
    let mut worst_ratio = 0.0f64;
    let mut failures = 0;
    let mut checked = 0;
    let mut xs = inputs.to_vec();
    for (k, grad) in grads.iter().enumerate() {
        let Some(grad) = grad else { continue };
        if grad.shape != inputs[k].shape {
            return Err(GradcheckFailure {
                input: k,
                index: 0,
                coords: vec![],
                analytic: f64::NAN,
                numeric: f64::NAN,
                ratio: f64::INFINITY,
                failures: 1,
                note: Some(format!(
                    "backward gave a gradient of shape {:?} for an input of shape {:?}",
                    grad.shape, inputs[k].shape
                )),
            });
        }
        for j in 0..inputs[k].numel() {
            let x0 = inputs[k].data[j];
            xs[k].data[j] = x0 + tol.eps;
            let up = loss(&xs);
            xs[k].data[j] = x0 - tol.eps;
            let down = loss(&xs);
            xs[k].data[j] = x0;
            let numeric = (up - down) / (2.0 * tol.eps);
            let analytic = grad.data[j];
            let err = (analytic - numeric).abs();
            let ratio =
                if err.is_nan() { f64::INFINITY } else { err / (tol.atol + tol.rtol * numeric.abs()) };
            checked += 1;
            if ratio > 1.0 {
                failures += 1;
            }
            if ratio > worst_ratio {
                worst_ratio = ratio;
                worst = Some(GradcheckFailure {
                    input: k,
                    index: j,
                    coords: unravel(j, &inputs[k].shape),
                    analytic,
                    numeric,
                    ratio,
                    failures: 0,
                    note: None,
                });
            }
        }
    }
    match worst {
        Some(mut f) if failures > 0 => {
            f.failures = failures;
            Err(f)
        }
        _ => Ok(GradcheckReport { checked, worst_ratio }),
    }
}
