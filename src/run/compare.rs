//! `whet compare RECIPE.toml`: one recipe run under several fine-tuning strategies (see
//! [`super::strategies`]) × seeds × folds, all tested on the same held-out items (the split
//! seed stays fixed), written as `results.json` and a self-contained `report.html` (see
//! [`crate::report`]). Every strategy is compared with full fine-tuning on the same items: a
//! paired bootstrap of the difference and McNemar's test (per-block losses for language
//! models). Optional: the learning rate × frozen depth sweep and `--auto` ([`super::sweep`]).
//!
//! Distributed (`mpirun -np N whet compare`, [`CompareOptions::cluster`]): the runs of each
//! phase (the strategy matrix, then the sweep's cells, then `--auto`'s runs) are spread over
//! the ranks, largest first (by the items a run trains on) onto the least-loaded rank, one run
//! per rank at a time on one process's engine each. Every rank then holds every run's
//! outcome (all-gathered), so the pooling, paired tests and the sweep's choice are computed as
//! on one process, and rank 0 writes `results.json` and the report: the same numbers as a
//! single-process comparison, apart from timings and peak memory.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::eval::{self, Interval, Predictions};
use crate::progress::Stages;
use crate::report::results::{
    Attribution, AutoChoice, CompareResults, CurvePoint, PairedTest, Retention, RocCurve, SeedRun,
    StrategyResult, Sweep,
};
use crate::train::stop::StopFlag;

use super::recipe::DataKind;
use super::strategies::{freeze_below, full};
pub use super::strategies::{strategies, Strategy, REFERENCE};
use super::{Outcome, Recipe, RunOptions, LEVEL};

/// What to compare.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// Strategy names (see [`strategies`]); all when empty.
    pub only: Vec<String>,
    pub seeds: Vec<u64>,
    /// Stratified k-fold cross-validation: every (seed, fold) run starts again from the
    /// pretrained weights and is tested on its own fold; the folds' predictions are pooled.
    pub folds: Option<usize>,
    /// The learning rate × frozen depth sweep (and `--auto`), when asked for.
    pub sweep: Option<super::sweep::SweepOptions>,
    pub out_dir: PathBuf,
    pub progress: bool,
    /// The ranks sharing the runs (one process by default; see the module docs).
    pub cluster: crate::dist::Cluster,
}

/// Per-step training loss and validation metric from a run's `log.jsonl`.
fn curve(run_dir: &Path, metric: &str) -> Vec<CurvePoint> {
    let Ok(text) = std::fs::read_to_string(run_dir.join("log.jsonl")) else { return Vec::new() };
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            let step = v.get("step")?.as_u64()?;
            let train_loss = v.get("loss").and_then(|x| x.as_f64());
            let val_metric = v
                .get("metrics")
                .and_then(|m| m.get(metric))
                .or_else(|| v.get(metric))
                .and_then(|x| x.as_f64());
            Some(CurvePoint { step, train_loss, val_metric })
        })
        .collect()
}

/// One seed's record: curve, test metrics, confusion counts and (binary) ROC.
fn seed_run(seed: u64, out: &Outcome, p: Option<&Predictions>, metric: &str) -> SeedRun {
    let test = out.test.as_ref().map(|e| e.metrics.iter().map(|(k, i)| (k.clone(), i.point)).collect());
    let roc = p.and_then(|p| {
        let (c, auc) = eval::roc_summary(p);
        auc.map(|auc| RocCurve { fpr: c.x, tpr: c.y, auc })
    });
    SeedRun {
        seed,
        fold: None,
        curve: curve(&out.dir, metric),
        test: test.unwrap_or_default(),
        confusion: p.map(|p| eval::confusion(p).counts),
        roc,
    }
}

/// Predictions of several seeds as one set (the same test items once per seed).
fn pooled(ps: &[Predictions]) -> Result<Option<Predictions>> {
    let Some(first) = ps.first() else { return Ok(None) };
    let probs = ps.iter().flat_map(|p| p.probs.iter().copied()).collect();
    let labels = ps.iter().flat_map(|p| p.labels.iter().copied()).collect();
    Ok(Some(Predictions::new(probs, labels, first.classes)?))
}

