//! The driver's progress bar on stderr: indicatif's with the `progress` feature (hidden when
//! stderr is not a terminal), and nothing at all without it, so an app that embeds whet and
//! shows its own progress does not compile indicatif.

#[cfg(feature = "progress")]
pub struct StepBar(indicatif::ProgressBar);

#[cfg(feature = "progress")]
impl StepBar {
    /// A bar over `total` steps standing at `at`; hidden unless `on`.
    pub fn new(on: bool, total: u64, at: u64) -> StepBar {
        use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
        if !on {
            return StepBar(ProgressBar::hidden());
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{bar:30.cyan/blue} {pos}/{len} steps [{elapsed_precise} < {eta_precise}] {msg}",
        ) {
            bar.set_style(style);
        }
        bar.set_position(at);
        StepBar(bar)
    }

    /// Moves to `step`; the message is formatted only when a bar is shown.
    pub fn step(&self, step: u64, message: impl FnOnce() -> String) {
        self.0.set_position(step);
        if !self.0.is_hidden() {
            self.0.set_message(message());
        }
    }

    /// Leaves the bar where it is (a failed run).
    pub fn abandon(&self) {
        self.0.abandon();
    }

    pub fn finish(&self) {
        self.0.finish_and_clear();
    }
}

#[cfg(not(feature = "progress"))]
pub struct StepBar;

#[cfg(not(feature = "progress"))]
impl StepBar {
    pub fn new(_on: bool, _total: u64, _at: u64) -> StepBar {
        StepBar
    }
    pub fn step(&self, _step: u64, _message: impl FnOnce() -> String) {}
    pub fn abandon(&self) {}
    pub fn finish(&self) {}
}
