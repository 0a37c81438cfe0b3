//! What the causal language models share: the key/value cache and generation (greedy, top-k,
//! top-p sampling); the shifted next-token loss is in `lm_loss.rs`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::ops::layout::concat;
use crate::tensor::Tensor;

pub use super::lm_loss::{causal_lm_loss, chunked_causal_lm_loss};

/// Past keys and values of every layer, `[B, Hkv, T_past, D]` each.
#[derive(Default)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
    len: usize,
}

impl KvCache {
    pub fn new(layers: usize) -> KvCache {
        KvCache { layers: (0..layers).map(|_| None).collect(), len: 0 }
    }

    /// Tokens already cached (the position of the next token).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Append this step's keys and values for `layer`; returns the full keys and values.
    pub fn extend(&mut self, layer: usize, k: Tensor, v: Tensor) -> Result<(Tensor, Tensor)> {
        let slot =
            self.layers.get_mut(layer).ok_or_else(|| Error::arg("kv_cache", format!("no layer {layer}")))?;
        let (k, v) = match slot.take() {
            Some((pk, pv)) => (concat(&[&pk, &k], 2)?, concat(&[&pv, &v], 2)?),
            None => (k, v),
        };
        *slot = Some((k.clone(), v.clone()));
        Ok((k, v))
    }

    /// Record that a forward of `t` new tokens finished.
    pub fn advance(&mut self, t: usize) {
        self.len += t;
    }
}

/// A decoder-only language model.
pub trait CausalLm {
    /// Logits `[B, T, V]` for `ids` `[B, T]` placed after the cache's tokens (the cache, when
    /// given, is extended).
    fn logits(&self, ids: &[u32], batch: usize, seq: usize, cache: Option<&mut KvCache>) -> Result<Tensor>;
    /// A cache sized for this model.
    fn new_cache(&self) -> KvCache;
    /// Longest sequence the position encoding supports.
    fn max_positions(&self) -> usize;
    /// The engine the model lives on.
    fn engine(&self) -> &Engine;
    /// The shifted next-token loss of `ids` `[B, T]` ([`causal_lm_loss`]); a model may compute
    /// it without holding the whole `[B, T, V]` logits ([`chunked_causal_lm_loss`]).
    fn loss(&self, ids: &[u32], batch: usize, seq: usize, ignore: Option<u32>) -> Result<Tensor> {
        causal_lm_loss(&self.logits(ids, batch, seq, None)?, ids, ignore)
    }
}

/// How the next token is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    Greedy,
    /// Sample among the `k` most likely tokens after dividing logits by `temperature`.
    TopK {
        k: usize,
        temperature: f32,
    },
    /// Sample from the smallest set of tokens whose probability reaches `p` (nucleus).
    TopP {
        p: f32,
        temperature: f32,
    },
}

/// Generation settings.
#[derive(Debug, Clone, Copy)]
pub struct Generate {
    pub max_new_tokens: usize,
    pub sampling: Sampling,
    pub seed: u64,
    /// Stop after emitting this token.
    pub eos: Option<u32>,
}

/// Continue `prompt` (one sequence) with a KV cache: the prompt runs once, then one token per
/// step. Returns the new tokens only.
pub fn generate(model: &dyn CausalLm, prompt: &[u32], opts: &Generate) -> Result<Vec<u32>> {
    if prompt.is_empty() {
        return Err(Error::arg("generate", "empty prompt"));
    }
    if prompt.len() + opts.max_new_tokens > model.max_positions() {
        return Err(Error::arg(
            "generate",
            format!(
                "prompt {} + {} new tokens exceed the model's {} positions",
                prompt.len(),
                opts.max_new_tokens,
                model.max_positions()
            ),
        ));
    }
    let _g = model.engine().no_grad();
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let mut cache = model.new_cache();
    let mut out = Vec::with_capacity(opts.max_new_tokens);
    let mut next_in: Vec<u32> = prompt.to_vec();
    for _ in 0..opts.max_new_tokens {
        let logits = model.logits(&next_in, 1, next_in.len(), Some(&mut cache))?;
        let (t, v) = (logits.shape()[1], logits.shape()[2]);
        let last = logits.slice(1, t - 1, 1)?.reshape(&[v])?.to_vec()?;
        let tok = pick(&last, opts.sampling, &mut rng)?;
        out.push(tok);
        if Some(tok) == opts.eos {
            break;
        }
        next_in = vec![tok];
    }
    Ok(out)
}

