//! Kernel cases: matmul at square sizes, memory bandwidth (add), softmax, convolution (a
//! ResNet 3×3 and a depthwise 3×3), attention, a frozen linear layer's forward and input
//! gradient with its weight in f32 and in Q4_0 / Q8_0 blocks, and the cost of a dispatch
//! inside one submit.
//! Each runs without a tape (forward only) and waits for the device.

use super::Case;
use crate::engine::Engine;
use crate::error::Result;
use crate::ops::attention::{attention, Attention};
use crate::ops::conv::{conv2d, conv2d_geometry, Conv2d, Padding};
use crate::tensor::Tensor;

/// Deterministic values in [-0.5, 0.5) (xorshift): the numbers do not matter, only that they
/// are finite and not all equal.
pub fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

fn tensor(e: &Engine, shape: &[usize], seed: u64) -> Result<Tensor> {
    Tensor::from_slice(e, &values(shape.iter().product(), seed), shape)
}

/// A case that runs `f` without a tape and waits for the device.
fn case<'a>(
    e: &'a Engine,
    name: String,
    work: Option<(f64, &'static str)>,
    mut f: impl FnMut() -> Result<Tensor> + 'a,
) -> Case<'a> {
    Case {
        name,
        work,
        run: Box::new(move || {
            let _g = e.no_grad();
            drop(f()?);
            e.sync()
        }),
    }
}

pub(super) fn cases<'a>(e: &'a Engine, quick: bool, wanted: &dyn Fn(&str) -> bool) -> Result<Vec<Case<'a>>> {
    let mut out = Vec::new();
    let sizes: &[usize] = if quick { &[512, 1024] } else { &[512, 1024, 2048] };
    for &n in sizes {
        let name = format!("matmul_f32_{n}");
        if wanted(&name) {
            let (a, b) = (tensor(e, &[n, n], 1)?, tensor(e, &[n, n], 2)?);
            let gflop = 2.0 * (n * n * n) as f64 / 1e9;
            out.push(case(e, name, Some((gflop, "GFLOP/s")), move || a.matmul(&b)));
        }
    }
    let n = if quick { 1 << 22 } else { 1 << 24 };
    let name = format!("bandwidth_add_f32_{}m", n >> 20);
    if wanted(&name) {
        let (a, b) = (tensor(e, &[n], 3)?, tensor(e, &[n], 4)?);
        // Reads two arrays, writes one.
        out.push(case(e, name, Some((3.0 * 4.0 * n as f64 / 1e9, "GB/s")), move || a.add(&b)));
    }
    let name = format!("zeros_f32_{}m", n >> 20);
    if wanted(&name) {
        // A zeroed tensor (gradient accumulators, optimizer state): a transfer command.
        out.push(case(e, name, Some((4.0 * n as f64 / 1e9, "GB/s")), move || Tensor::zeros(e, &[n])));
    }
    if wanted("softmax_f32_4096x1024") {
        let x = tensor(e, &[4096, 1024], 5)?;
        let gb = 2.0 * 4.0 * (4096 * 1024) as f64 / 1e9;
        out.push(case(e, "softmax_f32_4096x1024".into(), Some((gb, "GB/s")), move || x.softmax()));
    }
    for (name, xs, ws, groups) in [
        ("conv_f32_3x3_64to64_b8_32", [8, 64, 32, 32], [64, 64, 3, 3], 1),
        ("conv_f32_depthwise3x3_96_b8_64", [8, 96, 64, 64], [96, 1, 3, 3], 96),
    ] {
        if wanted(name) {
            let cfg = Conv2d { padding: Padding::symmetric(1, 1), groups, ..Conv2d::default() };
            let gflop = conv2d_geometry(&xs, &ws, &cfg)?.flops() as f64 / 1e9;
            let (x, w) = (tensor(e, &xs, 7)?, tensor(e, &ws, 8)?);
            out.push(case(e, name.into(), Some((gflop, "GFLOP/s")), move || conv2d(&x, &w, None, &cfg)));
        }
    }
    let name = "attention_f32_b16_h12_t128_d32";
    if wanted(name) {
        let (b, h, t, d) = (16, 12, 128, 32);
        let (q, k, v) =
            (tensor(e, &[b, h, t, d], 11)?, tensor(e, &[b, h, t, d], 12)?, tensor(e, &[b, h, t, d], 13)?);
        // The two products QKᵀ and PV.
        let gflop = 4.0 * (b * h * t * t * d) as f64 / 1e9;
        let opts = Attention::new(d);
        out.push(case(e, name.into(), Some((gflop, "GFLOP/s")), move || attention(&q, &k, &v, &opts)));
    }
    out.extend(linear_cases(e, wanted)?);
    if wanted("dispatch_100_one_submit") {
        // 100 dependent one-element dispatches in one submit: the fixed cost of a dispatch.
        let one = tensor(e, &[1], 9)?;
        out.push(case(e, "dispatch_100_one_submit".into(), Some((100.0, "dispatches/s")), move || {
            let mut t = one.clone();
            for _ in 0..100 {
                t = t.add_scalar(1.0)?;
            }
            Ok(t)
        }));
    }
    Ok(out)
}

/// A frozen linear layer the size of SmolLM2's MLP (576 → 1536) over 512 tokens: `x·Wᵀ` and
/// `g·W` with the weight in f32 and kept quantized (`ops::quant`), side by side.
fn linear_cases<'a>(e: &'a Engine, wanted: &dyn Fn(&str) -> bool) -> Result<Vec<Case<'a>>> {
    use crate::tensor::QuantType;
    use crate::weights::quantize::quantize;
    let (m, n, k) = (512, 1536, 576);
    let gflop = 2.0 * (m * n * k) as f64 / 1e9;
    let mut out = Vec::new();
    for qt in [None, Some(QuantType::Q4_0), Some(QuantType::Q8_0)] {
        let dtype = qt.map_or("f32", QuantType::name);
        let (fwd, dx) = (format!("linear_{dtype}_{m}x{n}x{k}"), format!("linear_dx_{dtype}_{m}x{n}x{k}"));
        if !wanted(&fwd) && !wanted(&dx) {
            continue;
        }
        let wf = values(n * k, 21);
        let w = match qt {
            None => Tensor::from_slice(e, &wf, &[n, k])?,
            Some(q) => {
                let blocks = quantize(q.weight_dtype(), &wf).map_err(|m| crate::Error::arg("bench", m))?;
                Tensor::from_quantized(e, q, &blocks, &[n, k])?
            }
        };
        if wanted(&fwd) {
            let (x, w) = (tensor(e, &[m, k], 22)?, w.clone());
            out.push(case(e, fwd, Some((gflop, "GFLOP/s")), move || {
                crate::ops::linear::linear(&x, &w, None, false)
            }));
        }
        if wanted(&dx) {
            let g = tensor(e, &[m, n], 23)?;
            out.push(case(e, dx, Some((gflop, "GFLOP/s")), move || match w.quant_type() {
                Some(_) => crate::ops::quant::qmatmul_nn(&g, &w),
                None => g.matmul(&w),
            }));
        }
    }
    Ok(out)
}
