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
