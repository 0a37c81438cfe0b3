//! Layout ops: reshape (shares storage), permute/transpose, slice, concat, contiguous
//! (`shaders/layout/permute.wgsl`, `axis_copy.wgsl`). Tensors are always contiguous, so every
//! layout change other than reshape is a copy.

use crate::engine::{shaders, Binding, Kernel};
use crate::error::{Error, Result};
use crate::graph::{record, Backward};
use crate::ops::{launch_1d, same_engine};
use crate::tensor::{shape, Tensor};

struct ReshapeBackward {
    in_shape: Vec<usize>,
}

impl Backward for ReshapeBackward {
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(g.view_as(&self.in_shape))])
    }
    fn saved_bytes(&self) -> u64 {
        0
    }
}

/// Same data, new shape with the same number of elements (one dim may be given as `usize::MAX`
/// to be inferred).
pub fn reshape(x: &Tensor, new_shape: &[usize]) -> Result<Tensor> {
    let mut s = new_shape.to_vec();
    let infer: Vec<usize> = s.iter().enumerate().filter(|(_, &d)| d == usize::MAX).map(|(i, _)| i).collect();
    if infer.len() > 1 {
        return Err(Error::shape("reshape", x.shape(), new_shape, "only one dim can be inferred"));
    }
    if let Some(&i) = infer.first() {
        let known: usize = s.iter().filter(|&&d| d != usize::MAX).product();
        if known == 0 || !x.numel().is_multiple_of(known) {
            return Err(Error::shape("reshape", x.shape(), new_shape, "cannot infer the missing dim"));
        }
        s[i] = x.numel() / known;
    }
    if shape::numel(&s) != x.numel() {
        return Err(Error::shape("reshape", x.shape(), &s, "element counts differ"));
    }
    let out = x.view_as(&s);
    record("reshape", out, &[x], |_| Ok(Box::new(ReshapeBackward { in_shape: x.shape().to_vec() })))
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct PermuteParams {
    n: u32,
    rank: u32,
    _pad: [u32; 2],
    shape: [u32; 8],
    sx: [u32; 8],
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct RowsParams {
    d3v: u32,
    inner: u32,
    d1: u32,
    _pad: u32,
    s0: u32,
    s1: u32,
    s2: u32,
    _pad2: u32,
}

/// `perm` over `shape` with runs of input-adjacent dims merged: (collapsed shape, collapsed
/// permutation). `[B, T, H, D]` by `[0, 2, 1, 3]` stays 4 dims; `[A, B, C]` by `[1, 2, 0]`
/// becomes `[A, B·C]` by `[1, 0]`.
fn collapse(shape: &[usize], perm: &[usize]) -> (Vec<usize>, Vec<usize>) {
    // Output dims in order, grouped where the next one is the following input dim.
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for &p in perm.iter().filter(|&&p| shape[p] != 1) {
        match groups.last_mut() {
            Some(g) if *g.last().unwrap() + 1 == p => g.push(p),
            _ => groups.push(vec![p]),
        }
    }
    // Each group becomes one dim; its rank among groups ordered by first input dim is its
    // input position.
    let mut order: Vec<usize> = (0..groups.len()).collect();
    order.sort_by_key(|&g| groups[g][0]);
    let mut in_pos = vec![0; groups.len()];
    for (pos, &g) in order.iter().enumerate() {
        in_pos[g] = pos;
    }
    let in_shape: Vec<usize> = order.iter().map(|&g| groups[g].iter().map(|&d| shape[d]).product()).collect();
    (in_shape, in_pos)
}

/// The vec4 kernel's launch when it applies: the last input dim stays last with a whole number
/// of 16-byte units (4 elements of 4 bytes, 8 of f16), at most 4 dims after collapsing, and the
/// outer two fit the grid.
fn rows4_launch(x: &Tensor, perm: &[usize]) -> Option<(RowsParams, [u32; 3])> {
    let (cs, cp) = collapse(x.shape(), perm);
    let r = cs.len();
    let per = if x.is_half() { 8 } else { 4 };
    if !(2..=4).contains(&r) || cp[r - 1] != r - 1 || cs[r - 1] % per != 0 {
        return None;
    }
    // Pad to 4 dims with leading size-1 dims.
    let pad = 4 - r;
    let shape4: Vec<usize> = std::iter::repeat_n(1, pad).chain(cs.iter().cloned()).collect();
    let perm4: Vec<usize> = (0..pad).chain(cp.iter().map(|&p| p + pad)).collect();
    let mut in_strides = shape::strides(&shape4);
    in_strides.iter_mut().for_each(|s| *s /= per);
    let out: Vec<usize> = perm4.iter().map(|&p| shape4[p]).collect();
    let d3v = out[3] / per;
    let inner = out[2] * d3v;
    let max = x.engine().limits().max_compute_workgroups_per_dimension as usize;
    let gx = inner.div_ceil(crate::ops::WG1 as usize);
    if out[0] > max || out[1] > max || gx > max || x.numel() >= u32::MAX as usize {
        return None;
    }
    let p = RowsParams {
        d3v: d3v as u32,
        inner: inner as u32,
        d1: out[1] as u32,
        _pad: 0,
        s0: in_strides[perm4[0]] as u32,
        s1: in_strides[perm4[1]] as u32,
        s2: in_strides[perm4[2]] as u32,
        _pad2: 0,
    };
    Some((p, [gx as u32, out[1] as u32, out[0] as u32]))
}

fn permute_raw(x: &Tensor, perm: &[usize]) -> Result<Tensor> {
    let in_strides = shape::strides(x.shape());
    let out_shape: Vec<usize> = perm.iter().map(|&p| x.shape()[p]).collect();
    if x.numel() > 0 {
        if let Some((p, groups)) = rows4_launch(x, perm) {
            let out = Tensor::empty_typed(x.engine(), &out_shape, x.dtype())?;
            x.engine().dispatch(
                &Kernel::new(&shaders::PERMUTE, "permute_rows4"),
                bytemuck::bytes_of(&p),
                &[Binding::read(x.storage(), x.nbytes()), Binding::write(out.storage(), out.nbytes())],
                groups,
            )?;
            return Ok(out);
        }
    }
    let sx: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
    let out = Tensor::empty_typed(x.engine(), &out_shape, x.dtype())?;
    let p = PermuteParams {
        n: out.numel() as u32,
        rank: perm.len() as u32,
        _pad: [0; 2],
        shape: shape::pack8(&out_shape),
        sx: shape::pack8(&sx),
    };
    launch_1d(
        x.engine(),
        &Kernel::new(&shaders::PERMUTE, "permute").half(x.is_half()),
        &p,
        &[Binding::read(x.storage(), x.nbytes()), Binding::write(out.storage(), out.nbytes())],
        out.numel(),
    )?;
    Ok(out)
}

struct PermuteBackward {
    inverse: Vec<usize>,
}

impl Backward for PermuteBackward {
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(permute_raw(g, &self.inverse)?)])
    }
    fn saved_bytes(&self) -> u64 {
        0
    }
}

