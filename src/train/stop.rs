//! Cooperative stopping, and the host's cancel handle. The driver polls a [`StopFlag`] after every optimizer step; whoever
//! wants the run to end (a signal handler, a UI, a test) sets it, and the driver finishes the
//! step, writes a final checkpoint and returns `StopReason::Interrupted`.
//!
//! The library installs no signal handler on its own (check C2): a binary opts in with
//! `StopFlag::install_signal_handlers` (the `signals` feature, part of `cli`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[cfg(feature = "signals")]
use crate::error::{Error, Result};

/// A shared "please stop" flag holding the signal number that asked (0 = not requested).
#[derive(Clone, Default)]
pub struct StopFlag(Arc<AtomicUsize>);

impl std::fmt::Debug for StopFlag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StopFlag({:?})", self.requested())
    }
}

impl StopFlag {
    pub fn new() -> StopFlag {
        StopFlag::default()
    }

    /// Ask the run to stop, on behalf of `signal` (e.g. 2 for SIGINT, 15 for SIGTERM; any
    /// positive number for a non-signal request).
    pub fn request(&self, signal: i32) {
        // 0 means "not requested", so a request always stores something non-zero.
        let v = if signal > 0 { signal as usize } else { usize::MAX };
        self.0.store(v, Ordering::SeqCst);
    }

    /// Ask the run to stop on behalf of the host (a "Cancel" button): the driver finishes the
    /// step, saves a checkpoint and returns `StopReason::Interrupted { signal: 0 }`. Safe from
    /// any thread and from the driver's own event callback.
    pub fn cancel(&self) {
        self.request(0)
    }

    /// The signal that asked to stop, if any.
    pub fn requested(&self) -> Option<i32> {
        match self.0.load(Ordering::SeqCst) {
            0 => None,
            usize::MAX => Some(0),
            v => Some(i32::try_from(v).unwrap_or(0)),
        }
    }

    /// Make SIGINT and SIGTERM set this flag (and do nothing else: the process keeps running
    /// until the driver has finished its step and saved). A second signal only sets the flag
    /// again, so it can never interrupt the save. (With the `signals` feature, part of `cli`.)
    #[cfg(feature = "signals")]
    pub fn install_signal_handlers(&self) -> Result<()> {
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register_usize(sig, self.0.clone(), sig as usize)
                .map_err(|e| Error::Unsupported(format!("installing a handler for signal {sig}: {e}")))?;
        }
        Ok(())
    }
}
