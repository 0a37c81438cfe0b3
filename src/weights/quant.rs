//! Dequantisers for the GGML block formats found in GGUF files, written from the format
//! descriptions (ggml-common.h's block structs). Each block is self-contained: an f16 scale
//! (and min) followed by packed integers, so a tensor dequantises block by block in file order.
//! Within a block of 32, the low nibbles are elements 0..16 and the high nibbles 16..32.

use super::WeightDType;

fn f16(b: &[u8], at: usize) -> f32 {
    half::f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// Dequantise `n` elements of block type `dt` from `bytes`, which must hold exactly
/// `n / block_elems` blocks. Errors (as a message) on a plain dtype or a length mismatch.
pub fn dequantize(dt: WeightDType, bytes: &[u8], n: usize) -> Result<Vec<f32>, String> {
    if dt.is_half() {
        return halves(dt, bytes, n);
    }
    let (be, bb) = dt.block();
    if be == 1 {
        return Err(format!("{dt:?} is not a block-quantised type"));
    }
    if !n.is_multiple_of(be) || (n / be).checked_mul(bb) != Some(bytes.len()) {
        return Err(format!(
            "{n} elements of {dt:?} need {} bytes, got {}",
            (n / be).saturating_mul(bb),
            bytes.len()
        ));
    }
    let mut out = Vec::with_capacity(n);
    for b in bytes.chunks_exact(bb) {
        match dt {
            WeightDType::Q4_0 => q4(f16(b, 0), None, &b[2..18], &mut out),
            WeightDType::Q4_1 => q4(f16(b, 0), Some(f16(b, 2)), &b[4..20], &mut out),
            WeightDType::Q5_0 => q5(f16(b, 0), None, &b[2..6], &b[6..22], &mut out),
            WeightDType::Q5_1 => q5(f16(b, 0), Some(f16(b, 2)), &b[4..8], &b[8..24], &mut out),
            WeightDType::Q8_0 => {
                let d = f16(b, 0);
                out.extend(b[2..34].iter().map(|&q| q as i8 as f32 * d));
            }
            WeightDType::Q4_K => q4_k(b, &mut out),
            WeightDType::Q6_K => q6_k(b, &mut out),
            _ => unreachable!("plain dtypes return above"),
        }
    }
    Ok(out)
}

/// Q4_0 (x = (q - 8) d) and Q4_1 (x = q d + m).
fn q4(d: f32, m: Option<f32>, qs: &[u8], out: &mut Vec<f32>) {
    let v = |q: u8| match m {
        Some(m) => q as f32 * d + m,
        None => (q as f32 - 8.0) * d,
    };
    out.extend(qs.iter().map(|&q| v(q & 0xf)));
    out.extend(qs.iter().map(|&q| v(q >> 4)));
}

/// Q5_0 (x = (q - 16) d) and Q5_1 (x = q d + m); bit j of the u32 `qh` is element j's fifth bit.
fn q5(d: f32, m: Option<f32>, qh: &[u8], qs: &[u8], out: &mut Vec<f32>) {
    let qh = u32::from_le_bytes(qh.try_into().unwrap());
    let v = |q: u32| match m {
        Some(m) => q as f32 * d + m,
        None => (q as f32 - 16.0) * d,
    };
    out.extend(qs.iter().enumerate().map(|(j, &q)| v((q & 0xf) as u32 | ((qh >> j) & 1) << 4)));
    out.extend(qs.iter().enumerate().map(|(j, &q)| v((q >> 4) as u32 | ((qh >> (j + 16)) & 1) << 4)));
}

/// The 6-bit (scale, min) pair `j` of a Q4_K block's 12 packed scale bytes: pairs 0..4 are the
/// low 6 bits of bytes 0..4 / 4..8; pairs 4..8 take their low nibble from bytes 8..12 and their
/// top two bits from the spare high bits of bytes 0..8.
fn scale_min_k4(j: usize, s: &[u8]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        ((s[j + 4] & 0xf) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4))
    }
}

