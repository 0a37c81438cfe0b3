//! The parameter arena: every trainable parameter lives in a few large device buffers
//! ("pages"), with gradients and optimizer state in pages of the same layout, so one dispatch
//! updates a whole group of parameters.
//!
//! Layout: slots ordered by update range (group, then the step at which the parameter joined),
//! each slot padded to 64 floats (256 bytes: every adapter's storage-offset alignment), pages
//! no larger than one storage binding. The model's parameter handles are re-pointed to views
//! of the arena, so forward passes read the arena directly and the update writes in place.
//! Frozen parameters are not in the arena: they get no gradient slot and no state, and nothing
//! ever writes to them.

use std::collections::HashMap;
use std::sync::Arc;

use crate::engine::{Engine, Storage, View};
use crate::error::{Error, Result};
use crate::nn::{Params, Pid};
use crate::tensor::Tensor;

/// Floats per alignment unit (256 bytes).
pub(crate) const ALIGN: usize = 64;

/// Where one parameter lives.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    pub pid: Pid,
    pub page: usize,
    /// First float of the slot in its page.
    pub offset: usize,
    pub numel: usize,
    pub range: usize,
}

/// A run of slots updated by one dispatch.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Range {
    /// Index into the optimizer's resolved groups.
    pub group: usize,
    /// Optimizer step at which these parameters joined training (their bias-correction and
    /// momentum clocks start there, as torch's per-parameter `state['step']`).
    pub born: u64,
    pub page: usize,
    pub start: usize,
    pub end: usize,
}

pub(crate) struct Page {
    pub len: usize,
    pub params: Arc<Storage>,
    pub grads: Arc<Storage>,
    pub states: Vec<Arc<Storage>>,
    /// Micro-batch gradients waiting to be added (gradient accumulation only).
    pub scratch: Option<Arc<Storage>>,
}

pub(crate) struct Arena {
    /// The page cap it was built with ([`Optimizer::set_bucket_bytes`](super::Optimizer)).
    pub bucket: Option<usize>,
    pub slots: Vec<Slot>,
    pub ranges: Vec<Range>,
    pub pages: Vec<Page>,
    pub by_pid: HashMap<Pid, usize>,
}

/// What to place: a parameter, its update group and the step it joined.
pub(crate) struct Want {
    pub pid: Pid,
    pub group: usize,
    pub born: u64,
}

pub(crate) fn view(s: &Arc<Storage>, offset_floats: usize) -> View<'_> {
    View { storage: s, offset: offset_floats as u64 * 4 }
}

fn zeroed(engine: &Engine, floats: usize, what: &str) -> Result<Arc<Storage>> {
    let s = engine.alloc(floats as u64 * 4, what)?;
    let t = Tensor::from_view(engine, s.clone(), 0, vec![floats], engine.next_id());
    crate::ops::fill::fill(&t, 0.0)?;
    Ok(s)
}

impl Arena {
    /// Lay out `wants` (sorted here by group and age), allocate pages, copy every parameter's
    /// current value in and, from `old`, every surviving parameter's optimizer state; then
    /// re-point the parameters to their slots.
    pub fn build(
        engine: &Engine,
        params: &mut Params,
        mut wants: Vec<Want>,
        n_states: usize,
        old: Option<&Arena>,
        bucket: Option<usize>,
    ) -> Result<Arena> {
        let limits = engine.limits();
        let cap_bytes = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
        let binding = (cap_bytes / 4) as usize / ALIGN * ALIGN;
        // A bucket cap splits pages further; a parameter larger than it has a page to itself.
        let bucket_cap = bucket.map_or(binding, |b| b.div_ceil(ALIGN).max(1) * ALIGN).min(binding);
        wants.sort_by_key(|w| (w.group, w.born, w.pid.0));
        let mut slots = Vec::with_capacity(wants.len());
        let mut ranges: Vec<Range> = Vec::new();
        let mut page_lens = vec![0usize];
        for w in &wants {
            let t = params.get(w.pid);
            let n = t.numel();
            let padded = n.div_ceil(ALIGN).max(1) * ALIGN;
            if padded > binding {
                return Err(Error::BufferTooBig {
                    what: format!("parameter '{}'", params.entry(w.pid).path),
                    bytes: n as u64 * 4,
                    limit: binding as u64 * 4,
                    limit_name: "storage binding",
                });
            }
            let open = page_lens.last().copied().unwrap_or(0);
            if open > 0 && open + padded > bucket_cap || open + padded > binding {
                page_lens.push(0);
            }
            let page = page_lens.len() - 1;
            let offset = page_lens[page];
            page_lens[page] += padded;
            let same =
                ranges.last().is_some_and(|r| r.group == w.group && r.born == w.born && r.page == page);
            if !same {
                ranges.push(Range { group: w.group, born: w.born, page, start: offset, end: offset });
            }
            let ri = ranges.len() - 1;
            ranges[ri].end = offset + padded;
            slots.push(Slot { pid: w.pid, page, offset, numel: n, range: ri });
        }
        let mut pages = Vec::with_capacity(page_lens.len());
        for &len in &page_lens {
            let len = len.max(ALIGN);
            pages.push(Page {
                len,
                params: zeroed(engine, len, "parameter arena")?,
                grads: zeroed(engine, len, "gradient arena")?,
                states: (0..n_states)
                    .map(|_| zeroed(engine, len, "optimizer state"))
                    .collect::<Result<_>>()?,
                scratch: None,
            });
        }
        let by_pid: HashMap<Pid, usize> = slots.iter().enumerate().map(|(i, s)| (s.pid, i)).collect();
        for s in &slots {
            let t = params.get(s.pid).clone();
            let page = &pages[s.page];
            engine.copy(t.storage(), view(&page.params, s.offset), t.nbytes())?;
            if let Some((op, os)) = old.and_then(|o| o.by_pid.get(&s.pid).map(|&i| (o, &o.slots[i]))) {
                for k in 0..n_states.min(op.pages[os.page].states.len()) {
                    engine.copy(
                        view(&op.pages[os.page].states[k], os.offset),
                        view(&page.states[k], s.offset),
                        t.nbytes(),
                    )?;
                }
            }
        }
        let arena = Arena { bucket, slots, ranges, pages, by_pid };
        arena.repoint(engine, params)?;
        Ok(arena)
    }

    /// Make every slotted parameter a view of its slot (trainable).
    fn repoint(&self, engine: &Engine, params: &mut Params) -> Result<()> {
        for s in &self.slots {
            let old = params.get(s.pid);
            let v = Tensor::from_view(
                engine,
                self.pages[s.page].params.clone(),
                s.offset as u64 * 4,
                old.shape().to_vec(),
                old.id(),
            );
            params.reset_view(s.pid, v)?;
        }
        Ok(())
    }

    /// Whether every slotted parameter still is the view this arena made (a parameter assigned
    /// new values from outside has its own storage again and needs a new layout).
    pub fn still_bound(&self, params: &Params) -> bool {
        self.slots.iter().all(|s| {
            let t = params.get(s.pid);
            t.requires_grad()
                && Arc::ptr_eq(t.storage_arc(), &self.pages[s.page].params)
                && t.storage().offset == s.offset as u64 * 4
        })
    }

    /// Bytes of optimizer state held.
    pub fn state_bytes(&self) -> u64 {
        self.pages.iter().map(|p| p.states.len() as u64 * p.len as u64 * 4).sum()
    }
}
