//! Every shader and every specialisation the crate dispatches parses and validates with naga.
//! Needs no GPU: this is what proves the kernels compile on a machine without an adapter.

use whet::engine::shaders::{self, ShaderFile, Spec};

#[test]
fn every_shader_and_specialisation_validates() {
    let mut checked = 0;
    for file in shaders::ALL {
        // Files written over `act` are checked as f32 and as f16 (`enable f16`).
        let variants: &[bool] = if file.halves { &[false, true] } else { &[false] };
        for &half in variants {
            let name = format!("{}{}", file.name, if half { " (f16)" } else { "" });
            // The module as written (override constants left open).
            shaders::validate_variant(file, half, &[]).unwrap_or_else(|e| panic!("{name}: {e}"));
            for spec in file.specs {
                let src = file.source_for(half);
                assert!(
                    src.contains(&format!("fn {}(", spec.entry)),
                    "{name}: no entry point {}",
                    spec.entry
                );
                for constants in spec.expand() {
                    shaders::validate_variant(file, half, &constants)
                        .unwrap_or_else(|e| panic!("{name}::{} {constants:?}: {e}", spec.entry));
                    checked += 1;
                }
            }
        }
    }
    // 22 files; the unary and binary op tables alone are 30 + 10 specialisations.
    assert!(checked >= 70, "only {checked} specialisations checked");
}

#[test]
fn every_wgsl_file_is_registered() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut on_disk = Vec::new();
    for dir in std::fs::read_dir(&root).unwrap() {
        let dir = dir.unwrap().path();
        if dir.file_name().unwrap() == "common" {
            continue;
        }
        for f in std::fs::read_dir(&dir).unwrap() {
            let f = f.unwrap().path();
            if f.extension().is_some_and(|e| e == "wgsl") {
                let rel = f.strip_prefix(&root).unwrap().with_extension("");
                on_disk.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    on_disk.sort();
    let mut registered: Vec<String> = shaders::ALL.iter().map(|f| f.name.to_string()).collect();
    registered.sort();
    assert_eq!(on_disk, registered, "shaders/ and engine::shaders::ALL disagree");
}

#[test]
fn broken_wgsl_is_a_readable_error() {
    static BROKEN: ShaderFile = ShaderFile {
        name: "test/broken",
        source: "@compute @workgroup_size(WG1) fn main() { let x: f32 = undefined_name; }",
        specs: &[Spec { entry: "main", overrides: &[] }],
        halves: false,
    };
    let err = shaders::validate(&BROKEN, &[]).unwrap_err();
    assert!(err.contains("undefined_name"), "naga's message should name the problem: {err}");
}

#[test]
fn override_values_outside_a_switch_still_validate() {
    // An unknown op code must not break validation (it falls to the switch's default).
    shaders::validate(&shaders::UNARY, &[("OP", 99.0)]).unwrap();
}
