//! Fine-tuning controls against closed forms: L2-SP, EWC and distillation losses and
//! gradients, clipping, accumulation, Adam vs AdamW decay, the no-decay rule for biases and
//! norms, layer-wise rates, unfreezing plans with re-warm-up, and LoRA (unchanged at init,
//! merge on export equals the adapted forward).

mod common;

use std::sync::MutexGuard;

use whet::nn::lora::{self, LoraConfig};
use whet::nn::{Linear, Origin, Params, Pid, Select, Slot};
use whet::optim::{GroupSpec, LayerLr, Method, OptimConfig, Optimizer, Schedule};
use whet::train::distill::distillation_loss;
use whet::train::ewc::Ewc;
use whet::train::l2sp::L2Sp;
use whet::train::unfreeze::Plan;
use whet::{Engine, Tensor};

fn gpu(test: &str) -> Option<(MutexGuard<'static, ()>, Engine)> {
    common::gpu("finetune_controls", test)
}

fn vals(n: usize, seed: u32, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            ((((i as u32).wrapping_mul(2654435761) ^ seed.wrapping_mul(40503)) % 2001) as f32 / 1000.0 - 1.0)
                * scale
        })
        .collect()
}

fn close(what: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((*g as f64 - w).abs() <= tol * (1.0 + w.abs()), "{what}[{i}]: got {g}, want {w}");
    }
}

fn push(p: &mut Params, name: &str, e: &Engine, data: &[f32], shape: &[usize], origin: Origin) -> Pid {
    p.push(name, Tensor::from_slice(e, data, shape).unwrap(), Slot::Param, origin).unwrap()
}

#[test]
fn l2sp_penalty_and_gradients_match_the_formula() {
    let Some((_g, e)) = gpu("l2sp") else { return };
    let mut p = Params::new();
    let w0 = vals(300, 1, 0.5);
    let a = push(&mut p, "body.weight", &e, &w0, &[20, 15], Origin::Checkpoint);
    let h0 = vals(7, 2, 0.3);
    let h = push(&mut p, "head.weight", &e, &h0, &[7], Origin::Fresh);
    let reg = L2Sp::new(&p, 0.01, 0.5).unwrap();
    let w1: Vec<f32> = w0.iter().zip(vals(300, 3, 0.1)).map(|(a, b)| a + b).collect();
    p.assign("body.weight", &w1).unwrap();
    let pen = reg.penalty(&p).unwrap().unwrap();
    let want: f64 = 0.01 * w1.iter().zip(&w0).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum::<f64>()
        + 0.5 * h0.iter().map(|v| (*v as f64).powi(2)).sum::<f64>();
    close("penalty", &[pen.item().unwrap()], &[want], 1e-5);
    let g = pen.backward().unwrap();
    let ga: Vec<f64> = w1.iter().zip(&w0).map(|(a, b)| 0.02 * (*a as f64 - *b as f64)).collect();
    close("d/dw", &g.get(p.get(a)).unwrap().to_vec().unwrap(), &ga, 1e-5);
    close(
        "d/dhead",
        &g.get(p.get(h)).unwrap().to_vec().unwrap(),
        &h0.iter().map(|v| 1.0 * *v as f64).collect::<Vec<_>>(),
        1e-5,
    );
    // A frozen parameter is not penalised.
    p.freeze(&Select::Prefix("body".into())).unwrap();
    let only_head = reg.penalty(&p).unwrap().unwrap().item().unwrap() as f64;
    close(
        "frozen body",
        &[only_head as f32],
        &[0.5 * h0.iter().map(|v| (*v as f64).powi(2)).sum::<f64>()],
        1e-5,
    );
}

