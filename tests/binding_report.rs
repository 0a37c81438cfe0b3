//! Check F3: a checkpoint that does not fit its model fails with ONE report naming every
//! missing key, unexpected key, size mismatch, non-float dtype and non-finite tensor; the same
//! report comes out of `whet inspect --model`.

mod common;

use std::collections::HashMap;

use common::fixtures as fx;
use safetensors::tensor::{Dtype, TensorView};
use whet::models::resnet::ResNet;
use whet::weights::safetensors::SafeTensorsFile;
use whet::weights::WeightSource;
use whet::Error;

/// resnet18_tv with: layer1.0.conv1.weight dropped, fc.bias renamed, bn1.weight resized,
/// conv1.weight poisoned with a NaN and layer2.0.bn1.running_var stored as I64.
fn damaged(dir: &std::path::Path) -> std::path::PathBuf {
    let st = SafeTensorsFile::open(fx::fixtures_dir().join("resnet18_tv.weights.safetensors")).unwrap();
    let mut data: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for info in st.tensors() {
        let name = info.name.clone();
        if name == "layer1.0.conv1.weight" {
            continue;
        }
        let mut bytes = st.bytes(&name).unwrap().to_vec();
        let mut shape = info.shape.clone();
        let mut dtype =
            if matches!(info.dtype, whet::weights::WeightDType::I64) { Dtype::I64 } else { Dtype::F32 };
        let out = match name.as_str() {
            "fc.bias" => "fc.bias_old".to_string(),
            "bn1.weight" => {
                bytes.truncate(32 * 4);
                shape = vec![32];
                name
            }
            "conv1.weight" => {
                bytes[..4].copy_from_slice(&f32::NAN.to_le_bytes());
                name
            }
            "layer2.0.bn1.running_var" => {
                let n = bytes.len() / 4;
                bytes = (0..n as i64).flat_map(|v| v.to_le_bytes()).collect();
                dtype = Dtype::I64;
                name
            }
            _ => name,
        };
        data.push((out, dtype, shape, bytes));
    }
    let views: HashMap<String, TensorView> =
        data.iter().map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap())).collect();
    let path = dir.join("damaged_resnet18.safetensors");
    safetensors::serialize_to_file(&views, None, &path).unwrap();
    path
}

#[test]
fn every_problem_is_in_one_report() {
    let case = "every_problem_is_in_one_report";
    let Some((_g, e)) = common::gpu("binding_report", case) else { return };
    if fx::io(case, "resnet18_tv").is_none() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("whet-bind-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = damaged(&dir);
    let st = SafeTensorsFile::open(&path).unwrap();
    let report = match ResNet::load(&e, &st, "damaged", None, 0) {
        Ok(_) => panic!("a damaged checkpoint loaded"),
        Err(Error::Binding(r)) => r,
        Err(other) => panic!("expected a binding report, got {other}"),
    };
    let text = report.to_string();
    for needle in [
        "missing: layer1.0.conv1.weight (model expects [64, 64, 3, 3])",
        "missing: fc.bias (model expects [5])",
        "unexpected: fc.bias_old [5]",
        "size mismatch for bn1.weight: checkpoint [32], model [64]",
        "non-finite: conv1.weight holds 1 NaN/Inf value(s)",
        "dtype: layer2.0.bn1.running_var is I64",
    ] {
        assert!(text.contains(needle), "report lacks '{needle}':\n{text}");
    }
    assert_eq!(report.problems(), 6, "{text}");
    // The CLI prints the same report and exits non-zero.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_whet"))
        .args(["inspect", path.to_str().unwrap(), "--model", "resnet"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("size mismatch for bn1.weight: checkpoint [32], model [64]"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Check G1 at load time: a checkpoint tensor larger than one device binding is reported as
/// too big before anything is read or uploaded (it would otherwise fail inside the driver).
#[test]
fn a_tensor_over_the_binding_limit_is_refused_before_any_gpu_call() {
    use whet::nn::Binder;
    use whet::weights::{TensorInfo, WeightDType};
    struct Huge(usize);
    impl WeightSource for Huge {
        fn tensors(&self) -> Vec<TensorInfo> {
            vec![TensorInfo { name: "wte.weight".into(), dtype: WeightDType::F32, shape: vec![self.0] }]
        }
        fn read_f32(&self, name: &str) -> whet::Result<(Vec<f32>, Vec<usize>)> {
            panic!("{name} was read although it can never be bound")
        }
    }
    let Some((_g, e)) = common::gpu("binding_report", "a_tensor_over_the_binding_limit_is_refused") else {
        return;
    };
    let n = (e.limits().max_storage_buffer_binding_size as usize) / 4 + 1;
    let src = Huge(n);
    let mut b = Binder::new(&e, Some(&src), "huge", "test");
    b.param("wte.weight", &[n]).unwrap();
    match b.finish() {
        Err(Error::Binding(r)) => {
            assert_eq!(r.too_big.len(), 1, "{r}");
            assert!(r.to_string().contains("too big: wte.weight needs"), "{r}");
        }
        Err(other) => panic!("expected a binding report, got {other}"),
        Ok(_) => panic!("a tensor over the binding limit was accepted"),
    }
}
