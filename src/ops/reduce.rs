//! Reductions over one axis: sum, mean, max (`shaders/reduce/reduce.wgsl`), and `sum_to_shape`
//! which backward rules use to fold a broadcast gradient back to its input's shape.

use crate::engine::{shaders, Binding, Kernel};
use crate::error::Result;
use crate::graph::{bytes_of, record, Backward};
use crate::ops::{launch_1d, launch_groups};
use crate::tensor::{shape, DType, Tensor};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    outer: u32,
    len: u32,
    inner: u32,
    scale: f32,
}

/// Use one workgroup per output when there are few outputs over a long axis: one invocation
/// per output would leave the device idle (a loss summed to a scalar is a single output).
fn wide(outputs: usize, len: usize) -> bool {
    outputs < 1024 && len >= 256
}

fn out_shape(s: &[usize], axis: usize, keepdim: bool) -> Vec<usize> {
    let mut o = s.to_vec();
    if keepdim {
        o[axis] = 1;
    } else {
        o.remove(axis);
    }
    o
}

/// Sum over `axis` times `scale`, no autodiff.
fn sum_raw(x: &Tensor, axis: usize, scale: f32, keepdim: bool) -> Result<Tensor> {
    let (outer, len, inner) = shape::split_at_axis(x.shape(), axis);
    let out = Tensor::empty(x.engine(), &out_shape(x.shape(), axis, keepdim))?;
    let p = Params { outer: outer as u32, len: len as u32, inner: inner as u32, scale };
    let b = [Binding::read(x.storage(), x.nbytes()), Binding::write(out.storage(), out.nbytes())];
    if wide(outer * inner, len) {
        launch_groups(x.engine(), &Kernel::new(&shaders::REDUCE, "sum_wide"), &p, &b, outer * inner)?;
    } else {
        launch_1d(x.engine(), &Kernel::new(&shaders::REDUCE, "sum_rows"), &p, &b, outer * inner)?;
    }
    Ok(out)
}

/// gx[o, l, i] = g[o, i] * scale with gx of `full` shape.
fn expand_raw(g: &Tensor, full: &[usize], axis: usize, scale: f32) -> Result<Tensor> {
    let (outer, len, inner) = shape::split_at_axis(full, axis);
    let gx = Tensor::empty(g.engine(), full)?;
    let p = Params { outer: outer as u32, len: len as u32, inner: inner as u32, scale };
    launch_1d(
        g.engine(),
        &Kernel::new(&shaders::REDUCE, "expand_backward"),
        &p,
        &[Binding::read(g.storage(), g.nbytes()), Binding::write(gx.storage(), gx.nbytes())],
        gx.numel(),
    )?;
    Ok(gx)
}

struct SumBackward {
    in_shape: Vec<usize>,
    axis: usize,
    scale: f32,
}

impl Backward for SumBackward {
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(expand_raw(g, &self.in_shape, self.axis, self.scale)?)])
    }
    fn saved_bytes(&self) -> u64 {
        0
    }
}

fn sum_scaled(x: &Tensor, axis: isize, keepdim: bool, mean: bool) -> Result<Tensor> {
    let op = if mean { "mean" } else { "sum" };
    x.expect_f32(op)?;
    let axis = shape::axis(op, axis, x.rank())?;
    let len = x.shape()[axis];
    let scale = if mean { 1.0 / len as f32 } else { 1.0 };
    let out = sum_raw(x, axis, scale, keepdim)?;
    record(op, out, &[x], |_| Ok(Box::new(SumBackward { in_shape: x.shape().to_vec(), axis, scale })))
}

struct MaxBackward {
    in_shape: Vec<usize>,
    axis: usize,
    arg: Tensor,
}

