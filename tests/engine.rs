//! Engine behaviour: adapter choice, typed errors (shape, limits, shader compile), buffer
//! pooling and batching (no allocation or compile once a step is warm).

use whet::engine::shaders::{ShaderFile, Spec};
use whet::engine::Kernel;
use whet::nn::{Origin, Params, Slot};
use whet::optim::{Method, OptimConfig, Optimizer};
use whet::{Engine, EngineOptions, Error, Tensor};

mod common;

/// A fresh engine per test, or `None` after the loud skip line without an adapter.
fn engine(test: &str) -> Option<Engine> {
    common::own_engine("engine", test, EngineOptions::default())
}

#[test]
fn unknown_adapter_name_is_a_typed_error_listing_the_choices() {
    let opts = EngineOptions { adapter: Some("no-such-gpu-xyz".into()), ..Default::default() };
    match Engine::new(opts) {
        Err(Error::NoAdapter(msg)) => assert!(msg.contains("no-such-gpu-xyz"), "{msg}"),
        Err(e) => panic!("expected NoAdapter, got {e}"),
        Ok(_) => panic!("an adapter named no-such-gpu-xyz should not exist"),
    }
}

#[test]
fn adapter_is_reported_and_limits_are_the_adapters_own() {
    let Some(e) = engine("adapter_is_reported_and_limits_are_the_adapters_own") else { return };
    eprintln!("adapter: {} {:?}", e.adapter_name(), e.adapter_class());
    // The defaults cap storage bindings at 128 MiB; we request what the adapter offers.
    assert!(e.limits().max_storage_buffer_binding_size >= 128 << 20);
}

#[test]
fn shape_errors_name_the_op_and_both_shapes() {
    let Some(e) = engine("shape_errors_name_the_op_and_both_shapes") else { return };
    let a = Tensor::zeros(&e, &[2, 3]).unwrap();
    let b = Tensor::zeros(&e, &[4, 5]).unwrap();
    let msg = a.matmul(&b).unwrap_err().to_string();
    assert!(msg.contains("matmul") && msg.contains("[2, 3]") && msg.contains("[4, 5]"), "{msg}");
    let msg = a.add(&b).unwrap_err().to_string();
    assert!(msg.contains("add") && msg.contains("[2, 3]") && msg.contains("[4, 5]"), "{msg}");
    assert!(matches!(a.reshape(&[7]), Err(Error::Shape { op: "reshape", .. })));
    assert!(matches!(a.sum(5, false), Err(Error::InvalidArgument { op: "sum", .. })));
    assert!(matches!(Tensor::from_slice(&e, &[1.0; 5], &[2, 3]), Err(Error::InvalidArgument { .. })));
}

#[test]
fn bad_ids_and_labels_are_rejected_on_the_host() {
    let Some(e) = engine("bad_ids_and_labels_are_rejected_on_the_host") else { return };
    let table = Tensor::zeros(&e, &[10, 4]).unwrap();
    let msg = table.embedding(&[1, 2, 10], &[3]).unwrap_err().to_string();
    assert!(msg.contains("id 10") && msg.contains("vocabulary size 10"), "{msg}");
    let logits = Tensor::zeros(&e, &[2, 3]).unwrap();
    let msg = whet::ops::loss::cross_entropy(&logits, &[0, 3], Default::default()).unwrap_err().to_string();
    assert!(msg.contains("target 3") && msg.contains("row 1"), "{msg}");
}

#[test]
fn tensors_past_the_binding_limit_are_refused_before_any_gpu_call() {
    let Some(e) = engine("tensors_past_the_binding_limit_are_refused_before_any_gpu_call") else { return };
    let limit = e.limits().max_storage_buffer_binding_size as usize;
    let too_many = limit / 4 + 1;
    match Tensor::zeros(&e, &[too_many]) {
        Err(Error::BufferTooBig { bytes, limit: l, .. }) => assert!(bytes > l),
        Err(other) => panic!("expected BufferTooBig, got {other}"),
        Ok(_) => panic!("allocation past the binding limit succeeded"),
    }
    // The engine still works afterwards.
    assert_eq!(Tensor::ones(&e, &[3]).unwrap().to_vec().unwrap(), vec![1.0; 3]);
}

