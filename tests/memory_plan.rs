//! `whet plan` (`run::plan`) against the truth. The plan's total is within 15% of the peak
//! the same recipe's run records in `metrics.json` (`peak_device_bytes`), for a LoRA decoder
//! over Q8_0 blocks with its blocks recomputed, the same over bf16 weights and in mixed precision, a full fine-tune
//! (gradients and AdamW state dominate) and a CNN. The dry engine under the plan computes nothing and holds no memory
//! while counting exactly what a real engine counts. `whet train` refuses a run that does not
//! fit before its folder exists, and `whet plan` says what to change.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::export::shared_fixture;
use whet::run::plan::{self, MemoryPlan};
use whet::run::{self, Recipe, RunOptions};
use whet::train::stop::StopFlag;
use whet::{Engine, EngineOptions, Tensor};

const FILE: &str = "memory_plan";

/// The tiny Llama fixture over a repeated sentence, with `train` as the `[train]` table's body
/// and `model` appended to `[model]`; written to `dir/recipe.toml`.
fn llama_recipe(dir: &Path, fixture: &Path, model: &str, train: &str) -> PathBuf {
    common::byte_level_tokenizer(&dir.join("tokenizer.json"));
    std::fs::write(dir.join("corpus.txt"), "to be or not to be, that is the question. ".repeat(40)).unwrap();
    let text = format!(
        r#"[model]
kind = "llama"
path = "{}"
tokenizer = "tokenizer.json"
{model}
[data]
kind = "corpus"
train = "corpus.txt"
max_len = 48
val_ratio = 0.2
[train]
epochs = 1
max_steps = 2
{train}
[output]
dir = "run"
bootstrap = 1000
"#,
        fixture.display()
    );
    write_recipe(dir, &text)
}

/// `text` as `dir/recipe.toml`.
fn write_recipe(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("recipe.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// The ResNet-18 fixture weights on a two-colour image folder at 32×32.
fn resnet_recipe(dir: &Path, weights: &Path) -> PathBuf {
    for split in ["train", "val"] {
        for (ci, class) in ["blue", "red"].iter().enumerate() {
            let d = dir.join("images").join(split).join(class);
            std::fs::create_dir_all(&d).unwrap();
            for i in 0..6u32 {
                let img = image::RgbImage::from_fn(40, 40, |x, y| {
                    let v = ((x * 7 + y * 13 + i * 31) % 40) as u8;
                    if ci == 0 {
                        image::Rgb([v, v, 200])
                    } else {
                        image::Rgb([200, v, v])
                    }
                });
                img.save(d.join(format!("{i}.png"))).unwrap();
            }
        }
    }
    let text = format!(
        r#"[model]
kind = "resnet"
path = "{}"
image_size = 32
[data]
kind = "image-folder"
train = "images"
[train]
epochs = 1
max_steps = 2
batch_size = 8
optimizer = "sgd"
lr = 0.01
[output]
dir = "run"
bootstrap = 1000
"#,
        weights.display()
    );
    write_recipe(dir, &text)
}

/// Parameters of rank-`r` adapters on every layer's q and v projections, from the fixture's
/// config.json: A is `[r, in]`, B `[out, r]`.
fn lora_params(fixture: &Path, r: u64) -> u64 {
    let c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture.join("config.json")).unwrap()).unwrap();
    let n = |k: &str| c[k].as_u64().unwrap();
    let (hidden, heads) = (n("hidden_size"), n("num_attention_heads"));
    let kv = c["num_key_value_heads"].as_u64().unwrap_or(heads) * (hidden / heads);
    n("num_hidden_layers") * r * ((hidden + hidden) + (hidden + kv))
}

/// Plan `recipe`, then run it on `e`: (the plan, the run's recorded peak).
fn plan_and_run(e: &Engine, recipe: &Path) -> (MemoryPlan, u64) {
    let r = Recipe::load(recipe).unwrap();
    let p = plan::plan(&EngineOptions::default(), &r).unwrap();
    let opts = RunOptions { progress: false, baseline: true, ..Default::default() };
    let out = run::train(e, &r, &StopFlag::new(), opts).unwrap();
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.dir.join("metrics.json")).unwrap()).unwrap();
    (p, metrics["peak_device_bytes"].as_u64().unwrap())
}

