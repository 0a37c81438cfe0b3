//! The engine: the only module that touches wgpu.
//!
//! An [`Engine`] owns one device and queue and everything cached on them: shader modules,
//! pipelines, bind groups, a buffer pool and the batch of recorded dispatches. Ops record
//! dispatches; nothing is submitted until a readback, an upload or an explicit
//! [`Engine::flush`], so a whole training step becomes one command buffer. All GPU waits go
//! through one helper with a timeout (`wait.rs`), wgpu's errors are captured into typed
//! [`Error`](crate::Error)s instead of wgpu's default handler, which panics, a lost device
//! fails every later call at once (`health.rs`), and allocations are checked against the
//! binding, buffer and memory limits (`memory.rs`).
//!
//! The rooms: `options.rs` (what a host chooses), `open.rs` (adapter and device),
//! `storage.rs` (buffers as tensors and dispatches see them), `buffers.rs` (the pool),
//! `pipeline.rs` (shader modules, layouts, pipelines), `bind_cache.rs` (bind groups),
//! `dispatch.rs` (recording one dispatch), `batch.rs` (recorded work and its submit),
//! `wait.rs`, `health.rs`, `memory.rs`, `grad_mode.rs` and `shaders.rs` (the WGSL sources).

mod batch;
mod bind_cache;
pub mod buffers;
pub mod dispatch;
mod grad_mode;
mod health;
mod memory;
mod open;
mod options;
pub mod pipeline;
pub mod shaders;
mod storage;
mod wait;
pub(crate) use wait::PendingRead;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use batch::Batch;
use bind_cache::BindCache;
use buffers::BufferPool;
pub use grad_mode::NoGradGuard;
use health::Health;
use memory::Caps;
pub use open::AdapterSummary;
pub use options::{parse_size, EngineOptions};
pub use pipeline::Kernel;
use pipeline::PipelineCache;
pub use storage::Storage;
pub(crate) use storage::{Binding, View};

/// Bytes reserved per dispatch in the uniform ring; every op's parameter struct fits.
pub const UNIFORM_SLOT: u64 = 256;
/// Dispatches that fit in one batch before it is submitted on its own.
const RING_SLOTS: u64 = 8192;

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
    /// Bind groups created (a warm training step creates none: they come from the cache).
    pub bind_groups_created: u64,
    /// Dispatches whose bind group came from the cache.
    pub bind_group_hits: u64,
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
    binds: Mutex<BindCache<wgpu::BindGroup>>,
    /// [`EngineOptions::profile`]: every dispatch is submitted and waited for alone, and its wall time
    /// added to its kernel's total (a breakdown for tuning; far slower than normal runs).
    profile: Option<Mutex<std::collections::BTreeMap<String, (u64, f64)>>>,
    /// Print shader sources and pipeline names as they compile ([`EngineOptions::dump_shaders`]).
    dump_shaders: bool,
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
    /// `SHADER_F16` is enabled: kernels may read and write f16 storage (`DType::F16`).
    f16: bool,
    /// The backend contains out-of-bounds accesses itself (Vulkan robustBufferAccess, Metal,
    /// DX12), so wgpu's injected bounds checks can be skipped.
    driver_robust: bool,
    /// [`EngineOptions::dry_run`]: the one small buffer every storage shares.
    dry: Option<wgpu::Buffer>,
    /// Sums statistics over data-parallel ranks (synchronised batch norm), while a driver sets it.
    stat_sync: Mutex<Option<StatSync>>,
}

/// Sums a buffer element-wise over the ranks of a data-parallel run, in place.
pub type StatSync = Arc<dyn Fn(&mut [f32]) -> crate::Result<()> + Send + Sync>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks is an internal bug; the data stays usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Engine {
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

    /// Whether kernels can hold tensors in f16 (`wgpu::Features::SHADER_F16`: shaderFloat16
    /// and 16-bit storage on Vulkan; lavapipe has both). Without it f16 tensors are refused
    /// with a typed error and mixed precision keeps f32 activations.
    pub fn has_f16(&self) -> bool {
        self.0.f16
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
        let (bind_groups_created, bind_group_hits) = {
            let binds = lock(&self.0.binds);
            (binds.created, binds.hits)
        };
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
            bind_groups_created,
            bind_group_hits,
        }
    }

    /// Reset the peak-memory mark to the current use.
    pub fn reset_peak(&self) {
        let mut pool = lock(&self.0.pool);
        pool.peak = pool.in_use;
    }

    /// Opened with [`EngineOptions::dry_run`]: memory is counted, nothing is computed.
    pub fn is_dry(&self) -> bool {
        self.0.dry.is_some()
    }

    /// Make training-mode batch norm normalise with statistics summed by `sync` over the ranks
    /// of a data-parallel run (`train.sync_batch_norm`); `None` goes back to per-rank statistics.
    pub fn set_stat_sync(&self, sync: Option<StatSync>) {
        *lock(&self.0.stat_sync) = sync;
    }

    pub(crate) fn stat_sync(&self) -> Option<StatSync> {
        lock(&self.0.stat_sync).clone()
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.0.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Engine({} {:?})", self.0.info.name, self.0.info.backend)
    }
}
