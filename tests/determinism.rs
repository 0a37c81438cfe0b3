//! Check N4: the same seed in three fresh processes gives bitwise-identical parameters after
//! 50 training steps (forward, backward with embedding scatter, dropout, AdamW).

use std::process::Command;

use whet::nn::{Origin, Params, Slot};
use whet::ops::loss::{cross_entropy, CrossEntropy};
use whet::optim::{Method, OptimConfig, Optimizer};
use whet::{Engine, Tensor};

mod common;

const FILE: &str = "determinism";
const CHILD_ENV: &str = "WHET_DETERMINISM_CHILD";

fn fnv1a(words: impl Iterator<Item = u32>) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for w in words {
        for b in w.to_le_bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    h
}

/// 50 steps of a tiny classifier over embedded tokens; returns a hash of every parameter bit.
fn train() -> u64 {
    let e = Engine::new(Default::default()).unwrap();
    let vals = |n: usize, s: u32| -> Vec<f32> {
        (0..n).map(|i| (((i as u32).wrapping_mul(2654435761) ^ s) % 2000) as f32 / 1000.0 - 1.0).collect()
    };
    let mut params = Params::new();
    let mut add = |name: &str, t: Tensor| params.push(name, t, Slot::Param, Origin::Fresh).unwrap();
    let table = add("table", Tensor::param(&e, &vals(50 * 16, 1), &[50, 16]).unwrap());
    let w = add("w", Tensor::param(&e, &vals(16 * 5, 2), &[16, 5]).unwrap());
    let b = add("b", Tensor::param(&e, &[0.0; 5], &[5]).unwrap());
    let mut opt =
        Optimizer::new(&e, OptimConfig::new(Method::ADAMW, 1e-2).weight_decay(0.01).clip(1.0)).unwrap();
    for step in 0..50u32 {
        let ids: Vec<u32> = (0..24).map(|i| (i * 7 + step * 3) % 50).collect();
        let labels: Vec<u32> = (0..24).map(|i| (i + step) % 5).collect();
        let x = params.get(table).embedding(&ids, &[24]).unwrap().dropout(0.1, step as u64).unwrap();
        let logits = x.matmul(params.get(w)).unwrap().add(params.get(b)).unwrap();
        let loss =
            cross_entropy(&logits, &labels, CrossEntropy { label_smoothing: 0.1, ..Default::default() })
                .unwrap();
        let g = loss.backward().unwrap();
        opt.step(&mut params, &g).unwrap();
    }
    let mut all = params.get(table).to_vec().unwrap();
    all.extend(params.get(w).to_vec().unwrap());
    all.extend(params.get(b).to_vec().unwrap());
    fnv1a(all.iter().map(|v| v.to_bits()))
}

#[test]
fn determinism_child() {
    if std::env::var_os(CHILD_ENV).is_some() {
        println!("HASH={:016x}", train());
    }
}

#[test]
fn same_seed_three_processes_bitwise_identical() {
    if common::own_engine(FILE, "same_seed_three_processes_bitwise_identical", Default::default()).is_none() {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let hashes: Vec<String> = (0..3)
        .map(|_| {
            let out = Command::new(&exe)
                .args(["--exact", "determinism_child", "--nocapture", "--test-threads=1"])
                .env(CHILD_ENV, "1")
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            assert!(out.status.success(), "child failed: {text}\n{}", String::from_utf8_lossy(&out.stderr));
            text.split("HASH=")
                .nth(1)
                .map(|s| s.chars().take(16).collect::<String>())
                .expect("child printed its hash")
        })
        .collect();
    assert!(hashes.iter().all(|h| h == &hashes[0]), "parameters differ between processes: {hashes:?}");
}