/// Reorder dims: output dim `i` is input dim `perm[i]`.
pub fn permute(x: &Tensor, perm: &[usize]) -> Result<Tensor> {
    let r = x.rank();
    let mut seen = vec![false; r];
    if perm.len() != r || perm.iter().any(|&p| p >= r || std::mem::replace(&mut seen[p], true)) {
        return Err(Error::arg(
            "permute",
            format!("{perm:?} is not a permutation of the {r} dims of {:?}", x.shape()),
        ));
    }
    if r > shape::MAX_RANK {
        return Err(Error::arg("permute", format!("rank {r} exceeds {}", shape::MAX_RANK)));
    }
    if perm.iter().enumerate().all(|(i, &p)| i == p) {
        return Ok(x.clone());
    }
    let out = permute_raw(x, perm)?;
    record("permute", out, &[x], |_| {
        let mut inverse = vec![0; r];
        for (i, &p) in perm.iter().enumerate() {
            inverse[p] = i;
        }
        Ok(Box::new(PermuteBackward { inverse }))
    })
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct AxisParams {
    outer: u32,
    len: u32,
    inner: u32,
    start: u32,
    src_len: u32,
    dst_len: u32,
    _pad: [u32; 2],
}

/// dst (O, len, I) <- src[:, start:start+len, :]
fn axis_read(src: &Tensor, axis: usize, start: usize, len: usize) -> Result<Tensor> {
    let (outer, src_len, inner) = shape::split_at_axis(src.shape(), axis);
    let mut os = src.shape().to_vec();
    os[axis] = len;
    let out = Tensor::empty_typed(src.engine(), &os, src.dtype())?;
    let p = AxisParams {
        outer: outer as u32,
        len: len as u32,
        inner: inner as u32,
        start: start as u32,
        src_len: src_len as u32,
        dst_len: len as u32,
        _pad: [0; 2],
    };
    launch_1d(
        src.engine(),
        &Kernel::new(&shaders::AXIS_COPY, "axis_read").half(src.is_half()),
        &p,
        &[Binding::read(src.storage(), src.nbytes()), Binding::write(out.storage(), out.nbytes())],
        out.numel(),
    )?;
    Ok(out)
}

/// dst[:, start:start+len, :] <- src (in place on dst)
fn axis_write(dst: &Tensor, src: &Tensor, axis: usize, start: usize) -> Result<()> {
    let (outer, len, inner) = shape::split_at_axis(src.shape(), axis);
    let p = AxisParams {
        outer: outer as u32,
        len: len as u32,
        inner: inner as u32,
        start: start as u32,
        src_len: len as u32,
        dst_len: dst.shape()[axis] as u32,
        _pad: [0; 2],
    };
    launch_1d(
        dst.engine(),
        &Kernel::new(&shaders::AXIS_COPY, "axis_write").half(src.is_half()),
        &p,
        &[Binding::read(src.storage(), src.nbytes()), Binding::write(dst.storage(), dst.nbytes())],
        src.numel(),
    )
}

struct SliceBackward {
    in_shape: Vec<usize>,
    axis: usize,
    start: usize,
}

impl Backward for SliceBackward {
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let gx = Tensor::empty_typed(g.engine(), &self.in_shape, g.dtype())?;
        crate::ops::fill::fill(&gx, 0.0)?;
        axis_write(&gx, g, self.axis, self.start)?;
        Ok(vec![Some(gx)])
    }
    fn saved_bytes(&self) -> u64 {
        0
    }
}

