//! What the driver tells a host program while it trains: one [`Event`] per optimizer step
//! (step, total, epoch, loss, learning rate, ETA), one per evaluation (its metrics) and one at
//! the end, delivered to an [`OnEvent`] callback the host sets in
//! [`DriverConfig::on_event`](super::DriverConfig::on_event) or
//! [`RunOptions::on_event`](crate::run::RunOptions::on_event).
//!
//! The events carry only what the driver has on the host already (the step's one
//! `[loss, grad norm]` readback and the evaluation's metrics), so listening costs no extra GPU
//! round trip. The callback runs on the training thread between steps: a host that draws a UI
//! elsewhere sends the event over a channel and returns. To stop the run from there (or from
//! anywhere else), call [`StopFlag::cancel`](super::StopFlag::cancel): the driver finishes the
//! step, saves a checkpoint and returns.

use std::sync::Arc;

use super::driver::{Metrics, StopReason};

/// Something the driver did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// An optimizer step ended (or was skipped for a non-finite loss or gradient norm).
    Step(StepEvent),
    /// The task was evaluated after `step` optimizer steps.
    Evaluated { step: u64, epoch: usize, metrics: Metrics },
    /// The run ended normally (an error ends it without this event: the `Result` says why).
    Finished { steps: u64, epochs: usize, stopped: StopReason },
}

/// One optimizer step.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StepEvent {
    /// Optimizer steps done so far (resumed ones included); a skipped step does not count.
    pub step: u64,
    /// Steps the whole run will take (epochs × steps per epoch, capped by `max_steps`).
    pub total: u64,
    /// The epoch this step belonged to (0-based).
    pub epoch: usize,
    /// The step's mean training loss; `None` when it was not finite (the step was skipped).
    pub loss: Option<f32>,
    pub grad_norm: Option<f32>,
    /// Learning rate the step used.
    pub lr: f64,
    /// The step was dropped for a non-finite loss or gradient norm.
    pub skipped: bool,
    /// Seconds of training so far, across resumes.
    pub elapsed_secs: f64,
    /// Seconds left at the pace of the steps taken since this run (or resume) began; `None`
    /// before the first one.
    pub eta_secs: Option<f64>,
}

/// The host's callback. Cloning shares it.
#[derive(Clone)]
pub struct OnEvent(Arc<dyn Fn(&Event) + Send + Sync>);

impl OnEvent {
    pub fn new(f: impl Fn(&Event) + Send + Sync + 'static) -> OnEvent {
        OnEvent(Arc::new(f))
    }

    /// Hand `event` to the callback.
    pub fn emit(&self, event: &Event) {
        (self.0)(event)
    }
}

impl std::fmt::Debug for OnEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnEvent(..)")
    }
}

/// Seconds left for `remaining` steps when `done` steps took `secs`.
pub(crate) fn eta(secs: f64, done: u64, remaining: u64) -> Option<f64> {
    (done > 0).then(|| secs * remaining as f64 / done as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_follows_the_pace_of_the_steps_done() {
        assert_eq!(eta(10.0, 0, 5), None);
        assert_eq!(eta(10.0, 5, 10), Some(20.0));
        assert_eq!(eta(10.0, 5, 0), Some(0.0));
    }

    #[test]
    fn the_callback_sees_every_event_and_clones_share_it() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let s = seen.clone();
        let cb = OnEvent::new(move |e| s.lock().unwrap().push(e.clone()));
        let copy = cb.clone();
        cb.emit(&Event::Finished { steps: 3, epochs: 1, stopped: StopReason::Finished });
        copy.emit(&Event::Evaluated { step: 3, epoch: 1, metrics: Metrics::new() });
        assert_eq!(seen.lock().unwrap().len(), 2);
        assert_eq!(format!("{cb:?}"), "OnEvent(..)");
    }
}
