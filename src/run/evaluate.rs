//! Stage 5 of a run: the held-out split evaluated (classifiers: probabilities and bootstrap
//! metrics; language models: per-block losses and perplexity), the source task's retention,
//! attributions and a generated sample.

use crate::dist::Cluster;
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

/// How a held-out evaluation is run: its bootstrap, its progress line and the ranks that share
/// its items.
pub struct HeldOutSettings {
    pub resamples: usize,
    pub seed: u64,
    pub progress: bool,
    /// Each rank predicts its contiguous share of the split; every rank gets all predictions.
    pub cluster: Cluster,
}

/// Evaluate the held-out split under the name `name` ("baseline", "test"), showing a phase
/// line with `progress`.
pub fn held_out(prep: &mut Prepared, name: &str, how: &HeldOutSettings) -> Result<HeldOut> {
    let phase = Phase::begin(how.progress, format!("evaluating {name} on the {} split", prep.test_split()));
    let held = held_out_now(prep, name, how);
    phase.end();
    held
}

fn held_out_now(prep: &mut Prepared, name: &str, how: &HeldOutSettings) -> Result<HeldOut> {
    let HeldOutSettings { resamples, seed, ref cluster, .. } = *how;
    let split = format!("{name} ({})", prep.test_split());
    if let Some(p) = prep.test_predictions(cluster)? {
        return Ok(HeldOut {
            evaluation: Some(evaluation(&split, &p, resamples, seed)?),
            predictions: Some(p),
            block_losses: None,
        });
    }
    match prep.test_block_losses(cluster)? {
        Some(losses) => Ok(HeldOut {
            evaluation: Some(lm_evaluation(split, &losses, resamples, seed)?),
            predictions: None,
            block_losses: Some(losses),
        }),
        None => Ok(HeldOut::default()),
    }
}

/// Every rank's share laid end to end (one process: its own values).
fn gathered(cluster: &Cluster, mine: Vec<f64>) -> Result<Vec<f64>> {
    if cluster.is_distributed() {
        cluster.gather_f64(&mine)
    } else {
        Ok(mine)
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

    /// Class probabilities on the held-out split (classifiers; `None` otherwise), each of
    /// `cluster`'s ranks predicting its share.
    pub fn test_predictions(&mut self, cluster: &Cluster) -> Result<Option<Predictions>> {
        let (probs, labels, classes) = match (&mut self.task, &self.test) {
            (TaskBox::Image(t), TestSet::Images(items)) if !items.is_empty() => {
                let mine = t.probabilities_of(&items[cluster.share(items.len())])?;
                (mine, items.iter().map(|i| i.label).collect(), t.classes)
            }
            (TaskBox::Text(t), TestSet::Texts(items)) if !items.is_empty() => {
                let mine = t.probabilities_of(&items[cluster.share(items.len())])?;
                (mine, items.iter().map(|i| i.label.unwrap_or(0)).collect(), t.classes)
            }
            _ => return Ok(None),
        };
        let all = gathered(cluster, probs.into_iter().map(f64::from).collect())?;
        Ok(Some(Predictions::new(all.into_iter().map(|p| p as f32).collect(), labels, classes)?))
    }

    /// The mean token loss of every held-out block (causal LMs; `None` otherwise), each of
    /// `cluster`'s ranks evaluating its share.
    pub fn test_block_losses(&mut self, cluster: &Cluster) -> Result<Option<Vec<f64>>> {
        match (&mut self.task, &self.test) {
            (TaskBox::Lm(t), TestSet::Blocks(blocks)) if !blocks.is_empty() => {
                let mine = blocks[cluster.share(blocks.len())]
                    .iter()
                    .map(|b| t.mean_loss(std::slice::from_ref(b)))
                    .collect::<Result<_>>()?;
                Ok(Some(gathered(cluster, mine)?))
            }
            _ => Ok(None),
        }
    }

    /// Metrics with intervals on the held-out split (`None` when there is none).
    pub fn test_evaluation(&mut self, name: &str, resamples: usize, seed: u64) -> Result<Option<Evaluation>> {
        let how = HeldOutSettings { resamples, seed, progress: false, cluster: Cluster::solo() };
        Ok(held_out_now(self, name, &how)?.evaluation)
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
