//! 2-D convolution on NCHW tensors (`shaders/conv/conv.wgsl`).
//!
//! Three paths, chosen by shape:
//! - 1×1, stride 1, no padding, one group, maps of 128+ pixels: a batched matmul on the NCHW
//!   layout viewed as `[N, C, H·W]` (no im2col).
//! - depthwise (`groups == C`, `O = C·mult`): direct kernels for the output, the input gradient
//!   (gather form) and the weight gradient (one workgroup per tap, tree-reduced).
//! - everything else: im2col (a gather kernel) into `[G, KP, nb·P]` columns, then the matmul
//!   kernels; the input gradient is `Wᵀ · G` followed by col2im (gather form, no atomics, so it
//!   is deterministic) and the weight gradient is `G · colsᵀ`, with the columns gathered
//!   transposed (`im2col_t`) so no operand is copied. The batch is processed in chunks
//!   so one column buffer never exceeds the adapter's storage binding limit. `K = C/G·kh·kw` is
//!   padded with zero rows to a multiple of 4 so the blocked matmul applies.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::engine::{shaders, Binding, Kernel};
use crate::error::{Error, Result};
use crate::graph::{bytes_of, record, Backward, Needs};
use crate::ops::matmul::{matmul_raw, MatmulKernel};
use crate::ops::{launch_1d, launch_groups, same_engine};
use crate::tensor::Tensor;

/// Padding of a convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// Zero padding on each side.
    Explicit { top: usize, bottom: usize, left: usize, right: usize },
    /// TensorFlow "SAME": output `ceil(H / s)`, total padding
    /// `max((ceil(H/s) - 1)·s + (k-1)·d + 1 - H, 0)`, the odd pixel at the bottom/right.
    Same,
}

impl Padding {
    /// Torch-style symmetric padding: `ph` rows above and below, `pw` columns left and right.
    pub fn symmetric(ph: usize, pw: usize) -> Padding {
        Padding::Explicit { top: ph, bottom: ph, left: pw, right: pw }
    }
}

/// Convolution hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2d {
    /// (rows, cols)
    pub stride: (usize, usize),
    pub padding: Padding,
    /// (rows, cols)
    pub dilation: (usize, usize),
    pub groups: usize,
}

impl Default for Conv2d {
    fn default() -> Self {
        Conv2d { stride: (1, 1), padding: Padding::symmetric(0, 0), dilation: (1, 1), groups: 1 }
    }
}

/// Every size of one convolution, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
    pub ho: usize,
    pub wo: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub dh: usize,
    pub dw: usize,
    /// Padding: top, bottom, left, right.
    pub pads: [usize; 4],
    pub groups: usize,
}

/// One side of TF "SAME" padding: (output size, before, after).
fn same_pad(size: usize, k: usize, s: usize, d: usize) -> (usize, usize, usize) {
    let out = size.div_ceil(s);
    let need = (out.saturating_sub(1) * s + (k - 1) * d + 1).saturating_sub(size);
    (out, need / 2, need - need / 2)
}

/// Check shapes and hyper-parameters and resolve the output size.
pub fn conv2d_geometry(x: &[usize], w: &[usize], cfg: &Conv2d) -> Result<ConvGeometry> {
    const OP: &str = "conv2d";
    if x.len() != 4 || w.len() != 4 {
        return Err(Error::shape(OP, x, w, "input must be [N, C, H, W] and weight [O, C/groups, kh, kw]"));
    }
    let (n, c, h, wd) = (x[0], x[1], x[2], x[3]);
    let (o, cg, kh, kw) = (w[0], w[1], w[2], w[3]);
    let g = cfg.groups;
    if g == 0 || c % g != 0 || o % g != 0 {
        return Err(Error::shape(OP, x, w, format!("groups {g} must divide C = {c} and O = {o}")));
    }
    if cg != c / g {
        return Err(Error::shape(OP, x, w, format!("weight dim 1 must be C/groups = {}", c / g)));
    }
    let (sh, sw) = cfg.stride;
    let (dh, dw) = cfg.dilation;
    if sh == 0 || sw == 0 || dh == 0 || dw == 0 {
        return Err(Error::arg(
            OP,
            format!("stride {:?} and dilation {:?} must be >= 1", cfg.stride, cfg.dilation),
        ));
    }
    if n == 0 || c == 0 || h == 0 || wd == 0 || o == 0 || kh == 0 || kw == 0 {
        return Err(Error::shape(OP, x, w, "every dim must be non-zero"));
    }
    let (ho, wo, pads) = match cfg.padding {
        Padding::Same => {
            let (ho, pt, pb) = same_pad(h, kh, sh, dh);
            let (wo, pl, pr) = same_pad(wd, kw, sw, dw);
            (ho, wo, [pt, pb, pl, pr])
        }
        Padding::Explicit { top, bottom, left, right } => {
            let eh = (kh - 1) * dh + 1;
            let ew = (kw - 1) * dw + 1;
            if h + top + bottom < eh || wd + left + right < ew {
                return Err(Error::shape(
                    OP,
                    x,
                    w,
                    format!("dilated kernel {eh}x{ew} is larger than the padded input"),
                ));
            }
            ((h + top + bottom - eh) / sh + 1, (wd + left + right - ew) / sw + 1, [top, bottom, left, right])
        }
    };
    Ok(ConvGeometry { n, c, h, w: wd, o, ho, wo, kh, kw, sh, sw, dh, dw, pads, groups: g })
}

