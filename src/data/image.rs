//! Image decoding under limits, and the eval / train transforms that turn an RGB image into a
//! normalised CHW f32 tensor the way torchvision's `Resize + CenterCrop + Normalize` does.
//!
//! Decoding trusts the content, not the extension, and refuses a file from its header (claimed
//! dimensions, aspect ratio, byte size, allocation) before any pixel buffer is allocated. The
//! aspect bound matters after decoding too: resizing the shorter side of a 16384×1 strip to 256
//! would make a 4,194,304×256 image, so resizing is bounded by pixel count as well
//! ([`MAX_RESIZED_PIXELS`]) whatever image it is handed.

use std::io::Cursor;
use std::path::Path;

use image::imageops::FilterType;
use image::{ImageFormat, ImageReader, RgbImage};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};

/// Upper bounds on what one image file may claim or cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    pub max_width: u32,
    pub max_height: u32,
    /// Size of the file on disk.
    pub max_file_bytes: u64,
    /// Memory the decoder may allocate for one image.
    pub max_alloc: u64,
    /// Longest side over shortest side: `max_aspect`:1 at most (panoramas are ~10:1).
    pub max_aspect: u32,
}

impl Default for ImageLimits {
    fn default() -> Self {
        ImageLimits {
            max_width: 16384,
            max_height: 16384,
            max_file_bytes: 64 << 20,
            max_alloc: 512 << 20,
            max_aspect: 64,
        }
    }
}

/// Most pixels a resize may produce (4096², 192 MiB as f32 RGB): the longer side of an extreme
/// strip is cropped about its centre first, so only images beyond the aspect limit change.
pub const MAX_RESIZED_PIXELS: u64 = 1 << 24;

/// Largest crop and resize sides an [`ImageSpec`] may ask for (a crop must fit in
/// [`MAX_RESIZED_PIXELS`]).
pub const MAX_SIDE: u32 = 4096;

fn bad(path: &Path, message: impl Into<String>) -> Error {
    Error::Format { path: path.display().to_string(), line: None, message: message.into() }
}