/// `x[..., start:start+len, ...]` along `axis`.
pub fn slice(x: &Tensor, axis: isize, start: usize, len: usize) -> Result<Tensor> {
    x.expect_float("slice")?;
    let axis = shape::axis("slice", axis, x.rank())?;
    let full = x.shape()[axis];
    if start.checked_add(len).is_none_or(|end| end > full) {
        return Err(Error::arg(
            "slice",
            format!("[{start}, {start}+{len}) is outside axis {axis} of {:?}", x.shape()),
        ));
    }
    let out = axis_read(x, axis, start, len)?;
    record("slice", out, &[x], |_| Ok(Box::new(SliceBackward { in_shape: x.shape().to_vec(), axis, start })))
}

struct ConcatBackward {
    axis: usize,
    /// (start, len) of each input along the axis.
    parts: Vec<(usize, usize)>,
    needs: Vec<bool>,
}

impl Backward for ConcatBackward {
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        self.parts
            .iter()
            .zip(&self.needs)
            .map(|(&(s, l), &need)| if need { axis_read(g, self.axis, s, l).map(Some) } else { Ok(None) })
            .collect()
    }
    fn saved_bytes(&self) -> u64 {
        0
    }
}

/// Join tensors along `axis`; every other dim must match.
pub fn concat(xs: &[&Tensor], axis: isize) -> Result<Tensor> {
    let first = xs.first().ok_or_else(|| Error::arg("concat", "no tensors given"))?;
    let e = same_engine("concat", xs)?;
    let axis = shape::axis("concat", axis, first.rank())?;
    let mut total = 0;
    let mut parts = Vec::with_capacity(xs.len());
    for x in xs {
        x.expect_float("concat")?;
        if x.dtype() != first.dtype() {
            return Err(Error::DType { op: "concat", expected: first.dtype().name(), got: x.dtype().name() });
        }
        let same_rank = x.rank() == first.rank();
        if !same_rank
            || x.shape().iter().zip(first.shape()).enumerate().any(|(d, (a, b))| d != axis && a != b)
        {
            return Err(Error::shape(
                "concat",
                first.shape(),
                x.shape(),
                format!("dims other than {axis} must match"),
            ));
        }
        parts.push((total, x.shape()[axis]));
        total += x.shape()[axis];
    }
    let mut os = first.shape().to_vec();
    os[axis] = total;
    let out = Tensor::empty_typed(e, &os, first.dtype())?;
    for (x, &(start, _)) in xs.iter().zip(&parts) {
        axis_write(&out, x, axis, start)?;
    }
    record("concat", out, xs, |needs| Ok(Box::new(ConcatBackward { axis, parts, needs: needs.clone() })))
}

impl Tensor {
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        reshape(self, shape)
    }
    pub fn permute(&self, perm: &[usize]) -> Result<Tensor> {
        permute(self, perm)
    }
    /// Swap two dims (negative counts from the end).
    pub fn transpose(&self, a: isize, b: isize) -> Result<Tensor> {
        let r = self.rank();
        let (a, b) = (shape::axis("transpose", a, r)?, shape::axis("transpose", b, r)?);
        let mut perm: Vec<usize> = (0..r).collect();
        perm.swap(a, b);
        permute(self, &perm)
    }
    pub fn slice(&self, axis: isize, start: usize, len: usize) -> Result<Tensor> {
        slice(self, axis, start, len)
    }
    /// A dense copy (tensors are always contiguous, so this is a plain copy kernel).
    pub fn contiguous_copy(&self) -> Result<Tensor> {
        let out = crate::ops::fill::copy(self)?;
        record("copy", out, &[self], |_| Ok(Box::new(ReshapeBackward { in_shape: self.shape().to_vec() })))
    }
}

/// Swap the last two dims without autodiff (used by matmul's kernel choice).
pub(crate) fn transpose_raw(x: &Tensor) -> Result<Tensor> {
    let r = x.rank();
    let mut perm: Vec<usize> = (0..r).collect();
    perm.swap(r - 2, r - 1);
    permute_raw(x, &perm)
}
