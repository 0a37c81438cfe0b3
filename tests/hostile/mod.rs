//! The crafted files of `tests/hostile_files.rs`: each case builds its input, reads it the way
//! whet reads that kind of file, and asserts the outcome (the typed error and what it names, or
//! what loaded). Writers for pickles and GGUF are in `pickle.rs` and `gguf.rs` beside this.

mod files;
mod gguf;
mod pickle;

pub use files::CASES;

/// What a case ended in.
pub enum Outcome {
    /// A typed error, as displayed.
    Refused(String),
    /// Loaded; a short description of what.
    Loaded(String),
}

/// Peak resident set size of this process so far (VmHWM), in bytes.
pub fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib << 10)
}

/// `r` must be a `Format` error naming `path` whose message contains `expect`.
pub fn refused<T>(r: whet::Result<T>, path: &str, expect: &str) -> Outcome {
    match r {
        Err(whet::Error::Format { path: p, message, .. }) => {
            assert_eq!(p, path, "the error names the file");
            assert!(message.contains(expect), "expected '{expect}' in: {message}");
            Outcome::Refused(format!("{p}: {message}"))
        }
        Err(other) => panic!("expected a Format error about '{expect}', got: {other}"),
        Ok(_) => panic!("accepted; expected a refusal about '{expect}'"),
    }
}
