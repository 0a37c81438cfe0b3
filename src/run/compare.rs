//! `whet compare RECIPE.toml`: one recipe run under several fine-tuning strategies × seeds, all
//! tested on the same held-out items (the split seed stays fixed), written as `results.json` and
//! a self-contained `report.html` (see [`crate::report`]). Every strategy is compared with full
//! fine-tuning on the same items: a paired bootstrap of the difference and McNemar's test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::eval::{self, Predictions};
use crate::report::results::{CompareResults, CurvePoint, PairedTest, RocCurve, SeedRun, StrategyResult};
use crate::train::stop::StopFlag;

use super::{Outcome, Recipe, RunOptions, LEVEL};

/// A named change to the recipe.
pub struct Strategy {
    pub name: &'static str,
    pub description: &'static str,
    pub apply: fn(&mut Recipe),
}

/// The reference every other strategy is tested against.
pub const REFERENCE: &str = "full fine-tune";

/// The strategies `whet compare` knows, by name.
pub fn strategies() -> Vec<Strategy> {
    vec![
        Strategy {
            name: REFERENCE,
            description: "every parameter trains (the recipe's own freezing removed)",
            apply: |r| {
                r.train.plan = "full".into();
                r.train.freeze.clear();
                r.train.lora = None;
            },
        },
        Strategy {
            name: "linear probe",
            description: "only the new head trains; the pretrained body is a fixed feature extractor",
            apply: |r| {
                r.train.plan = "linear-probe".into();
                r.train.lora = None;
            },
        },
        Strategy {
            name: "LP-FT",
            description:
                "the head alone for the first half of the epochs, then everything (Kumar et al. 2022)",
            apply: |r| {
                r.train.plan = "lp-ft".into();
                r.train.freeze.clear();
                r.train.probe_epochs = (r.train.epochs / 2).max(1);
            },
        },
        Strategy {
            name: "gradual unfreezing",
            description: "the head first, then one more depth from the top every epoch (ULMFiT)",
            apply: |r| {
                r.train.plan = "gradual".into();
                r.train.freeze.clear();
                r.train.unfreeze_every = 1;
            },
        },
        Strategy {
            name: "layer-wise LR",
            description: "full fine-tuning with the learning rate decayed 0.8x per depth below the head",
            apply: |r| {
                r.train.plan = "full".into();
                r.train.freeze.clear();
                r.train.layer_decay = Some(0.8);
            },
        },
        Strategy {
            name: "L2-SP",
            description: "full fine-tuning pulled toward the pretrained weights (alpha 0.01, beta 0.001)",
            apply: |r| {
                r.train.plan = "full".into();
                r.train.freeze.clear();
                r.train.l2sp = Some([0.01, 0.001]);
            },
        },
        Strategy { name: "recipe", description: "the recipe exactly as written", apply: |_| {} },
    ]
}

