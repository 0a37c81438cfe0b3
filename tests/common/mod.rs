//! Shared by the GPU test files: one engine per test binary, one test on it at a time.

pub mod export;
pub mod fixtures;

use std::sync::{Mutex, MutexGuard, OnceLock};

use whet::{Engine, EngineOptions, Error};

/// The file's engine and a guard that serialises the tests using it (they share one device
/// queue, and their counters and timings should not interleave). `None`, after a loud line on
/// stderr, when the machine has no adapter.
#[allow(dead_code)]
pub fn gpu(file: &str, test: &str) -> Option<(MutexGuard<'static, ()>, Engine)> {
    static LOCK: Mutex<()> = Mutex::new(());
    static ENGINE: OnceLock<Option<Engine>> = OnceLock::new();
    let guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    match ENGINE.get_or_init(Engine::try_default) {
        Some(e) => Some((guard, e.clone())),
        None => {
            no_adapter(file, test);
            None
        }
    }
}

/// An engine of the test's own with `options` (tests that change limits or lose the device),
/// or `None` after the loud line when the machine has no adapter.
#[allow(dead_code)]
pub fn own_engine(file: &str, test: &str, options: EngineOptions) -> Option<Engine> {
    match Engine::new(options) {
        Ok(e) => Some(e),
        Err(Error::NoAdapter(_)) => {
            no_adapter(file, test);
            None
        }
        Err(e) => panic!("{file}::{test}: the engine did not open: {e}"),
    }
}

/// The loud skip line. Written to the stderr handle, not eprintln!: libtest captures
/// eprintln! output of passing tests, and a skip must be visible.
pub fn no_adapter(file: &str, test: &str) {
    use std::io::Write;
    let _ =
        writeln!(std::io::stderr(), "!!!!!!!! {file}::{test}: NO GPU ADAPTER, GPU CHECKS SKIPPED !!!!!!!!");
}

/// GPT-2's byte-to-unicode table: printable bytes map to themselves, the rest to U+0100 onward.
#[allow(dead_code)]
fn byte_level_vocab() -> Vec<String> {
    let mut printable: Vec<u32> = (b'!' as u32..=b'~' as u32).collect();
    printable.extend(0xA1..=0xAC);
    printable.extend(0xAE..=0xFF);
    let mut extra = 0;
    (0u32..256)
        .map(|b| {
            if printable.contains(&b) {
                char::from_u32(b).unwrap().to_string()
            } else {
                extra += 1;
                char::from_u32(255 + extra).unwrap().to_string()
            }
        })
        .collect()
}

/// The tiny GPT-2 fixture and a corpus for it in `dir` (`tokenizer.json`, `corpus.txt`), and
/// the `[model]` + `[data]` recipe tables naming them; `None` (said loudly) without fixtures.
#[allow(dead_code)]
pub fn gpt2_corpus(file: &str, dir: &std::path::Path) -> Option<String> {
    let model = fixtures::fixtures_dir().join("gpt2_tiny");
    if !model.exists() {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "!!!!!!!! {file}: {} ABSENT, CHECK SKIPPED !!!!!!!!",
            model.display()
        );
        return None;
    }
    byte_level_tokenizer(&dir.join("tokenizer.json"));
    std::fs::write(dir.join("corpus.txt"), "to be or not to be, that is the question. ".repeat(40)).unwrap();
    Some(format!(
        "[model]\nkind = \"gpt2\"\npath = \"{}\"\ntokenizer = \"tokenizer.json\"\n\
         [data]\nkind = \"corpus\"\ntrain = \"corpus.txt\"\nmax_len = 32\nval_ratio = 0.2\n",
        model.display()
    ))
}

/// Write a byte-level BPE tokenizer.json with no merges (one token per byte): enough for the
/// tiny GPT-2 fixture, whose vocabulary starts with the 256 byte tokens.
#[allow(dead_code)]
pub fn byte_level_tokenizer(path: &std::path::Path) {
    let vocab: serde_json::Map<String, serde_json::Value> =
        byte_level_vocab().into_iter().enumerate().map(|(i, t)| (t, i.into())).collect();
    let tok = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "vocab": vocab, "merges": []}
    });
    std::fs::write(path, tok.to_string()).unwrap();
}
