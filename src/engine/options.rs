//! How to pick and open a device, and the engine's debugging switches.
//!
//! The library reads no environment variables: a host program embedding whet decides
//! everything through these fields. The `whet` CLI maps its environment into them with
//! [`EngineOptions::from_env`], which the library itself never calls.

use std::time::Duration;

/// How to pick and open a device.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Case-insensitive substring of the adapter name to use; `None` takes the best adapter.
    pub adapter: Option<String>,
    /// Without `adapter`: take the `i`-th (modulo their count) of the adapters of the best kind
    /// instead of the first, so the ranks of a data-parallel job on one machine (their local
    /// ranks) spread over its GPUs.
    pub adapter_index: Option<usize>,
    /// Longest a single GPU wait may take before it fails with [`crate::Error::Timeout`].
    pub timeout: Duration,
    /// Bytes one storage binding (so one tensor) may hold, below the adapter's own limit:
    /// leaves room for other work on the device, and lets tests reach the limit with small
    /// shapes. At least 4096.
    pub max_binding_bytes: Option<u64>,
    /// Device memory the engine's storage buffers (tensors, optimizer arenas, the pool) may
    /// take; past it an allocation is [`crate::Error::OutOfMemory`], as with PyTorch's
    /// per-process memory fraction. Useful on a shared GPU, and on CPU adapters such as
    /// lavapipe, whose allocations never fail and exhaust host memory instead.
    pub max_memory_bytes: Option<u64>,
    /// Submit and wait for every dispatch alone and add its wall time to its kernel's total
    /// ([`crate::Engine::profile`]): a breakdown for tuning, far slower than normal runs.
    pub profile: bool,
    /// Print each shader's full source and each pipeline's name to stderr as they compile.
    pub dump_shaders: bool,
    /// Count, don't compute: tensors get no memory of their own (they share one small buffer),
    /// dispatches, copies and uploads are dropped, and readbacks return zeros, while the
    /// buffer pool keeps its exact accounting. Running a training step on such an engine
    /// measures the device memory the step would take, in seconds and before any memory is
    /// spent: `whet plan` ([`crate::run::plan`]). Results computed on it are meaningless.
    pub dry_run: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            adapter: None,
            adapter_index: None,
            timeout: Duration::from_secs(120),
            max_binding_bytes: None,
            max_memory_bytes: None,
            profile: false,
            dump_shaders: false,
            dry_run: false,
        }
    }
}

impl EngineOptions {
    /// The defaults with the CLI's environment applied: `WHET_ADAPTER` (part of an adapter
    /// name), `WHET_PROFILE` (set and not `0`), `WHET_DUMP_SHADERS` (set), `WHET_WAIT_SECS`
    /// (a positive number of seconds for [`EngineOptions::timeout`]: a large model's step is one
    /// submit, minutes long on a CPU adapter) and `WHET_MAX_MEMORY` (a size such as `8GiB`,
    /// `6GB` or bytes for [`EngineOptions::max_memory_bytes`]: the device memory to plan and
    /// run within), and an MPI launcher's local rank ([`EngineOptions::adapter_index`];
    /// `WHET_ADAPTER` wins over it). The one place these variables are read; the `whet` binary calls it, the
    /// library does not. A value that does not parse is an error naming it.
    pub fn from_env() -> crate::Result<Self> {
        let wait = std::env::var("WHET_WAIT_SECS").ok().and_then(|v| v.trim().parse::<f64>().ok());
        let default = EngineOptions::default();
        let max_memory_bytes = match std::env::var("WHET_MAX_MEMORY") {
            Ok(v) if !v.trim().is_empty() => Some(parse_size("WHET_MAX_MEMORY", &v)?),
            _ => None,
        };
        Ok(EngineOptions {
            max_memory_bytes,
            adapter: std::env::var("WHET_ADAPTER").ok().filter(|s| !s.is_empty()),
            adapter_index: crate::dist::local_rank(),
            profile: std::env::var_os("WHET_PROFILE").is_some_and(|v| v != "0"),
            dump_shaders: std::env::var_os("WHET_DUMP_SHADERS").is_some(),
            timeout: wait
                .filter(|s| s.is_finite() && *s > 0.0)
                .map_or(default.timeout, Duration::from_secs_f64),
            ..default
        })
    }
}

/// A memory size as people write it (`8GiB`, `6 GB`, `512MiB`, bytes); `what` names the
/// setting in the error.
pub fn parse_size(what: &str, text: &str) -> crate::Result<u64> {
    match text.trim().parse::<bytesize::ByteSize>() {
        Ok(b) if b.as_u64() > 0 => Ok(b.as_u64()),
        _ => Err(crate::Error::arg(
            "engine",
            format!("{what} = {text:?}: not a memory size (write e.g. 8GiB, 6GB or a byte count)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::EngineOptions;

    // The only test in the crate that sets these variables (the process's environment is
    // shared by every test thread).
    #[test]
    fn only_from_env_reads_the_environment() {
        std::env::set_var("WHET_ADAPTER", "some-gpu");
        std::env::set_var("WHET_PROFILE", "1");
        std::env::set_var("WHET_DUMP_SHADERS", "1");
        std::env::set_var("WHET_WAIT_SECS", "900");
        std::env::set_var("WHET_MAX_MEMORY", "6GiB");
        let plain = EngineOptions::default();
        let cli = EngineOptions::from_env().unwrap();
        std::env::set_var("WHET_PROFILE", "0");
        std::env::set_var("WHET_WAIT_SECS", "-3");
        let zero = EngineOptions::from_env().unwrap();
        let (profile_zero, bad_wait) = (zero.profile, zero.timeout);
        std::env::set_var("WHET_MAX_MEMORY", "lots");
        let bad_memory = EngineOptions::from_env().unwrap_err().to_string();
        for v in ["WHET_ADAPTER", "WHET_PROFILE", "WHET_DUMP_SHADERS", "WHET_WAIT_SECS", "WHET_MAX_MEMORY"] {
            std::env::remove_var(v);
        }
        assert_eq!(cli.max_memory_bytes, Some(6 << 30));
        assert_eq!(plain.max_memory_bytes, None);
        assert!(bad_memory.contains("WHET_MAX_MEMORY") && bad_memory.contains("lots"), "{bad_memory}");
        assert_eq!(cli.timeout, std::time::Duration::from_secs(900));
        assert_eq!(bad_wait, plain.timeout, "a wait that is not a positive number keeps the default");
        assert_eq!((plain.adapter, plain.profile, plain.dump_shaders), (None, false, false));
        assert_eq!((cli.adapter.as_deref(), cli.profile, cli.dump_shaders), (Some("some-gpu"), true, true));
        assert!(!profile_zero, "WHET_PROFILE=0 means off");
    }
}
