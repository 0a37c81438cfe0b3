//! The `[output]` export settings through a whole run (`whet::run::train`): a LoRA fine-tune of
//! the tiny Llama (frozen weights held as Q8_0 blocks on the device, `model.quantize`, its blocks
//! recomputed in backward, `train.activation_checkpointing`) exported
//! as a PEFT adapter in f16 plus a Q8_0 GGUF, and nothing else in the model folder that a
//! different setting would write.

mod common;

use std::path::Path;

use common::export::shared_fixture;
use whet::run::inference::Trained;
use whet::run::{self, Recipe, RunOptions};
use whet::train::stop::StopFlag;
use whet::weights::gguf::GgufFile;
use whet::weights::safetensors::SafeTensorsFile;
use whet::weights::{WeightDType, WeightSource};

fn recipe(text: &str, dir: &Path) -> Recipe {
    let p = dir.join("recipe.toml");
    std::fs::write(&p, text).unwrap();
    Recipe::load(&p).unwrap()
}

#[test]
fn a_lora_run_exports_an_f16_adapter_and_a_gguf() {
    let case = "a_lora_run_exports_an_f16_adapter_and_a_gguf";
    let Some((_g, e)) = common::gpu("export_run", case) else { return };
    let Some(model) = shared_fixture(case, "llama_tiny") else { return };
    let tmp = tempfile::tempdir().unwrap();
    common::byte_level_tokenizer(&tmp.path().join("tokenizer.json"));
    std::fs::write(tmp.path().join("corpus.txt"), "to be or not to be, that is the question. ".repeat(30))
        .unwrap();
    let text = format!(
        r#"[model]
kind = "llama"
path = "{}"
tokenizer = "tokenizer.json"
quantize = "q8_0"
[data]
kind = "corpus"
train = "corpus.txt"
max_len = 32
val_ratio = 0.2
[train]
epochs = 1
batch_size = 4
lr = 1e-2
lora = {{ rank = 4, alpha = 8.0, targets = "*self_attn.{{q_proj,v_proj}}.weight" }}
activation_checkpointing = true
[output]
dir = "run"
adapter_only = true
dtype = "f16"
gguf = "q8_0"
"#,
        model.display()
    );
    let r = recipe(&text, tmp.path());
    // A stale full-model file from an earlier export setting must not survive this one.
    std::fs::create_dir_all(r.output.dir.join("model")).unwrap();
    std::fs::write(r.output.dir.join("model/model.safetensors"), b"stale").unwrap();
    let out =
        run::train(&e, &r, &StopFlag::new(), RunOptions { progress: false, ..Default::default() }).unwrap();
    // metrics.json says what the device held: the frozen matrices as Q8_0, and the peak.
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.dir.join("metrics.json")).unwrap()).unwrap();
    assert!(metrics["weight_device_bytes"]["q8_0"].as_u64().unwrap() > 0, "{metrics}");
    assert!(metrics["peak_device_bytes"].as_u64().unwrap() > 0, "{metrics}");
    let dir = out.dir.join("model");
    assert!(!dir.join("model.safetensors").exists(), "adapter_only leaves no merged model");
    assert!(!dir.join("config.json").exists(), "the adapter folder has adapter_config.json only");
    let adapter = SafeTensorsFile::open(dir.join("adapter_model.safetensors")).unwrap();
    let infos = adapter.tensors();
    assert!(!infos.is_empty() && infos.iter().all(|t| t.dtype == WeightDType::F16), "{infos:?}");
    assert!(infos.iter().all(|t| t.name.starts_with("base_model.model.model.layers.")), "{infos:?}");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("adapter_config.json")).unwrap()).unwrap();
    assert_eq!(config["task_type"], "CAUSAL_LM");
    assert_eq!(config["base_model_name_or_path"], model.display().to_string());
    let g = GgufFile::open(dir.join("model.gguf")).unwrap();
    assert_eq!(g.get_u32("general.file_type").unwrap(), 7);
    // The run's tokenizer.json (byte-level BPE) travels as llama.cpp's tokenizer metadata.
    assert_eq!(g.get_str("tokenizer.ggml.model").unwrap(), "gpt2");
    let vocab = whet::data::tokenize::TextTokenizer::from_gguf(&dir.join("model.gguf")).unwrap();
    let text = whet::data::tokenize::TextTokenizer::from_file(&tmp.path().join("tokenizer.json")).unwrap();
    assert_eq!(vocab.encode("not to be", false).unwrap(), text.encode("not to be", false).unwrap());
    let q = g.tensors().into_iter().find(|t| t.name == "blk.0.attn_q.weight").unwrap();
    assert_eq!(q.dtype, WeightDType::Q8_0);
    // whet's own tools need the merged model: a clear refusal, not a missing-file error.
    let err = Trained::open(&e, &out.dir).err().expect("an adapter-only run cannot be loaded").to_string();
    assert!(err.contains("adapter_only"), "{err}");
}
