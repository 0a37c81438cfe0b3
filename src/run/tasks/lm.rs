//! Causal-LM fine-tuning on a tokenised corpus: blocks of `block` tokens, the model predicts
//! each next token (Hugging Face's shifted loss); validation reports loss and perplexity on a
//! held-out contiguous tail of the corpus.

use super::regularised;
use crate::data::tokenize::check_ids;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::models::zoo::AnyModel;
use crate::nn::{Mode, Params};
use crate::tensor::Tensor;
use crate::train::driver::{whole_split, Metrics, Task};
use crate::train::l2sp::L2Sp;
use std::ops::Range;

/// Blocks per evaluation forward.
const EVAL_BLOCKS: usize = 4;

/// A decoder fine-tuned on a corpus.
pub struct LmTask {
    pub engine: Engine,
    pub model: AnyModel,
    pub l2sp: Option<L2Sp>,
    tokens: Vec<u32>,
    train: Vec<Range<usize>>,
    val: Vec<Range<usize>>,
    vocab: usize,
}

/// Builds an [`LmTask`]: `LmTask::builder(&engine, model, tokens).train(blocks)
/// .val(blocks).build()?`.
pub struct LmTaskBuilder {
    engine: Engine,
    model: AnyModel,
    tokens: Vec<u32>,
    train: Vec<Range<usize>>,
    val: Vec<Range<usize>>,
    vocab: Option<usize>,
}

impl LmTaskBuilder {
    /// Token ranges to train on (required, at least one).
    pub fn train(mut self, blocks: Vec<Range<usize>>) -> Self {
        self.train = blocks;
        self
    }

    /// Token ranges evaluated after each epoch (default: none).
    pub fn val(mut self, blocks: Vec<Range<usize>>) -> Self {
        self.val = blocks;
        self
    }

    /// Vocabulary size every token id is checked against (default: the model's).
    pub fn vocab(mut self, n: usize) -> Self {
        self.vocab = Some(n);
        self
    }

    /// The task, or [`Error::InvalidArgument`] naming the setting that is missing or wrong.
    pub fn build(self) -> Result<LmTask> {
        if self.train.is_empty() {
            return Err(Error::arg("lm task", "the corpus is shorter than one block"));
        }
        let vocab = self.vocab.or_else(|| self.model.vocab_size()).ok_or_else(|| {
            Error::arg("LmTask::builder", "vocab is not set and the model has no vocabulary")
        })?;
        // Every id checked once against the model's vocabulary before anything is uploaded.
        check_ids(&self.tokens, vocab, "corpus token ids")?;
        let (engine, model, tokens, train, val) =
            (self.engine, self.model, self.tokens, self.train, self.val);
        Ok(LmTask { engine, model, l2sp: None, tokens, train, val, vocab })
    }
}

impl LmTask {
    /// An [`LmTaskBuilder`] over the token ids of a corpus.
    pub fn builder(engine: &Engine, model: AnyModel, tokens: Vec<u32>) -> LmTaskBuilder {
        LmTaskBuilder {
            engine: engine.clone(),
            model,
            tokens,
            train: Vec::new(),
            val: Vec::new(),
            vocab: None,
        }
    }

    fn gather(&self, blocks: &[&Range<usize>]) -> Result<(Vec<u32>, usize)> {
        let t = blocks.first().map_or(0, |r| r.len());
        let mut ids = Vec::with_capacity(blocks.len() * t);
        for r in blocks {
            if r.len() != t {
                return Err(Error::arg("lm task", "blocks of different lengths in one batch"));
            }
            ids.extend_from_slice(
                self.tokens.get(r.start..r.end).ok_or_else(|| Error::arg("lm task", "block out of range"))?,
            );
        }
        Ok((ids, t))
    }

    /// Mean next-token loss over `blocks` without a tape.
    pub fn mean_loss(&mut self, blocks: &[Range<usize>]) -> Result<f64> {
        let (sum, n) = self.loss_sum(blocks)?;
        Ok(if n == 0.0 { f64::NAN } else { sum / n })
    }

    /// The summed next-token loss over `blocks` and the number of predictions it sums.
    fn loss_sum(&mut self, blocks: &[Range<usize>]) -> Result<(f64, f64)> {
        let _g = self.engine.no_grad();
        let (mut sum, mut n) = (0.0f64, 0usize);
        for chunk in blocks.chunks(EVAL_BLOCKS) {
            let refs: Vec<&Range<usize>> = chunk.iter().collect();
            let (ids, t) = self.gather(&refs)?;
            let lm = self.model.causal_lm(Mode::EVAL)?;
            let loss = lm.loss(&ids, chunk.len(), t, None)?.item()? as f64;
            // Weighted by predictions so a short last chunk counts for what it holds.
            let preds = chunk.len() * (t - 1);
            sum += loss * preds as f64;
            n += preds;
        }
        Ok((sum, n as f64))
    }

    /// Validation blocks.
    pub fn val_blocks(&self) -> &[Range<usize>] {
        &self.val
    }

    /// Vocabulary the ids were checked against.
    pub fn vocab(&self) -> usize {
        self.vocab
    }
}

impl Task for LmTask {
    fn params(&self) -> &Params {
        self.model.params()
    }
    fn params_mut(&mut self) -> &mut Params {
        self.model.params_mut()
    }
    fn train_len(&self) -> usize {
        self.train.len()
    }

    fn loss(&mut self, items: &[usize], mode: Mode) -> Result<Tensor> {
        let blocks = super::pick(&self.train, items, "lm task")?;
        let (ids, t) = self.gather(&blocks)?;
        let n = blocks.len();
        let lm = self.model.causal_lm(mode)?;
        let loss = lm.loss(&ids, n, t, None)?;
        regularised(loss, self.l2sp.as_ref(), self.model.params())
    }

    fn evaluate(&mut self) -> Result<Metrics> {
        whole_split(self)
    }

    fn val_len(&self) -> usize {
        self.val.len()
    }

    /// `[summed loss, predictions]` over the blocks.
    fn val_outputs(&mut self, items: Range<usize>) -> Result<Vec<f64>> {
        let blocks = super::val_share(&self.val, &items, "lm task")?.to_vec();
        let (sum, n) = self.loss_sum(&blocks)?;
        Ok(vec![sum, n])
    }

    /// Loss and perplexity over every rank's `[sum, predictions]` pairs.
    fn val_metrics(&mut self, outputs: &[f64]) -> Result<Metrics> {
        if self.val.is_empty() {
            return Ok(Metrics::new());
        }
        let (sum, n) = outputs.chunks_exact(2).fold((0.0, 0.0), |(s, c), p| (s + p[0], c + p[1]));
        let loss = if n == 0.0 { f64::NAN } else { sum / n };
        Ok([("loss".to_string(), loss), ("perplexity".to_string(), loss.exp())].into_iter().collect())
    }
}
