//! The training driver: owns the loop, the optimizer, evaluation, early stopping, logging and
//! checkpoints, over any [`Task`] (a model plus its data).
//!
//! One optimizer step is `grad_accum` micro-batches of `batch_size` items from the epoch's
//! seeded permutation (the last step of an epoch takes what is left, so accumulation never
//! spans epochs and every checkpoint falls on a step boundary). Each micro-batch's loss is
//! weighted by its share of the step's items, so the update follows the mean over the step.
//!
//! A batch that does not fit the device (a tensor past the binding limit, or out of memory)
//! is run as smaller micro-batches with accumulation, found on the first step and kept, with
//! one warning ([`micro_batch`](super::micro_batch)). Without batch norm that gives the same
//! parameters as setting `grad_accum` by hand; with batch norm each micro-batch is
//! normalised with its own statistics and updates the running statistics once (a batch of
//! 32 run as 4 × 8 trains like batches of 8). `split_batches = false` makes it an
//! [`Error::BatchTooBig`] naming the largest batch that fits instead.
//!
//! Per step the host reads back exactly one 2-float buffer, `[loss, gradient norm]`, to decide
//! whether the step is finite (check T3) before the optimizer touches anything; a non-finite
//! step is dropped, its items are logged, and `max_bad_steps` of them in a row end the run
//! with [`Error::NonFiniteSteps`].
//!
//! Everything the loop depends on — step, epoch, position in the permutation, the dropout
//! clock, best metric and patience, counters — goes into each checkpoint, and the shuffles
//! and dropout seeds are pure functions of `(seed, epoch)` and `(seed, attempt, micro-batch)`,
//! so a resumed run continues bit for bit (check T2).
//!
//! Data-parallel ([`DriverConfig::cluster`], `mpirun -np N whet train`): `batch_size` stays the
//! global batch. Every rank draws the same permutation and takes its contiguous share of each
//! step's items; each micro-batch's loss is weighted by its share of the *global* step, dropout
//! masks and augmentations are keyed by the global sample ([`Mode::samples`]), and the summed
//! gradients of the trainable parameters ([`Optimizer::all_reduce`]) are the one process's up
//! to float summation order. Rank 0's initial parameters are broadcast first; the loss, the
//! gradient norm (computed after the sum) and stop requests are global, so every rank skips,
//! clips and stops together. The sum overlaps the backward of a step's last micro-batch: the
//! arena's pages ([`BUCKET_BYTES`] each) are read back as the backward finishes them and
//! reduced last page first (the optimizer's `gather` module). Each rank evaluates its share
//! of the validation items and the outputs are gathered ([`Task::val_outputs`]), so every rank
//! sees the same metrics. Only rank 0 writes logs and checkpoints; the others resume from its
//! folder. A run may resume on another number of ranks at an epoch boundary, not mid-epoch
//! (`Driver::check_ranks` says why).
//!
//! A run folder belongs to one run (check T6): [`Driver::run`] claims `out_dir` with a
//! [`Fingerprint`] of the driver's settings, the host's own keys ([`DriverConfig::fingerprint`])
//! and the task's initial parameters, and [`DriverConfig::resume`] says what to do with a folder
//! that already holds a run (by default: refuse it). `run::train` claims the folder itself with
//! the recipe's fingerprint and hands it over through [`Driver::run_in`].

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::dist::Cluster;
use crate::engine::{Engine, View};
use crate::error::{Error, Result};
use crate::nn::{Mode, Params, Select};
use crate::optim::{OptimConfig, OptimState, Optimizer};
use crate::progress::Progress;
use crate::tensor::Tensor;
use crate::train::checkpoint::{self, BestMark, TrainState};
use crate::train::events::{self, Event, OnEvent, StepEvent};
use crate::train::fingerprint::Fingerprint;
use crate::train::log::{LogRow, RunLog};
use crate::train::loss_scale::{LossScaleConfig, LossScaleState, ScaleVerdict};
use crate::train::micro_batch::{self, Snapshot, Splitter};
use crate::train::run_dir::{Opening, Resume, RunDir};
use crate::train::stop::StopFlag;
use crate::train::unfreeze::Plan;

/// Gradient bytes per all-reduce bucket of a data-parallel step (an arena page each; PyTorch
/// DDP's default): small enough that the last layers' buckets are summed while the backward
/// is still on the first layers, large enough that each costs one readback and one MPI call.
pub const BUCKET_BYTES: u64 = 25 << 20;

/// Named evaluation results ("loss", "accuracy", "f1", ...).
pub type Metrics = BTreeMap<String, f64>;

/// What the driver trains: a model plus its data. The driver owns the loop, the optimizer and
/// the checkpoints.
pub trait Task {
    fn params(&self) -> &Params;
    fn params_mut(&mut self) -> &mut Params;
    /// Number of training items (the driver shuffles `0..train_len()` each epoch with its own
    /// seeded RNG).
    fn train_len(&self) -> usize;
    /// The scalar loss graph (on the tape) of these training items, forward in `mode` (dropout
    /// seed given). The mean over the items, so micro-batches of different sizes combine.
    fn loss(&mut self, items: &[usize], mode: Mode) -> Result<Tensor>;
    /// Validation metrics (e.g. "loss", "accuracy", "f1"), computed without a tape.
    fn evaluate(&mut self) -> Result<Metrics>;

    /// Sharded evaluation (data-parallel): how many validation items [`Task::evaluate`] covers,
    /// or 0 when the task does not split it (every rank then evaluates the whole split, with
    /// the same result).
    fn val_len(&self) -> usize {
        0
    }
    /// The outputs of validation items `items` (one rank's contiguous share), in item order:
    /// what [`Task::val_metrics`] turns into metrics once every rank's are laid end to end.
    fn val_outputs(&mut self, items: Range<usize>) -> Result<Vec<f64>> {
        Err(Error::arg(
            "task",
            format!("validation items {items:?}: this task does not shard its evaluation"),
        ))
    }
    /// The metrics of the outputs of every validation item, in order ([`Task::evaluate`]'s).
    fn val_metrics(&mut self, outputs: &[f64]) -> Result<Metrics> {
        Err(Error::arg(
            "task",
            format!("{} validation outputs: this task does not shard its evaluation", outputs.len()),
        ))
    }
}

/// Stop when a metric has not improved for `patience` evaluations.
#[derive(Debug, Clone)]
pub struct EarlyStop {
    pub metric: String,
    pub higher_is_better: bool,
    /// Evaluations without improvement before stopping.
    pub patience: usize,
    /// An improvement must beat the best by more than this.
    pub min_delta: f64,
}

