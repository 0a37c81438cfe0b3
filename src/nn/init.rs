//! Initialisers for fresh parameters (new task heads, models trained from scratch).
//!
//! Draws come from a seeded ChaCha8 stream, so a head initialised with the same seed is the same
//! on every machine and adapter.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Uniform};

use crate::error::{Error, Result};

/// How to fill a fresh tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    Zeros,
    Ones,
    Constant(f32),
    /// N(0, std²): what Hugging Face uses for transformer heads (`initializer_range`, 0.02).
    Normal {
        std: f32,
    },
    /// U(−bound, bound).
    Uniform {
        bound: f32,
    },
    /// torch.nn.Linear / Conv2d default, kaiming_uniform(a=√5): U(±1/√fan_in) for weights and
    /// biases alike.
    TorchDefault {
        fan_in: usize,
    },
    /// Kaiming normal, fan-out, ReLU gain (torchvision's conv init): N(0, 2/fan_out).
    KaimingNormalFanOut {
        fan_out: usize,
    },
}

impl Init {
    /// `n` values drawn from this initialiser.
    pub fn sample(&self, n: usize, rng: &mut ChaCha8Rng) -> Result<Vec<f32>> {
        let bad = |m: String| Error::arg("init", m);
        Ok(match *self {
            Init::Zeros => vec![0.0; n],
            Init::Ones => vec![1.0; n],
            Init::Constant(c) => vec![c; n],
            Init::Normal { std } => {
                let d = Normal::new(0.0f32, std).map_err(|e| bad(format!("normal std {std}: {e}")))?;
                (0..n).map(|_| d.sample(rng)).collect()
            }
            Init::Uniform { bound } => uniform(bound, n, rng)?,
            Init::TorchDefault { fan_in } => uniform(1.0 / (fan_in.max(1) as f32).sqrt(), n, rng)?,
            Init::KaimingNormalFanOut { fan_out } => {
                let std = (2.0 / fan_out.max(1) as f32).sqrt();
                let d = Normal::new(0.0f32, std).map_err(|e| bad(format!("normal std {std}: {e}")))?;
                (0..n).map(|_| d.sample(rng)).collect()
            }
        })
    }
}

fn uniform(bound: f32, n: usize, rng: &mut ChaCha8Rng) -> Result<Vec<f32>> {
    if !(bound.is_finite() && bound >= 0.0) {
        return Err(Error::arg("init", format!("uniform bound {bound} must be finite and >= 0")));
    }
    if bound == 0.0 {
        return Ok(vec![0.0; n]);
    }
    let d = Uniform::new(-bound, bound).map_err(|e| Error::arg("init", format!("uniform: {e}")))?;
    Ok((0..n).map(|_| rng.sample(d)).collect())
}
