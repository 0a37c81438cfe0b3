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
