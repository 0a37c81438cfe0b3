//! `whet compare RECIPE.toml`: strategies × seeds on the same test items, into results.json and
//! report.html.

use std::path::Path;

use whet::run::compare::{compare as run_compare, CompareOptions};
use whet::run::Recipe;
use whet::train::stop::StopFlag;
use whet::Engine;

pub fn compare(
    recipe_path: &Path,
    out: Option<&Path>,
    strategies: &[String],
    seeds: &[u64],
    quiet: bool,
) -> whet::Result<()> {
    let recipe = Recipe::load(recipe_path)?;
    let out_dir = out.map(Path::to_path_buf).unwrap_or_else(|| recipe.output.dir.join("compare"));
    let stop = StopFlag::new();
    stop.install_signal_handlers()?;
    let engine = Engine::new(Default::default())?;
    println!("whet compare {}  (adapter: {})", recipe_path.display(), engine.adapter_name());
    let opts = CompareOptions {
        only: strategies.to_vec(),
        seeds: seeds.to_vec(),
        out_dir: out_dir.clone(),
        progress: !quiet,
    };
    let r = run_compare(&engine, &recipe, &opts, &stop)?;
    let m = &r.primary_metric;
    println!(
        "{:<22}{:>30}{:>34}{:>10}",
        "strategy",
        format!("{m} [95% CI]"),
        "vs full fine-tune (paired)",
        "train s"
    );
    for s in &r.strategies {
        let v = s
            .metrics
            .get(m)
            .map_or("-".to_string(), |i| format!("{:.4} [{:.4}, {:.4}]", i.point, i.lo, i.hi));
        let d = s.vs_reference.as_ref().map_or("-".to_string(), |p| {
            format!("{:+.4} [{:+.4}, {:+.4}] p={:.3}", p.diff.point, p.diff.lo, p.diff.hi, p.paired_p)
        });
        println!("{:<22}{v:>30}{d:>34}{:>10.1}", s.name, s.train_secs);
    }
    println!("report: {}", out_dir.join(whet::report::html::REPORT_HTML).display());
    Ok(())
}
