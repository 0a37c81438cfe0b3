//! Device health: a lost device and captured wgpu errors (checks G3, G5).
//!
//! wgpu reports a lost device through a callback, and after `Device::destroy` it accepts new
//! work silently and runs none of it (buffers come back invalid, submits are dropped, maps
//! fail). So the engine records the loss itself and every entry point (allocation, dispatch,
//! copy, upload, submit, readback, wait) checks one flag first: after a loss each call returns
//! [`Error::DeviceLost`] at once instead of recording work that never runs or waiting on it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::{lock, Engine};
use crate::error::{Error, Result};

/// What went wrong on a device, shared with wgpu's callbacks.
#[derive(Default)]
pub(super) struct Health {
    lost: AtomicBool,
    reason: Mutex<Option<String>>,
    /// wgpu errors no error scope caught (wgpu's default handler would panic on them).
    errors: Mutex<Vec<String>>,
}

impl Health {
    /// Remember the first loss; later reports keep the first reason.
    pub fn record_loss(&self, reason: String) {
        let mut r = lock(&self.reason);
        if r.is_none() {
            *r = Some(reason);
        }
        self.lost.store(true, Ordering::Release);
    }

    pub fn push_error(&self, message: String) {
        lock(&self.errors).push(message);
    }

    fn lost(&self) -> Option<Error> {
        if !self.lost.load(Ordering::Acquire) {
            return None;
        }
        let reason = lock(&self.reason).clone().unwrap_or_else(|| "reason unknown".into());
        Some(Error::DeviceLost(reason))
    }
}

/// Route wgpu's uncaptured errors and its device-lost callback into `health`.
pub(super) fn install(device: &wgpu::Device, health: &Arc<Health>) {
    let sink = health.clone();
    device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| sink.push_error(e.to_string())));
    let sink = health.clone();
    device.set_device_lost_callback(move |reason, msg| {
        // wgpu also calls this with `Destroyed` when the last handle to the device drops; by
        // then no engine is left to ask, so recording it is harmless.
        sink.record_loss(format!("{reason:?}: {msg}"));
    });
}

impl Engine {
    /// [`Error::DeviceLost`] once the device is lost; a load and a branch otherwise, so every
    /// op can afford it.
    pub(crate) fn check_alive(&self) -> Result<()> {
        match self.0.health.lost() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Fails fast once the device is lost or a wgpu error was captured.
    pub(crate) fn check_health(&self, context: &str) -> Result<()> {
        self.check_alive()?;
        let mut errs = lock(&self.0.health.errors);
        if !errs.is_empty() {
            let message = errs.join("; ");
            errs.clear();
            self.0.poisoned.store(true, Ordering::Relaxed);
            return Err(Error::Gpu { context: context.to_string(), message });
        }
        Ok(())
    }

    /// Whether the device has been lost (every later call returns [`Error::DeviceLost`]).
    pub fn is_lost(&self) -> bool {
        self.0.health.lost.load(Ordering::Acquire)
    }

    /// Destroy the device as a driver reset would, for tests of what happens next (check G3).
    /// Every later call on this engine (and its tensors) returns [`Error::DeviceLost`].
    #[doc(hidden)]
    pub fn simulate_device_loss(&self) {
        self.0.health.record_loss("the device was destroyed (Engine::simulate_device_loss)".into());
        self.0.device.destroy();
    }
}