/// Everything that configures a [`Driver`] run.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// Logs and checkpoints go here.
    pub out_dir: PathBuf,
    /// Stop after this many epochs or `max_steps` optimizer steps, whichever comes first.
    pub epochs: usize,
    pub max_steps: Option<u64>,
    pub batch_size: usize,
    /// Micro-batches per optimizer step.
    pub grad_accum: usize,
    /// Evaluate every this many optimizer steps; `None`: at the end of every epoch.
    pub eval_every: Option<u64>,
    pub early_stop: Option<EarlyStop>,
    /// Applied at each epoch start ([`Plan::apply`]) ...
    pub plan: Plan,
    /// ... then these stay frozen regardless.
    pub freeze: Option<Select>,
    /// Seeds the shuffles and the per-step dropout masks.
    pub seed: u64,
    /// Dropout stays active inside frozen blocks ([`Mode::dropout_in_frozen`]).
    pub dropout_in_frozen: bool,
    /// Consecutive non-finite (skipped) steps before the run fails.
    pub max_bad_steps: usize,
    /// Also checkpoint every this many steps (checkpoints are always written at evaluations
    /// and at the end).
    pub checkpoint_every: Option<u64>,
    /// Show progress on stderr: a bar on a terminal (the `progress` feature), else a plain line
    /// every 30 s and at the end.
    pub progress: bool,
    /// What to do when `out_dir` already holds a run: refuse it (the default), continue it when
    /// it is the same run, or start over.
    pub resume: Resume,
    /// The host's own description of the run (data, model files, settings the driver does not
    /// see), compared with the folder's on resume beside the driver's settings.
    pub fingerprint: Fingerprint,
    /// Run a batch that does not fit the device as micro-batches with accumulation (see the
    /// module docs for batch norm); off, such a batch is [`Error::BatchTooBig`].
    pub split_batches: bool,
    /// The host's callback: an [`Event`] after every step, every evaluation and at the end
    /// ([`events`](super::events)); no extra readback is made for it.
    pub on_event: Option<OnEvent>,
    /// The ranks training together (data-parallel; see the module docs). One process by default.
    pub cluster: Cluster,
    /// Data-parallel: sum the gradients over the ranks page by page while the backward of a
    /// step's last micro-batch runs, in pages of [`BUCKET_BYTES`] (on by default; off, the
    /// whole gradient arena is reduced after the backward). Both give the same sums.
    pub overlap_all_reduce: bool,
    /// Batch norm over the global batch's statistics on every rank (data-parallel only;
    /// [`crate::ops::batch_norm`]). Every rank must hold items in every step.
    pub sync_batch_norm: bool,
    /// After every update, gather a checksum of each rank's trainable parameters and fail when
    /// they differ (a host readback per step: a check for tests and debugging).
    pub check_replicas: bool,
    /// Dynamic loss scaling ([`loss_scale`](super::loss_scale)); `None`: the loss as it is.
    pub loss_scale: Option<LossScaleConfig>,
}

impl DriverConfig {
    /// Defaults: 3 epochs, batches of 16, no accumulation, evaluation per epoch, full
    /// fine-tuning, seed 0, 5 bad steps, an existing run in `out_dir` refused, no progress bar.
    pub fn new(out_dir: impl Into<PathBuf>) -> DriverConfig {
        DriverConfig {
            out_dir: out_dir.into(),
            epochs: 3,
            max_steps: None,
            batch_size: 16,
            grad_accum: 1,
            eval_every: None,
            early_stop: None,
            plan: Plan::Full,
            freeze: None,
            seed: 0,
            dropout_in_frozen: true,
            max_bad_steps: 5,
            checkpoint_every: None,
            progress: false,
            resume: Resume::Refuse,
            fingerprint: Fingerprint::new(),
            split_batches: true,
            on_event: None,
            cluster: Cluster::solo(),
            overlap_all_reduce: true,
            sync_batch_norm: false,
            check_replicas: false,
            loss_scale: None,
        }
    }
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StopReason {
    /// All epochs or `max_steps` done.
    Finished,
    /// The early-stopping metric ran out of patience.
    EarlyStopped,
    /// A [`StopFlag`] was set (by `signal`, 0 for a non-signal request).
    Interrupted { signal: i32 },
}

/// What a run did.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RunSummary {
    /// Optimizer steps taken in total (resumed ones included).
    pub steps: u64,
    /// Epochs completed.
    pub epochs: usize,
    pub stopped: StopReason,
    /// Step and metrics of the best evaluation.
    pub best: Option<(u64, Metrics)>,
    /// Metrics of the last evaluation.
    pub last: Option<Metrics>,
    /// Steps skipped for a non-finite loss or gradient norm (resumed ones included).
    pub skipped_steps: u64,
    pub resumed_from: Option<u64>,
    /// Length settings changed since the run began (`epochs`, `max_steps`: old → new).
    pub extended: Vec<String>,
    /// Seconds of training, across resumes.
    pub train_secs: f64,
    /// Training items of every skipped step.
    pub skipped_items: Vec<usize>,
    /// The final checkpoint's directory.
    pub checkpoint: Option<PathBuf>,
    /// Items per micro-batch when `batch_size` did not fit the device and the driver split
    /// it ([`micro_batch`](super::micro_batch)); `None` when every batch fitted.
    pub micro_batch: Option<usize>,
    /// The gradient all-reduce of a data-parallel run (`None` on one process).
    pub all_reduce: Option<AllReduceStats>,
}

/// What summing the gradients across ranks cost (this call of the run).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AllReduceStats {
    pub ranks: usize,
    /// Steps whose gradients were summed.
    pub steps: u64,
    /// Gradient bytes each rank sent into the all-reduce per step (trainable parameters only).
    pub bytes_per_step: u64,
    /// Seconds the host spent on the reduction once the backward was recorded, over all
    /// steps: staging readbacks, MPI and write-back; overlapped, the waits for the readbacks
    /// also hold the device's remaining backward.
    pub secs: f64,
    /// Of those, seconds in the MPI all-reduce (waiting for the slower rank included) and the
    /// write-back.
    pub mpi_secs: f64,
    /// Buckets (arena pages) reduced per step.
    pub buckets: usize,
    /// Whether the reduction overlapped the backward ([`DriverConfig::overlap_all_reduce`]).
    pub overlapped: bool,
    /// Checksum comparisons of the replicas that passed ([`DriverConfig::check_replicas`]).
    pub replica_checks: u64,
}

