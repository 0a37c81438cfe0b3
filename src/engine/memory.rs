//! Device memory: what can never fit (check G1), what does not fit now (check G2), and the
//! pooled allocation between them.
//!
//! A buffer past the binding or buffer limit is refused before any GPU call with
//! [`Error::BufferTooBig`], naming the op and shape that asked for it; the driver splits a
//! training batch on it (see `train::micro_batch`). Running out of memory is
//! [`Error::OutOfMemory`]: from the engine's own cap (`EngineOptions::max_memory_bytes`, checked
//! against its accounting, as PyTorch's per-process memory fraction is) or from the driver
//! (a wgpu error scope with the out-of-memory filter). Either way the pool's parked buffers
//! are freed and the allocation tried once more first, and the engine stays usable.

use std::fmt::Display;
use std::sync::Arc;

use super::buffers::{self, Pooled};
use super::{lock, Engine, EngineOptions, Storage, View};
use crate::error::{Error, Result};

/// Limits the engine enforces below the adapter's own.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Caps {
    /// Bytes per storage binding (already applied to the engine's `limits`).
    pub binding: Option<u64>,
    /// Bytes of storage buffers in use plus parked in the pool.
    pub memory: Option<u64>,
}

/// Smallest binding cap accepted: an optimizer arena page must hold one aligned slot.
pub(super) const MIN_BINDING_CAP: u64 = 4096;

/// The engine's own caps from `options`, applied to `limits` (which the engine then enforces
/// and reports; the device itself is opened with the adapter's limits).
pub(super) fn caps(options: &EngineOptions, limits: &mut wgpu::Limits) -> Result<Caps> {
    if let Some(b) = options.max_binding_bytes {
        if b < MIN_BINDING_CAP {
            return Err(Error::arg(
                "engine",
                format!("max_binding_bytes {b} is below the minimum {}", MIN_BINDING_CAP),
            ));
        }
    }
    let binding = options.max_binding_bytes.filter(|&b| b < limits.max_storage_buffer_binding_size);
    if let Some(b) = binding {
        limits.max_storage_buffer_binding_size = b;
    }
    Ok(Caps { binding, memory: options.max_memory_bytes })
}

impl Engine {
    /// Allocate a storage buffer of at least `bytes`, from the pool when possible. `what`
    /// (op and shape) is only formatted for an error or a new buffer's label.
    pub(crate) fn alloc(&self, bytes: u64, what: impl Display) -> Result<Arc<Storage>> {
        self.storage(bytes, false, &what)
    }

    /// A pooled (or new) storage buffer of at least `bytes`; `clean` asks for one that no
    /// pending dispatch uses (see `BufferPool::take_clean`).
    fn storage(&self, bytes: u64, clean: bool, what: &dyn Display) -> Result<Arc<Storage>> {
        self.check_alive()?;
        self.check_fits(bytes, what)?;
        let class = buffers::size_class(bytes);
        let parked = {
            let mut pool = lock(&self.0.pool);
            if clean {
                pool.take_clean(class)
            } else {
                pool.take(class)
            }
        };
        let Pooled { id, buffer } = match parked {
            Some(p) => p,
            None => {
                self.reserve(class, what)?;
                let usage =
                    wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
                let buffer = self.create_buffer_checked(class, usage, what)?;
                Pooled { id: lock(&self.0.pool).note_created(class), buffer }
            }
        };
        Ok(Arc::new(Storage { buffer: Some(buffer), id, class, engine: Arc::downgrade(&self.0) }))
    }

