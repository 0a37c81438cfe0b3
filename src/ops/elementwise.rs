//! Elementwise ops: unary functions, scalar affine/pow, and broadcasting add/sub/mul/div
//! (`shaders/elementwise/unary.wgsl`, `binary.wgsl`).

use crate::engine::{shaders, Binding, Kernel};
use crate::error::Result;
use crate::graph::{bytes_of, record, Backward, Needs};
use crate::ops::{launch_1d, same_engine};
use crate::tensor::{shape, Tensor};

/// Unary functions; the discriminant is the shader's `OP` override constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum UnaryOp {
    Neg = 0,
    Exp = 1,
    Log = 2,
    Sqrt = 3,
    Rsqrt = 4,
    Relu = 5,
    /// GELU with the exact erf form (BERT, PyTorch's default).
    GeluErf = 6,
    /// GELU with the tanh approximation (GPT-2's `gelu_new`).
    GeluTanh = 7,
    Silu = 8,
    Sigmoid = 9,
    Tanh = 10,
    /// `x^alpha`.
    Pow = 11,
    /// `x * alpha + beta` (scalar add, mul, sub, div).
    Affine = 12,
    Relu6 = 13,
    Abs = 14,
}

impl UnaryOp {
    /// Every unary op, for tests.
    pub const ALL: [UnaryOp; 15] = [
        UnaryOp::Neg,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sqrt,
        UnaryOp::Rsqrt,
        UnaryOp::Relu,
        UnaryOp::GeluErf,
        UnaryOp::GeluTanh,
        UnaryOp::Silu,
        UnaryOp::Sigmoid,
        UnaryOp::Tanh,
        UnaryOp::Pow,
        UnaryOp::Affine,
        UnaryOp::Relu6,
        UnaryOp::Abs,
    ];

    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Rsqrt => "rsqrt",
            UnaryOp::Relu => "relu",
            UnaryOp::GeluErf => "gelu",
            UnaryOp::GeluTanh => "gelu_tanh",
            UnaryOp::Silu => "silu",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Pow => "pow",
            UnaryOp::Affine => "affine",
            UnaryOp::Relu6 => "relu6",
            UnaryOp::Abs => "abs",
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct UnaryParams {
    n: u32,
    alpha: f32,
    beta: f32,
    _pad: u32,
}

fn unary_kernel(entry: &'static str, op: UnaryOp, half: bool) -> Kernel {
    Kernel::new(&shaders::UNARY, entry).with("OP", op as u32).half(half)
}

fn unary_raw(x: &Tensor, op: UnaryOp, alpha: f32, beta: f32) -> Result<Tensor> {
    let out = Tensor::empty_typed(x.engine(), x.shape(), x.dtype())?;
    let p = UnaryParams { n: x.numel() as u32, alpha, beta, _pad: 0 };
    launch_1d(
        x.engine(),
        &unary_kernel("unary_forward", op, x.is_half()),
        &p,
        &[Binding::read(x.storage(), x.nbytes()), Binding::write(out.storage(), out.nbytes())],
        x.numel(),
    )?;
    Ok(out)
}

struct UnaryBackward {
    op: UnaryOp,
    alpha: f32,
    beta: f32,
    /// The input, kept only for ops whose derivative depends on it.
    x: Option<Tensor>,
}

impl Backward for UnaryBackward {
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let gx = match (&self.x, self.op) {
            (_, UnaryOp::Neg) => unary_raw(g, UnaryOp::Affine, -1.0, 0.0)?,
            (_, UnaryOp::Affine) => unary_raw(g, UnaryOp::Affine, self.alpha, 0.0)?,
            (Some(x), op) => {
                if g.dtype() != x.dtype() {
                    return Err(crate::Error::DType {
                        op: op.name(),
                        expected: x.dtype().name(),
                        got: g.dtype().name(),
                    });
                }
                let out = Tensor::empty_typed(g.engine(), g.shape(), g.dtype())?;
                let p = UnaryParams { n: g.numel() as u32, alpha: self.alpha, beta: self.beta, _pad: 0 };
                launch_1d(
                    g.engine(),
                    &unary_kernel("unary_backward", op, g.is_half()),
                    &p,
                    &[
                        Binding::read(g.storage(), g.nbytes()),
                        Binding::read(x.storage(), x.nbytes()),
                        Binding::write(out.storage(), out.nbytes()),
                    ],
                    g.numel(),
                )?;
                out
            }
            (None, _) => unreachable!("unary backward without its saved input"),
        };
        Ok(vec![Some(gx)])
    }
    fn saved_bytes(&self) -> u64 {
        bytes_of(&[self.x.as_ref()])
    }
}

