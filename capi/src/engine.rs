//! Engines and adapters.

use std::ffi::c_char;

use whet::{Engine, EngineOptions};

use crate::boundary::{free_box, guard, json_string, needed, optional_text, put, WhetStatus};

/// A GPU (or CPU rasteriser) opened for whet. Opaque.
pub struct WhetEngine {
    pub(crate) engine: Engine,
}

/// Open an engine on the best adapter (discrete > integrated > CPU), or on the first whose
/// name contains `adapter` (case-insensitive; NULL for the best). Free it with
/// `whet_engine_free`.
///
/// # Safety
/// `adapter` is NULL or a NUL-terminated string; `out` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn whet_engine_new(adapter: *const c_char, out: *mut *mut WhetEngine) -> WhetStatus {
    guard(|| {
        needed(out, "out")?;
        // SAFETY: the caller's contract.
        let adapter = unsafe { optional_text(adapter, "adapter") }?.map(str::to_string);
        // The C caller names the adapter itself: no environment variable chooses it.
        let options = EngineOptions { adapter, ..EngineOptions::default() };
        let engine = Engine::new(options)?;
        let handle = Box::into_raw(Box::new(WhetEngine { engine }));
        // SAFETY: checked non-NULL above.
        unsafe { put(out, handle, "out") }?;
        Ok(WhetStatus::Ok)
    })
}

/// Free an engine (NULL is ignored). Models opened on it stay usable.
///
/// # Safety
/// `engine` is NULL or from `whet_engine_new`, not freed before.
#[no_mangle]
pub unsafe extern "C" fn whet_engine_free(engine: *mut WhetEngine) {
    // SAFETY: the caller's contract.
    unsafe { free_box(engine) }
}

/// The adapters whet can use, best first, as a JSON array of `{"name", "backend",
/// "device_type", "preferred"}` (`preferred`: the one `whet_engine_new` opens when no name is
/// given); a name (or part of it) goes to `whet_engine_new`. Free with `whet_string_free`.
///
/// # Safety
/// `out` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn whet_adapters_json(out: *mut *mut c_char) -> WhetStatus {
    guard(|| {
        needed(out, "out")?;
        let list: Vec<serde_json::Value> = whet::Engine::adapters()
            .into_iter()
            .map(|a| {
                serde_json::json!({
                    "name": a.name,
                    "backend": a.backend,
                    "device_type": a.device_type,
                    "preferred": a.preferred,
                })
            })
            .collect();
        // SAFETY: checked non-NULL above.
        unsafe { put(out, json_string(&serde_json::Value::Array(list)), "out") }?;
        Ok(WhetStatus::Ok)
    })
}