/// Q4_K: 256 elements in 8 sub-blocks of 32, x = d·sc·q − dmin·m. Layout: d, dmin (f16),
/// scales[12], qs[128]; each 32 bytes of qs hold two sub-blocks (low nibbles, then high).
fn q4_k(b: &[u8], out: &mut Vec<f32>) {
    let (d, dmin) = (f16(b, 0), f16(b, 2));
    let scales = &b[4..16];
    for (i, qs) in b[16..144].chunks_exact(32).enumerate() {
        let (s1, m1) = scale_min_k4(2 * i, scales);
        let (s2, m2) = scale_min_k4(2 * i + 1, scales);
        let (d1, m1) = (d * s1 as f32, dmin * m1 as f32);
        let (d2, m2) = (d * s2 as f32, dmin * m2 as f32);
        out.extend(qs.iter().map(|&q| d1 * (q & 0xf) as f32 - m1));
        out.extend(qs.iter().map(|&q| d2 * (q >> 4) as f32 - m2));
    }
}

/// Q6_K: 256 elements, x = d·sc·(q − 32) with 16 signed 8-bit sub-block scales (16 elements
/// each). Layout: ql[128] (low nibbles), qh[64] (2 high bits ×4), scales[16], d (f16). Each half
/// of 128 uses 64 ql bytes and 32 qh bytes: element l + 32k of the half takes ql's low nibble
/// (k = 0, 1) or high nibble (k = 2, 3) and bits 2k..2k+2 of qh[l].
fn q6_k(b: &[u8], out: &mut Vec<f32>) {
    let d = f16(b, 208);
    let sc = &b[192..208];
    for half in 0..2 {
        let ql = &b[half * 64..half * 64 + 64];
        let qh = &b[128 + half * 32..128 + half * 32 + 32];
        let sc = &sc[half * 8..half * 8 + 8];
        let mut y = [0f32; 128];
        for l in 0..32 {
            let is = l / 16;
            let h = qh[l];
            let q = [
                (ql[l] & 0xf) | ((h & 3) << 4),
                (ql[l + 32] & 0xf) | (((h >> 2) & 3) << 4),
                (ql[l] >> 4) | (((h >> 4) & 3) << 4),
                (ql[l + 32] >> 4) | (((h >> 6) & 3) << 4),
            ];
            for (k, &q) in q.iter().enumerate() {
                y[l + 32 * k] = d * (sc[is + 2 * k] as i8) as f32 * (q as i32 - 32) as f32;
            }
        }
        out.extend_from_slice(&y);
    }
}