#[test]
fn ewc_fisher_penalty_and_gradient_match_the_formula() {
    let Some((_g, e)) = gpu("ewc") else { return };
    let mut p = Params::new();
    let w0 = vals(12, 4, 1.0);
    let w = push(&mut p, "w", &e, &w0, &[12], Origin::Checkpoint);
    // Source loss of batch i: Σ_j w_j x_ij ⇒ gradient x_i, Fisher = mean_i x_ij².
    let xs: Vec<Vec<f32>> = (0..3).map(|i| vals(12, 10 + i, 2.0)).collect();
    let ewc = Ewc::estimate(4.0, &p, 3, |i| {
        let x = Tensor::from_slice(&e, &xs[i], &[12])?;
        p.get(w).mul(&x)?.sum_all()
    })
    .unwrap();
    let fisher: Vec<f64> =
        (0..12).map(|j| xs.iter().map(|x| (x[j] as f64).powi(2)).sum::<f64>() / 3.0).collect();
    close("fisher", &ewc.fisher("w").unwrap().to_vec().unwrap(), &fisher, 1e-6);
    let w1: Vec<f32> = w0.iter().zip(vals(12, 20, 0.2)).map(|(a, b)| a + b).collect();
    p.assign("w", &w1).unwrap();
    let pen = ewc.penalty(&p).unwrap().unwrap();
    let d: Vec<f64> = w1.iter().zip(&w0).map(|(a, b)| *a as f64 - *b as f64).collect();
    let want = 2.0 * fisher.iter().zip(&d).map(|(f, d)| f * d * d).sum::<f64>();
    close("penalty", &[pen.item().unwrap()], &[want], 1e-5);
    let g = pen.backward().unwrap();
    let gw: Vec<f64> = fisher.iter().zip(&d).map(|(f, d)| 4.0 * f * d).collect();
    close("gradient", &g.get(p.get(w)).unwrap().to_vec().unwrap(), &gw, 1e-5);
}

#[test]
fn distillation_loss_and_gradient_match_kl_at_temperature() {
    let Some((_g, e)) = gpu("distill") else { return };
    let (rows, c, t) = (5usize, 7usize, 2.5f64);
    let s = vals(rows * c, 31, 3.0);
    let tt = vals(rows * c, 32, 3.0);
    let st = Tensor::param(&e, &s, &[rows, c]).unwrap();
    let teacher = Tensor::from_slice(&e, &tt, &[rows, c]).unwrap();
    let loss = distillation_loss(&st, &teacher, t as f32).unwrap();
    let soft = |v: &[f32], r: usize| -> Vec<f64> {
        let row: Vec<f64> = v[r * c..(r + 1) * c].iter().map(|x| *x as f64 / t).collect();
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = row.iter().map(|x| (x - m).exp()).sum();
        row.iter().map(|x| (x - m).exp() / z).collect()
    };
    let mut kl = 0.0;
    let mut grad = vec![0.0; rows * c];
    for r in 0..rows {
        let (ps, pt) = (soft(&s, r), soft(&tt, r));
        for j in 0..c {
            kl += pt[j] * (pt[j].ln() - ps[j].ln());
            grad[r * c + j] = t / rows as f64 * (ps[j] - pt[j]);
        }
    }
    close("loss", &[loss.item().unwrap()], &[t * t * kl / rows as f64], 1e-5);
    let g = loss.backward().unwrap();
    close("d/dstudent", &g.get(&st).unwrap().to_vec().unwrap(), &grad, 1e-5);
    assert!(g.get(&teacher).is_none(), "the teacher gets no gradient");
}

/// One SGD step (lr 1, no momentum) on loss = Σ w·c, i.e. gradient c.
fn sgd_step_with(e: &Engine, c: &[f32], cfg: OptimConfig) -> (Vec<f32>, Option<f32>) {
    let mut p = Params::new();
    let w = push(&mut p, "w", e, &vec![0.0; c.len()], &[c.len()], Origin::Fresh);
    let ct = Tensor::from_slice(e, c, &[c.len()]).unwrap();
    let mut opt = Optimizer::new(e, cfg).unwrap();
    let g = p.get(w).mul(&ct).unwrap().sum_all().unwrap().backward().unwrap();
    opt.step(&mut p, &g).unwrap();
    (p.get(w).to_vec().unwrap(), opt.last_grad_norm().unwrap())
}

#[test]
fn clipping_scales_to_the_global_norm_on_the_device() {
    let Some((_g, e)) = gpu("clip") else { return };
    let c = vals(1000, 5, 1.0);
    let norm = c.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
    let (w, n) = sgd_step_with(&e, &c, OptimConfig::new(Method::sgd(0.0), 1.0).clip(2.0));
    let k = (2.0 / (norm + 1e-6)).min(1.0);
    close("clipped step", &w, &c.iter().map(|v| -k * *v as f64).collect::<Vec<_>>(), 1e-5);
    close("norm", &[n.unwrap()], &[norm], 1e-5);
    // Below the threshold nothing changes.
    let (w, _) = sgd_step_with(&e, &c, OptimConfig::new(Method::sgd(0.0), 1.0).clip(1e6));
    close("unclipped", &w, &c.iter().map(|v| -(*v as f64)).collect::<Vec<_>>(), 1e-6);
}

