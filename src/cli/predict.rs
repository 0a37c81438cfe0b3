//! `whet predict RUN_DIR INPUT...`: labels with probabilities for images or texts, or a
//! generated continuation for a language model.

use std::path::{Path, PathBuf};

use whet::run::inference::Trained;
use whet::run::recipe::DataKind;
use whet::Engine;

pub fn predict(
    run_dir: &Path,
    inputs: &[String],
    top: usize,
    max_new_tokens: Option<usize>,
) -> whet::Result<()> {
    if inputs.is_empty() {
        return Err(whet::Error::arg("predict", "give image paths, texts or a prompt"));
    }
    super::at_least("predict", "--top", top, 1)?;
    if let Some(n) = max_new_tokens {
        super::at_least("predict", "--max-new-tokens", n, 1)?;
    }
    let engine = Engine::new(whet::EngineOptions::from_env())?;
    let mut t = Trained::open(&engine, run_dir)?;
    match t.recipe.data.kind {
        DataKind::ImageFolder => {
            let paths: Vec<PathBuf> = inputs.iter().map(PathBuf::from).collect();
            for (p, ranked) in paths.iter().zip(t.classify_images(&paths)?) {
                print_ranked(&p.display().to_string(), &ranked, top);
            }
        }
        DataKind::Text => {
            for (text, ranked) in inputs.iter().zip(t.classify_texts(inputs)?) {
                let shown: String = text.chars().take(60).collect();
                print_ranked(&shown, &ranked, top);
            }
        }
        DataKind::Corpus => {
            for prompt in inputs {
                println!("{}", t.generate(prompt, max_new_tokens)?);
            }
        }
    }
    Ok(())
}

fn print_ranked(input: &str, ranked: &[(String, f32)], top: usize) {
    let parts: Vec<String> = ranked.iter().take(top).map(|(l, p)| format!("{l} {p:.4}")).collect();
    println!("{input}\t{}", parts.join("\t"));
}
