//! Tensors: f32 (or u32 index) data on the device, row-major and always contiguous; a frozen
//! weight may instead be block-quantized ([`quant`]).
//!
//! A [`Tensor`] is a cheap handle (`Arc`). Reshape shares storage; every other layout change
//! (permute, slice, concat) produces a fresh contiguous tensor through a copy kernel, so every
//! kernel can assume dense row-major input.

pub mod quant;
pub mod shape;

pub use quant::QuantType;

use std::sync::Arc;

use crate::engine::{Engine, Storage, View};
use crate::error::{Error, Result};
use crate::graph::Node;

/// Element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    /// IEEE half: activations of a mixed-precision run, on adapters with `SHADER_F16`
    /// (`Engine::has_f16`). Two to a word; a buffer is padded to whole words.
    F16,
    U32,
    /// GGML blocks, read only by the kernels of `ops::quant` (a frozen weight).
    Quant(QuantType),
}

impl DType {
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::U32 => "u32",
            DType::Quant(q) => q.name(),
        }
    }
}

/// What an allocation is for, as errors name it: the op (the source file that asked, found by
/// `#[track_caller]` so no op has to pass its name), the shape and the dtype, e.g.
/// `conv: f32 [32, 1280, 112, 112] (src/ops/conv.rs:512)`. Formatted only on an error or a new
/// buffer, never per step.
pub(crate) struct AllocFor<'a> {
    at: &'static std::panic::Location<'static>,
    shape: &'a [usize],
    dtype: DType,
}

impl<'a> AllocFor<'a> {
    #[track_caller]
    fn here(shape: &'a [usize], dtype: DType) -> Self {
        AllocFor { at: std::panic::Location::caller(), shape, dtype }
    }

    /// `src/ops/conv.rs` -> `conv`; `src/ops/mod.rs` -> `ops`.
    fn op(&self) -> &'static str {
        let path = std::path::Path::new(self.at.file());
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("tensor");
        match stem {
            "mod" | "lib" => {
                path.parent().and_then(|p| p.file_name()).and_then(|s| s.to_str()).unwrap_or(stem)
            }
            _ => stem,
        }
    }
}

impl std::fmt::Display for AllocFor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (op, at) = (self.op(), self.at);
        write!(f, "{op}: {} {:?} ({}:{})", self.dtype.name(), self.shape, at.file(), at.line())
    }
}

/// Identity of a tensor for gradient bookkeeping.
pub type TensorId = u64;

/// A device tensor. Cloning is cheap and shares data.
#[derive(Clone)]
pub struct Tensor(pub(crate) Arc<Inner>);

pub(crate) struct Inner {
    pub id: TensorId,
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub storage: Arc<Storage>,
    /// Byte offset into `storage` (non-zero only for views into a parameter arena).
    pub offset: u64,
    pub engine: Engine,
    pub requires_grad: bool,
    /// The op that produced this tensor, when it was recorded for backward.
    pub node: Option<Arc<Node>>,
}

impl Tensor {
    pub(crate) fn from_storage(
        engine: &Engine,
        storage: Arc<Storage>,
        shape: Vec<usize>,
        dtype: DType,
    ) -> Tensor {
        Tensor(Arc::new(Inner {
            id: engine.next_id(),
            shape,
            dtype,
            storage,
            offset: 0,
            engine: engine.clone(),
            requires_grad: false,
            node: None,
        }))
    }

    /// A tensor over `storage` starting at byte `offset` (a view into an arena). The caller
    /// guarantees the range fits and the offset is aligned for storage bindings.
    pub(crate) fn from_view(
        engine: &Engine,
        storage: Arc<Storage>,
        offset: u64,
        shape: Vec<usize>,
        id: TensorId,
    ) -> Tensor {
        Tensor(Arc::new(Inner {
            id,
            shape,
            dtype: DType::F32,
            storage,
            offset,
            engine: engine.clone(),
            requires_grad: false,
            node: None,
        }))
    }

    /// An uninitialised f32 tensor (contents are whatever the pooled buffer held).
    #[track_caller]
    pub(crate) fn empty(engine: &Engine, shape: &[usize]) -> Result<Tensor> {
        Self::empty_typed(engine, shape, DType::F32)
    }

    #[track_caller]
    pub(crate) fn empty_typed(engine: &Engine, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let n = checked_numel(shape)?;
        let bytes = match dtype {
            DType::F16 => half_bytes(engine, n)?,
            _ => n as u64 * 4,
        };
        let storage = engine.alloc(bytes, AllocFor::here(shape, dtype))?;
        Ok(Self::from_storage(engine, storage, shape.to_vec(), dtype))
    }