/// Runs training for a [`Task`].
pub struct Driver {
    engine: Engine,
    config: DriverConfig,
    optimizer: Optimizer,
    /// `[loss, grad norm]`: the one readback of a step.
    readback: Tensor,
    /// The loss scale of the step being gathered (1 without loss scaling).
    scale_now: f32,
    /// Micro-batch size once a batch did not fit.
    split: Splitter,
    reduced: AllReduceStats,
}

/// splitmix64 of `a` mixed with `b`: unrelated streams for neighbouring inputs.
fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_add(0x9E37_79B9_7F4A_7C15).wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The item order of `epoch`: a pure function of the seed, so resume needs no RNG state.
fn permutation(seed: u64, epoch: usize, n: usize) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(mix(seed, 0x5348_5546_0000_0000 ^ epoch as u64));
    let mut p: Vec<usize> = (0..n).collect();
    p.shuffle(&mut rng);
    p
}

fn to_opt(m: &Metrics) -> BTreeMap<String, Option<f64>> {
    m.iter().map(|(k, v)| (k.clone(), v.is_finite().then_some(*v))).collect()
}

fn from_opt(m: &BTreeMap<String, Option<f64>>) -> Metrics {
    m.iter().map(|(k, v)| (k.clone(), v.unwrap_or(f64::NAN))).collect()
}

fn finite(v: f32) -> Option<f64> {
    v.is_finite().then_some(v as f64)
}

/// Length settings a resumed run changed ("epochs: 3 → 5"), logging the keys only one whet
/// build recorded.
fn extended_settings(opening: &Opening, out: &std::path::Path) -> Vec<String> {
    match opening {
        Opening::Resume { extended, one_sided } => {
            for c in one_sided {
                log::info!("{}: recorded by only one whet build, not compared ({c})", out.display());
            }
            extended.iter().map(|c| c.to_string()).collect()
        }
        _ => Vec::new(),
    }
}

/// One call of [`Driver::run_in`]: the checkpointed [`TrainState`] plus what the loop keeps
/// only while it runs.
struct Session {
    st: TrainState,
    /// Training items, and items per optimizer step.
    n: usize,
    per_step: usize,
    /// Steps of the whole run (the progress bar's and the events' total).
    total: u64,
    /// Rank 0's log files; the other ranks write none.
    log: Option<RunLog>,
    bar: Progress,
    /// Where this call started: ETA and elapsed time count from here.
    first_step: u64,
    t0: Instant,
    secs_before: f64,
    last_saved: Option<(u64, PathBuf)>,
    resumed_from: Option<u64>,
    resumed_dir: Option<PathBuf>,
    /// Moments of the resumed checkpoint, loaded once the first epoch has frozen what it freezes.
    pending_optim: Option<OptimState>,
    /// The last validation result, shown on the progress line.
    metric_msg: String,
}

/// The state of a run before its first step.
fn fresh_state(n: usize, digest: &str, ranks: usize) -> TrainState {
    TrainState {
        step: 0,
        epoch: 0,
        cursor: 0,
        attempts: 0,
        train_len: n,
        accum_pos: 0,
        best: None,
        since_best: 0,
        bad_steps: 0,
        skipped_steps: 0,
        skipped_items: Vec::new(),
        train_secs: 0.0,
        last_metrics: None,
        config_digest: digest.to_string(),
        ranks,
        loss_scale: None,
    }
}

/// What one step did.
struct Taken {
    items: Vec<usize>,
    loss: f32,
    norm: f32,
    lr: f64,
    /// Finite loss and gradient norm: the optimizer updated.
    ok: bool,
    /// The epoch the step belongs to, and whether it ended it.
    epoch: usize,
    epoch_end: bool,
}

/// What an evaluation decided.
#[derive(Default)]
struct Verdict {
    improved: bool,
    early: bool,
    metrics: Option<Metrics>,
}

/// How the loop goes on after a step.
enum Flow {
    Next,
    EpochEnd,
    Stop(StopReason),
}

impl Driver {
    pub fn new(engine: &Engine, config: DriverConfig, optim: OptimConfig) -> Result<Driver> {
        if config.batch_size == 0 || config.grad_accum == 0 {
            return Err(Error::arg(
                "driver",
                format!(
                    "batch_size ({}) and grad_accum ({}) must be >= 1",
                    config.batch_size, config.grad_accum
                ),
            ));
        }
        if config.eval_every == Some(0) || config.checkpoint_every == Some(0) {
            return Err(Error::arg("driver", "eval_every and checkpoint_every must be >= 1 when set"));
        }
        if let Some(ls) = &config.loss_scale {
            ls.validate()?;
        }
        if config.max_bad_steps == 0 || config.early_stop.as_ref().is_some_and(|e| e.patience == 0) {
            return Err(Error::arg("driver", "max_bad_steps and early-stopping patience must be >= 1"));
        }
        let mut optimizer = Optimizer::new(engine, optim)?;
        if config.cluster.is_distributed() && config.overlap_all_reduce {
            optimizer.set_bucket_bytes(Some(BUCKET_BYTES));
        }
        Ok(Driver {
            engine: engine.clone(),
            optimizer,
            readback: Tensor::zeros(engine, &[2])?,
            scale_now: 1.0,
            split: Splitter::default(),
            reduced: AllReduceStats::default(),
            config,
        })
    }

    pub fn optimizer(&self) -> &Optimizer {
        &self.optimizer
    }

    pub fn config(&self) -> &DriverConfig {
        &self.config
    }

    /// What an exact resume depends on besides the checkpoint itself.
    fn digest(&self, train_len: usize) -> String {
        let c = &self.config;
        let s = format!(
            "seed={} batch={} accum={} items={} method={:?}",
            c.seed, c.batch_size, c.grad_accum, train_len, self.optimizer.config.method
        );
        let mut crc = flate2::Crc::new();
        crc.update(s.as_bytes());
        format!("{:08x} {s}", crc.sum())
    }

    /// Whether `value` of the early-stopping (or default "loss") metric beats `best`.
    fn improves(&self, value: f64, best: Option<&BestMark>) -> bool {
        let (higher, delta) =
            self.config.early_stop.as_ref().map_or((false, 0.0), |e| (e.higher_is_better, e.min_delta));
        if !value.is_finite() {
            return false;
        }
        match best {
            None => true,
            Some(b) if higher => value > b.value + delta,
            Some(b) => value < b.value - delta,
        }
    }

