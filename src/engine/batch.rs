//! Recorded dispatches waiting for one submit.
//!
//! Measured on lavapipe: one dispatch + submit + wait costs about 50 µs, a dispatch inside an
//! open compute pass 16–26 µs. So a whole step is recorded here and submitted as one command
//! buffer with one compute pass; per-dispatch scalars are packed into one uniform upload.

use std::sync::Arc;

struct Recorded {
    pipeline: Arc<wgpu::ComputePipeline>,
    bind_group: wgpu::BindGroup,
    offset: u32,
    groups: [u32; 3],
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
        self.items.push(Recorded { pipeline, bind_group, offset: offset as u32, groups });
    }

    /// Encode every dispatch into one compute pass (plus an optional trailing copy) and submit.
    pub fn submit(
        self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        ring: &wgpu::Buffer,
        copy: Option<(&wgpu::Buffer, &wgpu::Buffer, u64)>,
    ) -> wgpu::SubmissionIndex {
        if !self.uniforms.is_empty() {
            // Ordered before this submit's commands and after every earlier submit's.
            queue.write_buffer(ring, 0, &self.uniforms);
        }
        let mut encoder =
            device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("whet batch") });
        if !self.items.is_empty() {
            let mut pass = encoder
                .begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: None });
            let mut last: Option<*const wgpu::ComputePipeline> = None;
            for r in &self.items {
                let p = Arc::as_ptr(&r.pipeline);
                if last != Some(p) {
                    pass.set_pipeline(&r.pipeline);
                    last = Some(p);
                }
                pass.set_bind_group(0, &r.bind_group, &[r.offset]);
                pass.dispatch_workgroups(r.groups[0], r.groups[1], r.groups[2]);
            }
        }
        if let Some((src, dst, size)) = copy {
            encoder.copy_buffer_to_buffer(src, 0, dst, 0, size);
        }
        queue.submit(Some(encoder.finish()))
    }
}