fn assert_close(what: &str, p: &MemoryPlan, peak: u64) {
    let rel = (p.total as f64 - peak as f64).abs() / peak as f64;
    assert!(
        rel <= 0.15,
        "{what}: plan {} vs the run's peak {peak} ({rel:.3} apart)\n{}",
        p.total,
        p.report()
    );
    // The parts add up to the total they explain.
    let held = p.weights.values().sum::<u64>() + p.other + p.gradients + p.optimizer_state;
    assert_eq!(held + p.activations.max(p.evaluation), p.total, "{what}\n{}", p.report());
}

#[test]
fn the_plan_is_within_15_percent_of_the_runs_peak() {
    let case = "the_plan_is_within_15_percent_of_the_runs_peak";
    let Some((_g, e)) = common::gpu(FILE, case) else { return };
    let (Some(llama), Some(resnet)) =
        (shared_fixture(case, "llama_tiny"), shared_fixture(case, "resnet18_tv.weights.safetensors"))
    else {
        return;
    };
    // QLoRA-style: the frozen matrices in Q8_0 blocks, adapters trained, blocks recomputed.
    let tmp = tempfile::tempdir().unwrap();
    let lora = r#"batch_size = 4
lr = 1e-2
lora = { rank = 4, alpha = 8.0, targets = "*self_attn.{q_proj,v_proj}.weight" }
activation_checkpointing = true"#;
    let (p, peak) = plan_and_run(&e, &llama_recipe(tmp.path(), &llama, "quantize = \"q8_0\"", lora));
    assert_close("LoRA over Q8_0", &p, peak);
    assert!(p.weights.get("q8_0").is_some_and(|&b| b > 0), "{}", p.report());
    assert!(p.gradients > 0 && p.gradients < p.weights.values().sum::<u64>() / 4, "{}", p.report());
    assert_eq!(p.trainable_params, lora_params(&llama, 4), "{}", p.report());
    // The frozen matrices in bf16 (`model.quantize = "bf16"`): half their f32 bytes.
    let tmp = tempfile::tempdir().unwrap();
    let (p, peak) = plan_and_run(&e, &llama_recipe(tmp.path(), &llama, "quantize = \"bf16\"", lora));
    assert_close("LoRA over bf16", &p, peak);
    assert!(p.weights.get("bf16").is_some_and(|&b| b > 0), "{}", p.report());
    // Mixed precision: f16 activations over f16 frozen matrices, planned like any other run.
    if e.has_f16() {
        let tmp = tempfile::tempdir().unwrap();
        let mixed = format!("{lora}\nprecision = \"mixed\"");
        let (p, peak) = plan_and_run(&e, &llama_recipe(tmp.path(), &llama, "", &mixed));
        assert_close("mixed-precision LoRA", &p, peak);
        assert!(p.mixed_precision && p.weights.get("f16").is_some_and(|&b| b > 0), "{}", p.report());
    }
    // Full fine-tuning: every weight has a gradient and two AdamW moments.
    let tmp = tempfile::tempdir().unwrap();
    let full = "batch_size = 4\nlr = 1e-3";
    let (p, peak) = plan_and_run(&e, &llama_recipe(tmp.path(), &llama, "", full));
    assert_close("full fine-tune", &p, peak);
    assert!(p.optimizer_state >= 2 * 4 * p.trainable_params, "{}", p.report());
    assert!(p.gradients >= 4 * p.trainable_params, "{}", p.report());
    // A CNN with batch norm and SGD momentum.
    let tmp = tempfile::tempdir().unwrap();
    let (p, peak) = plan_and_run(&e, &resnet_recipe(tmp.path(), &resnet));
    assert_close("ResNet-18", &p, peak);
    assert!(p.activations > 0 && p.optimizer_state >= 4 * p.trainable_params, "{}", p.report());
}

