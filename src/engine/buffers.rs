//! Size-class buffer pool.
//!
//! Training allocates the same shapes every step; re-creating buffers would cost a driver call
//! and (on real GPUs) a page-table update each time. Buffers are rounded up to a size class and
//! returned to the pool when the last tensor using them drops. Reuse is safe without waiting for
//! the GPU because every dispatch is recorded in program order on one queue and wgpu inserts a
//! barrier between two read-write uses of a buffer.

use std::collections::HashMap;

/// Smallest allocation: also keeps 0-element tensors bindable (a binding may not be empty).
pub const MIN_BYTES: u64 = 256;

/// Round `bytes` up to the pool's size class: powers of two and 1.5x powers of two, so at most
/// a third of an allocation is slack.
pub fn size_class(bytes: u64) -> u64 {
    let b = bytes.max(MIN_BYTES);
    let p = b.next_power_of_two();
    let three_quarters = p / 4 * 3;
    if b <= three_quarters {
        three_quarters
    } else {
        p
    }
}

/// Free buffers by size class.
#[derive(Default)]
pub struct BufferPool {
    /// Released before the last submit: no recorded-but-unsubmitted dispatch uses them, so a
    /// host write (`queue.write_buffer`, which runs before the next submit's commands) is safe.
    free: HashMap<u64, Vec<wgpu::Buffer>>,
    /// Released since the last submit: pending dispatches may still read them. Reusing them as
    /// op outputs is safe (the GPU runs dispatches in order), as host-write targets it is not.
    recent: HashMap<u64, Vec<wgpu::Buffer>>,
    /// Bytes currently handed out to tensors.
    pub in_use: u64,
    /// High-water mark of `in_use`.
    pub peak: u64,
    /// Bytes parked in the pool.
    pub pooled: u64,
    /// Number of `create_buffer` calls made (a test asserts a training step makes none once warm).
    pub created: u64,
}

impl BufferPool {
    /// Take a free buffer of this class, if any.
    pub fn take(&mut self, class: u64) -> Option<wgpu::Buffer> {
        let b = match self.recent.get_mut(&class).and_then(|v| v.pop()) {
            Some(b) => b,
            None => self.free.get_mut(&class)?.pop()?,
        };
        self.pooled -= class;
        self.note_out(class);
        Some(b)
    }

    /// Take a buffer that no pending dispatch uses (a safe target for a host write).
    pub fn take_clean(&mut self, class: u64) -> Option<wgpu::Buffer> {
        let b = self.free.get_mut(&class)?.pop()?;
        self.pooled -= class;
        self.note_out(class);
        Some(b)
    }

    /// Account for a freshly created buffer.
    pub fn note_created(&mut self, class: u64) {
        self.created += 1;
        self.note_out(class);
    }

    fn note_out(&mut self, class: u64) {
        self.in_use += class;
        self.peak = self.peak.max(self.in_use);
    }

    /// Return a buffer to the pool.
    pub fn give(&mut self, class: u64, buf: wgpu::Buffer) {
        self.in_use -= class;
        self.pooled += class;
        self.recent.entry(class).or_default().push(buf);
    }

    /// A buffer handed out is dropped instead of returned (one wgpu may still be mapping).
    pub fn forget(&mut self, class: u64) {
        self.in_use -= class;
    }

    /// Everything recorded so far was submitted: recent releases become clean.
    pub fn settle(&mut self) {
        for (class, mut bufs) in self.recent.drain() {
            self.free.entry(class).or_default().append(&mut bufs);
        }
    }

    /// Drop every parked buffer (frees device memory; used on out-of-memory before a retry).
    /// wgpu keeps a buffer that recorded work still uses alive until that work is done.
    pub fn trim(&mut self) {
        self.free.clear();
        self.recent.clear();
        self.pooled = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::size_class;

    #[test]
    fn size_classes_cover_and_bound_slack() {
        for b in [0u64, 1, 255, 256, 257, 383, 384, 385, 1000, 4096, 4097, 1 << 30] {
            let c = size_class(b);
            assert!(c >= b && c >= 256, "{b} -> {c}");
            assert!(c < 2 * b.max(256), "{b} -> {c}");
        }
        assert_eq!(size_class(300), 384);
        assert_eq!(size_class(400), 512);
    }
}