    /// Upload f32 data with the given shape.
    #[track_caller]
    pub fn from_slice(engine: &Engine, data: &[f32], shape: &[usize]) -> Result<Tensor> {
        let n = filled("from_slice", data.len(), shape)?;
        let what = AllocFor::here(shape, DType::F32);
        let storage = engine.upload_new(bytemuck::cast_slice(data), n as u64 * 4, what)?;
        Ok(Self::from_storage(engine, storage, shape.to_vec(), DType::F32))
    }

    /// Upload f32 data as an f16 tensor (each value rounded to nearest even on the host).
    #[track_caller]
    pub fn from_slice_f16(engine: &Engine, data: &[f32], shape: &[usize]) -> Result<Tensor> {
        let n = filled("from_slice_f16", data.len(), shape)?;
        let bytes = half_bytes(engine, n)?;
        let mut halves: Vec<u16> = data.iter().map(|&v| half::f16::from_f32(v).to_bits()).collect();
        halves.resize(bytes as usize / 2, 0);
        let what = AllocFor::here(shape, DType::F16);
        let storage = engine.upload_new(bytemuck::cast_slice(&halves), bytes, what)?;
        Ok(Self::from_storage(engine, storage, shape.to_vec(), DType::F16))
    }

    /// Upload u32 data (token ids, class labels) with the given shape.
    #[track_caller]
    pub fn from_u32(engine: &Engine, data: &[u32], shape: &[usize]) -> Result<Tensor> {
        let n = filled("from_u32", data.len(), shape)?;
        let what = AllocFor::here(shape, DType::U32);
        let storage = engine.upload_new(bytemuck::cast_slice(data), n as u64 * 4, what)?;
        Ok(Self::from_storage(engine, storage, shape.to_vec(), DType::U32))
    }

    /// A scalar (shape `[]`).
    #[track_caller]
    pub fn scalar(engine: &Engine, v: f32) -> Result<Tensor> {
        Self::from_slice(engine, &[v], &[])
    }

    /// A tensor filled with `value`, computed on the device (no upload).
    #[track_caller]
    pub fn full(engine: &Engine, shape: &[usize], value: f32) -> Result<Tensor> {
        let t = Self::empty(engine, shape)?;
        crate::ops::fill::fill(&t, value)?;
        Ok(t)
    }

    #[track_caller]
    pub fn zeros(engine: &Engine, shape: &[usize]) -> Result<Tensor> {
        Self::full(engine, shape, 0.0)
    }

    #[track_caller]
    pub fn ones(engine: &Engine, shape: &[usize]) -> Result<Tensor> {
        Self::full(engine, shape, 1.0)
    }

    /// A trainable leaf: gradients are computed for it by `backward`.
    #[track_caller]
    pub fn param(engine: &Engine, data: &[f32], shape: &[usize]) -> Result<Tensor> {
        Ok(Self::from_slice(engine, data, shape)?.requires_grad_(true))
    }

    /// The same data as a leaf that does (or does not) require grad. Drops any recorded history.
    pub fn requires_grad_(self, on: bool) -> Tensor {
        let inner = &self.0;
        Tensor(Arc::new(Inner {
            id: inner.id,
            shape: inner.shape.clone(),
            dtype: inner.dtype,
            storage: inner.storage.clone(),
            offset: inner.offset,
            engine: inner.engine.clone(),
            requires_grad: on,
            node: None,
        }))
    }

    /// The same data, cut from the graph: a new leaf that needs no gradient.
    pub fn detach(&self) -> Tensor {
        self.view_as(&self.0.shape)
    }

