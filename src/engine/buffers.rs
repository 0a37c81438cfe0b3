//! Size-class buffer pool.
//!
//! Training allocates the same shapes every step; re-creating buffers would cost a driver call
//! and (on real GPUs) a page-table update each time. Buffers are rounded up to a size class and
//! returned to the pool when the last tensor using them drops. Reuse is safe without waiting for
//! the GPU because every dispatch is recorded in program order on one queue and wgpu inserts a
//! barrier between two read-write uses of a buffer.
//!
//! Every buffer carries an id that is never reused, so a bind group cached under the ids it
//! names (`bind_cache.rs`) can never be mistaken for one over a newer buffer. Which parked
//! buffer is handed out depends only on which buffers are parked, not on the order they came
//! back between steps (`insert_sorted`): a warm step then gets the same buffers as the step
//! before and finds its bind groups cached.

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

/// A pooled buffer and its id (unique for the engine's life).
pub struct Pooled {
    pub id: u64,
    pub buffer: wgpu::Buffer,
}

/// Free buffers by size class.
#[derive(Default)]
pub struct BufferPool {
    /// Released before the last submit: no recorded-but-unsubmitted dispatch uses them, so a
    /// host write (`queue.write_buffer`, which runs before the next submit's commands) is safe.
    free: HashMap<u64, Vec<Pooled>>,
    /// Released since the last submit: pending dispatches may still read them. Reusing them as
    /// op outputs is safe (the GPU runs dispatches in order), as host-write targets it is not.
    recent: HashMap<u64, Vec<Pooled>>,
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
    pub fn take(&mut self, class: u64) -> Option<Pooled> {
        let b = match self.recent.get_mut(&class).and_then(|v| v.pop()) {
            Some(b) => b,
            None => self.free.get_mut(&class)?.pop()?,
        };
        self.pooled -= class;
        self.note_out(class);
        Some(b)
    }

    /// Take a buffer that no pending dispatch uses (a safe target for a host write).
    pub fn take_clean(&mut self, class: u64) -> Option<Pooled> {
        let b = self.free.get_mut(&class)?.pop()?;
        self.pooled -= class;
        self.note_out(class);
        Some(b)
    }

    /// Account for a freshly created buffer; returns its id.
    pub fn note_created(&mut self, class: u64) -> u64 {
        self.created += 1;
        self.note_out(class);
        // Ids start at 1 and count creations: never reused while the pool lives.
        self.created
    }

    fn note_out(&mut self, class: u64) {
        self.in_use += class;
        self.peak = self.peak.max(self.in_use);
    }

    /// Return a buffer to the pool; `clean` when no recorded-but-unsubmitted work uses it
    /// (nothing is recorded), so it is a safe host-write target at once. Within a step,
    /// releases are reused last-in first-out (the buffer freed last is the one still in the
    /// CPU adapter's caches); what is parked clean between steps is kept sorted by id, so the
    /// next step does not depend on the order the previous one's tensors were dropped in.
    pub fn give(&mut self, class: u64, buf: Pooled, clean: bool) {
        self.in_use -= class;
        self.pooled += class;
        if clean {
            insert_sorted(self.free.entry(class).or_default(), buf);
        } else {
            self.recent.entry(class).or_default().push(buf);
        }
    }

    /// A buffer handed out is dropped instead of returned (one wgpu may still be mapping).
    pub fn forget(&mut self, class: u64) {
        self.in_use -= class;
    }

    /// Everything recorded so far was submitted: recent releases become clean.
    pub fn settle(&mut self) {
        for (class, bufs) in self.recent.drain() {
            let free = self.free.entry(class).or_default();
            for b in bufs {
                insert_sorted(free, b);
            }
        }
    }

    /// Drop every parked buffer (frees device memory; used on out-of-memory before a retry)
    /// and return their ids, whose cached bind groups must go too or they keep the memory.
    /// wgpu keeps a buffer that recorded work still uses alive until that work is done.
    pub fn trim(&mut self) -> Vec<u64> {
        let ids = self.free.values().chain(self.recent.values()).flatten().map(|p| p.id).collect();
        self.free.clear();
        self.recent.clear();
        self.pooled = 0;
        ids
    }
}

/// Clean buffers are kept sorted by id and taken from the end (the newest buffer first), so
/// which one is taken depends on which are parked, not on the order they came back in:
/// tensors are freed in hash-map order in places (a dropped `GradStore`), and a step must see
/// the same buffers as the step before for its bind groups to be cached.
fn insert_sorted(v: &mut Vec<Pooled>, p: Pooled) {
    let at = v.partition_point(|q| q.id < p.id);
    v.insert(at, p);
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
