//! The fine-tuning strategies `whet compare` runs: each one a named change to the recipe, all
//! built on full fine-tuning so that each differs from the reference in one respect.

use crate::models::registry::ModelKind;

use super::recipe::{EwcSection, LoraSection, LwfSection, Recipe};

/// A named change to the recipe.
pub struct Strategy {
    pub name: &'static str,
    pub description: &'static str,
    pub apply: fn(&mut Recipe),
    /// Whether it makes sense for this recipe (LwF and EWC need a `[source]` task, LoRA a
    /// transformer); the default matrix leaves out the rest.
    pub applies: fn(&Recipe) -> bool,
}

fn always(_: &Recipe) -> bool {
    true
}

fn has_source(r: &Recipe) -> bool {
    r.source.is_some()
}

/// The weights the LoRA strategy adapts for the recipe's model (`None`: LoRA does not apply).
fn lora_targets(r: &Recipe) -> Option<&'static str> {
    r.model.kind.parse::<ModelKind>().ok().and_then(|k| k.architecture().lora_targets)
}

fn has_lora_targets(r: &Recipe) -> bool {
    lora_targets(r).is_some()
}

/// Full fine-tuning, the base every other strategy changes one thing of.
pub(crate) fn full(r: &mut Recipe) {
    r.train.plan = "full".into();
    r.train.freeze.clear();
    r.train.lora = None;
    r.train.lwf = None;
    r.train.ewc = None;
    r.train.l2sp = None;
    r.train.layer_decay = None;
    r.train.discriminative = None;
}

/// The attention projections LoRA adapts, by architecture (query and value, as Hu et al.).
/// The reference every other strategy is tested against.
pub const REFERENCE: &str = "full fine-tune";

/// The strategies `whet compare` knows, by name.
pub fn strategies() -> Vec<Strategy> {
    vec![
        Strategy {
            name: REFERENCE,
            description: "every parameter trains (the recipe's own freezing removed)",
            apply: full,
            applies: always,
        },
        Strategy {
            name: "from scratch",
            description:
                "the same architecture and recipe with every weight drawn afresh: what pretraining is worth",
            apply: |r| {
                full(r);
                r.model.init = "scratch".into();
            },
            applies: always,
        },
        Strategy {
            name: "linear probe",
            description: "only the new head trains; the pretrained body is a fixed feature extractor",
            apply: |r| {
                full(r);
                r.train.plan = "linear-probe".into();
            },
            applies: always,
        },
        Strategy {
            name: "LP-FT",
            description:
                "the head alone for the first half of the epochs, then everything (Kumar et al. 2022)",
            apply: |r| {
                full(r);
                r.train.plan = "lp-ft".into();
                r.train.probe_epochs = (r.train.epochs / 2).max(1);
            },
            applies: always,
        },
        Strategy {
            name: "gradual unfreezing",
            description: "the head first, then one more depth from the top every epoch (ULMFiT)",
            apply: |r| {
                full(r);
                r.train.plan = "gradual".into();
                r.train.unfreeze_every = 1;
            },
            applies: always,
        },
        Strategy {
            name: "freeze lower half",
            description: "the embeddings / stem and the lower half of the blocks stay frozen",
            apply: |r| {
                full(r);
                r.train.freeze = freeze_below(LOWER_HALF);
            },
            applies: always,
        },
        Strategy {
            name: "layer-wise LR",
            description: "full fine-tuning with the learning rate decayed 0.8x per depth below the head",
            apply: |r| {
                full(r);
                r.train.layer_decay = Some(0.8);
            },
            applies: always,
        },
        Strategy {
            name: "L2-SP",
            description: "full fine-tuning pulled toward the pretrained weights (alpha 0.01, beta 0.001)",
            apply: |r| {
                full(r);
                r.train.l2sp = Some([0.01, 0.001]);
            },
            applies: always,
        },
        Strategy {
            name: "LwF",
            description:
                "full fine-tuning that keeps the source head's outputs on the new inputs (KL at T = 2)",
            apply: |r| {
                full(r);
                r.train.lwf = Some(LwfSection { weight: 1.0, temperature: 2.0 });
            },
            applies: has_source,
        },
        Strategy {
            name: "EWC",
            description:
                "full fine-tuning anchored by the source task's diagonal Fisher (lambda 1e4, 64 items)",
            apply: |r| {
                full(r);
                r.train.ewc = Some(EwcSection { lambda: 1e4, items: 64 });
            },
            applies: has_source,
        },
        Strategy {
            name: "LoRA",
            description: "rank-8 adapters on the attention query/value projections; the base stays frozen",
            apply: |r| {
                full(r);
                let targets = lora_targets(r).unwrap_or_default().to_string();
                r.train.lora = Some(LoraSection { rank: 8, alpha: 16.0, targets });
            },
            applies: has_lora_targets,
        },
        Strategy {
            name: "recipe",
            description: "the recipe exactly as written",
            apply: |_| {},
            applies: always,
        },
    ]
}

