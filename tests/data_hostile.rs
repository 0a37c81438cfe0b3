//! D1 (hostile image folders) and D2 (malformed CSV/TSV/JSONL): each case is asserted to fail by
//! default with an error naming the file (and the 1-based line for text), and under `skip_bad`
//! to be listed while the good items are kept; past the threshold it fails listing every item.

use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage};
use whet::data::image_folder::{ImageFolder, ImageFolderOptions};
use whet::data::labels::LabelMap;
use whet::data::skip::{enforce, SkipPolicy, Skipped};
use whet::data::table::{TableFormat, TableOptions, TextTable};
use whet::Error;

fn loud_skip(what: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "!!!!!!!! {what}: CHECK SKIPPED !!!!!!!!");
}

fn png(w: u32, h: u32, seed: u8) -> Vec<u8> {
    let img = RgbImage::from_fn(w, h, |x, y| Rgb([x as u8 ^ seed, y as u8, seed]));
    let mut v = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut v), image::ImageFormat::Png).unwrap();
    v
}

fn encoded(w: u32, h: u32, f: image::ImageFormat) -> Vec<u8> {
    let img = RgbImage::from_fn(w, h, |x, y| Rgb([(x * 7 + y * 3) as u8, (x * y) as u8, 9]));
    let mut v = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut v), f).unwrap();
    v
}

/// A PNG whose IHDR claims `w` x `h` (CRC fixed so only the size is wrong).
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut v = png(2, 2, 1);
    // Signature (8), chunk length (4), "IHDR" (4), then width and height.
    v[16..20].copy_from_slice(&w.to_be_bytes());
    v[20..24].copy_from_slice(&h.to_be_bytes());
    let mut crc = flate2::Crc::new();
    crc.update(&v[12..29]);
    v[29..33].copy_from_slice(&crc.sum().to_be_bytes());
    v
}

/// root/a and root/b with 10 good PNGs each.
fn good_folder() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for c in ["a", "b"] {
        std::fs::create_dir(d.path().join(c)).unwrap();
        for i in 0..10 {
            std::fs::write(d.path().join(c).join(format!("{i}.png")), png(5, 4, i)).unwrap();
        }
    }
    d
}

fn skip_opts(max: f64) -> ImageFolderOptions {
    ImageFolderOptions { policy: SkipPolicy { skip_bad: true, max_skipped: max }, ..Default::default() }
}

/// One hostile entry added by `setup` (returning its path) to 20 good images.
fn image_case(name: &str, setup: impl Fn(&Path) -> PathBuf, reason: &str) {
    let d = good_folder();
    let bad = setup(&d.path().join("a"));
    let shown = bad.display().to_string();
    match ImageFolder::open(d.path(), &ImageFolderOptions::default()) {
        Err(Error::Format { path, line, message }) => {
            assert_eq!(path, shown, "{name}: error names the file");
            assert_eq!(line, None);
            assert!(message.contains(reason), "{name}: '{message}' should say '{reason}'");
            eprintln!("{name}: {path}: {message}");
        }
        other => panic!("{name}: expected a Format error, got {other:?}"),
    }
    let f = ImageFolder::open(d.path(), &skip_opts(0.1)).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(f.skipped.len(), 1, "{name}: {:?}", f.skipped);
    assert_eq!(f.skipped[0].path, shown, "{name}");
    assert!(f.skipped[0].reason.contains(reason), "{name}: {}", f.skipped[0]);
    assert_eq!(f.train.len() + f.val.len(), 20, "{name}: every good image kept");
    assert_eq!(f.labels.names(), &["a", "b"]);
    // 1 bad of 21 is over a 1% threshold: the error lists it.
    let e = ImageFolder::open(d.path(), &skip_opts(0.01)).unwrap_err().to_string();
    assert!(e.contains(&shown) && e.contains("1 of 21"), "{name}: {e}");
}

#[test]
fn d1_truncated_png() {
    image_case(
        "truncated png",
        |a| {
            let p = a.join("cut.png");
            let full = encoded(64, 64, image::ImageFormat::Png);
            std::fs::write(&p, &full[..full.len() / 2]).unwrap();
            p
        },
        "cannot decode",
    );
}

