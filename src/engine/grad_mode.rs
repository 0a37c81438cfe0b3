//! Gradient recording on and off, per thread, as PyTorch's grad mode.

use super::Engine;

impl Engine {
    /// While the returned guard lives, ops on this thread record no autodiff nodes. The mode
    /// is per thread (as PyTorch's grad mode), so a backward pass or an evaluation on one thread
    /// never switches recording off for a training step on another thread.
    pub fn no_grad(&self) -> NoGradGuard {
        NO_GRAD_DEPTH.with(|d| d.set(d.get() + 1));
        NoGradGuard { _not_send: std::marker::PhantomData }
    }

    /// While the returned guard lives, ops on this thread record again, even inside a
    /// `no_grad` scope: a checkpointed block recomputed during backward (`graph::checkpoint`).
    pub fn enable_grad(&self) -> EnableGradGuard {
        let saved = NO_GRAD_DEPTH.with(|d| d.replace(0));
        EnableGradGuard { saved, _not_send: std::marker::PhantomData }
    }

    /// False inside a [`Engine::no_grad`] scope on this thread.
    pub fn grad_enabled(&self) -> bool {
        NO_GRAD_DEPTH.with(|d| d.get() == 0)
    }
}

thread_local! {
    /// Depth of nested `no_grad` scopes on this thread.
    static NO_GRAD_DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Restores gradient recording when dropped (on the thread that made it).
pub struct NoGradGuard {
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for NoGradGuard {
    fn drop(&mut self) {
        NO_GRAD_DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

/// Restores the `no_grad` depth it replaced when dropped.
pub struct EnableGradGuard {
    saved: usize,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for EnableGradGuard {
    fn drop(&mut self) {
        NO_GRAD_DEPTH.with(|d| d.set(self.saved));
    }
}
