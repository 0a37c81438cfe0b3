//! The flat, ordered store of a model's named tensors.
//!
//! Paths are the names users know from their ecosystem (HF / torchvision parameter names), so
//! `freeze("bert.encoder.layer.0.*")` or a learning-rate group on `layer4.*` mean what they say.
//! A parameter is frozen by replacing its handle with one that does not require grad: ops then
//! record no backward node for it, the backward pass computes no gradient for it, and an
//! optimizer that only sees gradients never allocates state for it.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// What a stored tensor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// A learnable parameter (may be frozen).
    Param,
    /// State that is saved and loaded but never trained (BatchNorm running statistics).
    Buffer,
}

/// Where a tensor's initial value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Loaded from the checkpoint.
    Checkpoint,
    /// Freshly initialised (a new task head).
    Fresh,
}

/// Handle of one entry in a [`Params`] store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pid(pub(crate) usize);

/// One named tensor.
#[derive(Clone)]
pub struct Entry {
    pub path: String,
    pub tensor: Tensor,
    pub slot: Slot,
    pub origin: Origin,
    /// Depth in the model (0 = embeddings or stem, one per block, last = head), set by the
    /// model; used by depth selectors and layer-wise learning rates.
    pub depth: usize,
    /// A linear weight stored `[in, out]` (GPT-2 Conv1D) rather than torch's `[out, in]`.
    pub in_major: bool,
}

/// A LoRA adapter on one linear weight: `W x + scale · B (A x)`.
#[derive(Debug, Clone, Copy)]
pub struct Lora {
    /// `[rank, in]`.
    pub a: Pid,
    /// `[out, rank]`.
    pub b: Pid,
    pub scale: f32,
}

impl Entry {
    /// A parameter that currently receives gradients.
    pub fn trainable(&self) -> bool {
        self.slot == Slot::Param && self.tensor.requires_grad()
    }
}

/// A model's named tensors, in registration order (the order of the checkpoint's state dict).
#[derive(Clone, Default)]
pub struct Params {
    entries: Vec<Entry>,
    by_path: HashMap<String, usize>,
    lora: HashMap<Pid, Lora>,
}

impl Params {
    pub fn new() -> Params {
        Params::default()
    }

    /// Register a tensor under a new path. Parameters are made trainable, buffers not.
    pub fn push(&mut self, path: &str, tensor: Tensor, slot: Slot, origin: Origin) -> Result<Pid> {
        if self.by_path.contains_key(path) {
            return Err(Error::arg("params", format!("path '{path}' registered twice")));
        }
        let tensor = tensor.requires_grad_(slot == Slot::Param);
        self.by_path.insert(path.to_string(), self.entries.len());
        self.entries.push(Entry { path: path.to_string(), tensor, slot, origin, depth: 0, in_major: false });
        Ok(Pid(self.entries.len() - 1))
    }

    /// The current tensor of `id`.
    pub fn get(&self, id: Pid) -> &Tensor {
        &self.entries[id.0].tensor
    }

    /// The entry of `id`.
    pub fn entry(&self, id: Pid) -> &Entry {
        &self.entries[id.0]
    }

    /// The handle of `path`, if registered.
    pub fn find(&self, path: &str) -> Option<Pid> {
        self.by_path.get(path).map(|&i| Pid(i))
    }