    /// The run's fingerprint as the driver sees it: its own settings, the host's keys and the
    /// task's initial parameters (paths, shapes and values).
    pub fn fingerprint(&self, task: &dyn Task) -> Result<Fingerprint> {
        let c = &self.config;
        let o = &self.optimizer.config;
        let mut fp = Fingerprint::new();
        fp.set("driver.seed", c.seed.to_string())
            .set("driver.batch_size", c.batch_size.to_string())
            .set("driver.grad_accum", c.grad_accum.to_string())
            .set("driver.train_items", task.train_len().to_string())
            .set("driver.eval_every", format!("{:?}", c.eval_every))
            .set("driver.early_stop", format!("{:?}", c.early_stop))
            .set("driver.plan", format!("{:?}", c.plan))
            .set("driver.freeze", format!("{:?}", c.freeze))
            .set("driver.dropout_in_frozen", c.dropout_in_frozen.to_string())
            .set("driver.max_bad_steps", c.max_bad_steps.to_string())
            .set("driver.split_batches", c.split_batches.to_string())
            .set("driver.sync_batch_norm", c.sync_batch_norm.to_string())
            .set("driver.loss_scale", format!("{:?}", c.loss_scale))
            // One key per setting: a field a later whet adds shows as a new key (tolerated
            // across versions), not as a changed one.
            .set("driver.optimizer.method", format!("{:?}", o.method))
            .set("driver.optimizer.lr", o.lr.to_string())
            .set("driver.optimizer.weight_decay", o.weight_decay.to_string())
            .set("driver.optimizer.groups", format!("{:?}", o.groups))
            .set("driver.optimizer.layer_lr", format!("{:?}", o.layer_lr))
            .set("driver.optimizer.decay_1d", o.decay_1d.to_string())
            .set("driver.optimizer.max_grad_norm", format!("{:?}", o.max_grad_norm))
            .set("driver.optimizer.rejoin_warmup", o.rejoin_warmup.to_string())
            .set("driver.schedule.kind", schedule_kind(&o.schedule))
            // Its length follows the run's: extendable like the epochs.
            .set_extendable("driver.schedule", format!("{:?}", o.schedule))
            .set_extendable("driver.epochs", c.epochs.to_string())
            .set_extendable("driver.max_steps", format!("{:?}", c.max_steps))
            .set("driver.initial_params", params_digest(task.params())?);
        fp.merge(&c.fingerprint);
        Ok(fp)
    }

    /// Train `task` until the epochs or `max_steps` are done, early stopping triggers or
    /// `stop` is requested. Claims `out_dir` first (see the module docs): a folder holding
    /// another run is refused, the same run resumes from its latest checkpoint that verifies.
    pub fn run(&mut self, task: &mut dyn Task, stop: &StopFlag) -> Result<RunSummary> {
        let fp = self.fingerprint(task)?;
        let dir = RunDir::claim(&self.config.out_dir, &fp, self.config.resume)?;
        self.run_in(&dir, task, stop)
    }

    /// [`Driver::run`] in a folder the caller has claimed already (with its own fingerprint).
    pub fn run_in(&mut self, dir: &RunDir, task: &mut dyn Task, stop: &StopFlag) -> Result<RunSummary> {
        let out = self.config.out_dir.clone();
        if dir.path() != out.as_path() {
            return Err(Error::arg(
                "driver",
                format!("claimed folder {} is not out_dir {}", dir.path().display(), out.display()),
            ));
        }
        let n = task.train_len();
        if n == 0 {
            return Err(Error::arg("driver", "the task has no training items"));
        }
        let extended = extended_settings(dir.opening(), &out);
        let mut s = self.open(dir, task, n)?;
        self.reduced = AllReduceStats { ranks: self.config.cluster.size(), ..Default::default() };
        if self.config.cluster.is_distributed() {
            broadcast_params(&self.config.cluster, task.params_mut())?;
        }
        let _synced = SyncedStats::install(&self.engine, &self.config);
        let stopped = self.epochs(task, &mut s, stop)?;
        self.finish(task, s, stopped, extended)
    }

    /// A run moves to another number of ranks only at an epoch boundary. Mid-epoch, the rest
    /// of the epoch would sum its gradients in another order than the run began with (so the
    /// resume is no longer the exact continuation a checkpoint promises), and with per-rank
    /// batch norm it would normalise over other shares than the epoch's first steps did. At a
    /// boundary the next epoch starts afresh from the checkpoint's permutation seed on any N.
    fn check_ranks(&self, saved: &TrainState, task: &dyn Task) -> Result<()> {
        let now = self.config.cluster.size();
        if saved.ranks == now {
            return Ok(());
        }
        if saved.cursor != 0 {
            let per_rank_bn = !self.config.sync_batch_norm
                && task.params().entries().iter().any(|e| e.path.ends_with("running_mean"));
            let why = if per_rank_bn {
                "batch norm normalises over each rank's share of a batch, so the rest of the epoch \
                 would train on other statistics"
            } else {
                "the rest of the epoch would sum its gradients in another order, so the run would \
                 no longer continue exactly"
            };
            return Err(Error::RunMismatch {
                dir: self.config.out_dir.display().to_string(),
                changes: vec![format!(
                    "ranks: {} → {now}, at step {} in the middle of epoch {} ({} of {} items): {why}. \
                     Resume it on {} rank(s); the rank count may change once the epoch has ended",
                    saved.ranks,
                    saved.step,
                    saved.epoch + 1,
                    saved.cursor,
                    saved.train_len,
                    saved.ranks
                )],
            });
        }
        log::info!(
            "resuming a run of {} rank(s) on {now} at the start of epoch {}: a step's samples, \
             dropout masks and summed gradients do not depend on the rank count",
            saved.ranks,
            saved.epoch + 1
        );
        Ok(())
    }

