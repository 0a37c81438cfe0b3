//! LoRA (Hu et al., 2021): low-rank adapters on linear layers. A targeted weight W `[out, in]`
//! gets A `[r, in]` and B `[out, r]` and computes `W x + (alpha / r) · B A x`. A starts as
//! torch's Linear default U(±1/√in) and B at zero (peft's init), so the model is unchanged
//! at step 0. Paths: `{weight path minus ".weight"}.lora_A` / `.lora_B`.
//!
//! Export merges: W' = W + (alpha/r) · B A (transposed for `[in, out]` Conv1D weights), and the
//! adapters are left out, so the exported checkpoint loads into the plain model.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};
use crate::nn::params::Lora;
use crate::nn::{Init, Origin, Params, Select, Slot};
use crate::ops::matmul::matmul_t;
use crate::tensor::Tensor;

/// Where and how to attach adapters.
#[derive(Debug, Clone)]
pub struct LoraConfig {
    pub rank: usize,
    pub alpha: f32,
    /// Which linear weights get adapters (e.g. `Glob("*attention.self.{query,value}.weight")`).
    pub targets: Select,
    /// Freeze every other parameter except `train_also` (peft's default).
    pub freeze_base: bool,
    /// Parameters that keep training beside the adapters (the task head: peft's `modules_to_save`).
    pub train_also: Option<Select>,
    pub seed: u64,
}

/// Attach adapters; returns how many weights got one.
pub fn apply(params: &mut Params, cfg: &LoraConfig) -> Result<usize> {
    if cfg.rank == 0 {
        return Err(Error::arg("lora", "rank must be >= 1"));
    }
    let m = cfg.targets.compile()?;
    let targets: Vec<_> = params
        .entries()
        .iter()
        .filter(|e| e.slot == Slot::Param && e.tensor.rank() == 2 && m.matches(&e.path, e.depth))
        .map(|e| (e.path.clone(), e.tensor.shape().to_vec(), e.in_major, e.depth, e.tensor.engine().clone()))
        .collect();
    if targets.is_empty() {
        return Err(Error::arg("lora", format!("{:?} matches no 2-D weight", cfg.targets)));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let scale = cfg.alpha / cfg.rank as f32;
    let mut adapters = Vec::new();
    for (path, shape, in_major, depth, e) in &targets {
        let (out_f, in_f) = if *in_major { (shape[1], shape[0]) } else { (shape[0], shape[1]) };
        let base = path.strip_suffix(".weight").unwrap_or(path);
        let a = Init::TorchDefault { fan_in: in_f }.sample(cfg.rank * in_f, &mut rng)?;
        let a = params.push(
            &format!("{base}.lora_A"),
            Tensor::from_slice(e, &a, &[cfg.rank, in_f])?,
            Slot::Param,
            Origin::Fresh,
        )?;
        let b = params.push(
            &format!("{base}.lora_B"),
            Tensor::zeros(e, &[out_f, cfg.rank])?,
            Slot::Param,
            Origin::Fresh,
        )?;
        let w = params.find(path).expect("target exists");
        params.attach_lora(w, Lora { a, b, scale });
        adapters.push((a, b, *depth));
    }
    // Adapters sit at their weight's depth, for depth selectors and layer-wise rates.
    let depths: std::collections::HashMap<String, usize> = adapters
        .iter()
        .flat_map(|(a, b, d)| [(params.entry(*a).path.clone(), *d), (params.entry(*b).path.clone(), *d)])
        .collect();
    let old: std::collections::HashMap<String, usize> =
        params.entries().iter().map(|e| (e.path.clone(), e.depth)).collect();
    params.set_depths(|p| depths.get(p).copied().unwrap_or(old[p]));
    if cfg.freeze_base {
        let keep = Select::Any(
            std::iter::once(Select::Regex(r"\.lora_[AB]$".into())).chain(cfg.train_also.clone()).collect(),
        );
        params.freeze(&Select::Not(Box::new(keep)))?;
    }
    Ok(targets.len())
}

/// The state to export: every non-adapter tensor, targeted weights merged with their adapter.
pub fn merged(params: &Params) -> Result<Vec<(String, Tensor)>> {
    let adapters: std::collections::HashSet<usize> =
        params.loras().flat_map(|(_, l)| [l.a, l.b]).map(|p| p.0).collect();
    let mut out = Vec::new();
    for (i, e) in params.entries().iter().enumerate() {
        if adapters.contains(&i) {
            continue;
        }
        let id = params.find(&e.path).expect("registered");
        let t = match params.lora_of(id) {
            Some(l) => {
                let _g = e.tensor.engine().no_grad();
                // B A is [out, in]; a Conv1D weight is stored [in, out] = (B A)ᵀ = Aᵀ Bᵀ.
                let delta = if e.in_major {
                    matmul_t(params.get(l.a), params.get(l.b), true, true)?
                } else {
                    params.get(l.b).matmul(params.get(l.a))?
                };
                crate::ops::quant::dequantize(&e.tensor.detach())?.add(&delta.mul_scalar(l.scale)?)?
            }
            None => e.tensor.detach(),
        };
        out.push((e.path.clone(), t));
    }
    Ok(out)
}
