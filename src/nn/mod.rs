//! Building blocks of the model zoo: named parameters ([`Params`]), the checkpoint binder that
//! builds them ([`Binder`], with its one-piece [`BindingReport`]), initialisers and layers.
//!
//! Models own a [`Params`] store and their layers hold [`Pid`]s into it, so freezing, learning
//! rate groups and checkpoint export all work on one flat list of paths (`encoder.layer.3.…`)
//! and never need to walk a model's structure.

pub mod attention;
pub mod binder;
pub mod conv;
pub mod init;
pub mod linear;
pub mod lora;
pub mod params;
pub mod rope;
pub mod select;

pub use binder::{Binder, BindingReport, ParamGetter};
pub use init::Init;
pub use linear::Linear;
pub use params::{Entry, Lora, Origin, Params, Pid, Slot};
pub use select::{Matcher, Select};

/// How a forward pass runs: training (dropout on, batch statistics) or evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    /// Training behaviour: dropout active, BatchNorm on batch statistics.
    pub train: bool,
    /// Seed of this forward's dropout masks (each dropout site mixes in its own index).
    pub seed: u64,
    /// Keep dropout active inside frozen blocks while training (PyTorch's behaviour, the
    /// default); off, a frozen block runs deterministically, as a fixed feature extractor.
    pub dropout_in_frozen: bool,
    /// Where this forward's samples sit in the step's global batch: dropout masks are keyed by
    /// the global sample, so ranks and micro-batches draw what one whole batch would.
    pub keys: crate::ops::dropout::SampleKeys,
}

impl Mode {
    /// Evaluation: no dropout, running statistics.
    pub const EVAL: Mode = Mode {
        train: false,
        seed: 0,
        dropout_in_frozen: true,
        keys: crate::ops::dropout::SampleKeys { first_item: 0, items: 0 },
    };

    /// Training with dropout masks drawn from `seed`.
    pub fn train(seed: u64) -> Mode {
        Mode { train: true, seed, ..Mode::EVAL }
    }

    /// The same mode for `items` samples starting at global sample `first_item`.
    pub fn samples(self, first_item: u64, items: u64) -> Mode {
        Mode { keys: crate::ops::dropout::SampleKeys { first_item, items }, ..self }
    }

    /// The same mode without dropout in frozen blocks.
    pub fn frozen_deterministic(self) -> Mode {
        Mode { dropout_in_frozen: false, ..self }
    }

    /// The dropout seed of site `site` (a stable index per call site and layer).
    pub fn site_seed(&self, site: u64) -> u64 {
        // splitmix64 finaliser: neighbouring sites get unrelated seeds.
        let mut z = self.seed ^ site.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `x` with dropout `p` in training mode, unchanged in evaluation.
    pub fn dropout(&self, x: &crate::Tensor, p: f32, site: u64) -> crate::Result<crate::Tensor> {
        self.dropout_in(x, p, site, false)
    }

    /// Dropout at a site inside a block that is `frozen` (see `dropout_in_frozen`).
    pub fn dropout_in(
        &self,
        x: &crate::Tensor,
        p: f32,
        site: u64,
        frozen: bool,
    ) -> crate::Result<crate::Tensor> {
        if self.train && p > 0.0 && (self.dropout_in_frozen || !frozen) {
            crate::ops::dropout::dropout_keyed(x, p, self.site_seed(site), self.keys)
        } else {
            Ok(x.clone())
        }
    }
}