/// The strategies to run: the ones named, or every one that applies to `recipe`.
fn chosen<'a>(all: &'a [Strategy], recipe: &Recipe, only: &[String]) -> Result<Vec<&'a Strategy>> {
    for name in only {
        let Some(s) = all.iter().find(|s| s.name.eq_ignore_ascii_case(name)) else {
            let known: Vec<&str> = all.iter().map(|s| s.name).collect();
            return Err(Error::arg(
                "compare",
                format!("unknown strategy '{name}' (known: {})", known.join(", ")),
            ));
        };
        if !(s.applies)(recipe) {
            return Err(Error::arg(
                "compare",
                format!("strategy '{}' does not apply to this recipe ({})", s.name, s.description),
            ));
        }
    }
    Ok(all
        .iter()
        .filter(|s| {
            if only.is_empty() {
                (s.applies)(recipe)
            } else {
                only.iter().any(|n| n.eq_ignore_ascii_case(s.name))
            }
        })
        .collect())
}

/// The (seed, fold) runs of one strategy, in the order their predictions are pooled.
fn runs_of(opts: &CompareOptions) -> Vec<(u64, Option<usize>)> {
    let folds: Vec<Option<usize>> = match opts.folds {
        Some(k) => (0..k).map(Some).collect(),
        None => vec![None],
    };
    opts.seeds.iter().flat_map(|&s| folds.iter().map(move |&f| (s, f))).collect()
}

/// What the strategies produced so far.
struct Collector<'a> {
    engine: &'a Engine,
    recipe: &'a Recipe,
    opts: &'a CompareOptions,
    stop: &'a StopFlag,
    metric: String,
    resamples: usize,
    split_seed: u64,
    planned: Vec<(u64, Option<usize>)>,
    results: Vec<StrategyResult>,
    preds: BTreeMap<String, Vec<Predictions>>,
    /// Per-block held-out losses of each language-model run, by strategy.
    losses: BTreeMap<String, Vec<Vec<f64>>>,
    /// The untuned model on each fold's test items (one entry without folds).
    untuned: Vec<(Outcome, Predictions)>,
    /// The untuned language model's per-block losses (zero-shot perplexity).
    untuned_lm: Option<(Outcome, Vec<f64>)>,
    retention: Vec<Retention>,
    attributions: Vec<Attribution>,
    classes: Vec<String>,
    /// Optimizer steps and parameter depths of the first run (sizes the sweep's probe runs).
    first_steps: Option<u64>,
    max_depth: usize,
    /// "run 7/40 · full/seed-1 · ETA 23m" before each training run.
    stages: Stages,
    /// Outcomes of runs made ahead across the ranks, by run folder (distributed only).
    done: RefCell<BTreeMap<PathBuf, Outcome>>,
}

/// One training run of the comparison: its recipe (strategy, seed, fold, folder applied) and
/// what it reports besides its model.
#[derive(Clone)]
struct Job {
    recipe: Recipe,
    baseline: bool,
    attributions: usize,
}

impl Job {
    /// What "largest first" sorts by: the items the run trains on.
    fn cost(&self) -> u64 {
        let t = &self.recipe.train;
        let per_step = (t.batch_size * t.grad_accum.max(1)) as u64;
        let per_epoch = self.recipe.data.limit_train.map_or(u64::MAX / 1024, |n| n as u64);
        let by_epochs = per_epoch.saturating_mul(t.epochs as u64);
        t.max_steps.map_or(by_epochs, |s| by_epochs.min(s.saturating_mul(per_step)))
    }
}

/// Runs (by cost) onto `ranks` ranks: largest first, each onto the least-loaded rank (the
/// lowest on ties); each rank's list comes out largest first.
fn assign(costs: &[u64], ranks: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..costs.len()).collect();
    order.sort_by(|&a, &b| costs[b].cmp(&costs[a]).then(a.cmp(&b)));
    let mut load = vec![0u64; ranks.max(1)];
    let mut out = vec![Vec::new(); ranks.max(1)];
    for i in order {
        let r = (0..load.len()).min_by_key(|&r| (load[r], r)).unwrap_or(0);
        load[r] = load[r].saturating_add(costs[i].max(1));
        out[r].push(i);
    }
    out
}

