//! Using a finished run: load its folder, classify texts (or image files), evaluate it again.

use std::ffi::c_char;
use std::path::{Path, PathBuf};

use whet::run::inference::{self, Trained};
use whet::run::prepare;

use crate::boundary::{free_box, guard, json_string, needed, put, text, Failure, WhetStatus};
use crate::engine::WhetEngine;

/// A fine-tuned model loaded from a run folder. Opaque.
pub struct WhetModel {
    trained: Trained,
}

/// Load the run folder `run_dir` (what `whet_train` wrote: `model/`, `recipe.toml`,
/// `labels.json`). Free with `whet_model_free`.
///
/// # Safety
/// `engine` is a live engine, `run_dir` a NUL-terminated string, `out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn whet_model_open(
    engine: *const WhetEngine,
    run_dir: *const c_char,
    out: *mut *mut WhetModel,
) -> WhetStatus {
    guard(|| {
        needed(out, "out")?;
        // SAFETY: the caller's contract.
        let engine = unsafe { engine.as_ref() }.ok_or_else(|| Failure::Argument("engine is NULL".into()))?;
        let dir = unsafe { text(run_dir, "run_dir") }?;
        let trained = Trained::open(&engine.engine, Path::new(dir))?;
        let handle = Box::into_raw(Box::new(WhetModel { trained }));
        // SAFETY: checked non-NULL above.
        unsafe { put(out, handle, "out") }?;
        Ok(WhetStatus::Ok)
    })
}

/// Free a model (NULL is ignored).
///
/// # Safety
/// `model` is NULL or from `whet_model_open`, not freed before.
#[no_mangle]
pub unsafe extern "C" fn whet_model_free(model: *mut WhetModel) {
    // SAFETY: the caller's contract.
    unsafe { free_box(model) }
}

/// Classify `count` inputs: texts for a text classifier, image file paths for an image
/// classifier. `predictions_json` receives one object per input, in order:
/// `{"label": "spam", "probability": 0.97, "probabilities": [{"label": "spam",
/// "probability": 0.97}, {"label": "ham", "probability": 0.03}]}` (most likely first). Free
/// with `whet_string_free`.
///
/// # Safety
/// `model` is a live model; `inputs` points to `count` NUL-terminated strings;
/// `predictions_json` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn whet_model_predict(
    model: *const WhetModel,
    inputs: *const *const c_char,
    count: usize,
    predictions_json: *mut *mut c_char,
) -> WhetStatus {
    guard(|| {
        needed(predictions_json, "predictions_json")?;
        // SAFETY: the caller's contract.
        let model = unsafe { model.as_ref() }.ok_or_else(|| Failure::Argument("model is NULL".into()))?;
        if inputs.is_null() && count > 0 {
            return Err(Failure::Argument("inputs is NULL".into()));
        }
        let mut items = Vec::with_capacity(count);
        for i in 0..count {
            // SAFETY: `inputs` holds `count` pointers.
            let s = unsafe { *inputs.add(i) };
            items.push(unsafe { text(s, &format!("inputs[{i}]")) }?.to_string());
        }
        let t = &model.trained;
        let ranked = if t.spec.is_some() {
            t.classify_images(&items.iter().map(PathBuf::from).collect::<Vec<_>>())?
        } else {
            t.classify_texts(&items)?
        };
        let rows: Vec<serde_json::Value> = ranked
            .iter()
            .map(|r| {
                let all: Vec<_> =
                    r.iter().map(|(l, p)| serde_json::json!({"label": l, "probability": p})).collect();
                let (label, p) = r.first().map_or(("", 0.0), |(l, p)| (l.as_str(), *p));
                serde_json::json!({"label": label, "probability": p, "probabilities": all})
            })
            .collect();
        // SAFETY: checked non-NULL above.
        unsafe { put(predictions_json, json_string(&serde_json::Value::Array(rows)), "predictions_json") }?;
        Ok(WhetStatus::Ok)
    })
}

/// Evaluate the run folder `run_dir` again on its recipe's held-out split, with `bootstrap`
/// resamples for the 95% intervals (at least 1000). `evaluation_json` receives `{"split",
/// "items", "metrics": {"accuracy": {"point", "lo", "hi"}, ...}}`. Free with
/// `whet_string_free`.
///
/// # Safety
/// `engine` is a live engine, `run_dir` a NUL-terminated string, `evaluation_json` valid for
/// a write.
#[no_mangle]
pub unsafe extern "C" fn whet_evaluate(
    engine: *const WhetEngine,
    run_dir: *const c_char,
    bootstrap: usize,
    evaluation_json: *mut *mut c_char,
) -> WhetStatus {
    guard(|| {
        needed(evaluation_json, "evaluation_json")?;
        // SAFETY: the caller's contract.
        let engine = unsafe { engine.as_ref() }.ok_or_else(|| Failure::Argument("engine is NULL".into()))?;
        let dir = unsafe { text(run_dir, "run_dir") }?;
        if bootstrap < whet::eval::MIN_RESAMPLES {
            return Err(Failure::Argument(format!(
                "bootstrap is {bootstrap}, at least {} needed",
                whet::eval::MIN_RESAMPLES
            )));
        }
        let recipe = inference::run_recipe(Path::new(dir))?;
        let mut prep = prepare::prepare(&engine.engine, &recipe, false)?;
        let e = prep.test_evaluation("eval", bootstrap, recipe.train.seed)?.ok_or_else(|| {
            Failure::Whet(whet::Error::arg("eval", "the recipe has no held-out items to evaluate"))
        })?;
        let v =
            serde_json::to_value(&e).map_err(|e| Failure::Whet(whet::Error::arg("eval", e.to_string())))?;
        // SAFETY: checked non-NULL above.
        unsafe { put(evaluation_json, json_string(&v), "evaluation_json") }?;
        Ok(WhetStatus::Ok)
    })
}
