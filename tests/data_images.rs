//! Image decoding and transforms (hand-computed values), augmentation determinism, image folder
//! layouts and splits, and a real run over ../shared/data/hymenoptera_data.

use std::path::{Path, PathBuf};

use image::{ImageBuffer, Luma, Rgb, RgbImage, Rgba};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use whet::data::image::{decode, eval_transform, train_transform, Augment, ImageLimits, ImageSpec};
use whet::data::image_folder::{ImageFolder, ImageFolderOptions};

fn close(got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol, "element {i}: got {g}, want {w}\n got {got:?}\nwant {want:?}");
    }
}

fn spec(size: u32, resize: u32) -> ImageSpec {
    ImageSpec { size, resize, mean: [0.5, 0.5, 0.5], std: [0.5, 0.25, 0.5] }
}

/// 4x2 image: R = 51·x, G = 255 on row 0 and 0 on row 1, B = 0.
fn four_by_two() -> RgbImage {
    RgbImage::from_fn(4, 2, |x, y| Rgb([51 * x as u8, if y == 0 { 255 } else { 0 }, 0]))
}

#[test]
fn eval_transform_crops_centre_and_normalises() {
    // Shorter side is already 2: no resize; centre crop 2 takes columns 1 and 2.
    let out = eval_transform(&four_by_two(), &spec(2, 2));
    // R: (51/255 - .5)/.5 = -0.6, (102/255 - .5)/.5 = -0.2; G: (1 - .5)/.25 = 2, (0 - .5)/.25 = -2;
    // B: (0 - .5)/.5 = -1. CHW order.
    close(&out, &[-0.6, -0.2, -0.6, -0.2, 2.0, 2.0, -2.0, -2.0, -1.0, -1.0, -1.0, -1.0], 1e-6);
}

#[test]
fn eval_transform_rounds_crop_offset_half_to_even() {
    // torchvision: top = int(round((h - size) / 2)). Width 5, size 2: 1.5 -> 2; width 7: 2.5 -> 2.
    for (w, want_x) in [(5u32, 2u8), (7, 2)] {
        let img = RgbImage::from_fn(w, 2, |x, _| Rgb([x as u8 * 10, 0, 0]));
        let s = ImageSpec { size: 2, resize: 2, mean: [0.0; 3], std: [1.0; 3] };
        let out = eval_transform(&img, &s);
        let r0 = out[0] * 255.0;
        assert!((r0 - (want_x as f32 * 10.0)).abs() < 1e-3, "width {w}: first column {r0}");
    }
}

#[test]
fn eval_transform_resizes_with_a_triangle_filter() {
    // 4x2 -> shorter side 1 -> 2x1. Triangle filter, 2x downscale: source centre 0.5 for output
    // 0 with weights .75, .75, .25 on columns 0, 1, 2: (0·.75 + 70·.75 + 140·.25) / 1.75 = 50;
    // output 1 (centre 2.5): (70·.25 + 140·.75 + 210·.75) / 1.75 = 160. Crop 1: offset
    // round(0.5) = 0 -> 50.
    let img = RgbImage::from_fn(4, 2, |x, _| Rgb([70 * x as u8, 100, 200]));
    let s = ImageSpec { size: 1, resize: 1, mean: [0.0; 3], std: [1.0; 3] };
    close(&eval_transform(&img, &s), &[50.0 / 255.0, 100.0 / 255.0, 200.0 / 255.0], 1e-6);
    let s2 = ImageSpec { size: 2, resize: 1, mean: [0.0; 3], std: [1.0; 3] };
    // Crop 2 of a 2x1 image: row 0 is the image, row -0 rounds to 0, row 1 is black padding.
    let out = eval_transform(&img, &s2);
    close(&out[..4], &[50.0 / 255.0, 160.0 / 255.0, 0.0, 0.0], 1e-6);
    // A constant image stays constant through resize and crop.
    let flat = RgbImage::from_pixel(9, 5, Rgb([10, 20, 30]));
    let out = eval_transform(&flat, &spec(3, 4));
    assert_eq!(out.len(), 27);
    close(&out[..9], &[(10.0 / 255.0 - 0.5) / 0.5; 9], 1e-6);
    close(&out[9..18], &[(20.0 / 255.0 - 0.5) / 0.25; 9], 1e-6);
}

#[test]
fn imagenet_spec_and_scaling() {
    assert_eq!(ImageSpec::IMAGENET.size, 224);
    assert_eq!(ImageSpec::IMAGENET.resize, 256);
    let s = ImageSpec::IMAGENET.scaled(112);
    assert_eq!((s.size, s.resize), (112, 128));
    assert_eq!(ImageSpec::IMAGENET.scaled(320).resize, 365); // 320 * 256 / 224 = 365.7
    assert_eq!(s.mean, ImageSpec::IMAGENET.mean);
    assert!(s.validate().is_ok());
    assert!(ImageSpec { std: [0.0, 1.0, 1.0], ..s.clone() }.validate().is_err());
}