    /// The tensor at `path`, or a typed error naming it.
    pub fn by_path(&self, path: &str) -> Result<&Tensor> {
        self.find(path)
            .map(|id| self.get(id))
            .ok_or_else(|| Error::arg("params", format!("no parameter named '{path}'")))
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Replace the tensor of `id` (same shape), keeping its trainable flag. Used for running
    /// statistics and to load new values into a parameter.
    pub fn replace(&mut self, id: Pid, tensor: Tensor) -> Result<()> {
        let e = &mut self.entries[id.0];
        if tensor.shape() != e.tensor.shape() {
            return Err(Error::shape("params.replace", e.tensor.shape(), tensor.shape(), e.path.clone()));
        }
        let on = e.tensor.requires_grad();
        e.tensor = tensor.detach().requires_grad_(on);
        Ok(())
    }

    /// Put a new tensor of any shape under `id` (a replaced task head), trainable.
    pub fn reset(&mut self, id: Pid, tensor: Tensor, origin: Origin) -> Result<()> {
        let e = &mut self.entries[id.0];
        e.tensor = tensor.detach().requires_grad_(e.slot == Slot::Param);
        e.origin = origin;
        Ok(())
    }

    /// Point `id` at an arena view holding its current value (the optimizer's layout); the
    /// view keeps the parameter's identity and is trainable.
    pub(crate) fn reset_view(&mut self, id: Pid, view: Tensor) -> Result<()> {
        let e = &mut self.entries[id.0];
        if view.shape() != e.tensor.shape() {
            return Err(Error::shape("params.reset_view", e.tensor.shape(), view.shape(), e.path.clone()));
        }
        e.tensor = view.requires_grad_(true);
        Ok(())
    }

    /// Put exactly `tensor` (its identity and grad flag) under `id`: a checkpointed block's
    /// recomputation binds its own leaves in place of the parameters (`graph::checkpoint`).
    pub(crate) fn set_exact(&mut self, id: Pid, tensor: Tensor) {
        self.entries[id.0].tensor = tensor;
    }

    /// Upload new values into `path` (same element count and shape).
    pub fn assign(&mut self, path: &str, data: &[f32]) -> Result<()> {
        let id =
            self.find(path).ok_or_else(|| Error::arg("params.assign", format!("no parameter '{path}'")))?;
        let old = self.get(id);
        // A quantized weight restored from a checkpoint holds the values it already has
        // (frozen weights never move): keep its blocks rather than expanding it to f32.
        if old.quant_type().is_some() && old.numel() == data.len() && old.to_vec()? == data {
            return Ok(());
        }
        let t = Tensor::from_slice(old.engine(), data, old.shape())?;
        self.replace(id, t)
    }

    /// Freeze (`trainable = false`) or unfreeze every parameter whose path satisfies `select`;
    /// returns how many changed. Buffers are never trainable. A block-quantized weight that
    /// becomes trainable is expanded to f32 first (its blocks take no gradient).
    pub fn set_trainable_where(&mut self, select: impl Fn(&str) -> bool, trainable: bool) -> Result<usize> {
        let mut changed = 0;
        for e in &mut self.entries {
            if e.slot == Slot::Param && select(&e.path) && e.tensor.requires_grad() != trainable {
                e.tensor = e.tensor.clone().requires_grad_(trainable);
                changed += 1;
            }
        }
        self.expand_trainable()?;
        Ok(changed)
    }

    /// Expand every trainable block-quantized weight to f32 (on the device); returns how many.
    /// Frozen ones stay quantized.
    pub fn expand_trainable(&mut self) -> Result<usize> {
        let mut n = 0;
        for e in &mut self.entries {
            if e.trainable() && e.tensor.quant_type().is_some() {
                let _g = e.tensor.engine().no_grad();
                e.tensor = crate::ops::quant::dequantize(&e.tensor)?.requires_grad_(true);
                n += 1;
            }
        }
        Ok(n)
    }

    /// Block-quantize every frozen 2-D parameter whose rows are whole blocks of `qt` and that is
    /// stored `[out, in]` (linear weights and embedding tables): `model.quantize` for an f32
    /// checkpoint. Returns how many were quantized. One tensor at a time is read back and
    /// quantized on the host, so the transient memory is one weight.
    pub fn quantize_frozen(&mut self, qt: crate::tensor::QuantType) -> Result<usize> {
        let mut n = 0;
        for e in &mut self.entries {
            let t = &e.tensor;
            let fits = t.rank() == 2 && t.shape()[1].is_multiple_of(qt.block_elems());
            if e.slot != Slot::Param || t.requires_grad() || e.in_major || !fits || t.quant_type().is_some() {
                continue;
            }
            let blocks = crate::weights::quantize::quantize(qt.weight_dtype(), &t.to_vec()?)
                .map_err(|m| Error::arg("model.quantize", format!("{}: {m}", e.path)))?;
            e.tensor = Tensor::from_quantized(t.engine(), qt, &blocks, t.shape())?;
            n += 1;
        }
        Ok(n)
    }

    /// Mark a linear weight as stored `[in, out]` (GPT-2 Conv1D).
    pub(crate) fn set_in_major(&mut self, id: Pid) {
        self.entries[id.0].in_major = true;
    }

    /// The LoRA adapter of a linear weight, if any.
    pub fn lora_of(&self, weight: Pid) -> Option<&Lora> {
        self.lora.get(&weight)
    }

    /// Every (weight, adapter) pair.
    pub fn loras(&self) -> impl Iterator<Item = (Pid, &Lora)> {
        self.lora.iter().map(|(k, v)| (*k, v))
    }

    pub(crate) fn attach_lora(&mut self, weight: Pid, lora: Lora) {
        self.lora.insert(weight, lora);
    }

    /// Set every entry's depth from its path (models call this once they are built).
    pub fn set_depths(&mut self, depth_of: impl Fn(&str) -> usize) {
        for e in &mut self.entries {
            e.depth = depth_of(&e.path);
        }
    }

    /// Largest depth of any entry.
    pub fn max_depth(&self) -> usize {
        self.entries.iter().map(|e| e.depth).max().unwrap_or(0)
    }

    /// Freeze every parameter `select` matches; returns how many were newly frozen. A pattern
    /// that matches nothing is an error (a typo must not silently train everything).
    pub fn freeze(&mut self, select: &crate::nn::Select) -> Result<usize> {
        self.set_trainable(select, false)
    }

    /// Unfreeze every parameter `select` matches; returns how many were newly unfrozen.
    pub fn unfreeze(&mut self, select: &crate::nn::Select) -> Result<usize> {
        self.set_trainable(select, true)
    }

    fn set_trainable(&mut self, select: &crate::nn::Select, on: bool) -> Result<usize> {
        let m = select.compile()?;
        let hits =
            self.entries.iter().filter(|e| e.slot == Slot::Param && m.matches(&e.path, e.depth)).count();
        if hits == 0 {
            return Err(Error::arg("params", format!("{select:?} matches no parameter")));
        }
        let depths: HashMap<String, usize> = self.entries.iter().map(|e| (e.path.clone(), e.depth)).collect();
        self.set_trainable_where(|p| m.matches(p, depths[p]), on)
    }

    /// Trainable parameters, in order.
    pub fn trainable(&self) -> Vec<&Tensor> {
        self.entries.iter().filter(|e| e.trainable()).map(|e| &e.tensor).collect()
    }

    /// Every parameter (frozen or not), in order.
    pub fn parameters(&self) -> Vec<&Tensor> {
        self.entries.iter().filter(|e| e.slot == Slot::Param).map(|e| &e.tensor).collect()
    }

    /// Device bytes of every entry, by dtype name (`f32`, `q4_1`, …).
    pub fn bytes_by_dtype(&self) -> std::collections::BTreeMap<String, u64> {
        let mut out = std::collections::BTreeMap::new();
        for e in &self.entries {
            *out.entry(e.tensor.dtype().name().to_string()).or_insert(0) += e.tensor.nbytes();
        }
        out
    }

    /// Element count of the parameters; of the trainable ones only with `trainable_only`.
    pub fn count(&self, trainable_only: bool) -> usize {
        self.entries
            .iter()
            .filter(|e| e.slot == Slot::Param && (!trainable_only || e.trainable()))
            .map(|e| e.tensor.numel())
            .sum()
    }
}
