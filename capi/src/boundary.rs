//! What every exported function does at the edge: catch panics, turn a `whet::Error` into a
//! status code plus a per-thread message, read C strings and hand strings back.

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// What a whet function returns.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhetStatus {
    Ok = 0,
    /// Any other failure: the message is in `whet_last_error()`.
    Error = 1,
    /// A NULL pointer, a string that is not UTF-8, or a value out of range.
    InvalidArgument = 2,
    /// Training stopped on request (cancel handle or callback); a checkpoint was saved and
    /// the result is filled in. Training the same recipe again continues the run.
    Cancelled = 3,
    /// whet panicked (a bug): nothing unwound into the caller, the handle may be unusable.
    Panic = 4,
    /// The device ran out of memory: a smaller batch or model may fit.
    OutOfMemory = 5,
    /// The GPU device was lost: free the engine and create a new one.
    DeviceLost = 6,
    /// The output folder holds another run: use another folder, or `output.resume = false`.
    RunMismatch = 7,
    /// A data, recipe or weight file is missing, unreadable or malformed (the message names
    /// its path, and its line when it has lines).
    BadInputFile = 8,
}

thread_local! {
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

fn set_last_error(message: &str) {
    // An interior NUL would end the C string early; the message is for people, so replace it.
    let c = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = Some(c));
}

/// The message of the last failed whet call on this thread, or NULL when none failed. The
/// pointer stays valid until the next whet call on this thread; do not free it.
#[no_mangle]
pub extern "C" fn whet_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ref().map_or(std::ptr::null(), |c| c.as_ptr()))
}

/// Free a string returned by whet (NULL is ignored).
///
/// # Safety
/// `s` is NULL or a string from a whet function, not freed before.
#[no_mangle]
pub unsafe extern "C" fn whet_string_free(s: *mut c_char) {
    let _ = catch_unwind(|| {
        if !s.is_null() {
            // SAFETY: the caller hands back a pointer whet made with `CString::into_raw`.
            drop(unsafe { CString::from_raw(s) });
        }
    });
}

/// Drop a handle whet made with `Box::into_raw` (NULL is ignored), never unwinding into C.
///
/// # Safety
/// `p` is NULL or from `Box::into_raw(Box<T>)`, not freed before.
pub(crate) unsafe fn free_box<T>(p: *mut T) {
    // A panic in a destructor is dropped here: the handle is gone either way.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if !p.is_null() {
            // SAFETY: the caller's contract.
            drop(unsafe { Box::from_raw(p) });
        }
    }));
}

/// Why a call failed, before it becomes a status.
pub(crate) enum Failure {
    Whet(whet::Error),
    Argument(String),
}

impl From<whet::Error> for Failure {
    fn from(e: whet::Error) -> Failure {
        Failure::Whet(e)
    }
}

pub(crate) type Outcome<T = WhetStatus> = std::result::Result<T, Failure>;

/// The status a host can act on for `e`.
fn status_of(e: &whet::Error) -> WhetStatus {
    use whet::Error as E;
    match e {
        E::OutOfMemory { .. } | E::BatchTooBig { .. } | E::BufferTooBig { .. } | E::DoesNotFit { .. } => {
            WhetStatus::OutOfMemory
        }
        E::DeviceLost(_) => WhetStatus::DeviceLost,
        E::RunMismatch { .. } | E::RunExists { .. } | E::RunLocked { .. } | E::CheckpointVersion { .. } => {
            WhetStatus::RunMismatch
        }
        E::Format { .. } | E::Binding(_) | E::Io { .. } => WhetStatus::BadInputFile,
        _ => WhetStatus::Error,
    }
}

/// Run `body` as an exported function's body: panics are caught, failures recorded for
/// `whet_last_error` and mapped to a status.
pub(crate) fn guard(body: impl FnOnce() -> Outcome) -> WhetStatus {
    LAST_ERROR.with(|e| *e.borrow_mut() = None);
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(status)) => status,
        Ok(Err(Failure::Whet(e))) => {
            set_last_error(&e.to_string());
            status_of(&e)
        }
        Ok(Err(Failure::Argument(m))) => {
            set_last_error(&m);
            WhetStatus::InvalidArgument
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            set_last_error(&format!("whet panicked (a bug, please report it): {what}"));
            WhetStatus::Panic
        }
    }
}

/// A required UTF-8 string argument.
///
/// # Safety
/// `s` is NULL or a NUL-terminated string that outlives the call.
pub(crate) unsafe fn text<'a>(s: *const c_char, name: &str) -> Outcome<&'a str> {
    if s.is_null() {
        return Err(Failure::Argument(format!("{name} is NULL")));
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's contract.
    unsafe { CStr::from_ptr(s) }.to_str().map_err(|_| Failure::Argument(format!("{name} is not UTF-8")))
}

/// An optional UTF-8 string argument (NULL = none).
///
/// # Safety
/// As [`text`].
pub(crate) unsafe fn optional_text<'a>(s: *const c_char, name: &str) -> Outcome<Option<&'a str>> {
    if s.is_null() {
        Ok(None)
    } else {
        // SAFETY: forwarded contract.
        unsafe { text(s, name) }.map(Some)
    }
}

/// Store `value` through a required out-pointer.
///
/// # Safety
/// `out` is NULL or valid for a write of `T`.
pub(crate) unsafe fn put<T>(out: *mut T, value: T, name: &str) -> Outcome<()> {
    if out.is_null() {
        return Err(Failure::Argument(format!("{name} is NULL")));
    }
    // SAFETY: non-NULL and writable by the caller's contract.
    unsafe { out.write(value) };
    Ok(())
}

/// Check an out-pointer before any work is done, so a NULL one does not waste a training run.
pub(crate) fn needed<T>(out: *mut T, name: &str) -> Outcome<()> {
    if out.is_null() {
        Err(Failure::Argument(format!("{name} is NULL")))
    } else {
        Ok(())
    }
}

/// A JSON value as a string the caller frees with `whet_string_free`.
pub(crate) fn json_string(v: &serde_json::Value) -> *mut c_char {
    // serde_json escapes control characters, so the text holds no NUL.
    CString::new(v.to_string()).unwrap_or_default().into_raw()
}
