//! Gathering a micro-batch's gradients into the gradient arena (buffer copies; gradient
//! accumulation adds them through a scratch page), and summing the gathered gradients over the
//! ranks of a data-parallel run: after the backward ([`Optimizer::all_reduce`]), or page by
//! page while the backward still runs ([`Optimizer::begin_overlapped`]).
//!
//! Overlap: the backward reports each parameter's gradient as soon as it is final
//! ([`Tensor::backward_with`]); the parameter's slot is filled then, and once a page's slots
//! are all filled the work recorded so far is submitted with a copy of that page into a
//! mappable staging buffer, which maps while the device computes the rest of the backward.
//! Pages are reduced last page first (the order the backward finishes them, since the arena
//! lays parameters out in forward order), so the host sums the last layers' gradients over
//! the ranks while the device is still on the first layers. Every rank issues the same
//! collectives in the same order whichever path it takes.

use std::collections::HashMap;
use std::sync::Arc;

use crate::dist::Cluster;
use crate::engine::{shaders, Binding, Kernel, PendingRead, Storage};
use crate::error::{Error, Result};
use crate::graph::GradStore;
use crate::nn::Params;
use crate::ops::launch_1d;
use crate::optim::arena::{view, Arena};
use crate::optim::optimizer::ArenaParams;
use crate::optim::Optimizer;
use crate::tensor::{Tensor, TensorId};

/// The last micro-batch's gradients of a step, gathered and read back page by page while its
/// backward runs (see the module docs).
pub struct OverlappedReduce {
    /// Arena slot of each trainable parameter's tensor.
    slot_of: HashMap<TensorId, usize>,
    filled: Vec<bool>,
    /// Slots of each page not filled yet.
    left: Vec<usize>,
    /// Each page's readback, once it started.
    reads: Vec<Option<PendingRead>>,
}

impl Optimizer {
    /// Add this micro-batch's gradients to the arena (gradient accumulation). Call `step`
    /// after the last micro-batch; scale each micro-batch's loss by 1/k for a mean.
    pub fn accumulate(&mut self, params: &mut Params, grads: &GradStore) -> Result<()> {
        self.begin_gather(params)?;
        let (slots, pages) = self.arena_ref().map(|a| (a.slots.len(), a.pages.len()))?;
        for i in 0..slots {
            self.gather_slot(params, grads, i)?;
        }
        for p in 0..pages {
            self.end_page(p)?;
        }
        self.gathered += 1;
        Ok(())
    }

    /// Cap the arena's pages at `bytes` (rounded up to the slot alignment; a larger parameter
    /// gets a page of its own): the granularity at which a data-parallel step's all-reduce
    /// overlaps the backward. Takes effect at the next gather; the optimizer state carries
    /// over. `None`: pages as large as one storage binding.
    pub fn set_bucket_bytes(&mut self, bytes: Option<u64>) {
        self.bucket = bytes.map(|b| (b / 4).max(1) as usize);
    }

    /// Sum the gathered gradients over `cluster`'s ranks (data-parallel training): each arena
    /// page of gradients (trainable parameters only: frozen ones have none) is read back through
    /// a pooled staging buffer, all-reduced on the host and written back in place, last page
    /// first. Each rank's loss was weighted by its share of the global batch, so the sum is the
    /// global mean's gradient. Returns the bytes reduced.
    pub fn all_reduce(&mut self, cluster: &Cluster) -> Result<u64> {
        if self.gathered == 0 {
            return Err(Error::arg("optimizer", "no gradients gathered: call accumulate first"));
        }
        self.norm_ready = false;
        let Some(a) = self.arena.as_ref() else { return Ok(0) };
        let pages: Vec<(Arc<Storage>, usize)> = a.pages.iter().map(|p| (p.grads.clone(), p.len)).collect();
        let mut total = 0;
        for (grads, len) in pages.iter().rev() {
            let raw = self.engine.download(view(grads, 0), *len as u64 * 4)?;
            total += self.reduce_page(grads, &raw, cluster)?;
        }
        Ok(total)
    }

    /// Start gathering the last micro-batch of a step with its all-reduce overlapping its
    /// backward: run the backward with [`Tensor::backward_with`] calling
    /// [`Optimizer::overlap_final`], then [`Optimizer::finish_overlapped`].
    pub fn begin_overlapped(&mut self, params: &mut Params) -> Result<OverlappedReduce> {
        self.begin_gather(params)?;
        let a = self.arena_ref()?;
        let slot_of = a.slots.iter().enumerate().map(|(i, s)| (params.get(s.pid).id(), i)).collect();
        let mut left = vec![0; a.pages.len()];
        for s in &a.slots {
            left[s.page] += 1;
        }
        let reads = a.pages.iter().map(|_| None).collect();
        Ok(OverlappedReduce { slot_of, filled: vec![false; a.slots.len()], left, reads })
    }

    /// The gradients of `ids` are final: fill their slots, and start reading back every page
    /// that is now complete.
    pub fn overlap_final(
        &mut self,
        ov: &mut OverlappedReduce,
        params: &Params,
        grads: &GradStore,
        ids: &[TensorId],
    ) -> Result<()> {
        for id in ids {
            if let Some(&i) = ov.slot_of.get(id) {
                self.fill_slot(ov, params, grads, i)?;
            }
        }
        Ok(())
    }

