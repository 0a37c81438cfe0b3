//! Entry points for the fuzz targets (`fuzz/`) and their regression replay
//! (`tests/fuzz_regressions.rs`): each takes the fuzzer's bytes and reads them the way whet
//! reads that kind of file, so a crash found by `cargo fuzz` replays under plain `cargo test`
//! through the same code. Every entry returns `Ok` or a typed error; a panic, a hang or a huge
//! allocation is a bug. Not a stable API.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::data::image::{decode_bytes, eval_transform, ImageLimits, ImageSpec};
use crate::data::table::{TableFormat, TableOptions, TextTable};
use crate::data::tokenize::TextTokenizer;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::models::gpt2::{Gpt2, Gpt2Config};
use crate::weights::gguf::GgufFile;
use crate::weights::gguf_llama::GgufLlama;
use crate::weights::safetensors::SafeTensorsFile;
use crate::weights::torch::TorchFile;
use crate::weights::WeightSource;

/// An entry point: the bytes of one input.
pub type Entry = fn(&[u8]) -> Result<()>;

/// Every target by name, as `fuzz/fuzz_targets/<name>.rs` and `fuzz/regressions/<name>/`.
pub const TARGETS: &[(&str, Entry)] = &[
    ("safetensors", safetensors),
    ("pth_zip", pth),
    ("pth_legacy", pth),
    ("gguf", gguf),
    ("tables", tables),
    ("tokenizer", tokenizer),
    ("checkpoint_manifest", checkpoint_manifest),
    ("image_prescan", image_prescan),
];

/// The entry point of target `name`.
pub fn entry(name: &str) -> Option<Entry> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, e)| *e)
}

/// Read every tensor of `src` (the reads allocate at most what the file's bytes describe).
fn read_all(src: &dyn WeightSource) -> Result<()> {
    for t in src.tensors() {
        src.read_f32(&t.name)?;
    }
    Ok(())
}

/// The GPT-2 the safetensors target binds to: small enough to upload on every input.
pub fn tiny_gpt2_config() -> Gpt2Config {
    let json = serde_json::json!({"vocab_size": 8, "n_embd": 4, "n_head": 2, "n_layer": 1, "n_positions": 4});
    Gpt2Config::from_json(&json, "tiny_gpt2_config").expect("a valid built-in config")
}

/// One engine for every input of a process (`None` without an adapter: binding is skipped).
pub fn engine() -> Option<&'static Engine> {
    static ENGINE: OnceLock<Option<Engine>> = OnceLock::new();
    ENGINE.get_or_init(Engine::try_default).as_ref()
}

/// A safetensors file: validated, every tensor read, then bound to a tiny GPT-2 (the binder's
/// report of missing, mis-shaped or non-finite tensors is an `Err`, as for a real model).
pub fn safetensors(data: &[u8]) -> Result<()> {
    let st = SafeTensorsFile::from_vec("fuzz.safetensors", data.to_vec())?;
    read_all(&st)?;
    if let Some(engine) = engine() {
        Gpt2::load(engine, &st, "fuzz.safetensors", tiny_gpt2_config())?;
    }
    Ok(())
}

/// A PyTorch checkpoint, zip or legacy (told apart by content, as `weights::open` does).
pub fn pth(data: &[u8]) -> Result<()> {
    read_all(&TorchFile::from_vec("fuzz.pth", data.to_vec())?)
}

/// A GGUF file: metadata and every tensor; when it says `llama`, the HF view of it; when it
/// carries a tokenizer, that tokenizer encoding a sentence.
pub fn gguf(data: &[u8]) -> Result<()> {
    let g = GgufFile::from_vec("fuzz.gguf", data.to_vec())?;
    read_all(&g)?;
    for (_, v) in g.metadata() {
        let _ = v.to_string();
    }
    if g.get("tokenizer.ggml.model").is_some() {
        let tok = TextTokenizer::from_gguf_file(&g)?;
        let ids = tok.encode("Hello world, 123!", true)?;
        tok.decode(&ids, false)?;
    }
    if g.get_str("general.architecture").is_ok_and(|a| crate::weights::gguf_llama::ARCHITECTURES.contains(&a))
    {
        read_all(&GgufLlama::new(g)?)?;
    }
    Ok(())
}

/// A text table; the first byte picks CSV, TSV or JSON Lines, the rest is the file.
pub fn tables(data: &[u8]) -> Result<()> {
    let Some((&first, body)) = data.split_first() else { return Ok(()) };
    let format = match first % 3 {
        0 => TableFormat::Csv,
        1 => TableFormat::Tsv,
        _ => TableFormat::Jsonl,
    };
    let opts = TableOptions { format: Some(format), max_line_bytes: 4096, ..Default::default() };
    TextTable::from_bytes(Path::new("fuzz.table"), body, &opts)?;
    let unlabelled = TableOptions { label: None, ..opts };
    TextTable::from_bytes(Path::new("fuzz.table"), body, &unlabelled).map(|_| ())
}

