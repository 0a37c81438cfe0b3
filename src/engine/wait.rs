//! Every GPU wait, with a timeout (check G4), and the readbacks built on it.
//!
//! A wait that runs out of time returns [`Error::Timeout`] and leaves the submitted work
//! running: nothing is cancelled or lost, the engine stays usable, and a later wait (after
//! [`Engine::set_timeout`], say) sees the work finish. A readback whose wait failed drops its
//! staging buffer rather than parking it, since wgpu may still be mapping it.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::buffers::{self, Pooled};
use super::{lock, Engine, View};
use crate::error::{Error, Result};

impl Engine {
    /// The longest a single GPU wait may take before it fails with [`Error::Timeout`].
    pub fn timeout(&self) -> Duration {
        Duration::from_nanos(self.0.timeout_nanos.load(Ordering::Relaxed))
    }

    /// Change the wait timeout, e.g. to wait out work that an earlier, shorter wait gave up on.
    pub fn set_timeout(&self, timeout: Duration) {
        let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
        self.0.timeout_nanos.store(nanos, Ordering::Relaxed);
    }

    /// Block until `idx` (or everything submitted) has finished, at most the engine's timeout.
    /// The one place that waits on the device.
    pub(crate) fn wait(&self, idx: Option<wgpu::SubmissionIndex>) -> Result<()> {
        self.check_alive()?;
        let timeout = self.timeout();
        let r = self.0.device.poll(wgpu::PollType::Wait { submission_index: idx, timeout: Some(timeout) });
        match r {
            Ok(_) => self.check_health("wait"),
            Err(wgpu::PollError::Timeout) => Err(Error::Timeout(timeout)),
            // wgpu drops a submit on a device it considers lost; waiting for it then fails
            // with a wrong submission index. No later work will run either.
            Err(e) => {
                self.check_health("wait")?;
                let reason = format!("waiting for submitted work failed: {e}");
                self.0.health.record_loss(reason.clone());
                Err(Error::DeviceLost(reason))
            }
        }
    }

    /// Submit pending work and wait for all of it.
    pub fn sync(&self) -> Result<()> {
        let idx = self.submit_batch(None)?;
        self.wait(idx)
    }

    /// Copy the first `bytes` of a storage buffer back to the host (submits and waits).
    pub(crate) fn download(&self, src: View<'_>, bytes: u64) -> Result<Vec<u8>> {
        let pending = self.download_start(src, bytes)?;
        self.download_finish(pending)
    }

    /// Submit everything recorded so far followed by a copy of the first `bytes` of `src`
    /// into a staging buffer, and start mapping it, without waiting: the device goes on with
    /// what is submitted after it while the host does something else, then
    /// [`Engine::download_finish`] takes the bytes.
    pub(crate) fn download_start(&self, src: View<'_>, bytes: u64) -> Result<PendingRead> {
        self.check_alive()?;
        let mut p = PendingRead { bytes, size: 0, class: 0, staging: None, idx: None, rx: None };
        if self.is_dry() {
            return Ok(p);
        }
        if bytes == 0 {
            self.flush()?;
            return Ok(p);
        }
        p.size = bytes.div_ceil(4) * 4;
        p.class = buffers::size_class(p.size);
        let parked = lock(&self.0.staging).take(p.class);
        let staging = match parked {
            Some(s) => s,
            None => {
                let buffer = self.create_buffer_checked(
                    p.class,
                    wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    &"readback staging",
                )?;
                Pooled { id: lock(&self.0.staging).note_created(p.class), buffer }
            }
        };
        let submitted = self.submit_batch(Some((src.storage.buffer(), src.offset, &staging.buffer, p.size)));
        let idx = match submitted {
            Ok(idx) => idx,
            Err(e) => {
                lock(&self.0.staging).give(p.class, staging, true);
                return Err(e);
            }
        };
        let (tx, rx) = std::sync::mpsc::channel();
        staging.buffer.slice(0..p.size).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        (p.staging, p.idx, p.rx) = (Some(staging), idx, Some(rx));
        Ok(p)
    }

    /// Wait for a [`Engine::download_start`]ed readback and take its bytes.
    pub(crate) fn download_finish(&self, mut p: PendingRead) -> Result<Vec<u8>> {
        let (Some(staging), Some(rx)) = (p.staging.take(), p.rx.take()) else {
            return Ok(vec![0; p.bytes as usize]);
        };
        let result = self.read_mapped(&staging.buffer, p.idx.take(), &rx, p.size, p.bytes);
        let mut parking = lock(&self.0.staging);
        match result {
            Ok(_) => parking.give(p.class, staging, true),
            // Possibly still being mapped: reusing it would be a validation error.
            Err(_) => parking.forget(p.class),
        }
        result
    }

    fn read_mapped(
        &self,
        staging: &wgpu::Buffer,
        idx: Option<wgpu::SubmissionIndex>,
        rx: &std::sync::mpsc::Receiver<std::result::Result<(), wgpu::BufferAsyncError>>,
        size: u64,
        bytes: u64,
    ) -> Result<Vec<u8>> {
        self.wait(idx)?;
        let mapped = match rx.try_recv() {
            Ok(r) => r,
            Err(_) => {
                // The map callback fires during a poll; one more bounded wait.
                self.wait(None)?;
                rx.try_recv().map_err(|_| Error::Timeout(self.timeout()))?
            }
        };
        mapped.map_err(|e| Error::Gpu { context: "readback map".into(), message: e.to_string() })?;
        let slice = staging.slice(0..size);
        let out = slice
            .get_mapped_range()
            .map_err(|e| Error::Gpu { context: "readback map".into(), message: e.to_string() })?
            [..bytes as usize]
            .to_vec();
        staging.unmap();
        Ok(out)
    }
}

/// A readback on its way ([`Engine::download_start`]). Dropped without
/// [`Engine::download_finish`], its staging buffer is freed rather than parked (it may still
/// be mapping).
pub(crate) struct PendingRead {
    bytes: u64,
    size: u64,
    class: u64,
    staging: Option<Pooled>,
    idx: Option<wgpu::SubmissionIndex>,
    rx: Option<std::sync::mpsc::Receiver<std::result::Result<(), wgpu::BufferAsyncError>>>,
}