/// Apply a unary op (`alpha`, `beta` used by `Pow` and `Affine`).
pub fn unary(x: &Tensor, op: UnaryOp, alpha: f32, beta: f32) -> Result<Tensor> {
    x.expect_float(op.name())?;
    let out = unary_raw(x, op, alpha, beta)?;
    record(op.name(), out, &[x], |_| {
        let keep = !matches!(op, UnaryOp::Neg | UnaryOp::Affine);
        Ok(Box::new(UnaryBackward { op, alpha, beta, x: keep.then(|| x.clone()) }))
    })
}

/// Binary op codes (`OP` in binary.wgsl).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum BinaryOp {
    Add = 0,
    Sub = 1,
    Mul = 2,
    Div = 3,
}

impl BinaryOp {
    pub const ALL: [BinaryOp; 4] = [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div];
    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct BinaryParams {
    n: u32,
    rank: u32,
    /// `binary_tail`: element count of the repeating operand.
    tail: u32,
    /// `binary_rows4`: rows of the output (`n / tail`).
    rows: u32,
    shape: [u32; 8],
    sa: [u32; 8],
    sb: [u32; 8],
}

fn binary_params(a: &[usize], b: &[usize], out: &[usize]) -> Result<BinaryParams> {
    if out.len() > shape::MAX_RANK {
        return Err(crate::Error::arg("binary", format!("rank {} exceeds {}", out.len(), shape::MAX_RANK)));
    }
    Ok(BinaryParams {
        n: shape::numel(out) as u32,
        rank: out.len() as u32,
        tail: 0,
        rows: 0,
        shape: shape::pack8(out),
        sa: shape::pack8(&shape::broadcast_strides(a, out)),
        sb: shape::pack8(&shape::broadcast_strides(b, out)),
    })
}

pub(crate) fn binary_raw(a: &Tensor, b: &Tensor, op: BinaryOp) -> Result<Tensor> {
    let e = same_engine(op.name(), &[a, b])?;
    let out_shape = shape::broadcast(op.name(), a.shape(), b.shape())?;
    let out = Tensor::empty_typed(e, &out_shape, same_float(op.name(), a, b)?)?;
    let half = a.is_half();
    let mut p = binary_params(a.shape(), b.shape(), &out_shape)?;
    // b spans a's trailing dims (leading 1s aside) and a is already the output's shape.
    let b_core: &[usize] = {
        let s = b.shape();
        &s[s.iter().position(|&d| d != 1).unwrap_or(s.len())..]
    };
    let tail = a.shape() == out_shape.as_slice()
        && !b_core.is_empty()
        && out_shape.ends_with(b_core)
        && b.numel() > 0;
    let bindings = [
        Binding::read(a.storage(), a.nbytes()),
        Binding::read(b.storage(), b.nbytes()),
        Binding::write(out.storage(), out.nbytes()),
    ];
    if a.shape() == b.shape() {
        return launch_1d(e, &kernel("binary_same", op, half), &p, &bindings, out.numel()).map(|_| out);
    }
    if !tail {
        return launch_1d(e, &kernel("binary_broadcast", op, half), &p, &bindings, out.numel()).map(|_| out);
    }
    p.tail = b.numel() as u32;
    // A tail of 4k elements takes the vec4 row kernel (no division) when its grid fits.
    let max = e.limits().max_compute_workgroups_per_dimension as usize;
    let rows = out.numel() / b.numel();
    let (gx, gy, gz) = ((b.numel() / 4).div_ceil(super::WG1 as usize), rows.min(max), rows.div_ceil(max));
    if b.numel().is_multiple_of(4) && rows > 0 && gx <= max && gz <= max {
        p.rows = rows as u32;
        let groups = [gx as u32, gy as u32, gz as u32];
        e.dispatch(&kernel("binary_rows4", op, half), bytemuck::bytes_of(&p), &bindings, groups)?;
        return Ok(out);
    }
    launch_1d(e, &kernel("binary_tail", op, half), &p, &bindings, out.numel()).map(|_| out)
}

fn kernel(entry: &'static str, op: BinaryOp, half: bool) -> Kernel {
    Kernel::new(&shaders::BINARY, entry).with("OP", op as u32).half(half)
}

/// The dtype both operands share (f32 or f16); mixing them is a typed error: a cast says
/// where the precision changes.
fn same_float(op: &'static str, a: &Tensor, b: &Tensor) -> Result<crate::tensor::DType> {
    a.expect_float(op)?;
    if a.dtype() != b.dtype() {
        return Err(crate::Error::DType { op, expected: a.dtype().name(), got: b.dtype().name() });
    }
    Ok(a.dtype())
}

struct BinaryBackward {
    op: BinaryOp,
    a_shape: Vec<usize>,
    b_shape: Vec<usize>,
    /// Operands, kept only for mul/div, and only the one the other side's gradient needs.
    a: Option<Tensor>,
    b: Option<Tensor>,
    needs: Needs,
}

impl Backward for BinaryBackward {
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let reduce = |t: Tensor, to: &[usize]| crate::ops::reduce::sum_to_shape(&t, to);
        match self.op {
            BinaryOp::Add | BinaryOp::Sub => {
                let ga = if self.needs[0] { Some(reduce(g.clone(), &self.a_shape)?) } else { None };
                let gb = if self.needs[1] {
                    let gb = reduce(g.clone(), &self.b_shape)?;
                    Some(if self.op == BinaryOp::Sub { unary_raw(&gb, UnaryOp::Neg, 0.0, 0.0)? } else { gb })
                } else {
                    None
                };
                Ok(vec![ga, gb])
            }
            BinaryOp::Mul | BinaryOp::Div => {
                let e = g.engine();
                // Placeholders keep the binding layout fixed when one operand was not saved
                // (its gradient is then not needed and that output is discarded).
                let a = self.a.clone().unwrap_or_else(|| g.clone());
                let b = self.b.clone().unwrap_or_else(|| g.clone());
                let (sa, sb) = (
                    if self.a.is_some() { self.a_shape.clone() } else { g.shape().to_vec() },
                    if self.b.is_some() { self.b_shape.clone() } else { g.shape().to_vec() },
                );
                let dt = same_float(self.op.name(), g, &a)?;
                let ga = Tensor::empty_typed(e, g.shape(), dt)?;
                let gb = Tensor::empty_typed(e, g.shape(), dt)?;
                let p = binary_params(&sa, &sb, g.shape())?;
                launch_1d(
                    e,
                    &kernel("binary_backward", self.op, g.is_half()),
                    &p,
                    &[
                        Binding::read(g.storage(), g.nbytes()),
                        Binding::read(a.storage(), a.nbytes()),
                        Binding::read(b.storage(), b.nbytes()),
                        Binding::write(ga.storage(), ga.nbytes()),
                        Binding::write(gb.storage(), gb.nbytes()),
                    ],
                    g.numel(),
                )?;
                let ga = if self.needs[0] { Some(reduce(ga, &self.a_shape)?) } else { None };
                let gb = if self.needs[1] { Some(reduce(gb, &self.b_shape)?) } else { None };
                Ok(vec![ga, gb])
            }
        }
    }
    fn saved_bytes(&self) -> u64 {
        bytes_of(&[self.a.as_ref(), self.b.as_ref()])
    }
}