    /// Fill the slots the backward never reached (zeros), then reduce every page over
    /// `cluster`, last page first, as its readback arrives. Returns the bytes reduced.
    pub fn finish_overlapped(
        &mut self,
        mut ov: OverlappedReduce,
        params: &Params,
        grads: &GradStore,
        cluster: &Cluster,
    ) -> Result<u64> {
        for i in 0..ov.filled.len() {
            if !ov.filled[i] {
                self.fill_slot(&mut ov, params, grads, i)?;
            }
        }
        // A page without slots (an empty arena's one page) still takes part.
        for p in 0..ov.reads.len() {
            if ov.reads[p].is_none() {
                self.start_page_read(&mut ov, p)?;
            }
        }
        self.gathered += 1;
        self.norm_ready = false;
        let mut total = 0;
        for p in (0..ov.reads.len()).rev() {
            let read = ov.reads[p].take().ok_or_else(|| Error::arg("optimizer", "page readback lost"))?;
            let raw = self.engine.download_finish(read)?;
            let grads = self.arena_ref()?.pages[p].grads.clone();
            total += self.reduce_page(&grads, &raw, cluster)?;
        }
        Ok(total)
    }

    fn fill_slot(
        &mut self,
        ov: &mut OverlappedReduce,
        params: &Params,
        grads: &GradStore,
        i: usize,
    ) -> Result<()> {
        if ov.filled[i] {
            return Ok(());
        }
        self.gather_slot(params, grads, i)?;
        ov.filled[i] = true;
        let page = self.arena_ref()?.slots[i].page;
        ov.left[page] -= 1;
        if ov.left[page] == 0 {
            self.start_page_read(ov, page)?;
        }
        Ok(())
    }

    fn start_page_read(&mut self, ov: &mut OverlappedReduce, page: usize) -> Result<()> {
        self.end_page(page)?;
        let p = &self.arena_ref()?.pages[page];
        ov.reads[page] = Some(self.engine.download_start(view(&p.grads, 0), p.len as u64 * 4)?);
        Ok(())
    }

    /// Sum a page's gradients (`raw`, read back) over the ranks and write the sum in place.
    fn reduce_page(&mut self, grads: &Arc<Storage>, raw: &[u8], cluster: &Cluster) -> Result<u64> {
        let t = std::time::Instant::now();
        let mut sum: Vec<f32> = bytemuck::pod_collect_to_vec(raw);
        cluster.all_reduce_sum(&mut sum)?;
        self.engine.write_into(view(grads, 0), bytemuck::cast_slice(&sum))?;
        self.reduce_secs += t.elapsed().as_secs_f64();
        Ok(raw.len() as u64)
    }

    /// Host seconds spent in the MPI all-reduce and writing the sums back, since the
    /// optimizer was made.
    pub fn reduce_secs(&self) -> f64 {
        self.reduce_secs
    }

    /// Pages of the gradient arena (the buckets of a data-parallel step's all-reduce).
    pub fn pages(&self) -> usize {
        self.arena.as_ref().map_or(0, |a| a.pages.len())
    }

    fn arena_ref(&self) -> Result<&Arena> {
        self.arena
            .as_ref()
            .ok_or_else(|| Error::arg("optimizer", "no parameter arena: nothing to gather into"))
    }

    /// Lay out the arena for `params` and, after the first micro-batch of a step, give every
    /// page a scratch page to gather into before it is added.
    fn begin_gather(&mut self, params: &mut Params) -> Result<()> {
        self.prepare(params)?;
        self.norm_ready = false;
        if self.gathered == 0 {
            return Ok(());
        }
        let e = self.engine.clone();
        let Some(a) = self.arena.as_mut() else { return Ok(()) };
        for p in &mut a.pages {
            if p.scratch.is_none() {
                let s = e.alloc(p.len as u64 * 4, "accumulation scratch")?;
                let t = Tensor::from_view(&e, s.clone(), 0, vec![p.len], e.next_id());
                crate::ops::fill::fill(&t, 0.0)?;
                p.scratch = Some(s);
            }
        }
        Ok(())
    }

    /// Where this micro-batch's gradients for page `page` go: the page itself for the first
    /// micro-batch of a step, its scratch page after.
    fn gather_target(&self, page: usize) -> Result<&Arc<Storage>> {
        let p = &self.arena_ref()?.pages[page];
        match self.gathered {
            0 => Ok(&p.grads),
            _ => p.scratch.as_ref().ok_or_else(|| Error::arg("optimizer", "accumulation scratch missing")),
        }
    }

    /// Copy slot `i`'s gradient in, or zero it when the loss did not reach the parameter (a
    /// stale gradient is never applied).
    fn gather_slot(&self, params: &Params, grads: &GradStore, i: usize) -> Result<()> {
        let e = &self.engine;
        let s = &self.arena_ref()?.slots[i];
        let dst = self.gather_target(s.page)?;
        let param = params.get(s.pid);
        match grads.get(param) {
            Some(g) if g.shape() != param.shape() => {
                Err(Error::shape("optimizer", param.shape(), g.shape(), "gradient"))
            }
            Some(g) => e.copy(g.storage(), view(dst, s.offset), g.nbytes()),
            None => {
                let t = Tensor::from_view(e, dst.clone(), s.offset as u64 * 4, vec![s.numel], e.next_id());
                crate::ops::fill::fill(&t, 0.0)
            }
        }
    }

    /// After the first micro-batch of a step: add the page's scratch into its gradients.
    fn end_page(&self, page: usize) -> Result<()> {
        if self.gathered == 0 {
            return Ok(());
        }
        let p = &self.arena_ref()?.pages[page];
        let s = self.gather_target(page)?;
        let prm =
            ArenaParams { n: p.len as u32, base: 0, count: 0, max_norm: 0.0, inv_scale: 1.0, _pad: [0; 3] };
        launch_1d(
            &self.engine,
            &Kernel::new(&shaders::ARENA, "accumulate"),
            &prm,
            &[
                Binding::read(view(s, 0), p.len as u64 * 4),
                Binding::write(view(&p.grads, 0), p.len as u64 * 4),
            ],
            p.len,
        )
    }
}
