//! The memory plan of a recipe before training it: will this run fit the user's GPU?

use std::ffi::c_char;

use whet::run::plan;
use whet::EngineOptions;

use crate::boundary::{guard, json_string, needed, put, Failure, WhetStatus};
use crate::engine::WhetEngine;
use crate::train::recipe_from;

/// The device memory a run of `recipe_toml` (relative paths from `base_dir`, NULL for the
/// working directory) will take on `engine`'s adapter, measured by a dry run that loads the
/// model and data and computes nothing (seconds, no device memory spent). `memory_bytes` is
/// the memory to check against (0: the engine's adapter as whet knows it, which for a GPU is
/// unknown: wgpu does not report it; pass the size your platform reports).
///
/// `plan_json` receives `{"adapter", "batch_size", "grad_accum", "micro_batch", "length",
/// "activation_checkpointing", "trainable_params", "weights": {dtype: bytes}, "other",
/// "gradients", "optimizer_state", "activations", "evaluation", "total", "limit": {"bytes",
/// "source"} or null, "suggestions": [{"change", "total", "measured"}], "fits", "report"}`
/// (`report` is the text `whet plan` prints). A run that does not fit is still
/// `WHET_STATUS_OK`, with `"fits": false` and the suggestions. Free with `whet_string_free`.
///
/// # Safety
/// The strings are NULL or NUL-terminated; `engine` is a live engine; `plan_json` is valid for
/// a write.
#[no_mangle]
pub unsafe extern "C" fn whet_plan(
    engine: *const WhetEngine,
    recipe_toml: *const c_char,
    base_dir: *const c_char,
    memory_bytes: u64,
    plan_json: *mut *mut c_char,
) -> WhetStatus {
    guard(|| {
        needed(plan_json, "plan_json")?;
        // SAFETY: the caller's contract for each pointer.
        let engine = unsafe { engine.as_ref() }.ok_or_else(|| Failure::Argument("engine is NULL".into()))?;
        let recipe = unsafe { recipe_from(recipe_toml, base_dir) }?;
        let options = EngineOptions {
            adapter: Some(engine.engine.adapter_name().to_string()),
            max_memory_bytes: (memory_bytes > 0).then_some(memory_bytes),
            ..EngineOptions::default()
        };
        let p = plan::plan(&options, &recipe)?;
        let mut v = serde_json::to_value(&p).map_err(|e| Failure::Argument(e.to_string()))?;
        v["fits"] = p.fits().into();
        v["report"] = p.report().into();
        // SAFETY: checked non-NULL above.
        unsafe { put(plan_json, json_string(&v), "plan_json") }?;
        Ok(WhetStatus::Ok)
    })
}
