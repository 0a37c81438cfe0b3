//! Pipeline cache keyed by what changes the generated code: shader file, entry point, override
//! constants and the binding layout. Per-call numbers (sizes, eps, learning rates) travel in the
//! uniform ring and never reach this key, so a new learning rate never compiles a shader.
//!
//! Also here: compiling shader modules (naga first, for messages that name the line) and the
//! bind-group layouts, one per access pattern of the storage bindings.

use std::collections::HashMap;
use std::sync::Arc;

use super::shaders::{self, ShaderFile};
use super::{lock, Engine};
use crate::error::{Error, Result};

/// Read-only (`true`) or read-write (`false`) for each storage binding 1..=n.
pub type LayoutKey = Vec<bool>;

/// What makes one compute pipeline different from another.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PipelineKey {
    pub shader: &'static str,
    pub entry: &'static str,
    /// Override constants as (name, f64 bits): the values change the compiled code.
    pub constants: Vec<(&'static str, u64)>,
    pub layout: LayoutKey,
    /// The file's f16 variant (`act = f16`).
    pub half: bool,
}

impl PipelineKey {
    /// The label wgpu shows in validation messages and debuggers.
    pub fn label(&self) -> String {
        let c: Vec<String> =
            self.constants.iter().map(|(k, v)| format!("{k}={}", f64::from_bits(*v))).collect();
        let half = if self.half { ":f16" } else { "" };
        format!("{}{half}::{}[{}]", self.shader, self.entry, c.join(","))
    }
}

/// Caches of shader modules, bind-group layouts and pipelines.
#[derive(Default)]
pub struct PipelineCache {
    /// By file and variant (f16 or not).
    pub modules: HashMap<(&'static str, bool), Arc<wgpu::ShaderModule>>,
    pub layouts: HashMap<LayoutKey, (Arc<wgpu::BindGroupLayout>, Arc<wgpu::PipelineLayout>)>,
    pub pipelines: HashMap<PipelineKey, Arc<wgpu::ComputePipeline>>,
    /// How many pipelines were compiled (a test asserts a warm training step compiles none).
    pub compiled: u64,
}

/// One dispatchable kernel: a shader file, an entry point and its override constants.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub file: &'static ShaderFile,
    pub entry: &'static str,
    pub constants: Vec<(&'static str, f64)>,
    /// Compiled with `act = f16` (the file must be written over `act`).
    pub half: bool,
}

impl Kernel {
    /// A kernel without override constants.
    pub fn new(file: &'static ShaderFile, entry: &'static str) -> Self {
        Kernel { file, entry, constants: Vec::new(), half: false }
    }

    /// The f16 variant when `on` (activations in f16; see [`ShaderFile::halves`]).
    pub fn half(mut self, on: bool) -> Self {
        self.half = on;
        self
    }

    /// Set an override constant (part of the pipeline key).
    pub fn with(mut self, name: &'static str, value: impl Into<f64>) -> Self {
        self.constants.push((name, value.into()));
        self
    }

    pub(crate) fn key(&self, layout: LayoutKey) -> PipelineKey {
        PipelineKey {
            shader: self.file.name,
            entry: self.entry,
            constants: self.constants.iter().map(|(k, v)| (*k, v.to_bits())).collect(),
            layout,
            half: self.half,
        }
    }
}

impl Engine {
    /// Compile (or fetch from the cache) the pipeline for `kernel` with storage bindings of the
    /// given access (`true` = read-only), without dispatching. Apps call it at start-up so the
    /// first training step compiles nothing; a shader that does not compile is
    /// [`Error::ShaderCompile`] with naga's message.
    pub fn precompile(&self, kernel: &Kernel, read_only: &[bool]) -> Result<()> {
        self.pipeline(kernel, read_only.to_vec()).map(|_| ())
    }

