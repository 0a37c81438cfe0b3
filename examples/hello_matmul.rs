//! A tour of the engine in one screen: open a device, make tensors, run an op, take a gradient,
//! read the result back.
//!
//! Run with `cargo run --release --example hello_matmul`.

use whet::{Engine, Tensor};

fn main() -> whet::Result<()> {
    // 1. The engine picks the best adapter (discrete > integrated > CPU); WHET_ADAPTER overrides.
    let engine = Engine::new(whet::EngineOptions::from_env()?)?;
    println!("adapter: {} ({:?})", engine.adapter_name(), engine.adapter_class());

    // 2. Tensors live on the device. `param` makes a leaf that gets a gradient.
    let w = Tensor::param(&engine, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[3, 2])?;
    let x = Tensor::from_slice(&engine, &[1.0, 0.5, -1.0, 2.0, 0.0, 1.0], &[2, 3])?;

    // 3. Ops are recorded; nothing runs until we read something back.
    let y = x.matmul(&w)?; // (2, 3) · (3, 2) -> (2, 2)
    let loss = y.relu()?.sum_all()?;

    // 4. Backward from the scalar loss: gradients for every leaf that requires grad.
    let grads = loss.backward()?;
    let gw = grads.get(&w).expect("w requires grad");

    // 5. Readback submits the recorded work as one command buffer and waits (with a timeout).
    println!("y    = {:?}", y.to_vec()?);
    println!("loss = {}", loss.item()?);
    println!("dL/dw = {:?}", gw.to_vec()?);

    // 6. Check against the CPU: dL/dw[k][j] = sum over rows i with y[i][j] > 0 of x[i][k].
    let (xs, ys) = ([[1.0, 0.5, -1.0], [2.0, 0.0, 1.0]], y.to_vec()?);
    let mut want = [0.0f32; 6];
    for i in 0..2 {
        for k in 0..3 {
            for j in 0..2 {
                if ys[i * 2 + j] > 0.0 {
                    want[k * 2 + j] += xs[i][k];
                }
            }
        }
    }
    assert_eq!(gw.to_vec()?, want);
    let s = engine.stats();
    println!(
        "{} dispatches in {} submits, {} pipelines compiled",
        s.dispatches, s.submits, s.pipelines_compiled
    );
    Ok(())
}