/// Decode `path` to 8-bit RGB. The format comes from the content (PNG, JPEG, BMP, GIF, WebP);
/// grey, alpha and 16-bit images are converted (alpha is dropped). Errors name the path and say
/// why: directory, empty file, too large, not an image, claimed size over the limits, zero size,
/// truncated or corrupt data.
pub fn decode(path: &Path, limits: &ImageLimits) -> Result<RgbImage> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        return Err(bad(path, "is a directory, not an image file"));
    }
    if !meta.is_file() {
        // FIFOs and devices could block or never end.
        return Err(bad(path, "is not a regular file"));
    }
    if meta.len() == 0 {
        return Err(bad(path, "empty file (0 bytes)"));
    }
    if meta.len() > limits.max_file_bytes {
        return Err(bad(
            path,
            format!("file is {} bytes, over the limit of {}", meta.len(), limits.max_file_bytes),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode_bytes(path, &bytes, limits)
}

/// Memory [`decode`] may hold for `path` at its peak (the file, the decoder's widest buffer,
/// the RGB result), judged from the file's size and header alone; 0 when there is nothing to
/// decode (not a regular file, unreadable header: `decode` then fails without allocating).
pub fn decode_cost(path: &Path, limits: &ImageLimits) -> u64 {
    let Ok(meta) = std::fs::metadata(path) else { return 0 };
    if !meta.is_file() || meta.len() > limits.max_file_bytes {
        return 0;
    }
    let dims = ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .ok()
        .and_then(|r| r.into_dimensions().ok());
    let px = dims.map_or(0, |(w, h)| w as u64 * h as u64);
    meta.len() + (px * 8).min(limits.max_alloc) + px * 3
}

/// [`decode`] for bytes already in memory; `path` names them in errors.
pub fn decode_bytes(path: &Path, bytes: &[u8], limits: &ImageLimits) -> Result<RgbImage> {
    if bytes.is_empty() {
        return Err(bad(path, "empty file (0 bytes)"));
    }
    // The header is read without the crate's limits so that an oversized claim gets our own
    // message with the numbers; reading a header allocates nothing in proportion to the pixels.
    let reader = |limited: bool| -> Result<ImageReader<Cursor<&[u8]>>> {
        let mut r =
            ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| Error::io(path, e))?;
        if limited {
            let mut l = image::Limits::default();
            l.max_image_width = Some(limits.max_width);
            l.max_image_height = Some(limits.max_height);
            l.max_alloc = Some(limits.max_alloc);
            r.limits(l);
        } else {
            r.no_limits();
        }
        Ok(r)
    };
    let format = reader(false)?.format().ok_or_else(|| {
        bad(
            path,
            "not an image: the content is not PNG, JPEG, BMP, GIF or WebP (whatever the extension says)",
        )
    })?;
    // Decoders are third-party code fed hostile bytes: a panic there becomes this file's error.
    let guarded = |f: &dyn Fn() -> Result<RgbImage>| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
            .unwrap_or_else(|_| Err(bad(path, format!("the {format:?} decoder panicked on this file"))))
    };
    guarded(&|| {
        let (w, h) = reader(false)?
            .into_dimensions()
            .map_err(|e| bad(path, format!("unreadable {format:?} header: {e}")))?;
        if w == 0 || h == 0 {
            return Err(bad(path, format!("zero-size image ({w}x{h})")));
        }
        if w > limits.max_width || h > limits.max_height {
            return Err(bad(
                path,
                format!(
                    "claims {w}x{h} pixels, over the limit of {}x{} (refused before decoding)",
                    limits.max_width, limits.max_height
                ),
            ));
        }
        if w.max(h) as u64 > w.min(h) as u64 * limits.max_aspect as u64 {
            return Err(bad(
                path,
                format!(
                    "{w}x{h} pixels is more elongated than the limit of {}:1 (refused before decoding)",
                    limits.max_aspect
                ),
            ));
        }
        // The widest intermediate is 16-bit RGBA: 8 bytes a pixel.
        let need = w as u64 * h as u64 * 8;
        if need > limits.max_alloc {
            return Err(bad(
                path,
                format!(
                    "{w}x{h} pixels may need {need} bytes to decode, over the limit of {}",
                    limits.max_alloc
                ),
            ));
        }
        if format == ImageFormat::Jpeg && !jpeg_complete(bytes) {
            // The JPEG decoder pads a cut-off scan with grey instead of failing.
            return Err(bad(path, "truncated JPEG: no end-of-image marker after the last scan"));
        }
        let img = reader(true)?.decode().map_err(|e| bad(path, format!("cannot decode {format:?}: {e}")))?;
        if img.width() == 0 || img.height() == 0 {
            return Err(bad(path, "zero-size image"));
        }
        Ok(img.to_rgb8())
    })
}

/// True when an end-of-image marker (FF D9) follows the last start-of-scan (FF DA). Entropy-coded
/// data never holds an unstuffed FF DA, so the last one is the last scan header.
fn jpeg_complete(b: &[u8]) -> bool {
    let last_sos = b.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    match last_sos {
        Some(p) => b.get(p + 2..).is_some_and(|rest| rest.windows(2).any(|w| w == [0xFF, 0xD9])),
        None => false,
    }
}

