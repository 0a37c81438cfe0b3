//! Shared by the GPU test files: one engine per test binary, one test on it at a time.

pub mod fixtures;

use std::sync::{Mutex, MutexGuard, OnceLock};

use whet::Engine;

/// The file's engine and a guard that serialises the tests using it (they share one device
/// queue, and their counters and timings should not interleave). `None`, after a loud line on
/// stderr, when the machine has no adapter.
pub fn gpu(file: &str, test: &str) -> Option<(MutexGuard<'static, ()>, Engine)> {
    static LOCK: Mutex<()> = Mutex::new(());
    static ENGINE: OnceLock<Option<Engine>> = OnceLock::new();
    let guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    match ENGINE.get_or_init(Engine::try_default) {
        Some(e) => Some((guard, e.clone())),
        None => {
            // Written to the stderr handle, not eprintln!: libtest captures eprintln! output of
            // passing tests, and a skip must be visible.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "!!!!!!!! {file}::{test}: NO GPU ADAPTER, GPU CHECKS SKIPPED !!!!!!!!"
            );
            None
        }
    }
}
