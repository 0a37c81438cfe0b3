//! Embedding lookup with a deterministic backward (`shaders/embedding/embedding.wgsl`).
//!
//! Ids arrive from the host, where they are checked against the vocabulary (an out-of-range id
//! would silently read zeros on the GPU) and grouped by value for the backward pass: each table
//! row's gradient is then summed by one invocation in a fixed order, with no float atomics.

use crate::engine::{shaders, Binding, Kernel};
use crate::error::{Error, Result};
use crate::graph::{bytes_of, record, Backward};
use crate::ops::launch_1d;
use crate::tensor::{DType, Tensor};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    dim: u32,
    _pad: [u32; 2],
}

struct EmbeddingBackward {
    vocab: usize,
    dim: usize,
    uniq: Tensor,
    offsets: Tensor,
    pos: Tensor,
}

impl Backward for EmbeddingBackward {
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let e = g.engine();
        let gt = Tensor::zeros(e, &[self.vocab, self.dim])?;
        let u = self.uniq.numel();
        let p = Params { rows: u as u32, dim: self.dim as u32, _pad: [0; 2] };
        launch_1d(
            e,
            &Kernel::new(&shaders::EMBEDDING, "embedding_backward"),
            &p,
            &[
                Binding::read(self.uniq.storage(), self.uniq.nbytes()),
                Binding::read(self.offsets.storage(), self.offsets.nbytes()),
                Binding::read(self.pos.storage(), self.pos.nbytes()),
                Binding::read(g.storage(), g.nbytes()),
                Binding::write(gt.storage(), gt.nbytes()),
            ],
            u * self.dim,
        )?;
        Ok(vec![Some(gt)])
    }
    fn saved_bytes(&self) -> u64 {
        bytes_of(&[Some(&self.uniq), Some(&self.offsets), Some(&self.pos)])
    }
}

/// Look up rows of `table` (V, D) for `ids` (any shape `S`); returns `S + [D]`.
pub fn embedding(table: &Tensor, ids: &[u32], ids_shape: &[usize]) -> Result<Tensor> {
    embedding_as(table, ids, ids_shape, DType::F32)
}

/// [`embedding`] with rows in `dtype`: f16 rows of a mixed-precision run come straight out of
/// a quantized or 16-bit table's kernel; an f32 table's rows are cast (differentiably).
pub fn embedding_as(table: &Tensor, ids: &[u32], ids_shape: &[usize], dtype: DType) -> Result<Tensor> {
    if table.quant_type().is_some() {
        return gather(table, ids, ids_shape, dtype);
    }
    gather(table, ids, ids_shape, DType::F32)?.to_dtype(dtype)
}

fn gather(table: &Tensor, ids: &[u32], ids_shape: &[usize], dtype: DType) -> Result<Tensor> {
    if table.quant_type().is_none() {
        table.expect_f32("embedding")?;
    }
    if table.rank() != 2 {
        return Err(Error::arg("embedding", format!("table must be (vocab, dim), got {:?}", table.shape())));
    }
    let (vocab, dim) = (table.shape()[0], table.shape()[1]);
    if ids.len() != ids_shape.iter().product::<usize>() {
        return Err(Error::arg("embedding", format!("{} ids do not fill shape {ids_shape:?}", ids.len())));
    }
    if let Some((i, &bad)) = ids.iter().enumerate().find(|(_, &id)| id as usize >= vocab) {
        return Err(Error::arg(
            "embedding",
            format!("id {bad} at position {i} is out of range for vocabulary size {vocab}"),
        ));
    }
    let e = table.engine();
    let ids_t = Tensor::from_u32(e, ids, &[ids.len()])?;
    let mut os = ids_shape.to_vec();
    os.push(dim);
    if table.quant_type().is_some() {
        return quantized(table, &ids_t, &os, dtype);
    }
    let out = Tensor::empty(e, &os)?;
    let p = Params { rows: ids.len() as u32, dim: dim as u32, _pad: [0; 2] };
    let bindings = [
        Binding::read(ids_t.storage(), ids_t.nbytes()),
        Binding::read(table.storage(), table.nbytes()),
        Binding::write(out.storage(), out.nbytes()),
    ];
    let max = e.limits().max_compute_workgroups_per_dimension as usize;
    let rows = ids.len();
    let (gx, gy, gz) = ((dim / 4).div_ceil(32), rows.min(max), rows.div_ceil(max));
    if dim % 4 == 0 && dim > 0 && rows > 0 && gx <= max && gz <= max {
        let groups = [gx as u32, gy as u32, gz as u32];
        e.dispatch(
            &Kernel::new(&shaders::EMBEDDING, "embedding_forward4"),
            bytemuck::bytes_of(&p),
            &bindings,
            groups,
        )?;
    } else {
        launch_1d(e, &Kernel::new(&shaders::EMBEDDING, "embedding_forward"), &p, &bindings, rows * dim)?;
    }
    record("embedding", out, &[table], |_| {
        let (uniq, offsets, pos) = group_positions(ids);
        Ok(Box::new(EmbeddingBackward {
            vocab,
            dim,
            uniq: Tensor::from_u32(e, &uniq, &[uniq.len()])?,
            offsets: Tensor::from_u32(e, &offsets, &[offsets.len()])?,
            pos: Tensor::from_u32(e, &pos, &[pos.len()])?,
        }))
    })
}

/// The gather from a quantized (frozen) table: no backward node, as the table takes no gradient.
fn quantized(table: &Tensor, ids: &Tensor, out_shape: &[usize], dtype: DType) -> Result<Tensor> {
    if table.requires_grad() && table.engine().grad_enabled() {
        return Err(Error::arg(
            "embedding",
            format!("the quantized table {:?} requires a gradient; expand it to f32 first", table.shape()),
        ));
    }
    Ok(crate::ops::quant::qembedding(table, ids, dtype)?.view_as(out_shape))
}

/// Group positions by id: (distinct ids, CSR offsets, positions in id-then-position order).
pub(crate) fn group_positions(ids: &[u32]) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
    let mut order: Vec<u32> = (0..ids.len() as u32).collect();
    order.sort_by_key(|&i| (ids[i as usize], i));
    let mut uniq = Vec::new();
    let mut offsets = Vec::new();
    for (q, &i) in order.iter().enumerate() {
        let id = ids[i as usize];
        if uniq.last() != Some(&id) {
            uniq.push(id);
            offsets.push(q as u32);
        }
    }
    offsets.push(order.len() as u32);
    (uniq, offsets, order)
}

impl Tensor {
    /// Interpret as a table (V, D) and gather rows.
    pub fn embedding(&self, ids: &[u32], ids_shape: &[usize]) -> Result<Tensor> {
        embedding(self, ids, ids_shape)
    }
}
