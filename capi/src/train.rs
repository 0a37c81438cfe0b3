//! Training from a recipe, with a progress callback and a cancel handle.

use std::ffi::{c_char, c_void, CString};
use std::path::Path;

use whet::run::{self, Recipe, RunOptions};
use whet::train::{Event, OnEvent, StopFlag, StopReason};

use crate::boundary::{
    free_box, guard, json_string, needed, optional_text, put, text, Failure, Outcome, WhetStatus,
};
use crate::engine::WhetEngine;

/// A "please stop" flag a host sets from any thread (its Cancel button). Opaque.
pub struct WhetCancel {
    flag: StopFlag,
}

/// A new cancel handle, not set. Free with `whet_cancel_free`. NULL only if whet panicked.
#[no_mangle]
pub extern "C" fn whet_cancel_new() -> *mut WhetCancel {
    std::panic::catch_unwind(|| Box::into_raw(Box::new(WhetCancel { flag: StopFlag::new() })))
        .unwrap_or(std::ptr::null_mut())
}

/// Ask the training that holds `cancel` to stop: it finishes its step, saves a checkpoint and
/// returns `WHET_STATUS_CANCELLED`. Safe from any thread, at any time.
///
/// # Safety
/// `cancel` is from `whet_cancel_new` and not freed.
#[no_mangle]
pub unsafe extern "C" fn whet_cancel_request(cancel: *const WhetCancel) -> WhetStatus {
    guard(|| {
        // SAFETY: the caller's contract; only shared access is taken.
        let c = unsafe { cancel.as_ref() }.ok_or_else(|| Failure::Argument("cancel is NULL".into()))?;
        c.flag.cancel();
        Ok(WhetStatus::Ok)
    })
}

/// Free a cancel handle (NULL is ignored), once no training uses it.
///
/// # Safety
/// `cancel` is NULL or from `whet_cancel_new`, not freed before.
#[no_mangle]
pub unsafe extern "C" fn whet_cancel_free(cancel: *mut WhetCancel) {
    // SAFETY: the caller's contract.
    unsafe { free_box(cancel) }
}

/// What a progress event reports.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhetEventKind {
    /// An optimizer step ended.
    Step = 0,
    /// The validation split was evaluated (`metrics_json` holds the metrics).
    Evaluated = 1,
    /// Training ended (normally or cancelled); evaluation on the test split and the export
    /// follow before `whet_train` returns.
    Finished = 2,
}

/// One progress event, valid only during the callback.
#[repr(C)]
#[derive(Debug)]
pub struct WhetProgress {
    pub kind: WhetEventKind,
    /// Optimizer steps done (resumed ones included).
    pub step: u64,
    /// Steps of the whole run.
    pub total: u64,
    /// Epoch of the step (0-based); epochs completed for `WHET_EVENT_KIND_FINISHED`.
    pub epoch: u64,
    /// The step's training loss; NaN when the step was skipped or for other kinds.
    pub loss: f64,
    /// The step's learning rate (0 for other kinds).
    pub lr: f64,
    /// Seconds of training so far; seconds left at the current pace (-1 when unknown).
    pub elapsed_secs: f64,
    pub eta_secs: f64,
    /// For `WHET_EVENT_KIND_EVALUATED`: the metrics as a JSON object (`{"loss": 0.41,
    /// "accuracy": 0.9}`); NULL otherwise. Owned by whet, valid during the callback only.
    pub metrics_json: *const c_char,
}

/// The host's progress callback: return 0 to go on, anything else to cancel the run (as
/// `whet_cancel_request`). It runs on the thread that called `whet_train`, between steps.
pub type WhetProgressFn =
    Option<unsafe extern "C" fn(event: *const WhetProgress, user_data: *mut c_void) -> i32>;

/// The callback and its context, carried into the driver's `Send + Sync` event hook.
struct Host {
    f: unsafe extern "C" fn(*const WhetProgress, *mut c_void) -> i32,
    user_data: *mut c_void,
    stop: StopFlag,
}

// SAFETY: `whet_train` runs the driver on the caller's own thread and the driver calls the
// hook there, between steps; the pointer never reaches another thread, it only has to be
// carried in a type the hook's bounds accept.
unsafe impl Send for Host {}
unsafe impl Sync for Host {}