    /// The loop's state at its start: fresh, or the latest checkpoint's when `dir` resumes.
    fn open(&mut self, dir: &RunDir, task: &mut dyn Task, n: usize) -> Result<Session> {
        let out = &self.config.out_dir;
        let digest = self.digest(n);
        let (mut st, mut resumed_from, mut resumed_dir, mut pending_optim) =
            (fresh_state(n, &digest, self.config.cluster.size()), None, None, None);
        st.loss_scale = self.config.loss_scale.as_ref().map(LossScaleState::new);
        if dir.resumes() {
            if let Some(ck) = checkpoint::load_latest(out)? {
                if ck.state.config_digest != digest {
                    return Err(Error::RunMismatch {
                        dir: out.display().to_string(),
                        changes: vec![format!(
                            "checkpoint {}: [{}] → [{digest}]",
                            ck.dir.display(),
                            ck.state.config_digest
                        )],
                    });
                }
                self.check_ranks(&ck.state, task)?;
                restore_params(task.params_mut(), &ck)?;
                st = ck.state;
                st.ranks = self.config.cluster.size();
                // A run that turns loss scaling on (or off) on resume starts (or drops) a scale.
                match (&self.config.loss_scale, st.loss_scale) {
                    (Some(c), None) => st.loss_scale = Some(LossScaleState::new(c)),
                    (None, Some(_)) => st.loss_scale = None,
                    _ => {}
                }
                resumed_from = Some(st.step);
                resumed_dir = Some(ck.dir);
                pending_optim = Some(ck.optim);
            }
        }
        let log = match self.config.cluster.is_root() {
            true => Some(RunLog::open(out, resumed_from)?),
            false => None,
        };
        let per_step = self.config.batch_size * self.config.grad_accum;
        let mut total = n.div_ceil(per_step) as u64 * self.config.epochs as u64;
        if let Some(m) = self.config.max_steps {
            total = total.min(m);
        }
        Ok(Session {
            n,
            per_step,
            total,
            log,
            bar: Progress::new(self.config.progress, "step", total, st.step),
            first_step: st.step,
            t0: Instant::now(),
            secs_before: st.train_secs,
            last_saved: None,
            resumed_from,
            resumed_dir,
            pending_optim,
            metric_msg: String::new(),
            st,
        })
    }

    /// Epochs until the run is done or stopped.
    fn epochs(&mut self, task: &mut dyn Task, s: &mut Session, stop: &StopFlag) -> Result<StopReason> {
        let max_steps = self.max_steps();
        while s.st.epoch < self.config.epochs && s.st.step < max_steps {
            self.config.plan.apply(task.params_mut(), s.st.epoch)?;
            if let Some(f) = &self.config.freeze {
                task.params_mut().freeze(f)?;
            }
            if let Some(o) = s.pending_optim.take() {
                self.optimizer.load_state(task.params_mut(), &o)?;
            }
            let perm = permutation(self.config.seed, s.st.epoch, s.n);
            while s.st.cursor < s.n {
                match self.step(task, s, &perm, stop)? {
                    Flow::Next => {}
                    // The next epoch applies its plan and draws its own permutation.
                    Flow::EpochEnd => break,
                    Flow::Stop(reason) => return Ok(reason),
                }
            }
        }
        Ok(StopReason::Finished)
    }

    /// Two steps as the run takes them, with the trainable set of `epoch` (the plan applied
    /// and the freezing), the first items of that epoch's order, and micro-batches where the
    /// batch does not fit; no folder, log, checkpoint or evaluation. The second step is the
    /// steady one: the first update allocates the optimizer state, which every later step's
    /// activations then sit beside. On a dry engine this measures a run's device memory before
    /// any is spent (`whet plan`); the weights it changes are the caller's to throw away.
    pub fn probe_steps(&mut self, task: &mut dyn Task, epoch: usize) -> Result<()> {
        let n = task.train_len();
        if n == 0 {
            return Err(Error::arg("driver", "the task has no training items"));
        }
        self.config.plan.apply(task.params_mut(), epoch)?;
        if let Some(f) = &self.config.freeze {
            task.params_mut().freeze(f)?;
        }
        let perm = permutation(self.config.seed, epoch, n);
        let per_step = (self.config.batch_size * self.config.grad_accum).min(n);
        for attempt in 0..2 {
            self.gather(task, &perm[..per_step], attempt, 0, per_step)?;
            self.optimizer.update()?;
        }
        Ok(())
    }

    /// Items per micro-batch when the batch did not fit and was split (see [`RunSummary`]).
    pub fn micro_batch(&self) -> Option<usize> {
        self.split.split_size(self.config.batch_size)
    }

    fn max_steps(&self) -> u64 {
        self.config.max_steps.unwrap_or(u64::MAX)
    }

    /// One optimizer step with its evaluation, log row, events and checkpoint; says how the
    /// loop goes on.
    fn step(
        &mut self,
        task: &mut dyn Task,
        s: &mut Session,
        perm: &[usize],
        stop: &StopFlag,
    ) -> Result<Flow> {
        let taken = self.take_step(task, s, perm)?;
        let finishing = s.st.epoch >= self.config.epochs || s.st.step >= self.max_steps();
        let evaluate = match self.config.eval_every {
            Some(k) => taken.ok && s.st.step.is_multiple_of(k),
            None => taken.epoch_end,
        } || finishing;
        let verdict =
            if evaluate { self.evaluate(task, s, finishing, taken.loss)? } else { Verdict::default() };
        self.record(s, &taken, verdict.metrics)?;
        if !taken.ok && s.st.bad_steps >= self.config.max_bad_steps {
            s.bar.abandon();
            let items = taken.items;
            return Err(Error::NonFiniteSteps { consecutive: s.st.bad_steps, step: s.st.step, items });
        }
        let signal = self.stop_requested(stop)?;
        let periodic = self.config.checkpoint_every.is_some_and(|k| taken.ok && s.st.step.is_multiple_of(k));
        if evaluate || periodic || finishing || verdict.early || signal.is_some() {
            let dir = self.save(task.params(), &s.st, verdict.improved)?;
            s.last_saved = Some((s.st.step, dir));
        }
        Ok(if let Some(signal) = signal {
            Flow::Stop(StopReason::Interrupted { signal })
        } else if verdict.early {
            Flow::Stop(StopReason::EarlyStopped)
        } else if s.st.step >= self.max_steps() {
            Flow::Stop(StopReason::Finished)
        } else if taken.epoch_end {
            Flow::EpochEnd
        } else {
            Flow::Next
        })
    }

