//! Synchronised batch norm without MPI: an engine whose statistics exchange doubles every sum
//! behaves as one of two ranks holding the very same batch. The global batch then has the same
//! mean and variance as each rank's, so the output and the input gradient equal the plain
//! op's; the weight and bias gradients stay this rank's own (the optimizer's all-reduce sums
//! them), and the running variance takes the unbiased correction of the doubled count.
//! `tests/distributed.rs` checks real ranks against one process.

mod common;

use std::sync::Arc;

use whet::ops::batch_norm::{batch_norm, BatchNorm};
use whet::Tensor;

fn run(e: &whet::Engine, x: &[f32], shape: &[usize]) -> (Vec<f32>, [Vec<f32>; 3], [Vec<f32>; 2]) {
    let c = shape[1];
    let xt = Tensor::param(e, x, shape).unwrap();
    let w = Tensor::param(e, &(0..c).map(|i| 0.5 + i as f32 * 0.25).collect::<Vec<_>>(), &[c]).unwrap();
    let b = Tensor::param(e, &(0..c).map(|i| i as f32 * -0.1).collect::<Vec<_>>(), &[c]).unwrap();
    let rm = Tensor::from_slice(e, &vec![0.0; c], &[c]).unwrap();
    let rv = Tensor::from_slice(e, &vec![1.0; c], &[c]).unwrap();
    let y = batch_norm(&xt, &w, &b, &rm, &rv, &BatchNorm::default()).unwrap();
    let weights: Vec<f32> = (0..y.numel()).map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.1).collect();
    let loss = y.mul(&Tensor::from_slice(e, &weights, shape).unwrap()).unwrap().sum_all().unwrap();
    let g = loss.backward().unwrap();
    let grads = [&xt, &w, &b].map(|t| g.get(t).unwrap().to_vec().unwrap());
    (y.to_vec().unwrap(), grads, [rm.to_vec().unwrap(), rv.to_vec().unwrap()])
}

#[test]
fn two_identical_ranks_normalise_like_one() {
    let Some((_g, e)) = common::gpu("sync_batch_norm", "two_identical_ranks_normalise_like_one") else {
        return;
    };
    let shape = [3, 4, 5, 2];
    let x: Vec<f32> = (0..120).map(|i| ((i * 37 % 29) as f32) * 0.3 - 2.0 + (i % 4) as f32).collect();
    let plain = run(&e, &x, &shape);
    e.set_stat_sync(Some(Arc::new(|buf: &mut [f32]| {
        buf.iter_mut().for_each(|v| *v *= 2.0);
        Ok(())
    })));
    let synced = run(&e, &x, &shape);
    e.set_stat_sync(None);
    let close = |what: &str, a: &[f32], b: &[f32], tol: f32| {
        let d = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs() / (1.0 + x.abs())));
        assert!(d <= tol, "{what}: max relative difference {d}");
    };
    close("output", &plain.0, &synced.0, 1e-5);
    for (name, (a, b)) in ["grad x", "grad weight", "grad bias"].iter().zip(plain.1.iter().zip(&synced.1)) {
        close(name, a, b, 1e-4);
    }
    close("running mean", &plain.2[0], &synced.2[0], 1e-5);
    // Unbiased variance: n/(n−1) of one rank's 30 values vs 2n/(2n−1) of both ranks' 60.
    let n = 30f32;
    for (p, s) in plain.2[1].iter().zip(&synced.2[1]) {
        let (vp, vs) = ((p - 0.9) / 0.1 * (n - 1.0) / n, (s - 0.9) / 0.1 * (2.0 * n - 1.0) / (2.0 * n));
        assert!((vp - vs).abs() <= 1e-4 * (1.0 + vp.abs()), "running variance: {vp} vs {vs}");
    }
}