impl Host {
    fn deliver(&self, e: &Event) {
        let blank = WhetProgress {
            kind: WhetEventKind::Step,
            step: 0,
            total: 0,
            epoch: 0,
            loss: f64::NAN,
            lr: 0.0,
            elapsed_secs: 0.0,
            eta_secs: -1.0,
            metrics_json: std::ptr::null(),
        };
        let mut metrics = None;
        let p = match e {
            Event::Step(s) => WhetProgress {
                step: s.step,
                total: s.total,
                epoch: s.epoch as u64,
                loss: s.loss.map_or(f64::NAN, f64::from),
                lr: s.lr,
                elapsed_secs: s.elapsed_secs,
                eta_secs: s.eta_secs.unwrap_or(-1.0),
                ..blank
            },
            Event::Evaluated { step, epoch, metrics: m } => {
                // NaN metrics become null: JSON has no NaN.
                let v = serde_json::to_string(m).unwrap_or_else(|_| "{}".into());
                let c = metrics.insert(CString::new(v).unwrap_or_default());
                WhetProgress {
                    kind: WhetEventKind::Evaluated,
                    step: *step,
                    epoch: *epoch as u64,
                    metrics_json: c.as_ptr(),
                    ..blank
                }
            }
            Event::Finished { steps, epochs, .. } => {
                WhetProgress { kind: WhetEventKind::Finished, step: *steps, epoch: *epochs as u64, ..blank }
            }
            // Events a later whet adds are not part of this ABI yet.
            _ => return,
        };
        // SAFETY: the host's function with the host's pointer, on the host's thread; `p` and
        // the metrics string live until it returns.
        if unsafe { (self.f)(&p, self.user_data) } != 0 {
            self.stop.cancel();
        }
    }
}

/// The recipe in `recipe_toml` with relative paths taken from `base_dir` (NULL: the working
/// directory), made absolute, so the recipe.toml saved in a run folder (paths resolved) still
/// finds the data when the run is evaluated again from another working directory.
///
/// # Safety
/// Both are NULL or NUL-terminated.
pub(crate) unsafe fn recipe_from(recipe_toml: *const c_char, base_dir: *const c_char) -> Outcome<Recipe> {
    // SAFETY: the caller's contract.
    let toml = unsafe { text(recipe_toml, "recipe_toml") }?;
    let base = unsafe { optional_text(base_dir, "base_dir") }?.unwrap_or(".");
    let base = std::path::absolute(Path::new(base)).map_err(|e| whet::Error::io(base, e))?;
    Ok(Recipe::parse(toml, &base.join("recipe.toml"), &base)?)
}

/// Train `recipe_toml` (a recipe's text; relative paths in it are taken from `base_dir`, NULL
/// for the working directory) and write its run folder (`output.dir`). Blocks until training,
/// test evaluation and export are done, or until a cancel (`cancel`, NULL for none, or the
/// callback's return value) stops it at a step boundary with a checkpoint:
/// `WHET_STATUS_CANCELLED`, and the same call later continues the run.
///
/// `result_json` receives `{"dir", "steps", "epochs", "stopped", "best", "last_validation",
/// "test", "baseline"}` (free with `whet_string_free`), on success and on cancel.
///
/// # Safety
/// The strings are NULL or NUL-terminated; `engine` is a live engine; `cancel` is NULL or a
/// live cancel handle; `result_json` is valid for a write; `progress` (if any) may be called
/// with `user_data` until `whet_train` returns.
#[no_mangle]
pub unsafe extern "C" fn whet_train(
    engine: *const WhetEngine,
    recipe_toml: *const c_char,
    base_dir: *const c_char,
    progress: WhetProgressFn,
    user_data: *mut c_void,
    cancel: *const WhetCancel,
    result_json: *mut *mut c_char,
) -> WhetStatus {
    guard(|| {
        needed(result_json, "result_json")?;
        // SAFETY: the caller's contract for each pointer.
        let engine = unsafe { engine.as_ref() }.ok_or_else(|| Failure::Argument("engine is NULL".into()))?;
        let recipe = unsafe { recipe_from(recipe_toml, base_dir) }?;
        let stop = unsafe { cancel.as_ref() }.map_or_else(StopFlag::new, |c| c.flag.clone());
        let on_event = progress.map(|f| {
            let host = Host { f, user_data, stop: stop.clone() };
            OnEvent::new(move |e| host.deliver(e))
        });
        let opts = RunOptions { progress: false, baseline: true, on_event, ..RunOptions::default() };
        let out = run::train(&engine.engine, &recipe, &stop, opts)?;
        let cancelled = matches!(out.summary.stopped, StopReason::Interrupted { .. });
        let s = &out.summary;
        let v = serde_json::json!({
            "dir": out.dir.display().to_string(),
            "steps": s.steps,
            "epochs": s.epochs,
            "stopped": if cancelled { "cancelled" } else if s.stopped == StopReason::EarlyStopped { "early_stopped" } else { "finished" },
            "best": s.best.as_ref().map(|(step, m)| serde_json::json!({"step": step, "metrics": m})),
            "last_validation": s.last,
            "test": out.test,
            "baseline": out.baseline,
        });
        // SAFETY: checked non-NULL above.
        unsafe { put(result_json, json_string(&v), "result_json") }?;
        Ok(if cancelled { WhetStatus::Cancelled } else { WhetStatus::Ok })
    })
}