/// What to compare.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// Strategy names (see [`strategies`]); all when empty.
    pub only: Vec<String>,
    pub seeds: Vec<u64>,
    pub out_dir: PathBuf,
    pub progress: bool,
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
    let roc = p.filter(|p| p.classes == 2).and_then(|p| {
        let scores: Vec<f64> = (0..p.len()).filter_map(|i| p.row(i).map(|r| r[1] as f64)).collect();
        let positive: Vec<bool> = p.labels.iter().map(|&l| l == 1).collect();
        let c = eval::roc_curve(&scores, &positive);
        eval::roc_auc(&scores, &positive).map(|auc| RocCurve { fpr: c.x, tpr: c.y, auc })
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

/// Run the comparison and write `results.json` + `report.html` into `opts.out_dir`.
pub fn compare(
    engine: &Engine,
    recipe: &Recipe,
    opts: &CompareOptions,
    stop: &StopFlag,
) -> Result<CompareResults> {
    let all = strategies();
    for name in &opts.only {
        if !all.iter().any(|s| s.name.eq_ignore_ascii_case(name)) {
            let known: Vec<&str> = all.iter().map(|s| s.name).collect();
            return Err(Error::arg(
                "compare",
                format!("unknown strategy '{name}' (known: {})", known.join(", ")),
            ));
        }
    }
    let chosen: Vec<&Strategy> = all
        .iter()
        .filter(|s| opts.only.is_empty() || opts.only.iter().any(|n| n.eq_ignore_ascii_case(s.name)))
        .collect();
    if opts.seeds.is_empty() {
        return Err(Error::arg("compare", "give at least one seed"));
    }
    let metric = recipe.train.early_stop.as_ref().map_or("accuracy".to_string(), |e| e.metric.clone());
    let resamples = recipe.output.bootstrap.max(eval::MIN_RESAMPLES);
    let split_seed = recipe.data.split_seed.unwrap_or(recipe.train.seed);
    let mut results = Vec::new();
    let mut preds: BTreeMap<&str, Vec<Predictions>> = BTreeMap::new();
    let mut untuned: Option<(Outcome, Predictions)> = None;
    let mut classes: Vec<String> = Vec::new();
    for s in &chosen {
        let mut runs = Vec::new();
        let (mut secs, mut peak, mut trainable) = (0.0, 0u64, 0u64);
        for &seed in &opts.seeds {
            let mut r = recipe.clone();
            (s.apply)(&mut r);
            r.train.seed = seed;
            r.data.split_seed = Some(split_seed);
            r.output.resume = false;
            r.output.bootstrap = resamples;
            r.output.dir = opts.out_dir.join(slug(s.name)).join(format!("seed-{seed}"));
            let first = untuned.is_none();
            let out =
                super::train(engine, &r, stop, RunOptions { progress: opts.progress, baseline: first })?;
            if stop.requested().is_some() {
                return Err(Error::arg("compare", "interrupted; the finished runs are in the output folder"));
            }
            if classes.is_empty() {
                if let Ok(l) = crate::data::labels::LabelMap::load(&out.dir.join("labels.json")) {
                    classes = l.names().to_vec();
                }
            }
            secs += out.summary.train_secs;
            peak = peak.max(out.peak_bytes);
            trainable = trainable.max(out.trainable_params);
            runs.push(seed_run(seed, &out, out.test_predictions.as_ref(), &metric));
            if let Some(p) = out.test_predictions.clone() {
                preds.entry(s.name).or_default().push(p);
            }
            if first {
                if let Some(bp) = out.baseline_predictions.clone() {
                    untuned = Some((out, bp));
                }
            }
        }
        let metrics = match pooled(preds.get(s.name).map(Vec::as_slice).unwrap_or(&[]))? {
            Some(p) => eval::bootstrap_metrics(&p, resamples, LEVEL, split_seed)?,
            None => BTreeMap::new(),
        };
        results.push(StrategyResult {
            name: s.name.to_string(),
            description: s.description.to_string(),
            runs,
            metrics,
            vs_reference: None,
            train_secs: secs / opts.seeds.len() as f64,
            peak_bytes: peak,
            trainable_params: trainable,
        });
    }
    // The pretrained model with its untrained head, on the same items: the floor.
    if let Some((out, p)) = &untuned {
        let mut run = seed_run(opts.seeds[0], out, Some(p), &metric);
        run.curve.clear();
        run.test = eval::classification_metrics(p);
        results.push(StrategyResult {
            name: "untuned".into(),
            description: "the pretrained model with its new, untrained head (no fine-tuning)".into(),
            runs: vec![run],
            metrics: eval::bootstrap_metrics(p, resamples, LEVEL, split_seed)?,
            vs_reference: None,
            train_secs: 0.0,
            peak_bytes: 0,
            trainable_params: 0,
        });
        preds.insert("untuned", vec![p.clone(); opts.seeds.len()]);
    }
    paired_tests(&mut results, &preds, &metric, resamples, split_seed)?;
    let mut environment = BTreeMap::new();
    environment.insert("adapter".into(), engine.adapter_name().to_string());
    environment.insert("whet".into(), env!("CARGO_PKG_VERSION").into());
    environment.insert("seeds".into(), format!("{:?}", opts.seeds));
    let out = CompareResults {
        title: format!("{} on {}", recipe.model.kind, recipe.data.train.display()),
        task: format!("{:?}", recipe.data.kind),
        model: recipe.model.path.display().to_string(),
        data: recipe.data.train.display().to_string(),
        primary_metric: metric,
        classes,
        strategies: results,
        sweep: None,
        retention: Vec::new(),
        auto: None,
        attributions: Vec::new(),
        environment,
    };
    crate::report::html::write_report(&out, &opts.out_dir)?;
    Ok(out)
}

/// Each strategy against full fine-tuning on the same items, seed by seed.
fn paired_tests(
    results: &mut [StrategyResult],
    preds: &BTreeMap<&str, Vec<Predictions>>,
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

/// A folder name for a strategy.
fn slug(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect()
}
