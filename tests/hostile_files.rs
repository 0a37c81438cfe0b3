//! Check F4: a crafted hostile file of each kind (pickles, GGUF, safetensors, tables, images,
//! tokenizers) is refused with a typed error or loaded, within bounded time and memory.
//!
//! Each case runs in a child process (this test binary, re-run on the `child` test with the
//! case's name) under an address-space limit (`ulimit -v`, a little over 2 GiB), so an
//! allocation past the bound aborts the child instead of passing; the child asserts the
//! outcome, and the parent asserts it exited cleanly and that its peak RSS (VmHWM) stayed under
//! 2 GiB. Wall time is printed, never asserted. The worst cases are built near 64 MiB, the
//! largest input the bound promises to handle; others are small files that describe enormous
//! structures (shared sub-dicts, stride-0 views, claimed counts).

mod hostile;

use std::io::Write;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use hostile::Outcome;

/// Peak resident memory a case may reach.
const MAX_RSS: u64 = 2 << 30;
/// Address space a child may reserve: the RSS bound plus the test harness's own mappings.
const MAX_VIRTUAL_KIB: u64 = (MAX_RSS + (768 << 20)) >> 10;
const CHILD_CASE: &str = "WHET_HOSTILE_CASE";

static DONE: AtomicUsize = AtomicUsize::new(0);
static REFUSED: AtomicUsize = AtomicUsize::new(0);

/// Printed outside libtest's capture, so `make test`'s log shows the bounds measured.
fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Run `name` in a child under the memory limit; check it and record the result.
fn case(name: &str) {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {MAX_VIRTUAL_KIB} && exec \"$0\" \"$@\""))
        .arg(exe)
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CHILD_CASE, name)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{name}: child failed ({}; an abort means an allocation past the {MAX_VIRTUAL_KIB} KiB limit)\n{stdout}\n{stderr}",
        out.status
    );
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("HOSTILE ").map(|(_, r)| r))
        .unwrap_or_else(|| panic!("{name}: no result line\n{stdout}\n{stderr}"));
    let mut f = line.splitn(4, ' ');
    let (refused, secs, hwm, what) = (f.next() == Some("refused"), f.next(), f.next(), f.next());
    let hwm: u64 = hwm.and_then(|h| h.parse().ok()).unwrap_or(u64::MAX);
    report(&format!(
        "hostile {name}: {} in {} s, peak RSS {} MiB: {}",
        if refused { "refused cleanly" } else { "loaded" },
        secs.unwrap_or("?"),
        hwm >> 20,
        what.unwrap_or("")
    ));
    assert!(hwm <= MAX_RSS, "{name}: peak RSS {hwm} bytes is over {MAX_RSS}");
    REFUSED.fetch_add(refused as usize, Ordering::Relaxed);
    if DONE.fetch_add(1, Ordering::Relaxed) + 1 == hostile::CASES.len() {
        report(&format!(
            "crafted inputs: {} tried, {} refused cleanly",
            hostile::CASES.len(),
            REFUSED.load(Ordering::Relaxed)
        ));
    }
}

/// The child side: run the case named in the environment (nothing when run as a plain test).
#[test]
fn child() {
    let Ok(name) = std::env::var(CHILD_CASE) else { return };
    let (_, run) = hostile::CASES.iter().find(|(n, _)| *n == name).expect("a known case");
    let t = std::time::Instant::now();
    let outcome = run();
    let secs = t.elapsed().as_secs_f64();
    let (verdict, what) = match &outcome {
        Outcome::Refused(e) => ("refused", e.chars().take(160).collect::<String>()),
        Outcome::Loaded(what) => ("loaded", what.clone()),
    };
    println!("HOSTILE {verdict} {secs:.2} {} {what}", hostile::peak_rss());
}

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        $(#[test] fn $name() { case(stringify!($name)); })*
        #[test]
        fn every_case_has_a_test() {
            let tests = [$(stringify!($name)),*];
            assert_eq!(tests.len(), hostile::CASES.len());
            for (n, _) in hostile::CASES {
                assert!(tests.contains(n), "case {n} has no test");
            }
        }
    };
}

cases!(
    pickle_billion_laughs,
    pickle_deep_tuples,
    pickle_mark_flood,
    pickle_memo_flood,
    pickle_empty_lists,
    pickle_dict_many_keys,
    pickle_persistent_id_copies,
    pickle_cycle,
    torch_expanded_view,
    gguf_u8_array,
    gguf_array_count_lie,
    gguf_many_keys,
    gguf_llama_1d_embedding,
    safetensors_long_shape,
    csv_wide_header,
    csv_quoted_fields,
    csv_many_labels,
    image_16384x1,
    image_strip_resize,
    tokenizer_huge_vocab,
);
