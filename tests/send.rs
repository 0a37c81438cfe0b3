//! Issue 18, item 5: a host trains on a worker thread, so everything it moves there must be
//! `Send`. These are compile-time checks: a type that stops being `Send` fails the build of
//! this test, not a run.

use whet::models::bert::Bert;
use whet::models::efficientnet::EfficientNetLite;
use whet::models::gpt2::Gpt2;
use whet::models::llama::Llama;
use whet::models::resnet::ResNet;
use whet::models::vgg::Vgg;
use whet::models::zoo::AnyModel;
use whet::run::inference::Trained;
use whet::run::{Outcome, Prepared, Recipe, RunOptions, TaskBox};
use whet::train::{Driver, DriverConfig, Event, OnEvent, RunSummary, StopFlag};
use whet::{Engine, Error, Tensor};

fn send<T: Send>() {}
fn shared<T: Send + Sync>() {}

#[test]
fn what_a_host_moves_to_a_worker_thread_is_send() {
    send::<Engine>();
    send::<Tensor>();
    send::<Driver>();
    send::<DriverConfig>();
    send::<AnyModel>();
    send::<Bert>();
    send::<Gpt2>();
    send::<Llama>();
    send::<ResNet>();
    send::<Vgg>();
    send::<EfficientNetLite>();
    send::<TaskBox>();
    send::<Prepared>();
    send::<Trained>();
    send::<Recipe>();
    send::<RunOptions>();
    send::<Outcome>();
    send::<RunSummary>();
    send::<Event>();
    // Errors cross threads inside `Result`s (a worker's join handle).
    shared::<Error>();
    // The cancel handle and the callback are shared between the UI and the worker.
    shared::<StopFlag>();
    shared::<OnEvent>();
}

#[test]
fn a_driver_and_engine_really_move_to_another_thread() {
    // The compile-time check above, exercised: built here, used and dropped there.
    let Some(engine) = Engine::try_default() else {
        eprintln!("!!!!!!!! send: NO GPU ADAPTER, GPU CHECK SKIPPED !!!!!!!!");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let driver = Driver::new(
        &engine,
        DriverConfig::new(dir.path()),
        whet::optim::OptimConfig::new(whet::optim::Method::ADAMW, 1e-3),
    )
    .unwrap();
    let t = Tensor::from_slice(&engine, &[1.0, 2.0], &[2]).unwrap();
    let sum = std::thread::spawn(move || {
        let _d = driver;
        t.sum_all().unwrap().item().unwrap()
    })
    .join()
    .unwrap();
    assert_eq!(sum, 3.0);
}
