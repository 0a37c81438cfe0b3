//! Model-step cases: one training step (forward, backward, optimizer update) of each zoo
//! model at the sizes the project's speed issue names, with seeded random weights in the real
//! architectures' shapes (MiniLM-L6, ResNet-18, EfficientNet-Lite0, SmolLM2-135M).

use serde_json::json;

use super::kernels::values;
use super::Case;
use crate::engine::Engine;
use crate::error::Result;
use crate::models::bert::{Bert, BertConfig, BertInput, BertTask};
use crate::models::decoder::{causal_lm_loss, CausalLm};
use crate::models::efficientnet::EfficientNetLite;
use crate::models::llama::{Llama, LlamaConfig};
use crate::models::resnet::{ResNet, ResNetConfig};
use crate::nn::lora::{self, LoraConfig};
use crate::nn::{Mode, Params, Select};
use crate::ops::loss::{cross_entropy, CrossEntropy};
use crate::optim::{Method, OptimConfig, Optimizer};
use crate::tensor::Tensor;
use crate::weights::{TensorInfo, WeightDType, WeightSource};

/// One step of `loss` on `params` with `opt`, then a wait for the device.
fn step(e: &Engine, params: &mut Params, opt: &mut Optimizer, loss: Tensor) -> Result<()> {
    let grads = loss.backward()?;
    opt.step(params, &grads)?;
    e.sync()
}

fn images(e: &Engine, b: usize, hw: usize) -> Result<Tensor> {
    Tensor::from_slice(e, &values(b * 3 * hw * hw, 21), &[b, 3, hw, hw])
}

pub(super) fn cases<'a>(e: &'a Engine, quick: bool, wanted: &dyn Fn(&str) -> bool) -> Result<Vec<Case<'a>>> {
    let mut out = Vec::new();
    if wanted("resnet18_step_b8_64") {
        out.push(resnet18(e)?);
    }
    for frozen in [false, true] {
        let name = if frozen { "minilm_step_frozen_b16x128" } else { "minilm_step_full_b16x128" };
        if wanted(name) && !(quick && frozen) {
            out.push(minilm(e, name, frozen)?);
        }
    }
    if !quick && wanted("efficientnet_lite0_step_b8_128") {
        out.push(efficientnet_lite0(e)?);
    }
    if !quick && wanted("smollm2_lora_step_b4x128") {
        out.push(smollm2_lora(e)?);
    }
    Ok(out)
}

fn resnet18(e: &Engine) -> Result<Case<'_>> {
    let config = ResNetConfig { bottleneck: false, layers: [2, 2, 2, 2], num_classes: 10 };
    let mut m = ResNet::scratch(e, config, 0)?;
    let x = images(e, 8, 64)?;
    let labels: Vec<u32> = (0..8).map(|i| i % 10).collect();
    let mut opt = Optimizer::new(e, OptimConfig::new(Method::sgd(0.9), 0.01).weight_decay(1e-4))?;
    Ok(Case {
        name: "resnet18_step_b8_64".into(),
        work: Some((8.0, "samples/s")),
        run: Box::new(move || {
            let loss = cross_entropy(&m.forward(&x, Mode::train(0))?, &labels, CrossEntropy::default())?;
            step(e, &mut m.params, &mut opt, loss)
        }),
    })
}

/// all-MiniLM-L6-v2's shape: 6 layers, hidden 384, 12 heads, intermediate 1536 (checked
/// against the real config.json by tests/bench_cli.rs).
pub fn minilm_config() -> Result<BertConfig> {
    let cfg = json!({"vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 6,
        "num_attention_heads": 12, "intermediate_size": 1536, "max_position_embeddings": 512});
    BertConfig::from_json(&cfg, "MiniLM-L6 (bench)")
}

/// SmolLM2-135M's shape (checked against the real GGUF by tests/bench_cli.rs).
pub fn smollm2_config() -> Result<LlamaConfig> {
    let cfg = json!({"vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536,
        "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
        "rms_norm_eps": 1e-5, "rope_theta": 100000.0, "max_position_embeddings": 2048,
        "tie_word_embeddings": true});
    LlamaConfig::from_json(&cfg, "SmolLM2-135M (bench)")
}

fn minilm<'a>(e: &'a Engine, name: &str, frozen: bool) -> Result<Case<'a>> {
    let config = minilm_config()?;
    let mut bert = Bert::scratch(e, config, BertTask::SequenceClassification { num_labels: 3 }, 0)?;
    if frozen {
        let sel = Select::Any(vec![
            Select::Glob("bert.embeddings.*".into()),
            Select::Glob("bert.encoder.layer.[0-3].*".into()),
        ]);
        bert.params.freeze(&sel)?;
    }
    let (b, t) = (16usize, 128usize);
    let ids: Vec<u32> =
        (0..b * t).map(|i| if i % t == 0 { 101 } else { 1000 + (i as u32 * 7919) % 20000 }).collect();
    // Every other sequence padded over its last quarter.
    let mask: Vec<u32> = (0..b * t).map(|i| u32::from((i / t) % 2 == 0 || i % t < 3 * t / 4)).collect();
    let labels: Vec<u32> = (0..b as u32).map(|i| i % 3).collect();
    let mut opt = Optimizer::new(e, OptimConfig::new(Method::ADAMW, 2e-5).weight_decay(0.01))?;
    let mut seed = 0;
    Ok(Case {
        name: name.into(),
        work: Some((b as f64, "samples/s")),
        run: Box::new(move || {
            seed += 1;
            let input = BertInput {
                ids: &ids,
                type_ids: None,
                attention_mask: Some(&mask),
                batch: b,
                seq: t,
                embed_offset: None,
            };
            let out = bert.forward(&input, Mode::train(seed))?;
            let logits = out.logits.ok_or_else(|| crate::Error::arg("bench", "MiniLM without a head"))?;
            let loss = cross_entropy(&logits, &labels, CrossEntropy::default())?;
            step(e, &mut bert.params, &mut opt, loss)
        }),
    })
}

