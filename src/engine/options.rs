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
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            adapter: None,
            timeout: Duration::from_secs(120),
            max_binding_bytes: None,
            max_memory_bytes: None,
            profile: false,
            dump_shaders: false,
        }
    }
}

impl EngineOptions {
    /// The defaults with the CLI's environment applied: `WHET_ADAPTER` (part of an adapter
    /// name), `WHET_PROFILE` (set and not `0`), `WHET_DUMP_SHADERS` (set) and `WHET_WAIT_SECS`
    /// (a positive number of seconds for [`EngineOptions::timeout`]: a large model's step is one
    /// submit, minutes long on a CPU adapter). The one place these variables are read; the
    /// `whet` binary calls it, the library does not.
    pub fn from_env() -> Self {
        let wait = std::env::var("WHET_WAIT_SECS").ok().and_then(|v| v.trim().parse::<f64>().ok());
        let default = EngineOptions::default();
        EngineOptions {
            adapter: std::env::var("WHET_ADAPTER").ok().filter(|s| !s.is_empty()),
            profile: std::env::var_os("WHET_PROFILE").is_some_and(|v| v != "0"),
            dump_shaders: std::env::var_os("WHET_DUMP_SHADERS").is_some(),
            timeout: wait
                .filter(|s| s.is_finite() && *s > 0.0)
                .map_or(default.timeout, Duration::from_secs_f64),
            ..default
        }
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
        let plain = EngineOptions::default();
        let cli = EngineOptions::from_env();
        std::env::set_var("WHET_PROFILE", "0");
        std::env::set_var("WHET_WAIT_SECS", "-3");
        let (profile_zero, bad_wait) = (EngineOptions::from_env().profile, EngineOptions::from_env().timeout);
        for v in ["WHET_ADAPTER", "WHET_PROFILE", "WHET_DUMP_SHADERS", "WHET_WAIT_SECS"] {
            std::env::remove_var(v);
        }
        assert_eq!(cli.timeout, std::time::Duration::from_secs(900));
        assert_eq!(bad_wait, plain.timeout, "a wait that is not a positive number keeps the default");
        assert_eq!((plain.adapter, plain.profile, plain.dump_shaders), (None, false, false));
        assert_eq!((cli.adapter.as_deref(), cli.profile, cli.dump_shaders), (Some("some-gpu"), true, true));
        assert!(!profile_zero, "WHET_PROFILE=0 means off");
    }
}