/// 16-bit floats (F16, BF16) to f32: exact, every half value is an f32.
fn halves(dt: WeightDType, bytes: &[u8], n: usize) -> Result<Vec<f32>, String> {
    if n.checked_mul(2) != Some(bytes.len()) {
        return Err(format!(
            "{n} elements of {dt:?} need {} bytes, got {}",
            n.saturating_mul(2),
            bytes.len()
        ));
    }
    let pairs = bytes.chunks_exact(2).map(|c| [c[0], c[1]]);
    Ok(match dt {
        WeightDType::F16 => pairs.map(|b| half::f16::from_le_bytes(b).to_f32()).collect(),
        _ => pairs.map(|b| half::bf16::from_le_bytes(b).to_f32()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use WeightDType::*;

    fn h(x: f32) -> [u8; 2] {
        half::f16::from_f32(x).to_le_bytes()
    }

    #[test]
    fn q8_0_block() {
        let mut b = h(0.5).to_vec();
        b.extend((0..32).map(|i| (i as i8 - 16) as u8));
        let y = dequantize(Q8_0, &b, 32).unwrap();
        assert_eq!(y[0], -8.0);
        assert_eq!(y[16], 0.0);
        assert_eq!(y[31], 7.5);
    }

    #[test]
    fn q4_0_block() {
        // byte j = low nibble j%16, high nibble 15 - j%16.
        let mut b = h(2.0).to_vec();
        b.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let y = dequantize(Q4_0, &b, 32).unwrap();
        assert_eq!(y[0], -16.0); // (0 - 8) * 2
        assert_eq!(y[15], 14.0); // (15 - 8) * 2
        assert_eq!(y[16], 14.0); // high nibble of byte 0 = 15
        assert_eq!(y[31], -16.0);
    }

    #[test]
    fn q4_1_block() {
        let mut b = h(0.25).to_vec();
        b.extend(h(-1.0));
        b.extend((0..16u8).map(|j| j | (3 << 4)));
        let y = dequantize(Q4_1, &b, 32).unwrap();
        assert_eq!(y[0], -1.0);
        assert_eq!(y[4], 0.0); // 4 * 0.25 - 1
        assert_eq!(y[15], 2.75);
        assert_eq!(y[20], -0.25); // 3 * 0.25 - 1
    }

    #[test]
    fn q5_0_and_q5_1_blocks() {
        // All nibbles 1; fifth bit set for elements 0 and 17 only.
        let qh: u32 = 1 | (1 << 17);
        let mut b = h(1.0).to_vec();
        b.extend(qh.to_le_bytes());
        b.extend([0x11u8; 16]);
        let y = dequantize(Q5_0, &b, 32).unwrap();
        assert_eq!((y[0], y[1], y[16], y[17]), (1.0, -15.0, -15.0, 1.0)); // 17-16, 1-16
        let mut b = h(1.0).to_vec();
        b.extend(h(0.5));
        b.extend(qh.to_le_bytes());
        b.extend([0x11u8; 16]);
        let y = dequantize(Q5_1, &b, 32).unwrap();
        assert_eq!((y[0], y[1], y[17]), (17.5, 1.5, 17.5));
    }

    #[test]
    fn q4_k_block() {
        // d = 1, dmin = 0.5. Sub-block scales/mins: j<4 from bytes 0..8; j>=4 mixes high bits.
        let mut b = h(1.0).to_vec();
        b.extend(h(0.5));
        let mut s = [0u8; 12];
        s[0] = 2; // sc0 = 2
        s[4] = 4; // m0 = 4
        s[1] = 3 | (1 << 6); // sc1 = 3; its top bits feed sc5 (bit 4)
        s[9] = 0x21; // sc5 low nibble 1 -> 1 | 16 = 17; m5 low = 2
        s[5] = 1 << 6; // m5 gets top bits 1 -> 2 | 16 = 18; m1 = 0
        b.extend(s);
        let mut qs = [0u8; 128];
        qs[0] = 0x5 | (0x7 << 4); // element 0 (sub 0) = 5, element 32 (sub 1) = 7
        qs[64] = 0x9 << 4; // sub-block 4 element 0 = 0; sub 5 element 0 = 9
        b.extend(qs);
        assert_eq!(scale_min_k4(5, &s), (17, 18));
        let y = dequantize(Q4_K, &b, 256).unwrap();
        assert_eq!(y[0], 2.0 * 5.0 - 0.5 * 4.0);
        assert_eq!(y[1], -2.0);
        assert_eq!(y[32], 3.0 * 7.0);
        assert_eq!(y[160], 17.0 * 9.0 - 0.5 * 18.0);
        assert_eq!(y[161], -9.0);
    }

    #[test]
    fn q6_k_block() {
        let mut b = vec![0u8; 210];
        b[208..210].copy_from_slice(&h(0.5));
        for (i, s) in b[192..208].iter_mut().enumerate() {
            *s = (i as i8 - 4) as u8; // scales -4..11
        }
        b[0] = 0x21; // ql[0]: element 0 low = 1, element 64 high = 2
        b[32] = 0x03; // element 32 low = 3
        b[128] = 0b11_10_01_00; // qh[0]: +0<<4, +1<<4, +2<<4, +3<<4 for elements 0, 32, 64, 96
        b[64] = 0x0f; // second half, element 128 low = 15 (qh 0)
        let y = dequantize(Q6_K, &b, 256).unwrap();
        assert_eq!(y[0], 0.5 * -4.0 * (1.0 - 32.0)); // scale 0
        assert_eq!(y[32], 0.5 * -2.0 * (3.0 + 16.0 - 32.0)); // scale 2
        assert_eq!(y[64], 0.5 * 0.0 * (2.0 + 32.0 - 32.0)); // scale 4
        assert_eq!(y[96], 0.5 * 2.0 * (0.0 + 48.0 - 32.0)); // scale 6
        assert_eq!(y[16], 0.5 * -3.0 * -32.0); // scale 1
        assert_eq!(y[128], 0.5 * 4.0 * (15.0 - 32.0)); // scale 8
    }

    #[test]
    fn wrong_lengths_are_errors() {
        assert!(dequantize(Q8_0, &[0; 33], 32).is_err());
        assert!(dequantize(Q8_0, &[0; 34], 31).is_err());
        assert!(dequantize(F32, &[0; 4], 1).is_err());
    }
}
