//! `whet train`, `eval` and `predict`: thin wrappers over [`whet::run`] that print.

pub mod bench;
pub mod compare;
pub mod lr_find;
pub mod plan;
pub mod predict;
pub mod predict_io;
pub mod recipe_args;
pub mod train;

use whet::dist::Cluster;
use whet::run::Evaluation;

/// Run `command` as one rank of the job an MPI launcher started (or as the only process): a
/// rank that fails or panics prints its message with its rank and aborts every rank, so none
/// is left waiting in a collective.
pub fn on_ranks<T>(command: impl FnOnce(Cluster) -> whet::Result<T>) -> whet::Result<T> {
    let cluster = Cluster::from_env()?;
    if !cluster.is_distributed() {
        return command(cluster);
    }
    let label = cluster.label();
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        eprintln!("whet ({label}): panicked; aborting every rank");
        default_hook(info);
        Cluster::abort_job(1);
    }));
    match command(cluster.clone()) {
        Err(e) => {
            eprintln!("whet ({}): {e}", cluster.label());
            eprintln!("whet ({}): aborting every rank of the job", cluster.label());
            cluster.abort(1)
        }
        ok => ok,
    }
}

/// A count given on the command line must be at least `min`: refused, never raised quietly.
pub fn at_least(command: &'static str, flag: &str, value: usize, min: usize) -> whet::Result<()> {
    if value >= min {
        return Ok(());
    }
    Err(whet::Error::arg(command, format!("{flag} {value}: out of range (allowed: an integer >= {min})")))
}

/// Metrics shown first, in this order; others follow alphabetically.
const LEAD: [&str; 6] = ["accuracy", "f1_macro", "precision_macro", "recall_macro", "auc", "perplexity"];

/// A table of metrics with their intervals, one column per evaluation.
pub fn print_table(columns: &[(&str, &Evaluation)]) {
    let Some((_, first)) = columns.first() else { return };
    let mut keys: Vec<&String> = first.metrics.keys().collect();
    keys.sort_by_key(|k| (LEAD.iter().position(|l| l == k).unwrap_or(LEAD.len()), k.to_string()));
    print!("{:<18}", "metric");
    for (name, e) in columns {
        print!("{:>30}", format!("{name} (n={})", e.items));
    }
    println!();
    for k in keys {
        print!("{k:<18}");
        for (_, e) in columns {
            match e.metrics.get(k) {
                Some(i) => print!("{:>30}", format!("{:.4} [{:.4}, {:.4}]", i.point, i.lo, i.hi)),
                None => print!("{:>30}", "-"),
            }
        }
        println!();
    }
    if let Some(i) = first.metrics.values().next() {
        println!("(intervals: {:.0}% percentile bootstrap)", i.level * 100.0);
    }
}
