//! `whet plan RECIPE`: the run's device memory before any is spent ([`whet::run::plan`]), and
//! the check `whet train` makes with it before training.

use std::path::Path;

use whet::run::plan::{self, MemoryPlan};
use whet::run::Recipe;
use whet::EngineOptions;

use super::recipe_args::RecipeArgs;

/// Print the plan of `args`' recipe; `memory` (e.g. `8GiB`) checks it against a device of that
/// size instead of this one's; `json` writes it as JSON too. Ends with 0 when the run fits (or
/// no limit is known) and 1 when it does not, for scripts.
pub fn plan(args: &RecipeArgs, memory: Option<&str>, json: Option<&Path>) -> whet::Result<u8> {
    let recipe = args.load()?;
    if args.printed(&recipe)? {
        return Ok(0);
    }
    let mut options = EngineOptions::from_env()?;
    if let Some(m) = memory {
        options.max_memory_bytes = Some(whet::engine::parse_size("--memory", m)?);
    }
    println!("whet plan {}", args.recipe.display());
    let p = plan::plan(&options, &recipe)?;
    print!("{}", p.report());
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&p).map_err(|e| whet::Error::arg("plan", e.to_string()))?;
        std::fs::write(path, text).map_err(|e| whet::Error::io(path, e))?;
    }
    Ok(if p.fits() { 0 } else { 1 })
}

/// `whet train`'s check before it opens the device for training: the plan, refused with what
/// to change when it needs more than the device has. Quiet when it fits.
pub fn check(options: &EngineOptions, recipe: &Recipe) -> whet::Result<MemoryPlan> {
    let p = plan::plan(options, recipe)?;
    if p.fits() {
        Ok(p)
    } else {
        Err(p.refusal())
    }
}
