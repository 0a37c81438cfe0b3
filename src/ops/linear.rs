//! Fully connected product with its bias in one op: `y = x·Wᵀ + b` (torch layout, `W` is
//! `[out, in]`) or `y = x·W + b` (GPT-2 `Conv1D`, `W` is `[in, out]`).
//!
//! Why an op of its own rather than matmul + add: the leading dims of `x` fold into rows, so
//! the weight gradient is one `[out, rows]·[rows, in]` product instead of a per-batch product
//! summed afterwards, and where the subgroup matmul runs the bias is added in its epilogue
//! instead of a pass over the output (both measured on MiniLM; see `ops::matmul`).
//!
//! A block-quantized `W` (a frozen weight, `ops::quant`) takes the quantized kernels for the
//! forward and for the input's gradient; it never needs a gradient of its own.

use crate::error::{Error, Result};
use crate::graph::{bytes_of, record, Backward, Needs};
use crate::ops::cast::{cast, cast_raw};
use crate::ops::matmul::{matmul_bias_raw, matmul_raw, MatmulKernel};
use crate::ops::quant::{qmatmul_nn, qmatmul_nt};
use crate::ops::reduce::sum_to_shape;
use crate::ops::same_engine;
use crate::tensor::{DType, Tensor};

const OP: &str = "linear";

struct LinearBackward {
    /// `x` as `[rows, in]`, saved when the weight needs a gradient.
    x: Option<Tensor>,
    /// Saved when `x` needs a gradient.
    w: Option<Tensor>,
    x_shape: Vec<usize>,
    rows: usize,
    out: usize,
    in_major: bool,
    needs: Needs,
}

impl Backward for LinearBackward {
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let auto = MatmulKernel::Auto;
        let g2 = g.view_as(&[self.rows, self.out]);
        let gx = if self.needs[0] {
            let w = self.w.as_ref().expect("w saved when x needs grad");
            // torch layout: dX = G·W; Conv1D: dX = G·Wᵀ.
            let gx = match w.quant_type() {
                Some(_) => qmatmul_nn(&g2, w)?,
                None => matmul_raw(&g2, w, false, self.in_major, auto)?,
            };
            Some(gx.view_as(&self.x_shape))
        } else {
            None
        };
        let gw = if self.needs[1] {
            let x = self.x.as_ref().expect("x saved when w needs grad");
            // torch layout: dW = Gᵀ·X ([out, in]); Conv1D: dW = Xᵀ·G ([in, out]).
            Some(if self.in_major {
                matmul_raw(x, &g2, true, false, auto)?
            } else {
                matmul_raw(&g2, x, true, false, auto)?
            })
        } else {
            None
        };
        let gb = match self.needs.get(2) {
            // The bias is f32: an f16 gradient is summed in f32.
            Some(true) => Some(sum_to_shape(&cast_raw(&g2, DType::F32)?, &[self.out])?),
            _ => None,
        };
        Ok(vec![gx, gw, gb])
    }
    fn saved_bytes(&self) -> u64 {
        bytes_of(&[self.x.as_ref(), self.w.as_ref()])
    }
}

/// `x·Wᵀ + b` over the last axis of `x` (`W` stored `[out, in]`), or `x·W + b` when
/// `in_major` (`W` stored `[in, out]`). `bias`, when given, is `[out]`.
///
/// An f16 `x` (mixed precision) gives an f16 output: a quantized or 16-bit `W` is read as it
/// is, an f32 `W` (a trainable master weight) takes part through an f16 copy whose gradient
/// comes back to it in f32; the bias stays f32 and is added in f32.
pub fn linear(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, in_major: bool) -> Result<Tensor> {
    same_engine(OP, &[x, w])?;
    x.expect_float(OP)?;
    let w16;
    let w = if x.is_half() && w.dtype() == DType::F32 {
        w16 = cast(w, DType::F16)?;
        &w16
    } else {
        w
    };
    let mut inputs = vec![x, w];
    inputs.extend(bias);
    same_engine(OP, &inputs)?;
    if w.quant_type().is_none() && w.dtype() != x.dtype() {
        return Err(Error::DType { op: OP, expected: x.dtype().name(), got: w.dtype().name() });
    }
    if let Some(b) = bias {
        b.expect_f32(OP)?;
    }
    check_quantized(w, in_major)?;
    if w.rank() != 2 {
        return Err(Error::shape(OP, x.shape(), w.shape(), "the weight must be 2-D"));
    }
    let (fan_in, fan_out) =
        if in_major { (w.shape()[0], w.shape()[1]) } else { (w.shape()[1], w.shape()[0]) };
    if x.rank() == 0 || x.shape()[x.rank() - 1] != fan_in {
        return Err(Error::shape(
            OP,
            x.shape(),
            w.shape(),
            format!("x's last dim must be the {fan_in} inputs"),
        ));
    }
    if let Some(b) = bias {
        if b.shape() != [fan_out] {
            return Err(Error::shape(OP, w.shape(), b.shape(), format!("the bias must be [{fan_out}]")));
        }
    }
    let rows = x.numel() / fan_in.max(1);
    let x2 = x.view_as(&[rows, fan_in]);
    let mut out_shape = x.shape().to_vec();
    *out_shape.last_mut().expect("rank >= 1") = fan_out;
    let y = match w.quant_type() {
        Some(_) => qmatmul_nt(&x2, w, bias)?,
        None => matmul_bias_raw(&x2, w, false, !in_major, MatmulKernel::Auto, bias)?,
    }
    .view_as(&out_shape);
    record(OP, y, &inputs, |needs| {
        Ok(Box::new(LinearBackward {
            x: needs[1].then(|| x2.clone()),
            w: needs[0].then(|| w.clone()),
            x_shape: x.shape().to_vec(),
            rows,
            out: fan_out,
            in_major,
            needs: needs.clone(),
        }))
    })
}

/// A quantized weight is frozen and stored `[out, in]` with its blocks along the inputs; one
/// that asks for a gradient was made trainable without being expanded (`Params::unfreeze`
/// expands it), which would silently train nothing.
fn check_quantized(w: &Tensor, in_major: bool) -> Result<()> {
    let Some(qt) = w.quant_type() else { return Ok(()) };
    if in_major {
        return Err(Error::arg(
            OP,
            format!("a {} weight must be stored [out, in], not as a Conv1D", qt.name()),
        ));
    }
    if w.requires_grad() && w.engine().grad_enabled() {
        return Err(Error::arg(
            OP,
            format!(
                "the {} weight {:?} requires a gradient; a trainable weight must be expanded to f32 first",
                qt.name(),
                w.shape()
            ),
        ));
    }
    Ok(())
}
