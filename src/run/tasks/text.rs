//! Text classification (BERT-style encoders with a sequence head): each batch is tokenised,
//! truncated to `max_len`, padded to its longest item, and every id checked against the model's
//! vocabulary on the CPU before upload. Evaluation batches are tokenised once.

use super::{classification_report, probabilities, regularised, EVAL_BATCH};
use crate::data::table::TextItem;
use crate::data::tokenize::{check_ids, TextBatch, TextTokenizer};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::eval::Predictions;
use crate::models::bert::BertInput;
use crate::models::zoo::AnyModel;
use crate::nn::{Mode, Params};
use crate::ops::loss::{cross_entropy, CrossEntropy};
use crate::tensor::Tensor;
use crate::train::driver::{Metrics, Task};
use crate::train::l2sp::L2Sp;

/// A padded batch as BERT's input.
pub fn bert_input(b: &TextBatch) -> BertInput<'_> {
    BertInput {
        ids: &b.ids,
        type_ids: Some(&b.type_ids),
        attention_mask: Some(&b.mask),
        batch: b.batch,
        seq: b.seq,
        embed_offset: None,
    }
}

/// A classifier of texts (or text pairs) into `classes`.
pub struct TextTask {
    pub engine: Engine,
    pub model: AnyModel,
    pub tokenizer: TextTokenizer,
    pub max_len: usize,
    pub classes: usize,
    pub label_smoothing: f32,
    pub l2sp: Option<L2Sp>,
    train: Vec<TextItem>,
    val: Vec<TextItem>,
    val_batches: Option<Vec<TextBatch>>,
}

impl TextTask {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        engine: &Engine,
        model: AnyModel,
        tokenizer: TextTokenizer,
        train: Vec<TextItem>,
        val: Vec<TextItem>,
        classes: usize,
        max_len: usize,
    ) -> Result<TextTask> {
        if train.iter().any(|t| t.label.is_none()) {
            return Err(Error::arg("text task", "training items need labels"));
        }
        Ok(TextTask {
            engine: engine.clone(),
            model,
            tokenizer,
            max_len,
            classes,
            label_smoothing: 0.0,
            l2sp: None,
            train,
            val,
            val_batches: None,
        })
    }

    fn vocab(&self) -> usize {
        match &self.model {
            AnyModel::Bert(b) => b.config.vocab_size,
            _ => self.tokenizer.vocab_size(),
        }
    }

    /// Tokenise `items` into one padded batch, ids checked against the model's vocabulary.
    pub fn encode(&self, items: &[&TextItem]) -> Result<TextBatch> {
        let pairs: Vec<(&str, Option<&str>)> =
            items.iter().map(|t| (t.text.as_str(), t.pair.as_deref())).collect();
        let b = self.tokenizer.encode_batch(&pairs, self.max_len)?;
        check_ids(&b.ids, self.vocab(), "token ids")?;
        Ok(b)
    }

    fn logits(&self, b: &TextBatch, mode: Mode) -> Result<Tensor> {
        self.model.classify_text(&bert_input(b), mode)
    }

    /// Class probabilities of `items` (evaluation mode, no tape); unlabelled items get label 0.
    pub fn predict(&self, items: &[TextItem]) -> Result<Predictions> {
        let batches = items
            .chunks(EVAL_BATCH)
            .map(|c| self.encode(&c.iter().collect::<Vec<_>>()))
            .collect::<Result<Vec<_>>>()?;
        self.predict_batches(&batches, items.iter().map(|t| t.label.unwrap_or(0)).collect())
    }

    fn predict_batches(&self, batches: &[TextBatch], labels: Vec<usize>) -> Result<Predictions> {
        let _g = self.engine.no_grad();
        let mut probs = Vec::with_capacity(labels.len() * self.classes);
        for b in batches {
            probs.extend(probabilities(&self.logits(b, Mode::EVAL)?)?);
        }
        Predictions::new(probs, labels, self.classes)
    }
}

impl Task for TextTask {
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
        let chosen = super::pick(&self.train, items, "text task")?;
        let labels: Vec<u32> = chosen.iter().map(|t| t.label.unwrap_or(0) as u32).collect();
        let b = self.encode(&chosen)?;
        let logits = self.logits(&b, mode)?;
        let ce = CrossEntropy { label_smoothing: self.label_smoothing, ..Default::default() };
        regularised(cross_entropy(&logits, &labels, ce)?, self.l2sp.as_ref(), self.model.params())
    }

    fn evaluate(&mut self) -> Result<Metrics> {
        if self.val.is_empty() {
            return Ok(Metrics::new());
        }
        if self.val_batches.is_none() {
            let b = self
                .val
                .chunks(EVAL_BATCH)
                .map(|c| self.encode(&c.iter().collect::<Vec<_>>()))
                .collect::<Result<Vec<_>>>()?;
            self.val_batches = Some(b);
        }
        let labels = self.val.iter().map(|t| t.label.unwrap_or(0)).collect();
        let batches = self.val_batches.take().unwrap_or_default();
        let p = self.predict_batches(&batches, labels);
        self.val_batches = Some(batches);
        Ok(classification_report(&p?))
    }
}
