//! Attributions of single test predictions for the compare report: which input tokens or
//! pixels the predicted class's logit is most sensitive to.
//!
//! Both methods need one forward and one backward per item, in evaluation mode with batch 1.
//! The input (an image, or an additive offset on BERT's input embeddings) is a fresh leaf that
//! requires grad; the logit of the predicted class is differentiated with respect to it. No
//! optimizer is involved and the parameters' gradients, computed along the way when parameters
//! are trainable, are dropped with the [`GradStore`]: training state is untouched.
//!
//! - Text: gradient × input (Denil et al. 2014; Shrikumar et al. 2016) on the token embeddings:
//!   the score of token `t` is `Σ_h ∂logit/∂e[t,h] · w[t,h]`, where `e` is the summed input
//!   embedding (word + position + type, before the embedding LayerNorm) and `w` the word
//!   embedding, the first-order change of the logit when the token's word vector is scaled up
//!   from 0. Signed: positive pushed towards the prediction. `w`, not `e`: the LayerNorm that
//!   follows is scale invariant per token, so `Σ_h ∂logit/∂e[t,h] · e[t,h]` is zero for every
//!   token (Euler's theorem: scaling all of `e[t]` changes nothing) and would show only
//!   rounding noise (tests/attributions.rs checks both). Position and type embeddings are the
//!   same for every text of that length: they carry nothing about which token stood there.
//! - Images: vanilla gradient saliency (Simonyan et al. 2014): `max_c |∂logit/∂x[c,y,x]|` over
//!   the normalised model input.

use crate::data::image::ImageSpec;
use crate::data::image_folder::ImageItem;
use crate::data::table::TextItem;
use crate::error::{Error, Result};
use crate::graph::GradStore;
use crate::models::bert::BertInput;
use crate::nn::Mode;
use crate::report::Attribution;
use crate::run::tasks::image::ImageTask;
use crate::run::tasks::text::{bert_input, TextTask};
use crate::tensor::Tensor;

/// Gradient × input scores over the tokens of each of `items` (see the module docs). `title`
/// heads every attribution, followed by the item's source line.
pub fn text_attributions(
    task: &TextTask,
    items: &[TextItem],
    class_names: &[String],
    title: &str,
) -> Result<Vec<Attribution>> {
    let encoder = task.model.text("text_attributions")?;
    needs_grad(&task.engine)?;
    let h = encoder.hidden_size();
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let batch = task.encode(&[item])?;
        let plain = bert_input(&batch);
        // The word vectors themselves, from the lookup the forward makes; no tape needed.
        let word = {
            let _g = task.engine.no_grad();
            encoder.word_embeddings(&plain)?.to_vec()?
        };
        // x = e + offset with offset = 0, so ∂logit/∂offset = ∂logit/∂e = ∂logit/∂w (e is w
        // plus terms that do not depend on the token).
        let offset = Tensor::zeros(&task.engine, &[1, batch.seq, h])?.requires_grad_(true);
        let input = BertInput { embed_offset: Some(&offset), ..plain };
        let logits = encoder
            .encode(&input, Mode::EVAL)?
            .logits
            .ok_or_else(|| Error::arg("text_attributions", "the model has no classification head"))?;
        let (pred, prob) = predicted(&logits)?;
        let grads = backward_from(&logits, pred)?;
        let g = input_grad(&grads, &offset, "embedding offset")?;
        let (mut tokens, mut scores) = (Vec::new(), Vec::new());
        // Batch of one: row 0. Padding carries no meaning (the attention mask hides it).
        for (t, (&id, &m)) in batch.ids.iter().zip(&batch.mask).enumerate() {
            if m == 0 {
                continue;
            }
            let span = t * h..(t + 1) * h;
            let s: f64 =
                g[span.clone()].iter().zip(&word[span]).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum();
            tokens.push(task.tokenizer.inner().id_to_token(id).unwrap_or_else(|| format!("[{id}]")));
            scores.push(s as f32);
        }
        if let Some(i) = first_non_finite(&scores) {
            let m = format!("{}the score of token {i} is not finite", item.place());
            return Err(Error::arg("text_attributions", m));
        }
        out.push(Attribution::Text {
            title: match item.line {
                Some(l) => format!("{title} · line {l}"),
                None => title.to_string(),
            },
            label: label_text(item.label, pred, prob, class_names),
            tokens,
            scores,
        });
    }
    Ok(out)
}

