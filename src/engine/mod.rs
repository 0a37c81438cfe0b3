//! The engine: the only module that touches wgpu.
//!
//! An [`Engine`] owns one device and queue and everything cached on them: shader modules,
//! pipelines, a buffer pool and the batch of recorded dispatches. Ops record dispatches; nothing
//! is submitted until a readback, an upload or an explicit [`Engine::flush`], so a whole training
//! step becomes one command buffer. All GPU waits go through one helper with a timeout
//! (`wait.rs`), wgpu's errors are captured into typed [`Error`]s instead of wgpu's default
//! handler, which panics, a lost device fails every later call at once (`health.rs`), and
//! allocations are checked against the binding, buffer and memory limits (`memory.rs`).

mod batch;
pub mod buffers;
pub mod dispatch;
mod health;
mod memory;
pub mod pipeline;
pub mod shaders;
mod wait;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use crate::error::{Error, Result};
use batch::Batch;
use buffers::BufferPool;
use health::Health;
use memory::Caps;
pub use pipeline::Kernel;
use pipeline::{LayoutKey, PipelineCache};

/// Bytes reserved per dispatch in the uniform ring; every op's parameter struct fits.
pub const UNIFORM_SLOT: u64 = 256;
/// Dispatches that fit in one batch before it is submitted on its own.
const RING_SLOTS: u64 = 8192;

/// How to pick and open a device.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Case-insensitive substring of the adapter name to use; defaults to `$WHET_ADAPTER`.
    pub adapter: Option<String>,
    /// Longest a single GPU wait may take before it fails with [`Error::Timeout`].
    pub timeout: Duration,
    /// Bytes one storage binding (so one tensor) may hold, below the adapter's own limit:
    /// leaves room for other work on the device, and lets tests reach the limit with small
    /// shapes. At least 4096.
    pub max_binding_bytes: Option<u64>,
    /// Device memory the engine's storage buffers (tensors, optimizer arenas, the pool) may
    /// take; past it an allocation is [`Error::OutOfMemory`], as with PyTorch's per-process
    /// memory fraction. Useful on a shared GPU, and on CPU adapters such as lavapipe, whose
    /// allocations never fail and exhaust host memory instead.
    pub max_memory_bytes: Option<u64>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            adapter: std::env::var("WHET_ADAPTER").ok().filter(|s| !s.is_empty()),
            timeout: Duration::from_secs(120),
            max_binding_bytes: None,
            max_memory_bytes: None,
        }
    }
}

/// What kind of adapter we run on: decides kernel variants (see `ops::matmul`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdapterClass {
    /// A CPU rasteriser such as lavapipe/llvmpipe or WARP: workgroup memory and barriers are
    /// slow there, register blocking wins.
    Cpu,
    /// A real GPU: workgroup-memory tiling wins.
    Gpu,
}

/// Counters for tests and benches.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub dispatches: u64,
    pub submits: u64,
    pub pipelines_compiled: u64,
    pub buffers_created: u64,
    pub bytes_in_use: u64,
    pub peak_bytes: u64,
    /// Autodiff nodes recorded since the engine was made.
    pub nodes_recorded: u64,
    /// Bytes of tensors saved for backward since the engine was made.
    pub saved_bytes: u64,
}

/// A handle to a device; cheap to clone, safe to share between threads.
#[derive(Clone)]
pub struct Engine(pub(crate) Arc<EngineInner>);

pub(crate) struct EngineInner {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    pub(crate) limits: wgpu::Limits,
    class: AdapterClass,
    /// The wait timeout (see `wait.rs`); atomic so a host can change it on a shared engine.
    timeout_nanos: AtomicU64,
    caps: Caps,
    cache: Mutex<PipelineCache>,
    pool: Mutex<BufferPool>,
    staging: Mutex<BufferPool>,
    batch: Mutex<Batch>,
    /// `WHET_PROFILE=1`: every dispatch is submitted and waited for alone, and its wall time
    /// added to its kernel's total (a breakdown for tuning; far slower than normal runs).
    profile: Option<Mutex<std::collections::BTreeMap<String, (u64, f64)>>>,
    ring: wgpu::Buffer,
    uniform_align: u64,
    health: Arc<Health>,
    next_id: AtomicU64,
    dispatches: AtomicU64,
    submits: AtomicU64,
    pub(crate) nodes_recorded: AtomicU64,
    pub(crate) saved_bytes: AtomicU64,
    poisoned: AtomicBool,
    /// The fixed subgroup width when subgroup operations are enabled and every subgroup has the
    /// same size (lavapipe: 8); kernels that assume a width check this.
    subgroup_size: Option<u32>,
    /// The backend contains out-of-bounds accesses itself (Vulkan robustBufferAccess, Metal,
    /// DX12), so wgpu's injected bounds checks can be skipped.
    driver_robust: bool,
}

