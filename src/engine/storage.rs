//! Device buffers as tensors hold them ([`Storage`]) and as dispatches bind them ([`Binding`]).

use std::sync::Weak;

use super::buffers::Pooled;
use super::{lock, EngineInner};

/// One storage binding of a dispatch.
pub(crate) struct Binding<'a> {
    pub buffer: &'a wgpu::Buffer,
    /// The buffer's pool id: the bind-group cache's key, never reused for another buffer.
    pub id: u64,
    /// Byte offset of the tensor in its buffer (a multiple of the adapter's storage offset
    /// alignment; 0 except for views into a parameter arena).
    pub offset: u64,
    /// Bytes visible to the shader (> 0, a multiple of 4).
    pub size: u64,
    pub read_only: bool,
}

impl<'a> Binding<'a> {
    pub fn read(v: View<'a>, bytes: u64) -> Self {
        Self::new(v, bytes, true)
    }
    pub fn write(v: View<'a>, bytes: u64) -> Self {
        Self::new(v, bytes, false)
    }
    fn new(v: View<'a>, bytes: u64, read_only: bool) -> Self {
        let (buffer, id) = (v.storage.buffer(), v.storage.id);
        Binding { buffer, id, offset: v.offset, size: bind_size(bytes), read_only }
    }
}

/// Where a tensor's data starts: its storage and a byte offset into it.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    pub storage: &'a Storage,
    pub offset: u64,
}

/// Bindings may not be empty: a 0-byte tensor binds 16 bytes of its (>= 256-byte) buffer.
fn bind_size(bytes: u64) -> u64 {
    bytes.max(16).div_ceil(16) * 16
}

/// A device buffer owned by one or more tensors; returns to the pool on drop.
pub struct Storage {
    pub(super) buffer: Option<wgpu::Buffer>,
    pub(super) id: u64,
    pub(super) class: u64,
    pub(super) engine: Weak<EngineInner>,
}

impl Storage {
    pub(crate) fn buffer(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("storage buffer present until drop")
    }
    /// Capacity in bytes (the size class).
    pub fn capacity(&self) -> u64 {
        self.class
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        if let (Some(buffer), Some(engine)) = (self.buffer.take(), self.engine.upgrade()) {
            // The last owner is dropping it, so no later dispatch can record a use: with
            // nothing recorded now, no pending work reads it.
            let clean = lock(&engine.batch).is_empty();
            lock(&engine.pool).give(self.class, Pooled { id: self.id, buffer }, clean);
        }
    }
}
