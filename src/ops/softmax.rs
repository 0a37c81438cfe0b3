//! Softmax and log-softmax over the last axis (`shaders/softmax/softmax.wgsl`).

use crate::engine::{shaders, Binding, Kernel};
use crate::error::{Error, Result};
use crate::graph::{bytes_of, record, Backward};
use crate::ops::launch_1d;
use crate::tensor::Tensor;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    _pad: [u32; 2],
}

fn rows_cols(op: &'static str, x: &Tensor) -> Result<(usize, usize)> {
    let c = *x.shape().last().ok_or_else(|| Error::arg(op, "needs at least one dim"))?;
    Ok((x.numel().checked_div(c).unwrap_or(0), c))
}

struct SoftmaxBackward {
    y: Tensor,
    log: bool,
}

impl Backward for SoftmaxBackward {
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let (rows, cols) = rows_cols("softmax", g)?;
        let gx = Tensor::empty(g.engine(), g.shape())?;
        let p = Params { rows: rows as u32, cols: cols as u32, _pad: [0; 2] };
        launch_1d(
            g.engine(),
            &Kernel::new(&shaders::SOFTMAX, "softmax_backward").with("LOG", self.log as u32),
            &p,
            &[
                Binding::read(g.storage(), g.nbytes()),
                Binding::read(self.y.storage(), self.y.nbytes()),
                Binding::write(gx.storage(), gx.nbytes()),
            ],
            rows,
        )?;
        Ok(vec![Some(gx)])
    }
    fn saved_bytes(&self) -> u64 {
        bytes_of(&[Some(&self.y)])
    }
}

fn softmax_impl(x: &Tensor, log: bool) -> Result<Tensor> {
    let op = if log { "log_softmax" } else { "softmax" };
    x.expect_f32(op)?;
    let (rows, cols) = rows_cols(op, x)?;
    let y = Tensor::empty(x.engine(), x.shape())?;
    let p = Params { rows: rows as u32, cols: cols as u32, _pad: [0; 2] };
    launch_1d(
        x.engine(),
        &Kernel::new(&shaders::SOFTMAX, "softmax_forward").with("LOG", log as u32),
        &p,
        &[Binding::read(x.storage(), x.nbytes()), Binding::write(y.storage(), y.nbytes())],
        rows,
    )?;
    // The output is all backward needs (softmax' and log-softmax' are functions of y).
    let saved = y.clone();
    record(op, y, &[x], |_| Ok(Box::new(SoftmaxBackward { y: saved, log })))
}

impl Tensor {
    /// Softmax over the last axis.
    pub fn softmax(&self) -> Result<Tensor> {
        softmax_impl(self, false)
    }
    /// Log-softmax over the last axis.
    pub fn log_softmax(&self) -> Result<Tensor> {
        softmax_impl(self, true)
    }
}
