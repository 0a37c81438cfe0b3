//! `whet predict RUN_DIR [INPUT...] [--input FILE] [--output FILE]`: labels with probabilities
//! for images or texts, or a generated continuation for a language model; on screen, or as
//! CSV / JSON Lines.

use std::path::{Path, PathBuf};

use whet::data::chat::{ChatTemplate, Message};

use whet::run::inference::Trained;
use whet::run::recipe::DataKind;
use whet::Engine;

use super::predict_io::{self, Row};

#[derive(Debug, clap::Args)]
pub struct PredictArgs {
    /// A run folder written by `whet train`.
    pub run: PathBuf,
    /// Image paths, texts, or prompts.
    pub inputs: Vec<String>,
    /// Also read inputs from FILE: a CSV/TSV/JSONL table (the recipe's text column), an image
    /// folder, or one input a line.
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Write the predictions to FILE instead of the screen: .csv or .jsonl.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Labels shown per input.
    #[arg(long, default_value_t = 2)]
    pub top: usize,
    /// Tokens to generate (language models).
    #[arg(long)]
    pub max_new_tokens: Option<usize>,
    /// Sampling temperature (language models; with --top-k or --top-p, else top-k 40).
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Sample among the K most likely tokens (language models).
    #[arg(long, value_name = "K")]
    pub top_k: Option<usize>,
    /// Sample from the smallest set of tokens whose probability reaches P (language models).
    #[arg(long, value_name = "P", conflicts_with = "top_k")]
    pub top_p: Option<f32>,
    /// Language models: each input is a user's message, rendered with the model's chat template
    /// (the run's model/tokenizer_config.json), and the output is the assistant's answer.
    #[arg(long)]
    pub chat: bool,
}

pub fn predict(a: &PredictArgs) -> whet::Result<()> {
    super::at_least("predict", "--top", a.top, 1)?;
    if let Some(n) = a.max_new_tokens {
        super::at_least("predict", "--max-new-tokens", n, 1)?;
    }
    // The flags are checked before anything is loaded.
    sampling(a, &mut Default::default())?;
    let engine = Engine::new(whet::EngineOptions::from_env()?)?;
    let mut t = Trained::open(&engine, &a.run)?;
    sampling(a, &mut t.recipe.generate)?;
    let rows = rows(a, &mut t)?;
    match &a.output {
        Some(out) => {
            let classes: Vec<String> = t.labels.as_ref().map(|l| l.names().to_vec()).unwrap_or_default();
            predict_io::write(out, &rows, &classes)?;
            println!("{} predictions: {}", rows.len(), out.display());
        }
        None => rows.iter().for_each(|r| show(r, a.top)),
    }
    Ok(())
}

/// The inputs of the command line, then those of `--input`.
fn inputs(a: &PredictArgs, kind: DataKind, column: &str) -> whet::Result<Vec<String>> {
    let mut all = a.inputs.clone();
    if let Some(f) = &a.input {
        match kind {
            DataKind::ImageFolder => {
                all.extend(predict_io::images(f)?.into_iter().map(|p| p.display().to_string()))
            }
            _ => all.extend(predict_io::texts(f, column)?),
        }
    }
    if all.is_empty() {
        return Err(whet::Error::arg("predict", "give image paths, texts or a prompt, or --input FILE"));
    }
    Ok(all)
}

/// Every input's prediction; classifiers run in batches.
fn rows(a: &PredictArgs, t: &mut Trained) -> whet::Result<Vec<Row>> {
    let column = t.recipe.data.eval_text.clone().unwrap_or_else(|| t.recipe.data.text.clone());
    let inputs = inputs(a, t.recipe.data.kind, &column)?;
    let ranked = |input: String, ranked| Row::Ranked { input, ranked };
    Ok(match t.recipe.data.kind {
        DataKind::ImageFolder => {
            let paths: Vec<PathBuf> = inputs.iter().map(PathBuf::from).collect();
            inputs.into_iter().zip(t.classify_images(&paths)?).map(|(i, r)| ranked(i, r)).collect()
        }
        DataKind::Text => {
            let r = t.classify_texts(&inputs)?;
            inputs.into_iter().zip(r).map(|(i, r)| ranked(i, r)).collect()
        }
        DataKind::Corpus => {
            let template = if a.chat { Some(chat_template(&a.run)?) } else { None };
            let mut rows = Vec::with_capacity(inputs.len());
            for input in inputs {
                let output = match &template {
                    Some(tpl) => {
                        let prompt = tpl.render(&[Message::new("user", &input)], true)?;
                        let full = t.generate(&prompt, a.max_new_tokens)?;
                        full.strip_prefix(&prompt).unwrap_or(&full).trim().to_string()
                    }
                    None => t.generate(&input, a.max_new_tokens)?,
                };
                rows.push(Row::Generated { input, output });
            }
            rows
        }
    })
}

/// The chat template exported with the run's model.
fn chat_template(run: &Path) -> whet::Result<ChatTemplate> {
    let p = run.join("model").join("tokenizer_config.json");
    let found = if p.is_file() { ChatTemplate::from_tokenizer_config(&p)? } else { None };
    found.ok_or_else(|| {
        let m = format!("--chat: the run's model has no chat template ({} holds none)", p.display());
        whet::Error::arg("predict", m)
    })
}

/// `--temperature`, `--top-k`, `--top-p` over the run's `[generate]` settings.
fn sampling(a: &PredictArgs, g: &mut whet::run::recipe::GenerateSection) -> whet::Result<()> {
    let bad = |flag: &str, v: String, allowed: &str| {
        Err(whet::Error::arg("predict", format!("{flag} {v}: out of range (allowed: {allowed})")))
    };
    if let Some(k) = a.top_k {
        super::at_least("predict", "--top-k", k, 1)?;
        (g.sampling, g.top_k) = ("top-k".into(), k);
    }
    if let Some(p) = a.top_p {
        if !(p > 0.0 && p <= 1.0) {
            return bad("--top-p", p.to_string(), "(0, 1]");
        }
        (g.sampling, g.top_p) = ("top-p".into(), p);
    }
    if let Some(temp) = a.temperature {
        if !(temp.is_finite() && temp > 0.0) {
            return bad("--temperature", temp.to_string(), "finite and > 0");
        }
        g.temperature = temp;
        if g.sampling == "greedy" {
            g.sampling = "top-k".into();
        }
    }
    Ok(())
}

fn show(row: &Row, top: usize) {
    match row {
        Row::Generated { output, .. } => println!("{output}"),
        Row::Ranked { input, ranked } => {
            let shown: String = input.chars().take(60).collect();
            let parts: Vec<String> = ranked.iter().take(top).map(|(l, p)| format!("{l} {p:.4}")).collect();
            println!("{shown}\t{}", parts.join("\t"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_uses_the_template_exported_with_the_run_or_says_there_is_none() {
        let run = tempfile::tempdir().unwrap();
        let e = chat_template(run.path()).unwrap_err().to_string();
        assert!(e.contains("--chat") && e.contains("tokenizer_config.json"), "{e}");
        std::fs::create_dir_all(run.path().join("model")).unwrap();
        let cfg = serde_json::json!({"chat_template": "<{{ messages[0]['role'] }}>{{ messages[0]['content'] }}{% if add_generation_prompt %}<bot>{% endif %}"});
        std::fs::write(run.path().join("model/tokenizer_config.json"), cfg.to_string()).unwrap();
        let t = chat_template(run.path()).unwrap();
        assert_eq!(t.render(&[Message::new("user", "hi")], true).unwrap(), "<user>hi<bot>");
    }
}