impl Collector<'_> {
    /// One training run of `r` (already changed by a strategy) at `seed` / `fold` into `dir`.
    fn job(
        &self,
        mut r: Recipe,
        seed: u64,
        fold: Option<usize>,
        dir: PathBuf,
        baseline: bool,
        attributions: usize,
    ) -> Job {
        r.train.seed = seed;
        r.data.split_seed = Some(self.split_seed);
        r.output.resume = false;
        r.output.bootstrap = self.resamples;
        r.output.dir = dir;
        if let (Some(k), Some(f)) = (self.opts.folds, fold) {
            r.data.folds = Some(k);
            r.data.fold = Some(f);
            r.data.test = None;
            r.data.val = None;
            r.data.test_ratio = 0.0;
            r.output.dir = r.output.dir.join(format!("fold-{f}"));
        }
        Job { recipe: r, baseline, attributions }
    }

    /// The outcome of `job`: made ahead on some rank, or trained now.
    fn train(&self, job: Job) -> Result<Outcome> {
        if let Some(out) = self.done.borrow_mut().remove(&job.recipe.output.dir) {
            return Ok(out);
        }
        self.run_job(&job)
    }

    fn run_job(&self, job: &Job) -> Result<Outcome> {
        let r = &job.recipe;
        let what = r.output.dir.strip_prefix(&self.opts.out_dir).unwrap_or(&r.output.dir);
        self.stages.begin(&what.display().to_string());
        let (baseline, attributions) = (job.baseline, job.attributions);
        let progress = self.opts.progress && self.opts.cluster.is_root();
        let run = RunOptions { progress, baseline, attributions, ..Default::default() };
        let out = super::train(self.engine, r, self.stop, run)?;
        if self.stop.requested().is_some() {
            return Err(Error::arg("compare", "interrupted; the finished runs are in the output folder"));
        }
        Ok(out)
    }

    /// Distributed: run `jobs` across the ranks now (see the module docs) and keep every
    /// rank's outcomes for [`Collector::train`] to take in order. One process: nothing.
    fn share(&self, jobs: Vec<Job>) -> Result<()> {
        let cluster = &self.opts.cluster;
        if !cluster.is_distributed() || jobs.is_empty() {
            return Ok(());
        }
        let costs: Vec<u64> = jobs.iter().map(Job::cost).collect();
        let mine = assign(&costs, cluster.size()).swap_remove(cluster.rank());
        let mut records = Vec::new();
        for i in mine {
            let out = self.run_job(&jobs[i])?;
            // Skipped by serde (metrics.json leaves them out): carried beside the outcome.
            let kept = out.retention.as_ref().and_then(|r| r.after_predictions.clone());
            records.push((out, kept));
        }
        let mut bytes = Vec::new();
        ciborium::into_writer(&records, &mut bytes).map_err(|e| Error::arg("compare", e.to_string()))?;
        for part in cluster.all_gather_bytes(bytes)? {
            let recs: Vec<(Outcome, Option<Predictions>)> = ciborium::from_reader(part.as_slice())
                .map_err(|e| Error::arg("compare", format!("a rank's outcomes: {e}")))?;
            for (mut out, kept) in recs {
                if let Some(r) = out.retention.as_mut() {
                    r.after_predictions = kept;
                }
                self.done.borrow_mut().insert(out.dir.clone(), out);
            }
        }
        Ok(())
    }

    /// The (seed, fold) runs of one strategy; the `first` strategy's first seed also measures
    /// the untuned model and shows attributions.
    fn strategy_jobs(&self, name: &str, apply: &dyn Fn(&mut Recipe), first: bool) -> Vec<Job> {
        let mut jobs = Vec::new();
        for (seed, fold) in self.planned.clone() {
            let mut r = self.recipe.clone();
            apply(&mut r);
            let dir = self.opts.out_dir.join(slug(name)).join(format!("seed-{seed}"));
            let baseline = first && seed == self.opts.seeds[0];
            let first_run = baseline && fold.is_none_or(|f| f == 0);
            let shown = if first_run { ATTRIBUTED_ITEMS } else { 0 };
            jobs.push(self.job(r, seed, fold, dir, baseline, shown));
        }
        jobs
    }

    /// Every (seed, fold) run of one strategy, pooled into its result.
    fn strategy(&mut self, name: &str, description: &str, apply: &dyn Fn(&mut Recipe)) -> Result<()> {
        let mut runs = Vec::new();
        let mut kept: Vec<super::SourceRetention> = Vec::new();
        let (mut secs, mut peak, mut trainable) = (0.0, 0u64, 0u64);
        let jobs = self.strategy_jobs(name, apply, self.results.is_empty());
        for (job, (seed, fold)) in jobs.into_iter().zip(self.planned.clone()) {
            let baseline = job.baseline;
            let out = self.train(job)?;
            secs += out.summary.train_secs;
            peak = peak.max(out.peak_bytes);
            trainable = trainable.max(out.trainable_params);
            kept.extend(out.retention.clone());
            runs.push(self.keep(name, seed, fold, baseline, out));
        }
        let metrics = self.pooled_metrics(name)?;
        if let Some(first) = kept.first() {
            self.retention.push(Retention {
                strategy: name.to_string(),
                source_task: format!("{} ({} items)", first.source, first.before.items),
                before: first.before.metrics.get("accuracy").copied().unwrap_or(Interval::NAN),
                after: pooled_source(&kept, self.resamples, self.split_seed)?,
            });
        }
        self.results.push(StrategyResult {
            name: name.to_string(),
            description: description.to_string(),
            runs,
            metrics,
            vs_reference: None,
            train_secs: secs / self.planned.len() as f64,
            peak_bytes: peak,
            trainable_params: trainable,
        });
        Ok(())
    }

    /// File one run of strategy `name`: its attributions, classes, predictions or losses for
    /// the paired tests, and (the `baseline` run) the untuned model's; returns its report row.
    fn keep(&mut self, name: &str, seed: u64, fold: Option<usize>, baseline: bool, out: Outcome) -> SeedRun {
        for mut a in out.attributions.iter().cloned() {
            retitle(&mut a, name);
            self.attributions.push(a);
        }
        if self.classes.is_empty() {
            if let Ok(l) = crate::data::labels::LabelMap::load(&out.dir.join("labels.json")) {
                self.classes = l.names().to_vec();
            }
        }
        self.first_steps.get_or_insert(out.summary.steps);
        self.max_depth = self.max_depth.max(out.max_depth);
        let mut run = seed_run(seed, &out, out.test_predictions.as_ref(), &self.metric);
        run.fold = fold;
        if let Some(p) = out.test_predictions.clone() {
            self.preds.entry(name.to_string()).or_default().push(p);
        }
        if let Some(l) = out.test_losses.clone() {
            self.losses.entry(name.to_string()).or_default().push(l);
        }
        if baseline {
            if let Some(bp) = out.baseline_predictions.clone() {
                self.untuned.push((out, bp));
            } else if let Some(bl) = out.baseline_losses.clone() {
                self.untuned_lm = Some((out, bl));
            }
        }
        run
    }

    /// Metrics with intervals over every run of strategy `name`, predictions (or block
    /// losses) pooled.
    fn pooled_metrics(&self, name: &str) -> Result<BTreeMap<String, Interval>> {
        Ok(match pooled(self.preds.get(name).map(Vec::as_slice).unwrap_or(&[]))? {
            Some(p) => eval::bootstrap_metrics(&p, self.resamples, LEVEL, self.split_seed)?,
            None => match self.losses.get(name) {
                Some(l) => eval::lm_metrics(&l.concat(), self.resamples, LEVEL, self.split_seed)?,
                None => BTreeMap::new(),
            },
        })
    }

    /// The pretrained language model without any tuning: zero-shot perplexity on the same blocks.
    fn untuned_lm(&mut self) -> Result<()> {
        let Some((out, losses)) = self.untuned_lm.take() else { return Ok(()) };
        let metrics = eval::lm_metrics(&losses, self.resamples, LEVEL, self.split_seed)?;
        let mut run = seed_run(self.opts.seeds[0], &out, None, &self.metric);
        run.curve.clear();
        run.test = metrics.iter().map(|(k, i)| (k.clone(), i.point)).collect();
        self.results.push(StrategyResult {
            name: "untuned".into(),
            description:
                "the pretrained model without fine-tuning (zero-shot perplexity on the held-out text)".into(),
            runs: vec![run],
            metrics,
            vs_reference: None,
            train_secs: 0.0,
            peak_bytes: 0,
            trainable_params: 0,
        });
        self.losses.insert("untuned".into(), vec![losses; self.opts.seeds.len()]);
        Ok(())
    }

    /// The pretrained model with its untrained head, on the same items: the floor.
    fn untuned(&mut self) -> Result<()> {
        if self.untuned.is_empty() {
            return self.untuned_lm();
        }
        let fold_preds: Vec<Predictions> = self.untuned.iter().map(|(_, p)| p.clone()).collect();
        let all_folds =
            pooled(&fold_preds)?.ok_or_else(|| Error::arg("compare", "no untuned predictions"))?;
        let mut runs = Vec::new();
        for ((out, p), fold) in self.untuned.iter().zip(self.planned.iter().map(|r| r.1)) {
            let mut run = seed_run(self.opts.seeds[0], out, Some(p), &self.metric);
            run.curve.clear();
            run.test = eval::classification_metrics(p);
            run.fold = fold;
            runs.push(run);
        }
        self.results.push(StrategyResult {
            name: "untuned".into(),
            description: "the pretrained model with its new, untrained head (no fine-tuning)".into(),
            runs,
            metrics: eval::bootstrap_metrics(&all_folds, self.resamples, LEVEL, self.split_seed)?,
            vs_reference: None,
            train_secs: 0.0,
            peak_bytes: 0,
            trainable_params: 0,
        });
        // Paired with every (seed, fold) run of the others: the same items in the same order.
        let per_seed: Vec<Predictions> =
            self.opts.seeds.iter().flat_map(|_| fold_preds.iter().cloned()).collect();
        self.preds.insert("untuned".into(), per_seed);
        Ok(())
    }
}

