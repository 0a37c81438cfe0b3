//! The all-reduce that overlaps the backward (data-parallel steps), on one process: gradients
//! gathered page by page as the backward finishes them give the same update as gathering them
//! after the backward, with and without accumulation, and the first pages are on their way
//! back to the host (submitted) before the backward has finished recording.

use whet::dist::Cluster;
use whet::nn::{Origin, Params, Pid, Slot};
use whet::ops::loss::{cross_entropy, CrossEntropy};
use whet::optim::{Method, OptimConfig, Optimizer};
use whet::{Engine, Tensor};

mod common;

fn vals(n: usize, s: u32) -> Vec<f32> {
    (0..n).map(|i| (((i as u32).wrapping_mul(2654435761) ^ s) % 2000) as f32 / 1000.0 - 1.0).collect()
}

/// A three-layer classifier over embedded tokens (the table is used first, the head last).
struct Net {
    params: Params,
    ids: Vec<Pid>,
}

impl Net {
    fn new(e: &Engine) -> Net {
        let mut params = Params::new();
        let shapes: [(&str, &[usize]); 5] = [
            ("table", &[40, 32]),
            ("w1", &[32, 32]),
            ("w2", &[32, 32]),
            ("head", &[32, 5]),
            ("unused", &[7]),
        ];
        let ids = shapes
            .iter()
            .enumerate()
            .map(|(i, (name, shape))| {
                let n = shape.iter().product();
                let t = Tensor::param(e, &vals(n, i as u32 + 1), shape).unwrap();
                params.push(name, t, Slot::Param, Origin::Fresh).unwrap()
            })
            .collect();
        Net { params, ids }
    }

    fn loss(&self, step: u32) -> Tensor {
        let p = |i: usize| self.params.get(self.ids[i]);
        let ids: Vec<u32> = (0..12).map(|i| (i * 7 + step * 3) % 40).collect();
        let labels: Vec<u32> = (0..12).map(|i| (i + step) % 5).collect();
        let h = p(0).embedding(&ids, &[12]).unwrap();
        let h = h.matmul(p(1)).unwrap().tanh().unwrap();
        let h = h.matmul(p(2)).unwrap().tanh().unwrap();
        cross_entropy(&h.matmul(p(3)).unwrap(), &labels, CrossEntropy::default()).unwrap()
    }

    fn values(&self) -> Vec<f32> {
        self.ids.iter().flat_map(|&i| self.params.get(i).to_vec().unwrap()).collect()
    }
}

fn optimizer(e: &Engine, bucket: Option<u64>) -> Optimizer {
    let mut o =
        Optimizer::new(e, OptimConfig::new(Method::ADAMW, 1e-2).weight_decay(0.01).clip(1.0)).unwrap();
    o.set_bucket_bytes(bucket);
    o
}

/// `steps` steps of `micro` micro-batches each, the last one of each step gathered while its
/// backward runs when `overlap`. Returns the parameters and the submits seen by the hook.
fn train(e: &Engine, overlap: bool, micro: u32, steps: u32) -> (Vec<f32>, Vec<u64>) {
    let mut net = Net::new(e);
    // Pages of at most 4 KiB: every parameter but the smallest gets one of its own.
    let mut opt = optimizer(e, overlap.then_some(4096));
    let solo = Cluster::solo();
    let mut submits_in_hook = Vec::new();
    for step in 0..steps {
        for m in 0..micro {
            let loss = net.loss(step * micro + m);
            if overlap && m + 1 == micro {
                let mut ov = opt.begin_overlapped(&mut net.params).unwrap();
                let params = &net.params;
                let o = &mut opt;
                let grads = loss
                    .backward_with(&mut |store, ids| {
                        submits_in_hook.push(e.stats().submits);
                        o.overlap_final(&mut ov, params, store, ids)
                    })
                    .unwrap();
                opt.finish_overlapped(ov, &net.params, &grads, &solo).unwrap();
            } else {
                opt.accumulate(&mut net.params, &loss.backward().unwrap()).unwrap();
            }
        }
        opt.update().unwrap();
    }
    (net.values(), submits_in_hook)
}

#[test]
fn gathering_while_the_backward_runs_updates_as_gathering_after_it() {
    let Some((_g, e)) = common::gpu("overlapped_reduce", "equal") else { return };
    for micro in [1, 3] {
        let (after, _) = train(&e, false, micro, 4);
        let (during, submits) = train(&e, true, micro, 4);
        assert_eq!(after.len(), during.len());
        let worst = after.iter().zip(&during).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        // Only the order of the norm's partial sums differs (other pages): the clip factor.
        assert!(worst <= 1e-6, "{micro} micro-batches: max |Δw| {worst:e}");
        // The head's page was submitted for readback while the backward was still recording
        // the layers below it: the submit count grows between the hook's calls.
        let first_step = &submits[..4];
        assert!(
            first_step.windows(2).any(|w| w[1] > w[0]),
            "no page left before the backward ended: {submits:?}"
        );
    }
}
