//! A folder of images, one subfolder per class, in either of the two layouts people ship:
//!
//! - A: `root/train/<class>/…`, `root/val|valid|validation/<class>/…`, optional `root/test/<class>/…`;
//! - B: `root/<class>/…`, split here (stratified, seeded) by `val_ratio` / `test_ratio`.
//!
//! Every file is decoded in a pre-scan before [`ImageFolder::open`] returns, so a corrupt file
//! stops the run before training starts (or, with `skip_bad`, is listed and left out). Hidden
//! files and folders (`.DS_Store`, `.git`), `Thumbs.db`, `desktop.ini` and `__MACOSX` are not
//! data and are ignored; loose files directly under the root (README, LICENSE) are ignored too,
//! while a loose file inside a split folder is reported, since it is a sample without a class.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

use super::image::{decode, decode_cost, ImageLimits};
use super::labels::LabelMap;
use super::skip::{enforce, SkipPolicy, Skipped};
use super::split::stratified_split;
use crate::error::{Error, Result};
use crate::progress::Progress;

/// One image and its class index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageItem {
    pub path: PathBuf,
    pub label: usize,
}

impl ImageItem {
    /// An image a host program names itself (not found by scanning a folder).
    pub fn new(path: impl Into<PathBuf>, label: usize) -> ImageItem {
        ImageItem { path: path.into(), label }
    }
}

/// How to split and how to treat bad files.
#[derive(Debug, Clone)]
pub struct ImageFolderOptions {
    /// Fraction held out for validation when the folder has no validation split.
    pub val_ratio: f64,
    /// Fraction held out for testing when the folder has no test split.
    pub test_ratio: f64,
    pub seed: u64,
    pub policy: SkipPolicy,
    pub limits: ImageLimits,
    /// Show the pre-scan's progress on stderr (a large folder takes minutes to decode).
    pub progress: bool,
}

impl Default for ImageFolderOptions {
    fn default() -> Self {
        ImageFolderOptions {
            val_ratio: 0.2,
            test_ratio: 0.0,
            seed: 0,
            policy: SkipPolicy::default(),
            limits: ImageLimits::default(),
            progress: false,
        }
    }
}

/// A scanned image folder: classes, the three splits, and every file left out (with `skip_bad`).
#[derive(Debug, Clone)]
pub struct ImageFolder {
    pub root: PathBuf,
    pub labels: LabelMap,
    pub train: Vec<ImageItem>,
    pub val: Vec<ImageItem>,
    pub test: Vec<ImageItem>,
    pub skipped: Vec<Skipped>,
}

/// Names that are never data.
fn ignored(name: &str) -> bool {
    name.starts_with('.') || matches!(name, "Thumbs.db" | "desktop.ini" | "__MACOSX")
}

const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "bmp", "gif", "webp", "tif", "tiff"];

