//! Peak device memory (and time) of LoRA training steps on a llama GGUF, with the frozen base
//! kept in its quantized blocks or expanded to f32: the measurement behind issue 14's bars.
//!
//! ```text
//! cargo run --example qlora_memory -- MODEL.gguf [--batch 4] [--len 256] [--steps 2] [--micro 2] [--f32] [--checkpointing] [--mixed]
//! ```
//!
//! `--mixed` runs the activations in f16 (`train.precision = "mixed"`) with the driver's dynamic
//! loss scaling (its defaults: the loss scaled by 2^12 at first and divided out by the optimizer;
//! an overflowing step skipped and the scale halved).
//! `--micro N` splits each batch into micro-batches of N sequences with accumulated gradients,
//! as `whet train` does when the logits of a whole batch exceed one device binding.
//! The tokens are seeded random ids (memory and time do not depend on them). LoRA r=8 on the
//! q/v projections, AdamW. The 1B bar's model comes from `tools/gen_random_llama_gguf.py`.
//! The same steps run first on a dry engine (`EngineOptions::dry_run`, what `whet plan` uses),
//! and the plan is printed beside the measured peak.

use std::time::Instant;

use whet::models::decoder::CausalLm;
use whet::models::llama::Llama;
use whet::models::model::Model;
use whet::nn::lora::{apply, LoraConfig};
use whet::nn::Select;
use whet::optim::{OptimConfig, Optimizer};
use whet::train::loss_scale::{LossScaleConfig, LossScaleState, ScaleVerdict};
use whet::{Engine, EngineOptions};

struct Args {
    path: String,
    batch: usize,
    len: usize,
    steps: usize,
    micro: usize,
    f32: bool,
    checkpointing: bool,
    mixed: bool,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        path: String::new(),
        batch: 4,
        len: 256,
        steps: 2,
        micro: 0,
        f32: false,
        checkpointing: false,
        mixed: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(s) = it.next() {
        let mut num = |name: &str| -> Result<usize, String> {
            it.next().and_then(|v| v.parse().ok()).ok_or(format!("{name} needs a number"))
        };
        match s.as_str() {
            "--batch" => a.batch = num("--batch")?,
            "--len" => a.len = num("--len")?,
            "--steps" => a.steps = num("--steps")?,
            "--micro" => a.micro = num("--micro")?,
            "--f32" => a.f32 = true,
            "--checkpointing" => a.checkpointing = true,
            "--mixed" => a.mixed = true,
            p if !p.starts_with("--") => a.path = p.to_string(),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if a.path.is_empty() {
        return Err(
            "usage: qlora_memory MODEL.gguf [--batch N] [--len T] [--steps S] [--micro N] [--f32]".into()
        );
    }
    if a.micro == 0 || a.micro > a.batch {
        a.micro = a.batch;
    }
    if !a.batch.is_multiple_of(a.micro) {
        return Err(format!("--micro {} must divide --batch {}", a.micro, a.batch));
    }
    Ok(a)
}

fn gib(b: u64) -> String {
    format!("{:.3} GiB", b as f64 / (1u64 << 30) as f64)
}

/// What the steps held: the weights by dtype, the trainable count, the peak, the step times.
struct Measured {
    weights: std::collections::BTreeMap<String, u64>,
    trainable: usize,
    peak: u64,
    times: Vec<f64>,
}

fn main() -> whet::Result<()> {
    let a = args().map_err(|m| whet::Error::arg("qlora_memory", m))?;
    let options = EngineOptions::from_env()?;
    // The plan first, as `whet plan` makes it: the same steps on a dry engine, which counts
    // every buffer and computes nothing (seconds, and no memory spent).
    let dry = Engine::new(EngineOptions { dry_run: true, ..options.clone() })?;
    let planned = steps(&dry, &a)?.peak;
    drop(dry);
    let engine = Engine::new(options)?;
    // A 1B model's backward is one submit, minutes long on a CPU adapter: wait for it.
    engine.set_timeout(std::time::Duration::from_secs(1800));
    let m = steps(&engine, &a)?;
    let base = if a.f32 { "base expanded to f32" } else { "base kept quantized" };
    let ck = if a.checkpointing { ", activation checkpointing" } else { "" };
    let mx = if a.mixed { ", f16 activations" } else { "" };
    println!("model: {} ({base}{ck}{mx})", a.path);
    for (dtype, b) in &m.weights {
        println!("  weights {dtype}: {}", gib(*b));
    }
    println!("  trainable parameters: {}", m.trainable);
    println!("  batch {} x {} tokens, peak device memory {}", a.batch, a.len, gib(m.peak));
    println!(
        "  planned before the run (dry run): {} ({:.3} of the peak)",
        gib(planned),
        planned as f64 / m.peak as f64
    );
    if let Some(last) = m.times.last() {
        println!("  last step {last:.2} s");
    }
    Ok(())
}

/// LoRA steps on `engine` with seeded token ids; prints each step's loss and time unless the
/// engine is dry.
fn steps(engine: &Engine, a: &Args) -> whet::Result<Measured> {
    let (mut m, _) = Llama::from_gguf_keeping(engine, &a.path, !a.f32)?;
    let cfg = LoraConfig {
        rank: 8,
        alpha: 16.0,
        targets: Select::Glob("*self_attn.{q_proj,v_proj}.weight".into()),
        freeze_base: true,
        train_also: None,
        seed: 0,
    };
    apply(&mut m.params, &cfg)?;
    m.params.expand_trainable()?;
    m.activation_checkpointing = a.checkpointing;
    m.set_mixed_precision(a.mixed)?;
    let weights = m.params.bytes_by_dtype();
    let mut opt = Optimizer::new(engine, OptimConfig::new(whet::optim::Method::ADAMW, 1e-3))?;
    // Dynamic loss scaling as the driver does it: the optimizer divides the scale out, and a
    // step whose gradients overflow is skipped with the scale halved.
    let scaling = LossScaleConfig::default();
    let mut scale = a.mixed.then(|| LossScaleState::new(&scaling));
    let vocab = m.config.vocab_size as u64;
    let ids: Vec<u32> =
        (0..(a.batch * a.len) as u64).map(|i| ((i * 2654435761 + 12345) % vocab) as u32).collect();
    engine.reset_peak();
    let mut times = Vec::new();
    for step in 0..a.steps {
        let t = Instant::now();
        m.mode = whet::nn::Mode::train(step as u64);
        let mut l = 0.0;
        let parts = a.batch / a.micro;
        let s = scale.map_or(1.0, |x| x.scale);
        opt.set_grad_unscale(1.0 / s);
        for part in ids.chunks(a.micro * a.len) {
            // The model's own loss: with checkpointing, the head and the loss run in chunks.
            let loss = m.loss(part, a.micro, a.len, None)?.mul_scalar(1.0 / parts as f32)?;
            opt.accumulate(&mut m.params, &loss.mul_scalar(s)?.backward()?)?;
            l += loss.item()?;
        }
        let norm = opt.gathered_grad_norm()?.to_vec()?[1];
        match scale.as_mut().map(|x| x.after_step(&scaling, l, norm)) {
            Some(ScaleVerdict::Take) | None => opt.update()?,
            Some(verdict) => {
                opt.discard();
                println!("step {step}: {verdict:?} at loss scale {s} (gradient norm {norm}); skipped");
            }
        }
        times.push(t.elapsed().as_secs_f64());
        if !engine.is_dry() {
            println!("step {step}: loss {l:.4}, {:.1} s", times[step]);
        }
    }
    Ok(Measured { weights, trainable: m.params.count(true), peak: engine.stats().peak_bytes, times })
}
