//! The driver's [`Task`](crate::train::driver::Task)s: a zoo model bound to its data. One per
//! kind of job: image classification, text classification, causal-LM fine-tuning.

pub mod image;
pub mod lm;
pub mod source;
pub mod text;

use crate::error::Result;
use crate::eval::Predictions;
use crate::nn::Params;
use crate::tensor::Tensor;
use crate::train::driver::Metrics;
use crate::train::l2sp::L2Sp;

/// Texts per evaluation forward (no tape, so memory allows more than a training batch).
pub const EVAL_BATCH: usize = 32;

/// Images per evaluation forward: a 224² EfficientNet batch of 32 has a 154 MB activation,
/// over lavapipe's 128 MiB binding limit; 8 stays far below it.
pub const IMAGE_EVAL_BATCH: usize = 8;

/// The validation items of one rank's share, or an error naming the range.
pub fn val_share<'a, T>(all: &'a [T], items: &std::ops::Range<usize>, task: &'static str) -> Result<&'a [T]> {
    all.get(items.clone()).ok_or_else(|| {
        crate::error::Error::arg(task, format!("validation items {items:?} out of range (0..{})", all.len()))
    })
}

/// The classification metrics of gathered class probabilities (`outputs`, row after row, as
/// f64) against every validation item's label; none without items.
pub fn gathered_report(outputs: &[f64], labels: Vec<usize>, classes: usize) -> Result<Metrics> {
    if labels.is_empty() {
        return Ok(Metrics::new());
    }
    let probs = outputs.iter().map(|&p| p as f32).collect();
    Ok(classification_report(&Predictions::new(probs, labels, classes)?))
}

/// The training items `items` index, or an error naming the first index out of range.
pub fn pick<'a, T>(all: &'a [T], items: &[usize], task: &'static str) -> Result<Vec<&'a T>> {
    items
        .iter()
        .map(|&i| {
            all.get(i).ok_or_else(|| {
                crate::error::Error::arg(task, format!("item {i} out of range (0..{})", all.len()))
            })
        })
        .collect()
}

/// The loss plus the L2-SP penalty when the recipe asks for one.
pub fn regularised(loss: Tensor, l2sp: Option<&L2Sp>, params: &Params) -> Result<Tensor> {
    match l2sp.map(|r| r.penalty(params)).transpose()?.flatten() {
        Some(p) => loss.add(&p),
        None => Ok(loss),
    }
}

/// Softmax rows of `logits` `[n, classes]` read back to the host.
pub fn probabilities(logits: &Tensor) -> Result<Vec<f32>> {
    logits.softmax()?.to_vec()
}

/// The standard classification metrics plus the mean cross-entropy ("loss").
pub fn classification_report(p: &Predictions) -> Metrics {
    let mut m: Metrics = crate::eval::classification_metrics(p).into_iter().collect();
    m.insert("loss".into(), crate::eval::log_loss(p));
    m
}
