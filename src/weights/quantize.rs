//! f32 values to the bytes of a stored element type, in file layout: the GGML block formats
//! Q8_0 and Q4_0 (written from the format descriptions in ggml-common.h and the rounding rules
//! of ggml's reference quantisers), and the plain F32 / F16 / BF16 encodings. The inverse of
//! [`super::quant::dequantize`] (blocks) and [`super::safetensors::to_f32`] (plain types).
//!
//! Q8_0, 32 elements in 34 bytes: an f16 scale `d = max|x| / 127`, then 32 int8 `round(x / d)`
//! (half away from zero). Q4_0, 32 elements in 18 bytes: `d = m / -8` where `m` is the element
//! of largest magnitude (sign kept, so that element lands exactly on code 0), then 16 bytes of
//! nibbles `q = min(15, floor(x / d + 8.5))`, elements 0..16 in the low nibbles and 16..32 in
//! the high ones. Both compute with the f32 scale and store it rounded to f16, as ggml does, so
//! the bytes match llama.cpp's own quantiser for the same input. Used by `model.quantize` (frozen
//! weights kept in blocks on the device) and by the exports (`output.dtype`, `output.gguf`).

use super::WeightDType;

/// Encode `data` as `dt`. Block types need a whole number of blocks; every value must be
/// finite, and for F16 within its range (a weight that overflows to infinity would silently
/// poison every output it touches).
pub fn quantize(dt: WeightDType, data: &[f32]) -> Result<Vec<u8>, String> {
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(format!("value {i} is not finite ({})", data[i]));
    }
    let (be, bb) = dt.block();
    if !data.len().is_multiple_of(be) {
        return Err(format!("{} values are not whole blocks of {be} ({dt:?})", data.len()));
    }
    let mut out = Vec::with_capacity(data.len() / be * bb);
    match dt {
        WeightDType::F32 => out.extend(data.iter().flat_map(|v| v.to_le_bytes())),
        WeightDType::F16 => {
            for (i, &v) in data.iter().enumerate() {
                let h = half::f16::from_f32(v);
                if h.is_infinite() {
                    return Err(format!("value {i} = {v} is outside f16's range (±65504)"));
                }
                out.extend(h.to_le_bytes());
            }
        }
        WeightDType::BF16 => out.extend(data.iter().flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())),
        WeightDType::Q8_0 => data.chunks_exact(be).for_each(|b| q8_0_block(b, &mut out)),
        WeightDType::Q4_0 => data.chunks_exact(be).for_each(|b| q4_0_block(b, &mut out)),
        _ => return Err(format!("cannot quantize to {dt:?}; F32, F16, BF16, Q8_0 and Q4_0 are supported")),
    }
    Ok(out)
}

/// `1 / d`, or 0 for an all-zero block (whose codes are then all the zero point).
fn inverse(d: f32) -> f32 {
    if d == 0.0 {
        0.0
    } else {
        1.0 / d
    }
}

fn q8_0_block(x: &[f32], out: &mut Vec<u8>) {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = inverse(d);
    out.extend(half::f16::from_f32(d).to_le_bytes());
    // |x · id| <= 127 by construction, so the cast never saturates.
    out.extend(x.iter().map(|&v| (v * id).round() as i8 as u8));
}

