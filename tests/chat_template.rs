//! Chat templates rendered by whet (minijinja) against Jinja2's renderings of the same
//! templates, conversations and variables (tests/fixtures/chat_templates.json, written by
//! tools/chat_template_refs.py as transformers' `apply_chat_template` renders): the template of
//! SmolLM2's GGUF file, and templates using loop variables, namespaces, filters, string methods
//! and `raise_exception`. Every expected value comes from the fixture.

use std::path::Path;

use whet::data::chat::{ChatTemplate, Message};

fn fixture() -> serde_json::Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/chat_templates.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn template(case: &serde_json::Value) -> ChatTemplate {
    let mut t = ChatTemplate::new(case["template"].as_str().unwrap(), case["name"].as_str().unwrap());
    for (k, v) in case["variables"].as_object().unwrap() {
        t = t.with_variable(k, v.as_str().unwrap());
    }
    t
}

fn messages(case: &serde_json::Value) -> Vec<Message> {
    serde_json::from_value(case["messages"].clone()).unwrap()
}

#[test]
fn templates_render_as_jinja2_renders_them() {
    let doc = fixture();
    let cases = doc["cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let got = template(case).render(&messages(case), case["add_generation_prompt"].as_bool().unwrap());
        match (case.get("expected"), got) {
            (Some(want), Ok(text)) => assert_eq!(text, want.as_str().unwrap(), "{name}"),
            (None, Err(e)) => {
                let want = case["error"].as_str().unwrap();
                assert!(e.to_string().contains(want), "{name}: {e} should carry '{want}'");
                assert!(e.to_string().contains(name), "{name}: the error names the template: {e}");
            }
            (want, got) => panic!("{name}: expected {want:?}, got {got:?}"),
        }
    }
}

#[test]
fn the_gguf_template_is_read_with_its_special_tokens() {
    let doc = fixture();
    let gguf = Path::new(env!("CARGO_MANIFEST_DIR")).join(doc["gguf"].as_str().unwrap());
    if !gguf.is_file() {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "!!!!!!!! chat_template: {} ABSENT, CHECK SKIPPED !!!!!!!!",
            gguf.display()
        );
        return;
    }
    let g = whet::weights::gguf::GgufFile::open(&gguf).unwrap();
    let t = ChatTemplate::from_gguf(&g).unwrap().expect("SmolLM2-Instruct ships a chat template");
    let tokens = g.get_str_array("tokenizer.ggml.tokens").unwrap();
    let eos = tokens[g.get_u32("tokenizer.ggml.eos_token_id").unwrap() as usize];
    assert!(t.variables.iter().any(|(k, v)| k == "eos_token" && v == eos), "{:?}", t.variables);
    for case in doc["cases"].as_array().unwrap().iter().filter(|c| c["from_gguf"].as_bool() == Some(true)) {
        assert_eq!(t.source, case["template"].as_str().unwrap(), "the fixture renders the file's template");
        let text = t.render(&messages(case), case["add_generation_prompt"].as_bool().unwrap()).unwrap();
        assert_eq!(text, case["expected"].as_str().unwrap(), "{}", case["name"]);
    }
}

#[test]
fn a_tokenizer_config_gives_its_template_and_tokens() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("tokenizer_config.json");
    let doc = fixture();
    let case =
        doc["cases"].as_array().unwrap().iter().find(|c| c["variables"]["eos_token"].is_string()).unwrap();
    let config = serde_json::json!({
        "chat_template": [{"name": "tool_use", "template": "unused"}, {"name": "default", "template": case["template"]}],
        "bos_token": {"content": case["variables"]["bos_token"], "lstrip": false},
        "eos_token": case["variables"]["eos_token"],
    });
    std::fs::write(&p, config.to_string()).unwrap();
    let t = ChatTemplate::from_tokenizer_config(&p).unwrap().unwrap();
    if let Some(want) = case.get("expected") {
        let got = t.render(&messages(case), case["add_generation_prompt"].as_bool().unwrap()).unwrap();
        assert_eq!(got, want.as_str().unwrap());
    }
    std::fs::write(&p, "{\"model_max_length\": 512}").unwrap();
    assert!(ChatTemplate::from_tokenizer_config(&p).unwrap().is_none());
    std::fs::write(&p, "{\"chat_template\": [{\"name\": \"tool_use\", \"template\": \"x\"}]}").unwrap();
    let e = ChatTemplate::from_tokenizer_config(&p).unwrap_err().to_string();
    assert!(e.contains("tokenizer_config.json") && e.contains("default"), "{e}");
}