#[test]
fn the_dry_engine_counts_what_a_real_one_holds_and_computes_nothing() {
    let case = "the_dry_engine_counts_what_a_real_one_holds_and_computes_nothing";
    let Some(real) = common::own_engine(FILE, case, EngineOptions::default()) else { return };
    let dry = Engine::new(EngineOptions { dry_run: true, ..Default::default() }).unwrap();
    assert!(dry.is_dry() && !real.is_dry());
    // A small graph with a backward: the same buffers, in the same order, on both.
    let work = |e: &Engine| {
        let a = Tensor::param(e, &vec![0.5; 300 * 200], &[300, 200]).unwrap();
        let b = Tensor::from_slice(e, &vec![2.0; 200 * 70], &[200, 70]).unwrap();
        let loss = a.matmul(&b).unwrap().relu().unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        let ga = grads.get(&a).unwrap().to_vec().unwrap();
        (loss.to_vec().unwrap()[0], ga.len(), e.stats())
    };
    let (real_loss, real_n, real_stats) = work(&real);
    let (dry_loss, dry_n, dry_stats) = work(&dry);
    assert_eq!(real_loss, 300.0 * 70.0 * 200.0);
    assert_eq!((dry_loss, dry_n), (0.0, real_n), "readbacks are zeros of the right size");
    assert_eq!(dry_stats.peak_bytes, real_stats.peak_bytes, "the same pool accounting");
    assert!(real_stats.pipelines_compiled > 0 && real_stats.dispatches > 0);
    assert_eq!((dry_stats.pipelines_compiled, dry_stats.submits), (0, 0), "nothing compiled or submitted");
    assert_eq!(dry.stats().bytes_in_use, 0, "every buffer went back to the pool");
}

fn whet() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_whet"));
    c.env("XDG_RUNTIME_DIR", std::env::temp_dir()).env_remove("WHET_MAX_MEMORY");
    c
}

#[test]
fn train_refuses_a_run_that_does_not_fit_and_plan_says_what_to_change() {
    let case = "train_refuses_a_run_that_does_not_fit_and_plan_says_what_to_change";
    if !whet().arg("devices").output().is_ok_and(|o| o.status.success()) {
        return common::no_adapter(FILE, case);
    }
    let Some(llama) = shared_fixture(case, "llama_tiny") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let train = "batch_size = 8\nlr = 1e-3";
    let recipe = llama_recipe(tmp.path(), &llama, "", train);
    // The plan on its own: fits this machine, and writes its JSON.
    let json = tmp.path().join("plan.json");
    let out = whet()
        .args(["plan".as_ref(), recipe.as_os_str(), "--json".as_ref(), json.as_os_str()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    for part in ["weights f32", "gradients", "optimizer state", "activations", "total", "batch 8 × 48"] {
        assert!(text.contains(part), "missing {part:?}:\n{text}");
    }
    let saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let total = saved["total"].as_u64().unwrap();
    // A device a little smaller than the run: `plan` exits 1 with measured and scaled changes.
    let small = format!("{}", total * 9 / 10);
    let out = whet()
        .args(["plan".as_ref(), recipe.as_os_str(), "--memory".as_ref(), small.as_ref()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("does not fit"), "{text}");
    assert!(
        text.contains("try train.activation_checkpointing = true") && text.contains("(measured)"),
        "{text}"
    );
    assert!(text.contains("try LoRA") && text.contains("train.grad_accum"), "{text}");
    // `whet train` on that device refuses before its folder exists: nothing to lose or clean.
    let out =
        whet().args(["train".as_ref(), recipe.as_os_str()]).env("WHET_MAX_MEMORY", &small).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("nothing was trained") && err.contains("try "), "{err}");
    assert!(!tmp.path().join("run").exists(), "the run folder was not created");
    // `--no-plan` trusts the user: the run goes ahead (and fits the real machine).
    let out = whet()
        .args(["train".as_ref(), recipe.as_os_str(), "--no-plan".as_ref(), "--quiet".as_ref()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // A size that is not one is named.
    let out = whet()
        .args(["plan".as_ref(), recipe.as_os_str(), "--memory".as_ref(), "lots".as_ref()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success() && err.contains("--memory") && err.contains("lots"), "{err}");
}