impl ConvGeometry {
    /// Rows of one group's column matrix: `C/G · kh · kw`.
    pub fn k(&self) -> usize {
        self.c / self.groups * self.kh * self.kw
    }
    fn kp(&self) -> usize {
        self.k().div_ceil(4) * 4
    }
    fn p(&self) -> usize {
        self.ho * self.wo
    }
    fn depthwise(&self) -> bool {
        // The direct kernels hold the taps in registers up to 7×7 (`DMAX` in conv.wgsl); a
        // larger depthwise kernel goes through the grouped im2col path.
        self.groups == self.c && self.groups > 1 && self.kh <= 7 && self.kw <= 7
    }
    /// 1×1, stride 1, unpadded, one group, on maps large enough that one matmul per image
    /// keeps the kernel busy (on small maps the im2col path, which folds the batch into the
    /// matmul's columns, is faster: its copy is O(C·N·P) next to the O(O·C·N·P) product).
    fn pointwise(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.sh == 1
            && self.sw == 1
            && self.pads == [0; 4]
            && self.groups == 1
            && self.p() >= 128
    }
    /// Multiply-adds of the forward pass times two.
    pub fn flops(&self) -> u64 {
        2 * (self.n * self.o * self.p() * self.k()) as u64
    }
    fn params(&self, n0: usize, nb: usize, flag: bool) -> Params {
        Params {
            n: self.n as u32,
            c: self.c as u32,
            h: self.h as u32,
            w: self.w as u32,
            o: self.o as u32,
            ho: self.ho as u32,
            wo: self.wo as u32,
            groups: self.groups as u32,
            kh: self.kh as u32,
            kw: self.kw as u32,
            sh: self.sh as u32,
            sw: self.sw as u32,
            dh: self.dh as u32,
            dw: self.dw as u32,
            pt: self.pads[0] as u32,
            pl: self.pads[2] as u32,
            n0: n0 as u32,
            nb: nb as u32,
            kp: self.kp() as u32,
            flag: flag as u32,
        }
    }
    /// Images per im2col chunk: the column buffer stays within one storage binding.
    fn chunk(&self, e: &crate::Engine) -> usize {
        let l = e.limits();
        let cap = match MAX_COLS_BYTES.load(Ordering::Relaxed) {
            0 => 1 << 28,
            v => v,
        };
        let limit = l.max_storage_buffer_binding_size.min(l.max_buffer_size).min(cap);
        let per_image = (self.groups * self.kp() * self.p() * 4) as u64;
        ((limit / per_image.max(1)) as usize).clamp(1, self.n)
    }
}

/// Cap on one im2col buffer in bytes (0: the default, 256 MiB or the adapter's binding limit).
static MAX_COLS_BYTES: AtomicU64 = AtomicU64::new(0);

/// Lower the cap on one im2col buffer so tests can exercise the batch chunking on small
/// shapes; 0 restores the default. Process-wide.
#[doc(hidden)]
pub fn set_max_cols_bytes(bytes: u64) {
    MAX_COLS_BYTES.store(bytes, Ordering::Relaxed);
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    c: u32,
    h: u32,
    w: u32,
    o: u32,
    ho: u32,
    wo: u32,
    groups: u32,
    kh: u32,
    kw: u32,
    sh: u32,
    sw: u32,
    dh: u32,
    dw: u32,
    pt: u32,
    pl: u32,
    n0: u32,
    nb: u32,
    kp: u32,
    flag: u32,
}

/// A product without autodiff. Narrow outputs (fewer than 256 columns) use the generic
/// kernel: the blocked one computes 512 columns per workgroup and leaves most lanes idle there
/// (measured on lavapipe: 4x slower at N = 64).
fn mm(a: &Tensor, b: &Tensor, ta: bool, tb: bool) -> Result<Tensor> {
    let n = if tb { b.shape()[b.rank() - 2] } else { b.shape()[b.rank() - 1] };
    let kernel = if n < 256 { MatmulKernel::Generic } else { MatmulKernel::Auto };
    matmul_raw(a, b, ta, tb, kernel)
}