#[test]
fn accumulating_two_halves_equals_the_full_batch() {
    let Some((_g, e)) = gpu("accumulate") else { return };
    let x = Tensor::from_slice(&e, &vals(8 * 6, 7, 1.0), &[8, 6]).unwrap();
    let run = |micro: bool| -> Vec<f32> {
        let mut p = Params::new();
        let w = push(&mut p, "w", &e, &vals(6 * 3, 8, 0.5), &[6, 3], Origin::Fresh);
        let mut opt = Optimizer::new(&e, OptimConfig::new(Method::sgd(0.9), 0.1)).unwrap();
        for _ in 0..2 {
            if micro {
                for h in 0..2 {
                    let xh = x.slice(0, 4 * h, 4).unwrap();
                    let l = xh
                        .matmul(p.get(w))
                        .unwrap()
                        .tanh()
                        .unwrap()
                        .sum_all()
                        .unwrap()
                        .mul_scalar(0.5)
                        .unwrap();
                    let g = l.backward().unwrap();
                    if h == 0 {
                        opt.accumulate(&mut p, &g).unwrap()
                    } else {
                        opt.step(&mut p, &g).unwrap()
                    }
                }
            } else {
                let l =
                    x.matmul(p.get(w)).unwrap().tanh().unwrap().sum_all().unwrap().mul_scalar(0.5).unwrap();
                opt.step(&mut p, &l.backward().unwrap()).unwrap();
            }
        }
        p.get(w).to_vec().unwrap()
    };
    let (a, b) = (run(true), run(false));
    close("accumulated", &a, &b.iter().map(|v| *v as f64).collect::<Vec<_>>(), 1e-6);
}

#[test]
fn adam_couples_and_adamw_decouples_decay_and_1d_params_skip_it() {
    let Some((_g, e)) = gpu("decay") else { return };
    let (lr, wd, gv) = (0.1f64, 0.5f64, 0.3f64);
    for (method, decoupled) in [(Method::ADAMW, true), (Method::ADAM, false)] {
        let mut p = Params::new();
        let w2 = push(&mut p, "lin.weight", &e, &[1.0; 4], &[2, 2], Origin::Fresh);
        let b = push(&mut p, "lin.bias", &e, &[1.0; 2], &[2], Origin::Fresh);
        let mut opt = Optimizer::new(&e, OptimConfig::new(method, lr).weight_decay(wd as f32)).unwrap();
        let l = p
            .get(w2)
            .sum_all()
            .unwrap()
            .add(&p.get(b).sum_all().unwrap())
            .unwrap()
            .mul_scalar(gv as f32)
            .unwrap();
        opt.step(&mut p, &l.backward().unwrap()).unwrap();
        // One bias-corrected Adam step moves by lr · g/(|g| + eps) ≈ lr · sign(g).
        let adam = |g: f64| lr * g / (g.abs() + 1e-8);
        let want_w = if decoupled { 1.0 * (1.0 - lr * wd) - adam(gv) } else { 1.0 - adam(gv + wd * 1.0) };
        close(&format!("{method:?} weight"), &p.get(w2).to_vec().unwrap(), &[want_w; 4], 1e-6);
        close(
            &format!("{method:?} bias (no decay)"),
            &p.get(b).to_vec().unwrap(),
            &[1.0 - adam(gv); 2],
            1e-6,
        );
    }
}