/// A `tokenizer.json`, then text to encode after the first NUL byte (JSON holds no raw NUL).
pub fn tokenizer(data: &[u8]) -> Result<()> {
    let (json, text) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], String::from_utf8_lossy(&data[i + 1..]).into_owned()),
        None => (data, "Hello world, 123!".to_string()),
    };
    let tok = TextTokenizer::from_bytes(Path::new("fuzz.tokenizer.json"), json)?;
    let ids = tok.encode(&text, true)?;
    tok.decode(&ids, true)?;
    let (a, b) = text.split_at(text.char_indices().nth(text.chars().count() / 2).map_or(0, |(i, _)| i));
    tok.encode_batch(&[(a, Some(b)), (b, None)], 16)?;
    Ok(())
}

/// Separates the four files of a checkpoint in a `checkpoint_manifest` input.
pub const PART_SEPARATOR: &[u8] = b"\n--whet-fuzz-part--\n";

/// The files of one checkpoint directory, in the order of a `checkpoint_manifest` input.
pub const CHECKPOINT_FILES: [&str; 4] =
    ["manifest.json", "state.json", "params.safetensors", "optim.safetensors"];

/// A checkpoint directory: the input is split at [`PART_SEPARATOR`] into
/// [`CHECKPOINT_FILES`], written under `checkpoints/step-1/` of a fresh folder, and read back
/// with `load_dir` and `load_latest`. A manifest entry whose `crc32` is 0 gets the real size
/// and checksum, so inputs reach the files behind the checksum.
pub fn checkpoint_manifest(data: &[u8]) -> Result<()> {
    let mut parts: Vec<Vec<u8>> = split(data, PART_SEPARATOR).into_iter().map(<[u8]>::to_vec).collect();
    parts.resize(CHECKPOINT_FILES.len(), Vec::new());
    parts[0] = fix_manifest(&parts[0], &parts[1..4]);
    let out = TempDir::new()?;
    let dir = out.0.join("checkpoints").join("step-1");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    for (name, bytes) in CHECKPOINT_FILES.iter().zip(&parts) {
        let p = dir.join(name);
        std::fs::write(&p, bytes).map_err(|e| Error::io(&p, e))?;
    }
    let a = crate::train::checkpoint::load_dir(&dir).map(|_| ());
    let b = crate::train::checkpoint::load_latest(&out.0).map(|_| ());
    a.and(b)
}

fn split<'a>(data: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(i) = rest.windows(sep.len()).position(|w| w == sep) {
        out.push(&rest[..i]);
        rest = &rest[i + sep.len()..];
    }
    out.push(rest);
    out
}

/// The manifest with each `{"size", "crc32": 0}` entry for one of the other files filled in.
fn fix_manifest(manifest: &[u8], files: &[Vec<u8>]) -> Vec<u8> {
    let Ok(mut m) = serde_json::from_slice::<serde_json::Value>(manifest) else { return manifest.to_vec() };
    let Some(entries) = m.get_mut("files").and_then(|f| f.as_object_mut()) else { return manifest.to_vec() };
    for (name, bytes) in CHECKPOINT_FILES[1..].iter().zip(files) {
        if let Some(e) = entries.get_mut(*name).and_then(|e| e.as_object_mut()) {
            if e.get("crc32").and_then(|c| c.as_u64()) == Some(0) {
                let mut crc = flate2::Crc::new();
                crc.update(bytes);
                e.insert("crc32".into(), crc.sum().into());
                e.insert("size".into(), (bytes.len() as u64).into());
            }
        }
    }
    serde_json::to_vec(&m).unwrap_or_else(|_| manifest.to_vec())
}

/// A folder under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir> {
        static N: AtomicU64 = AtomicU64::new(0);
        let name = format!("whet-fuzz-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let p = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&p).map_err(|e| Error::io(&p, e))?;
        Ok(TempDir(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An image file through the image folder's pre-scan decode (default limits), then the
/// evaluation transform at a small size.
pub fn image_prescan(data: &[u8]) -> Result<()> {
    let img = decode_bytes(Path::new("fuzz.img"), data, &ImageLimits::default())?;
    let spec = ImageSpec { size: 8, resize: 9, ..ImageSpec::IMAGENET };
    eval_transform(&img, &spec);
    Ok(())
}
