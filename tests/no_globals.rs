//! Check C2: using the library (an engine, weights read, a fine-tuning run through the driver)
//! leaves the process's global state alone: no logger installed, the panic hook the
//! application set still in place, no handler for SIGINT or SIGTERM. Each probe is shown able
//! to fail by doing, at the end, what the library must not do. One test: these are globals.

#[allow(dead_code)]
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use whet::run::{self, Recipe, RunOptions};
use whet::train::stop::StopFlag;

/// Panics seen by the application's own hook.
static HOOK_CALLS: AtomicUsize = AtomicUsize::new(0);

struct Quiet;

impl log::Log for Quiet {
    fn enabled(&self, _: &log::Metadata) -> bool {
        false
    }
    fn log(&self, _: &log::Record) {}
    fn flush(&self) {}
}

static QUIET: Quiet = Quiet;

const PROBE: &str = "no_globals: probe panic (expected)";

/// Whether the panic hook installed at the start still runs on a panic.
fn sentinel_hook_runs() -> bool {
    let before = HOOK_CALLS.load(Ordering::SeqCst);
    let _ = std::panic::catch_unwind(|| std::panic::panic_any(PROBE));
    HOOK_CALLS.load(Ordering::SeqCst) > before
}

/// The current disposition of `sig`: SIG_DFL, SIG_IGN or a handler's address. Compared before
/// and after rather than with SIG_DFL, because a process started in the background by a
/// non-interactive shell (CI runners, `nohup … &`) inherits SIGINT ignored.
fn disposition(sig: libc::c_int) -> libc::sighandler_t {
    // SAFETY: a null new action only reads the current one into `old`.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(sig, std::ptr::null(), &mut old), 0);
        old.sa_sigaction
    }
}

/// Engine, weights, and a one-epoch run of the tiny GPT-2 through the driver (with a
/// parameter group that matches nothing, so the library does emit a warning).
fn use_the_library() {
    let engine = match whet::Engine::new(Default::default()) {
        Ok(e) => e,
        Err(e) => {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "!!!!!!!! no_globals: NO GPU ADAPTER ({e}), RUN SKIPPED !!!!!!!!"
            );
            return;
        }
    };
    let tmp = tempfile::tempdir().unwrap();
    let Some(tables) = common::gpt2_corpus("no_globals", tmp.path()) else { return };
    let weights = common::fixtures::fixtures_dir().join("gpt2_tiny/model.safetensors");
    let src = whet::weights::open(&weights).unwrap();
    let first = src.tensors()[0].name.clone();
    assert!(!src.read_f32(&first).unwrap().0.is_empty());

    let path = tmp.path().join("r.toml");
    std::fs::write(
        &path,
        format!(
            "{tables}[train]\nepochs = 1\nmax_steps = 2\nbatch_size = 4\nlr = 1e-3\n\
             [[train.groups]]\nselect = \"no_such.*\"\nlr = 1e-4\n[output]\ndir = \"run\"\n"
        ),
    )
    .unwrap();
    let recipe = Recipe::load(&path).unwrap();
    let out =
        run::train(&engine, &recipe, &StopFlag::new(), RunOptions { baseline: true, ..Default::default() })
            .unwrap();
    assert_eq!(out.summary.steps, 2);
}

#[test]
fn the_library_installs_no_logger_panic_hook_or_signal_handler() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        HOOK_CALLS.fetch_add(1, Ordering::SeqCst);
        // The probes' own panics are expected; any other is reported as usual.
        if info.payload().downcast_ref::<&str>() != Some(&PROBE) {
            previous(info);
        }
    }));
    assert!(sentinel_hook_runs());
    let signals = [libc::SIGINT, libc::SIGTERM];
    let before: Vec<_> = signals.iter().map(|&s| disposition(s)).collect();

    use_the_library();

    assert!(sentinel_hook_runs(), "the library replaced the application's panic hook");
    for (&sig, &was) in signals.iter().zip(&before) {
        assert_eq!(disposition(sig), was, "the library changed the disposition of signal {sig}");
    }
    assert!(log::set_logger(&QUIET).is_ok(), "the library installed a global logger");

    // The probes can fail: each sees what the library must not do.
    assert!(log::set_logger(&QUIET).is_err());
    StopFlag::new().install_signal_handlers().unwrap();
    assert!(signals.iter().zip(&before).all(|(&s, &was)| disposition(s) != was));
    std::panic::set_hook(Box::new(|_| {}));
    assert!(!sentinel_hook_runs());
    let _ = std::panic::take_hook();
}
