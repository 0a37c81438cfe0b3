//! Progress on stderr wherever a user waits, when asked for: the driver's steps, the image
//! pre-scan, binding a large checkpoint, held-out evaluation, `whet compare`'s runs.
//!
//! On a terminal (with the `progress` feature) it is indicatif's bar; elsewhere it is a plain
//! line every [`LINE_EVERY`] and at the end, so CI logs and piped output get a readable record
//! instead of nothing or a screen of redraws. Without `progress` there is no bar to compile,
//! only lines. A [`Progress`] is `Sync`: the pre-scan's decoder threads advance one counter.

use std::cell::Cell;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a plain progress line is written.
pub const LINE_EVERY: Duration = Duration::from_secs(30);

/// A count of `total` things (steps, images, tensors, runs) moving towards the end.
pub enum Progress {
    Hidden,
    #[cfg(feature = "progress")]
    Bar(indicatif::ProgressBar),
    Lines(Lines),
}

/// Plain lines: what is counted, where the count started (for the rate) and when the last
/// line went out.
pub struct Lines {
    unit: &'static str,
    total: u64,
    from: u64,
    pos: AtomicU64,
    start: Instant,
    last: Mutex<Instant>,
}

impl Progress {
    /// Progress over `total` `unit`s ("step", "image", "tensor") standing at `at`; nothing
    /// unless `on`.
    pub fn new(on: bool, unit: &'static str, total: u64, at: u64) -> Progress {
        if !on {
            return Progress::Hidden;
        }
        #[cfg(feature = "progress")]
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            return Progress::Bar(bar(unit, total, at));
        }
        Progress::Lines(Lines::new(unit, total, at))
    }

    /// Moves to `pos`; the message is formatted only when something is shown.
    pub fn step(&self, pos: u64, message: impl FnOnce() -> String) {
        match self {
            Progress::Hidden => {}
            #[cfg(feature = "progress")]
            Progress::Bar(b) => {
                b.set_position(pos);
                b.set_message(message());
            }
            Progress::Lines(l) => {
                l.pos.store(pos, Ordering::Relaxed);
                l.maybe_line(pos, message);
            }
        }
    }

    /// Replaces a bar's message (what is happening between two counts, e.g. an evaluation);
    /// plain lines wait for the next count.
    pub fn note(&self, message: &str) {
        #[cfg(feature = "progress")]
        if let Progress::Bar(b) = self {
            b.set_message(message.to_string());
        }
        let _ = message;
    }

    /// One more done (from any thread), without a message.
    pub fn inc(&self) {
        match self {
            Progress::Hidden => {}
            #[cfg(feature = "progress")]
            Progress::Bar(b) => b.inc(1),
            Progress::Lines(l) => {
                let pos = l.pos.fetch_add(1, Ordering::Relaxed) + 1;
                l.maybe_line(pos, String::new);
            }
        }
    }

    /// Leaves a bar where it is (a failed run).
    pub fn abandon(&self) {
        #[cfg(feature = "progress")]
        if let Progress::Bar(b) = self {
            b.abandon();
        }
    }

    /// Clears a bar; plain lines already wrote their last line when the count reached `total`.
    pub fn finish(&self) {
        #[cfg(feature = "progress")]
        if let Progress::Bar(b) = self {
            b.finish_and_clear();
        }
    }
}

impl Lines {
    fn new(unit: &'static str, total: u64, at: u64) -> Lines {
        let now = Instant::now();
        Lines { unit, total, from: at, pos: AtomicU64::new(at), start: now, last: Mutex::new(now) }
    }

    /// A line when [`LINE_EVERY`] has passed since the last one, and one when the count ends.
    fn maybe_line(&self, pos: u64, message: impl FnOnce() -> String) {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if now.duration_since(*last) >= LINE_EVERY || pos == self.total {
            *last = now;
            let _ = writeln!(std::io::stderr(), "{}", self.line(pos, &message()));
        }
    }

    /// "step 120/400 (30%) · loss 0.4123 lr 1.00e-4 · 2m 10s elapsed, ETA 5m 03s".
    fn line(&self, pos: u64, message: &str) -> String {
        let elapsed = self.start.elapsed();
        let done = pos.saturating_sub(self.from);
        let eta = match done {
            _ if pos >= self.total => "done".to_string(),
            0 => "ETA unknown".to_string(),
            d => format!("ETA {}", clock(elapsed.mul_f64(self.total.saturating_sub(pos) as f64 / d as f64))),
        };
        let pct = (pos * 100).checked_div(self.total).unwrap_or(100);
        let message = if message.is_empty() { String::new() } else { format!(" · {message}") };
        format!("{} {pos}/{} ({pct}%){message} · {} elapsed, {eta}", self.unit, self.total, clock(elapsed))
    }
}

/// A wait with no count to show (a held-out evaluation, a checkpoint being bound): a spinner
/// with the time spent on a terminal, else a line when it starts and one when it ends.
pub enum Phase {
    Hidden,
    #[cfg(feature = "progress")]
    Spinner(indicatif::ProgressBar),
    Lines(String, Instant),
}

