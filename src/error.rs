//! One error type for the whole crate. Every variant carries what a user needs to act on it:
//! the op and both shapes for a shape error, the key for a missing weight, naga's message for a
//! shader that does not compile. Library code returns `Result`; it never panics on user input.
//!
//! A host program matches the variants it can act on: [`Error::OutOfMemory`] and
//! [`Error::BatchTooBig`] and [`Error::DoesNotFit`] (smaller batch or model), [`Error::DeviceLost`] (open a new engine),
//! [`Error::Format`] (a bad data or weight file, with its path and line when it has lines),
//! [`Error::RunMismatch`] (the run folder or its checkpoint belongs to other settings: start
//! over or use another folder), [`Error::Timeout`]. The enum is `#[non_exhaustive]`: later
//! versions add variants, so a host's `match` keeps a catch-all arm that shows the message.

use std::fmt;

/// The crate-wide result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in whet.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No adapter (GPU, integrated or CPU rasteriser) could be found or opened.
    #[error("no usable GPU adapter: {0}")]
    NoAdapter(String),
    /// The device refused to open with the adapter's limits.
    #[error("could not open device on adapter '{adapter}': {reason}")]
    DeviceRequest { adapter: String, reason: String },
    /// The device was lost (driver reset, GPU removed, `Device::destroy`); every later op,
    /// upload, readback and wait on the same engine returns this at once. Open a new engine.
    #[error("GPU device lost: {0}")]
    DeviceLost(String),
    /// A wgpu validation error that our own checks should have caught first.
    #[error("GPU validation error in {context}: {message}")]
    Gpu { context: String, message: String },
    /// A shader failed naga's parse or validation, or pipeline creation.
    #[error("shader '{shader}' failed to compile: {message}")]
    ShaderCompile { shader: String, message: String },
    /// The device ran out of memory while allocating `bytes` for `what` (the op and shape), with
    /// `in_use` bytes of tensors alive; `limit` is the engine's memory cap when that was the
    /// bound (`EngineOptions::max_memory_bytes`), `None` when the driver refused. Distinct from
    /// `BufferTooBig`: freeing tensors can make it fit, and the engine stays usable.
    #[error("out of GPU memory allocating {bytes} bytes for {what} ({in_use} bytes in use{})", memory_limit_suffix(.limit))]
    OutOfMemory { what: String, bytes: u64, in_use: u64, limit: Option<u64> },
    /// A tensor can never fit in one buffer or binding on this adapter; `what` names the op and
    /// the shape. Raised before any GPU call.
    #[error("{what} needs {bytes} bytes but this adapter allows at most {limit} bytes per {limit_name}")]
    BufferTooBig { what: String, bytes: u64, limit: u64, limit_name: &'static str },
    /// A training batch does not fit the device (`source` is the allocation that failed) and
    /// was not split into micro-batches; `fits` is the largest batch that did, `None` when not
    /// even one item fits.
    #[error("a batch of {batch} items does not fit this adapter: {source}; {}", batch_hint(*.batch, .fits))]
    BatchTooBig {
        batch: usize,
        fits: Option<usize>,
        #[source]
        source: Box<Error>,
    },
    /// A run's memory plan (`run::plan`) needs more device memory than the device has; `plan`
    /// is the plan as `whet plan` prints it, with the changes that would make it fit. Raised
    /// before the first step, so nothing is lost.
    #[error("the run needs {needed} bytes of device memory but {available} are available; nothing was trained\n{plan}")]
    DoesNotFit { needed: u64, available: u64, plan: String },
    /// A GPU wait exceeded the engine's timeout. The work was submitted and still runs: the
    /// engine stays usable, and a later wait (see `Engine::set_timeout`) sees it finish.
    #[error("GPU work did not finish within {0:?}")]
    Timeout(std::time::Duration),
    /// Shapes do not fit the op.
    #[error("{op}: incompatible shapes {lhs} and {rhs}{}", detail_suffix(.detail))]
    Shape { op: &'static str, lhs: ShapeFmt, rhs: ShapeFmt, detail: String },
    /// An argument is out of range (axis, index, probability, class id...).
    #[error("{op}: {message}")]
    InvalidArgument { op: &'static str, message: String },
    /// Data type does not match what the op accepts.
    #[error("{op}: expected dtype {expected}, got {got}")]
    DType { op: &'static str, expected: &'static str, got: &'static str },
    /// `backward` was called on a graph whose saved state was already consumed.
    #[error("backward through '{op}' a second time: the graph was consumed by an earlier backward (record it again)")]
    GraphConsumed { op: &'static str },
    /// A gradient was requested from something that is not a scalar or does not require grad.
    #[error("backward: {0}")]
    Backward(String),
    /// The feature is not available on this adapter.
    #[error("unsupported on this adapter: {0}")]
    Unsupported(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A checkpoint does not fit the model: every missing, unexpected, mis-shaped or non-finite
    /// tensor at once, so one run shows the whole problem.
    #[error("{0}")]
    Binding(Box<crate::nn::BindingReport>),
    /// A data or weight file is malformed.
    #[error("{path}{}: {message}", line_suffix(.line))]
    Format { path: String, line: Option<usize>, message: String },
    /// Training gave up: `consecutive` steps in a row had a non-finite loss or gradient norm
    /// (each was skipped, nothing was updated); `items` are the training items of the last one.
    #[error(
        "training diverged: {consecutive} consecutive steps had a non-finite loss or gradient norm \
         (after optimizer step {step}; items of the last one: {items:?}); lower the learning rate or check those items"
    )]
    NonFiniteSteps { consecutive: usize, step: u64, items: Vec<usize> },
    /// A tensor about to be saved holds NaN or infinity; nothing was written.
    #[error("refusing to save non-finite weights: '{path}' holds NaN or infinity")]
    NonFiniteWeights { path: String },
    /// The run folder holds a run with other settings, data or model, or its latest checkpoint
    /// was written with other loop settings than this run's (a resume mismatch): nothing in it
    /// was touched.
    #[error(
        "{dir} holds another run; nothing in it was touched. What differs (old → new):\n  {}\n\
         To start over in that folder: `whet train --fresh` (library: `Resume::Fresh`); to keep \
         both runs: another output folder (`--out DIR` or `output.dir`)",
        .changes.join("\n  ")
    )]
    RunMismatch { dir: String, changes: Vec<String> },
    /// The folder already holds a run and the caller did not say whether to continue it.
    #[error(
        "{dir} already holds a run: continue it (`Resume::IfSame`, same settings only), start \
         over (`Resume::Fresh`) or use another folder"
    )]
    RunExists { dir: String },
    /// Another process is training in this run folder.
    #[error("{dir} is in use by another whet process ({holder}): wait for it, or use another output folder")]
    RunLocked { dir: String, holder: String },
    /// A checkpoint or run folder of a format this whet does not read.
    #[error(
        "{path}: checkpoint format {found} (written by {written_by}); this whet ({}) reads format \
         {supported} only: resume it with the whet that wrote it, or start over (`--fresh`)",
        env!("CARGO_PKG_VERSION")
    )]
    CheckpointVersion { path: String, found: u32, written_by: String, supported: u32 },
}