/// Choose a token from one row of logits.
pub fn pick(logits: &[f32], sampling: Sampling, rng: &mut ChaCha8Rng) -> Result<u32> {
    if logits.is_empty() || logits.iter().any(|v| v.is_nan()) {
        return Err(Error::arg("generate", "logits are empty or NaN"));
    }
    let argmax = || {
        // First maximum, as torch.argmax.
        let mut best = 0;
        for (i, v) in logits.iter().enumerate() {
            if *v > logits[best] {
                best = i;
            }
        }
        best as u32
    };
    let (keep, temperature) = match sampling {
        Sampling::Greedy => return Ok(argmax()),
        Sampling::TopK { k, temperature } => (Keep::K(k), temperature),
        Sampling::TopP { p, temperature } => (Keep::P(p), temperature),
    };
    match keep {
        Keep::K(0) => return Err(Error::arg("sampling", "top-k needs k >= 1")),
        Keep::P(p) if !(p > 0.0 && p <= 1.0) => {
            return Err(Error::arg("sampling", format!("top-p needs p in (0, 1], got {p}")))
        }
        _ => {}
    }
    if !(temperature.is_finite() && temperature >= 0.0) {
        return Err(Error::arg(
            "sampling",
            format!("temperature must be finite and >= 0, got {temperature}"),
        ));
    }
    // Temperature 0 is the limit of sharpening: the most likely token.
    if temperature == 0.0 {
        return Ok(argmax());
    }
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    let m = logits[idx[0]] as f64;
    let probs: Vec<f64> = idx.iter().map(|&i| ((logits[i] as f64 - m) / temperature as f64).exp()).collect();
    let total: f64 = probs.iter().sum();
    let n = match keep {
        Keep::K(k) => k.min(idx.len()),
        Keep::P(p) => {
            let mut acc = 0.0;
            let mut n = 0;
            for q in &probs {
                acc += q / total;
                n += 1;
                if acc >= p as f64 {
                    break;
                }
            }
            n
        }
    };
    let mass: f64 = probs[..n].iter().sum();
    let mut r = rng.random::<f64>() * mass;
    for (j, q) in probs[..n].iter().enumerate() {
        r -= q;
        if r <= 0.0 {
            return Ok(idx[j] as u32);
        }
    }
    Ok(idx[n - 1] as u32)
}

enum Keep {
    K(usize),
    P(f32),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_keeps_to_its_candidates() {
        let logits = [0.0f32, 5.0, 4.9, -3.0, 4.8];
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert_eq!(pick(&logits, Sampling::Greedy, &mut rng).unwrap(), 1);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let t = pick(&logits, Sampling::TopK { k: 2, temperature: 1.0 }, &mut rng).unwrap();
            assert!(t == 1 || t == 2, "top-2 sampled {t}");
            seen.insert(t);
        }
        assert_eq!(seen.len(), 2, "both of the top 2 are drawn");
        // p = 0.5: token 1 alone holds ~36%, tokens 1 and 2 ~70% ⇒ the nucleus is {1, 2}.
        for _ in 0..200 {
            let t = pick(&logits, Sampling::TopP { p: 0.5, temperature: 1.0 }, &mut rng).unwrap();
            assert!(t == 1 || t == 2, "top-p sampled {t}");
        }
        assert!(pick(&[f32::NAN], Sampling::Greedy, &mut rng).is_err());
    }

    #[test]
    fn out_of_range_sampling_settings_are_refused_not_changed() {
        let logits = [0.0f32, 5.0, 4.9];
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for bad in [
            Sampling::TopK { k: 0, temperature: 1.0 },
            Sampling::TopP { p: 0.0, temperature: 1.0 },
            Sampling::TopP { p: 1.5, temperature: 1.0 },
            Sampling::TopK { k: 2, temperature: -1.0 },
            Sampling::TopK { k: 2, temperature: f32::NAN },
        ] {
            let e = pick(&logits, bad, &mut rng).unwrap_err().to_string();
            assert!(e.contains("sampling"), "{e}");
        }
        assert_eq!(pick(&logits, Sampling::TopK { k: 2, temperature: 0.0 }, &mut rng).unwrap(), 1, "greedy");
    }
}
