//! Recorded dispatches waiting for one submit.
//!
//! Measured on lavapipe: one dispatch + submit + wait costs about 50 µs, a dispatch inside an
//! open compute pass 16–26 µs. So a whole step is recorded here and submitted as one command
//! buffer with one compute pass; per-dispatch scalars are packed into one uniform upload.
//! Buffer copies are recorded in the same order, between the dispatches around them.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{lock, Engine, View};
use crate::error::{Error, Result};

enum Recorded {
    Dispatch {
        pipeline: Arc<wgpu::ComputePipeline>,
        bind_group: wgpu::BindGroup,
        offset: u32,
        groups: [u32; 3],
    },
    /// A buffer-to-buffer copy between dispatches (gathering gradients into an arena).
    Copy { src: wgpu::Buffer, src_offset: u64, dst: wgpu::Buffer, dst_offset: u64, size: u64 },
    /// Zeroing a range (a transfer command: a memset on CPU adapters, a DMA fill on GPUs,
    /// many times the speed of a fill shader writing zeros).
    Clear { dst: wgpu::Buffer, offset: u64, size: u64 },
}

/// Dispatches and their uniform bytes, in program order.
#[derive(Default)]
pub(super) struct Batch {
    items: Vec<Recorded>,
    uniforms: Vec<u8>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn push(
        &mut self,
        pipeline: Arc<wgpu::ComputePipeline>,
        bind_group: wgpu::BindGroup,
        uniform: &[u8],
        groups: [u32; 3],
        align: u64,
    ) {
        let offset = self.uniforms.len();
        self.uniforms.extend_from_slice(uniform);
        self.uniforms.resize(offset + align as usize, 0);
        self.items.push(Recorded::Dispatch { pipeline, bind_group, offset: offset as u32, groups });
    }

    pub fn push_copy(
        &mut self,
        src: wgpu::Buffer,
        src_offset: u64,
        dst: wgpu::Buffer,
        dst_offset: u64,
        size: u64,
    ) {
        self.items.push(Recorded::Copy { src, src_offset, dst, dst_offset, size });
    }

    pub fn push_clear(&mut self, dst: wgpu::Buffer, offset: u64, size: u64) {
        self.items.push(Recorded::Clear { dst, offset, size });
    }

    /// Encode every dispatch into one compute pass (plus an optional trailing copy) and submit.
    pub fn submit(
        self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        ring: &wgpu::Buffer,
        copy: Option<(&wgpu::Buffer, u64, &wgpu::Buffer, u64)>,
    ) -> wgpu::SubmissionIndex {
        if !self.uniforms.is_empty() {
            // Ordered before this submit's commands and after every earlier submit's.
            queue.write_buffer(ring, 0, &self.uniforms);
        }
        let mut encoder =
            device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("whet batch") });
        // Runs of dispatches share one compute pass; a copy or clear ends the pass it interrupts.
        let mut items = self.items.iter().peekable();
        while let Some(first) = items.peek() {
            match first {
                Recorded::Copy { src, src_offset, dst, dst_offset, size } => {
                    encoder.copy_buffer_to_buffer(src, *src_offset, dst, *dst_offset, *size);
                    items.next();
                    continue;
                }
                Recorded::Clear { dst, offset, size } => {
                    encoder.clear_buffer(dst, *offset, Some(*size));
                    items.next();
                    continue;
                }
                Recorded::Dispatch { .. } => {}
            }
            let mut pass = encoder
                .begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: None });
            let mut last: Option<*const wgpu::ComputePipeline> = None;
            while let Some(Recorded::Dispatch { pipeline, bind_group, offset, groups }) = items.peek() {
                let p = Arc::as_ptr(pipeline);
                if last != Some(p) {
                    pass.set_pipeline(pipeline);
                    last = Some(p);
                }
                pass.set_bind_group(0, bind_group, &[*offset]);
                pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
                items.next();
            }
        }
        if let Some((src, src_offset, dst, size)) = copy {
            encoder.copy_buffer_to_buffer(src, src_offset, dst, 0, size);
        }
        queue.submit(Some(encoder.finish()))
    }
}

impl Engine {
    /// Submit everything recorded so far as one command buffer (does not wait).
    pub fn flush(&self) -> Result<()> {
        self.submit_batch(None).map(|_| ())
    }

    /// Record a copy of `bytes` (a multiple of 4) from `src` to `dst` in program order with the
    /// dispatches around it (the compute pass is split there). No dispatch, no shader.
    pub(crate) fn copy(&self, src: View<'_>, dst: View<'_>, bytes: u64) -> Result<()> {
        if bytes == 0 {
            return Ok(());
        }
        if !(bytes.is_multiple_of(4) && src.offset.is_multiple_of(4) && dst.offset.is_multiple_of(4)) {
            return Err(Error::arg(
                "copy",
                format!("{bytes} bytes at offsets {}/{} are not 4-aligned", src.offset, dst.offset),
            ));
        }
        self.check_health("copy")?;
        if self.is_dry() {
            return Ok(());
        }
        lock(&self.0.batch).push_copy(
            src.storage.buffer().clone(),
            src.offset,
            dst.storage.buffer().clone(),
            dst.offset,
            bytes,
        );
        Ok(())
    }

    /// Record zeroing `bytes` (a multiple of 4) at `dst` in program order with the dispatches
    /// around it: a transfer command, no shader.
    pub(crate) fn clear(&self, dst: View<'_>, bytes: u64) -> Result<()> {
        if bytes == 0 {
            return Ok(());
        }
        if !(bytes.is_multiple_of(4) && dst.offset.is_multiple_of(4)) {
            return Err(Error::arg(
                "clear",
                format!("{bytes} bytes at offset {} are not 4-aligned", dst.offset),
            ));
        }
        self.check_health("clear")?;
        if self.is_dry() {
            return Ok(());
        }
        let full = {
            let mut batch = lock(&self.0.batch);
            batch.push_clear(dst.storage.buffer().clone(), dst.offset, bytes);
            batch.len() as u64 >= super::RING_SLOTS
        };
        if full {
            self.flush()?;
        }
        Ok(())
    }

    /// Submit the batch, optionally followed by one buffer copy; returns the submission.
    pub(super) fn submit_batch(
        &self,
        copy: Option<(&wgpu::Buffer, u64, &wgpu::Buffer, u64)>,
    ) -> Result<Option<wgpu::SubmissionIndex>> {
        if let Err(e) = self.check_health("before submit") {
            if self.is_lost() {
                // Nothing recorded will ever run: free what it holds.
                drop(std::mem::take(&mut *lock(&self.0.batch)));
            }
            return Err(e);
        }
        let taken = std::mem::take(&mut *lock(&self.0.batch));
        if taken.is_empty() && copy.is_none() {
            return Ok(None);
        }
        let idx = taken.submit(&self.0.device, &self.0.queue, &self.0.ring, copy);
        lock(&self.0.pool).settle();
        self.0.submits.fetch_add(1, Ordering::Relaxed);
        self.check_health("submit")?;
        Ok(Some(idx))
    }
}