    /// G1: refuse what can never fit before any GPU call.
    pub(crate) fn check_fits(&self, bytes: u64, what: &dyn Display) -> Result<()> {
        let l = &self.0.limits;
        let too_big = |limit: u64, limit_name: &'static str| Error::BufferTooBig {
            what: what.to_string(),
            bytes,
            limit,
            limit_name,
        };
        if bytes > l.max_buffer_size {
            return Err(too_big(l.max_buffer_size, "buffer (max_buffer_size)"));
        }
        let bind = l.max_storage_buffer_binding_size;
        if bytes > bind {
            let name = if self.0.caps.binding == Some(bind) {
                "storage binding (EngineOptions::max_binding_bytes)"
            } else {
                "storage binding (max_storage_buffer_binding_size)"
            };
            return Err(too_big(bind, name));
        }
        Ok(())
    }

    /// G2 under the engine's own cap: room for a new buffer of `class` bytes, freeing parked
    /// buffers when that makes room.
    fn reserve(&self, class: u64, what: &dyn Display) -> Result<()> {
        let Some(cap) = self.0.caps.memory else { return Ok(()) };
        let over = |pool: &buffers::BufferPool| pool.in_use + pool.pooled + class > cap;
        if over(&lock(&self.0.pool)) {
            self.trim_pool();
        }
        let pool = lock(&self.0.pool);
        if over(&pool) {
            return Err(Error::OutOfMemory {
                what: what.to_string(),
                bytes: class,
                in_use: pool.in_use,
                limit: Some(cap),
            });
        }
        Ok(())
    }

    pub(super) fn create_buffer_checked(
        &self,
        size: u64,
        usage: wgpu::BufferUsages,
        what: &dyn Display,
    ) -> Result<wgpu::Buffer> {
        if let Some(stand_in) = &self.0.dry {
            return Ok(stand_in.clone());
        }
        let label = what.to_string();
        let attempt = || {
            let scope = self.0.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
            let buffer = self.0.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(&label),
                size,
                usage,
                mapped_at_creation: false,
            });
            pollster::block_on(scope.pop()).is_none().then_some(buffer)
        };
        if let Some(b) = attempt() {
            return Ok(b);
        }
        // Free what the pool holds and try once more before giving up (wgpu's out-of-memory
        // on buffer creation does not lose the device, so the engine stays usable).
        self.trim_pool();
        attempt().ok_or_else(|| Error::OutOfMemory {
            what: label.clone(),
            bytes: size,
            in_use: lock(&self.0.pool).in_use,
            limit: None,
        })
    }

    /// A new storage buffer holding `bytes`. The buffer is one no pending dispatch uses, so the
    /// write (which wgpu runs before the next submit's commands) cannot overtake recorded work
    /// and no submit is needed: uploading a batch mid-step keeps the step in one command buffer.
    pub(crate) fn upload_new(&self, bytes: &[u8], capacity: u64, what: impl Display) -> Result<Arc<Storage>> {
        let storage = self.storage(capacity, true, &what)?;
        if !bytes.is_empty() && !self.is_dry() {
            let len = bytes.len() as u64;
            if len.is_multiple_of(4) {
                self.0.queue.write_buffer(storage.buffer(), 0, bytes);
            } else {
                let mut padded = bytes.to_vec();
                padded.resize(len.div_ceil(4) as usize * 4, 0);
                self.0.queue.write_buffer(storage.buffer(), 0, &padded);
            }
        }
        Ok(storage)
    }

    /// Overwrite `bytes.len()` bytes (a multiple of 4) of an existing buffer at `dst`. What was
    /// recorded before is submitted first, so the write lands after it and before anything
    /// recorded later (the data-parallel gradient all-reduce writes the summed pages back).
    pub(crate) fn write_into(&self, dst: View<'_>, bytes: &[u8]) -> Result<()> {
        if !(bytes.len().is_multiple_of(4) && dst.offset.is_multiple_of(4)) {
            return Err(crate::Error::arg("write", "bytes and offset must be multiples of 4"));
        }
        if bytes.is_empty() || self.is_dry() {
            return Ok(());
        }
        self.flush()?;
        self.0.queue.write_buffer(dst.storage.buffer(), dst.offset, bytes);
        Ok(())
    }
}
