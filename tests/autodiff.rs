//! Graph semantics (check A2): accumulation, broadcast reduction, frozen leaves, no_grad,
//! node and saved-byte accounting, and backward twice on a consumed graph.

use whet::graph::count_nodes;
use whet::{Engine, EngineOptions, Error, Tensor};

mod common;

/// A fresh engine per test, or `None` after the loud skip line without an adapter.
fn engine(test: &str) -> Option<Engine> {
    common::own_engine("autodiff", test, EngineOptions::default())
}

fn close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "index {i}: {x} vs {y} ({a:?} vs {b:?})");
    }
}

#[test]
fn x_times_x_gives_two_x() {
    let Some(e) = engine("x_times_x_gives_two_x") else { return };
    let x = Tensor::param(&e, &[1.0, -2.0, 3.5], &[3]).unwrap();
    // d/dx sum(x*x) = 2x: the same tensor used twice accumulates both contributions.
    let g = x.mul(&x).unwrap().sum_all().unwrap().backward().unwrap();
    close(&g.get(&x).unwrap().to_vec().unwrap(), &[2.0, -4.0, 7.0], 1e-6);
}

#[test]
fn reused_intermediate_accumulates() {
    let Some(e) = engine("reused_intermediate_accumulates") else { return };
    let x = Tensor::param(&e, &[0.5, 2.0], &[2]).unwrap();
    let y = x.exp().unwrap();
    // L = sum(y + y*y) => dL/dx = e^x + 2e^{2x}
    let l = y.add(&y.mul(&y).unwrap()).unwrap().sum_all().unwrap();
    let g = l.backward().unwrap();
    let want: Vec<f32> = [0.5f32, 2.0].iter().map(|v| v.exp() + 2.0 * (2.0 * v).exp()).collect();
    close(&g.get(&x).unwrap().to_vec().unwrap(), &want, 1e-5);
}