#[test]
fn d1_truncated_jpeg() {
    image_case(
        "truncated jpeg",
        |a| {
            let p = a.join("cut.jpg");
            let full = encoded(64, 64, image::ImageFormat::Jpeg);
            std::fs::write(&p, &full[..full.len() * 6 / 10]).unwrap();
            p
        },
        "truncated JPEG",
    );
}

#[test]
fn d1_huge_claimed_dimensions_are_refused_from_the_header() {
    image_case(
        "huge png",
        |a| {
            let p = a.join("huge.png");
            std::fs::write(&p, png_claiming(100_000, 100_000)).unwrap();
            p
        },
        "claims 100000x100000 pixels",
    );
    image_case(
        "huge bmp",
        |a| {
            let p = a.join("huge.bmp");
            let mut v = encoded(2, 2, image::ImageFormat::Bmp);
            v[18..22].copy_from_slice(&60_000i32.to_le_bytes());
            v[22..26].copy_from_slice(&60_000i32.to_le_bytes());
            std::fs::write(&p, v).unwrap();
            p
        },
        "60000x60000",
    );
    image_case(
        "huge gif",
        |a| {
            let p = a.join("huge.gif");
            let mut v = encoded(2, 2, image::ImageFormat::Gif);
            // Logical screen width/height (u16 LE) right after "GIF89a"; a frame as large.
            v[6..8].copy_from_slice(&65_000u16.to_le_bytes());
            v[8..10].copy_from_slice(&65_000u16.to_le_bytes());
            std::fs::write(&p, v).unwrap();
            p
        },
        "65000x65000",
    );
}

#[test]
fn d1_zero_size_image() {
    image_case(
        "zero-size png",
        |a| {
            let p = a.join("zero.png");
            std::fs::write(&p, png_claiming(0, 7)).unwrap();
            p
        },
        "Png header",
    );
}

#[test]
fn d1_not_an_image_despite_the_extension() {
    image_case(
        "text named .jpg",
        |a| {
            let p = a.join("notes.jpg");
            std::fs::write(&p, "these are my notes, not a photo\n").unwrap();
            p
        },
        "not an image",
    );
}

#[test]
fn d1_empty_file() {
    image_case(
        "0-byte file",
        |a| {
            let p = a.join("empty.png");
            std::fs::write(&p, b"").unwrap();
            p
        },
        "empty file (0 bytes)",
    );
}

#[test]
fn d1_unreadable_file() {
    // A dangling symlink can never be read, whoever runs the test.
    image_case(
        "dangling symlink",
        |a| {
            let p = a.join("gone.png");
            std::os::unix::fs::symlink(a.join("does-not-exist.png"), &p).unwrap();
            p
        },
        "No such file",
    );
    // Permission bits: only meaningful when not running as root.
    use std::os::unix::fs::PermissionsExt;
    let probe = tempfile::NamedTempFile::new().unwrap();
    std::fs::set_permissions(probe.path(), std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::File::open(probe.path()).is_ok() {
        loud_skip("d1_unreadable_file: chmod 000 (running as root, files stay readable)");
        return;
    }
    image_case(
        "chmod 000",
        |a| {
            let p = a.join("locked.png");
            std::fs::write(&p, png(3, 3, 3)).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o000)).unwrap();
            p
        },
        "Permission denied",
    );
}

#[test]
fn d1_symlink_loops_are_not_followed() {
    // A folder link back to the root: reported once, never walked forever.
    image_case(
        "directory loop",
        |a| {
            let p = a.join("loop");
            std::os::unix::fs::symlink(a.parent().unwrap(), &p).unwrap();
            p
        },
        "already scanned",
    );
    // A link to itself: the kernel reports ELOOP.
    image_case(
        "self link",
        |a| {
            let p = a.join("self.png");
            std::os::unix::fs::symlink(&p, &p).unwrap();
            p
        },
        "symbolic links",
    );
}

#[test]
fn d1_directory_named_like_an_image() {
    image_case(
        "dir x.png",
        |a| {
            let p = a.join("x.png");
            std::fs::create_dir(&p).unwrap();
            std::fs::write(p.join("inner.png"), png(2, 2, 2)).unwrap();
            p
        },
        "is a directory",
    );
}