/// Vanilla gradient saliency of each of `items` at the model's input size (see the module
/// docs). `rgb` is the resized, centre-cropped image the model saw, recovered from its
/// normalised input so that heat and photo line up pixel for pixel. `title` heads every
/// attribution, followed by the file name.
pub fn image_attributions(
    task: &ImageTask,
    items: &[ImageItem],
    class_names: &[String],
    title: &str,
) -> Result<Vec<Attribution>> {
    needs_grad(&task.engine)?;
    let s = task.spec.size as usize;
    let plane = s * s;
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let pixels = task.eval_input(item)?;
        let x = Tensor::param(&task.engine, &pixels, &[1, 3, s, s])?;
        let logits = task.model.classify_images(&x, Mode::EVAL)?;
        let (pred, prob) = predicted(&logits)?;
        let grads = backward_from(&logits, pred)?;
        let g = input_grad(&grads, &x, "image")?;
        let heat: Vec<f32> =
            (0..plane).map(|p| (0..3).map(|c| g[c * plane + p].abs()).fold(0.0f32, f32::max)).collect();
        if let Some(p) = first_non_finite(&heat) {
            let m = format!("{}: the gradient at pixel {p} is not finite", item.path.display());
            return Err(Error::arg("image_attributions", m));
        }
        let rgb = displayed_rgb(&pixels, &task.spec);
        let name = item
            .path
            .file_name()
            .map_or_else(|| item.path.display().to_string(), |n| n.to_string_lossy().into());
        out.push(Attribution::Image {
            title: format!("{title} · {name}"),
            label: label_text(Some(item.label), pred, prob, class_names),
            width: task.spec.size,
            height: task.spec.size,
            rgb,
            heat,
        });
    }
    Ok(out)
}

/// Row-major RGB bytes of a normalised CHW input: `(x · std + mean) · 255`, which inverts
/// [`eval_transform`](crate::data::image::eval_transform) exactly after rounding.
fn displayed_rgb(chw: &[f32], spec: &ImageSpec) -> Vec<u8> {
    let plane = chw.len() / 3;
    let mut rgb = Vec::with_capacity(plane * 3);
    for p in 0..plane {
        for c in 0..3 {
            let v = (chw[c * plane + p] * spec.std[c] + spec.mean[c]) * 255.0;
            rgb.push(v.round().clamp(0.0, 255.0) as u8);
        }
    }
    rgb
}

/// Inside a `no_grad` scope nothing is recorded and there is nothing to differentiate.
fn needs_grad(engine: &crate::engine::Engine) -> Result<()> {
    if engine.grad_enabled() {
        Ok(())
    } else {
        Err(Error::Backward("attributions need gradients, but they were requested inside no_grad".into()))
    }
}

/// The arg-max class of a `[1, classes]` logit row and its softmax probability.
fn predicted(logits: &Tensor) -> Result<(usize, f32)> {
    let row = logits.detach().to_vec()?;
    let (pred, &top) = row
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .ok_or_else(|| Error::arg("attributions", "the model returned no logits"))?;
    // Softmax in f64 relative to the maximum: no overflow for large logits.
    let z: f64 = row.iter().map(|&l| (f64::from(l) - f64::from(top)).exp()).sum();
    Ok((pred, (1.0 / z) as f32))
}

/// Gradients of the `class` logit of a `[1, classes]` row with respect to every leaf.
fn backward_from(logits: &Tensor, class: usize) -> Result<GradStore> {
    logits.slice(1, class, 1)?.sum_all()?.backward()
}

/// The gradient of the input leaf `x`, read back to the host.
fn input_grad(grads: &GradStore, x: &Tensor, what: &str) -> Result<Vec<f32>> {
    grads
        .get(x)
        .ok_or_else(|| Error::Backward(format!("the predicted logit does not depend on the {what}")))?
        .to_vec()
}

/// A model gone non-finite would give the report a map that `CompareResults::validate`
/// rejects; the item is named here instead.
fn first_non_finite(values: &[f32]) -> Option<usize> {
    values.iter().position(|v| !v.is_finite())
}

/// "true: spam · predicted: ham (0.93)", or "predicted: ham (0.93)" for an unlabelled item.
/// A class without a name (fewer names than classes) is shown by its index.
fn label_text(truth: Option<usize>, pred: usize, prob: f32, names: &[String]) -> String {
    let name = |i: usize| names.get(i).cloned().unwrap_or_else(|| format!("class {i}"));
    let predicted = format!("predicted: {} ({prob:.2})", name(pred));
    match truth {
        Some(t) => format!("true: {} · {predicted}", name(t)),
        None => predicted,
    }
}
