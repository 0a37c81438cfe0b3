//! `whet compare RECIPE.toml`: strategies × seeds on the same test items, into results.json and
//! report.html.

use std::path::Path;

use whet::run::compare::{compare as run_compare, CompareOptions};
use whet::train::stop::StopFlag;
use whet::Engine;

use super::recipe_args::RecipeArgs;

pub fn compare(
    args: &RecipeArgs,
    out: Option<&Path>,
    strategies: &[String],
    seeds: &[u64],
    folds: Option<usize>,
    sweep: Option<whet::run::sweep::SweepOptions>,
    quiet: bool,
) -> whet::Result<()> {
    let flags = Flags { strategies, seeds, folds, sweep };
    super::on_ranks(|cluster| compare_on(args, out, flags, quiet, cluster))
}

/// `whet compare`'s choices besides the recipe.
struct Flags<'a> {
    strategies: &'a [String],
    seeds: &'a [u64],
    folds: Option<usize>,
    sweep: Option<whet::run::sweep::SweepOptions>,
}

/// One rank's part (every rank trains its share of the runs; rank 0 prints and writes).
fn compare_on(
    args: &RecipeArgs,
    out: Option<&Path>,
    flags: Flags,
    quiet: bool,
    cluster: whet::dist::Cluster,
) -> whet::Result<()> {
    let Flags { strategies, seeds, folds, sweep } = flags;
    check_flags(seeds, folds, sweep.as_ref())?;
    let recipe_path = &args.recipe;
    let recipe = args.load()?;
    if args.printed(&recipe)? {
        return Ok(());
    }
    let out_dir = out.map(Path::to_path_buf).unwrap_or_else(|| recipe.output.dir.join("compare"));
    let stop = StopFlag::new();
    stop.install_signal_handlers()?;
    let engine = Engine::new(whet::EngineOptions::from_env()?)?;
    if cluster.is_distributed() {
        eprintln!("whet ({}): adapter {}", cluster.label(), engine.adapter_name());
    }
    let opts = CompareOptions {
        only: strategies.to_vec(),
        seeds: seeds.to_vec(),
        folds,
        sweep,
        out_dir: out_dir.clone(),
        progress: !quiet && cluster.is_root(),
        cluster: cluster.clone(),
    };
    if !cluster.is_root() {
        // The other ranks train their share of the runs; rank 0 reports.
        return run_compare(&engine, &recipe, &opts, &stop).map(|_| ());
    }
    println!("whet compare {}  (adapter: {})", recipe_path.display(), engine.adapter_name());
    let r = run_compare(&engine, &recipe, &opts, &stop)?;
    let m = &r.primary_metric;
    println!(
        "{:<22}{:>30}  {:>36}{:>10}",
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
        println!("{:<22}{v:>30}  {d:>36}{:>10.1}", s.name, s.train_secs);
    }
    if let Some(sw) = &r.sweep {
        println!("sweep ({} on validation; rows: frozen depth, columns: learning rate):", sw.metric);
        print!("{:>8}", "depth");
        for lr in &sw.lrs {
            print!("{lr:>10.1e}");
        }
        println!();
        for (i, d) in sw.depths.iter().enumerate() {
            print!("{d:>8}");
            for j in 0..sw.lrs.len() {
                match sw.values.get(i * sw.lrs.len() + j).copied().flatten() {
                    Some(v) => print!("{v:>10.4}"),
                    None => print!("{:>10}", "-"),
                }
            }
            println!();
        }
    }
    if let Some(a) = &r.auto {
        println!("auto: frozen depth {}, lr {:.1e}: {}", a.depth, a.lr, a.reason);
    }
    for k in &r.retention {
        println!(
            "retention of {} under {}: {:.4} -> {:.4} [{:.4}, {:.4}]",
            k.source_task, k.strategy, k.before.point, k.after.point, k.after.lo, k.after.hi
        );
    }
    if cluster.is_distributed() {
        println!("the runs were shared out over {} ranks", cluster.size());
    }
    println!("report: {}", out_dir.join(whet::report::html::REPORT_HTML).display());
    Ok(())
}

/// The flags refused before anything loads: a repeated seed would count one run twice in the
/// pooled intervals, one fold is no cross-validation, and a sweep learning rate must be one.
fn check_flags(
    seeds: &[u64],
    folds: Option<usize>,
    sweep: Option<&whet::run::sweep::SweepOptions>,
) -> whet::Result<()> {
    if let Some(s) = seeds.iter().enumerate().find_map(|(i, s)| seeds[..i].contains(s).then_some(s)) {
        return Err(whet::Error::arg("compare", format!("--seeds: seed {s} is given twice")));
    }
    if let Some(k) = folds {
        super::at_least("compare", "--folds", k, 2)?;
    }
    let lrs = sweep.map_or(&[][..], |s| &s.lrs[..]);
    if let Some(lr) = lrs.iter().find(|lr| !(lr.is_finite() && **lr > 0.0)) {
        return Err(whet::Error::arg(
            "compare",
            format!("--sweep-lrs {lr}: out of range (allowed: finite and > 0)"),
        ));
    }
    Ok(())
}