fn q4_0_block(x: &[f32], out: &mut Vec<u8>) {
    // The first element of largest magnitude, with its sign.
    let m = x.iter().fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
    let d = m / -8.0;
    let id = inverse(d);
    out.extend(half::f16::from_f32(d).to_le_bytes());
    // x / d lies in [-8, 8], so x / d + 8.5 is >= 0.5 and `as u8` floors it.
    let code = |v: f32| ((v * id + 8.5) as u8).min(15);
    let (lo, hi) = x.split_at(x.len() / 2);
    out.extend(lo.iter().zip(hi).map(|(&a, &b)| code(a) | (code(b) << 4)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::quant::dequantize;

    /// Seeded values over several magnitudes, with an exact zero block and a block whose
    /// largest magnitude is negative (Q4_0's sign rule).
    fn sample(n: usize) -> Vec<f32> {
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut v: Vec<f32> = (0..n)
            .map(|i| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let u = (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                u * [0.01f32, 1.0, 37.0][i / 32 % 3]
            })
            .collect();
        v[32..64].fill(0.0);
        v[70] = -100.0;
        v
    }

    /// The largest |x - dequantised x| of each block, against `bound(block)`.
    fn check_error(dt: WeightDType, bound: impl Fn(&[f32]) -> f32) {
        let x = sample(32 * 9);
        let bytes = quantize(dt, &x).unwrap();
        assert_eq!(bytes.len(), x.len() / 32 * dt.block().1);
        let y = dequantize(dt, &bytes, x.len()).unwrap();
        for (b, (xb, yb)) in x.chunks(32).zip(y.chunks(32)).enumerate() {
            let err = xb.iter().zip(yb).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(err <= bound(xb), "{dt:?} block {b}: error {err} > {}", bound(xb));
        }
        // The all-zero block decodes to zeros exactly.
        assert!(y[32..64].iter().all(|&v| v == 0.0));
    }

    fn amax(x: &[f32]) -> f32 {
        x.iter().fold(0f32, |m, v| m.max(v.abs()))
    }

    /// How far storing the scale `d` as f16 can move it: half an ulp, 2^-11 relative, or 2^-25
    /// absolute where `d` is an f16 subnormal (below 2^-14).
    fn f16_rounding(d: f32) -> f32 {
        (d * 2f32.powi(-11)).max(2f32.powi(-25))
    }

    #[test]
    fn q8_0_round_trips_within_half_a_step() {
        // Half a step d/2 = amax/254, plus the scale's f16 rounding times up to 127 codes.
        check_error(WeightDType::Q8_0, |b| amax(b) / 254.0 + 127.0 * f16_rounding(amax(b) / 127.0) * 1.01);
    }

    #[test]
    fn q4_0_round_trips_within_one_step() {
        // d = amax/8, codes -8..=7: the extreme's side rounds to half a step, but values of the
        // other sign above 7d are clamped to 7d, a whole step d = amax/8 away at most (ggml's
        // format, not this encoder, sets that). Plus the scale's f16 rounding over 8 codes.
        check_error(WeightDType::Q4_0, |b| amax(b) / 8.0 + 8.0 * f16_rounding(amax(b) / 8.0) * 1.01);
    }

    #[test]
    fn q8_0_block_bytes_follow_ggml_layout() {
        let x: Vec<f32> = (0..32).map(|i| i as f32 - 16.0).collect();
        let b = quantize(WeightDType::Q8_0, &x).unwrap();
        let d = 16.0f32 / 127.0;
        assert_eq!(&b[..2], &half::f16::from_f32(d).to_le_bytes());
        // Element 0 is -16 = -amax: code -127; element 16 is 0: code 0; element 31 is 15.
        assert_eq!(b[2] as i8, -127);
        assert_eq!(b[2 + 16] as i8, 0);
        assert_eq!(b[2 + 31] as i8, (15.0 / d).round() as i8);
    }

    #[test]
    fn q4_0_puts_the_largest_magnitude_on_code_zero() {
        let mut x = vec![0.5f32; 32];
        x[3] = -4.0;
        x[20] = 2.0;
        let b = quantize(WeightDType::Q4_0, &x).unwrap();
        // d = -4 / -8 = 0.5 > 0; x = -4 → -8 + 8.5 → code 0; 2 → 4 + 8.5 → 12; 0.5 → 9.
        assert_eq!(half::f16::from_le_bytes([b[0], b[1]]).to_f32(), 0.5);
        let qs = &b[2..];
        assert_eq!(qs[3] & 0xf, 0);
        assert_eq!(qs[4] >> 4, 12, "element 20 is the high nibble of byte 4");
        assert_eq!(qs[0] & 0xf, 9);
        // A positive extreme gives a negative d, and the extreme still lands on code 0.
        let b = quantize(WeightDType::Q4_0, &x.iter().map(|v| -v).collect::<Vec<_>>()).unwrap();
        assert!(half::f16::from_le_bytes([b[0], b[1]]).to_f32() < 0.0);
        assert_eq!(b[2 + 3] & 0xf, 0);
    }

    #[test]
    fn plain_types_round_trip() {
        let x = sample(32 * 9);
        for (dt, rel) in
            [(WeightDType::F32, 0.0), (WeightDType::F16, 2f32.powi(-11)), (WeightDType::BF16, 2f32.powi(-8))]
        {
            let b = quantize(dt, &x).unwrap();
            assert_eq!(b.len(), x.len() * dt.size());
            let y = crate::weights::safetensors::to_f32(&b, dt, "t").unwrap();
            for (a, b) in x.iter().zip(&y) {
                // Subnormal f16 values lose relative precision: allow one f16 subnormal step too.
                assert!((a - b).abs() <= a.abs() * rel + 6e-8, "{dt:?}: {a} → {b}");
            }
        }
    }

    #[test]
    fn refuses_what_it_cannot_encode() {
        assert!(quantize(WeightDType::Q8_0, &[0.0; 31]).unwrap_err().contains("whole"));
        assert!(quantize(WeightDType::F32, &[1.0, f32::NAN]).unwrap_err().contains("value 1"));
        assert!(quantize(WeightDType::F16, &[7e4]).unwrap_err().contains("f16"));
        assert!(quantize(WeightDType::Q4_K, &[0.0; 256]).unwrap_err().contains("Q4_K"));
    }

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