fn noise(w: u32, h: u32, seed: u64) -> RgbImage {
    use rand::Rng;
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    RgbImage::from_fn(w, h, |_, _| Rgb([r.random(), r.random(), r.random()]))
}

#[test]
fn augmentation_is_seeded() {
    let img = noise(40, 30, 7);
    let s = spec(16, 20);
    let aug = Augment {
        random_resized_crop: Some([0.3, 1.0]),
        hflip: 0.5,
        vflip: 0.2,
        rotation: 15.0,
        zoom: Some([0.9, 1.2]),
        brightness: 0.3,
        contrast: 0.3,
        saturation: 0.3,
        hue: 0.1,
    };
    assert!(aug.validate().is_ok());
    let run = |seed| train_transform(&img, &s, &aug, &mut ChaCha8Rng::seed_from_u64(seed));
    let a = run(1);
    assert_eq!(a.len(), 3 * 16 * 16);
    assert!(a.iter().all(|v| v.is_finite()));
    assert_eq!(a, run(1), "same seed, same tensor");
    assert_ne!(a, run(2), "different seed, different tensor");
    // Consecutive draws from one generator differ too (the generator advances).
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (x, y) = (train_transform(&img, &s, &aug, &mut rng), train_transform(&img, &s, &aug, &mut rng));
    assert_ne!(x, y);
}

#[test]
fn default_augment_is_the_eval_transform_and_flips_are_exact() {
    let img = noise(23, 17, 3);
    let s = spec(8, 10);
    let eval = eval_transform(&img, &s);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    assert_eq!(train_transform(&img, &s, &Augment::default(), &mut rng), eval);
    let n = 8;
    let h = train_transform(&img, &s, &Augment { hflip: 1.0, ..Default::default() }, &mut rng);
    let v = train_transform(&img, &s, &Augment { vflip: 1.0, ..Default::default() }, &mut rng);
    for c in 0..3 {
        for y in 0..n {
            for x in 0..n {
                let at = |x: usize, y: usize| c * n * n + y * n + x;
                assert_eq!(h[at(x, y)], eval[at(n - 1 - x, y)]);
                assert_eq!(v[at(x, y)], eval[at(x, n - 1 - y)]);
            }
        }
    }
    // Brightness 0 < b: factor 1 ± b; with amount 0 nothing changes.
    let b = train_transform(&img, &s, &Augment { brightness: 0.0, ..Default::default() }, &mut rng);
    assert_eq!(b, eval);
}

#[test]
fn augment_reads_from_toml_and_rejects_unknown_keys() {
    let a: Augment = toml::from_str("hflip = 0.5\nrandom_resized_crop = [0.08, 1.0]").unwrap();
    assert_eq!(a.hflip, 0.5);
    assert_eq!(a.random_resized_crop, Some([0.08, 1.0]));
    assert_eq!(a.rotation, 0.0);
    assert!(toml::from_str::<Augment>("hflip = 0.5\nhflipp = 1.0").is_err());
    assert!(Augment { hflip: 1.5, ..Default::default() }.validate().is_err());
    assert!(Augment { hue: 0.7, ..Default::default() }.validate().is_err());
    // Out-of-range amounts never panic in the transform.
    let bad = Augment {
        rotation: f32::INFINITY,
        brightness: f32::NAN,
        zoom: Some([2.0, 1.0]),
        ..Default::default()
    };
    let img = noise(9, 9, 1);
    let out = train_transform(&img, &spec(4, 4), &bad, &mut ChaCha8Rng::seed_from_u64(0));
    assert_eq!(out, eval_transform(&img, &spec(4, 4)));
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn decode_converts_grey_alpha_and_16_bit_and_trusts_content() {
    let d = tmp();
    let lim = ImageLimits::default();
    let grey = d.path().join("g.png");
    ImageBuffer::<Luma<u8>, _>::from_raw(2, 1, vec![7u8, 200]).unwrap().save(&grey).unwrap();
    assert_eq!(decode(&grey, &lim).unwrap().as_raw(), &vec![7, 7, 7, 200, 200, 200]);
    let rgba = d.path().join("a.png");
    ImageBuffer::<Rgba<u8>, _>::from_raw(1, 1, vec![1u8, 2, 3, 0]).unwrap().save(&rgba).unwrap();
    assert_eq!(decode(&rgba, &lim).unwrap().as_raw(), &vec![1, 2, 3]);
    let deep = d.path().join("d.png");
    ImageBuffer::<Rgb<u16>, _>::from_raw(1, 1, vec![65535u16, 0, 257 * 128]).unwrap().save(&deep).unwrap();
    assert_eq!(decode(&deep, &lim).unwrap().as_raw(), &vec![255, 0, 128]);
    // PNG bytes under a .jpg name decode by content.
    let png_named_jpg = d.path().join("really_png.jpg");
    std::fs::copy(&grey, &png_named_jpg).unwrap();
    assert_eq!(decode(&png_named_jpg, &lim).unwrap().dimensions(), (2, 1));
    // And the other formats the crate ships.
    for ext in ["jpg", "bmp", "gif", "webp"] {
        let p = d.path().join(format!("x.{ext}"));
        noise(5, 4, 1).save(&p).unwrap();
        assert_eq!(decode(&p, &lim).unwrap().dimensions(), (5, 4), "{ext}");
    }
}

/// root/<class>/<n files> of small PNGs; returns the root.
fn write_classes(root: &Path, classes: &[(&str, usize)]) {
    for (c, n) in classes {
        let dir = root.join(c);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..*n {
            noise(6, 5, i as u64).save(dir.join(format!("img{i:03}.png"))).unwrap();
        }
    }
}

#[test]
fn layout_b_is_split_stratified_and_deterministically() {
    let d = tmp();
    write_classes(d.path(), &[("cat", 10), ("dog", 20), ("eel", 5)]);
    std::fs::write(d.path().join("README.md"), "not data").unwrap();
    std::fs::write(d.path().join("cat").join(".DS_Store"), [0u8, 1, 2]).unwrap();
    let opts = ImageFolderOptions { val_ratio: 0.2, test_ratio: 0.2, seed: 5, ..Default::default() };
    let f = ImageFolder::open(d.path(), &opts).unwrap();
    assert_eq!(f.labels.names(), &["cat", "dog", "eel"]);
    assert!(f.skipped.is_empty());
    let count = |items: &[whet::data::ImageItem], l| items.iter().filter(|i| i.label == l).count();
    // test: round(.2·n) per class = 2, 4, 1; val: .2/.8 = .25 of the remaining 8, 16, 4 = 2, 4, 1.
    assert_eq!([count(&f.test, 0), count(&f.test, 1), count(&f.test, 2)], [2, 4, 1]);
    assert_eq!([count(&f.val, 0), count(&f.val, 1), count(&f.val, 2)], [2, 4, 1]);
    assert_eq!([count(&f.train, 0), count(&f.train, 1), count(&f.train, 2)], [6, 12, 3]);
    let mut all: Vec<PathBuf> = f.train.iter().chain(&f.val).chain(&f.test).map(|i| i.path.clone()).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 35, "splits are disjoint and cover every file");
    for it in f.train.iter().chain(&f.val) {
        let class = it.path.parent().unwrap().file_name().unwrap().to_str().unwrap();
        assert_eq!(f.labels.name(it.label), Some(class));
    }
    let again = ImageFolder::open(d.path(), &opts).unwrap();
    assert_eq!(again.val, f.val);
    let other = ImageFolder::open(d.path(), &ImageFolderOptions { seed: 6, ..opts.clone() }).unwrap();
    assert_ne!(other.val, f.val, "another seed, another split");
}