impl Phase {
    /// `what` ("evaluating baseline (test)") begins; nothing unless `on`.
    pub fn begin(on: bool, what: String) -> Phase {
        if !on {
            return Phase::Hidden;
        }
        #[cfg(feature = "progress")]
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            let s = indicatif::ProgressBar::new_spinner();
            if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg} [{elapsed}]") {
                s.set_style(style);
            }
            s.set_message(what);
            s.enable_steady_tick(Duration::from_millis(200));
            return Phase::Spinner(s);
        }
        let _ = writeln!(std::io::stderr(), "{what} …");
        Phase::Lines(what, Instant::now())
    }

    /// It ended (the line says how long it took).
    pub fn end(self) {
        match self {
            Phase::Hidden => {}
            #[cfg(feature = "progress")]
            Phase::Spinner(s) => s.finish_and_clear(),
            Phase::Lines(what, t0) => {
                let _ = writeln!(std::io::stderr(), "{what}: done in {:.1?}", t0.elapsed());
            }
        }
    }
}

/// Announces each of a known number of long stages (`whet compare`'s runs) with a line of its
/// own: "run 7/40 · full/seed-1 · 2h 10m elapsed, ETA 3h 05m". A line and not a bar, on a
/// terminal too, because each run draws its own step bar beneath it.
pub struct Stages {
    on: bool,
    unit: &'static str,
    total: Cell<u64>,
    started: Cell<u64>,
    start: Instant,
}

impl Stages {
    /// `total` stages of `unit` ("run"); silent unless `on`.
    pub fn new(on: bool, unit: &'static str, total: u64) -> Stages {
        Stages { on, unit, total: Cell::new(total), started: Cell::new(0), start: Instant::now() }
    }

    /// `n` more stages became known (a sweep's grid, once the first run sized it).
    pub fn grow(&self, n: u64) {
        self.total.set(self.total.get() + n);
    }

    /// Stages started so far.
    pub fn started(&self) -> u64 {
        self.started.get()
    }

    /// The next stage begins: its line (when on), with an ETA from the stages finished so far.
    pub fn begin(&self, what: &str) {
        let done = self.started.get();
        self.started.set(done + 1);
        self.total.set(self.total.get().max(done + 1));
        if self.on {
            let _ = writeln!(std::io::stderr(), "{}", self.line(done, what));
        }
    }

    fn line(&self, done: u64, what: &str) -> String {
        let (elapsed, total) = (self.start.elapsed(), self.total.get());
        let eta = match done {
            0 => "ETA after the first".to_string(),
            d => format!("ETA {}", clock(elapsed.mul_f64(total.saturating_sub(d) as f64 / d as f64))),
        };
        format!("{} {}/{total} · {what} · {} elapsed, {eta}", self.unit, done + 1, clock(elapsed))
    }
}

/// 3h 04m, 5m 03s, 12s.
pub fn clock(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m {s:02}s"),
        (h, m, _) => format!("{h}h {m:02}m"),
    }
}

#[cfg(feature = "progress")]
fn bar(unit: &str, total: u64, at: u64) -> indicatif::ProgressBar {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let template = format!(
        "{{bar:30.cyan/blue}} {{pos}}/{{len}} {unit}s [{{elapsed_precise}} < {{eta_precise}}] {{msg}}"
    );
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar.set_position(at);
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_reads_like_a_person_would_write_it() {
        assert_eq!(clock(Duration::from_secs(12)), "12s");
        assert_eq!(clock(Duration::from_secs(303)), "5m 03s");
        assert_eq!(clock(Duration::from_secs(3 * 3600 + 4 * 60 + 59)), "3h 04m");
    }

    #[test]
    fn a_line_gives_position_share_message_and_an_eta_from_the_work_done_here() {
        let mut l = Lines::new("step", 400, 100);
        l.start = Instant::now() - Duration::from_secs(100);
        let line = l.line(200, "loss 0.5");
        // 100 steps in ~100 s, 200 to go: ~200 s.
        assert!(line.starts_with("step 200/400 (50%) · loss 0.5 · 1m 4"), "{line}");
        assert!(line.contains("ETA 3m 2"), "{line}");
        let fresh = Lines::new("image", 10, 0);
        assert!(fresh.line(0, "").ends_with("ETA unknown"));
        assert!(fresh.line(3, "").starts_with("image 3/10 (30%) · 0s elapsed"), "{}", fresh.line(3, ""));
        assert!(fresh.line(10, "").ends_with("elapsed, done"), "{}", fresh.line(10, ""));
    }

    #[test]
    fn stages_count_from_one_and_estimate_from_the_finished_ones() {
        let mut s = Stages::new(false, "run", 4);
        assert!(s.line(0, "full/seed-0").starts_with("run 1/4 · full/seed-0 · 0s elapsed, ETA after"));
        s.begin("a");
        s.begin("b");
        s.start = Instant::now() - Duration::from_secs(60);
        // Two runs done in ~60 s, two to go: ~60 s.
        let line = s.line(2, "c");
        assert!(line.starts_with("run 3/4 · c · 1m 00s elapsed, ETA 1m 0"), "{line}");
        s.grow(2);
        assert!(s.line(2, "c").starts_with("run 3/6"), "{}", s.line(2, "c"));
        // More stages than announced never reads "7/6".
        (0..5).for_each(|_| s.begin("x"));
        assert_eq!((s.started(), s.total.get()), (7, 7));
    }

    #[test]
    fn threads_advance_one_count() {
        let p = Progress::Lines(Lines::new("image", 1000, 0));
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| (0..250).for_each(|_| p.inc()));
            }
        });
        let Progress::Lines(l) = &p else { unreachable!() };
        assert_eq!(l.pos.load(Ordering::Relaxed), 1000);
    }
}