    pub(super) fn pipeline(
        &self,
        kernel: &Kernel,
        layout: LayoutKey,
    ) -> Result<(Arc<wgpu::ComputePipeline>, Arc<wgpu::BindGroupLayout>)> {
        self.check_alive()?;
        let key = kernel.key(layout.clone());
        let mut cache = lock(&self.0.cache);
        let (bgl, pl) = match cache.layouts.get(&layout) {
            Some(l) => l.clone(),
            None => {
                let l = self.make_layout(&layout);
                cache.layouts.insert(layout.clone(), l.clone());
                l
            }
        };
        if let Some(p) = cache.pipelines.get(&key) {
            return Ok((p.clone(), bgl));
        }
        let module_key = (kernel.file.name, kernel.half);
        let module = match cache.modules.get(&module_key) {
            Some(m) => m.clone(),
            None => {
                let m = Arc::new(self.compile_module(kernel.file, kernel.half)?);
                cache.modules.insert(module_key, m.clone());
                m
            }
        };
        let label = key.label();
        if self.0.dump_shaders {
            eprintln!("whet: compiling pipeline {label}");
        }
        let scope = self.0.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let pipeline = self.0.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&label),
            layout: Some(&pl),
            module: &module,
            entry_point: Some(kernel.entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &kernel.constants.iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>(),
                // Our kernels never read workgroup memory before writing it.
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::ShaderCompile { shader: label, message: e.to_string() });
        }
        let pipeline = Arc::new(pipeline);
        cache.pipelines.insert(key, pipeline.clone());
        cache.compiled += 1;
        Ok((pipeline, bgl))
    }

    fn compile_module(&self, file: &shaders::ShaderFile, half: bool) -> Result<wgpu::ShaderModule> {
        if half && !(file.halves && self.has_f16()) {
            return Err(Error::DType {
                op: file.name,
                expected: "f32 (this kernel or adapter has no f16 variant)",
                got: "f16",
            });
        }
        // naga first: its message names the line, which wgpu's wrapped error may not.
        shaders::validate_variant(file, half, &[])
            .map_err(|message| Error::ShaderCompile { shader: file.name.to_string(), message })?;
        let source = file.source_for(half);
        if self.0.dump_shaders {
            eprintln!("whet: ---- {} ----\n{source}", file.name);
        }
        let scope = self.0.device.push_error_scope(wgpu::ErrorFilter::Validation);
        // Our kernels are trusted code: every loop is bounded by a uniform, every index is
        // clamped or guarded, and every divisor is a dim of a non-empty dispatch (empty ones are
        // never submitted). wgpu's injected checks (a counter in every loop, a guard on every
        // integer division, a clamp on every access) cost lavapipe dearly on matmul, so they
        // are off; out-of-bounds accesses are still contained by the driver's robust buffer
        // access where the backend has it.
        let mut checks = wgpu::ShaderRuntimeChecks::unchecked();
        checks.bounds_checks = !self.0.driver_robust;
        // SAFETY: see above; the shaders are the crate's own, validated by naga first.
        let module = unsafe {
            self.0.device.create_shader_module_trusted(
                wgpu::ShaderModuleDescriptor {
                    label: Some(file.name),
                    source: wgpu::ShaderSource::Wgsl(source.into()),
                },
                checks,
            )
        };
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::ShaderCompile { shader: file.name.to_string(), message: e.to_string() });
        }
        Ok(module)
    }

    fn make_layout(&self, layout: &LayoutKey) -> (Arc<wgpu::BindGroupLayout>, Arc<wgpu::PipelineLayout>) {
        let mut entries = vec![wgpu::BindGroupLayoutEntry {
            binding: 0,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: true,
                min_binding_size: None,
            },
            count: None,
        }];
        for (i, ro) in layout.iter().enumerate() {
            entries.push(wgpu::BindGroupLayoutEntry {
                binding: i as u32 + 1,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage { read_only: *ro },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            });
        }
        let bgl = self
            .0
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: None, entries: &entries });
        let pl = self.0.device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: None,
            bind_group_layouts: &[Some(&bgl)],
            immediate_size: 0,
        });
        (Arc::new(bgl), Arc::new(pl))
    }
}
