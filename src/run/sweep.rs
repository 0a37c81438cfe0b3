//! The sensitivity sweep of `whet compare --sweep`: short full-fine-tuning runs over a grid of
//! learning rate × frozen depth, each scored on the *validation* split (the test items play no
//! part in any choice), drawn as a heat map in the report. `--auto` takes the best cell and
//! says why; `whet compare` then trains that configuration to the end as strategy "auto".

use crate::error::{Error, Result};
use crate::report::results::{AutoChoice, Sweep};
use crate::train::driver::RunSummary;

/// What to sweep.
#[derive(Debug, Clone, Default)]
pub struct SweepOptions {
    /// Learning rates (default: the recipe's × 0.3, 1, 3).
    pub lrs: Vec<f64>,
    /// Frozen depths (default: none, half, all but the head).
    pub depths: Vec<usize>,
    /// Choose a configuration from the sweep.
    pub auto: bool,
}

/// A probe run: `(lr, frozen depth, steps) -> validation score` (None when it never validated).
pub type Probe<'a> = dyn Fn(f64, usize, u64) -> Result<Option<f64>> + 'a;

/// How the sweep reaches training.
pub struct Runner<'a> {
    pub probe: Box<Probe<'a>>,
    /// The metric scored (higher is better unless it is a loss-like one).
    pub metric: String,
    /// The recipe's learning rate (the default grid is centred on it).
    pub lr: f64,
    /// The head's depth: freezing that many depths leaves only the head training.
    pub max_depth: usize,
    /// Optimizer steps of one full run; probes take a third of them.
    pub steps: u64,
}

/// The validation score of a run: its best evaluation's `metric`, else its last.
pub fn validation_score(summary: &RunSummary, metric: &str) -> Option<f64> {
    summary
        .best
        .as_ref()
        .and_then(|(_, m)| m.get(metric).copied())
        .or_else(|| summary.last.as_ref().and_then(|m| m.get(metric).copied()))
        .filter(|v| v.is_finite())
}

fn lower_is_better(metric: &str) -> bool {
    matches!(metric, "loss" | "perplexity" | "log_loss" | "ece" | "mse" | "mae" | "rmse")
}

/// The grid's learning rates and frozen depths (the defaults centred on the recipe's).
pub fn grid(r: &Runner, opts: &SweepOptions) -> (Vec<f64>, Vec<usize>) {
    let lrs = if opts.lrs.is_empty() { vec![r.lr * 0.3, r.lr, r.lr * 3.0] } else { opts.lrs.clone() };
    let depths = if opts.depths.is_empty() {
        let mut d = vec![0, r.max_depth / 2, r.max_depth];
        d.dedup();
        d
    } else {
        opts.depths.clone()
    };
    (lrs, depths)
}

/// The probe runs of the grid, as `(lr, frozen depth, steps)` in the order [`run_sweep`] takes
/// them (a distributed `whet compare` runs them across ranks first).
pub fn cells(r: &Runner, opts: &SweepOptions) -> Result<Vec<(f64, usize, u64)>> {
    let (lrs, depths) = checked_grid(r, opts)?;
    let steps = (r.steps / 3).max(1);
    Ok(depths.iter().flat_map(|&d| lrs.iter().map(move |&lr| (lr, d, steps))).collect())
}

fn checked_grid(r: &Runner, opts: &SweepOptions) -> Result<(Vec<f64>, Vec<usize>)> {
    let (lrs, depths) = grid(r, opts);
    if let Some(bad) = lrs.iter().find(|l| !(l.is_finite() && **l > 0.0)) {
        return Err(Error::arg("sweep", format!("learning rate {bad} is not > 0")));
    }
    if let Some(bad) = depths.iter().find(|&&d| r.max_depth > 0 && d > r.max_depth) {
        return Err(Error::arg(
            "sweep",
            format!("frozen depth {bad} is deeper than the head (depth {})", r.max_depth),
        ));
    }
    Ok((lrs, depths))
}

