//! Losses: cross-entropy (ignore_index, label smoothing) and MSE (`shaders/loss/`).

use crate::engine::{shaders, Binding, Kernel};
use crate::error::{Error, Result};
use crate::graph::{bytes_of, record, Backward, Needs};
use crate::ops::{launch_1d, same_engine};
use crate::tensor::Tensor;

/// Options of [`cross_entropy`], PyTorch's defaults.
#[derive(Debug, Clone, Copy)]
pub struct CrossEntropy {
    /// Targets equal to this contribute nothing (torch: -100; here any u32, `None` for none).
    pub ignore_index: Option<u32>,
    /// Mix `eps` of the uniform distribution into the targets.
    pub label_smoothing: f32,
}

impl Default for CrossEntropy {
    fn default() -> Self {
        CrossEntropy { ignore_index: None, label_smoothing: 0.0 }
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct CeParams {
    rows: u32,
    cols: u32,
    ignore: u32,
    smoothing: f32,
    scale: f32,
    _pad: [u32; 3],
}

struct CeBackward {
    logits: Tensor,
    targets: Tensor,
    p: CeParams,
}

impl Backward for CeBackward {
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        // The gradient has the logits' dtype (f16 logits of a mixed-precision run).
        let gx = Tensor::empty_typed(g.engine(), self.logits.shape(), self.logits.dtype())?;
        launch_1d(
            g.engine(),
            &Kernel::new(&shaders::CROSS_ENTROPY, "cross_entropy_backward").half(gx.is_half()),
            &self.p,
            &[
                Binding::read(g.storage(), g.nbytes()),
                Binding::read(self.logits.storage(), self.logits.nbytes()),
                Binding::read(self.targets.storage(), self.targets.nbytes()),
                Binding::write(gx.storage(), gx.nbytes()),
            ],
            self.p.rows as usize,
        )?;
        Ok(vec![Some(gx)])
    }
    fn saved_bytes(&self) -> u64 {
        bytes_of(&[Some(&self.logits), Some(&self.targets)])
    }
}

/// Mean cross-entropy of `logits` (N, C) against class ids `targets` (N), over the rows that
/// are not ignored (0 when every row is ignored). Targets are checked on the host: a class id
/// `>= C` is a typed error naming the row.
pub fn cross_entropy(logits: &Tensor, targets: &[u32], opts: CrossEntropy) -> Result<Tensor> {
    logits.expect_float("cross_entropy")?;
    if logits.rank() != 2 {
        return Err(Error::arg("cross_entropy", format!("logits must be (N, C), got {:?}", logits.shape())));
    }
    let (n, c) = (logits.shape()[0], logits.shape()[1]);
    if targets.len() != n {
        return Err(Error::shape("cross_entropy", logits.shape(), &[targets.len()], "one target per row"));
    }
    if !(0.0..=1.0).contains(&opts.label_smoothing) {
        return Err(Error::arg(
            "cross_entropy",
            format!("label_smoothing {} is not in [0, 1]", opts.label_smoothing),
        ));
    }
    let ignore = opts.ignore_index.unwrap_or(u32::MAX);
    let mut count = 0usize;
    for (i, &t) in targets.iter().enumerate() {
        if t == ignore {
            continue;
        }
        if t as usize >= c {
            return Err(Error::arg(
                "cross_entropy",
                format!("target {t} at row {i} is out of range for {c} classes"),
            ));
        }
        count += 1;
    }
    let e = logits.engine();
    let tg = Tensor::from_u32(e, targets, &[n])?;
    let rows = Tensor::empty(e, &[n])?;
    let scale = if count == 0 { 0.0 } else { 1.0 / count as f32 };
    let p = CeParams {
        rows: n as u32,
        cols: c as u32,
        ignore,
        smoothing: opts.label_smoothing,
        scale,
        _pad: [0; 3],
    };
    launch_1d(
        e,
        &Kernel::new(&shaders::CROSS_ENTROPY, "cross_entropy_forward").half(logits.is_half()),
        &p,
        &[
            Binding::read(logits.storage(), logits.nbytes()),
            Binding::read(tg.storage(), tg.nbytes()),
            Binding::write(rows.storage(), rows.nbytes()),
        ],
        n,
    )?;
    let loss = {
        let _g = e.no_grad();
        rows.sum(0, false)?.mul_scalar(scale)?
    };
    record("cross_entropy", loss, &[logits], |_| {
        Ok(Box::new(CeBackward { logits: logits.clone(), targets: tg, p }))
    })
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct MseParams {
    n: u32,
    scale: f32,
    _pad: [u32; 2],
}

struct MseBackward {
    a: Tensor,
    b: Tensor,
    needs: Needs,
    p: MseParams,
}

impl Backward for MseBackward {
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let e = g.engine();
        let ga = Tensor::empty(e, self.a.shape())?;
        let gb = Tensor::empty(e, self.a.shape())?;
        launch_1d(
            e,
            &Kernel::new(&shaders::MSE, "mse_backward"),
            &self.p,
            &[
                Binding::read(g.storage(), g.nbytes()),
                Binding::read(self.a.storage(), self.a.nbytes()),
                Binding::read(self.b.storage(), self.b.nbytes()),
                Binding::write(ga.storage(), ga.nbytes()),
                Binding::write(gb.storage(), gb.nbytes()),
            ],
            self.p.n as usize,
        )?;
        Ok(vec![self.needs[0].then_some(ga), self.needs[1].then_some(gb)])
    }
    fn saved_bytes(&self) -> u64 {
        bytes_of(&[Some(&self.a), Some(&self.b)])
    }
}

/// Mean of `(a - b)²` over every element; shapes must match.
pub fn mse(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let e = same_engine("mse", &[a, b])?;
    a.expect_f32("mse")?;
    b.expect_f32("mse")?;
    if a.shape() != b.shape() {
        return Err(Error::shape(
            "mse",
            a.shape(),
            b.shape(),
            "prediction and target must have the same shape",
        ));
    }
    let n = a.numel();
    let d2 = Tensor::empty(e, &[n])?;
    let p = MseParams { n: n as u32, scale: 2.0 / n.max(1) as f32, _pad: [0; 2] };
    launch_1d(
        e,
        &Kernel::new(&shaders::MSE, "mse_forward"),
        &p,
        &[
            Binding::read(a.storage(), a.nbytes()),
            Binding::read(b.storage(), b.nbytes()),
            Binding::write(d2.storage(), d2.nbytes()),
        ],
        n,
    )?;
    let loss = {
        let _g = e.no_grad();
        d2.mean(0, false)?
    };
    record("mse", loss, &[a, b], |needs| {
        Ok(Box::new(MseBackward { a: a.clone(), b: b.clone(), needs: needs.clone(), p }))
    })
}