    pub fn id(&self) -> TensorId {
        self.0.id
    }
    pub fn shape(&self) -> &[usize] {
        &self.0.shape
    }
    pub fn rank(&self) -> usize {
        self.0.shape.len()
    }
    pub fn numel(&self) -> usize {
        shape::numel(&self.0.shape)
    }
    pub fn dtype(&self) -> DType {
        self.0.dtype
    }
    pub fn engine(&self) -> &Engine {
        &self.0.engine
    }
    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad
    }
    pub(crate) fn node(&self) -> Option<&Arc<Node>> {
        self.0.node.as_ref()
    }
    pub(crate) fn storage(&self) -> View<'_> {
        View { storage: &self.0.storage, offset: self.0.offset }
    }

    /// The shared storage itself (arena construction).
    pub(crate) fn storage_arc(&self) -> &Arc<Storage> {
        &self.0.storage
    }
    /// Bytes of data on the device (numel * 4, or the blocks of a quantized tensor).
    pub fn nbytes(&self) -> u64 {
        match self.0.dtype {
            DType::Quant(q) => q.device_bytes(self.numel()),
            DType::F16 => (self.numel() as u64 * 2).next_multiple_of(4),
            _ => self.numel() as u64 * 4,
        }
    }

    /// f32 or f16 (kernels written over `act` take either), or a typed error naming `op`.
    pub(crate) fn expect_float(&self, op: &'static str) -> Result<()> {
        if !matches!(self.0.dtype, DType::F32 | DType::F16) {
            return Err(Error::DType { op, expected: "f32 or f16", got: self.0.dtype.name() });
        }
        Ok(())
    }

    /// Whether the data is f16 (kernels then run their half variant).
    pub(crate) fn is_half(&self) -> bool {
        self.0.dtype == DType::F16
    }

    pub(crate) fn expect_f32(&self, op: &'static str) -> Result<()> {
        if self.0.dtype != DType::F32 {
            return Err(Error::DType { op, expected: "f32", got: self.0.dtype.name() });
        }
        Ok(())
    }

    /// Read the data back as f32 (submits pending work and waits); a quantized tensor is
    /// dequantized on the host.
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        if let DType::Quant(q) = self.0.dtype {
            return self.dequantized_on_host(q);
        }
        if self.0.dtype == DType::F16 {
            let bytes = self.0.engine.download(self.storage(), self.nbytes())?;
            let halves: Vec<u16> = bytemuck::pod_collect_to_vec(&bytes);
            return Ok(halves[..self.numel()].iter().map(|&h| half::f16::from_bits(h).to_f32()).collect());
        }
        self.expect_f32("to_vec")?;
        let bytes = self.0.engine.download(self.storage(), self.nbytes())?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// Read the data back as u32.
    pub fn to_vec_u32(&self) -> Result<Vec<u32>> {
        let bytes = self.0.engine.download(self.storage(), self.nbytes())?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// Read a one-element tensor back.
    pub fn item(&self) -> Result<f32> {
        if self.numel() != 1 {
            return Err(Error::arg(
                "item",
                format!("tensor of shape {:?} is not a single value", self.shape()),
            ));
        }
        Ok(self.to_vec()?[0])
    }

    /// A tensor with `node` attached as its producer.
    pub(crate) fn with_node(self, node: Arc<Node>) -> Tensor {
        let inner = &self.0;
        Tensor(Arc::new(Inner {
            id: inner.id,
            shape: inner.shape.clone(),
            dtype: inner.dtype,
            storage: inner.storage.clone(),
            offset: inner.offset,
            engine: inner.engine.clone(),
            requires_grad: true,
            node: Some(node),
        }))
    }

    /// Same storage, new shape (no copy, no autodiff: see `ops::layout::reshape`).
    pub(crate) fn view_as(&self, shape: &[usize]) -> Tensor {
        let mut t = Self::from_storage(&self.0.engine, self.0.storage.clone(), shape.to_vec(), self.0.dtype);
        Arc::get_mut(&mut t.0).expect("fresh tensor").offset = self.0.offset;
        t
    }
}

/// Device bytes of `n` f16 values (whole words), or a typed error on an adapter without f16.
fn half_bytes(engine: &Engine, n: usize) -> Result<u64> {
    if !engine.has_f16() {
        return Err(Error::DType { op: "f16 tensor", expected: "an adapter with SHADER_F16", got: "f16" });
    }
    Ok((n as u64 * 2).next_multiple_of(4))
}

/// The element count of `shape` when `len` values fill it exactly, or a typed error naming `op`.
fn filled(op: &'static str, len: usize, shape: &[usize]) -> Result<usize> {
    let n = checked_numel(shape)?;
    if n != len {
        return Err(Error::arg(op, format!("{len} values do not fill shape {shape:?} ({n} elements)")));
    }
    Ok(n)
}

fn checked_numel(shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|n| n.checked_mul(4).is_some())
        .ok_or_else(|| Error::arg("tensor", format!("shape {shape:?} overflows")))
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Tensor(id={}, shape={:?}, {}{})",
            self.0.id,
            self.0.shape,
            self.0.dtype.name(),
            if self.0.requires_grad { ", requires_grad" } else { "" }
        )
    }
}