    /// Gather the step's gradients and update, or drop a non-finite step; moves the cursor.
    fn take_step(&mut self, task: &mut dyn Task, s: &mut Session, perm: &[usize]) -> Result<Taken> {
        let st = &mut s.st;
        let end = (st.cursor + s.per_step).min(s.n);
        let items = perm.get(st.cursor..end).unwrap_or(&[]).to_vec();
        let lr = self.optimizer.config.schedule.lr(self.optimizer.config.lr, st.step);
        // This rank's share of the step; every rank weighs its loss by the whole step's count.
        let mine = self.config.cluster.share(items.len());
        if self.config.sync_batch_norm && items.len() < self.config.cluster.size() {
            return Err(Error::arg(
                "sync_batch_norm",
                format!(
                    "step {} has {} items for {} ranks: synchronised batch norm needs one per rank \
                     (a batch_size and item count whose last step holds at least that many)",
                    st.step + 1,
                    items.len(),
                    self.config.cluster.size()
                ),
            ));
        }
        let local = &items[mine.clone()];
        self.scale_now = st.loss_scale.map_or(1.0, |l| l.scale);
        self.optimizer.set_grad_unscale(1.0 / self.scale_now);
        let (loss, norm) = self.gather(task, local, st.attempts, mine.start, items.len())?;
        st.attempts += 1;
        st.cursor = end;
        let verdict = match (&self.config.loss_scale, &mut st.loss_scale) {
            (Some(c), Some(ls)) => ls.after_step(c, loss, norm),
            _ if loss.is_finite() && norm.is_finite() => ScaleVerdict::Take,
            _ => ScaleVerdict::Bad,
        };
        let ok = verdict == ScaleVerdict::Take;
        if verdict == ScaleVerdict::Overflow {
            // The scale's doing, not the model's: skipped and logged, never fatal.
            self.optimizer.discard();
            st.skipped_steps += 1;
            st.skipped_items.extend_from_slice(&items);
            log::warn!(
                "step {}: gradients overflowed at loss scale {}; skipped, the scale is now {}",
                st.step,
                self.scale_now,
                st.loss_scale.map_or(1.0, |l| l.scale)
            );
        } else if ok {
            self.optimizer.update()?;
            if self.config.check_replicas {
                self.check_replicas(task.params(), st.step)?;
            }
            st.step += 1;
            st.bad_steps = 0;
        } else {
            self.optimizer.discard();
            st.bad_steps += 1;
            st.skipped_steps += 1;
            st.skipped_items.extend_from_slice(&items);
            log::warn!(
                "step {}: non-finite loss {loss} or gradient norm {norm}; skipped items {items:?}",
                st.step
            );
        }
        let epoch = st.epoch;
        let epoch_end = st.cursor >= s.n;
        if epoch_end {
            st.epoch += 1;
            st.cursor = 0;
        }
        Ok(Taken { items, loss, norm, lr, ok, epoch, epoch_end })
    }

    /// Evaluate, track the best metric and the early-stopping patience.
    fn evaluate(
        &mut self,
        task: &mut dyn Task,
        s: &mut Session,
        finishing: bool,
        loss: f32,
    ) -> Result<Verdict> {
        s.bar.note(&format!("loss {loss:.4} · evaluating"));
        let m = {
            let _g = self.engine.no_grad();
            sharded_evaluate(task, &self.config.cluster)?
        };
        let st = &mut s.st;
        let key = self.config.early_stop.as_ref().map_or("loss", |e| e.metric.as_str());
        let mut improved = false;
        match m.get(key) {
            Some(&v) => {
                if self.improves(v, st.best.as_ref()) {
                    st.best =
                        Some(BestMark { step: st.step, metric: key.into(), value: v, metrics: to_opt(&m) });
                    st.since_best = 0;
                    improved = true;
                } else {
                    st.since_best += 1;
                }
                s.metric_msg = format!("· val {key} {v:.4}");
            }
            None if self.config.early_stop.is_some() => {
                return Err(Error::arg(
                    "early_stop",
                    format!(
                        "metric '{key}' is not among the evaluated metrics {:?}",
                        m.keys().collect::<Vec<_>>()
                    ),
                ));
            }
            None => {}
        }
        let early =
            self.config.early_stop.as_ref().is_some_and(|es| st.since_best >= es.patience && !finishing);
        st.last_metrics = Some(to_opt(&m));
        Ok(Verdict { improved, early, metrics: Some(m) })
    }

    /// The step's log row, progress line and events.
    fn record(&self, s: &mut Session, taken: &Taken, metrics: Option<Metrics>) -> Result<()> {
        let Taken { loss, norm, lr, ok, epoch, .. } = *taken;
        s.st.train_secs = s.secs_before + s.t0.elapsed().as_secs_f64();
        let row = LogRow {
            step: s.st.step,
            epoch,
            loss: finite(loss),
            lr,
            grad_norm: finite(norm),
            secs: s.st.train_secs,
            skipped_items: if ok { Vec::new() } else { taken.items.clone() },
            loss_scale: s.st.loss_scale.map(|_| self.scale_now as f64),
            metrics: metrics.as_ref().map(to_opt).unwrap_or_default(),
        };
        if let Some(log) = &mut s.log {
            log.push(row)?;
        }
        let msg = &s.metric_msg;
        s.bar.step(s.st.step, || format!("loss {loss:.4} lr {lr:.2e} {msg}"));
        // Before the stop flag is read: a callback that cancels on this step stops here.
        self.emit(Event::Step(StepEvent {
            step: s.st.step,
            total: s.total,
            epoch,
            loss: loss.is_finite().then_some(loss),
            grad_norm: norm.is_finite().then_some(norm),
            lr,
            skipped: !ok,
            elapsed_secs: s.st.train_secs,
            eta_secs: events::eta(
                s.t0.elapsed().as_secs_f64(),
                s.st.step - s.first_step,
                s.total.saturating_sub(s.st.step),
            ),
        }));
        if let Some(metrics) = metrics {
            self.emit(Event::Evaluated { step: s.st.step, epoch, metrics });
        }
        Ok(())
    }

    fn emit(&self, e: Event) {
        if let Some(cb) = &self.config.on_event {
            cb.emit(&e);
        }
    }

    /// The final checkpoint (when the loop saved none) and the summary.
    fn finish(
        &mut self,
        task: &mut dyn Task,
        s: Session,
        stopped: StopReason,
        extended: Vec<String>,
    ) -> Result<RunSummary> {
        // `log` is dropped last, as before: its file closes after the final checkpoint.
        let Session { st, mut last_saved, resumed_from, resumed_dir, bar, log: _log, .. } = s;
        // A run resumed from its final checkpoint (or with nothing left to do) still reports
        // and keeps a final checkpoint.
        if last_saved.is_none() && resumed_from.is_none() {
            let dir = self.save(task.params(), &st, false)?;
            last_saved = Some((st.step, dir));
        }
        bar.finish();
        self.emit(Event::Finished { steps: st.step, epochs: st.epoch, stopped });
        Ok(RunSummary {
            steps: st.step,
            epochs: st.epoch,
            stopped,
            best: st.best.as_ref().map(|b| (b.step, from_opt(&b.metrics))),
            last: st.last_metrics.as_ref().map(from_opt),
            skipped_steps: st.skipped_steps,
            resumed_from,
            extended,
            train_secs: st.train_secs,
            skipped_items: st.skipped_items.clone(),
            checkpoint: last_saved.map(|(_, d)| d).or(resumed_dir),
            micro_batch: self.split.split_size(self.config.batch_size),
            all_reduce: self.config.cluster.is_distributed().then_some(self.reduced),
        })
    }

