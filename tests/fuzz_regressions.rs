//! Check F2's regression half: every input the fuzzers found to crash, hang or blow up memory
//! (`fuzz/regressions/<target>/`, minimized), and every seed (`fuzz/seeds/<target>/`), replayed
//! through the same entry point the fuzz target calls (`whet::fuzzing`), on stable. Each must
//! end in `Ok` or a typed error: a panic fails the test, a hang never finishes it.
//!
//! `cargo test --test fuzz_regressions -- --ignored write_seeds` regenerates the seeds.

use std::path::{Path, PathBuf};

use whet::fuzzing;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Files under `fuzz/<kind>/<target>/`, sorted, with their target's name.
fn inputs(kind: &str) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for (target, _) in fuzzing::TARGETS {
        let dir = fuzz_dir().join(kind).join(target);
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            if e.path().is_file() {
                out.push((target.to_string(), e.path()));
            }
        }
    }
    out.sort();
    out
}

fn replay(kind: &str) -> usize {
    let all = inputs(kind);
    for (target, path) in &all {
        let data = std::fs::read(path).unwrap();
        let entry = fuzzing::entry(target).unwrap();
        let r = std::panic::catch_unwind(|| entry(&data));
        let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        match r {
            Ok(Ok(())) => eprintln!("{kind}/{target}/{name}: ok"),
            Ok(Err(e)) => eprintln!("{kind}/{target}/{name}: typed error: {e}"),
            Err(_) => panic!("{}: the {target} entry point panicked", path.display()),
        }
    }
    all.len()
}

#[test]
fn fuzz_regressions_end_in_ok_or_a_typed_error() {
    let n = replay("regressions");
    eprintln!("{n} regression inputs replayed");
}

#[test]
fn fuzz_seeds_end_in_ok_or_a_typed_error() {
    let n = replay("seeds");
    // Every target has seeds: an empty seed folder would make its fuzzing start blind.
    for (target, _) in fuzzing::TARGETS {
        let dir = fuzz_dir().join("seeds").join(target);
        let count = std::fs::read_dir(&dir).map(|rd| rd.count()).unwrap_or(0);
        assert!(count > 0, "no seeds in {}", dir.display());
    }
    eprintln!("{n} seeds replayed");
}

#[test]
fn every_fuzz_target_has_a_source_file() {
    for (target, _) in fuzzing::TARGETS {
        let src = fuzz_dir().join("fuzz_targets").join(format!("{target}.rs"));
        let text = std::fs::read_to_string(&src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
        assert!(text.contains(&format!("entry(\"{target}\")")), "{} calls another entry", src.display());
    }
}

mod fuzz_seeds;

/// Writes `fuzz/seeds/<target>/` from small valid files built here (see `fuzz_seeds/mod.rs`).
#[test]
#[ignore]
fn write_seeds() {
    for (target, name, bytes) in fuzz_seeds::all() {
        let dir = fuzz_dir().join("seeds").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}
