//! The driver's progress on stderr, when asked for (`DriverConfig::progress`): indicatif's bar
//! on a terminal (the `progress` feature), and otherwise a plain line every
//! [`LINE_EVERY`] and at the end, so CI logs and piped output get a readable record instead of
//! nothing or a screen of redraws. Without `progress` there is no bar to compile, only lines.

use std::cell::Cell;
use std::io::Write;
use std::time::{Duration, Instant};

/// How often a plain progress line is written.
pub const LINE_EVERY: Duration = Duration::from_secs(30);

pub enum StepBar {
    Hidden,
    #[cfg(feature = "progress")]
    Bar(indicatif::ProgressBar),
    Lines(Lines),
}

/// Plain lines: where the run started (for the rate) and when the last line went out.
pub struct Lines {
    total: u64,
    from: u64,
    start: Instant,
    last: Cell<Instant>,
}

impl StepBar {
    /// Progress over `total` steps standing at `at`; nothing unless `on`.
    pub fn new(on: bool, total: u64, at: u64) -> StepBar {
        if !on {
            return StepBar::Hidden;
        }
        #[cfg(feature = "progress")]
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            return StepBar::Bar(bar(total, at));
        }
        let now = Instant::now();
        StepBar::Lines(Lines { total, from: at, start: now, last: Cell::new(now) })
    }

    /// Moves to `step`; the message is formatted only when something is shown.
    pub fn step(&self, step: u64, message: impl FnOnce() -> String) {
        match self {
            StepBar::Hidden => {}
            #[cfg(feature = "progress")]
            StepBar::Bar(b) => {
                b.set_position(step);
                b.set_message(message());
            }
            StepBar::Lines(l) => {
                let now = Instant::now();
                if now.duration_since(l.last.get()) >= LINE_EVERY || step >= l.total {
                    l.last.set(now);
                    let _ = writeln!(std::io::stderr(), "{}", l.line(step, &message()));
                }
            }
        }
    }

    /// Leaves a bar where it is (a failed run).
    pub fn abandon(&self) {
        #[cfg(feature = "progress")]
        if let StepBar::Bar(b) = self {
            b.abandon();
        }
    }

    pub fn finish(&self) {
        #[cfg(feature = "progress")]
        if let StepBar::Bar(b) = self {
            b.finish_and_clear();
        }
    }
}

impl Lines {
    /// "step 120/400 (30%) · loss 0.4123 lr 1.00e-4 · 2m 10s elapsed, ETA 5m 03s".
    fn line(&self, step: u64, message: &str) -> String {
        let elapsed = self.start.elapsed();
        let done = step.saturating_sub(self.from);
        let eta = match done {
            0 => "ETA unknown".to_string(),
            d => format!("ETA {}", clock(elapsed.mul_f64(self.total.saturating_sub(step) as f64 / d as f64))),
        };
        let pct = (step * 100).checked_div(self.total).unwrap_or(100);
        format!("step {step}/{} ({pct}%) · {message} · {} elapsed, {eta}", self.total, clock(elapsed))
    }
}

/// 3h 04m, 5m 03s, 12s.
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m {s:02}s"),
        (h, m, _) => format!("{h}h {m:02}m"),
    }
}

#[cfg(feature = "progress")]
fn bar(total: u64, at: u64) -> indicatif::ProgressBar {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{bar:30.cyan/blue} {pos}/{len} steps [{elapsed_precise} < {eta_precise}] {msg}",
    ) {
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
    fn a_line_gives_position_share_message_and_an_eta_from_the_steps_done_here() {
        let start = Instant::now() - Duration::from_secs(100);
        let l = Lines { total: 400, from: 100, start, last: Cell::new(start) };
        let line = l.line(200, "loss 0.5");
        // 100 steps in ~100 s, 200 to go: ~200 s.
        assert!(line.starts_with("step 200/400 (50%) · loss 0.5 · 1m 4"), "{line}");
        assert!(line.contains("ETA 3m 2"), "{line}");
        let fresh = Lines { total: 10, from: 0, start: Instant::now(), last: Cell::new(Instant::now()) };
        assert!(fresh.line(0, "").ends_with("ETA unknown"));
    }
}