/// Run the comparison and write `results.json` + `report.html` into `opts.out_dir`.
pub fn compare(
    engine: &Engine,
    recipe: &Recipe,
    opts: &CompareOptions,
    stop: &StopFlag,
) -> Result<CompareResults> {
    let all = strategies();
    let chosen = chosen(&all, recipe, &opts.only)?;
    if opts.seeds.is_empty() {
        return Err(Error::arg("compare", "give at least one seed"));
    }
    let mut c = Collector::new(engine, recipe, opts, stop, chosen.len());
    // Distributed: the whole matrix at once, the very jobs the loop below asks for.
    let matrix = chosen.iter().enumerate().flat_map(|(i, s)| c.strategy_jobs(s.name, &s.apply, i == 0));
    c.share(matrix.collect())?;
    for s in &chosen {
        c.strategy(s.name, s.description, &s.apply)?;
    }
    let (sweep, auto) = match &opts.sweep {
        Some(so) => c.sweep_and_auto(so)?,
        None => (None, None),
    };
    c.untuned()?;
    let (metric, split_seed) = (c.metric.clone(), c.split_seed);
    paired_tests(&mut c.results, &c.preds, &metric, c.resamples, split_seed)?;
    paired_lm_tests(&mut c.results, &c.losses, &metric, c.resamples, split_seed)?;
    let out = CompareResults {
        title: format!("{} on {}", recipe.model.kind, recipe.data.train.display()),
        task: format!("{:?}", recipe.data.kind),
        model: recipe.model.path.display().to_string(),
        data: recipe.data.train.display().to_string(),
        primary_metric: metric,
        classes: c.classes,
        strategies: c.results,
        sweep,
        retention: c.retention,
        auto,
        attributions: c.attributions,
        environment: environment(engine, opts),
    };
    if opts.cluster.is_root() {
        crate::report::html::write_report(&out, &opts.out_dir)?;
    }
    Ok(out)
}