#[test]
fn groups_layerwise_rates_and_gradual_unfreezing_with_rewarmup() {
    let Some((_g, e)) = gpu("groups") else { return };
    let mut p = Params::new();
    for d in 0..4 {
        push(&mut p, &format!("layer.{d}.weight"), &e, &[0.5; 64], &[8, 8], Origin::Checkpoint);
    }
    push(&mut p, "head.weight", &e, &[0.5; 16], &[2, 8], Origin::Fresh);
    p.set_depths(|path| path.split('.').nth(1).and_then(|s| s.parse::<usize>().ok()).unwrap_or(4));
    let plan = Plan::gradual_by_depth(&p, 1);
    let changed = plan.apply(&mut p, 0).unwrap();
    assert_eq!(changed.len(), 4, "epoch 0: only the head trains");
    let cfg = OptimConfig::new(Method::ADAMW, 1e-3)
        .layer_lr(LayerLr::Decay { factor: 0.5 })
        .group(GroupSpec::new("head", Select::Prefix("head".into())).lr(1e-2).schedule(Schedule::Constant));
    let mut opt = Optimizer::new(&e, OptimConfig { rejoin_warmup: 4, ..cfg }).unwrap();
    let step = |p: &mut Params, opt: &mut Optimizer| {
        let loss =
            p.parameters().iter().map(|t| t.sum_all().unwrap()).reduce(|a, b| a.add(&b).unwrap()).unwrap();
        let g = loss.backward().unwrap();
        opt.step(p, &g).unwrap();
    };
    step(&mut p, &mut opt);
    assert_eq!(opt.current_lrs(&p).len(), 1);
    assert_eq!(plan.apply(&mut p, 1).unwrap(), vec!["layer.3.weight".to_string()]);
    step(&mut p, &mut opt);
    let lrs: std::collections::HashMap<_, _> = opt.current_lrs(&p).into_iter().collect();
    // head: own group at 1e-2 (depth 4 = top: factor 1); layer 3 joined at step 1, is at its
    // second warm-up step (2/4) of 1e-3 · 0.5^(4−3).
    assert!((lrs["head.weight"] - 1e-2).abs() < 1e-12);
    assert!((lrs["layer.3.weight"] - 1e-3 * 0.5 * 2.0 / 4.0).abs() < 1e-12, "{lrs:?}");
    for ep in 2..5 {
        plan.apply(&mut p, ep).unwrap();
    }
    assert_eq!(p.count(true), p.count(false), "all unfrozen by epoch 4");
    let lp = Plan::LpFt { head: Select::Prefix("head".into()), probe_epochs: 2 };
    lp.apply(&mut p, 0).unwrap();
    assert_eq!(p.count(true), 16);
    lp.apply(&mut p, 2).unwrap();
    assert_eq!(p.count(true), p.count(false));
}

#[test]
fn lora_starts_as_the_base_model_and_merges_on_export() {
    let Some((_g, e)) = gpu("lora") else { return };
    let mut p = Params::new();
    let w = push(&mut p, "attn.q.weight", &e, &vals(6 * 10, 40, 0.3), &[6, 10], Origin::Checkpoint);
    let bias = push(&mut p, "attn.q.bias", &e, &vals(6, 41, 0.3), &[6], Origin::Checkpoint);
    let lin = Linear { weight: w, bias: Some(bias), in_features: 10, out_features: 6, in_major: false };
    let x = Tensor::from_slice(&e, &vals(3 * 10, 42, 1.0), &[3, 10]).unwrap();
    let base = lin.forward(&p, &x).unwrap().to_vec().unwrap();
    let cfg = LoraConfig {
        rank: 2,
        alpha: 4.0,
        targets: Select::Glob("*.q.weight".into()),
        freeze_base: true,
        train_also: None,
        seed: 1,
    };
    assert_eq!(lora::apply(&mut p, &cfg).unwrap(), 1);
    assert_eq!(p.count(true), 2 * 10 + 6 * 2, "only the adapters train");
    close(
        "at init",
        &lin.forward(&p, &x).unwrap().to_vec().unwrap(),
        &base.iter().map(|v| *v as f64).collect::<Vec<_>>(),
        1e-6,
    );
    let mut opt = Optimizer::new(&e, OptimConfig::new(Method::ADAMW, 0.05)).unwrap();
    for _ in 0..3 {
        let g = lin
            .forward(&p, &x)
            .unwrap()
            .mul(&lin.forward(&p, &x).unwrap())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        opt.step(&mut p, &g).unwrap();
    }
    let adapted = lin.forward(&p, &x).unwrap().to_vec().unwrap();
    assert!(
        adapted.iter().zip(&base).any(|(a, b)| (a - b).abs() > 1e-3),
        "training moved the adapted output"
    );
    let merged = lora::merged(&p).unwrap();
    assert_eq!(merged.len(), 2, "adapters are not exported");
    let mut plain = Params::new();
    for (k, t) in &merged {
        plain.push(k, t.detach(), Slot::Param, Origin::Checkpoint).unwrap();
    }
    let lin2 =
        Linear { weight: plain.find("attn.q.weight").unwrap(), bias: plain.find("attn.q.bias"), ..lin };
    close(
        "merged",
        &lin2.forward(&plain, &x).unwrap().to_vec().unwrap(),
        &adapted.iter().map(|v| *v as f64).collect::<Vec<_>>(),
        1e-5,
    );
}
