//! Fully connected layer: torch layout, weight `[out, in]`, `y = x Wᵀ + b`; or the GPT-2
//! `Conv1D` layout, weight `[in, out]`, `y = x W + b`, kept as stored so gradients and exports
//! keep the checkpoint's layout.

use crate::error::Result;
use crate::nn::{Binder, Init, Origin, Params, Pid};
use crate::ops::linear::linear;
use crate::tensor::Tensor;

/// `y = x Wᵀ + b` over the last axis of `x`.
#[derive(Debug, Clone, Copy)]
pub struct Linear {
    pub weight: Pid,
    pub bias: Option<Pid>,
    pub in_features: usize,
    pub out_features: usize,
    /// Weight stored `[in, out]` (GPT-2 Conv1D).
    pub in_major: bool,
}

impl Linear {
    /// Load `{path}.weight` (and `{path}.bias` when `bias`) from the checkpoint.
    pub fn load(
        b: &mut Binder,
        path: &str,
        in_features: usize,
        out_features: usize,
        bias: bool,
    ) -> Result<Self> {
        let weight = b.param(&format!("{path}.weight"), &[out_features, in_features])?;
        let bias = if bias { Some(b.param(&format!("{path}.bias"), &[out_features])?) } else { None };
        Ok(Linear { weight, bias, in_features, out_features, in_major: false })
    }

    /// Load a GPT-2 `Conv1D`: `{path}.weight` stored `[in, out]`, and `{path}.bias`.
    pub fn load_conv1d(b: &mut Binder, path: &str, in_features: usize, out_features: usize) -> Result<Self> {
        let weight = b.param(&format!("{path}.weight"), &[in_features, out_features])?;
        let bias = Some(b.param(&format!("{path}.bias"), &[out_features])?);
        Ok(Linear { weight, bias, in_features, out_features, in_major: true })
    }

    /// A new layer: weight from `init`, bias zero (HF heads) or `bias_init`.
    pub fn fresh(
        b: &mut Binder,
        path: &str,
        in_features: usize,
        out_features: usize,
        init: Init,
        bias_init: Option<Init>,
    ) -> Result<Self> {
        let weight = b.fresh(&format!("{path}.weight"), &[out_features, in_features], init)?;
        let bias = match bias_init {
            Some(bi) => Some(b.fresh(&format!("{path}.bias"), &[out_features], bi)?),
            None => None,
        };
        Ok(Linear { weight, bias, in_features, out_features, in_major: false })
    }

    /// Re-initialise this layer in place for `out_features` outputs (a new task head): weight
    /// from `init`, bias from `bias_init`, drawn from `seed`; both become fresh and trainable.
    pub fn reinit(
        &mut self,
        p: &mut Params,
        out_features: usize,
        init: Init,
        bias_init: Init,
        seed: u64,
    ) -> Result<()> {
        let e = p.get(self.weight).engine().clone();
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed);
        let shape =
            if self.in_major { [self.in_features, out_features] } else { [out_features, self.in_features] };
        let w = Tensor::from_slice(&e, &init.sample(out_features * self.in_features, &mut rng)?, &shape)?;
        p.reset(self.weight, w, Origin::Fresh)?;
        if let Some(b) = self.bias {
            let bt = Tensor::from_slice(&e, &bias_init.sample(out_features, &mut rng)?, &[out_features])?;
            p.reset(b, bt, Origin::Fresh)?;
        }
        self.out_features = out_features;
        Ok(())
    }

    pub fn forward(&self, p: &Params, x: &Tensor) -> Result<Tensor> {
        let y = linear(x, p.get(self.weight), self.bias.map(|b| p.get(b)), self.in_major)?;
        match p.lora_of(self.weight) {
            // x Aᵀ Bᵀ: two thin products (rank r), never the dense B·A.
            Some(l) => {
                let xa = linear(x, p.get(l.a), None, false)?;
                y.add(&linear(&xa, p.get(l.b), None, false)?.mul_scalar(l.scale)?)
            }
            None => Ok(y),
        }
    }
}
