//! Initialisers for fresh parameters (new task heads, models trained from scratch).
//!
//! Draws come from a seeded ChaCha8 stream, so a head initialised with the same seed is the same
//! on every machine and adapter.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Uniform};

use crate::error::{Error, Result};
use crate::nn::params::{Params, Pid, Slot};

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

/// How [`reinitialise`] draws matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// BERT, GPT-2, Llama: N(0, 0.02²) for every matrix and embedding, as Hugging Face's
    /// `_init_weights` does (`initializer_range`).
    Transformer,
    /// ResNet, VGG, EfficientNet: torchvision's Kaiming-normal (fan-out) for convolutions and
    /// torch's default U(±1/√fan_in) for linear layers.
    ConvNet,
}

/// Draw every parameter of `params` afresh, as an untrained model of the same architecture:
/// the "from scratch" baseline that measures what pretraining contributes. By path and shape:
/// biases and LayerNorm/BatchNorm shifts 0, 1-D gains 1, matrices by `family`; running means
/// 0 and variances 1; other buffers (step counters, position ids) are kept. Returns the number
/// of tensors redrawn. Shapes, trainable flags and origins are unchanged.
pub fn reinitialise(params: &mut Params, family: Family, seed: u64) -> Result<usize> {
    let mut rng = <ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed ^ 0x5c7a_7c40);
    let mut redrawn = 0;
    for i in 0..params.len() {
        let id = Pid(i);
        let e = params.entry(id);
        if e.tensor.dtype() != crate::tensor::DType::F32 {
            continue;
        }
        let (path, shape, n) = (e.path.clone(), e.tensor.shape().to_vec(), e.tensor.numel());
        let leaf = path.rsplit('.').next().unwrap_or(&path);
        let init = match e.slot {
            Slot::Buffer if leaf == "running_mean" => Init::Zeros,
            Slot::Buffer if leaf == "running_var" => Init::Ones,
            Slot::Buffer => continue,
            Slot::Param if leaf.ends_with("bias") || leaf == "beta" => Init::Zeros,
            Slot::Param if shape.len() <= 1 => Init::Ones,
            Slot::Param => match family {
                Family::Transformer => Init::Normal { std: 0.02 },
                Family::ConvNet if shape.len() == 4 => {
                    // [out, in/groups, kh, kw]: fan-out = out · kh · kw.
                    Init::KaimingNormalFanOut { fan_out: shape[0] * shape[2] * shape[3] }
                }
                Family::ConvNet => {
                    let fan_in = if e.in_major { shape[0] } else { n / shape[0].max(1) };
                    Init::TorchDefault { fan_in }
                }
            },
        };
        let t = crate::tensor::Tensor::from_slice(e.tensor.engine(), &init.sample(n, &mut rng)?, &shape)?;
        params.replace(id, t)?;
        redrawn += 1;
    }
    Ok(redrawn)
}