/// Where the comparison ran, for the report.
fn environment(engine: &Engine, opts: &CompareOptions) -> BTreeMap<String, String> {
    let mut environment = BTreeMap::new();
    environment.insert("adapter".into(), engine.adapter_name().to_string());
    environment.insert("whet".into(), env!("CARGO_PKG_VERSION").into());
    environment.insert("seeds".into(), format!("{:?}", opts.seeds));
    if let Some(k) = opts.folds {
        environment
            .insert("folds".into(), format!("{k} (stratified; each fold from the pretrained weights)"));
    }
    if opts.cluster.is_distributed() {
        environment.insert("ranks".into(), format!("{} (runs shared out by MPI)", opts.cluster.size()));
    }
    environment
}

impl<'a> Collector<'a> {
    fn new(
        engine: &'a Engine,
        recipe: &'a Recipe,
        opts: &'a CompareOptions,
        stop: &'a StopFlag,
        strategies: usize,
    ) -> Collector<'a> {
        Collector {
            engine,
            recipe,
            opts,
            stop,
            metric: recipe.train.early_stop.as_ref().map_or_else(
                || if recipe.data.kind == DataKind::Corpus { "perplexity" } else { "accuracy" }.to_string(),
                |e| e.metric.clone(),
            ),
            resamples: recipe.output.bootstrap.max(eval::MIN_RESAMPLES),
            split_seed: recipe.data.split_seed.unwrap_or(recipe.train.seed),
            planned: runs_of(opts),
            results: Vec::new(),
            preds: BTreeMap::new(),
            losses: BTreeMap::new(),
            untuned: Vec::new(),
            untuned_lm: None,
            retention: Vec::new(),
            attributions: Vec::new(),
            classes: Vec::new(),
            first_steps: None,
            max_depth: 0,
            stages: Stages::new(
                opts.progress && opts.cluster.is_root(),
                "run",
                (strategies * runs_of(opts).len()) as u64,
            ),
            done: RefCell::new(BTreeMap::new()),
        }
    }

    /// The learning-rate × frozen-depth sweep, and with `--auto` the strategy it chooses.
    fn sweep_and_auto(
        &mut self,
        so: &super::sweep::SweepOptions,
    ) -> Result<(Option<Sweep>, Option<AutoChoice>)> {
        let runner = self.sweep_runner();
        let (lrs, depths) = super::sweep::grid(&runner, so);
        let auto_runs = if so.auto { self.planned.len() } else { 0 };
        self.stages.grow((lrs.len() * depths.len() + auto_runs) as u64);
        if let Ok(cells) = super::sweep::cells(&runner, so) {
            self.share(cells.into_iter().map(|(lr, d, steps)| self.sweep_job(lr, d, steps)).collect())?;
        }
        let (sweep, choice) = super::sweep::run_sweep(&runner, so)?;
        drop(runner);
        if let Some(a) = &choice {
            let (depth, lr) = (a.depth, a.lr);
            let apply = move |r: &mut Recipe| {
                full(r);
                r.train.lr = lr;
                r.train.freeze = freeze_below(depth);
            };
            self.share(self.strategy_jobs("auto", &apply, self.results.is_empty()))?;
            self.strategy("auto", &format!("chosen by --auto: {}", a.reason), &apply)?;
        }
        Ok((Some(sweep), choice))
    }
}

