//! The quantized-weight kernels (`ops::quant`, `shaders/quant/quant.wgsl`) against the CPU
//! reference: blocks are dequantized on the host by `weights::quant::dequantize` (written from
//! ggml's format description and checked against real GGUF files in `weights_formats.rs`), and
//! the products are computed in f64. Sizes are awkward on purpose: rows and weight rows that do
//! not fill a tile, one row, one output, and inputs spanning one and several blocks. f16 and
//! bf16 weights go through the same kernels in blocks of eight values.

mod common;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use whet::ops::embedding::embedding;
use whet::ops::linear::linear;
use whet::ops::quant::dequantize;
use whet::tensor::QuantType;
use whet::weights::quant::dequantize as cpu_dequantize;
use whet::{Engine, Tensor};

const ALL: [QuantType; 6] =
    [QuantType::Q4_0, QuantType::Q4_1, QuantType::Q8_0, QuantType::Q4_K, QuantType::F16, QuantType::BF16];

fn gpu(test: &str) -> Option<(std::sync::MutexGuard<'static, ()>, Engine)> {
    common::gpu("quant_kernels", test)
}

fn f16(v: f32) -> [u8; 2] {
    half::f16::from_f32(v).to_le_bytes()
}

/// `blocks` random blocks of `qt` in file layout: scales in a realistic range, every code and
/// sub-block scale drawn at random (so every nibble position and sign is exercised); 16-bit
/// floats drawn from [-1, 1] (random bytes would include NaNs).
fn random_blocks(qt: QuantType, blocks: usize, rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut out = Vec::new();
    if qt.is_half() {
        let values = random_vec(blocks * qt.block_elems(), rng);
        return whet::weights::quantize::quantize(qt.weight_dtype(), &values).unwrap();
    }
    for _ in 0..blocks {
        let start = out.len();
        let d = rng.random_range(0.002f32..0.05);
        match qt {
            QuantType::Q4_0 | QuantType::Q8_0 => out.extend(f16(d)),
            QuantType::Q4_1 => {
                out.extend(f16(d));
                out.extend(f16(rng.random_range(-0.2f32..0.0)));
            }
            QuantType::Q4_K => {
                out.extend(f16(d / 16.0));
                out.extend(f16(rng.random_range(0.0005f32..0.005)));
            }
            QuantType::F16 | QuantType::BF16 => unreachable!("16-bit floats return above"),
        }
        while out.len() < start + qt.file_block_bytes() {
            out.push(rng.random());
        }
    }
    out
}

fn random_vec(n: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// A quantized weight `[rows, cols]` on the device and its CPU-dequantized values.
fn weight(e: &Engine, qt: QuantType, rows: usize, cols: usize, rng: &mut ChaCha8Rng) -> (Tensor, Vec<f32>) {
    let bytes = random_blocks(qt, rows * cols / qt.block_elems(), rng);
    let w = Tensor::from_quantized(e, qt, &bytes, &[rows, cols]).unwrap();
    let cpu = cpu_dequantize(qt.weight_dtype(), &bytes, rows * cols).unwrap();
    (w, cpu)
}

/// `a (m, k) · bᵀ` with `b (n, k)`, in f64.
fn matmul_nt(a: &[f32], b: &[f32], m: usize, n: usize, k: usize) -> Vec<f64> {
    let mut out = vec![0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = (0..k).map(|t| a[i * k + t] as f64 * b[j * k + t] as f64).sum();
        }
    }
    out
}

/// Every value within `rel` of the reference, relative to the reference's largest magnitude
/// (f32 accumulation over k terms against an f64 sum).
fn assert_close(what: &str, got: &[f32], want: &[f64], rel: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1e-6f64, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            ((*g as f64) - w).abs() <= rel * scale,
            "{what}: element {i}: got {g}, want {w} (scale {scale})"
        );
    }
}

/// Shapes (m, n, k): k is a multiple of the block; m and n straddle the kernels' tiles.
fn shapes(qt: QuantType) -> Vec<(usize, usize, usize)> {
    let b = qt.block_elems();
    vec![(1, 1, b), (7, 5, b), (9, 33, 3 * b), (17, 4, 2 * b), (16, 12, b), (70, 68, 2 * b)]
}

#[test]
fn dequantize_and_readback_match_the_cpu_reference() {
    let Some((_g, e)) = gpu("dequantize_and_readback_match_the_cpu_reference") else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for qt in ALL {
        let (w, cpu) = weight(&e, qt, 6, 2 * qt.block_elems(), &mut rng);
        let want: Vec<f64> = cpu.iter().map(|&v| v as f64).collect();
        assert_close(
            &format!("{qt:?} dequantize kernel"),
            &dequantize(&w).unwrap().to_vec().unwrap(),
            &want,
            1e-6,
        );
        assert_eq!(w.to_vec().unwrap(), cpu, "{qt:?}: to_vec dequantizes with the CPU reference");
        let blocks = w.quant_blocks().unwrap();
        assert_eq!(blocks.len(), 6 * 2 * qt.file_block_bytes(), "{qt:?}: blocks read back in file layout");
        assert_eq!(w.nbytes(), (12 * qt.device_block_bytes()) as u64, "{qt:?}: device bytes");
    }
}

