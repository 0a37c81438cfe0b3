//! `whet lr-find RECIPE`: the learning-rate range test on the recipe's task, a table of what it
//! measured, the two classic suggestions, and the plot as SVG.

use std::path::Path;

use whet::train::lr_finder::{LrFinder, LrReport};
use whet::Engine;

use super::recipe_args::RecipeArgs;

/// The command's settings beside the recipe.
pub struct Sweep {
    pub start: f64,
    pub end: f64,
    pub steps: usize,
}

pub fn lr_find(args: &RecipeArgs, sweep: &Sweep, plot: Option<&Path>, quiet: bool) -> whet::Result<()> {
    let recipe = args.load()?;
    if args.printed(&recipe)? {
        return Ok(());
    }
    let engine = Engine::new(whet::EngineOptions::from_env()?)?;
    println!("whet lr-find {}  (adapter: {})", args.recipe.display(), engine.adapter_name());
    let finder = LrFinder { start: sweep.start, end: sweep.end, steps: sweep.steps, ..LrFinder::default() };
    let r = whet::run::lr_find::lr_find(&engine, &recipe, &finder, !quiet)?;
    print_table(&r);
    println!("suggested learning rate: {:.2e} (steepest descent of the smoothed loss)", r.steepest);
    println!("                     or: {:.2e} (the minimum's rate / 10)", r.min_over_10);
    println!("the recipe's train.lr:     {:.2e}", recipe.train.lr);
    let out = plot.map(Path::to_path_buf).unwrap_or_else(|| recipe.output.dir.join("lr_find.svg"));
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| whet::Error::io(dir, e))?;
    }
    let svg = whet::report::lr_plot::lr_finder_svg(&r)?;
    std::fs::write(&out, svg).map_err(|e| whet::Error::io(&out, e))?;
    println!("plot: {}", out.display());
    Ok(())
}

/// About ten rows spread over the sweep, and its last (the divergence, when it stopped early).
fn print_table(r: &LrReport) {
    println!("{:>12}  {:>10}  {:>10}", "lr", "loss", "smoothed");
    let every = (r.lrs.len() / 10).max(1);
    for i in (0..r.lrs.len()).filter(|i| i % every == 0 || i + 1 == r.lrs.len()) {
        println!("{:>12.2e}  {:>10.4}  {:>10.4}", r.lrs[i], r.losses[i], r.smoothed[i]);
    }
}