#[test]
fn broken_wgsl_through_the_engine_is_a_shader_compile_error() {
    static BROKEN: ShaderFile = ShaderFile {
        name: "test/broken_engine",
        source: "@compute @workgroup_size(WG1) fn main() { let y = 1.0 + ; }",
        specs: &[Spec { entry: "main", overrides: &[] }],
        halves: false,
    };
    let Some(e) = engine("broken_wgsl_through_the_engine_is_a_shader_compile_error") else { return };
    match e.precompile(&Kernel::new(&BROKEN, "main"), &[]) {
        Err(Error::ShaderCompile { shader, message }) => {
            assert_eq!(shader, "test/broken_engine");
            assert!(!message.is_empty());
        }
        other => panic!("expected ShaderCompile, got {other:?}"),
    }
    // No validation error leaked into later work.
    assert_eq!(Tensor::ones(&e, &[2]).unwrap().to_vec().unwrap(), vec![1.0; 2]);
}

#[test]
fn a_warm_step_allocates_no_buffers_and_compiles_no_pipelines() {
    let Some(e) = engine("a_warm_step_allocates_no_buffers_and_compiles_no_pipelines") else { return };
    let mut params = Params::new();
    let w0 = Tensor::param(&e, &vec![0.01; 64 * 32], &[64, 32]).unwrap();
    let w = params.push("w", w0, Slot::Param, Origin::Fresh).unwrap();
    let x = Tensor::from_slice(&e, &vec![0.5; 8 * 64], &[8, 64]).unwrap();
    let mut opt =
        Optimizer::new(&e, OptimConfig::new(Method::ADAMW, 1e-3).weight_decay(0.01).clip(1.0)).unwrap();
    let mut step = || {
        let loss = x.matmul(params.get(w)).unwrap().gelu().unwrap().mean_all().unwrap();
        let g = loss.backward().unwrap();
        opt.step(&mut params, &g).unwrap();
        e.sync().unwrap();
    };
    step();
    step();
    let before = e.stats();
    for _ in 0..3 {
        step();
    }
    let after = e.stats();
    assert_eq!(after.buffers_created, before.buffers_created, "buffers allocated in a warm step");
    assert_eq!(after.pipelines_compiled, before.pipelines_compiled, "pipelines compiled in a warm step");
    assert_eq!(after.bind_groups_created, before.bind_groups_created, "bind groups created in a warm step");
    // One submit per step (the sync); everything else is recorded into it.
    assert_eq!(after.submits - before.submits, 3, "submits per 3 steps");
}

#[test]
fn two_engines_on_two_threads_agree_with_sequential_runs() {
    let Some(_) = engine("two_engines_on_two_threads_agree_with_sequential_runs") else { return };
    let run = || -> Vec<f32> {
        let e = Engine::new(Default::default()).unwrap();
        let w0 = Tensor::param(&e, &(0..48).map(|i| (i as f32 * 0.37).sin()).collect::<Vec<_>>(), &[12, 4])
            .unwrap();
        let mut params = Params::new();
        let w = params.push("w", w0, Slot::Param, Origin::Fresh).unwrap();
        let x =
            Tensor::from_slice(&e, &(0..36).map(|i| (i as f32 * 0.11).cos()).collect::<Vec<_>>(), &[3, 12])
                .unwrap();
        let mut opt = Optimizer::new(&e, OptimConfig::new(Method::ADAMW, 1e-3).weight_decay(0.01)).unwrap();
        for _ in 0..5 {
            let loss = x.matmul(params.get(w)).unwrap().tanh().unwrap().mean_all().unwrap();
            let g = loss.backward().unwrap();
            opt.step(&mut params, &g).unwrap();
        }
        params.get(w).to_vec().unwrap()
    };
    let seq = run();
    let handles: Vec<_> = (0..2).map(|_| std::thread::spawn(run)).collect();
    for h in handles {
        let par = h.join().unwrap();
        let same = par.iter().zip(&seq).all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "parallel run differs from the sequential one");
    }
}

/// Zeros are a transfer command (`clear_buffer`) recorded in program order: a recycled buffer
/// that held other values comes back as zeros, between dispatches that write and read it, in
/// one submit; a ones-fill still goes through the shader.
#[test]
fn zeroing_is_ordered_with_the_dispatches_around_it() {
    let Some(e) = engine("zeroing_is_ordered_with_the_dispatches_around_it") else { return };
    let n = 1000;
    let junk = Tensor::from_slice(&e, &vec![7.5; n], &[n]).unwrap();
    let doubled = junk.add(&junk).unwrap();
    drop(junk);
    // Recorded after the add: the pool hands the add's freed input back for the zeros.
    let zeros = Tensor::zeros(&e, &[n]).unwrap();
    let sum = doubled.add(&zeros).unwrap();
    let ones = Tensor::ones(&e, &[n]).unwrap();
    assert!(zeros.to_vec().unwrap().iter().all(|&v| v == 0.0));
    assert!(sum.to_vec().unwrap().iter().all(|&v| v == 15.0));
    assert!(ones.to_vec().unwrap().iter().all(|&v| v == 1.0));
}