/// Geometry and normalisation of a model's input.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ImageSpec {
    /// Side of the square crop fed to the model.
    pub size: u32,
    /// Shorter side after resizing, before the centre crop.
    pub resize: u32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl ImageSpec {
    /// torchvision's ImageNet evaluation: resize to 256, centre crop 224, ImageNet statistics.
    pub const IMAGENET: ImageSpec =
        ImageSpec { size: 224, resize: 256, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

    /// The same statistics at another crop size, keeping the 256/224 resize ratio.
    pub fn scaled(&self, size: u32) -> ImageSpec {
        ImageSpec { size, resize: (size as u64 * 256 / 224) as u32, ..self.clone() }
    }

    /// Sizes positive and at most [`MAX_SIDE`], standard deviations positive and finite.
    pub fn validate(&self) -> Result<()> {
        if self.size == 0 || self.resize == 0 || self.size > MAX_SIDE || self.resize > MAX_SIDE {
            return Err(Error::arg(
                "ImageSpec",
                format!("size {} and resize {} must be in 1..={MAX_SIDE}", self.size, self.resize),
            ));
        }
        if self.std.iter().any(|s| !(s.is_finite() && *s > 0.0)) || self.mean.iter().any(|m| !m.is_finite()) {
            return Err(Error::arg(
                "ImageSpec",
                format!("mean {:?} / std {:?} must be finite, std > 0", self.mean, self.std),
            ));
        }
        Ok(())
    }
}

/// Random training augmentations. `Augment::default()` does nothing, so [`train_transform`]
/// then equals [`eval_transform`].
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Augment {
    /// torchvision RandomResizedCrop: area fraction range, aspect ratio 3/4..4/3, then resize to
    /// `size`; replaces resize + centre crop.
    pub random_resized_crop: Option<[f32; 2]>,
    /// Probability of a horizontal flip.
    pub hflip: f32,
    /// Probability of a vertical flip.
    pub vflip: f32,
    /// Rotation by a uniform angle in [-rotation, rotation] degrees (black fill).
    pub rotation: f32,
    /// Scale by a uniform factor in this range about the centre (> 1 magnifies).
    pub zoom: Option<[f32; 2]>,
    /// Colour jitter as torchvision's ColorJitter: factors in [1 - x, 1 + x]; hue shift in
    /// [-hue, hue] turns (at most 0.5). Applied in this order: brightness, contrast, saturation, hue.
    pub brightness: f32,
    pub contrast: f32,
    pub saturation: f32,
    pub hue: f32,
}

impl Augment {
    /// Every amount finite and in range: probabilities in [0, 1], scale and zoom ranges positive
    /// and ordered, hue at most 0.5.
    pub fn validate(&self) -> Result<()> {
        let fail = |m: String| Err(Error::arg("Augment", m));
        for (name, p) in [("hflip", self.hflip), ("vflip", self.vflip)] {
            if !(0.0..=1.0).contains(&p) {
                return fail(format!("{name} probability {p} is not in [0, 1]"));
            }
        }
        for (name, x) in [
            ("rotation", self.rotation),
            ("brightness", self.brightness),
            ("contrast", self.contrast),
            ("saturation", self.saturation),
        ] {
            if !(x.is_finite() && x >= 0.0) {
                return fail(format!("{name} {x} must be finite and >= 0"));
            }
        }
        if !(0.0..=0.5).contains(&self.hue) {
            return fail(format!("hue {} is not in [0, 0.5]", self.hue));
        }
        if let Some([a, b]) = self.random_resized_crop {
            if !(a > 0.0 && a <= b && b <= 1.0) {
                return fail(format!("random_resized_crop scale [{a}, {b}] must satisfy 0 < a <= b <= 1"));
            }
        }
        if let Some([a, b]) = self.zoom {
            if !(a > 0.0 && a <= b && b.is_finite()) {
                return fail(format!("zoom [{a}, {b}] must satisfy 0 < a <= b"));
            }
        }
        Ok(())
    }

    /// Out-of-range amounts replaced by "no augmentation", so a transform never panics on a
    /// config that skipped [`Augment::validate`].
    fn sanitized(&self) -> Augment {
        let amount = |x: f32| if x.is_finite() && x > 0.0 { x } else { 0.0 };
        let range = |r: Option<[f32; 2]>, max: f32| {
            r.filter(|[a, b]| a.is_finite() && b.is_finite() && *a > 0.0 && a <= b && *b <= max)
        };
        Augment {
            random_resized_crop: self.random_resized_crop.map(|r| range(Some(r), 1.0).unwrap_or([0.08, 1.0])),
            hflip: amount(self.hflip),
            vflip: amount(self.vflip),
            rotation: amount(self.rotation).min(360.0),
            zoom: range(self.zoom, 100.0),
            brightness: amount(self.brightness).min(100.0),
            contrast: amount(self.contrast).min(100.0),
            saturation: amount(self.saturation).min(100.0),
            hue: amount(self.hue).min(0.5),
        }
    }
}

/// Float RGB pixels, row-major HWC, values 0..=255.
struct Pixels {
    w: usize,
    h: usize,
    v: Vec<f32>,
}

impl Pixels {
    fn from_rgb(img: &RgbImage) -> Pixels {
        Pixels {
            w: img.width() as usize,
            h: img.height() as usize,
            v: img.as_raw().iter().map(|&b| b as f32).collect(),
        }
    }

    fn get(&self, x: isize, y: isize, c: usize) -> f32 {
        if x < 0 || y < 0 || x as usize >= self.w || y as usize >= self.h {
            return 0.0;
        }
        self.v.get((y as usize * self.w + x as usize) * 3 + c).copied().unwrap_or(0.0)
    }

    /// A `size` x `size` window with its top-left corner at (x0, y0); outside is black (as
    /// torchvision pads a too-small image before cropping).
    fn crop(&self, x0: isize, y0: isize, size: usize) -> Pixels {
        let mut v = Vec::with_capacity(size * size * 3);
        for y in 0..size as isize {
            for x in 0..size as isize {
                for c in 0..3 {
                    v.push(self.get(x0 + x, y0 + y, c));
                }
            }
        }
        Pixels { w: size, h: size, v }
    }

    /// torchvision CenterCrop: offsets rounded half to even.
    fn center_crop(&self, size: usize) -> Pixels {
        let off = |n: usize| ((n as f64 - size as f64) / 2.0).round_ties_even() as isize;
        self.crop(off(self.w), off(self.h), size)
    }

    fn normalize(&self, spec: &ImageSpec) -> Vec<f32> {
        let plane = self.w * self.h;
        let mut out = vec![0.0f32; plane * 3];
        for (i, px) in self.v.chunks_exact(3).enumerate() {
            for c in 0..3 {
                out[c * plane + i] = (px[c] / 255.0 - spec.mean[c]) / spec.std[c];
            }
        }
        out
    }
}

/// Size of `w`×`h` with the shorter side resized to `short` (the longer side truncated, as
/// torchvision does).
pub fn resized_size(w: u32, h: u32, short: u32) -> (u32, u32) {
    let (w, h, s) = (w.max(1) as u64, h.max(1) as u64, short as u64);
    let (nw, nh) = if w <= h { (s, s * h / w) } else { (s * w / h, s) };
    (nw.clamp(1, u32::MAX as u64) as u32, nh.clamp(1, u32::MAX as u64) as u32)
}

/// Resize so the shorter side is `short`, with a triangle (bilinear, antialiased) filter. An
/// image that would come out larger than [`MAX_RESIZED_PIXELS`] (only a strip beyond the aspect
/// limit can) is first cropped about its centre along the longer side.
fn resize_shorter(img: &RgbImage, short: u32) -> RgbImage {
    let (w, h) = (img.width(), img.height());
    if w == 0 || h == 0 || short == 0 {
        return RgbImage::new(0, 0);
    }
    let (nw, nh) = resized_size(w, h, short);
    if nw as u64 * nh as u64 > MAX_RESIZED_PIXELS {
        // Longest allowed output side, and the source span that maps onto it.
        let long = (MAX_RESIZED_PIXELS / short as u64).max(short as u64);
        let (sw, sh) = if w <= h {
            (w, (long * w as u64 / short as u64).clamp(1, h as u64) as u32)
        } else {
            ((long * h as u64 / short as u64).clamp(1, w as u64) as u32, h)
        };
        let crop = image::imageops::crop_imm(img, (w - sw) / 2, (h - sh) / 2, sw, sh).to_image();
        let (cw, ch) = if w <= h { (short, long as u32) } else { (long as u32, short) };
        return image::imageops::resize(&crop, cw, ch, FilterType::Triangle);
    }
    if (nw, nh) == (w, h) {
        return img.clone();
    }
    image::imageops::resize(img, nw, nh, FilterType::Triangle)
}

/// Resize the shorter side to `spec.resize`, centre crop `spec.size`, and normalise to CHW
/// `(x / 255 - mean) / std`; length `3 * size * size`.
pub fn eval_transform(img: &RgbImage, spec: &ImageSpec) -> Vec<f32> {
    let resized = resize_shorter(img, spec.resize);
    Pixels::from_rgb(&resized).center_crop(spec.size as usize).normalize(spec)
}

/// [`eval_transform`] with the random augmentations of `aug`, drawn from `rng`: the same seed
/// gives the same tensor.
pub fn train_transform(img: &RgbImage, spec: &ImageSpec, aug: &Augment, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let size = spec.size as usize;
    let aug = &aug.sanitized();
    let mut px = match aug.random_resized_crop {
        Some(scale) => {
            let (x, y, w, h) = random_resized_crop_box(img.width(), img.height(), scale, rng);
            let crop = image::imageops::crop_imm(img, x, y, w, h).to_image();
            let resized = if (w, h) == (spec.size, spec.size) || w == 0 || h == 0 {
                crop
            } else {
                image::imageops::resize(&crop, spec.size, spec.size, FilterType::Triangle)
            };
            Pixels::from_rgb(&resized)
        }
        None => Pixels::from_rgb(&resize_shorter(img, spec.resize)),
    };
    let angle = if aug.rotation > 0.0 { rng.random_range(-aug.rotation..=aug.rotation) } else { 0.0 };
    let zoom = match aug.zoom {
        Some([a, b]) if a > 0.0 && b >= a => {
            if b > a {
                rng.random_range(a..=b)
            } else {
                a
            }
        }
        _ => 1.0,
    };
    if angle != 0.0 || zoom != 1.0 {
        px = affine(&px, angle.to_radians(), zoom);
    }
    if aug.random_resized_crop.is_none() {
        px = px.center_crop(size);
    }
    if aug.hflip > 0.0 && rng.random::<f32>() < aug.hflip {
        flip(&mut px, true);
    }
    if aug.vflip > 0.0 && rng.random::<f32>() < aug.vflip {
        flip(&mut px, false);
    }
    color_jitter(&mut px, aug, rng);
    px.normalize(spec)
}

/// torchvision RandomResizedCrop.get_params: ten tries at a random area and log-uniform aspect
/// ratio in 3/4..4/3, then a centre crop clamped to that ratio range.
fn random_resized_crop_box(w: u32, h: u32, scale: [f32; 2], rng: &mut ChaCha8Rng) -> (u32, u32, u32, u32) {
    let area = w as f64 * h as f64;
    let (lo, hi) = (scale[0].min(scale[1]) as f64, scale[0].max(scale[1]) as f64);
    let (rlo, rhi) = ((3.0f64 / 4.0).ln(), (4.0f64 / 3.0).ln());
    for _ in 0..10 {
        let target = area * if hi > lo { rng.random_range(lo..hi) } else { lo };
        let ratio = rng.random_range(rlo..rhi).exp();
        let cw = (target * ratio).sqrt().round() as u32;
        let ch = (target / ratio).sqrt().round() as u32;
        if cw > 0 && ch > 0 && cw <= w && ch <= h {
            let x = rng.random_range(0..=w - cw);
            let y = rng.random_range(0..=h - ch);
            return (x, y, cw, ch);
        }
    }
    let in_ratio = w as f64 / h.max(1) as f64;
    let (cw, ch) = if in_ratio < 3.0 / 4.0 {
        (w, ((w as f64) / (3.0 / 4.0)).round() as u32)
    } else if in_ratio > 4.0 / 3.0 {
        (((h as f64) * 4.0 / 3.0).round() as u32, h)
    } else {
        (w, h)
    };
    let (cw, ch) = (cw.min(w), ch.min(h));
    ((w - cw) / 2, (h - ch) / 2, cw, ch)
}

/// Rotate by `angle` radians and scale by `zoom` about the centre, bilinear, black outside.
fn affine(px: &Pixels, angle: f32, zoom: f32) -> Pixels {
    let (cx, cy) = (px.w as f32 / 2.0, px.h as f32 / 2.0);
    let (s, c) = angle.sin_cos();
    let mut v = Vec::with_capacity(px.v.len());
    for y in 0..px.h {
        for x in 0..px.w {
            // Inverse map from the output pixel centre to the source.
            let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
            let sx = (c * dx + s * dy) / zoom + cx - 0.5;
            let sy = (-s * dx + c * dy) / zoom + cy - 0.5;
            let (x0, y0) = (sx.floor(), sy.floor());
            let (fx, fy) = (sx - x0, sy - y0);
            let (x0, y0) = (x0 as isize, y0 as isize);
            for ch in 0..3 {
                let top = px.get(x0, y0, ch) * (1.0 - fx) + px.get(x0 + 1, y0, ch) * fx;
                let bot = px.get(x0, y0 + 1, ch) * (1.0 - fx) + px.get(x0 + 1, y0 + 1, ch) * fx;
                v.push(top * (1.0 - fy) + bot * fy);
            }
        }
    }
    Pixels { w: px.w, h: px.h, v }
}

fn flip(px: &mut Pixels, horizontal: bool) {
    let (w, h) = (px.w, px.h);
    let mut out = vec![0.0; px.v.len()];
    for y in 0..h {
        for x in 0..w {
            let (sx, sy) = if horizontal { (w - 1 - x, y) } else { (x, h - 1 - y) };
            out[(y * w + x) * 3..][..3].copy_from_slice(&px.v[(sy * w + sx) * 3..][..3]);
        }
    }
    px.v = out;
}

fn factor(amount: f32, rng: &mut ChaCha8Rng) -> Option<f32> {
    (amount > 0.0).then(|| rng.random_range((1.0 - amount).max(0.0)..=1.0 + amount))
}

fn gray(p: &[f32]) -> f32 {
    0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]
}

