//! `whet train RECIPE.toml` and `whet eval RUN_DIR`.

use std::path::Path;

use whet::dist::Cluster;
use whet::run::{self, inference, prepare, RunOptions};
use whet::train::driver::StopReason;
use whet::train::run_dir::Opening;
use whet::train::stop::StopFlag;
use whet::Engine;

use super::recipe_args::RecipeArgs;

/// `whet train`'s switches.
pub struct Flags {
    pub fresh: bool,
    pub skip_bad: bool,
    pub quiet: bool,
    /// Make the memory plan first and refuse a run that does not fit.
    pub plan: bool,
}

/// What `whet train` ends with: 0, or 128 + the signal that stopped it (130 SIGINT, 143 SIGTERM).
///
/// Started by an MPI launcher (`mpirun -np N`, `srun`), every rank runs this: rank 0 prints and
/// writes the run folder. A rank that fails prints its error and aborts the whole job, so no
/// rank is left waiting in a collective.
pub fn train(args: &RecipeArgs, out: Option<&Path>, flags: Flags) -> whet::Result<u8> {
    super::on_ranks(|cluster| train_on(args, out, flags, cluster))
}

fn train_on(args: &RecipeArgs, out: Option<&Path>, flags: Flags, cluster: Cluster) -> whet::Result<u8> {
    let Flags { fresh, skip_bad, quiet, plan } = flags;
    let recipe_path = &args.recipe;
    let mut recipe = args.load()?;
    if let Some(o) = out {
        recipe.output.dir = o.to_path_buf();
    }
    if fresh {
        recipe.output.resume = false;
    }
    recipe.data.skip_bad |= skip_bad;
    let root = cluster.is_root();
    if args.printed(&recipe)? {
        return Ok(0);
    }
    let stop = StopFlag::new();
    // The library installs no handler; the CLI asks for one so Ctrl-C finishes the step and saves.
    stop.install_signal_handlers()?;
    let options = whet::EngineOptions::from_env()?;
    // Before the device is opened for training: a run that cannot fit is refused with what to
    // change, instead of failing mid-step (or, on a CPU adapter, exhausting host memory).
    let planned = if plan { Some(super::plan::check(&options, &recipe)?) } else { None };
    let engine = Engine::new(options)?;
    if cluster.is_distributed() {
        // Each rank names its adapter: a job whose ranks share one GPU shows it here.
        eprintln!("whet ({}): adapter {}", cluster.label(), engine.adapter_name());
    }
    if root {
        println!("whet train {}  (adapter: {})", recipe_path.display(), engine.adapter_name());
        if let Some(note) = whet::dist::mpirun_grace_note().filter(|_| cluster.is_distributed()) {
            eprintln!("{note}");
        }
    }
    if let (Some(p), true) = (&planned, root) {
        println!("memory plan: {} at the peak", whet::run::plan::human(p.total));
    }
    let flag = |name: &str| std::env::var_os(name).is_some_and(|v| v != "0");
    let opts = RunOptions {
        progress: !quiet,
        baseline: true,
        cluster: cluster.clone(),
        check_replicas: flag("WHET_CHECK_REPLICAS"),
        // WHET_OVERLAP_ALL_REDUCE=0: the reduction after the backward, to measure the overlap.
        reduce_after_backward: std::env::var_os("WHET_OVERLAP_ALL_REDUCE").is_some_and(|v| v == "0"),
        ..Default::default()
    };
    let outcome = run::train(&engine, &recipe, &stop, opts)?;
    let code = match root {
        true => report(&recipe, &outcome),
        false => match outcome.summary.stopped {
            StopReason::Interrupted { signal } => (128 + signal).clamp(0, 255) as u8,
            _ => 0,
        },
    };
    // No rank leaves before rank 0 has written and printed everything: mpirun ends the whole
    // job as soon as one rank exits non-zero (an interrupted run's 130/143).
    cluster.barrier()?;
    Ok(code)
}

