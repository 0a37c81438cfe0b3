//! Check T1 for real: `whet train` killed with SIGKILL at 30 random moments (a checkpoint after
//! every step, so many kills land inside a save) resumes every time, and its final model is
//! bit for bit the uninterrupted run's.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

const KILLS: usize = 30;

fn whet() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_whet"));
    c.env("XDG_RUNTIME_DIR", std::env::temp_dir());
    c
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn recipe(dir: &Path, tables: &str) -> std::path::PathBuf {
    let p = dir.join("lm.toml");
    let text = format!(
        "{tables}\n[train]\nepochs = 100\nmax_steps = 120\nbatch_size = 4\nlr = 1e-3\n\
         checkpoint_every = 1\neval_every = 10\n[output]\ndir = \"run\"\n"
    );
    std::fs::write(&p, text).unwrap();
    p
}

/// Data rows in `log.csv` (0 before the first step).
fn logged_steps(run: &Path) -> usize {
    std::fs::read_to_string(run.join("log.csv")).map(|s| s.lines().count().saturating_sub(1)).unwrap_or(0)
}

/// Leftovers of an interrupted save (temporary directories or files).
fn mid_save(run: &Path) -> bool {
    std::fs::read_dir(run.join("checkpoints"))
        .map(|rd| rd.flatten().any(|e| e.file_name().to_string_lossy().starts_with(".tmp-")))
        .unwrap_or(false)
}

#[test]
fn thirty_sigkills_resume_every_time_to_the_same_bits() {
    let Some((_g, _e)) = common::gpu("train_sigkill", "thirty_sigkills") else { return };
    let straight = tempfile::tempdir().unwrap();
    let Some(tables) = common::gpt2_corpus("train_sigkill", straight.path()) else { return };
    let killed = tempfile::tempdir().unwrap();
    common::gpt2_corpus("train_sigkill", killed.path());

    // The uninterrupted run, timed to place the kills: startup until the first logged step,
    // then the pace of steps (each with its checkpoint).
    let t0 = Instant::now();
    let mut child = whet().args(["train", "--quiet"]).arg(recipe(straight.path(), &tables)).spawn().unwrap();
    let run = straight.path().join("run");
    while logged_steps(&run) == 0 && t0.elapsed() < Duration::from_secs(300) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let startup = t0.elapsed();
    assert!(child.wait().unwrap().success(), "the straight run failed");
    let per_step = (t0.elapsed() - startup).div_f64(120.0);
    let reference = std::fs::read(run.join("model/model.safetensors")).unwrap();

    // Each life is killed a few steps past where the last one stopped, counted in log rows
    // rather than guessed from the straight run's timing: a resumed process starts faster (no
    // untuned evaluation) and a faster host runs more steps in the same time, so a wall-clock
    // placement can let the run finish before the 30th kill. A third of the kills land in the
    // startup (before any step), the rest up to one step after the chosen row, often mid-save.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x5eed);
    let r = recipe(killed.path(), &tables);
    let run = killed.path().join("run");
    let (mut kills, mut during_save, mut finished_early) = (0, 0, false);
    while kills < KILLS {
        let before = logged_steps(&run);
        let mut child = whet().args(["train", "--quiet"]).arg(&r).stdout(Stdio::null()).spawn().unwrap();
        let rows: usize = rng.random_range(0..3);
        if rows == 0 {
            std::thread::sleep(startup.mul_f64(rng.random_range(0.3..1.0)));
        } else {
            let deadline = Instant::now() + startup * 3 + per_step * (rows as u32 + 2);
            while logged_steps(&run) < before + rows && Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            std::thread::sleep(per_step.mul_f64(rng.random_range(0.0..1.0)));
        }
        if child.try_wait().unwrap().is_some() {
            finished_early = true;
            break;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        during_save += usize::from(mid_save(&run));
        // Whatever the moment, what is on disk still loads (or nothing was saved yet).
        if let Err(e) = whet::train::checkpoint::load_latest(&run) {
            panic!("after kill {kills} (step {before}+): {e}");
        }
    }
    let reached = logged_steps(&run);
    let o = whet().args(["train", "--quiet"]).arg(&r).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let survived = std::fs::read(run.join("model/model.safetensors")).unwrap();
    eprintln!(
        "SIGKILL: {kills}/{KILLS} kills survived ({during_save} left a save half-written), the last at \
         step {reached} of 120; startup {startup:.1?}, {per_step:.2?} a step"
    );
    assert!(!finished_early, "the run finished before {KILLS} kills: place them earlier");
    assert!(survived == reference, "the killed-and-resumed run's model differs from the straight run's");
}