/// Run the grid; with `opts.auto`, also choose the best cell.
pub fn run_sweep(r: &Runner, opts: &SweepOptions) -> Result<(Sweep, Option<AutoChoice>)> {
    let (lrs, depths) = checked_grid(r, opts)?;
    let steps = (r.steps / 3).max(1);
    let mut values = Vec::with_capacity(lrs.len() * depths.len());
    for (lr, d, steps) in cells(r, opts)? {
        values.push((r.probe)(lr, d, steps)?);
    }
    let sweep = Sweep { metric: r.metric.clone(), lrs: lrs.clone(), depths: depths.clone(), values };
    let choice = if opts.auto { choose(&sweep, steps) } else { None };
    Ok((sweep, choice))
}

/// The best cell; ties go to the more frozen (cheaper, safer) and then the lower learning rate.
pub fn choose(sweep: &Sweep, steps: u64) -> Option<AutoChoice> {
    let lower = lower_is_better(&sweep.metric);
    let n = sweep.lrs.len();
    let mut cells: Vec<(usize, usize, f64)> = sweep
        .values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|v| (i / n.max(1), i % n.max(1), v)))
        .collect();
    if cells.is_empty() {
        return None;
    }
    cells.sort_by(|a, b| {
        let (x, y) = if lower { (a.2, b.2) } else { (b.2, a.2) };
        x.total_cmp(&y)
            .then(sweep.depths[b.0].cmp(&sweep.depths[a.0]))
            .then(sweep.lrs[a.1].total_cmp(&sweep.lrs[b.1]))
    });
    let (di, li, best) = cells[0];
    let (depth, lr) = (sweep.depths[di], sweep.lrs[li]);
    let runner_up = cells.get(1).map_or(String::new(), |&(d, l, v)| {
        format!("; runner-up: depth {}, lr {:.1e} ({v:.4})", sweep.depths[d], sweep.lrs[l])
    });
    let reason = format!(
        "frozen depth {depth} with lr {lr:.1e} scored the {} validation {} ({best:.4}) of {} probe runs of {steps} \
         steps each{runner_up}",
        if lower { "lowest" } else { "highest" },
        sweep.metric,
        cells.len(),
    );
    Some(AutoChoice { depth, lr, reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sweep(values: Vec<Option<f64>>, metric: &str) -> Sweep {
        Sweep { metric: metric.into(), lrs: vec![1e-5, 1e-4], depths: vec![0, 4], values }
    }

    #[test]
    fn picks_the_best_cell_and_says_so() {
        let s = sweep(vec![Some(0.8), Some(0.9), Some(0.7), None], "accuracy");
        let a = choose(&s, 10).unwrap();
        assert_eq!((a.depth, a.lr), (0, 1e-4));
        assert!(a.reason.contains("highest validation accuracy (0.9000)"), "{}", a.reason);
        assert!(a.reason.contains("3 probe runs of 10 steps"), "{}", a.reason);
        assert!(a.reason.contains("runner-up: depth 0, lr 1.0e-5 (0.8000)"), "{}", a.reason);
    }

    #[test]
    fn ties_prefer_more_freezing_then_a_lower_rate() {
        let s = sweep(vec![Some(0.9), Some(0.9), Some(0.9), Some(0.9)], "accuracy");
        let a = choose(&s, 1).unwrap();
        assert_eq!((a.depth, a.lr), (4, 1e-5));
    }

    #[test]
    fn loss_like_metrics_are_minimised_and_empty_sweeps_choose_nothing() {
        let s = sweep(vec![Some(0.5), Some(0.2), Some(0.9), Some(0.4)], "loss");
        assert_eq!(choose(&s, 1).map(|a| (a.depth, a.lr)), Some((0, 1e-4)));
        assert!(choose(&sweep(vec![None; 4], "accuracy"), 1).is_none());
    }
}
