//! Activation checkpointing (Chen et al., 2016): a block runs once without recording, keeping
//! only its inputs; its backward runs the block again with recording on and backpropagates the
//! incoming gradient through that fresh graph. Peak memory then holds one block's activations
//! at a time instead of every block's, for one more forward pass.
//!
//! The recomputation is the same kernels on the same inputs, so it reproduces the forward
//! bit for bit (dropout masks come from the model's seeded mode, not from a running counter),
//! and the gradients equal the plain path's (`tests/checkpointing.rs`).

use std::sync::Arc;

use super::{record, Backward};
use crate::error::Result;
use crate::tensor::{DType, Tensor};

/// A block's computation from its inputs: the block's input first, then every tensor of the
/// block that may need a gradient (its trainable parameters), in a fixed order.
pub type Block = Arc<dyn Fn(&[Tensor]) -> Result<Tensor> + Send + Sync>;

struct Recompute {
    /// The inputs as leaves cut from the outer graph, each requiring grad where the original
    /// did.
    inputs: Vec<Tensor>,
    block: Block,
}

impl Backward for Recompute {
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let engine = g.engine().clone();
        let out = {
            let _on = engine.enable_grad();
            // d/d(inputs) of sum(out · g) is the block's vector-Jacobian product with g.
            let out = (self.block)(&self.inputs)?;
            // The sum runs in f32 (an f16 block's product is cast; its gradient is g exactly).
            out.mul(&g.detach())?.to_dtype(DType::F32)?.sum_all()?
        };
        let grads = out.backward()?;
        self.inputs
            .iter()
            .map(|t| {
                if !t.requires_grad() {
                    return Ok(None);
                }
                match grads.get(t) {
                    Some(g) => Ok(Some(g.clone())),
                    // The block did not use this input: its gradient is zero.
                    None => {
                        let z = Tensor::empty_typed(&engine, t.shape(), t.dtype())?;
                        crate::ops::fill::fill(&z, 0.0)?;
                        Ok(Some(z))
                    }
                }
            })
            .collect()
    }

    fn saved_bytes(&self) -> u64 {
        // The block's input; parameters are shared with the model, not saved.
        self.inputs.first().map_or(0, Tensor::nbytes)
    }
}

/// `block(inputs)` with its activations recomputed in backward instead of kept. Without
/// recording (or with no input needing a gradient) it is a plain call.
pub fn checkpoint(inputs: &[&Tensor], block: Block) -> Result<Tensor> {
    let engine = inputs[0].engine().clone();
    let owned: Vec<Tensor> = inputs.iter().map(|t| (*t).clone()).collect();
    if !engine.grad_enabled() || !inputs.iter().any(|t| t.requires_grad()) {
        return block(&owned);
    }
    let out = {
        let _off = engine.no_grad();
        block(&owned)?
    };
    record("checkpoint", out, inputs, |needs| {
        let leaves = owned.iter().zip(needs).map(|(t, &n)| t.detach().requires_grad_(n)).collect();
        Ok(Box::new(Recompute { inputs: leaves, block }))
    })
}