impl<'a> Collector<'a> {
    /// The sweep's view: short runs of full fine-tuning at a learning rate and frozen depth.
    fn sweep_runner(&'a self) -> super::sweep::Runner<'a> {
        super::sweep::Runner {
            probe: Box::new(move |lr, depth, steps| {
                let out = self.train(self.sweep_job(lr, depth, steps))?;
                Ok(super::sweep::validation_score(&out.summary, &self.metric))
            }),
            metric: self.metric.clone(),
            lr: self.recipe.train.lr,
            max_depth: self.max_depth,
            steps: self.first_steps.unwrap_or(1),
        }
    }
}

impl Collector<'_> {
    /// One cell of the sweep: a short full fine-tune at `lr` with the bottom `depth` frozen.
    fn sweep_job(&self, lr: f64, depth: usize, steps: u64) -> Job {
        let mut r = self.recipe.clone();
        full(&mut r);
        r.train.lr = lr;
        r.train.freeze = freeze_below(depth);
        r.train.max_steps = Some(steps);
        let seed = self.opts.seeds[0];
        let dir = self.opts.out_dir.join("sweep").join(format!("depth-{depth}-lr-{lr:e}"));
        // Scored on validation: the test items stay untouched by the choice.
        let fold = self.opts.folds.map(|_| 0);
        self.job(r, seed, fold, dir, false, 0)
    }
}

