//! `make demo` for the engine: an MLP (64 → 128 → 10, GELU) trained with AdamW on the real UCI
//! digits that scikit-learn ships, on whatever adapter the engine picks. Prints the loss per
//! epoch and held-out accuracy. (Later issues replace this with MiniLM fine-tuning.)
//!
//! `cargo run --release --example digits_mlp -- [path/to/digits.csv.gz]`

use std::time::Instant;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use whet::data::digits::Digits;
use whet::nn::{Origin, Params, Slot};
use whet::ops::loss::{cross_entropy, CrossEntropy};
use whet::optim::{Method, OptimConfig, Optimizer};
use whet::{Engine, Tensor};

/// torch.nn.Linear's default initialisation: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
fn linear(e: &Engine, rng: &mut ChaCha8Rng, fan_in: usize, fan_out: usize) -> whet::Result<(Tensor, Tensor)> {
    let bound = 1.0 / (fan_in as f32).sqrt();
    let w: Vec<f32> = (0..fan_in * fan_out).map(|_| rng.random_range(-bound..bound)).collect();
    let b: Vec<f32> = (0..fan_out).map(|_| rng.random_range(-bound..bound)).collect();
    Ok((Tensor::param(e, &w, &[fan_in, fan_out])?, Tensor::param(e, &b, &[fan_out])?))
}

fn main() -> whet::Result<()> {
    let path = std::env::args().nth(1).unwrap_or_else(|| "assets/digits.csv.gz".into());
    let data = Digits::load(&path)?;
    let engine = Engine::new(whet::EngineOptions::from_env()?)?;
    println!("adapter: {}   data: {} ({} samples)", engine.adapter_name(), path, data.len());

    // Seeded 80/20 split.
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut idx: Vec<usize> = (0..data.len()).collect();
    idx.shuffle(&mut rng);
    let n_test = data.len() / 5;
    let (test_idx, train_idx) = idx.split_at(n_test);
    let gather = |ids: &[usize]| -> (Vec<f32>, Vec<u32>) {
        let mut x = Vec::with_capacity(ids.len() * Digits::FEATURES);
        for &i in ids {
            x.extend_from_slice(&data.pixels[i * Digits::FEATURES..(i + 1) * Digits::FEATURES]);
        }
        (x, ids.iter().map(|&i| data.labels[i]).collect())
    };

    let mut params = Params::new();
    let (w1, b1) = linear(&engine, &mut rng, Digits::FEATURES, 128)?;
    let (w2, b2) = linear(&engine, &mut rng, 128, Digits::CLASSES)?;
    let [w1, b1, w2, b2] = [("fc1.weight", w1), ("fc1.bias", b1), ("fc2.weight", w2), ("fc2.bias", b2)]
        .map(|(n, t)| params.push(n, t, Slot::Param, Origin::Fresh).expect("distinct names"));
    let forward = |p: &Params, x: &Tensor| -> whet::Result<Tensor> {
        x.matmul(p.get(w1))?.add(p.get(b1))?.gelu()?.matmul(p.get(w2))?.add(p.get(b2))
    };
    let mut opt = Optimizer::new(&engine, OptimConfig::new(Method::ADAMW, 3e-3).weight_decay(1e-4))?;

    let batch = 64;
    let epochs = 25;
    let t0 = Instant::now();
    let mut order: Vec<usize> = train_idx.to_vec();
    for epoch in 1..=epochs {
        order.shuffle(&mut rng);
        let mut total: Option<Tensor> = None;
        for chunk in order.chunks(batch) {
            let (x, y) = gather(chunk);
            let x = Tensor::from_slice(&engine, &x, &[chunk.len(), Digits::FEATURES])?;
            let loss = cross_entropy(&forward(&params, &x)?, &y, CrossEntropy::default())?;
            let grads = loss.backward()?;
            opt.step(&mut params, &grads)?;
            // Summed on the device: the steps never wait for a readback.
            let _g = engine.no_grad();
            total = Some(match total {
                Some(t) => t.add(&loss.detach())?,
                None => loss.detach(),
            });
        }
        // One readback per epoch.
        let steps = order.len().div_ceil(batch) as f32;
        let mean = total.map(|t| t.item()).transpose()?.unwrap_or(0.0) / steps;
        if epoch % 5 == 0 || epoch == 1 {
            println!("epoch {epoch:>2}  train loss {mean:.4}");
        }
    }
    let train_s = t0.elapsed().as_secs_f64();

    let (x, y) = gather(test_idx);
    let logits = {
        let _g = engine.no_grad();
        forward(&params, &Tensor::from_slice(&engine, &x, &[test_idx.len(), Digits::FEATURES])?)?.to_vec()?
    };
    let correct = logits
        .chunks(Digits::CLASSES)
        .zip(&y)
        .filter(|(row, &t)| {
            let arg = row.iter().enumerate().fold(0, |best, (i, v)| if *v > row[best] { i } else { best });
            arg as u32 == t
        })
        .count();
    let s = engine.stats();
    println!(
        "test accuracy {:.2}% ({correct}/{})   {epochs} epochs in {train_s:.1} s   {} dispatches, {} submits, {} pipelines",
        100.0 * correct as f64 / y.len() as f64,
        y.len(),
        s.dispatches,
        s.submits,
        s.pipelines_compiled
    );
    Ok(())
}
