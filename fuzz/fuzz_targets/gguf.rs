//! Fuzz target `gguf`: the bytes go through `whet::fuzzing`'s entry point of the same name,
//! which `tests/fuzz_regressions.rs` also replays.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // libfuzzer-sys aborts on every panic, even one whet catches on purpose (the tokenizers
    // crate and the image decoders run under catch_unwind); a panic that escapes whet still
    // aborts, through fuzz_target's own catch_unwind.
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| drop(std::panic::take_hook()));
    let _ = (whet::fuzzing::entry("gguf").expect("a known target"))(data);
});
