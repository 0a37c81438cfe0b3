//! Which parameters train in which epoch: full fine-tuning, linear probing, LP-FT and gradual
//! unfreezing (ULMFiT). A plan only flips trainable flags; the optimizer notices the change,
//! gives newly unfrozen parameters fresh state and (with `OptimConfig::rejoin_warmup`) a
//! warm-up of their own.

use crate::error::{Error, Result};
use crate::nn::{Params, Select};

/// A freezing schedule.
#[derive(Debug, Clone)]
pub enum Plan {
    /// Everything trains from the first step.
    Full,
    /// Only the head trains, always.
    LinearProbe { head: Select },
    /// Kumar et al. 2022: the head alone for `probe_epochs`, then everything.
    LpFt { head: Select, probe_epochs: usize },
    /// Howard & Ruder 2018: the head first, then one more group from the top every `every`
    /// epochs. `groups` are listed top (nearest the head) to bottom.
    Gradual { head: Select, groups: Vec<Select>, every: usize },
}

impl Plan {
    /// Gradual unfreezing by model depth: the head, then depth D−1, D−2, … one per step of
    /// `every` epochs (depths come from the model's parameter paths).
    pub fn gradual_by_depth(params: &Params, every: usize) -> Plan {
        let d = params.max_depth();
        Plan::Gradual {
            head: Select::Depth(d..=d),
            groups: (0..d).rev().map(|k| Select::Depth(k..=k)).collect(),
            // 0 is refused by `apply`, not silently changed.
            every,
        }
    }

    /// Set the trainable flags for `epoch` (0-based); returns the paths whose flag changed.
    pub fn apply(&self, params: &mut Params, epoch: usize) -> Result<Vec<String>> {
        let before: Vec<bool> = params.entries().iter().map(|e| e.trainable()).collect();
        let all = Select::All;
        match self {
            Plan::Full => {
                params.unfreeze(&all)?;
            }
            Plan::LinearProbe { head } => probe(params, head)?,
            Plan::LpFt { head, probe_epochs } => {
                if epoch < *probe_epochs {
                    probe(params, head)?
                } else {
                    params.unfreeze(&all)?;
                }
            }
            Plan::Gradual { head, groups, every } => {
                if *every == 0 {
                    return Err(Error::arg("unfreeze", "gradual unfreezing needs every >= 1"));
                }
                probe(params, head)?;
                let open = (epoch / every).min(groups.len());
                for g in &groups[..open] {
                    params.unfreeze(g)?;
                }
            }
        }
        Ok(params
            .entries()
            .iter()
            .zip(before)
            .filter(|(e, b)| e.trainable() != *b)
            .map(|(e, _)| e.path.clone())
            .collect())
    }
}

fn probe(params: &mut Params, head: &Select) -> Result<()> {
    params.unfreeze(head)?;
    params.freeze(&Select::Not(Box::new(head.clone())))?;
    Ok(())
}