#[test]
fn linear_forward_matches_the_reference_at_awkward_sizes() {
    let Some((_g, e)) = gpu("linear_forward_matches_the_reference_at_awkward_sizes") else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for qt in ALL {
        for (m, n, k) in shapes(qt) {
            let (w, wc) = weight(&e, qt, n, k, &mut rng);
            let x = random_vec(m * k, &mut rng);
            let bias = random_vec(n, &mut rng);
            let xt = Tensor::from_slice(&e, &x, &[m, k]).unwrap();
            let bt = Tensor::from_slice(&e, &bias, &[n]).unwrap();
            let mut want = matmul_nt(&x, &wc, m, n, k);
            let y = linear(&xt, &w, None, false).unwrap();
            assert_eq!(y.shape(), [m, n]);
            assert_close(&format!("{qt:?} x·Wᵀ ({m},{n},{k})"), &y.to_vec().unwrap(), &want, 1e-5);
            for (i, v) in want.iter_mut().enumerate() {
                *v += bias[i % n] as f64;
            }
            let yb = linear(&xt, &w, Some(&bt), false).unwrap();
            assert_close(&format!("{qt:?} x·Wᵀ + b ({m},{n},{k})"), &yb.to_vec().unwrap(), &want, 1e-5);
        }
    }
}

#[test]
fn gradient_with_respect_to_the_input_matches_the_reference() {
    let Some((_g, e)) = gpu("gradient_with_respect_to_the_input_matches_the_reference") else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for qt in ALL {
        for (m, n, k) in shapes(qt) {
            let (w, wc) = weight(&e, qt, n, k, &mut rng);
            let x = random_vec(2 * m * k, &mut rng);
            let up = random_vec(2 * m * n, &mut rng);
            let bias = Tensor::param(&e, &random_vec(n, &mut rng), &[n]).unwrap();
            // A batch axis in front: the op folds it into rows and unfolds the gradient.
            let xt = Tensor::param(&e, &x, &[2, m, k]).unwrap();
            let y = linear(&xt, &w, Some(&bias), false).unwrap();
            let loss = y.mul(&Tensor::from_slice(&e, &up, &[2, m, n]).unwrap()).unwrap().sum_all().unwrap();
            let grads = loss.backward().unwrap();
            assert!(grads.get(&w).is_none(), "{qt:?}: a quantized weight takes no gradient");
            // dx = up · W: (2m, n) · (n, k).
            let mut want = vec![0f64; 2 * m * k];
            for i in 0..2 * m {
                for t in 0..k {
                    want[i * k + t] = (0..n).map(|j| up[i * n + j] as f64 * wc[j * k + t] as f64).sum();
                }
            }
            let gx = grads.get(&xt).expect("x has a gradient").to_vec().unwrap();
            assert_close(&format!("{qt:?} dx ({m},{n},{k})"), &gx, &want, 1e-5);
            let gb = grads.get(&bias).expect("the bias has a gradient").to_vec().unwrap();
            let want_b: Vec<f64> = (0..n).map(|j| (0..2 * m).map(|i| up[i * n + j] as f64).sum()).collect();
            assert_close(&format!("{qt:?} db ({m},{n},{k})"), &gb, &want_b, 1e-5);
        }
    }
}

#[test]
fn embedding_gathers_dequantized_rows() {
    let Some((_g, e)) = gpu("embedding_gathers_dequantized_rows") else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for qt in ALL {
        let (vocab, dim) = (11, 2 * qt.block_elems());
        let (table, tc) = weight(&e, qt, vocab, dim, &mut rng);
        // Repeats, the first and the last row.
        let ids = [3u32, 0, 10, 3, 7, 10];
        let out = embedding(&table, &ids, &[2, 3]).unwrap();
        assert_eq!(out.shape(), [2, 3, dim]);
        let want: Vec<f64> = ids
            .iter()
            .flat_map(|&i| tc[i as usize * dim..(i as usize + 1) * dim].iter().map(|&v| v as f64))
            .collect();
        assert_close(&format!("{qt:?} gather"), &out.to_vec().unwrap(), &want, 1e-6);
    }
}

#[test]
fn quantized_and_expanded_weights_give_the_same_products() {
    let Some((_g, e)) = gpu("quantized_and_expanded_weights_give_the_same_products") else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for qt in ALL {
        let (m, n, k) = (40, 36, 2 * qt.block_elems());
        let (w, _) = weight(&e, qt, n, k, &mut rng);
        let wf = dequantize(&w).unwrap();
        let x = Tensor::from_slice(&e, &random_vec(m * k, &mut rng), &[m, k]).unwrap();
        let a = linear(&x, &w, None, false).unwrap().to_vec().unwrap();
        let b: Vec<f64> =
            linear(&x, &wf, None, false).unwrap().to_vec().unwrap().iter().map(|&v| v as f64).collect();
        assert_close(&format!("{qt:?}: quantized vs expanded"), &a, &b, 1e-5);
    }
}

#[test]
fn misuse_is_a_typed_error() {
    let Some((_g, e)) = gpu("misuse_is_a_typed_error") else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let (w, _) = weight(&e, QuantType::Q8_0, 4, 32, &mut rng);
    let x = Tensor::from_slice(&e, &random_vec(64, &mut rng), &[2, 32]).unwrap();
    let err = linear(&x, &w.clone().requires_grad_(true), None, false).unwrap_err().to_string();
    assert!(err.contains("requires a gradient"), "{err}");
    let err = linear(&x, &w, None, true).unwrap_err().to_string();
    assert!(err.contains("[out, in]"), "{err}");
    let err = Tensor::from_quantized(&e, QuantType::Q4_0, &[0u8; 18], &[1, 16]).unwrap_err().to_string();
    assert!(err.contains("multiple of 32"), "{err}");
    let err = Tensor::from_quantized(&e, QuantType::Q4_0, &[0u8; 17], &[1, 32]).unwrap_err().to_string();
    assert!(err.contains("needs 18 bytes"), "{err}");
    // Ops that do not read blocks refuse them by dtype.
    assert!(w.add(&w).is_err());
}
