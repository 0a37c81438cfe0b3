//! Chat templates as models ship them (`tokenizer.chat_template` in a GGUF file, `chat_template`
//! in a Hugging Face `tokenizer_config.json`), rendered the way transformers'
//! `apply_chat_template` renders them with Jinja2: blocks trimmed (`trim_blocks`,
//! `lstrip_blocks`), `raise_exception(message)` available to the template, the tokenizer's
//! special tokens as `bos_token` / `eos_token`, and Python's string methods (`.strip()`,
//! `.startswith()`) that real templates call. The engine is minijinja; the parity test
//! (`tests/chat_template.rs`) compares it with Jinja2's output for the same templates.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::weights::gguf::GgufFile;

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user` or `assistant` (templates may accept others).
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Message {
        Message { role: role.into(), content: content.into() }
    }
}

/// A model's chat template and the special tokens it refers to.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    pub source: String,
    /// Extra variables: `bos_token`, `eos_token`.
    pub variables: Vec<(String, String)>,
    /// Where the template came from, for errors.
    pub origin: String,
}

impl ChatTemplate {
    pub fn new(source: impl Into<String>, origin: impl Into<String>) -> ChatTemplate {
        ChatTemplate { source: source.into(), variables: Vec::new(), origin: origin.into() }
    }

    /// `name = value` for the template (`bos_token`, `eos_token`, ...).
    pub fn with_variable(mut self, name: &str, value: &str) -> ChatTemplate {
        self.variables.push((name.into(), value.into()));
        self
    }

    /// The template of a GGUF file, with its BOS and EOS tokens; `None` when it has none.
    pub fn from_gguf(g: &GgufFile) -> Result<Option<ChatTemplate>> {
        let Ok(source) = g.get_str("tokenizer.chat_template") else { return Ok(None) };
        let mut t = ChatTemplate::new(source, g.path().display().to_string());
        let tokens = g.get_str_array("tokenizer.ggml.tokens").unwrap_or_default();
        for (var, key) in
            [("bos_token", "tokenizer.ggml.bos_token_id"), ("eos_token", "tokenizer.ggml.eos_token_id")]
        {
            if let Some(tok) = g.get_u32(key).ok().and_then(|id| tokens.get(id as usize)) {
                t = t.with_variable(var, tok);
            }
        }
        Ok(Some(t))
    }

    /// The template of a `tokenizer_config.json` (a string, or a list of named templates of
    /// which "default" is used), with its `bos_token` / `eos_token`; `None` when it has none.
    pub fn from_tokenizer_config(path: &Path) -> Result<Option<ChatTemplate>> {
        let json = crate::weights::hf_dir::read_json(path)?;
        let source = match json.get("chat_template") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Array(named)) => {
                let default =
                    named.iter().find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"));
                match default.and_then(|t| t.get("template")).and_then(|t| t.as_str()) {
                    Some(s) => s.to_string(),
                    None => {
                        let m = "chat_template is a list without a template named \"default\"";
                        return Err(Error::Format {
                            path: path.display().to_string(),
                            line: None,
                            message: m.into(),
                        });
                    }
                }
            }
            _ => return Ok(None),
        };
        let mut t = ChatTemplate::new(source, path.display().to_string());
        for var in ["bos_token", "eos_token"] {
            // A plain string, or an AddedToken object with its `content`.
            let v = json.get(var);
            if let Some(s) = v.and_then(|v| v.as_str().or_else(|| v.get("content").and_then(|c| c.as_str())))
            {
                t = t.with_variable(var, s);
            }
        }
        Ok(Some(t))
    }

    /// The conversation as the model was trained to see it; with `add_generation_prompt`, ending
    /// where the assistant's answer begins. A template's own `raise_exception` is an error
    /// carrying its message.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let mut env = minijinja::Environment::new();
        let syntax = minijinja::syntax::SyntaxConfig::builder().trim_blocks(true).lstrip_blocks(true).build();
        env.set_syntax(syntax.map_err(|e| Error::arg("chat template", e.to_string()))?);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |message: String| -> std::result::Result<String, minijinja::Error> {
                Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, message))
            },
        );
        let fail = |e: minijinja::Error| {
            // The template's own message (raise_exception), else minijinja's with its line.
            let message = match e.kind() {
                minijinja::ErrorKind::InvalidOperation => e.detail().unwrap_or("").to_string(),
                _ => e.to_string(),
            };
            Error::Format {
                path: self.origin.clone(),
                line: e.line(),
                message: format!("chat template: {message}"),
            }
        };
        let template = env.template_from_str(&self.source).map_err(fail)?;
        let mut ctx: std::collections::BTreeMap<&str, minijinja::Value> =
            self.variables.iter().map(|(k, v)| (k.as_str(), minijinja::Value::from(v.as_str()))).collect();
        let turns = messages.iter().map(|m| {
            minijinja::Value::from_pairs([("role", m.role.as_str()), ("content", m.content.as_str())])
        });
        ctx.insert("messages", turns.collect());
        ctx.insert("add_generation_prompt", minijinja::Value::from(add_generation_prompt));
        template.render(ctx).map_err(fail)
    }
}
