//! 2-D pooling on NCHW tensors (`shaders/pool/pool.wgsl`), torch semantics: floor-mode output
//! sizes, max pooling pads with -inf and routes the gradient to the first maximum (saved
//! argmax), average pooling with or without the padding in the divisor, adaptive average
//! pooling with torch's bins `[floor(i·H/oh), ceil((i+1)·H/oh))`.

use crate::engine::{shaders, Binding, Kernel};
use crate::error::{Error, Result};
use crate::graph::{bytes_of, record, Backward};
use crate::ops::launch_1d;
use crate::tensor::{DType, Tensor};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    planes: u32,
    h: u32,
    w: u32,
    ho: u32,
    wo: u32,
    kh: u32,
    kw: u32,
    sh: u32,
    sw: u32,
    pt: u32,
    pl: u32,
    flag: u32,
}

fn kern(entry: &'static str) -> Kernel {
    Kernel::new(&shaders::POOL, entry)
}

fn dims(op: &'static str, x: &Tensor) -> Result<(usize, usize, usize, usize)> {
    x.expect_f32(op)?;
    let s = x.shape();
    if s.len() != 4 {
        return Err(Error::shape(op, s, &[], "input must be [N, C, H, W]"));
    }
    if s.contains(&0) {
        return Err(Error::shape(op, s, &[], "every dim must be non-zero"));
    }
    Ok((s[0], s[1], s[2], s[3]))
}

/// Checked window geometry: (ho, wo).
fn window(
    op: &'static str,
    x: &Tensor,
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
) -> Result<(usize, usize)> {
    let (_, _, h, w) = dims(op, x)?;
    if kernel.0 == 0 || kernel.1 == 0 || stride.0 == 0 || stride.1 == 0 {
        return Err(Error::arg(op, format!("kernel {kernel:?} and stride {stride:?} must be >= 1")));
    }
    if padding.0 * 2 > kernel.0 || padding.1 * 2 > kernel.1 {
        return Err(Error::arg(
            op,
            format!("padding {padding:?} must be at most half the kernel {kernel:?}"),
        ));
    }
    if h + 2 * padding.0 < kernel.0 || w + 2 * padding.1 < kernel.1 {
        return Err(Error::shape(
            op,
            x.shape(),
            &[kernel.0, kernel.1],
            "kernel larger than the padded input",
        ));
    }
    Ok(((h + 2 * padding.0 - kernel.0) / stride.0 + 1, (w + 2 * padding.1 - kernel.1) / stride.1 + 1))
}

fn params(
    x: &[usize],
    out: (usize, usize),
    k: (usize, usize),
    s: (usize, usize),
    pad: (usize, usize),
    flag: bool,
) -> Params {
    Params {
        planes: (x[0] * x[1]) as u32,
        h: x[2] as u32,
        w: x[3] as u32,
        ho: out.0 as u32,
        wo: out.1 as u32,
        kh: k.0 as u32,
        kw: k.1 as u32,
        sh: s.0 as u32,
        sw: s.1 as u32,
        pt: pad.0 as u32,
        pl: pad.1 as u32,
        flag: flag as u32,
    }
}

/// Gather-form backward of every pooling op: one kernel, the saved argmax for max pooling.
struct PoolBackward {
    entry: &'static str,
    in_shape: Vec<usize>,
    arg: Option<Tensor>,
    p: Params,
}

impl Backward for PoolBackward {
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let gx = Tensor::empty(g.engine(), &self.in_shape)?;
        let mut b = vec![Binding::read(g.storage(), g.nbytes())];
        if let Some(a) = &self.arg {
            b.push(Binding::read(a.storage(), a.nbytes()));
        }
        b.push(Binding::write(gx.storage(), gx.nbytes()));
        launch_1d(g.engine(), &kern(self.entry), &self.p, &b, gx.numel())?;
        Ok(vec![Some(gx)])
    }
    fn saved_bytes(&self) -> u64 {
        bytes_of(&[self.arg.as_ref()])
    }
}

/// Max pooling, `x [N, C, H, W]` → `[N, C, Ho, Wo]` with `Ho = (H + 2·ph - kh) / sh + 1`
/// (floor mode); padding counts as -inf and must be at most half the kernel (torch's rule).
pub fn max_pool2d(
    x: &Tensor,
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
) -> Result<Tensor> {
    let op = "max_pool2d";
    let (ho, wo) = window(op, x, kernel, stride, padding)?;
    let s = x.shape();
    let out_shape = [s[0], s[1], ho, wo];
    let y = Tensor::empty(x.engine(), &out_shape)?;
    let arg = Tensor::empty_typed(x.engine(), &out_shape, DType::U32)?;
    let p = params(s, (ho, wo), kernel, stride, padding, false);
    launch_1d(
        x.engine(),
        &kern("max_pool_forward"),
        &p,
        &[
            Binding::read(x.storage(), x.nbytes()),
            Binding::write(y.storage(), y.nbytes()),
            Binding::write(arg.storage(), arg.nbytes()),
        ],
        y.numel(),
    )?;
    record(op, y, &[x], |_| {
        Ok(Box::new(PoolBackward { entry: "max_pool_backward", in_shape: s.to_vec(), arg: Some(arg), p }))
    })
}

fn avg_like(
    x: &Tensor,
    op: &'static str,
    fwd: &'static str,
    bwd: &'static str,
    out: (usize, usize),
    p: Params,
) -> Result<Tensor> {
    let s = x.shape();
    let y = Tensor::empty(x.engine(), &[s[0], s[1], out.0, out.1])?;
    launch_1d(
        x.engine(),
        &kern(fwd),
        &p,
        &[Binding::read(x.storage(), x.nbytes()), Binding::write(y.storage(), y.nbytes())],
        y.numel(),
    )?;
    record(op, y, &[x], |_| Ok(Box::new(PoolBackward { entry: bwd, in_shape: s.to_vec(), arg: None, p })))
}

/// Average pooling (floor mode). With `count_include_pad` every window divides by `kh·kw`,
/// otherwise by the number of in-bounds elements.
pub fn avg_pool2d(
    x: &Tensor,
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
    count_include_pad: bool,
) -> Result<Tensor> {
    let op = "avg_pool2d";
    let out = window(op, x, kernel, stride, padding)?;
    let p = params(x.shape(), out, kernel, stride, padding, count_include_pad);
    avg_like(x, op, "avg_pool_forward", "avg_pool_backward", out, p)
}

/// Adaptive average pooling to `(oh, ow)` with torch's bins; `(1, 1)` is global average
/// pooling, and outputs larger than the input replicate (VGG's 7×7 from 1×1 or 2×2).
pub fn adaptive_avg_pool2d(x: &Tensor, out: (usize, usize)) -> Result<Tensor> {
    let op = "adaptive_avg_pool2d";
    dims(op, x)?;
    if out.0 == 0 || out.1 == 0 {
        return Err(Error::arg(op, format!("output size {out:?} must be >= 1")));
    }
    let p = params(x.shape(), out, (1, 1), (1, 1), (0, 0), false);
    avg_like(x, op, "adaptive_avg_forward", "adaptive_avg_backward", out, p)
}