/// `a (op) b` with broadcasting.
pub fn binary(a: &Tensor, b: &Tensor, op: BinaryOp) -> Result<Tensor> {
    same_float(op.name(), a, b)?;
    let out = binary_raw(a, b, op)?;
    record(op.name(), out, &[a, b], |needs| {
        let (keep_a, keep_b) = match op {
            BinaryOp::Add | BinaryOp::Sub => (false, false),
            // d(a*b)/da = b, d(a*b)/db = a
            BinaryOp::Mul => (needs[1], needs[0]),
            // d(a/b)/da = 1/b, d(a/b)/db = -a/b^2
            BinaryOp::Div => (needs[1], true),
        };
        Ok(Box::new(BinaryBackward {
            op,
            a_shape: a.shape().to_vec(),
            b_shape: b.shape().to_vec(),
            a: keep_a.then(|| a.clone()),
            b: keep_b.then(|| b.clone()),
            needs: needs.clone(),
        }))
    })
}

impl Tensor {
    pub fn add(&self, o: &Tensor) -> Result<Tensor> {
        binary(self, o, BinaryOp::Add)
    }
    pub fn sub(&self, o: &Tensor) -> Result<Tensor> {
        binary(self, o, BinaryOp::Sub)
    }
    pub fn mul(&self, o: &Tensor) -> Result<Tensor> {
        binary(self, o, BinaryOp::Mul)
    }
    pub fn div(&self, o: &Tensor) -> Result<Tensor> {
        binary(self, o, BinaryOp::Div)
    }
    pub fn neg(&self) -> Result<Tensor> {
        unary(self, UnaryOp::Neg, 0.0, 0.0)
    }
    pub fn exp(&self) -> Result<Tensor> {
        unary(self, UnaryOp::Exp, 0.0, 0.0)
    }
    pub fn log(&self) -> Result<Tensor> {
        unary(self, UnaryOp::Log, 0.0, 0.0)
    }
    pub fn sqrt(&self) -> Result<Tensor> {
        unary(self, UnaryOp::Sqrt, 0.0, 0.0)
    }
    pub fn rsqrt(&self) -> Result<Tensor> {
        unary(self, UnaryOp::Rsqrt, 0.0, 0.0)
    }
    pub fn relu(&self) -> Result<Tensor> {
        unary(self, UnaryOp::Relu, 0.0, 0.0)
    }
    pub fn relu6(&self) -> Result<Tensor> {
        unary(self, UnaryOp::Relu6, 0.0, 0.0)
    }
    /// GELU, exact erf form.
    pub fn gelu(&self) -> Result<Tensor> {
        unary(self, UnaryOp::GeluErf, 0.0, 0.0)
    }
    /// GELU, tanh approximation.
    pub fn gelu_tanh(&self) -> Result<Tensor> {
        unary(self, UnaryOp::GeluTanh, 0.0, 0.0)
    }
    pub fn silu(&self) -> Result<Tensor> {
        unary(self, UnaryOp::Silu, 0.0, 0.0)
    }
    pub fn sigmoid(&self) -> Result<Tensor> {
        unary(self, UnaryOp::Sigmoid, 0.0, 0.0)
    }
    pub fn tanh(&self) -> Result<Tensor> {
        unary(self, UnaryOp::Tanh, 0.0, 0.0)
    }
    pub fn abs(&self) -> Result<Tensor> {
        unary(self, UnaryOp::Abs, 0.0, 0.0)
    }
    /// `x^p` (negative bases allowed for integral `p`, as in PyTorch).
    pub fn powf(&self, p: f32) -> Result<Tensor> {
        unary(self, UnaryOp::Pow, p, 0.0)
    }
    /// `x * alpha + beta`.
    pub fn affine(&self, alpha: f32, beta: f32) -> Result<Tensor> {
        unary(self, UnaryOp::Affine, alpha, beta)
    }
    pub fn add_scalar(&self, s: f32) -> Result<Tensor> {
        self.affine(1.0, s)
    }
    pub fn mul_scalar(&self, s: f32) -> Result<Tensor> {
        self.affine(s, 0.0)
    }
}
