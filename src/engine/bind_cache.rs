//! Bind groups cached by what they bind, so a warm training step creates none.
//!
//! Creating a bind group is a driver call per dispatch (on lavapipe a descriptor-set
//! allocation and write); a training step repeats the same dispatches over the same pooled
//! buffers every step. A group is keyed by its storage bindings — buffer id, offset, size and
//! access — which also fixes its layout (layouts are cached by access pattern). Buffer ids are
//! never reused (see `buffers.rs`), so a key cannot match a newer buffer; and when the pool
//! frees buffers, the groups naming them go, since a cached group would keep their memory.
//!
//! The cache is bounded with two generations: lookups fill the current one; when it reaches
//! half the capacity it becomes the previous one, and groups found there move back. A working
//! set under half the capacity thus stays cached, and anything unused for a generation goes.

use std::collections::{HashMap, HashSet};

use super::{Binding, Engine, UNIFORM_SLOT};

/// Groups kept at most (both generations); a large transformer step binds a few thousand.
pub(super) const CAPACITY: usize = 16384;

/// Per binding: buffer id, byte offset, and size with the access in its low bit.
const WORDS_PER_BINDING: usize = 3;

/// The key of a dispatch's storage bindings (the uniform binding is the same for all).
pub(super) fn key(bindings: &[Binding<'_>]) -> Vec<u64> {
    let mut k = Vec::with_capacity(bindings.len() * WORDS_PER_BINDING);
    for b in bindings {
        k.extend_from_slice(&[b.id, b.offset, b.size << 1 | b.read_only as u64]);
    }
    k
}

/// A two-generation cache of values keyed by binding keys (generic so tests need no device).
pub(super) struct BindCache<V> {
    current: HashMap<Vec<u64>, V>,
    previous: HashMap<Vec<u64>, V>,
    capacity: usize,
    /// Groups made since the engine was made.
    pub created: u64,
    /// Dispatches that found their group cached.
    pub hits: u64,
}

impl<V: Clone> BindCache<V> {
    pub fn new(capacity: usize) -> Self {
        BindCache {
            current: HashMap::new(),
            previous: HashMap::new(),
            capacity: capacity.max(2),
            created: 0,
            hits: 0,
        }
    }

    /// The value under `key`, made by `make` when absent.
    pub fn get_or_make(&mut self, key: Vec<u64>, make: impl FnOnce() -> V) -> V {
        if let Some(v) = self.current.get(&key) {
            self.hits += 1;
            return v.clone();
        }
        let v = match self.previous.remove(&key) {
            Some(v) => {
                self.hits += 1;
                v
            }
            None => {
                self.created += 1;
                make()
            }
        };
        if self.current.len() >= self.capacity / 2 {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(key, v.clone());
        v
    }

    /// Drop every value whose key names one of `ids`.
    pub fn evict(&mut self, ids: &[u64]) {
        if ids.is_empty() {
            return;
        }
        let gone: HashSet<u64> = ids.iter().copied().collect();
        let keep = |k: &Vec<u64>, _: &mut V| !k.chunks(WORDS_PER_BINDING).any(|b| gone.contains(&b[0]));
        self.current.retain(keep);
        self.previous.retain(keep);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }
}

impl Engine {
    /// The bind group for `bindings` under layout `bgl`, from the cache when it was made before.
    pub(super) fn bind_group(
        &self,
        bgl: &wgpu::BindGroupLayout,
        bindings: &[Binding<'_>],
    ) -> wgpu::BindGroup {
        super::lock(&self.0.binds).get_or_make(key(bindings), || self.make_bind_group(bgl, bindings))
    }

    fn make_bind_group(&self, bgl: &wgpu::BindGroupLayout, bindings: &[Binding<'_>]) -> wgpu::BindGroup {
        let buffer = |binding: u32, buffer, offset, size| wgpu::BindGroupEntry {
            binding,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer,
                offset,
                size: std::num::NonZeroU64::new(size),
            }),
        };
        let mut entries = Vec::with_capacity(bindings.len() + 1);
        entries.push(buffer(0, &self.0.ring, 0, UNIFORM_SLOT));
        for (i, b) in bindings.iter().enumerate() {
            entries.push(buffer(i as u32 + 1, b.buffer, b.offset, b.size));
        }
        self.0.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: bgl,
            entries: &entries,
        })
    }

    /// Free the pool's parked buffers and the cached bind groups that name them.
    pub(super) fn trim_pool(&self) {
        let ids = super::lock(&self.0.pool).trim();
        super::lock(&self.0.binds).evict(&ids);
    }
}

#[cfg(test)]
mod tests {
    use super::BindCache;

    fn k(ids: &[u64]) -> Vec<u64> {
        ids.iter().flat_map(|&id| [id, 0, 64 << 1]).collect()
    }

    #[test]
    fn a_second_lookup_hits_and_makes_nothing() {
        let mut c = BindCache::new(8);
        assert_eq!(c.get_or_make(k(&[1, 2]), || 10), 10);
        assert_eq!(c.get_or_make(k(&[1, 2]), || 99), 10);
        assert_eq!(c.get_or_make(k(&[2, 1]), || 11), 11, "order of bindings is part of the key");
        assert_eq!((c.created, c.hits), (2, 1));
    }

    #[test]
    fn evicting_a_buffer_drops_every_group_naming_it() {
        let mut c = BindCache::new(8);
        c.get_or_make(k(&[1, 2]), || 10);
        c.get_or_make(k(&[3, 4]), || 20);
        c.get_or_make(k(&[5, 1]), || 30);
        c.evict(&[1]);
        assert_eq!(c.len(), 1);
        assert_eq!(c.get_or_make(k(&[1, 2]), || 11), 11, "an evicted group was served");
        assert_eq!(c.get_or_make(k(&[3, 4]), || 99), 20);
    }

    #[test]
    fn size_stays_bounded_and_a_small_working_set_stays_cached() {
        let mut c = BindCache::new(8);
        for i in 0..100 {
            c.get_or_make(k(&[i]), || i);
            assert!(c.len() <= 8, "{} groups cached", c.len());
        }
        let made = c.created;
        for _ in 0..10 {
            for i in 200..203 {
                c.get_or_make(k(&[i]), || i);
            }
        }
        assert_eq!(c.created, made + 3, "a working set under half the capacity was evicted");
    }
}
