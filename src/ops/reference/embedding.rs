//! Reference embedding lookup (`ops::embedding`).

use super::RefTensor;

/// Rows of `table` (V, D) for `ids` of shape `ids_shape`; returns `ids_shape + [D]`.
pub fn embedding(table: &RefTensor, ids: &[u32], ids_shape: &[usize]) -> RefTensor {
    assert_eq!(table.rank(), 2, "reference: table must be (vocab, dim)");
    assert_eq!(ids.len(), super::numel(ids_shape), "reference: ids do not fill their shape");
    let (v, d) = (table.shape[0], table.shape[1]);
    let mut out = Vec::with_capacity(ids.len() * d);
    for &id in ids {
        assert!((id as usize) < v, "reference: id {id} out of range for vocabulary {v}");
        out.extend_from_slice(&table.data[id as usize * d..(id as usize + 1) * d]);
    }
    let mut shape = ids_shape.to_vec();
    shape.push(d);
    RefTensor::new(out, &shape)
}

/// Gradient of the table given `g` of the output: each id's rows summed.
pub fn embedding_backward(vocab: usize, dim: usize, ids: &[u32], g: &RefTensor) -> RefTensor {
    let mut gt = RefTensor::zeros(&[vocab, dim]);
    for (t, &id) in ids.iter().enumerate() {
        for j in 0..dim {
            gt.data[id as usize * dim + j] += g.data[t * dim + j];
        }
    }
    gt
}
