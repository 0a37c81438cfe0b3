//! Text classification (BERT-style encoders with a sequence head): each batch is tokenised,
//! truncated to `max_len`, padded to its longest item, and every id checked against the model's
//! vocabulary on the CPU before upload. Evaluation batches are tokenised once.

use std::ops::Range;

use super::{gathered_report, probabilities, regularised, val_share, EVAL_BATCH};
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
use crate::train::distill::distillation_loss;
use crate::train::driver::{whole_split, Metrics, Task};
use crate::train::ewc::Ewc;
use crate::train::l2sp::L2Sp;

use super::source::{Lwf, SourceHead};

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
    /// The checkpoint's previous task (retention, LwF, EWC).
    pub source: Option<SourceHead>,
    train: Vec<TextItem>,
    val: Vec<TextItem>,
    /// The encoded batches of the validation items last evaluated (a rank's share, or all).
    val_batches: Option<(Range<usize>, Vec<TextBatch>)>,
}

/// Builds a [`TextTask`]: `TextTask::builder(&engine, model, tokenizer).train(items)
/// .val(items).classes(2).max_len(128).build()?`.
pub struct TextTaskBuilder {
    engine: Engine,
    model: AnyModel,
    tokenizer: TextTokenizer,
    train: Vec<TextItem>,
    val: Vec<TextItem>,
    classes: Option<usize>,
    max_len: usize,
    label_smoothing: f32,
}

impl TextTaskBuilder {
    /// Labelled items to train on (required).
    pub fn train(mut self, items: Vec<TextItem>) -> Self {
        self.train = items;
        self
    }

    /// Labelled items evaluated after each epoch (default: none).
    pub fn val(mut self, items: Vec<TextItem>) -> Self {
        self.val = items;
        self
    }

    /// Number of classes, the model head's outputs (required).
    pub fn classes(mut self, n: usize) -> Self {
        self.classes = Some(n);
        self
    }

    /// Longest token sequence; longer texts are truncated (default 128).
    pub fn max_len(mut self, n: usize) -> Self {
        self.max_len = n;
        self
    }

    /// Label smoothing of the training loss (default 0).
    pub fn label_smoothing(mut self, eps: f32) -> Self {
        self.label_smoothing = eps;
        self
    }

    /// The task, or [`Error::InvalidArgument`] naming the setting that is missing or wrong.
    pub fn build(self) -> Result<TextTask> {
        const OP: &str = "TextTask::builder";
        let classes = self.classes.ok_or_else(|| Error::arg(OP, "classes is not set"))?;
        if classes == 0 {
            return Err(Error::arg(OP, "classes must be >= 1"));
        }
        if self.max_len == 0 {
            return Err(Error::arg(OP, "max_len must be >= 1"));
        }
        if self.train.iter().any(|t| t.label.is_none()) {
            return Err(Error::arg("text task", "training items need labels"));
        }
        if let Some(t) = self.train.iter().chain(&self.val).find(|t| t.label.is_some_and(|l| l >= classes)) {
            return Err(Error::arg(
                OP,
                format!("{}label {:?} is not below classes = {classes}", t.place(), t.label),
            ));
        }
        Ok(TextTask {
            engine: self.engine,
            model: self.model,
            tokenizer: self.tokenizer,
            max_len: self.max_len,
            classes,
            label_smoothing: self.label_smoothing,
            l2sp: None,
            source: None,
            train: self.train,
            val: self.val,
            val_batches: None,
        })
    }
}

impl TextTask {
    /// A [`TextTaskBuilder`] for `model` reading its texts with `tokenizer`.
    pub fn builder(engine: &Engine, model: AnyModel, tokenizer: TextTokenizer) -> TextTaskBuilder {
        TextTaskBuilder {
            engine: engine.clone(),
            model,
            tokenizer,
            train: Vec::new(),
            val: Vec::new(),
            classes: None,
            max_len: 128,
            label_smoothing: 0.0,
        }
    }

    fn vocab(&self) -> usize {
        self.model.vocab_size().unwrap_or_else(|| self.tokenizer.vocab_size())
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
        let labels = items.iter().map(|t| t.label.unwrap_or(0)).collect();
        Predictions::new(self.probabilities_of(items)?, labels, self.classes)
    }

    /// Class probabilities of `items`, row-major (empty for no items).
    pub fn probabilities_of(&self, items: &[TextItem]) -> Result<Vec<f32>> {
        self.batch_probabilities(&self.encode_chunks(items)?)
    }

    fn encode_chunks(&self, items: &[TextItem]) -> Result<Vec<TextBatch>> {
        items.chunks(EVAL_BATCH).map(|c| self.encode(&c.iter().collect::<Vec<_>>())).collect()
    }

    fn batch_probabilities(&self, batches: &[TextBatch]) -> Result<Vec<f32>> {
        let _g = self.engine.no_grad();
        let mut probs = Vec::new();
        for b in batches {
            probs.extend(probabilities(&self.logits(b, Mode::EVAL)?)?);
        }
        Ok(probs)
    }
}

/// The source task's side of [`TextTask`]: its head applied to the current body.
impl TextTask {
    fn source_head(&self) -> Result<&SourceHead> {
        self.source.as_ref().ok_or_else(|| Error::arg("text task", "no [source] task is kept"))
    }

