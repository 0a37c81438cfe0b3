//! The checkpoint's previous task, kept beside the new one (a `[source]` recipe section).
//!
//! A model fine-tuned on task A (say SST-2 sentiment) is fine-tuned again on task B (say spam).
//! Its A head is copied out before B's fresh head replaces it, and stays frozen; A's logits are
//! then `head_A(pooled features)` of the *current* body. That gives three things:
//! - **retention**: A's accuracy on A's held-out items before and after fine-tuning on B;
//! - **LwF** (Li & Hoiem 2016): the body is asked to keep A's outputs on B's own inputs, the
//!   teacher outputs recorded once from the checkpoint (B's items never change, so one pass
//!   before training replaces a teacher forward every step);
//! - **EWC** (Kirkpatrick et al. 2017): the Fisher of A's loss, estimated before training.

use crate::data::labels::LabelMap;
use crate::data::table::TextItem;
use crate::error::{Error, Result};
use crate::nn::Params;
use crate::ops::matmul::matmul_t;
use crate::tensor::Tensor;
use crate::train::ewc::Ewc;

/// Where BERT keeps its sequence head.
const HEAD_WEIGHT: &str = "classifier.weight";
const HEAD_BIAS: &str = "classifier.bias";

/// Learning without forgetting: the teacher's source logits of every training item.
pub struct Lwf {
    pub weight: f32,
    pub temperature: f32,
    /// `[train items × source classes]`, row i for training item i.
    pub teacher: Vec<f32>,
}

/// The source task: its frozen head, held-out items and the anti-forgetting terms.
pub struct SourceHead {
    /// For the report, e.g. "SST-2 sentiment".
    pub name: String,
    pub labels: LabelMap,
    /// Held-out labelled items of the source task (retention is measured on them).
    pub test: Vec<TextItem>,
    weight: Tensor,
    bias: Option<Tensor>,
    pub lwf: Option<Lwf>,
    pub ewc: Option<Ewc>,
}

impl SourceHead {
    /// Copy the source head out of `params` (before the new task's head replaces it). The
    /// checkpoint must have carried it: a freshly drawn head would measure nothing.
    pub fn capture(
        params: &Params,
        name: String,
        labels: LabelMap,
        test: Vec<TextItem>,
    ) -> Result<SourceHead> {
        let id = params.find(HEAD_WEIGHT).ok_or_else(|| {
            Error::arg("source", format!("the model has no '{HEAD_WEIGHT}' to keep as the source head"))
        })?;
        let e = params.entry(id);
        if e.origin != crate::nn::Origin::Checkpoint {
            return Err(Error::arg(
                "source",
                format!(
                    "the checkpoint has no {}-class head for the source task ('{HEAD_WEIGHT}' was drawn \
                     afresh): fine-tune on the source task first and point model.path at that run's model/",
                    labels.len()
                ),
            ));
        }
        let _g = e.tensor.engine().no_grad();
        let weight = e.tensor.detach().contiguous_copy()?;
        let bias = match params.find(HEAD_BIAS) {
            Some(b) => Some(params.get(b).detach().contiguous_copy()?),
            None => None,
        };
        Ok(SourceHead { name, labels, test, weight, bias, lwf: None, ewc: None })
    }

    /// Number of source classes.
    pub fn classes(&self) -> usize {
        self.weight.shape().first().copied().unwrap_or(0)
    }

    /// Source logits `[B, classes]` of pooled features `[B, H]` (the head itself never trains).
    pub fn logits(&self, pooled: &Tensor) -> Result<Tensor> {
        let y = matmul_t(pooled, &self.weight, false, true)?;
        match &self.bias {
            Some(b) => y.add(b),
            None => Ok(y),
        }
    }

    /// The teacher's logits of training items `items` as a `[B, classes]` tensor.
    pub fn teacher_rows(&self, items: &[usize], engine: &crate::engine::Engine) -> Result<Option<Tensor>> {
        let Some(l) = &self.lwf else { return Ok(None) };
        let c = self.classes();
        let mut rows = Vec::with_capacity(items.len() * c);
        for &i in items {
            let row = l.teacher.get(i * c..(i + 1) * c).ok_or_else(|| {
                Error::arg("lwf", format!("training item {i} has no recorded teacher output"))
            })?;
            rows.extend_from_slice(row);
        }
        Ok(Some(Tensor::from_slice(engine, &rows, &[items.len(), c])?))
    }
}
