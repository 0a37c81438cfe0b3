//! Kernels over block-quantized frozen weights (`shaders/quant/quant.wgsl`): the weight is
//! dequantized in registers, chunk by chunk, and never materialised in f32.
//!
//! A frozen weight needs no gradient of its own, so the products it takes part in are the
//! forward `x·Wᵀ` and the backward with respect to the input `g·W`; both are here, beside the
//! embedding gather (a tied decoder's table) and a plain dequantize (a quantized weight that
//! becomes trainable, and exports). Every kernel is checked against the CPU dequantizer
//! (`weights::quant`) followed by an f64 product in `tests/quant_kernels.rs`.

use crate::engine::{shaders, Binding, Kernel};
use crate::error::{Error, Result};
use crate::ops::launch_1d;
use crate::tensor::{DType, QuantType, Tensor};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    has_bias: u32,
}

/// Workgroups per grid dimension the shader folds rows by (WebGPU's guaranteed minimum).
const FOLD: usize = 65535;

/// The block format of `w`, or a typed error naming `op`.
pub(crate) fn quant_of(op: &'static str, w: &Tensor) -> Result<QuantType> {
    w.quant_type().ok_or(Error::DType { op, expected: "a quantized weight", got: w.dtype().name() })
}

fn kernel(entry: &'static str, qt: QuantType) -> Kernel {
    Kernel::new(&shaders::QUANT, entry).with("QTYPE", qt.shader_code())
}

/// `groups_x` workgroups across and `rows` rows in tiles of `tile` down, folded into z past
/// the per-dimension cap (the shaders unfold them the same way).
fn tile_groups(groups_x: usize, rows: usize, tile: usize) -> Result<[u32; 3]> {
    let gy = rows.div_ceil(tile);
    let gz = gy.div_ceil(FOLD);
    if gz > FOLD || groups_x > FOLD {
        return Err(Error::arg(
            "quant",
            format!("{rows} rows x {groups_x} column groups exceed one dispatch"),
        ));
    }
    Ok([groups_x as u32, gy.min(FOLD) as u32, gz as u32])
}

fn check_u32(op: &'static str, n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| Error::arg(op, format!("{n} elements exceed the kernel's 32-bit indices")))
}

/// `x (m, k) · Wᵀ (+ bias)` for a quantized `w` `(n, k)`; no autodiff (see `ops::linear`).
pub(crate) fn qmatmul_nt(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let qt = quant_of("linear", w)?;
    let (m, k) = (x.shape()[0], x.shape()[1]);
    let n = w.shape()[0];
    check_u32("linear", n * k)?;
    let e = x.engine();
    x.expect_float("linear")?;
    let y = Tensor::empty_typed(e, &[m, n], x.dtype())?;
    if m == 0 || n == 0 {
        return Ok(y);
    }
    let p = Params { m: m as u32, n: n as u32, k: k as u32, has_bias: bias.is_some() as u32 };
    // Without a bias the binding is unread; the weight stands in.
    let b = bias.unwrap_or(w);
    let bindings = [
        Binding::read(w.storage(), w.nbytes()),
        Binding::read(x.storage(), x.nbytes()),
        Binding::write(y.storage(), y.nbytes()),
        Binding::read(b.storage(), b.nbytes()),
    ];
    // 8 invocations of 8 weight rows x 32 rows.
    let g = tile_groups(n.div_ceil(8 * 8), m, 32)?;
    e.dispatch(&kernel("qmatmul_nt", qt).half(x.is_half()), bytemuck::bytes_of(&p), &bindings, g)?;
    Ok(y)
}

/// `g (m, n) · W` for a quantized `w` `(n, k)`: the gradient with respect to the input.
pub(crate) fn qmatmul_nn(g: &Tensor, w: &Tensor) -> Result<Tensor> {
    let qt = quant_of("linear", w)?;
    let (m, n) = (g.shape()[0], g.shape()[1]);
    let k = w.shape()[1];
    check_u32("linear", n * k)?;
    let e = g.engine();
    g.expect_float("linear")?;
    let dx = Tensor::empty_typed(e, &[m, k], g.dtype())?;
    if m == 0 || k == 0 {
        return Ok(dx);
    }
    if n == 0 {
        crate::ops::fill::fill(&dx, 0.0)?;
        return Ok(dx);
    }
    let p = Params { m: m as u32, n: n as u32, k: k as u32, has_bias: 0 };
    let bindings = [
        Binding::read(w.storage(), w.nbytes()),
        Binding::read(g.storage(), g.nbytes()),
        Binding::write(dx.storage(), dx.nbytes()),
    ];
    // 8 invocations of one 8-column chunk each, 32 rows (8 when n is not a multiple of 4).
    let (entry, rows) = if n.is_multiple_of(4) { ("qmatmul_nn", 32) } else { ("qmatmul_nn_any", 8) };
    let g = tile_groups((k / 8).div_ceil(8), m, rows)?;
    e.dispatch(&kernel(entry, qt).half(dx.is_half()), bytemuck::bytes_of(&p), &bindings, g)?;
    Ok(dx)
}

/// Rows `ids` of a quantized table `(vocab, dim)`, as `(ids.len(), dim)` in `out` (f32, or f16
/// for mixed precision). The ids were checked against the vocabulary by the caller.
pub(crate) fn qembedding(table: &Tensor, ids: &Tensor, out: DType) -> Result<Tensor> {
    let qt = quant_of("embedding", table)?;
    let (rows, dim) = (ids.numel(), table.shape()[1]);
    check_u32("embedding", table.numel())?;
    let e = table.engine();
    let out = Tensor::empty_typed(e, &[rows, dim], out)?;
    let p = Params { m: rows as u32, n: 0, k: dim as u32, has_bias: 0 };
    let bindings = [
        Binding::read(table.storage(), table.nbytes()),
        Binding::read(ids.storage(), ids.nbytes()),
        Binding::write(out.storage(), out.nbytes()),
    ];
    launch_1d(e, &kernel("qembedding", qt).half(out.is_half()), &p, &bindings, rows * dim / 8)?;
    Ok(out)
}

/// The f32 values of a quantized tensor, computed on the device (a quantized weight that is
/// made trainable, or merged with its LoRA adapter for export). An f32 tensor is returned as is.
pub fn dequantize(t: &Tensor) -> Result<Tensor> {
    let DType::Quant(qt) = t.dtype() else { return Ok(t.clone()) };
    let n = t.numel();
    check_u32("dequantize", n)?;
    let e = t.engine();
    let out = Tensor::empty(e, t.shape())?;
    let p = Params { m: (n / 8) as u32, n: 0, k: 0, has_bias: 0 };
    let bindings = [Binding::read(t.storage(), t.nbytes()), Binding::write(out.storage(), out.nbytes())];
    launch_1d(e, &kernel("dequantize", qt), &p, &bindings, n / 8)?;
    Ok(out)
}