/// Whether `p` names an image by its extension (png, jpg, jpeg, bmp, gif, webp, tif, tiff).
pub fn has_image_extension(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn skipped(path: &Path, reason: impl Into<String>) -> Skipped {
    Skipped { path: path.display().to_string(), line: None, reason: reason.into() }
}

/// The reason part of an error about a file whose path is already known.
fn reason(e: &Error) -> String {
    match e {
        Error::Format { message, .. } => message.clone(),
        Error::Io { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}

/// Non-ignored entries of a folder, sorted by name, as (name, path).
fn entries(dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !ignored(&name) {
            v.push((name, e.path()));
        }
    }
    v.sort();
    Ok(v)
}

/// Folders deeper than this below a class folder are reported rather than followed.
const MAX_DEPTH: usize = 32;

/// Files of one split: (path, class name), plus the bad entries met on the way.
#[derive(Default)]
struct Walk {
    files: Vec<(PathBuf, String)>,
    /// Every class folder name met, empty ones included (they still get an index).
    classes: BTreeSet<String>,
    bad: Vec<Skipped>,
    /// Canonical paths of every folder already scanned: a symlinked folder pointing back at one
    /// of them (a loop, or the same images twice) is reported, never followed.
    visited: HashSet<PathBuf>,
}

impl Walk {
    /// Enter `dir` unless its canonical path was seen; returns false (and records why) if not.
    fn enter(&mut self, dir: &Path) -> bool {
        match std::fs::canonicalize(dir) {
            Ok(c) => {
                if self.visited.insert(c.clone()) {
                    true
                } else {
                    self.bad.push(skipped(
                        dir,
                        format!(
                            "folder leads to {}, which is already scanned (symlink loop or duplicate)",
                            c.display()
                        ),
                    ));
                    false
                }
            }
            Err(e) => {
                self.bad.push(skipped(dir, format!("cannot resolve folder: {e}")));
                false
            }
        }
    }

    fn class(&mut self, dir: &Path, class: &str, depth: usize) {
        if depth > MAX_DEPTH {
            self.bad
                .push(skipped(dir, format!("folder nested more than {MAX_DEPTH} levels deep; not followed")));
            return;
        }
        let list = match entries(dir) {
            Ok(l) => l,
            Err(e) => {
                self.bad.push(skipped(dir, format!("cannot list folder: {e}")));
                return;
            }
        };
        for (_, path) in list {
            // metadata follows symlinks: a dangling link or a link cycle (ELOOP) fails here.
            let meta = match std::fs::metadata(&path) {
                Ok(m) => m,
                Err(e) => {
                    self.bad
                        .push(skipped(&path, format!("unreadable entry (broken or looping symlink?): {e}")));
                    continue;
                }
            };
            if meta.is_dir() {
                if has_image_extension(&path) {
                    self.bad.push(skipped(&path, "is a directory named like an image file"));
                } else if self.enter(&path) {
                    self.class(&path, class, depth + 1);
                }
            } else {
                self.files.push((path, class.to_string()));
            }
        }
    }

    /// A split folder: its subfolders are classes; a file directly inside has no class and is
    /// reported when `loose_files_bad` (a split folder), ignored otherwise (a layout-B root).
    fn split(&mut self, dir: &Path, loose_files_bad: bool) -> Result<()> {
        if !self.enter(dir) {
            return Ok(());
        }
        for (name, path) in entries(dir).map_err(|e| Error::io(dir, e))? {
            match std::fs::metadata(&path) {
                Ok(m) if m.is_dir() && !has_image_extension(&path) => {
                    if self.enter(&path) {
                        self.classes.insert(name.clone());
                        self.class(&path, &name, 0);
                    }
                }
                Ok(m) if m.is_dir() => {
                    self.bad.push(skipped(&path, "is a directory named like an image file"))
                }
                Ok(_) if loose_files_bad => self.bad.push(skipped(&path, "file outside any class folder")),
                Ok(_) => {}
                Err(e) => self
                    .bad
                    .push(skipped(&path, format!("unreadable entry (broken or looping symlink?): {e}"))),
            }
        }
        Ok(())
    }
}

/// Memory the pre-scan's decoders may hold at once, whatever the thread count: a few large
/// images wait for each other instead of each thread holding half a gigabyte.
const PRESCAN_MEMORY: u64 = 1 << 30;

/// Admits decodes while their summed [`decode_cost`] fits in [`PRESCAN_MEMORY`] (one at a time
/// past it, so a single image over the bound still gets decoded and judged).
#[derive(Default)]
struct Gate {
    used: Mutex<u64>,
    freed: Condvar,
}

impl Gate {
    fn enter(&self, need: u64) -> u64 {
        let need = need.min(PRESCAN_MEMORY);
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        while *used > 0 && *used + need > PRESCAN_MEMORY {
            used = self.freed.wait(used).unwrap_or_else(|e| e.into_inner());
        }
        *used += need;
        need
    }

    fn leave(&self, need: u64) {
        *self.used.lock().unwrap_or_else(|e| e.into_inner()) -= need;
        self.freed.notify_all();
    }
}

/// Decode every file (in parallel, under the memory gate); `None` for a good file, the reason
/// for a bad one.
fn prescan(files: &[(PathBuf, String)], limits: &ImageLimits, progress: bool) -> Vec<Option<String>> {
    let threads =
        std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8).min(files.len().max(1));
    let mut out = vec![None; files.len()];
    let chunk = files.len().div_ceil(threads).max(1);
    let gate = &Gate::default();
    let shown = &Progress::new(progress, "image", files.len() as u64, 0);
    std::thread::scope(|s| {
        for (fs, os) in files.chunks(chunk).zip(out.chunks_mut(chunk)) {
            s.spawn(move || {
                for ((path, _), o) in fs.iter().zip(os.iter_mut()) {
                    let held = gate.enter(decode_cost(path, limits));
                    *o = decode(path, limits).err().map(|e| reason(&e));
                    gate.leave(held);
                    shown.inc();
                }
            });
        }
    });
    shown.finish();
    out
}

fn check_ratio(name: &str, r: f64) -> Result<()> {
    if !(0.0..1.0).contains(&r) {
        return Err(Error::arg("ImageFolder", format!("{name} {r} is not in [0, 1)")));
    }
    Ok(())
}

/// Stratified holdout of `frac` of `items`: (kept, held out).
fn hold_out(items: Vec<ImageItem>, frac: f64, seed: u64) -> Result<(Vec<ImageItem>, Vec<ImageItem>)> {
    if frac <= 0.0 || items.is_empty() {
        return Ok((items, Vec::new()));
    }
    let labels: Vec<usize> = items.iter().map(|i| i.label).collect();
    let (keep, hold) = stratified_split(&labels, frac, seed)?;
    let pick = |ix: &[usize]| ix.iter().filter_map(|&i| items.get(i).cloned()).collect::<Vec<_>>();
    Ok((pick(&keep), pick(&hold)))
}

fn check_ratios(opts: &ImageFolderOptions) -> Result<()> {
    check_ratio("val_ratio", opts.val_ratio)?;
    check_ratio("test_ratio", opts.test_ratio)?;
    if opts.val_ratio + opts.test_ratio >= 1.0 {
        return Err(Error::arg(
            "ImageFolder",
            format!(
                "val_ratio {} + test_ratio {} leaves nothing to train on",
                opts.val_ratio, opts.test_ratio
            ),
        ));
    }
    Ok(())
}

/// The files of a root in layout A or B, before decoding.
struct Layout {
    walk: Walk,
    /// (split index 0/1/2 = train/val/test, range into `walk.files`).
    spans: Vec<(usize, std::ops::Range<usize>)>,
    has_val: bool,
    has_test: bool,
}

impl Layout {
    fn scan(root: &Path) -> Result<Layout> {
        let top = entries(root).map_err(|e| Error::io(root, e))?;
        let dirs: Vec<(String, PathBuf)> = top.into_iter().filter(|(_, p)| p.is_dir()).collect();
        let find =
            |names: &[&str]| dirs.iter().find(|(n, _)| names.contains(&n.to_ascii_lowercase().as_str()));
        let train_dir = find(&["train"]);
        let val_dir = find(&["val", "valid", "validation"]);
        let test_dir = find(&["test"]);
        let mut walk = Walk::default();
        let mut spans = Vec::new();
        if let Some((_, train)) = train_dir {
            if let Some((n, _)) = dirs
                .iter()
                .find(|(n, _)| ![train_dir, val_dir, test_dir].iter().flatten().any(|(k, _)| k == n))
            {
                return Err(Error::Format {
                    path: root.display().to_string(),
                    line: None,
                    message: format!(
                        "has a 'train' folder, so its layout is train/val/test, but also a folder '{n}'; \
                         move it out or point at a folder with one layout"
                    ),
                });
            }
            for (k, d) in [Some(train), val_dir.map(|v| &v.1), test_dir.map(|t| &t.1)].into_iter().enumerate()
            {
                if let Some(d) = d {
                    let start = walk.files.len();
                    walk.split(d, true)?;
                    spans.push((k, start..walk.files.len()));
                }
            }
        } else {
            walk.split(root, false)?;
            spans.push((0, 0..walk.files.len()));
        }
        Ok(Layout { walk, spans, has_val: val_dir.is_some(), has_test: test_dir.is_some() })
    }

    /// The good files of each split (`verdicts[i]` is `None`) with their class indices.
    fn items(&self, labels: &LabelMap, verdicts: &[Option<String>]) -> [Vec<ImageItem>; 3] {
        // Hashed once: one scan of the class list per file would be quadratic.
        let class_index: std::collections::HashMap<&str, usize> =
            labels.names().iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
        let mut splits: [Vec<ImageItem>; 3] = Default::default();
        for (k, range) in &self.spans {
            for i in range.clone() {
                if let (Some((path, class)), Some(None)) = (self.walk.files.get(i), verdicts.get(i)) {
                    let label = class_index.get(class.as_str()).copied().unwrap_or(0);
                    splits[*k].push(ImageItem { path: path.clone(), label });
                }
            }
        }
        splits
    }
}

/// Apply the skip policy to the bad files and folder entries; an error when there is nothing
/// good to train on.
fn judge(root: &Path, walk: &Walk, verdicts: &[Option<String>], policy: &SkipPolicy) -> Result<Vec<Skipped>> {
    let mut bad = walk.bad.clone();
    for ((path, _), v) in walk.files.iter().zip(verdicts) {
        if let Some(r) = v {
            bad.push(skipped(path, r.clone()));
        }
    }
    // Every candidate counts towards the threshold: decoded files and bad folder entries.
    let total = walk.files.len() + walk.bad.len();
    bad.sort_by(|a, b| a.path.cmp(&b.path));
    let what = format!("image folder {}", root.display());
    let skipped = enforce(policy, bad, total, &what)?;
    if walk.classes.is_empty() || verdicts.iter().all(|v| v.is_some()) {
        return Err(Error::Format {
            path: root.display().to_string(),
            line: None,
            message: "no images found (expected root/<class>/<image> or root/train/<class>/<image>)".into(),
        });
    }
    Ok(skipped)
}

impl ImageFolder {
    /// Scan `root` (layout A or B, see the module docs), decode every file, apply the skip
    /// policy, and split. Classes are the union of the class folder names over all splits (an
    /// empty class folder still gets an index), in plain sorted order as torchvision's
    /// ImageFolder; files are in sorted path order.
    pub fn open(root: &Path, opts: &ImageFolderOptions) -> Result<ImageFolder> {
        check_ratios(opts)?;
        let layout = Layout::scan(root)?;
        let verdicts = prescan(&layout.walk.files, &opts.limits, opts.progress);
        let skipped = judge(root, &layout.walk, &verdicts, &opts.policy)?;
        let labels = LabelMap::new(layout.walk.classes.iter().cloned().collect())?;
        let [mut train, mut val, mut test] = layout.items(&labels, &verdicts);
        if !layout.has_test && opts.test_ratio > 0.0 {
            (train, test) = hold_out(train, opts.test_ratio, opts.seed)?;
        }
        if !layout.has_val && opts.val_ratio > 0.0 {
            // Relative to what is left after the test holdout, so val is val_ratio of the whole.
            let frac =
                if layout.has_test { opts.val_ratio } else { opts.val_ratio / (1.0 - opts.test_ratio) };
            (train, val) = hold_out(train, frac, opts.seed.wrapping_add(1))?;
        }
        Ok(ImageFolder { root: root.to_path_buf(), labels, train, val, test, skipped })
    }

    /// Every item of the three splits.
    pub fn len(&self) -> usize {
        self.train.len() + self.val.len() + self.test.len()
    }

    /// True when no split holds an item (never after a successful `open`).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
