//! Stage 3 of a run: the optimizer and the driver's plan, from the recipe and what the model
//! stage built (the training set's size, the head, the parameters' depths).

use crate::error::Result;
use crate::nn::{Params, Select};
use crate::optim::{GroupSpec, LayerLr, Method, OptimConfig, Schedule};
use crate::train::driver::{DriverConfig, EarlyStop};
use crate::train::run_dir::Resume;
use crate::train::unfreeze::Plan;

use super::recipe::{Recipe, TrainSection};

/// Optimizer steps in the whole run over `train_len` items.
pub fn total_steps(recipe: &Recipe, train_len: usize) -> u64 {
    let t = &recipe.train;
    let per_epoch = train_len.div_ceil(t.batch_size * t.grad_accum).max(1) as u64;
    let by_epochs = per_epoch * t.epochs as u64;
    t.max_steps.map_or(by_epochs, |m| if t.epochs == 0 { m } else { m.min(by_epochs) })
}

/// The optimizer the recipe describes, its schedule as long as the run.
pub fn optim_config(recipe: &Recipe, train_len: usize) -> Result<OptimConfig> {
    let t = &recipe.train;
    let total = total_steps(recipe, train_len);
    let method = match t.optimizer.as_str() {
        "adamw" => Method::ADAMW,
        "adam" => Method::ADAM,
        _ => Method::Sgd { momentum: t.momentum, dampening: 0.0, nesterov: t.nesterov },
    };
    let mut cfg = OptimConfig::new(method, t.lr).weight_decay(t.weight_decay).schedule(schedule(t, total));
    for (i, g) in t.groups.iter().enumerate() {
        let mut spec = GroupSpec::new(&format!("group{i}:{}", g.select), Select::parse(&g.select)?);
        if let Some(lr) = g.lr {
            spec = spec.lr(lr);
        }
        if let Some(wd) = g.weight_decay {
            spec = spec.weight_decay(wd);
        }
        cfg = cfg.group(spec);
    }
    if let Some(f) = t.layer_decay {
        cfg = cfg.layer_lr(LayerLr::Decay { factor: f });
    } else if let Some(lowest) = t.discriminative {
        cfg = cfg.layer_lr(LayerLr::Discriminative { lowest });
    }
    if let Some(c) = t.clip {
        cfg = cfg.clip(c);
    }
    // Newly unfrozen groups (gradual unfreezing, LP-FT) warm up over a tenth of an epoch.
    cfg.rejoin_warmup = (total / t.epochs.max(1) as u64 / 10).max(1);
    Ok(cfg)
}

/// The learning-rate schedule over `total` steps, with its warmup.
fn schedule(t: &TrainSection, total: u64) -> Schedule {
    let schedule = match t.schedule.as_str() {
        "constant" => Schedule::Constant,
        "cosine" => Schedule::Cosine { total, min_factor: 0.0 },
        "exponential" => Schedule::Exponential { gamma: 0.95 },
        "step" => Schedule::Step { step_size: (total / 3).max(1), gamma: 0.1 },
        "one-cycle" => Schedule::OneCycle { total, pct_start: 0.3, div_factor: 25.0, final_div: 1e4 },
        _ => Schedule::Linear { total, end_factor: 0.0 },
    };
    let warmup =
        if t.warmup_steps > 0 { t.warmup_steps } else { (t.warmup_ratio * total as f64).round() as u64 };
    if warmup > 0 {
        schedule.with_warmup(warmup)
    } else {
        schedule
    }
}

/// The driver settings the recipe describes; `head` and `params` are the model's (the plan
/// unfreezes by them).
pub fn driver_config(recipe: &Recipe, head: &Select, params: &Params, progress: bool) -> DriverConfig {
    let t = &recipe.train;
    let mut c = DriverConfig::new(recipe.output.dir.clone());
    c.epochs = t.epochs;
    c.max_steps = t.max_steps;
    c.batch_size = t.batch_size;
    c.grad_accum = t.grad_accum;
    c.eval_every = t.eval_every;
    c.seed = t.seed;
    c.dropout_in_frozen = t.dropout_in_frozen;
    c.max_bad_steps = t.max_bad_steps;
    c.split_batches = t.split_batches;
    c.sync_batch_norm = t.sync_batch_norm;
    // Mixed precision scales its loss unless told how: f16 gradients underflow without it.
    c.loss_scale = match (t.loss_scale, t.precision.as_str()) {
        (Some(l), _) => Some(l.config()),
        (None, "mixed") => Some(crate::train::loss_scale::LossScaleConfig::default()),
        (None, _) => None,
    };
    c.checkpoint_every = t.checkpoint_every;
    c.progress = progress;
    c.resume = if recipe.output.resume { Resume::IfSame } else { Resume::Fresh };
    c.early_stop = t.early_stop.as_ref().map(|e| EarlyStop {
        metric: e.metric.clone(),
        higher_is_better: !matches!(
            e.metric.as_str(),
            "loss" | "perplexity" | "log_loss" | "ece" | "mse" | "mae" | "rmse"
        ),
        patience: e.patience,
        min_delta: e.min_delta,
    });
    c.plan = plan(t, head.clone(), params);
    let freeze: Vec<Select> = t.freeze.iter().filter_map(|s| Select::parse(s).ok()).collect();
    c.freeze = (!freeze.is_empty()).then_some(Select::Any(freeze));
    c
}

/// Which parameters train in which epoch.
pub(super) fn plan(t: &TrainSection, head: Select, params: &Params) -> Plan {
    if t.lora.is_some() {
        // The base stays frozen; adapters and the head train.
        return Plan::LinearProbe { head: Select::Any(vec![head, Select::Glob("*.lora_[AB]".into())]) };
    }
    match t.plan.as_str() {
        "linear-probe" => Plan::LinearProbe { head },
        "lp-ft" => Plan::LpFt { head, probe_epochs: t.probe_epochs },
        "gradual" => Plan::gradual_by_depth(params, t.unfreeze_every),
        _ => Plan::Full,
    }
}
