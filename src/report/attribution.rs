//! Attributions as page content: an image and its saliency map as inline PNG data URIs, and a
//! text as tokens coloured by their signed score.

use std::io::Cursor;

use image::{ImageFormat, RgbImage};

use super::escape::escape;
use crate::error::{Error, Result};

/// How strongly the saliency colour covers the photo where the heat is highest.
const OVERLAY_ALPHA: f32 = 0.65;

/// `rgb` (row-major RGB, `width × height × 3` bytes) as a `data:image/png;base64,...` URI.
pub fn png_data_uri(width: u32, height: u32, rgb: Vec<u8>) -> Result<String> {
    let given = rgb.len();
    let img = RgbImage::from_raw(width, height, rgb).ok_or_else(|| {
        Error::arg("png_data_uri", format!("{given} bytes do not make a {width}×{height} RGB image"))
    })?;
    let mut png = Cursor::new(Vec::new());
    img.write_to(&mut png, ImageFormat::Png)
        .map_err(|e| Error::arg("png_data_uri", format!("encoding a {width}×{height} PNG: {e}")))?;
    Ok(format!("data:image/png;base64,{}", base64(png.get_ref())))
}

/// Standard base64 with padding (RFC 4648 §4).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextet = |shift: u32| char::from(ALPHABET[((n >> shift) & 63) as usize]);
        out.push(sextet(18));
        out.push(sextet(12));
        out.push(if chunk.len() > 1 { sextet(6) } else { '=' });
        out.push(if chunk.len() > 2 { sextet(0) } else { '=' });
    }
    out
}

/// The "hot" colour map: black-red at 0 through orange to yellow at 1.
fn hot(t: f32) -> [f32; 3] {
    let t = t.clamp(0.0, 1.0);
    [(0.5 + 1.5 * t).min(1.0), (2.0 * t - 0.6).clamp(0.0, 1.0), (3.0 * t - 2.2).clamp(0.0, 1.0)]
}

/// The photo with its saliency blended over it: each pixel moves towards the hot colour of
/// its heat by `OVERLAY_ALPHA × heat / max heat`, so cold pixels keep the photo. `heat` all
/// zero leaves the photo unchanged. Lengths are those of
/// [`CompareResults::validate`](super::CompareResults::validate).
pub fn blend_heat(width: u32, height: u32, rgb: &[u8], heat: &[f32]) -> Result<Vec<u8>> {
    let pixels = (width as usize).checked_mul(height as usize);
    if pixels != Some(heat.len()) || pixels.and_then(|p| p.checked_mul(3)) != Some(rgb.len()) {
        return Err(Error::arg(
            "blend_heat",
            format!("{} RGB bytes and {} heat values for a {width}×{height} image", rgb.len(), heat.len()),
        ));
    }
    let max = heat.iter().copied().filter(|h| h.is_finite()).fold(0.0f32, f32::max);
    let mut out = Vec::with_capacity(rgb.len());
    for (px, &h) in rgb.chunks_exact(3).zip(heat) {
        let t = if max > 0.0 && h.is_finite() { (h / max).max(0.0) } else { 0.0 };
        let a = OVERLAY_ALPHA * t;
        for (&c, m) in px.iter().zip(hot(t)) {
            out.push((f32::from(c) * (1.0 - a) + 255.0 * m * a).round().clamp(0.0, 255.0) as u8);
        }
    }
    Ok(out)
}

/// Tokens as `<span>`s: red behind a positive score, blue behind a negative one, opacity by
/// `|score| / max |score|`; the exact score is in each span's tooltip. Tokens are escaped.
pub fn token_spans(tokens: &[String], scores: &[f32]) -> String {
    let max = scores.iter().copied().filter(|s| s.is_finite()).fold(0.0f32, |m, s| m.max(s.abs()));
    let mut html = String::new();
    for (tok, &s) in tokens.iter().zip(scores) {
        let t = if max > 0.0 && s.is_finite() { s.abs() / max } else { 0.0 };
        let (r, g, b) = if s >= 0.0 { (220, 38, 38) } else { (37, 99, 235) };
        html.push_str(&format!(
            // <wbr>: spans with nothing between them are one unbreakable word to the browser.
            "<span class=\"tok\" style=\"background: rgba({r}, {g}, {b}, {:.3})\" title=\"{:+.4}\">{}</span><wbr>",
            0.85 * t,
            s,
            escape(tok)
        ));
    }
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (raw, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(raw.as_bytes()), enc);
        }
    }

    #[test]
    fn blend_keeps_cold_pixels_and_colours_the_hottest() {
        let out = blend_heat(2, 1, &[100, 100, 100, 0, 0, 255], &[0.0, 2.0]).unwrap();
        assert_eq!(&out[..3], &[100, 100, 100]);
        // hot(1) = (1, 1, 0.8); a = 0.65: 0·0.35 + 255·0.65 = 165.75, 255·0.35 + 255·0.8·0.65 = 221.85
        assert_eq!(&out[3..], &[166, 166, 222]);
        assert!(blend_heat(2, 2, &[0; 12], &[0.0; 3]).is_err());
    }

    #[test]
    fn png_round_trips_through_the_image_crate() {
        let uri = png_data_uri(2, 1, vec![255, 0, 0, 0, 0, 255]).unwrap();
        let b64 = uri.strip_prefix("data:image/png;base64,").unwrap();
        assert!(b64.starts_with("iVBORw0KGgo"), "PNG magic in base64");
        assert!(png_data_uri(2, 2, vec![0; 5]).is_err());
    }

    #[test]
    fn token_spans_escape_and_colour_by_sign() {
        let html = token_spans(&["<b>".to_string(), "ok".to_string()], &[-1.0, 0.5]);
        assert!(html.contains("&lt;b&gt;") && !html.contains("<b>"));
        assert!(html.contains("rgba(37, 99, 235, 0.850)"));
        assert!(html.contains("rgba(220, 38, 38, 0.425)"));
        assert_eq!(html.matches("</span><wbr>").count(), 2, "a line may break after every token");
    }
}