fn k(entry: &'static str) -> Kernel {
    Kernel::new(&shaders::CONV, entry)
}

/// A depthwise kernel specialised to the convolution's kernel size (`DKH`, `DKW`).
fn depthwise_kernel(entry: &'static str, geo: &ConvGeometry) -> Kernel {
    k(entry).with("DKH", geo.kh as u32).with("DKW", geo.kw as u32)
}

fn rd(t: &Tensor) -> Binding<'_> {
    Binding::read(t.storage(), t.nbytes())
}
fn wr(t: &Tensor) -> Binding<'_> {
    Binding::write(t.storage(), t.nbytes())
}

/// The weight as `[G, O/G, KP]`, zero-padded along K when needed.
fn padded_weight(w: &Tensor, geo: &ConvGeometry) -> Result<Tensor> {
    let og = geo.o / geo.groups;
    if geo.kp() == geo.k() {
        return Ok(w.view_as(&[geo.groups, og, geo.k()]));
    }
    let wp = Tensor::empty(w.engine(), &[geo.groups, og, geo.kp()])?;
    launch_1d(w.engine(), &k("pad_weight"), &geo.params(0, 0, false), &[rd(w), wr(&wp)], geo.o * geo.kp())?;
    Ok(wp)
}

fn im2col(x: &Tensor, geo: &ConvGeometry, n0: usize, nb: usize) -> Result<Tensor> {
    let cols = Tensor::empty(x.engine(), &[geo.groups, geo.kp(), nb * geo.p()])?;
    let rows = geo.groups * geo.kp() * nb * geo.ho;
    launch_1d(x.engine(), &k("im2col"), &geo.params(n0, nb, false), &[rd(x), wr(&cols)], rows)?;
    Ok(cols)
}

fn forward_raw(x: &Tensor, w: &Tensor, b: Option<&Tensor>, geo: &ConvGeometry) -> Result<Tensor> {
    let e = x.engine();
    let out_shape = [geo.n, geo.o, geo.ho, geo.wo];
    let p = geo.p();
    if geo.depthwise() {
        let y = Tensor::empty(e, &out_shape)?;
        let bias = b.unwrap_or(x);
        launch_1d(
            e,
            &depthwise_kernel("depthwise_forward", geo),
            &geo.params(0, geo.n, b.is_some()),
            &[rd(x), rd(w), rd(bias), wr(&y)],
            geo.n * geo.o * geo.ho,
        )?;
        return Ok(y);
    }
    if geo.pointwise() {
        let y = mm(&w.view_as(&[geo.o, geo.c]), &x.view_as(&[geo.n, geo.c, p]), false, false)?
            .view_as(&out_shape);
        if let Some(b) = b {
            launch_1d(e, &k("add_bias"), &geo.params(0, geo.n, true), &[rd(b), wr(&y)], y.numel())?;
        }
        return Ok(y);
    }
    let y = Tensor::empty(e, &out_shape)?;
    let wp = padded_weight(w, geo)?;
    let bias = b.unwrap_or(x);
    let nb = geo.chunk(e);
    for n0 in (0..geo.n).step_by(nb) {
        let nbc = nb.min(geo.n - n0);
        let cols = im2col(x, geo, n0, nbc)?;
        let tmp = mm(&wp, &cols, false, false)?;
        launch_1d(
            e,
            &k("tmp_to_out"),
            &geo.params(n0, nbc, b.is_some()),
            &[rd(&tmp), rd(bias), wr(&y)],
            nbc * geo.o * p,
        )?;
    }
    Ok(y)
}

struct ConvBackward {
    x: Tensor,
    w: Tensor,
    geo: ConvGeometry,
    needs: Needs,
    has_bias: bool,
}

impl ConvBackward {
    fn bias_grad(&self, g: &Tensor) -> Result<Tensor> {
        let gb = Tensor::empty(g.engine(), &[self.geo.o])?;
        launch_groups(
            g.engine(),
            &k("bias_grad"),
            &self.geo.params(0, self.geo.n, false),
            &[rd(g), wr(&gb)],
            self.geo.o,
        )?;
        Ok(gb)
    }

    fn depthwise(&self, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (e, geo) = (g.engine(), &self.geo);
        let gx = if self.needs[0] {
            let gx = Tensor::empty(e, self.x.shape())?;
            launch_1d(
                e,
                &depthwise_kernel("depthwise_grad_input", geo),
                &geo.params(0, geo.n, false),
                &[rd(g), rd(&self.w), wr(&gx)],
                geo.n * geo.c * geo.h,
            )?;
            Some(gx)
        } else {
            None
        };
        let gw = if self.needs[1] {
            let gw = Tensor::empty(e, self.w.shape())?;
            launch_groups(
                e,
                &depthwise_kernel("depthwise_grad_weight", geo),
                &geo.params(0, geo.n, false),
                &[rd(g), rd(&self.x), wr(&gw)],
                geo.o,
            )?;
            Some(gw)
        } else {
            None
        };
        Ok((gx, gw))
    }

