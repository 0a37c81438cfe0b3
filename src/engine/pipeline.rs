//! Pipeline cache keyed by what changes the generated code: shader file, entry point, override
//! constants and the binding layout. Per-call numbers (sizes, eps, learning rates) travel in the
//! uniform ring and never reach this key, so a new learning rate never compiles a shader.

use std::collections::HashMap;
use std::sync::Arc;

use super::shaders::ShaderFile;

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
}

impl PipelineKey {
    /// The label wgpu shows in validation messages and debuggers.
    pub fn label(&self) -> String {
        let c: Vec<String> =
            self.constants.iter().map(|(k, v)| format!("{k}={}", f64::from_bits(*v))).collect();
        format!("{}::{}[{}]", self.shader, self.entry, c.join(","))
    }
}

/// Caches of shader modules, bind-group layouts and pipelines.
#[derive(Default)]
pub struct PipelineCache {
    pub modules: HashMap<&'static str, Arc<wgpu::ShaderModule>>,
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
}

impl Kernel {
    /// A kernel without override constants.
    pub fn new(file: &'static ShaderFile, entry: &'static str) -> Self {
        Kernel { file, entry, constants: Vec::new() }
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
        }
    }
}
