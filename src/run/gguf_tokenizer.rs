//! A Hugging Face `tokenizer.json` as llama.cpp's `tokenizer.ggml.*` metadata, for a GGUF export
//! of a model that did not come from a GGUF file (whose tokenizer is copied as it is). Only
//! byte-level BPE (GPT-2 style, what llama.cpp calls `gpt2`) has a faithful GGUF form; any other
//! tokenizer gives `None` and the file is written without one.
//!
//! `tokens` lists every id up to the model's vocabulary size (ids the tokenizer does not use
//! become `[PAD<id>]`, type UNUSED, as llama.cpp's converter pads them); `token_type` marks
//! special added tokens CONTROL (3), other added tokens USER_DEFINED (4), the rest NORMAL (1);
//! `merges` are "a b" strings; the pre-tokenizer is named as llama.cpp names it (`gpt2`, or
//! `smollm` for digits split one by one before the byte-level split).

use serde_json::Value;

use crate::weights::gguf::{MetaArray, MetaValue};

/// llama.cpp's token types.
const NORMAL: i32 = 1;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;
const UNUSED: i32 = 5;

/// The pre-tokenizer's llama.cpp name, if it is one llama.cpp knows by that behaviour.
fn pre_name(pre: &Value) -> Option<&'static str> {
    let is = |v: &Value, t: &str| v.get("type").and_then(Value::as_str) == Some(t);
    if is(pre, "ByteLevel") {
        return Some("gpt2");
    }
    let steps = pre.get("pretokenizers")?.as_array()?;
    match steps.as_slice() {
        [d, b] if is(d, "Digits") && d["individual_digits"] == true && is(b, "ByteLevel") => Some("smollm"),
        _ => None,
    }
}

/// `merges` in either of tokenizer.json's spellings ("a b" or ["a", "b"]).
fn merges(model: &Value) -> Option<Vec<String>> {
    model
        .get("merges")?
        .as_array()?
        .iter()
        .map(|m| match m {
            Value::String(s) => Some(s.clone()),
            Value::Array(p) => Some(format!("{} {}", p.first()?.as_str()?, p.get(1)?.as_str()?)),
            _ => None,
        })
        .collect()
}

/// Tokens and types by id, `vocab_size` long; `None` when an id lies outside it.
fn tokens(tok: &Value, vocab_size: usize) -> Option<(Vec<String>, Vec<i32>)> {
    let mut tokens: Vec<Option<(String, i32)>> = vec![None; vocab_size];
    for (t, id) in tok["model"]["vocab"].as_object()? {
        *tokens.get_mut(usize::try_from(id.as_u64()?).ok()?)? = Some((t.clone(), NORMAL));
    }
    for a in tok.get("added_tokens").and_then(Value::as_array).into_iter().flatten() {
        let ty = if a["special"] == true { CONTROL } else { USER_DEFINED };
        *tokens.get_mut(usize::try_from(a["id"].as_u64()?).ok()?)? =
            Some((a["content"].as_str()?.into(), ty));
    }
    Some(
        tokens
            .into_iter()
            .enumerate()
            .map(|(i, t)| t.unwrap_or_else(|| (format!("[PAD{i}]"), UNUSED)))
            .unzip(),
    )
}

