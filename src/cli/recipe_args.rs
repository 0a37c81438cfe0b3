//! The recipe as `whet train` and `whet compare` take it: the file, `--set` overrides checked like
//! the file's own values, `--max-steps` for a quick try, and `--print-config` to see the recipe
//! that would run (defaults filled in, paths absolute, the model's kind and cache path resolved).

use std::path::PathBuf;

use whet::run::recipe::RecipeOptions;
use whet::run::Recipe;
use whet::weights::hf_cache::HfCache;

#[derive(Debug, clap::Args)]
pub struct RecipeArgs {
    /// The recipe (TOML).
    pub recipe: PathBuf,
    /// Override a recipe value, e.g. `--set train.lr=3e-5 --set data.limit_train=64`; checked
    /// like the file's own values. Repeatable; a later one wins.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Stop after N optimizer steps (the same as `--set train.max_steps=N`).
    #[arg(long, value_name = "N")]
    pub max_steps: Option<u64>,
    /// Print the resolved recipe and exit without training.
    #[arg(long)]
    pub print_config: bool,
}

impl RecipeArgs {
    /// The recipe with the overrides applied; Hugging Face ids are looked up where
    /// `huggingface_hub` keeps its cache (`HF_HUB_CACHE`, `HF_HOME`, `~/.cache/huggingface`).
    pub fn load(&self) -> whet::Result<Recipe> {
        let mut overrides = self.set.clone();
        if let Some(n) = self.max_steps {
            overrides.push(format!("train.max_steps={n}"));
        }
        Recipe::load_with(&self.recipe, &RecipeOptions { overrides, hf_cache: HfCache::from_env() })
    }

    /// With `--print-config`: the resolved recipe on stdout, and `true` (nothing else to do).
    pub fn printed(&self, recipe: &Recipe) -> whet::Result<bool> {
        if self.print_config {
            print!("{}", recipe.to_toml()?);
        }
        Ok(self.print_config)
    }
}