#[test]
fn layout_a_uses_the_union_of_classes() {
    let d = tmp();
    write_classes(&d.path().join("train"), &[("b", 3), ("a", 2)]);
    write_classes(&d.path().join("valid"), &[("a", 1), ("c", 1)]);
    write_classes(&d.path().join("test"), &[("b", 1), ("d", 0)]);
    let f = ImageFolder::open(d.path(), &ImageFolderOptions::default()).unwrap();
    assert_eq!(f.labels.names(), &["a", "b", "c", "d"], "an empty class folder still gets an index");
    assert_eq!((f.train.len(), f.val.len(), f.test.len()), (5, 2, 1));
    assert_eq!(f.train.iter().map(|i| i.label).collect::<Vec<_>>(), vec![0, 0, 1, 1, 1]);
    assert_eq!(f.val.iter().map(|i| i.label).collect::<Vec<_>>(), vec![0, 2]);
    // A stray folder next to train/val/test is an error, not silently ignored.
    std::fs::create_dir(d.path().join("extras")).unwrap();
    let e = ImageFolder::open(d.path(), &ImageFolderOptions::default()).unwrap_err().to_string();
    assert!(e.contains("extras"), "{e}");
}

#[test]
fn hymenoptera_train_val_layout() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/hymenoptera_data");
    if !root.exists() {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "!!!!!!!! hymenoptera_train_val_layout: {} ABSENT, SKIPPED !!!!!!!!",
            root.display()
        );
        return;
    }
    let t = std::time::Instant::now();
    let f = ImageFolder::open(&root, &ImageFolderOptions::default()).unwrap();
    assert_eq!(f.labels.names(), &["ants", "bees"]);
    assert!(f.skipped.is_empty(), "{:?}", f.skipped);
    let count = |items: &[whet::data::ImageItem], l| items.iter().filter(|i| i.label == l).count();
    assert_eq!((count(&f.train, 0), count(&f.train, 1)), (124, 121));
    assert_eq!((count(&f.val, 0), count(&f.val, 1)), (70, 83));
    assert!(f.test.is_empty());
    eprintln!("hymenoptera: 398 images pre-scanned in {:.2?}", t.elapsed());
    // A real photo through the ImageNet transform.
    let img = decode(&f.train[0].path, &ImageLimits::default()).unwrap();
    let x = eval_transform(&img, &ImageSpec::IMAGENET);
    assert_eq!(x.len(), 3 * 224 * 224);
    assert!(x.iter().all(|v| v.is_finite() && v.abs() < 3.0));
}