fn efficientnet_lite0(e: &Engine) -> Result<Case<'_>> {
    let (mut m, _) =
        EfficientNetLite::load(e, &Lite0Shapes::new(), "EfficientNet-Lite0 (bench)", Some(10), 0)?;
    let x = images(e, 8, 128)?;
    let labels: Vec<u32> = (0..8).map(|i| i % 10).collect();
    let mut opt = Optimizer::new(e, OptimConfig::new(Method::ADAMW, 1e-4))?;
    Ok(Case {
        name: "efficientnet_lite0_step_b8_128".into(),
        work: Some((8.0, "samples/s")),
        run: Box::new(move || {
            let loss = cross_entropy(&m.forward(&x, Mode::train(1))?, &labels, CrossEntropy::default())?;
            step(e, &mut m.params, &mut opt, loss)
        }),
    })
}

/// SmolLM2-135M's shape with LoRA (rank 8) on the attention's q and v projections.
fn smollm2_lora(e: &Engine) -> Result<Case<'_>> {
    let mut m = Llama::scratch(e, smollm2_config()?, 0)?;
    let targets = Select::parse("*.self_attn.{q_proj,v_proj}.weight")?;
    let cfg = LoraConfig { rank: 8, alpha: 16.0, targets, freeze_base: true, train_also: None, seed: 0 };
    lora::apply(&mut m.params, &cfg)?;
    let (b, t) = (4usize, 128usize);
    let ids: Vec<u32> = (0..b * t).map(|i| (i as u32 * 7919) % 49152).collect();
    let mut opt = Optimizer::new(e, OptimConfig::new(Method::ADAMW, 2e-4))?;
    Ok(Case {
        name: "smollm2_lora_step_b4x128".into(),
        work: Some((b as f64, "samples/s")),
        run: Box::new(move || {
            let loss = causal_lm_loss(&m.logits(&ids, b, t, None)?, &ids, None)?;
            step(e, &mut m.params, &mut opt, loss)
        }),
    })
}

/// EfficientNet-Lite0's tensors (the efficientnet_pytorch key layout) with random values:
/// the loader infers the blocks from these shapes as it would from the real checkpoint (the
/// same names and shapes as the real file: tests/bench_cli.rs).
pub struct Lite0Shapes(Vec<TensorInfo>);

impl Default for Lite0Shapes {
    fn default() -> Self {
        Self::new()
    }
}

impl Lite0Shapes {
    pub fn new() -> Lite0Shapes {
        let mut t = Vec::new();
        let mut add =
            |name: String, shape: Vec<usize>| t.push(TensorInfo { name, dtype: WeightDType::F32, shape });
        let bn = |add: &mut dyn FnMut(String, Vec<usize>), p: &str, c: usize| {
            for k in ["weight", "bias", "running_mean", "running_var"] {
                add(format!("{p}.{k}"), vec![c]);
            }
        };
        add("_conv_stem.weight".into(), vec![32, 3, 3, 3]);
        bn(&mut add, "_bn0", 32);
        // (expansion, kernel, stride, input, output, repeats) per stage.
        let stages = [
            (1, 3, 1, 32, 16, 1),
            (6, 3, 2, 16, 24, 2),
            (6, 5, 2, 24, 40, 2),
            (6, 3, 2, 40, 80, 3),
            (6, 5, 1, 80, 112, 3),
            (6, 5, 2, 112, 192, 4),
            (6, 3, 1, 192, 320, 1),
        ];
        let mut i = 0;
        for (expansion, k, _stride, input, output, repeats) in stages {
            for r in 0..repeats {
                let cin = if r == 0 { input } else { output };
                let mid = cin * expansion;
                let p = format!("_blocks.{i}");
                if expansion != 1 {
                    add(format!("{p}._expand_conv.weight"), vec![mid, cin, 1, 1]);
                    bn(&mut add, &format!("{p}._bn0"), mid);
                }
                add(format!("{p}._depthwise_conv.weight"), vec![mid, 1, k, k]);
                bn(&mut add, &format!("{p}._bn1"), mid);
                add(format!("{p}._project_conv.weight"), vec![output, mid, 1, 1]);
                bn(&mut add, &format!("{p}._bn2"), output);
                i += 1;
            }
        }
        add("_conv_head.weight".into(), vec![1280, 320, 1, 1]);
        bn(&mut add, "_bn1", 1280);
        add("_fc.weight".into(), vec![1000, 1280]);
        add("_fc.bias".into(), vec![1000]);
        Lite0Shapes(t)
    }
}

impl WeightSource for Lite0Shapes {
    fn tensors(&self) -> Vec<TensorInfo> {
        self.0.clone()
    }

    fn read_f32(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>)> {
        let info = self.0.iter().find(|t| t.name == name).ok_or_else(|| crate::Error::arg("bench", name))?;
        let n = info.shape.iter().product();
        // Batch-norm statistics as a fresh layer has them; weights small and centred.
        let v = match name {
            _ if name.ends_with("running_var") => vec![1.0; n],
            _ if name.ends_with("running_mean") => vec![0.0; n],
            _ => values(n, n as u64).into_iter().map(|x| x * 0.2).collect(),
        };
        Ok((v, info.shape.clone()))
    }
}