    fn pointwise(&self, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let geo = &self.geo;
        let p = geo.p();
        let g3 = g.view_as(&[geo.n, geo.o, p]);
        let w2 = self.w.view_as(&[geo.o, geo.c]);
        let gx = if self.needs[0] { Some(mm(&w2, &g3, true, false)?.view_as(self.x.shape())) } else { None };
        let gw = if self.needs[1] {
            let x3 = self.x.view_as(&[geo.n, geo.c, p]);
            let per = mm(&g3, &x3, false, true)?;
            Some(crate::ops::reduce::sum_to_shape(&per, &[geo.o, geo.c])?.view_as(self.w.shape()))
        } else {
            None
        };
        Ok((gx, gw))
    }

    fn general(&self, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (e, geo) = (g.engine(), &self.geo);
        let og = geo.o / geo.groups;
        let gx = if self.needs[0] { Some(Tensor::empty(e, self.x.shape())?) } else { None };
        let gw = if self.needs[1] { Some(Tensor::empty(e, self.w.shape())?) } else { None };
        let wp = if self.needs[0] { Some(padded_weight(&self.w, geo)?) } else { None };
        let nb = geo.chunk(e);
        for n0 in (0..geo.n).step_by(nb) {
            let nbc = nb.min(geo.n - n0);
            let pr = geo.params(n0, nbc, n0 > 0);
            let gt = Tensor::empty(e, &[geo.groups, og, nbc * geo.p()])?;
            launch_1d(e, &k("out_to_tmp"), &pr, &[rd(g), wr(&gt)], gt.numel())?;
            if let (Some(gx), Some(wp)) = (&gx, &wp) {
                let gcols = mm(wp, &gt, true, false)?;
                launch_1d(e, &k("col2im"), &pr, &[rd(&gcols), wr(gx)], nbc * geo.c * geo.h)?;
            }
            if let Some(gw) = &gw {
                let colst = Tensor::empty(e, &[geo.groups, nbc * geo.p(), geo.kp()])?;
                launch_1d(e, &k("im2col_t"), &pr, &[rd(&self.x), wr(&colst)], geo.groups * nbc * geo.p())?;
                let r = mm(&gt, &colst, false, false)?;
                launch_1d(e, &k("store_weight_grad"), &pr, &[rd(&r), wr(gw)], gw.numel())?;
            }
        }
        Ok((gx, gw))
    }
}

impl Backward for ConvBackward {
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let (gx, gw) = if !self.needs[0] && !self.needs[1] {
            (None, None)
        } else if self.geo.depthwise() {
            self.depthwise(g)?
        } else if self.geo.pointwise() {
            self.pointwise(g)?
        } else {
            self.general(g)?
        };
        let mut out = vec![gx, gw];
        if self.has_bias {
            out.push(if self.needs[2] { Some(self.bias_grad(g)?) } else { None });
        }
        Ok(out)
    }
    fn saved_bytes(&self) -> u64 {
        bytes_of(&[Some(&self.x), Some(&self.w)])
    }
}

/// 2-D convolution (cross-correlation, as torch): `x [N, C, H, W]`, `w [O, C/groups, kh, kw]`,
/// optional `bias [O]` → `[N, O, Ho, Wo]`. Gradients for all three.
pub fn conv2d(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, cfg: &Conv2d) -> Result<Tensor> {
    const OP: &str = "conv2d";
    let inputs: Vec<&Tensor> = match bias {
        Some(b) => vec![x, w, b],
        None => vec![x, w],
    };
    same_engine(OP, &inputs)?;
    x.expect_f32(OP)?;
    w.expect_f32(OP)?;
    let geo = conv2d_geometry(x.shape(), w.shape(), cfg)?;
    if let Some(b) = bias {
        b.expect_f32(OP)?;
        if b.shape() != [geo.o] {
            return Err(Error::shape(OP, w.shape(), b.shape(), format!("bias must be [{}]", geo.o)));
        }
    }
    let y = forward_raw(x, w, bias, &geo)?;
    record(OP, y, &inputs, |needs| {
        let mut needs = needs.clone();
        needs.resize(3, false);
        Ok(Box::new(ConvBackward { x: x.clone(), w: w.clone(), geo, needs, has_bias: bias.is_some() }))
    })
}