#[test]
fn d1_hidden_files_are_ignored_and_not_counted() {
    let d = good_folder();
    std::fs::write(d.path().join("a").join(".DS_Store"), b"\0\0\x01Bud1junk").unwrap();
    std::fs::write(d.path().join("a").join("._0.png"), b"AppleDouble").unwrap();
    std::fs::create_dir(d.path().join(".git")).unwrap();
    std::fs::write(d.path().join("b").join("Thumbs.db"), b"junk").unwrap();
    let f = ImageFolder::open(d.path(), &ImageFolderOptions::default()).unwrap();
    assert_eq!(f.train.len() + f.val.len(), 20);
    assert!(f.skipped.is_empty());
    assert_eq!(f.labels.names(), &["a", "b"]);
}

#[test]
fn d1_every_bad_file_is_listed_and_the_threshold_holds() {
    let d = good_folder();
    let a = d.path().join("a");
    std::fs::write(a.join("empty.png"), b"").unwrap();
    std::fs::write(a.join("notes.jpg"), "text").unwrap();
    std::fs::write(a.join("huge.png"), png_claiming(50_000, 3)).unwrap();
    std::fs::create_dir(a.join("dir.png")).unwrap();
    std::os::unix::fs::symlink(d.path(), a.join("loop")).unwrap();
    // 5 bad of 25 = 20%.
    let e = ImageFolder::open(d.path(), &skip_opts(0.1)).unwrap_err().to_string();
    for name in ["empty.png", "notes.jpg", "huge.png", "dir.png", "loop"] {
        assert!(e.contains(name), "{name} missing from: {e}");
    }
    assert!(e.contains("5 of 25"), "{e}");
    let f = ImageFolder::open(d.path(), &skip_opts(0.2)).unwrap();
    let mut names: Vec<String> = f
        .skipped
        .iter()
        .map(|s| Path::new(&s.path).file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["dir.png", "empty.png", "huge.png", "loop", "notes.jpg"]);
    assert_eq!(f.train.len() + f.val.len(), 20);
    // The default names the first bad file in path order, and says more are there.
    match ImageFolder::open(d.path(), &ImageFolderOptions::default()).unwrap_err() {
        Error::Format { path, message, .. } => {
            assert!(path.ends_with("dir.png"), "{path}");
            assert!(message.contains("4 more"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn d1_misplaced_file_in_a_split_folder() {
    let d = tempfile::tempdir().unwrap();
    for split in ["train", "val"] {
        for c in ["x", "y"] {
            let dir = d.path().join(split).join(c);
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..5 {
                std::fs::write(dir.join(format!("{i}.png")), png(3, 3, i)).unwrap();
            }
        }
    }
    std::fs::write(d.path().join("train").join("stray.png"), png(3, 3, 9)).unwrap();
    let e = ImageFolder::open(d.path(), &ImageFolderOptions::default()).unwrap_err().to_string();
    assert!(e.contains("stray.png") && e.contains("outside any class folder"), "{e}");
}

#[test]
fn enforce_follows_the_policy() {
    let s = |i: usize| Skipped { path: format!("f{i}.csv"), line: Some(i), reason: format!("bad {i}") };
    assert_eq!(s(3).to_string(), "f3.csv:3: bad 3");
    assert_eq!(Skipped { path: "x.png".into(), line: None, reason: "r".into() }.to_string(), "x.png: r");
    let def = SkipPolicy::default();
    assert!(!def.skip_bad);
    assert_eq!(def.max_skipped, 0.05);
    assert!(enforce(&def, vec![], 10, "d").unwrap().is_empty());
    match enforce(&def, vec![s(4), s(9)], 100, "d").unwrap_err() {
        Error::Format { path, line, message } => {
            assert_eq!((path.as_str(), line), ("f4.csv", Some(4)));
            assert!(message.starts_with("bad 4"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let skip = SkipPolicy { skip_bad: true, max_skipped: 0.05 };
    assert_eq!(enforce(&skip, vec![s(1), s(2)], 40, "d").unwrap().len(), 2); // 2 <= 2.0
    let e = enforce(&skip, vec![s(1), s(2), s(3)], 40, "data.csv").unwrap_err().to_string();
    assert!(e.starts_with("data.csv: 3 of 40"), "{e}");
    assert!(e.contains("f1.csv:1: bad 1") && e.contains("f3.csv:3: bad 3"), "{e}");
    assert!(enforce(&SkipPolicy { skip_bad: true, max_skipped: f64::NAN }, vec![], 1, "d").is_err());
}

// ---------------------------------------------------------------- D2: text tables

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// `content` must fail at `line` with `reason` by default; with skip_bad it is listed and the
/// other `good` rows kept.
fn table_case(
    name: &str,
    file: &str,
    content: &[u8],
    opts: TableOptions,
    line: usize,
    reason: &str,
    good: usize,
) {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), file, content);
    match TextTable::open(&p, &opts) {
        Err(Error::Format { path, line: l, message }) => {
            assert_eq!(path, p.display().to_string(), "{name}");
            assert_eq!(l, Some(line), "{name}: {message}");
            assert!(message.contains(reason), "{name}: '{message}' should say '{reason}'");
        }
        other => panic!("{name}: expected a Format error, got {other:?}"),
    }
    let skip = TableOptions { policy: SkipPolicy { skip_bad: true, max_skipped: 0.5 }, ..opts };
    let t = TextTable::open(&p, &skip).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(t.skipped.len(), 1, "{name}: {:?}", t.skipped);
    assert_eq!(t.skipped[0].line, Some(line), "{name}");
    assert_eq!(t.skipped[0].path, p.display().to_string());
    assert!(t.skipped[0].reason.contains(reason), "{name}");
    assert_eq!(t.items.len(), good, "{name}: {:?}", t.items);
    assert!(t.items.iter().all(|i| i.line != Some(line)));
}

fn fixed(names: &[&str]) -> Option<LabelMap> {
    Some(LabelMap::new(names.iter().map(|s| s.to_string()).collect()).unwrap())
}

#[test]
fn d2_csv_unbalanced_quote() {
    let c = b"text,label\ngood one,pos\n\"never closed,neg\nfine,neg\nalso fine,pos\n";
    table_case("unbalanced quote", "q.csv", c, TableOptions::default(), 3, "unbalanced quote", 3);
    // At the very end of the file too.
    let c = b"text,label\ngood,pos\nok,neg\nx,\"pos\n";
    table_case("unbalanced quote at eof", "q2.csv", c, TableOptions::default(), 4, "unbalanced quote", 2);
    let c = b"text,label\n\"a\"b,pos\nok,neg\nfine,pos\n";
    table_case("text after quote", "q3.csv", c, TableOptions::default(), 2, "after a closing quote", 2);
}

#[test]
fn d2_wrong_field_count() {
    let c = b"text,label\na,pos\nb,extra,neg\nc,neg\n";
    table_case(
        "csv fields",
        "f.csv",
        c,
        TableOptions::default(),
        3,
        "expected 2 fields as in the header, found 3",
        2,
    );
    let c = b"label\ttext\npos\ta\nneg\nneg\tc\n";
    table_case("tsv fields", "f.tsv", c, TableOptions::default(), 3, "found 1", 2);
}

#[test]
fn d2_invalid_utf8() {
    let c = b"text,label\na,pos\n\"multi\nline \xff here\",neg\nc,neg\nd,pos\n";
    // The bad byte is on line 4, inside a record that starts on line 3.
    table_case("csv utf8", "u.csv", c, TableOptions::default(), 4, "invalid UTF-8", 3);
    let c = b"{\"text\": \"a\", \"label\": \"x\"}\n{\"text\": \"b\xc3\x28\", \"label\": \"y\"}\n{\"text\": \"c\", \"label\": \"x\"}\n";
    table_case("jsonl utf8", "u.jsonl", c, TableOptions::default(), 2, "invalid UTF-8", 2);
}

#[test]
fn d2_missing_field_and_empty_text() {
    let c = b"{\"text\": \"a\", \"label\": \"x\"}\n{\"label\": \"y\"}\n{\"text\": \"c\", \"label\": \"x\"}\n";
    table_case("jsonl missing text", "m.jsonl", c, TableOptions::default(), 2, "missing field 'text'", 2);
    let c = b"{\"text\": \"a\", \"label\": \"x\"}\n{\"text\": \"b\"}\n{\"text\": \"c\", \"label\": \"x\"}\n";
    table_case("jsonl missing label", "m2.jsonl", c, TableOptions::default(), 2, "missing field 'label'", 2);
    let c = b"{\"text\": \"a\", \"label\": \"x\"}\n{\"text\": 5, \"label\": \"y\"}\n{\"text\": \"c\", \"label\": \"x\"}\n";
    table_case(
        "jsonl text type",
        "m3.jsonl",
        c,
        TableOptions::default(),
        2,
        "is a number, expected a string",
        2,
    );
    let c = b"text,label\na,pos\n  ,neg\nc,neg\n";
    table_case("csv empty text", "e.csv", c, TableOptions::default(), 3, "empty text in 'text'", 2);
    let c = b"text,label\na,pos\nb,\nc,neg\n";
    table_case("csv empty label", "e2.csv", c, TableOptions::default(), 3, "empty label", 2);
    // A column missing from the header is a whole-file error, even with skip_bad.
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "h.csv", b"sentence,label\na,pos\n");
    let skip = TableOptions { policy: SkipPolicy { skip_bad: true, max_skipped: 1.0 }, ..Default::default() };
    match TextTable::open(&p, &skip).unwrap_err() {
        Error::Format { line, message, .. } => {
            assert_eq!(line, Some(1));
            assert!(message.contains("no column 'text'") && message.contains("sentence, label"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn d2_non_object_and_invalid_json() {
    let c = b"{\"text\": \"a\", \"label\": \"x\"}\n[1, 2]\n{\"text\": \"c\", \"label\": \"x\"}\n";
    table_case(
        "array line",
        "n.jsonl",
        c,
        TableOptions::default(),
        2,
        "expected a JSON object, found an array",
        2,
    );
    let c =
        b"{\"text\": \"a\", \"label\": \"x\"}\n\n{\"text\": \"b\", \n{\"text\": \"c\", \"label\": \"x\"}\n";
    table_case("invalid json", "n2.ndjson", c, TableOptions::default(), 3, "invalid JSON", 2);
    let c = b"{\"text\": \"a\", \"label\": \"x\"}\n{\"text\": \"b\", \"label\": [1]}\n{\"text\": \"c\", \"label\": \"x\"}\n";
    table_case(
        "label type",
        "n3.jsonl",
        c,
        TableOptions::default(),
        2,
        "expected a string or an integer label",
        2,
    );
}

#[test]
fn d2_unknown_and_out_of_range_labels() {
    let opts = || TableOptions { labels: fixed(&["neg", "pos"]), ..Default::default() };
    let c = b"text,label\na,pos\nb,maybe\nc,neg\n";
    table_case("unknown label", "l.csv", c, opts(), 3, "unknown label 'maybe' (known: neg, pos)", 2);
    let c = b"{\"text\": \"a\", \"label\": 1}\n{\"text\": \"b\", \"label\": 7}\n{\"text\": \"c\", \"label\": 0}\n";
    table_case("label 7 of 2", "l.jsonl", c, opts(), 2, "label 7 is out of range for 2 classes", 2);
    let c = b"{\"text\": \"a\", \"label\": 1}\n{\"text\": \"b\", \"label\": -1}\n{\"text\": \"c\", \"label\": 0}\n";
    table_case("label -1", "l2.jsonl", c, opts(), 2, "label -1 is out of range", 2);
    // Integer labels resolve as indices when the fixed names are not integers.
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "ok.jsonl",
        b"{\"text\": \"a\", \"label\": 1}\n{\"text\": \"b\", \"label\": \"neg\"}\n",
    );
    let t = TextTable::open(&p, &opts()).unwrap();
    assert_eq!(t.items.iter().map(|i| i.label).collect::<Vec<_>>(), vec![Some(1), Some(0)]);
    // ... and as names when they are: star ratings 1..5 -> indices 0..4.
    let stars = TableOptions { labels: fixed(&["1", "2", "3", "4", "5"]), ..Default::default() };
    let p = write(d.path(), "s.jsonl", b"{\"text\": \"a\", \"label\": 5}\n{\"text\": \"b\", \"label\": 1}\n");
    let t = TextTable::open(&p, &stars).unwrap();
    assert_eq!(t.items.iter().map(|i| i.label).collect::<Vec<_>>(), vec![Some(4), Some(0)]);
}

#[test]
fn d2_huge_lines() {
    let long = "w".repeat(300);
    let opts = || TableOptions { max_line_bytes: 100, ..Default::default() };
    let c = format!("text,label\na,pos\n{long},neg\nc,neg\n");
    table_case("csv huge", "h.csv", c.as_bytes(), opts(), 3, "longer than 100 bytes", 2);
    let c = format!("{{\"text\": \"a\", \"label\": \"x\"}}\n{{\"text\": \"{long}\", \"label\": \"y\"}}\n{{\"text\": \"c\", \"label\": \"x\"}}\n");
    table_case("jsonl huge", "h.jsonl", c.as_bytes(), opts(), 2, "over the limit of 100", 2);
    // An unclosed quote with a byte budget stops at the budget, not at the end of a big file.
    let mut c = b"text,label\n\"open,neg\n".to_vec();
    for i in 0..50 {
        c.extend_from_slice(format!("row {i},pos\n").as_bytes());
    }
    let opts = TableOptions { max_line_bytes: 64, ..Default::default() };
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "budget.csv", &c);
    let e = TextTable::open(&p, &opts).unwrap_err().to_string();
    assert!(e.contains(":2: record is longer than 64 bytes"), "{e}");
}

#[test]
fn d2_bom_and_crlf_are_accepted() {
    let d = tempfile::tempdir().unwrap();
    let c = "\u{feff}text,label\r\nhello,pos\r\n\"multi\r\nline, with comma and \"\"quote\"\"\",neg\r\nafter,pos\r\n";
    let p = write(d.path(), "bom.csv", c.as_bytes());
    let t = TextTable::open(&p, &TableOptions::default()).unwrap();
    assert_eq!(t.labels.names(), &["neg", "pos"]);
    let got: Vec<(&str, Option<usize>, Option<usize>)> =
        t.items.iter().map(|i| (i.text.as_str(), i.label, i.line)).collect();
    assert_eq!(
        got,
        vec![
            ("hello", Some(1), Some(2)),
            ("multi\r\nline, with comma and \"quote\"", Some(0), Some(3)),
            ("after", Some(1), Some(5))
        ]
    );
    let p = write(
        d.path(),
        "bom.jsonl",
        "\u{feff}{\"text\": \"a\", \"label\": \"x\"}\r\n\r\n{\"text\": \"b\", \"label\": \"y\"}\r\n"
            .as_bytes(),
    );
    let t = TextTable::open(&p, &TableOptions::default()).unwrap();
    assert_eq!(
        t.items.iter().map(|i| (i.text.as_str(), i.line)).collect::<Vec<_>>(),
        vec![("a", Some(1)), ("b", Some(3))]
    );
    let p = write(d.path(), "bom.tsv", "\u{feff}label\ttext\r\n1\tsay \"hi\r\n0\tno\r\n".as_bytes());
    let t = TextTable::open(&p, &TableOptions::default()).unwrap();
    assert_eq!(t.items[0].text, "say \"hi", "TSV quotes are plain characters");
    assert_eq!(t.items.iter().map(|i| i.label).collect::<Vec<_>>(), vec![Some(1), Some(0)]);
    assert_eq!(TableFormat::from_path(Path::new("x.json-lines")).unwrap(), TableFormat::Jsonl);
    assert!(TableFormat::from_path(Path::new("x.txt")).is_err());
}

#[test]
fn d2_threshold_lists_every_bad_line() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "many.csv", b"text,label\na,x\n,x\nb,x\n,y\nc,y\n");
    let opts = TableOptions { policy: SkipPolicy { skip_bad: true, max_skipped: 0.2 }, ..Default::default() };
    let e = TextTable::open(&p, &opts).unwrap_err().to_string();
    assert!(e.contains("2 of 5"), "{e}");
    assert!(e.contains("many.csv:3: empty text") && e.contains("many.csv:5: empty text"), "{e}");
}