    /// [`Driver::gather_chunks`] at the micro-batch size that fits: a step that does not fit
    /// is discarded (buffers restored) and run again smaller ([`micro_batch`]).
    ///
    /// `items` are this rank's share of the step, starting at position `first` of the step's
    /// `total` items.
    fn gather(
        &mut self,
        task: &mut dyn Task,
        items: &[usize],
        attempt: u64,
        first: usize,
        total: usize,
    ) -> Result<(f32, f32)> {
        let batch = self.config.batch_size;
        let snapshot = match self.split.on_probation() {
            true => Some(Snapshot::take(task.params())?),
            false => None,
        };
        loop {
            let size = self.split.size(batch);
            let chunk = self.chunk_size(size, items.len(), total);
            match self.gather_chunks(task, items, attempt, chunk, (first, total)) {
                Err(e) if micro_batch::does_not_fit(&e) => {
                    self.optimizer.discard();
                    if let Some(s) = &snapshot {
                        s.restore(task.params_mut())?;
                    }
                    self.split.shrink(batch, size, e)?;
                }
                Ok(r) => {
                    if let Err(e) = self.split.confirm(batch, size, self.config.split_batches) {
                        self.optimizer.discard();
                        return Err(e);
                    }
                    return Ok(r);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Forward and backward over the step's micro-batches of `size` items, gathering
    /// gradients in the optimizer (summed over the ranks in a data-parallel run); returns
    /// `[loss, grad norm]` with one readback. `at = (first, total)`: where `items` start in the
    /// step, and the step's item count across all ranks.
    fn gather_chunks(
        &mut self,
        task: &mut dyn Task,
        items: &[usize],
        attempt: u64,
        size: usize,
        at: (usize, usize),
    ) -> Result<(f32, f32)> {
        let (first, total) = at;
        let mut sum: Option<Tensor> = None;
        // One dropout seed per step; each sample's mask is keyed by its place in the step.
        let seed = mix(mix(self.config.seed, attempt), 0);
        let chunks = items.len().div_ceil(size.max(1));
        let mut reduced = None;
        for (m, chunk) in items.chunks(size).enumerate() {
            let mut mode = Mode::train(seed).samples((first + m * size) as u64, chunk.len() as u64);
            mode.dropout_in_frozen = self.config.dropout_in_frozen;
            let loss = task.loss(chunk, mode)?;
            if loss.numel() != 1 {
                return Err(Error::arg(
                    "driver",
                    format!("Task::loss returned shape {:?}, expected a scalar", loss.shape()),
                ));
            }
            // Weighted by the micro-batch's share of the step: the update follows the mean
            // over all the step's items, whatever the split.
            let loss =
                if chunk.len() == total { loss } else { loss.mul_scalar(chunk.len() as f32 / total as f32)? };
            // The gradients carry the loss scale; the optimizer divides it out.
            let scaled = if self.scale_now == 1.0 { loss.clone() } else { loss.mul_scalar(self.scale_now)? };
            if m + 1 == chunks && self.overlaps() {
                reduced = Some(self.backward_reducing(task, &scaled)?);
            } else {
                let grads = scaled.backward()?;
                self.optimizer.accumulate(task.params_mut(), &grads)?;
            }
            let _g = self.engine.no_grad();
            sum = Some(match sum {
                Some(s) => s.add(&loss.detach())?,
                None => loss.detach(),
            });
        }
        let sum = match sum {
            Some(sum) => sum,
            // A rank whose share of a short last step is empty adds zero gradients.
            None if self.config.cluster.is_distributed() => {
                self.optimizer.accumulate(task.params_mut(), &crate::GradStore::default())?;
                Tensor::zeros(&self.engine, &[1])?
            }
            None => return Err(Error::arg("driver", "a step without items")),
        };
        if let Some((bytes, secs)) = reduced {
            self.note_reduced(bytes, secs, true);
        } else if self.config.cluster.is_distributed() {
            // The step's own compute first, so the timer holds staging and the reduction only
            // (and any wait for a slower rank).
            self.engine.sync()?;
            let t = Instant::now();
            let bytes = self.optimizer.all_reduce(&self.config.cluster)?;
            self.note_reduced(bytes, t.elapsed().as_secs_f64(), false);
        }
        let e = self.engine.clone();
        let norm = self.optimizer.gathered_grad_norm()?;
        let nv = norm.storage();
        let rv = self.readback.storage();
        e.copy(sum.storage(), rv, 4)?;
        e.copy(
            View { storage: nv.storage, offset: nv.offset + 4 },
            View { storage: rv.storage, offset: rv.offset + 4 },
            4,
        )?;
        let mut v = self.readback.to_vec()?;
        // The norm is already global (computed from the summed gradients); the loss is each
        // rank's weighted share.
        if let Some(l) = v.first_mut() {
            let mut global = [*l];
            self.config.cluster.all_reduce_sum(&mut global)?;
            *l = global[0];
        }
        match v.as_slice() {
            [l, g] => Ok((*l, *g)),
            _ => Err(Error::arg("driver", "readback of [loss, grad norm] has the wrong size")),
        }
    }

    fn note_reduced(&mut self, bytes: u64, secs: f64, overlapped: bool) {
        let r = &mut self.reduced;
        (r.bytes_per_step, r.overlapped, r.buckets) = (bytes, overlapped, self.optimizer.pages());
        r.secs += secs;
        r.mpi_secs = self.optimizer.reduce_secs();
        r.steps += 1;
    }

    /// Whether a step's last micro-batch sums its gradients over the ranks while its backward
    /// runs ([`DriverConfig::overlap_all_reduce`]).
    fn overlaps(&self) -> bool {
        self.config.cluster.is_distributed() && self.config.overlap_all_reduce
    }

    /// The backward of a step's last micro-batch, its gradients gathered and all-reduced page
    /// by page as they become final (the optimizer's `gather` module). Returns the bytes
    /// reduced and the seconds the host spent on the reduction after the backward was recorded
    /// (waiting for readbacks, MPI, writing back: what the overlap did not hide).
    fn backward_reducing(&mut self, task: &mut dyn Task, loss: &Tensor) -> Result<(u64, f64)> {
        let mut ov = self.optimizer.begin_overlapped(task.params_mut())?;
        let params = task.params();
        let opt = &mut self.optimizer;
        let grads = loss.backward_with(&mut |store, ids| opt.overlap_final(&mut ov, params, store, ids))?;
        let t = Instant::now();
        let bytes = self.optimizer.finish_overlapped(ov, params, &grads, &self.config.cluster)?;
        Ok((bytes, t.elapsed().as_secs_f64()))
    }

    /// Items per micro-batch of this rank's `local` share of a `total`-item step, given the
    /// micro-batch size `size`. With synchronised batch norm every rank must run as many
    /// micro-batches (each is one exchange per batch-norm layer), so the count follows the
    /// largest share and the smaller shares spread over it.
    fn chunk_size(&self, size: usize, local: usize, total: usize) -> usize {
        let cluster = &self.config.cluster;
        if !(self.config.sync_batch_norm && cluster.is_distributed()) {
            return size;
        }
        let largest = crate::dist::share(total, 0, cluster.size()).len();
        local.div_ceil(largest.div_ceil(size.max(1)).max(1)).max(1)
    }

    /// A stop request on any rank stops every rank at the same step.
    fn stop_requested(&self, stop: &StopFlag) -> Result<Option<i32>> {
        let mine = stop.requested();
        if !self.config.cluster.is_distributed() {
            return Ok(mine);
        }
        let codes = self.config.cluster.all_gather(mine.map_or(0, |s| s as u64 + 1))?;
        Ok(codes.iter().find(|&&c| c != 0).map(|&c| (c - 1) as i32))
    }

    /// Fail when the ranks' trainable parameters differ after the update of `step`.
    fn check_replicas(&mut self, params: &Params, step: u64) -> Result<()> {
        let mut crc = flate2::Crc::new();
        for t in params.trainable() {
            crc.update(bytemuck::cast_slice(&t.to_vec()?));
        }
        let sums = self.config.cluster.all_gather(crc.sum() as u64)?;
        if sums.iter().any(|&c| c != sums[0]) {
            return Err(Error::arg(
                "distributed",
                format!("after step {}: the ranks' parameters differ (checksums {sums:x?})", step + 1),
            ));
        }
        self.reduced.replica_checks += 1;
        Ok(())
    }

    /// Rank 0 writes checkpoints; the other ranks hold the same state and write nothing.
    fn save(&self, params: &Params, st: &TrainState, is_best: bool) -> Result<PathBuf> {
        if !self.config.cluster.is_root() {
            return Ok(self.config.out_dir.clone());
        }
        let o = self.optimizer.state(params)?;
        checkpoint::save(&self.config.out_dir, params, &o, self.optimizer.state_names(), st, is_best)
    }
}

/// The engine's batch-norm statistics summed over the ranks while a synchronised run trains.
struct SyncedStats(Option<Engine>);

impl SyncedStats {
    fn install(engine: &Engine, config: &DriverConfig) -> SyncedStats {
        if !(config.sync_batch_norm && config.cluster.is_distributed()) {
            return SyncedStats(None);
        }
        let cluster = config.cluster.clone();
        engine.set_stat_sync(Some(std::sync::Arc::new(move |buf: &mut [f32]| cluster.all_reduce_sum(buf))));
        SyncedStats(Some(engine.clone()))
    }
}

impl Drop for SyncedStats {
    fn drop(&mut self) {
        if let Some(e) = &self.0 {
            e.set_stat_sync(None);
        }
    }
}

/// [`Task::evaluate`] of a task that shards its evaluation: the metrics of every validation
/// item's outputs, on one process.
pub fn whole_split<T: Task>(task: &mut T) -> Result<Metrics> {
    let n = task.val_len();
    let outputs = task.val_outputs(0..n)?;
    task.val_metrics(&outputs)
}

/// Validation metrics; on several ranks each evaluates its contiguous share of a task's
/// validation items and the outputs are gathered in item order, so every rank computes the
/// metrics of the whole split (equal to one process's up to float summation order).
fn sharded_evaluate(task: &mut dyn Task, cluster: &Cluster) -> Result<Metrics> {
    let n = task.val_len();
    if !cluster.is_distributed() || n == 0 {
        return task.evaluate();
    }
    let mine = task.val_outputs(cluster.share(n))?;
    let all = cluster.gather_f64(&mine)?;
    task.val_metrics(&all)
}

/// Rank 0's values of every f32 parameter on every rank (freshly drawn heads and adapters
/// included); quantized frozen weights come from the same file on every rank.
fn broadcast_params(cluster: &Cluster, params: &mut Params) -> Result<()> {
    let paths: Vec<String> =
        params.entries().iter().filter(|e| e.tensor.quant_type().is_none()).map(|e| e.path.clone()).collect();
    for path in paths {
        let mut v = params.by_path(&path)?.to_vec()?;
        cluster.broadcast(&mut v)?;
        params.assign(&path, &v)?;
    }
    Ok(())
}

/// Load a checkpoint's tensors into `params`: every entry must be there with its shape, and
/// the checkpoint must hold nothing else.
pub fn restore_params(params: &mut Params, ck: &checkpoint::Checkpoint) -> Result<()> {
    let file = ck.dir.join("params.safetensors").display().to_string();
    let bad = |message: String| Error::Format { path: file.clone(), line: None, message };
    if ck.params.len() != params.len() {
        return Err(bad(format!("{} tensors, the model has {}", ck.params.len(), params.len())));
    }
    for (path, shape, values) in &ck.params {
        let t = params.by_path(path).map_err(|_| bad(format!("tensor '{path}' is not in the model")))?;
        if t.shape() != shape.as_slice() {
            return Err(bad(format!("tensor '{path}' has shape {shape:?}, the model {:?}", t.shape())));
        }
        params.assign(path, values)?;
    }
    Ok(())
}

/// The schedule's shape without its lengths (`Linear`, `Warmup`...): changing it is another run.
fn schedule_kind(s: &crate::optim::Schedule) -> String {
    let d = format!("{s:?}");
    d.split([' ', '{', '(']).next().unwrap_or_default().to_string()
}

/// SHA-256 over every parameter's path, shape and values, in order.
fn params_digest(params: &Params) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for e in params.entries() {
        h.update(e.path.as_bytes());
        h.update([0]);
        for d in e.tensor.shape() {
            h.update((*d as u64).to_le_bytes());
        }
        for v in e.tensor.to_vec()? {
            h.update(v.to_le_bytes());
        }
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
