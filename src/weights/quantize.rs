//! Quantizers into GGML block formats (file layout), the inverse of [`super::quant`]: used by
//! `model.quantize` to keep frozen f32 weights in blocks on the device, and by exports that
//! write quantized files. The rounding follows ggml's reference quantizers so a block written
//! here dequantizes as llama.cpp's would.

use super::WeightDType;

/// Quantize `data` (a multiple of the block) into blocks of `dt` (Q8_0 or Q4_0).
pub fn quantize(dt: WeightDType, data: &[f32]) -> Result<Vec<u8>, String> {
    let (be, bb) = dt.block();
    if !matches!(dt, WeightDType::Q8_0 | WeightDType::Q4_0) {
        return Err(format!("cannot quantize to {dt:?}; q8_0 and q4_0 are supported"));
    }
    if !data.len().is_multiple_of(be) {
        return Err(format!("{} values are not whole blocks of {be}", data.len()));
    }
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(format!("value {i} is not finite ({})", data[i]));
    }
    let mut out = Vec::with_capacity(data.len() / be * bb);
    for block in data.chunks_exact(be) {
        match dt {
            WeightDType::Q8_0 => q8_0(block, &mut out),
            _ => q4_0(block, &mut out),
        }
    }
    Ok(out)
}

/// The scale's reciprocal, 0 for an all-zero block (whose codes are then all zero-points).
fn inverse(d: f32) -> f32 {
    if d == 0.0 {
        0.0
    } else {
        1.0 / d
    }
}

/// Q8_0: d = max|x| / 127, q = round(x / d) in -127..=127.
fn q8_0(x: &[f32], out: &mut Vec<u8>) {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = inverse(d);
    out.extend_from_slice(&half::f16::from_f32(d).to_le_bytes());
    out.extend(x.iter().map(|v| (v * id).round() as i8 as u8));
}

/// Q4_0: the value of largest magnitude maps to code 0 (d = that value / -8), so the signed
/// range is used in full; codes are floor(x / d + 8.5) clamped to 0..=15. Element j < 16 is the
/// low nibble of byte j, element j + 16 its high nibble.
fn q4_0(x: &[f32], out: &mut Vec<u8>) {
    let max = x.iter().copied().fold(0f32, |m, v| if v.abs() > m.abs() { v } else { m });
    let d = max / -8.0;
    let id = inverse(d);
    let code = |v: f32| ((v * id + 8.5) as i32).clamp(0, 15) as u8;
    out.extend_from_slice(&half::f16::from_f32(d).to_le_bytes());
    let (lo, hi) = x.split_at(16);
    out.extend(lo.iter().zip(hi).map(|(&a, &b)| code(a) | (code(b) << 4)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::quant::dequantize;

    fn wave(n: usize) -> Vec<f32> {
        (0..n).map(|i| ((i as f32) * 0.37).sin() * (1.0 + (i % 7) as f32)).collect()
    }

    #[test]
    fn round_trips_within_half_a_step_of_each_blocks_scale() {
        let x = wave(32 * 5);
        for (dt, steps) in [(WeightDType::Q8_0, 127.0), (WeightDType::Q4_0, 8.0)] {
            let q = quantize(dt, &x).unwrap();
            assert_eq!(q.len(), 5 * dt.block().1);
            let y = dequantize(dt, &q, x.len()).unwrap();
            for (xb, yb) in x.chunks(32).zip(y.chunks(32)) {
                let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
                // Half a quantization step, plus the f16 rounding of the scale.
                let tol = amax / steps * 0.5 + amax * 1e-3;
                for (a, b) in xb.iter().zip(yb) {
                    assert!((a - b).abs() <= tol, "{dt:?}: {a} vs {b} (tol {tol})");
                }
            }
        }
    }

    #[test]
    fn zero_blocks_and_bad_input() {
        let z = quantize(WeightDType::Q4_0, &[0.0; 32]).unwrap();
        assert!(dequantize(WeightDType::Q4_0, &z, 32).unwrap().iter().all(|&v| v == 0.0));
        assert!(quantize(WeightDType::Q8_0, &[1.0; 31]).unwrap_err().contains("whole blocks"));
        assert!(quantize(WeightDType::Q4_K, &[1.0; 256]).unwrap_err().contains("cannot quantize"));
        let mut x = vec![1.0; 32];
        x[3] = f32::NAN;
        assert!(quantize(WeightDType::Q8_0, &x).unwrap_err().contains("value 3"));
    }
}