fn detail_suffix(d: &str) -> String {
    if d.is_empty() {
        String::new()
    } else {
        format!(" ({d})")
    }
}

fn memory_limit_suffix(l: &Option<u64>) -> String {
    l.map(|l| format!(", limit {l} bytes set by EngineOptions::max_memory_bytes")).unwrap_or_default()
}

fn batch_hint(batch: usize, fits: &Option<usize>) -> String {
    match fits {
        Some(k) => format!(
            "the largest batch that fits is {k}: set batch_size = {k} and grad_accum = {} for the same \
             step, or let the driver split it (split_batches)",
            batch.div_ceil(*k)
        ),
        None => "not even one item fits: shrink the inputs (image size, sequence length) or the model".into(),
    }
}

fn line_suffix(l: &Option<usize>) -> String {
    l.map(|l| format!(":{l}")).unwrap_or_default()
}

/// A shape printed the way PyTorch prints it: `[2, 3, 4]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeFmt(pub Vec<usize>);

impl fmt::Display for ShapeFmt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl Error {
    /// Shorthand for a shape error naming the op and both shapes.
    pub fn shape(op: &'static str, lhs: &[usize], rhs: &[usize], detail: impl Into<String>) -> Self {
        Error::Shape { op, lhs: ShapeFmt(lhs.to_vec()), rhs: ShapeFmt(rhs.to_vec()), detail: detail.into() }
    }

    /// Shorthand for an invalid argument.
    pub fn arg(op: &'static str, message: impl Into<String>) -> Self {
        Error::InvalidArgument { op, message: message.into() }
    }

    /// The message without an invalid argument's operation prefix: for an error re-raised
    /// under a recipe key, which names the place itself.
    pub fn detail(&self) -> String {
        match self {
            Error::InvalidArgument { message, .. } => message.clone(),
            e => e.to_string(),
        }
    }

    /// Shorthand for an I/O error with its path.
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Error::Io { path: path.as_ref().display().to_string(), source }
    }
}