/// Source-task accuracy after fine-tuning, pooled over a strategy's runs.
fn pooled_source(kept: &[super::SourceRetention], resamples: usize, seed: u64) -> Result<Interval> {
    let ps: Vec<Predictions> = kept.iter().filter_map(|k| k.after_predictions.clone()).collect();
    match pooled(&ps)? {
        Some(p) => {
            let m = eval::bootstrap_metrics(&p, resamples, LEVEL, seed)?;
            Ok(m.get("accuracy").copied().unwrap_or(Interval::NAN))
        }
        None => Ok(Interval::NAN),
    }
}

/// Each strategy against full fine-tuning on the same items, seed by seed.
fn paired_tests(
    results: &mut [StrategyResult],
    preds: &BTreeMap<String, Vec<Predictions>>,
    metric: &str,
    resamples: usize,
    seed: u64,
) -> Result<()> {
    let Some(reference) = preds.get(REFERENCE).map(|p| pooled(p)).transpose()?.flatten() else {
        return Ok(());
    };
    for r in results.iter_mut().filter(|r| r.name != REFERENCE) {
        let Some(mine) = preds.get(r.name.as_str()).map(|p| pooled(p)).transpose()?.flatten() else {
            continue;
        };
        if mine.labels != reference.labels {
            continue;
        }
        let key = metric.to_string();
        let stat =
            move |p: &Predictions| eval::classification_metrics(p).get(&key).copied().unwrap_or(f64::NAN);
        let d = eval::paired_bootstrap(&mine, &reference, stat, resamples, LEVEL, seed)?;
        let m = eval::mcnemar(&mine.correct(), &reference.correct())?;
        r.vs_reference = Some(PairedTest {
            reference: REFERENCE.into(),
            metric: metric.to_string(),
            diff: d.diff,
            paired_p: d.p_value,
            mcnemar_p: m.p_value,
        });
    }
    Ok(())
}

/// Language models against full fine-tuning on the same held-out blocks: a paired bootstrap
/// of the difference in `metric` (loss or perplexity); McNemar does not apply (NaN).
fn paired_lm_tests(
    results: &mut [StrategyResult],
    losses: &BTreeMap<String, Vec<Vec<f64>>>,
    metric: &str,
    resamples: usize,
    seed: u64,
) -> Result<()> {
    let Some(reference) = losses.get(REFERENCE).map(|l| l.concat()) else { return Ok(()) };
    let metric = if metric == "loss" { "loss" } else { "perplexity" };
    for r in results.iter_mut().filter(|r| r.name != REFERENCE && r.vs_reference.is_none()) {
        let Some(mine) = losses.get(r.name.as_str()).map(|l| l.concat()) else { continue };
        if mine.len() != reference.len() {
            continue;
        }
        let d = eval::paired_lm(&mine, &reference, metric, resamples, LEVEL, seed)?;
        r.vs_reference = Some(PairedTest {
            reference: REFERENCE.into(),
            metric: metric.to_string(),
            diff: d.diff,
            paired_p: d.p_value,
            mcnemar_p: f64::NAN,
        });
    }
    Ok(())
}

/// Test items whose attributions the report shows (from the first strategy's first run).
const ATTRIBUTED_ITEMS: usize = 4;

/// Prefix an attribution's title with the strategy that produced the model.
fn retitle(a: &mut Attribution, strategy: &str) {
    let (Attribution::Image { title, .. } | Attribution::Text { title, .. }) = a;
    *title = format!("{strategy}: {title}");
}

/// A folder name for a strategy.
fn slug(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect()
}

#[cfg(test)]
mod tests {
    use super::assign;

    #[test]
    fn runs_go_largest_first_to_the_least_loaded_rank() {
        // Costs 5, 4, 3, 3, 1 onto 2 ranks: 5 → r0, 4 → r1, 3 → r1 (4 < 5), 3 → r0, 1 → r1.
        let a = assign(&[3, 5, 1, 4, 3], 2);
        assert_eq!(a, vec![vec![1, 4], vec![3, 0, 2]]);
        let one = assign(&[2, 9, 4], 1);
        assert_eq!(one, vec![vec![1, 2, 0]]);
        // More ranks than runs: the extra ranks get nothing, every run is placed once.
        let many = assign(&[1, 1], 4);
        assert_eq!(many.iter().map(Vec::len).sum::<usize>(), 2);
    }
}