/// The `tokenizer.*` metadata of `tok` (a parsed tokenizer.json) for a model of `vocab_size`
/// tokens; `config` (the model's HF config) gives the bos / eos ids, `chat_template` the
/// template. `None` for a tokenizer GGUF cannot describe.
pub fn tokenizer_metadata(
    tok: &Value,
    vocab_size: usize,
    config: &Value,
    chat_template: Option<&str>,
) -> Option<Vec<(String, MetaValue)>> {
    if tok["model"]["type"] != "BPE" || tok["decoder"]["type"] != "ByteLevel" {
        return None;
    }
    let pre = pre_name(tok.get("pre_tokenizer")?)?;
    let (tokens, types) = tokens(tok, vocab_size)?;
    let mut meta = vec![
        ("tokenizer.ggml.model".to_string(), MetaValue::Str("gpt2".into())),
        ("tokenizer.ggml.pre".to_string(), MetaValue::Str(pre.into())),
        ("tokenizer.ggml.tokens".to_string(), MetaValue::Array(MetaArray::Str(tokens))),
        ("tokenizer.ggml.token_type".to_string(), MetaValue::Array(MetaArray::I32(types))),
        ("tokenizer.ggml.merges".to_string(), MetaValue::Array(MetaArray::Str(merges(&tok["model"])?))),
    ];
    for (hf, gguf) in
        [("bos_token_id", "tokenizer.ggml.bos_token_id"), ("eos_token_id", "tokenizer.ggml.eos_token_id")]
    {
        if let Some(id) = config.get(hf).and_then(Value::as_u64).and_then(|i| u32::try_from(i).ok()) {
            meta.push((gguf.to_string(), MetaValue::U32(id)));
        }
    }
    if let Some(t) = chat_template {
        meta.push(("tokenizer.chat_template".to_string(), MetaValue::Str(t.into())));
    }
    Some(meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokenizer(pre: Value) -> Value {
        serde_json::json!({
            "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": [["a", "b"]]},
            "added_tokens": [{"id": 4, "content": "<|end|>", "special": true},
                             {"id": 3, "content": "<x>", "special": false}],
            "pre_tokenizer": pre,
            "decoder": {"type": "ByteLevel"},
        })
    }

    fn get<'a>(meta: &'a [(String, MetaValue)], key: &str) -> &'a MetaValue {
        &meta.iter().find(|(k, _)| k == key).unwrap_or_else(|| panic!("no {key}")).1
    }

    #[test]
    fn byte_level_bpe_becomes_gpt2_metadata() {
        let config = serde_json::json!({"bos_token_id": 4, "eos_token_id": 4});
        let m = tokenizer_metadata(
            &tokenizer(serde_json::json!({"type": "ByteLevel"})),
            6,
            &config,
            Some("{{x}}"),
        )
        .unwrap();
        let tokens = ["a", "b", "ab", "<x>", "<|end|>", "[PAD5]"].map(String::from).to_vec();
        assert_eq!(get(&m, "tokenizer.ggml.tokens"), &MetaValue::Array(MetaArray::Str(tokens)));
        let types = vec![NORMAL, NORMAL, NORMAL, USER_DEFINED, CONTROL, UNUSED];
        assert_eq!(get(&m, "tokenizer.ggml.token_type"), &MetaValue::Array(MetaArray::I32(types)));
        assert_eq!(get(&m, "tokenizer.ggml.merges"), &MetaValue::Array(MetaArray::Str(vec!["a b".into()])));
        assert_eq!(get(&m, "tokenizer.ggml.pre"), &MetaValue::Str("gpt2".into()));
        assert_eq!(get(&m, "tokenizer.ggml.eos_token_id"), &MetaValue::U32(4));
        assert_eq!(get(&m, "tokenizer.chat_template"), &MetaValue::Str("{{x}}".into()));
    }

    #[test]
    fn digits_then_byte_level_is_smollm_and_others_have_no_gguf_form() {
        let smollm = serde_json::json!({"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": true}, {"type": "ByteLevel"}]});
        let m = tokenizer_metadata(&tokenizer(smollm), 5, &Value::Null, None).unwrap();
        assert_eq!(get(&m, "tokenizer.ggml.pre"), &MetaValue::Str("smollm".into()));
        let whitespace = tokenizer(serde_json::json!({"type": "Whitespace"}));
        assert!(tokenizer_metadata(&whitespace, 5, &Value::Null, None).is_none());
        // An id past the model's vocabulary cannot be written.
        assert!(tokenizer_metadata(
            &tokenizer(serde_json::json!({"type": "ByteLevel"})),
            4,
            &Value::Null,
            None
        )
        .is_none());
    }
}
