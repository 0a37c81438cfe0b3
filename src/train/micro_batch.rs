//! Batches that do not fit the device: the driver runs them as micro-batches with gradient
//! accumulation instead of failing.
//!
//! A tensor past the adapter's binding limit is refused with [`Error::BufferTooBig`] before
//! any GPU call (lavapipe allows 128 MiB per binding; EfficientNet-Lite0's first expanded
//! activation for a 224² batch of 32 is 32·96·112·112 f32 = 154 MB, so lavapipe runs that
//! batch as 2 micro-batches of 16), and running out of memory is [`Error::OutOfMemory`]. Either way the step's gradients so far are
//! discarded and the step is run again with smaller micro-batches, estimated from the failing
//! allocation (bytes over limit) or halved, and balanced so the batch splits evenly. The size
//! that works is kept for the rest of the run, and one warning says so.
//!
//! Without batch norm the result is the one explicit `grad_accum` gives: each micro-batch's
//! loss is weighted by its share of the step, and micro-batch `m` of a step draws the dropout
//! seed `m` would draw under `grad_accum` (a test checks bitwise equality). With batch norm
//! each micro-batch is normalised with its own statistics and updates the running statistics
//! once, so a split batch of 32 behaves like 4 batches of 8, not one of 32. Running statistics
//! that a failed first attempt updated are restored before the retry; set
//! `split_batches = false` to get [`Error::BatchTooBig`], naming the largest batch that fits,
//! instead.

use crate::error::{Error, Result};
use crate::nn::{Params, Slot};

/// Whether `e` says a micro-batch is too big for the device, so a smaller one may work.
pub(crate) fn does_not_fit(e: &Error) -> bool {
    matches!(e, Error::BufferTooBig { .. } | Error::OutOfMemory { .. })
}

/// The micro-batch size in use and how it was found.
#[derive(Debug, Default)]
pub(crate) struct Splitter {
    /// Items per micro-batch once a batch did not fit; `None`: the configured batch size.
    size: Option<usize>,
    /// The first failure at the configured size, kept for the notice and the error.
    cause: Option<Error>,
    /// A step has run at the current size (so parameters' buffers need no snapshot).
    proven: bool,
}

impl Splitter {
    /// Items per micro-batch for the configured `batch` size.
    pub fn size(&self, batch: usize) -> usize {
        self.size.map_or(batch, |s| s.min(batch)).max(1)
    }

    /// Items per micro-batch when batches of `batch` are being split.
    pub fn split_size(&self, batch: usize) -> Option<usize> {
        self.size.filter(|&s| s < batch)
    }

    /// Whether no step has run at the current size yet.
    pub fn on_probation(&self) -> bool {
        !self.proven
    }

    /// `err` came from a step at `size`: the size to try next, or the error to give up with
    /// when even one item does not fit.
    pub fn shrink(&mut self, batch: usize, size: usize, err: Error) -> Result<()> {
        if size <= 1 {
            return Err(Error::BatchTooBig { batch, fits: None, source: Box::new(err) });
        }
        let estimate = match &err {
            // Activations grow with the batch: scale the size by limit / bytes.
            Error::BufferTooBig { bytes, limit, .. } if *bytes > 0 => {
                (size as u128 * *limit as u128 / *bytes as u128) as usize
            }
            _ => size / 2,
        };
        let estimate = if estimate == 0 || estimate >= size { size / 2 } else { estimate }.max(1);
        // Balance: the fewest micro-batches of at most `estimate`, as even as possible.
        let parts = batch.div_ceil(estimate);
        self.size = Some(batch.div_ceil(parts));
        self.proven = false;
        log::debug!("micro-batch of {size} does not fit ({err}); trying {}", batch.div_ceil(parts));
        self.cause.get_or_insert(err);
        Ok(())
    }

    /// A step ran at `size` after a split: say so once per size, or (when splitting is off)
    /// return the error naming the size that fits.
    pub fn confirm(&mut self, batch: usize, size: usize, split: bool) -> Result<()> {
        let was_proven = std::mem::replace(&mut self.proven, true);
        if size >= batch {
            return Ok(());
        }
        if !split {
            let source = Box::new(self.cause.take().unwrap_or_else(|| Error::arg("driver", "no cause kept")));
            return Err(Error::BatchTooBig { batch, fits: Some(size), source });
        }
        if let (false, Some(cause)) = (was_proven, &self.cause) {
            log::warn!(
                "batch {batch} does not fit one dispatch on this adapter ({cause}): running it as {} \
                 micro-batches of {size} with accumulation",
                batch.div_ceil(size)
            );
        }
        Ok(())
    }
}

/// Host copies of a model's buffers (batch-norm running statistics), which a forward in
/// training mode updates in place: a step that failed part-way must not leave its updates.
pub(crate) struct Snapshot(Vec<(String, Vec<f32>)>);

impl Snapshot {
    /// The buffers of `params` (one readback; empty without buffers).
    pub fn take(params: &Params) -> Result<Snapshot> {
        let mut saved = Vec::new();
        for e in params.entries().iter().filter(|e| e.slot == Slot::Buffer) {
            saved.push((e.path.clone(), e.tensor.to_vec()?));
        }
        Ok(Snapshot(saved))
    }

    pub fn restore(&self, params: &mut Params) -> Result<()> {
        for (path, values) in &self.0 {
            params.assign(path, values)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn too_big(bytes: u64, limit: u64) -> Error {
        Error::BufferTooBig { what: "conv: f32 [..]".into(), bytes, limit, limit_name: "storage binding" }
    }

    #[test]
    fn sizes_follow_the_failing_allocation_and_split_evenly() {
        let mut s = Splitter::default();
        assert_eq!(s.size(32), 32);
        // 32 items need 4.2x the limit: at most 7 fit, so 5 micro-batches of ceil(32 / 5) = 7.
        s.shrink(32, 32, too_big(420, 100)).unwrap();
        assert_eq!(s.size(32), 7);
        // An out-of-memory error halves.
        let oom = Error::OutOfMemory { what: "x".into(), bytes: 1, in_use: 0, limit: None };
        s.shrink(32, 7, oom).unwrap();
        assert_eq!(s.size(32), 3);
        // Twice the limit at 8: 4 fit, 2 micro-batches of 4.
        let mut s = Splitter::default();
        s.shrink(8, 8, too_big(200, 100)).unwrap();
        assert_eq!(s.size(8), 4);
        // A size that does not shrink from the estimate halves instead.
        s.shrink(8, 4, too_big(100, 100)).unwrap();
        assert_eq!(s.size(8), 2);
    }

    #[test]
    fn one_item_that_does_not_fit_is_a_batch_error_without_a_size() {
        let mut s = Splitter::default();
        match s.shrink(4, 1, too_big(200, 100)) {
            Err(Error::BatchTooBig { batch: 4, fits: None, source }) => {
                assert!(matches!(*source, Error::BufferTooBig { .. }))
            }
            other => panic!("expected BatchTooBig, got {other:?}"),
        }
    }

    #[test]
    fn without_splitting_the_error_names_the_size_that_fits() {
        let mut s = Splitter::default();
        s.shrink(8, 8, too_big(400, 100)).unwrap();
        let err = s.confirm(8, s.size(8), false).unwrap_err();
        assert!(matches!(err, Error::BatchTooBig { batch: 8, fits: Some(2), .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("batch_size = 2") && msg.contains("grad_accum = 4"), "{msg}");
        // A batch that always fitted is no error.
        let mut s = Splitter::default();
        s.confirm(8, 8, false).unwrap();
    }
}