/// ColorJitter on 0..=255 values, clamped after each step as torchvision clamps to [0, 1].
fn color_jitter(px: &mut Pixels, aug: &Augment, rng: &mut ChaCha8Rng) {
    let clamp = |v: f32| v.clamp(0.0, 255.0);
    if let Some(b) = factor(aug.brightness, rng) {
        px.v.iter_mut().for_each(|v| *v = clamp(*v * b));
    }
    if let Some(c) = factor(aug.contrast, rng) {
        let n = (px.v.len() / 3).max(1) as f32;
        let mean = px.v.chunks_exact(3).map(gray).sum::<f32>() / n;
        px.v.iter_mut().for_each(|v| *v = clamp(c * *v + (1.0 - c) * mean));
    }
    if let Some(s) = factor(aug.saturation, rng) {
        for p in px.v.chunks_exact_mut(3) {
            let g = gray(p);
            p.iter_mut().for_each(|v| *v = clamp(s * *v + (1.0 - s) * g));
        }
    }
    let hue = aug.hue.min(0.5);
    if hue > 0.0 {
        let shift = rng.random_range(-hue..=hue);
        for p in px.v.chunks_exact_mut(3) {
            let (h, s, v) = rgb_to_hsv(p[0] / 255.0, p[1] / 255.0, p[2] / 255.0);
            let (r, g, b) = hsv_to_rgb((h + shift).rem_euclid(1.0), s, v);
            p[0] = clamp(r * 255.0);
            p[1] = clamp(g * 255.0);
            p[2] = clamp(b * 255.0);
        }
    }
}

/// Hue in turns [0, 1), saturation and value in [0, 1].
fn rgb_to_hsv(r: f32, g: f32, b: f32) -> (f32, f32, f32) {
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let d = max - min;
    let h = if d == 0.0 {
        0.0
    } else if max == r {
        ((g - b) / d).rem_euclid(6.0) / 6.0
    } else if max == g {
        ((b - r) / d + 2.0) / 6.0
    } else {
        ((r - g) / d + 4.0) / 6.0
    };
    let s = if max == 0.0 { 0.0 } else { d / max };
    (h, s, max)
}

fn hsv_to_rgb(h: f32, s: f32, v: f32) -> (f32, f32, f32) {
    let h6 = h * 6.0;
    let i = h6.floor();
    let f = h6 - i;
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
    match (i as i32).rem_euclid(6) {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    }
}