#[test]
fn broadcast_gradients_are_reduced_to_the_input_shape() {
    let Some(e) = engine("broadcast_gradients_are_reduced_to_the_input_shape") else { return };
    let a = Tensor::param(&e, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap();
    let b = Tensor::param(&e, &[10.0, 20.0, 30.0], &[3]).unwrap();
    let c = Tensor::param(&e, &[2.0, 3.0], &[2, 1]).unwrap();
    // L = sum((a + b) * c)
    let l = a.add(&b).unwrap().mul(&c).unwrap().sum_all().unwrap();
    let g = l.backward().unwrap();
    let (ga, gb, gc) = (g.get(&a).unwrap(), g.get(&b).unwrap(), g.get(&c).unwrap());
    assert_eq!(ga.shape(), &[2, 3]);
    assert_eq!(gb.shape(), &[3]);
    assert_eq!(gc.shape(), &[2, 1]);
    close(&ga.to_vec().unwrap(), &[2.0, 2.0, 2.0, 3.0, 3.0, 3.0], 1e-6);
    close(&gb.to_vec().unwrap(), &[5.0, 5.0, 5.0], 1e-6);
    // dL/dc_i = sum_j (a_ij + b_j)
    close(&gc.to_vec().unwrap(), &[66.0, 75.0], 1e-6);
}

#[test]
fn frozen_inputs_record_no_node_and_save_nothing() {
    let Some(e) = engine("frozen_inputs_record_no_node_and_save_nothing") else { return };
    let w = Tensor::from_slice(&e, &[1.0; 12], &[4, 3]).unwrap(); // frozen: no grad
    let x = Tensor::from_slice(&e, &[0.5; 8], &[2, 4]).unwrap();
    let before = e.stats();
    let y = x.matmul(&w).unwrap().relu().unwrap().sum_all().unwrap();
    let after = e.stats();
    assert_eq!(count_nodes(&y), 0);
    assert_eq!(after.nodes_recorded, before.nodes_recorded, "no node for frozen inputs");
    assert_eq!(after.saved_bytes, before.saved_bytes, "nothing saved for frozen inputs");
    assert!(matches!(y.backward(), Err(Error::Backward(_))));

    // Only the trainable head is recorded: matmul(frozen body) records nothing.
    let head = Tensor::param(&e, &[0.1; 3], &[3, 1]).unwrap();
    let before = e.stats();
    let feats = x.matmul(&w).unwrap().relu().unwrap(); // 0 nodes
    let out = feats.matmul(&head).unwrap().sum_all().unwrap(); // matmul + reshape/sum nodes
    let after = e.stats();
    let nodes = count_nodes(&out);
    assert_eq!(after.nodes_recorded - before.nodes_recorded, nodes as u64);
    assert_eq!(nodes, 3, "matmul, reshape, sum");
    // The head's matmul saves only the features (2x3 floats), never the frozen weight.
    assert_eq!(after.saved_bytes - before.saved_bytes, 2 * 3 * 4);
    let g = out.backward().unwrap();
    assert!(g.get(&w).is_none() && g.get(&x).is_none());
    close(&g.get(&head).unwrap().to_vec().unwrap(), &[4.0, 4.0, 4.0], 1e-6);
}

#[test]
fn no_grad_scope_records_nothing() {
    let Some(e) = engine("no_grad_scope_records_nothing") else { return };
    let w = Tensor::param(&e, &[1.0, 2.0], &[2]).unwrap();
    let before = e.stats().nodes_recorded;
    let y = {
        let _g = e.no_grad();
        w.mul(&w).unwrap().sum_all().unwrap()
    };
    assert_eq!(e.stats().nodes_recorded, before);
    assert!(!y.requires_grad());
    // Recording resumes after the scope.
    let z = w.mul(&w).unwrap().sum_all().unwrap();
    assert!(z.requires_grad());
}

#[test]
fn detached_tensors_get_no_gradient() {
    let Some(e) = engine("detached_tensors_get_no_gradient") else { return };
    let w = Tensor::param(&e, &[3.0], &[1]).unwrap();
    let d = w.detach();
    let l = w.mul(&d).unwrap().sum_all().unwrap(); // d treated as a constant: dL/dw = d = 3
    let g = l.backward().unwrap();
    close(&g.get(&w).unwrap().to_vec().unwrap(), &[3.0], 1e-6);
    assert!(g.get(&d).is_none());
}

#[test]
fn backward_twice_is_a_typed_error() {
    let Some(e) = engine("backward_twice_is_a_typed_error") else { return };
    let w = Tensor::param(&e, &[1.0, 2.0], &[2]).unwrap();
    let l = w.exp().unwrap().sum_all().unwrap();
    l.backward().unwrap();
    match l.backward() {
        Err(Error::GraphConsumed { op }) => assert!(!op.is_empty()),
        other => panic!("expected GraphConsumed, got {other:?}", other = other.map(|g| g.len())),
    }
}

#[test]
fn backward_needs_a_scalar() {
    let Some(e) = engine("backward_needs_a_scalar") else { return };
    let w = Tensor::param(&e, &[1.0, 2.0], &[2]).unwrap();
    let y = w.exp().unwrap();
    assert!(matches!(y.backward(), Err(Error::Backward(m)) if m.contains("scalar")));
}

#[test]
fn deep_chains_do_not_overflow_the_stack() {
    let Some(e) = engine("deep_chains_do_not_overflow_the_stack") else { return };
    let w = Tensor::param(&e, &[1.0], &[1]).unwrap();
    let mut t = w.clone();
    for _ in 0..3000 {
        t = t.add_scalar(0.001).unwrap();
    }
    let g = t.sum_all().unwrap().backward().unwrap();
    close(&g.get(&w).unwrap().to_vec().unwrap(), &[1.0], 1e-6);
}

#[test]
fn no_grad_on_one_thread_does_not_stop_recording_on_another() {
    let Some(e) = engine("no_grad_on_one_thread_does_not_stop_recording_on_another") else { return };
    let w = Tensor::param(&e, &[1.0, 2.0], &[2]).unwrap();
    let _g = e.no_grad();
    assert!(!e.grad_enabled());
    let e2 = e.clone();
    let w2 = w.clone();
    let recorded = std::thread::spawn(move || {
        assert!(e2.grad_enabled());
        w2.mul(&w2).unwrap().sum_all().unwrap().requires_grad()
    })
    .join()
    .unwrap();
    assert!(recorded, "the other thread's ops must still be recorded");
}

#[test]
fn backward_with_reports_each_leaf_once_when_its_gradient_is_final() {
    let Some(e) = engine("backward_with_reports_each_leaf_once_when_its_gradient_is_final") else { return };
    // A three-layer chain where `w1` is used twice (early and late) and `w3` only at the end:
    // `w3` is final first, `w1` only once its earliest use has run.
    let x = Tensor::from_slice(&e, &[0.5, -1.0, 2.0], &[3]).unwrap();
    let w1 = Tensor::param(&e, &[1.0, 2.0, 3.0], &[3]).unwrap();
    let w2 = Tensor::param(&e, &[0.5, 0.5, 0.5], &[3]).unwrap();
    let w3 = Tensor::param(&e, &[-1.0, 1.0, 2.0], &[3]).unwrap();
    let unused = Tensor::param(&e, &[9.0], &[1]).unwrap();
    let build = || {
        let h1 = x.mul(&w1).unwrap().tanh().unwrap();
        let h2 = h1.mul(&w2).unwrap().add(&w1).unwrap().tanh().unwrap();
        h2.mul(&w3).unwrap().sum_all().unwrap()
    };
    let plain = build().backward().unwrap();
    let mut order = Vec::new();
    let mut at_report = Vec::new();
    let with = build()
        .backward_with(&mut |store, ids| {
            for id in ids {
                let t = [&w1, &w2, &w3].into_iter().find(|t| t.id() == *id).expect("a parameter");
                at_report.push(store.get(t).unwrap().to_vec().unwrap());
                order.push(*id);
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(order, vec![w3.id(), w2.id(), w1.id()], "each leaf once, last layer first");
    assert!(!order.contains(&unused.id()));
    for (t, seen) in [&w3, &w2, &w1].into_iter().zip(&at_report) {
        let fin = with.get(t).unwrap().to_vec().unwrap();
        assert_eq!(seen, &fin, "a reported gradient changed afterwards");
        assert_eq!(fin, plain.get(t).unwrap().to_vec().unwrap(), "backward_with differs from backward");
    }
}
