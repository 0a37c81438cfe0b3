//! Ops: one file per family, each with its checks, its dispatches and its backward rules side by
//! side. Every op follows one contract: check inputs (typed errors naming the op and shapes) →
//! compute the output shape → record dispatches → record a backward node if needed.
//!
//! `reference` holds a plain-loop f64 CPU version of every op, forward and backward, used by
//! the tests as ground truth.

pub mod attention;
pub mod batch_norm;
pub mod cast;
pub mod check;
pub mod conv;
pub mod dropout;
pub mod elementwise;
pub mod embedding;
pub mod fill;
pub mod layout;
pub mod linear;
pub mod loss;
pub mod matmul;
pub mod norm;
pub mod pool;
pub mod quant;
pub mod reduce;
pub mod reference;
pub mod rope;
pub mod softmax;

use crate::engine::{dispatch, Binding, Engine, Kernel};
use crate::error::Result;

/// Invocations per workgroup of 1-D kernels (`WG1` in shaders/common/prelude.wgsl).
pub const WG1: u64 = 256;

/// Record a 1-D kernel over `items` invocations.
pub(crate) fn launch_1d<P: bytemuck::Pod>(
    engine: &Engine,
    kernel: &Kernel,
    params: &P,
    bindings: &[Binding<'_>],
    items: usize,
) -> Result<()> {
    let groups =
        dispatch::groups_1d(items as u64, WG1, engine.limits().max_compute_workgroups_per_dimension)?;
    engine.dispatch(kernel, bytemuck::bytes_of(params), bindings, groups)
}

/// Record a kernel with one workgroup per item (items folded past the per-dimension cap).
pub(crate) fn launch_groups<P: bytemuck::Pod>(
    engine: &Engine,
    kernel: &Kernel,
    params: &P,
    bindings: &[Binding<'_>],
    groups: usize,
) -> Result<()> {
    let g = dispatch::fold(groups as u64, engine.limits().max_compute_workgroups_per_dimension)?;
    engine.dispatch(kernel, bytemuck::bytes_of(params), bindings, g)
}

/// The engine all inputs share, or a typed error.
pub(crate) fn same_engine<'a>(op: &'static str, ts: &[&'a crate::Tensor]) -> Result<&'a Engine> {
    let e = ts[0].engine();
    for t in &ts[1..] {
        if !std::sync::Arc::ptr_eq(&t.engine().0, &e.0) {
            return Err(crate::Error::arg(op, "tensors live on different engines"));
        }
    }
    Ok(e)
}