/// Depth levels `freeze lower half` freezes (0..=3): the embeddings and three of MiniLM's six
/// layers, or the stem and the first three stages of a ResNet.
const LOWER_HALF: usize = 4;

/// `depth` levels frozen from the bottom (0 = nothing), as a recipe `freeze` list.
pub fn freeze_below(depth: usize) -> Vec<String> {
    if depth == 0 {
        Vec::new()
    } else {
        vec![format!("depth:0-{}", depth - 1)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn recipe(kind: &str, source: bool) -> Recipe {
        let src = if source { "[source]\ntest = \"s.tsv\"\ntrain = \"t.tsv\"\n" } else { "" };
        let text = format!(
            "[model]\nkind = \"{kind}\"\npath = \"m\"\n[data]\nkind = \"text\"\ntrain = \"d.tsv\"\n\
             [train]\nfreeze = [\"depth:0-5\"]\nl2sp = [0.1, 0.1]\n{src}"
        );
        Recipe::parse(&text, Path::new("r.toml"), Path::new(".")).unwrap()
    }

    fn applied(name: &str, r: &Recipe) -> Recipe {
        let mut r = r.clone();
        (strategies().into_iter().find(|s| s.name == name).unwrap().apply)(&mut r);
        r
    }

    #[test]
    fn each_strategy_is_full_fine_tuning_with_one_change() {
        let r = recipe("bert", true);
        let full = applied(REFERENCE, &r);
        assert!(full.train.freeze.is_empty() && full.train.l2sp.is_none() && full.train.plan == "full");
        assert_eq!(applied("freeze lower half", &r).train.freeze, ["depth:0-3"]);
        assert_eq!(applied("from scratch", &r).model.init, "scratch");
        assert!(applied("LwF", &r).train.lwf.is_some() && applied("LwF", &r).train.ewc.is_none());
        assert_eq!(applied("EWC", &r).train.ewc.map(|e| e.items), Some(64));
        let lora = applied("LoRA", &r).train.lora.unwrap();
        assert_eq!((lora.rank, lora.targets.as_str()), (8, "*.attention.self.{query,value}.weight"));
        assert_eq!(applied("LP-FT", &r).train.probe_epochs, 1);
        assert_eq!(applied("recipe", &r).train.freeze, ["depth:0-5"]);
    }

    #[test]
    fn strategies_apply_only_where_they_make_sense() {
        let applies =
            |name: &str, r: &Recipe| (strategies().into_iter().find(|s| s.name == name).unwrap().applies)(r);
        assert!(!applies("LwF", &recipe("bert", false)) && applies("LwF", &recipe("bert", true)));
        assert!(!applies("EWC", &recipe("bert", false)));
        assert!(applies("LoRA", &recipe("llama", false)) && !applies("LoRA", &recipe("resnet", false)));
        assert_eq!(lora_targets(&recipe("llama", false)), Some("*self_attn.{q_proj,v_proj}.weight"));
        // An alias is the same architecture (it once was a Llama to one function only).
        assert!(applies("LoRA", &recipe("SmolLM2", false)));
        assert_eq!(lora_targets(&recipe("smollm2", false)), lora_targets(&recipe("llama", false)));
        assert!(freeze_below(0).is_empty());
        assert_eq!(freeze_below(3), ["depth:0-2"]);
    }
}