    /// Source-head logits `[B, source classes]` of a batch (and the new task's logits).
    fn both_logits(&self, b: &TextBatch, mode: Mode) -> Result<(Tensor, Tensor)> {
        let out = self.model.text_outputs(&bert_input(b), mode)?;
        let pooled = out.pooled.ok_or_else(|| Error::arg("text task", "the model has no pooler"))?;
        let logits = out.logits.ok_or_else(|| Error::arg("text task", "the model has no head"))?;
        Ok((logits, self.source_head()?.logits(&pooled)?))
    }

    /// Source-head logits of `items`, row-major (evaluation mode, no tape).
    fn source_logits(&self, items: &[TextItem]) -> Result<Vec<f32>> {
        let _g = self.engine.no_grad();
        let mut out = Vec::new();
        for c in items.chunks(EVAL_BATCH) {
            let b = self.encode(&c.iter().collect::<Vec<_>>())?;
            out.extend(self.both_logits(&b, Mode::EVAL)?.1.to_vec()?);
        }
        Ok(out)
    }

    /// The source task's class probabilities on its held-out items, through the current body.
    pub fn source_predictions(&self) -> Result<Option<Predictions>> {
        let Some(s) = &self.source else { return Ok(None) };
        if s.test.is_empty() {
            return Ok(None);
        }
        let logits = self.source_logits(&s.test)?;
        let c = s.classes();
        let t = Tensor::from_slice(&self.engine, &logits, &[s.test.len(), c])?;
        let labels = s.test.iter().map(|t| t.label.unwrap_or(0)).collect();
        Ok(Some(Predictions::new(probabilities(&t)?, labels, c)?))
    }

    /// LwF: record the checkpoint's source outputs on every training item (call before training).
    pub fn record_teacher(&mut self, weight: f32, temperature: f32) -> Result<()> {
        let teacher = self.source_logits(&self.train)?;
        let s = self.source.as_mut().ok_or_else(|| Error::arg("lwf", "no [source] task is kept"))?;
        s.lwf = Some(Lwf { weight, temperature, teacher });
        Ok(())
    }

    /// EWC: the diagonal Fisher of the source loss, one item at a time (per-sample gradients,
    /// as in the paper), over `items` labelled source items (call before training). The new
    /// head is not on the source loss's path, so it gets no term.
    pub fn estimate_ewc(&mut self, lambda: f32, items: &[TextItem]) -> Result<()> {
        if items.is_empty() {
            return Err(Error::arg("ewc", "no source items to estimate the Fisher on"));
        }
        let mut ewc = Ewc::new(lambda)?;
        for it in items {
            let b = self.encode(&[it])?;
            let (_, src) = self.both_logits(&b, Mode::EVAL)?;
            let label = it.label.unwrap_or(0) as u32;
            let g = cross_entropy(&src, &[label], CrossEntropy::default())?.backward()?;
            ewc.add_batch(self.model.params(), &g)?;
        }
        let ewc = ewc.finish()?;
        let s = self.source.as_mut().ok_or_else(|| Error::arg("ewc", "no [source] task is kept"))?;
        s.ewc = Some(ewc);
        Ok(())
    }

    /// The new task's loss plus the LwF and EWC terms the source asks for.
    fn loss_keeping_source(
        &self,
        items: &[usize],
        b: &TextBatch,
        labels: &[u32],
        mode: Mode,
    ) -> Result<Tensor> {
        let s = self.source_head()?;
        let (logits, src) = self.both_logits(b, mode)?;
        let ce = CrossEntropy { label_smoothing: self.label_smoothing, ..Default::default() };
        let mut loss = cross_entropy(&logits, labels, ce)?;
        if let (Some(l), Some(teacher)) = (&s.lwf, s.teacher_rows(items, &self.engine)?) {
            loss = loss.add(&distillation_loss(&src, &teacher, l.temperature)?.mul_scalar(l.weight)?)?;
        }
        if let Some(p) = s.ewc.as_ref().map(|e| e.penalty(self.model.params())).transpose()?.flatten() {
            loss = loss.add(&p)?;
        }
        Ok(loss)
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
        if self.source.as_ref().is_some_and(|s| s.lwf.is_some() || s.ewc.is_some()) {
            let loss = self.loss_keeping_source(items, &b, &labels, mode)?;
            return regularised(loss, self.l2sp.as_ref(), self.model.params());
        }
        let logits = self.logits(&b, mode)?;
        let ce = CrossEntropy { label_smoothing: self.label_smoothing, ..Default::default() };
        regularised(cross_entropy(&logits, &labels, ce)?, self.l2sp.as_ref(), self.model.params())
    }

    fn evaluate(&mut self) -> Result<Metrics> {
        whole_split(self)
    }

    fn val_len(&self) -> usize {
        self.val.len()
    }

    /// The class probabilities of the items, row after row (their batches encoded once).
    fn val_outputs(&mut self, items: Range<usize>) -> Result<Vec<f64>> {
        let val = val_share(&self.val, &items, "text task")?;
        let batches = match self.val_batches.take() {
            Some((r, b)) if r == items => b,
            _ => self.encode_chunks(val)?,
        };
        let probs = self.batch_probabilities(&batches);
        self.val_batches = Some((items, batches));
        Ok(probs?.into_iter().map(f64::from).collect())
    }

    fn val_metrics(&mut self, outputs: &[f64]) -> Result<Metrics> {
        gathered_report(outputs, self.val.iter().map(|t| t.label.unwrap_or(0)).collect(), self.classes)
    }
}
