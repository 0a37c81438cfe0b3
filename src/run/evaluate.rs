//! Stage 5 of a run: the held-out split evaluated (classifiers: probabilities and bootstrap
//! metrics; language models: per-block losses and perplexity), the source task's retention,
//! attributions and a generated sample.

use crate::error::Result;
use crate::eval::Predictions;
use crate::models::decoder::{generate, Generate};
use crate::progress::Phase;
use crate::report::results::Attribution;

use super::model_task::{TaskBox, TestSet};
use super::prepare::Prepared;
use super::recipe::Recipe;
use super::{evaluation, Evaluation, LEVEL};

/// What a held-out evaluation keeps for paired comparisons: a classifier's probabilities or a
/// language model's per-block losses.
#[derive(Debug, Clone, Default)]
pub struct HeldOut {
    pub evaluation: Option<Evaluation>,
    pub predictions: Option<Predictions>,
    pub block_losses: Option<Vec<f64>>,
}

/// Evaluate the held-out split under the name `name` ("baseline", "test"), showing a phase
/// line with `progress`.
pub fn held_out(
    prep: &mut Prepared,
    name: &str,
    resamples: usize,
    seed: u64,
    progress: bool,
) -> Result<HeldOut> {
    let phase = Phase::begin(progress, format!("evaluating {name} on the {} split", prep.test_split()));
    let held = held_out_now(prep, name, resamples, seed);
    phase.end();
    held
}

fn held_out_now(prep: &mut Prepared, name: &str, resamples: usize, seed: u64) -> Result<HeldOut> {
    let split = format!("{name} ({})", prep.test_split());
    if let Some(p) = prep.test_predictions()? {
        return Ok(HeldOut {
            evaluation: Some(evaluation(&split, &p, resamples, seed)?),
            predictions: Some(p),
            block_losses: None,
        });
    }
    match prep.test_block_losses()? {
        Some(losses) => Ok(HeldOut {
            evaluation: Some(lm_evaluation(split, &losses, resamples, seed)?),
            predictions: None,
            block_losses: Some(losses),
        }),
        None => Ok(HeldOut::default()),
    }
}

/// Per-block losses, resampled: an interval on perplexity over held-out text.
fn lm_evaluation(split: String, losses: &[f64], resamples: usize, seed: u64) -> Result<Evaluation> {
    Ok(Evaluation {
        split,
        items: losses.len(),
        metrics: crate::eval::lm_metrics(losses, resamples, LEVEL, seed)?,
    })
}

impl Prepared {
    /// "test", or "val" when the data has no test split and validation stands in.
    pub fn test_split(&self) -> &'static str {
        self.test_split
    }

    /// Class probabilities on the held-out split (classifiers; `None` otherwise).
    pub fn test_predictions(&mut self) -> Result<Option<Predictions>> {
        match (&mut self.task, &self.test) {
            (TaskBox::Image(t), TestSet::Images(items)) if !items.is_empty() => {
                let items = items.clone();
                Ok(Some(t.predict(&items)?))
            }
            (TaskBox::Text(t), TestSet::Texts(items)) if !items.is_empty() => Ok(Some(t.predict(items)?)),
            _ => Ok(None),
        }
    }

    /// The mean token loss of every held-out block (causal LMs; `None` otherwise).
    pub fn test_block_losses(&mut self) -> Result<Option<Vec<f64>>> {
        match (&mut self.task, &self.test) {
            (TaskBox::Lm(t), TestSet::Blocks(blocks)) if !blocks.is_empty() => {
                Ok(Some(blocks.iter().map(|b| t.mean_loss(std::slice::from_ref(b))).collect::<Result<_>>()?))
            }
            _ => Ok(None),
        }
    }

    /// Metrics with intervals on the held-out split (`None` when there is none).
    pub fn test_evaluation(&mut self, name: &str, resamples: usize, seed: u64) -> Result<Option<Evaluation>> {
        Ok(held_out_now(self, name, resamples, seed)?.evaluation)
    }

    /// Why the model predicts what it does for the first `n` held-out items: gradient × input
    /// over tokens (text) or gradient saliency over pixels (images); empty for language models.
    pub fn attributions(&self, n: usize, title: &str) -> Result<Vec<Attribution>> {
        let names: Vec<String> = self.labels.as_ref().map(|l| l.names().to_vec()).unwrap_or_default();
        match (&self.task, &self.test) {
            (TaskBox::Text(t), TestSet::Texts(items)) => {
                let n = n.min(items.len());
                super::attribute::text_attributions(t, &items[..n], &names, title)
            }
            (TaskBox::Image(t), TestSet::Images(items)) => {
                let n = n.min(items.len());
                super::attribute::image_attributions(t, &items[..n], &names, title)
            }
            _ => Ok(Vec::new()),
        }
    }

    /// The source task's predictions on its held-out items through the current body (a
    /// `[source]` recipe only).
    pub fn source_predictions(&self) -> Result<Option<(String, Predictions)>> {
        match &self.task {
            TaskBox::Text(t) => match (&t.source, t.source_predictions()?) {
                (Some(s), Some(p)) => Ok(Some((s.name.clone(), p))),
                _ => Ok(None),
            },
            _ => Ok(None),
        }
    }

    /// A continuation of `[generate] prompt` (causal LMs only).
    pub fn sample(&mut self, recipe: &Recipe) -> Result<Option<String>> {
        let g = &recipe.generate;
        let (TaskBox::Lm(t), Some(tok)) = (&mut self.task, &self.tokenizer) else { return Ok(None) };
        if g.prompt.is_empty() {
            return Ok(None);
        }
        let prompt = tok.encode(&g.prompt, false)?;
        let opts = Generate {
            max_new_tokens: g.max_new_tokens,
            sampling: g.sampling(),
            seed: recipe.train.seed,
            eos: tok.eos_id(),
        };
        let lm = t.model.causal_lm(crate::nn::Mode::EVAL)?;
        let out = generate(lm, &prompt, &opts)?;
        Ok(Some(format!("{}{}", g.prompt, tok.decode(&out, true)?)))
    }
}
