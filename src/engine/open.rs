//! Opening a device: adapter choice, device request and the engine's initial state.

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::batch::Batch;
use super::bind_cache::{self, BindCache};
use super::buffers::BufferPool;
use super::health::{self, Health};
use super::pipeline::PipelineCache;
use super::{memory, AdapterClass, Engine, EngineInner, EngineOptions, RING_SLOTS, UNIFORM_SLOT};
use crate::error::{Error, Result};

fn rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

/// One adapter the platform offers, as [`Engine::adapters`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterSummary {
    pub name: String,
    /// "Vulkan", "Metal", "Dx12".
    pub backend: String,
    /// "DiscreteGpu", "IntegratedGpu", "VirtualGpu", "Cpu", "Other".
    pub device_type: String,
    /// The one [`Engine::new`] opens when no adapter is named.
    pub preferred: bool,
}

/// Every Vulkan, Metal or DX12 adapter, best first: discrete > integrated > virtual > CPU
/// (a stable sort: the platform's order within a class).
fn ranked_adapters() -> Vec<wgpu::Adapter> {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = wgpu::Backends::PRIMARY;
    let instance = wgpu::Instance::new(desc);
    let mut adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY));
    adapters.sort_by_key(|a| rank(a.get_info().device_type));
    adapters
}

impl Engine {
    /// The adapters whet can open, best first; a name (or part of it) goes to
    /// [`EngineOptions::adapter`]. Empty when the platform has no Vulkan, Metal or DX12 driver.
    pub fn adapters() -> Vec<AdapterSummary> {
        ranked_adapters()
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let info = a.get_info();
                AdapterSummary {
                    name: info.name,
                    backend: format!("{:?}", info.backend),
                    device_type: format!("{:?}", info.device_type),
                    preferred: i == 0,
                }
            })
            .collect()
    }

    /// Open the best adapter: discrete > integrated > virtual > CPU, or the one named by
    /// `options.adapter`.
    pub fn new(options: EngineOptions) -> Result<Engine> {
        let mut adapters = ranked_adapters();
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
        let pick = match (&options.adapter, options.adapter_index) {
            (None, Some(i)) => {
                let best = adapters[0].get_info().device_type;
                i % adapters.iter().filter(|a| a.get_info().device_type == best).count()
            }
            _ => 0,
        };
        let adapter = adapters.remove(pick);
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
        let caps = memory::caps(options, &mut limits)?;
        // Subgroup operations, where the adapter has them, let the CPU-adapter matmul share
        // one load between 8 lanes (see shaders/matmul/matmul_subgroup.wgsl).
        // f16 storage and arithmetic, where offered, for half-precision activations.
        let features = adapter.features() & (wgpu::Features::SUBGROUP | wgpu::Features::SHADER_F16);
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
        // Dispatches are dropped on a dry engine, so no binding ever reads past this buffer.
        let dry = options.dry_run.then(|| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("whet dry-run stand-in"),
                size: super::buffers::MIN_BYTES,
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            })
        });
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
            binds: Mutex::new(BindCache::new(bind_cache::CAPACITY)),
            batch: Mutex::new(Batch::default()),
            profile: options.profile.then(|| Mutex::new(Default::default())),
            dump_shaders: options.dump_shaders,
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
            f16: features.contains(wgpu::Features::SHADER_F16) && !f16_disabled(),
            driver_robust: matches!(
                backend,
                wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12
            ),
            dry,
            stat_sync: Mutex::new(None),
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
}

/// `WHET_F16=0` opens the device as if it had no `SHADER_F16` (to compare, and for drivers
/// whose f16 is broken).
fn f16_disabled() -> bool {
    std::env::var("WHET_F16").is_ok_and(|v| v == "0")
}