/// One storage binding of a dispatch.
pub(crate) struct Binding<'a> {
    pub buffer: &'a wgpu::Buffer,
    /// Byte offset of the tensor in its buffer (a multiple of the adapter's storage offset
    /// alignment; 0 except for views into a parameter arena).
    pub offset: u64,
    /// Bytes visible to the shader (> 0, a multiple of 4).
    pub size: u64,
    pub read_only: bool,
}

impl<'a> Binding<'a> {
    pub fn read(v: View<'a>, bytes: u64) -> Self {
        Binding { buffer: v.storage.buffer(), offset: v.offset, size: bind_size(bytes), read_only: true }
    }
    pub fn write(v: View<'a>, bytes: u64) -> Self {
        Binding { buffer: v.storage.buffer(), offset: v.offset, size: bind_size(bytes), read_only: false }
    }
}

/// Where a tensor's data starts: its storage and a byte offset into it.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    pub storage: &'a Storage,
    pub offset: u64,
}

/// Bindings may not be empty: a 0-byte tensor binds 16 bytes of its (>= 256-byte) buffer.
fn bind_size(bytes: u64) -> u64 {
    bytes.max(16).div_ceil(16) * 16
}

/// A device buffer owned by one or more tensors; returns to the pool on drop.
pub struct Storage {
    buffer: Option<wgpu::Buffer>,
    class: u64,
    engine: Weak<EngineInner>,
}

impl Storage {
    pub(crate) fn buffer(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("storage buffer present until drop")
    }
    /// Capacity in bytes (the size class).
    pub fn capacity(&self) -> u64 {
        self.class
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        if let (Some(buf), Some(engine)) = (self.buffer.take(), self.engine.upgrade()) {
            if let Ok(mut pool) = engine.pool.lock() {
                pool.give(self.class, buf);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks is an internal bug; the data stays usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The engine's own caps from `options`, applied to `limits` (which the engine then enforces
/// and reports; the device itself is opened with the adapter's limits).
fn caps(options: &EngineOptions, limits: &mut wgpu::Limits) -> Result<Caps> {
    if let Some(b) = options.max_binding_bytes {
        if b < memory::MIN_BINDING_CAP {
            return Err(Error::arg(
                "engine",
                format!("max_binding_bytes {b} is below the minimum {}", memory::MIN_BINDING_CAP),
            ));
        }
    }
    let binding = options.max_binding_bytes.filter(|&b| b < limits.max_storage_buffer_binding_size);
    if let Some(b) = binding {
        limits.max_storage_buffer_binding_size = b;
    }
    Ok(Caps { binding, memory: options.max_memory_bytes })
}

fn rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

impl Engine {
    /// Open the best adapter: discrete > integrated > virtual > CPU, or the one named by
    /// `options.adapter` / `$WHET_ADAPTER`.
    pub fn new(options: EngineOptions) -> Result<Engine> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = wgpu::Backends::PRIMARY;
        let instance = wgpu::Instance::new(desc);
        let mut adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY));
        if adapters.is_empty() {
            return Err(Error::NoAdapter(
                "no Vulkan, Metal or DX12 adapter found (on Linux without a GPU install Mesa's lavapipe: \
                 apt-get install mesa-vulkan-drivers libvulkan1)"
                    .into(),
            ));
        }
        let names: Vec<String> = adapters
            .iter()
            .map(|a| format!("{} ({:?})", a.get_info().name, a.get_info().device_type))
            .collect();
        if let Some(want) = &options.adapter {
            let w = want.to_lowercase();
            adapters.retain(|a| a.get_info().name.to_lowercase().contains(&w));
            if adapters.is_empty() {
                return Err(Error::NoAdapter(format!(
                    "no adapter name contains '{want}'; available: {}",
                    names.join(", ")
                )));
            }
        }
        adapters.sort_by_key(|a| rank(a.get_info().device_type));
        let adapter = adapters.remove(0);
        Self::from_adapter_with(adapter, &options)
    }

    /// Open a device on a chosen adapter, with the adapter's own limits (the defaults cap
    /// storage bindings at 128 MiB, too small for real embedding tables).
    pub fn from_adapter(adapter: wgpu::Adapter, timeout: Duration) -> Result<Engine> {
        let options = EngineOptions { adapter: None, timeout, ..EngineOptions::default() };
        Self::from_adapter_with(adapter, &options)
    }

    /// [`Engine::from_adapter`] with the limits and timeout of `options` (its `adapter` is not
    /// used: the adapter is given).
    pub fn from_adapter_with(adapter: wgpu::Adapter, options: &EngineOptions) -> Result<Engine> {
        let info = adapter.get_info();
        let backend = info.backend;
        let mut limits = adapter.limits();
        let caps = caps(options, &mut limits)?;
        // Subgroup operations, where the adapter has them, let the CPU-adapter matmul share
        // one load between 8 lanes (see shaders/matmul/matmul_subgroup.wgsl).
        let features = adapter.features() & wgpu::Features::SUBGROUP;
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("whet"),
            required_features: features,
            required_limits: adapter.limits(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| Error::DeviceRequest { adapter: info.name.clone(), reason: e.to_string() })?;
        let health = Arc::new(Health::default());
        health::install(&device, &health);
        let uniform_align = (limits.min_uniform_buffer_offset_alignment as u64).max(UNIFORM_SLOT);
        let ring = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("whet uniform ring"),
            size: uniform_align * RING_SLOTS,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let subgroup_size = (features.contains(wgpu::Features::SUBGROUP)
            && info.subgroup_min_size == info.subgroup_max_size
            && info.subgroup_min_size > 0)
            .then_some(info.subgroup_min_size);
        let class =
            if info.device_type == wgpu::DeviceType::Cpu { AdapterClass::Cpu } else { AdapterClass::Gpu };
        Ok(Engine(Arc::new(EngineInner {
            device,
            queue,
            info,
            limits,
            class,
            timeout_nanos: AtomicU64::new(u64::try_from(options.timeout.as_nanos()).unwrap_or(u64::MAX)),
            caps,
            cache: Mutex::new(PipelineCache::default()),
            pool: Mutex::new(BufferPool::default()),
            staging: Mutex::new(BufferPool::default()),
            batch: Mutex::new(Batch::default()),
            profile: std::env::var_os("WHET_PROFILE")
                .filter(|v| v != "0")
                .map(|_| Mutex::new(Default::default())),
            ring,
            uniform_align,
            health,
            next_id: AtomicU64::new(1),
            dispatches: AtomicU64::new(0),
            submits: AtomicU64::new(0),
            nodes_recorded: AtomicU64::new(0),
            saved_bytes: AtomicU64::new(0),
            poisoned: AtomicBool::new(false),
            subgroup_size,
            driver_robust: matches!(
                backend,
                wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12
            ),
        })))
    }

    /// The default engine, or `None` (with the reason as a `log` warning) when no adapter exists.
    /// Meant for tests and examples that must still run their CPU parts without a GPU.
    pub fn try_default() -> Option<Engine> {
        match Engine::new(EngineOptions::default()) {
            Ok(e) => Some(e),
            Err(err) => {
                // A library writes no output of its own: the caller says what it skips.
                log::warn!("no GPU adapter: {err}");
                None
            }
        }
    }

    /// The adapter's name, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub fn adapter_name(&self) -> &str {
        &self.0.info.name
    }

