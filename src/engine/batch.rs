//! Recorded dispatches waiting for one submit.
//!
//! Measured on lavapipe: one dispatch + submit + wait costs about 50 µs, a dispatch inside an
//! open compute pass 16–26 µs. So a whole step is recorded here and submitted as one command
//! buffer with one compute pass; per-dispatch scalars are packed into one uniform upload.

use std::sync::Arc;

enum Recorded {
    Dispatch {
        pipeline: Arc<wgpu::ComputePipeline>,
        bind_group: wgpu::BindGroup,
        offset: u32,
        groups: [u32; 3],
    },
    /// A buffer-to-buffer copy between dispatches (gathering gradients into an arena).
    Copy { src: wgpu::Buffer, src_offset: u64, dst: wgpu::Buffer, dst_offset: u64, size: u64 },
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
        // Runs of dispatches share one compute pass; a copy ends the pass it interrupts.
        let mut items = self.items.iter().peekable();
        while let Some(first) = items.peek() {
            if let Recorded::Copy { src, src_offset, dst, dst_offset, size } = first {
                encoder.copy_buffer_to_buffer(src, *src_offset, dst, *dst_offset, *size);
                items.next();
                continue;
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