/// What rank 0 prints after a run; the exit code (128 + the signal of an interrupted run).
fn report(recipe: &whet::run::Recipe, outcome: &run::Outcome) -> u8 {
    for s in &outcome.skipped_items {
        println!("skipped: {s}");
    }
    let s = &outcome.summary;
    match &outcome.opening {
        Opening::Fresh => {
            println!("started over: the earlier run's files in {} were removed", outcome.dir.display())
        }
        Opening::Resume { extended, .. } if !extended.is_empty() => println!(
            "extending the run in {} (the learning-rate schedule follows the new length):\n  {}",
            outcome.dir.display(),
            extended.iter().map(|c| c.to_string()).collect::<Vec<_>>().join("\n  ")
        ),
        _ => {}
    }
    if let Some(from) = s.resumed_from {
        println!("resumed from step {from}");
        if from == s.steps && s.stopped == StopReason::Finished {
            println!("the run had already finished: its model was evaluated again (`--fresh` trains anew)");
        }
    }
    println!(
        "trained {} steps ({} epochs) in {:.1} s; {} non-finite steps skipped; stopped: {:?}",
        s.steps, s.epochs, s.train_secs, s.skipped_steps, s.stopped
    );
    if let Some(r) = &s.all_reduce {
        let per_step = |secs: f64| 1e3 * secs / r.steps.max(1) as f64;
        let how = match r.overlapped {
            true => match r.buckets {
                1 => "in 1 bucket overlapping the backward".to_string(),
                n => format!("in {n} buckets overlapping the backward"),
            },
            false => {
                format!("after the backward ({:.1} ms per step in staging)", per_step(r.secs - r.mpi_secs))
            }
        };
        println!(
            "data-parallel over {} ranks: {} of gradients all-reduced per step {how}, {:.1} ms per step \
             in MPI and write-back{}",
            r.ranks,
            whet::run::plan::human(r.bytes_per_step),
            per_step(r.mpi_secs),
            match r.replica_checks {
                0 => String::new(),
                n => format!("; replicas identical after each of {n} steps"),
            }
        );
    }
    if let Some(k) = s.micro_batch {
        let b = recipe.train.batch_size;
        println!("batches of {b} did not fit one dispatch: ran as {} micro-batches of {k}", b.div_ceil(k));
    }
    if let StopReason::Interrupted { signal } = s.stopped {
        println!(
            "interrupted: checkpoint saved in {}; run the same command to resume",
            outcome.dir.display()
        );
        return (128 + signal).clamp(0, 255) as u8;
    }
    match (&outcome.baseline, &outcome.test) {
        (Some(b), Some(t)) => super::print_table(&[("untuned", b), ("fine-tuned", t)]),
        (None, Some(t)) => super::print_table(&[("fine-tuned", t)]),
        _ => {}
    }
    if let Some(r) = &outcome.retention {
        println!("source task retained ({}, {} items):", r.source, r.before.items);
        super::print_table(&[("before", &r.before), ("after", &r.after)]);
    }
    if let Some(sample) = &outcome.sample {
        println!("sample:\n{sample}");
    }
    println!("run folder: {}  (model/, metrics.json, log.csv)", outcome.dir.display());
    0
}

/// Evaluate a finished run on its recipe's held-out split (or `test`, a table or image folder).
pub fn eval(run_dir: &Path, test: Option<&Path>, bootstrap: usize) -> whet::Result<()> {
    super::at_least("eval", "--bootstrap", bootstrap, whet::eval::MIN_RESAMPLES)?;
    let mut recipe = inference::run_recipe(run_dir)?;
    if let Some(t) = test {
        match recipe.data.kind {
            run::recipe::DataKind::Text => recipe.data.test = Some(t.to_path_buf()),
            _ => recipe.data.train = t.to_path_buf(),
        }
    }
    let engine = Engine::new(whet::EngineOptions::from_env()?)?;
    let mut prep = prepare::prepare(&engine, &recipe, true)?;
    match prep.test_evaluation("eval", bootstrap, recipe.train.seed)? {
        Some(e) => {
            println!("{}: {} items", e.split, e.items);
            super::print_table(&[("fine-tuned", &e)]);
            Ok(())
        }
        None => Err(whet::Error::arg("eval", "the recipe has no held-out items to evaluate")),
    }
}