    /// Adapter details as wgpu reports them.
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.0.info
    }

    /// The subgroup width, when subgroup operations are on and the width is fixed.
    pub fn subgroup_size(&self) -> Option<u32> {
        self.0.subgroup_size
    }

    /// CPU rasteriser or real GPU.
    pub fn adapter_class(&self) -> AdapterClass {
        self.0.class
    }

    /// The limits the engine enforces: the adapter's own, with
    /// [`EngineOptions::max_binding_bytes`] applied.
    pub fn limits(&self) -> &wgpu::Limits {
        &self.0.limits
    }

    /// Counters since the engine was made.
    pub fn stats(&self) -> Stats {
        let pool = lock(&self.0.pool);
        Stats {
            dispatches: self.0.dispatches.load(Ordering::Relaxed),
            submits: self.0.submits.load(Ordering::Relaxed),
            pipelines_compiled: lock(&self.0.cache).compiled,
            buffers_created: pool.created,
            bytes_in_use: pool.in_use,
            peak_bytes: pool.peak,
            nodes_recorded: self.0.nodes_recorded.load(Ordering::Relaxed),
            saved_bytes: self.0.saved_bytes.load(Ordering::Relaxed),
        }
    }

    /// Reset the peak-memory mark to the current use.
    pub fn reset_peak(&self) {
        let mut pool = lock(&self.0.pool);
        pool.peak = pool.in_use;
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.0.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// While the returned guard lives, ops on this thread record no autodiff nodes. The mode
    /// is per thread (as PyTorch's grad mode), so a backward pass or an evaluation on one thread
    /// never switches recording off for a training step on another thread.
    pub fn no_grad(&self) -> NoGradGuard {
        NO_GRAD_DEPTH.with(|d| d.set(d.get() + 1));
        NoGradGuard { _not_send: std::marker::PhantomData }
    }

    /// False inside a [`Engine::no_grad`] scope on this thread.
    pub fn grad_enabled(&self) -> bool {
        NO_GRAD_DEPTH.with(|d| d.get() == 0)
    }

    /// Record one dispatch. `uniform` holds the kernel's per-call scalars (binding 0); the
    /// storage bindings follow as bindings 1..=n in order.
    pub(crate) fn dispatch(
        &self,
        kernel: &Kernel,
        uniform: &[u8],
        bindings: &[Binding<'_>],
        groups: [u32; 3],
    ) -> Result<()> {
        self.check_alive()?;
        if groups.contains(&0) {
            return Ok(());
        }
        debug_assert!(uniform.len() as u64 <= UNIFORM_SLOT);
        let layout: LayoutKey = bindings.iter().map(|b| b.read_only).collect();
        let (pipeline, bgl) = self.pipeline(kernel, layout)?;
        let mut entries = Vec::with_capacity(bindings.len() + 1);
        entries.push(wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &self.0.ring,
                offset: 0,
                size: std::num::NonZeroU64::new(UNIFORM_SLOT),
            }),
        });
        for (i, b) in bindings.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: i as u32 + 1,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: b.buffer,
                    offset: b.offset,
                    size: std::num::NonZeroU64::new(b.size),
                }),
            });
        }
        let bind_group = self.0.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &bgl,
            entries: &entries,
        });
        let t0 = match &self.0.profile {
            Some(_) => {
                self.sync()?;
                Some(std::time::Instant::now())
            }
            None => None,
        };
        let full = {
            let mut batch = lock(&self.0.batch);
            batch.push(pipeline, bind_group, uniform, groups, self.0.uniform_align);
            batch.len() as u64 >= RING_SLOTS
        };
        self.0.dispatches.fetch_add(1, Ordering::Relaxed);
        if let (Some(t0), Some(prof)) = (t0, &self.0.profile) {
            self.sync()?;
            let secs = t0.elapsed().as_secs_f64();
            let key = format!("{}:{}{:?}", kernel.file.name, kernel.entry, kernel.constants);
            let mut map = lock(prof);
            let e = map.entry(key).or_insert((0, 0.0));
            e.0 += 1;
            e.1 += secs;
        } else if full {
            self.flush()?;
        }
        Ok(())
    }

    /// Per-kernel (dispatches, seconds) since the engine was made, slowest first; empty unless
    /// the process runs with `WHET_PROFILE=1`.
    pub fn profile(&self) -> Vec<(String, u64, f64)> {
        let Some(p) = &self.0.profile else { return Vec::new() };
        let mut v: Vec<_> = lock(p).iter().map(|(k, (n, s))| (k.clone(), *n, *s)).collect();
        v.sort_by(|a, b| b.2.total_cmp(&a.2));
        v
    }

    /// Compile (or fetch from the cache) the pipeline for `kernel` with storage bindings of the
    /// given access (`true` = read-only), without dispatching. Apps call it at start-up so the
    /// first training step compiles nothing; a shader that does not compile is
    /// [`Error::ShaderCompile`] with naga's message.
    pub fn precompile(&self, kernel: &Kernel, read_only: &[bool]) -> Result<()> {
        self.pipeline(kernel, read_only.to_vec()).map(|_| ())
    }

    fn pipeline(
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
        let module = match cache.modules.get(kernel.file.name) {
            Some(m) => m.clone(),
            None => {
                let m = Arc::new(self.compile_module(kernel.file)?);
                cache.modules.insert(kernel.file.name, m.clone());
                m
            }
        };
        let label = key.label();
        if std::env::var_os("WHET_DUMP_SHADERS").is_some() {
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

    fn compile_module(&self, file: &shaders::ShaderFile) -> Result<wgpu::ShaderModule> {
        // naga first: its message names the line, which wgpu's wrapped error may not.
        shaders::validate(file, &[])
            .map_err(|message| Error::ShaderCompile { shader: file.name.to_string(), message })?;
        let source = file.full_source();
        if std::env::var_os("WHET_DUMP_SHADERS").is_some() {
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
        lock(&self.0.batch).push_copy(
            src.storage.buffer().clone(),
            src.offset,
            dst.storage.buffer().clone(),
            dst.offset,
            bytes,
        );
        Ok(())
    }

    /// Submit the batch, optionally followed by one buffer copy; returns the submission.
    fn submit_batch(
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

thread_local! {
    /// Depth of nested `no_grad` scopes on this thread.
    static NO_GRAD_DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Restores gradient recording when dropped (on the thread that made it).
pub struct NoGradGuard {
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for NoGradGuard {
    fn drop(&mut self) {
        NO_GRAD_DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Engine({} {:?})", self.0.info.name, self.0.info.backend)
    }
}