impl Backward for MaxBackward {
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let (outer, len, inner) = shape::split_at_axis(&self.in_shape, self.axis);
        let gx = Tensor::empty(g.engine(), &self.in_shape)?;
        let p = Params { outer: outer as u32, len: len as u32, inner: inner as u32, scale: 1.0 };
        launch_1d(
            g.engine(),
            &Kernel::new(&shaders::REDUCE, "max_backward"),
            &p,
            &[
                Binding::read(g.storage(), g.nbytes()),
                Binding::read(self.arg.storage(), self.arg.nbytes()),
                Binding::write(gx.storage(), gx.nbytes()),
            ],
            gx.numel(),
        )?;
        Ok(vec![Some(gx)])
    }
    fn saved_bytes(&self) -> u64 {
        bytes_of(&[Some(&self.arg)])
    }
}

/// Max over `axis` and the (first) index where it occurs.
pub fn max_with_index(x: &Tensor, axis: isize, keepdim: bool) -> Result<(Tensor, Tensor)> {
    x.expect_f32("max")?;
    let axis = shape::axis("max", axis, x.rank())?;
    let (outer, len, inner) = shape::split_at_axis(x.shape(), axis);
    if len == 0 {
        return Err(crate::Error::arg("max", format!("axis {axis} of shape {:?} is empty", x.shape())));
    }
    let os = out_shape(x.shape(), axis, keepdim);
    let out = Tensor::empty(x.engine(), &os)?;
    let arg = Tensor::empty_typed(x.engine(), &os, DType::U32)?;
    let p = Params { outer: outer as u32, len: len as u32, inner: inner as u32, scale: 1.0 };
    let b = [
        Binding::read(x.storage(), x.nbytes()),
        Binding::write(out.storage(), out.nbytes()),
        Binding::write(arg.storage(), arg.nbytes()),
    ];
    if wide(outer * inner, len) {
        launch_groups(x.engine(), &Kernel::new(&shaders::REDUCE, "max_wide"), &p, &b, outer * inner)?;
    } else {
        launch_1d(x.engine(), &Kernel::new(&shaders::REDUCE, "max_rows"), &p, &b, outer * inner)?;
    }
    let out = record("max", out, &[x], |_| {
        Ok(Box::new(MaxBackward { in_shape: x.shape().to_vec(), axis, arg: arg.clone() }))
    })?;
    Ok((out, arg))
}

/// Sum `t` down to `target` (the inverse of broadcasting), no autodiff: used by backward rules.
pub(crate) fn sum_to_shape(t: &Tensor, target: &[usize]) -> Result<Tensor> {
    if t.shape() == target {
        return Ok(t.clone());
    }
    let mut cur = t.clone();
    let lead = t.rank() - target.len();
    // Leading dims that broadcasting added: fold them into one and sum once.
    if lead > 0 {
        let rest: Vec<usize> = t.shape()[lead..].to_vec();
        let folded = cur.view_as(&[shape::numel(&t.shape()[..lead]), shape::numel(&rest)]);
        cur = sum_raw(&folded, 0, 1.0, false)?.view_as(&rest);
    }
    for (d, &want) in target.iter().enumerate() {
        if want == 1 && cur.shape()[d] != 1 {
            cur = sum_raw(&cur, d, 1.0, true)?;
        }
    }
    Ok(cur.view_as(target))
}

impl Tensor {
    /// Sum over `axis` (negative counts from the end).
    pub fn sum(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        sum_scaled(self, axis, keepdim, false)
    }
    /// Mean over `axis`.
    pub fn mean(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        sum_scaled(self, axis, keepdim, true)
    }
    /// Max over `axis`.
    pub fn max(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        Ok(max_with_index(self, axis, keepdim)?.0)
    }
    /// Sum of every element, as a scalar.
    pub fn sum_all(&self) -> Result<Tensor> {
        crate::ops::layout::reshape(self, &[self.numel()])?.sum(0, false)
    }
    /// Mean of every element, as a scalar.
    pub fn mean_all(&self) -> Result<Tensor> {
        crate::ops::layout::reshape(self, &[self.numel()])?.mean(0, false)
    }
}
