//! The `whet` command line: `train RECIPE.toml`, `plan RECIPE.toml`, `compare RECIPE.toml`, `eval RUN_DIR`, `predict RUN_DIR INPUT...`,
//! `inspect CHECKPOINT`, `devices` and `bench`. Every command has `--help`.

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "whet", version, about = "Fine-tune pretrained models on any GPU")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fine-tune a pretrained model as RECIPE.toml says (see README.md, "Recipes"); writes the
    /// run folder (model/, metrics.json, log.csv, checkpoints/). Ctrl-C finishes the step, saves a
    /// checkpoint and exits 130 (SIGTERM: 143); the same command resumes.
    Train {
        #[command(flatten)]
        recipe: cli::recipe_args::RecipeArgs,
        /// Run folder (overrides [output] dir).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
        /// Start over even when the run folder holds a checkpoint.
        #[arg(long)]
        fresh: bool,
        /// List and skip bad data items instead of failing before step 1 (aborts past
        /// data.max_skipped).
        #[arg(long)]
        skip_bad: bool,
        /// No progress bars.
        #[arg(long)]
        quiet: bool,
        /// Skip the memory plan made first (`whet plan`), which refuses a run that needs more
        /// device memory than the device has (known for CPU adapters, or set by WHET_MAX_MEMORY).
        #[arg(long)]
        no_plan: bool,
    },
    /// Print the device memory a run of RECIPE.toml will take, before any is spent: weights by
    /// dtype, gradients, optimizer state, activations at the recipe's batch and length, and the
    /// total against the device's memory, with what to change when it does not fit. Measured by
    /// a dry run of the recipe (loading, two steps, one evaluation) that computes nothing.
    /// Exits 1 when the run does not fit.
    Plan {
        #[command(flatten)]
        recipe: cli::recipe_args::RecipeArgs,
        /// Check against a device with this much memory (e.g. 8GiB) instead of this one.
        #[arg(long, value_name = "SIZE")]
        memory: Option<String>,
        /// Also write the plan as JSON.
        #[arg(long, value_name = "FILE")]
        json: Option<std::path::PathBuf>,
    },
    /// Run the recipe under several fine-tuning strategies (from scratch, full fine-tune, linear
    /// probe, LP-FT, gradual unfreezing, frozen lower half, layer-wise LR, L2-SP, LwF and EWC with
    /// a [source] task, LoRA, the recipe as written) × seeds (× folds), all tested on the same
    /// items, and write results.json + a self-contained report.html with paired tests.
    Compare {
        #[command(flatten)]
        recipe: cli::recipe_args::RecipeArgs,
        /// Output folder (default: <output dir>/compare).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
        /// Strategies to run, comma separated (default: all).
        #[arg(long, value_delimiter = ',')]
        strategies: Vec<String>,
        /// Training seeds, comma separated.
        #[arg(long, value_delimiter = ',', default_value = "0")]
        seeds: Vec<u64>,
        /// Stratified k-fold cross-validation instead of the recipe's hold-out split.
        #[arg(long)]
        folds: Option<usize>,
        /// Also sweep learning rate × frozen depth (short runs scored on validation): a heat map.
        #[arg(long)]
        sweep: bool,
        /// Pick frozen depth and learning rate from the sweep's short probe runs, train that
        /// configuration in full as strategy "auto", and say why it was chosen.
        #[arg(long)]
        auto: bool,
        /// Learning rates of the sweep, comma separated (default: the recipe's × 0.3, 1, 3).
        #[arg(long, value_delimiter = ',')]
        sweep_lrs: Vec<f64>,
        /// Frozen depths of the sweep (blocks frozen from the bottom), comma separated
        /// (default: none, half, all but the head).
        #[arg(long, value_delimiter = ',')]
        sweep_depths: Vec<usize>,
        /// No progress bars.
        #[arg(long)]
        quiet: bool,
    },
    /// Render report.html again from a results.json written by `whet compare` (after an
    /// upgrade, or to check the numbers by hand).
    Report {
        results: std::path::PathBuf,
        /// Output folder (default: the folder of RESULTS).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Evaluate a finished run on its held-out split, with bootstrap intervals.
    Eval {
        run: std::path::PathBuf,
        /// Another test table (text) or image folder.
        #[arg(long)]
        test: Option<std::path::PathBuf>,
        /// Bootstrap resamples.
        #[arg(long, default_value_t = 1000)]
        bootstrap: usize,
    },
    /// Classify images or texts with a finished run (labels with probabilities), or continue
    /// prompts with a fine-tuned language model.
    Predict(cli::predict::PredictArgs),
    /// List the GPU adapters (Vulkan, Metal, DX12; lavapipe without a GPU) and the one whet picks.
    Devices,
    /// Measure this GPU: kernels (matmul, bandwidth, softmax, conv, attention, dispatch cost)
    /// and model training steps (MiniLM full and frozen, ResNet-18, EfficientNet-Lite0, SmolLM2
    /// with LoRA), each the median of interleaved rounds with its spread. Or, with --compare,
    /// put two saved runs side by side.
    Bench {
        /// Small sizes and two model steps (under a minute on lavapipe).
        #[arg(long)]
        quick: bool,
        /// Timing rounds (every case once per round).
        #[arg(long, default_value_t = 5)]
        repeats: usize,
        /// Only cases whose name contains one of these, comma separated (e.g. matmul,resnet).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Also write the records to FILE as JSON (for --compare or other tools).
        #[arg(long)]
        json: Option<std::path::PathBuf>,
        /// Compare two JSON files written by --json (A B): B's speed relative to A's per case.
        #[arg(long, num_args = 2, value_names = ["A", "B"])]
        compare: Option<Vec<std::path::PathBuf>>,
    },
    /// The learning-rate range test on the recipe's task (its optimizer, batch size, freezing
    /// and adapters): the loss as the rate grows geometrically, a suggested rate, and the plot
    /// (SVG). Nothing is trained or written but the plot.
    LrFind {
        #[command(flatten)]
        recipe: cli::recipe_args::RecipeArgs,
        /// First learning rate of the sweep.
        #[arg(long, default_value_t = 1e-7)]
        start: f64,
        /// Last learning rate of the sweep (it stops earlier when the loss diverges).
        #[arg(long, default_value_t = 10.0)]
        end: f64,
        /// Batches of the sweep (at least 5).
        #[arg(long, default_value_t = 100)]
        steps: usize,
        /// Where the plot goes (default: <output dir>/lr_find.svg).
        #[arg(long)]
        plot: Option<std::path::PathBuf>,
        /// No progress lines while loading.
        #[arg(long)]
        quiet: bool,
    },
    /// List a checkpoint's tensors (name, dtype, shape) and parameter count; GGUF metadata too.
    Inspect {
        /// safetensors, GGUF, PyTorch .pth/.bin (zip or legacy) file, or a Hugging Face model directory.
        checkpoint: std::path::PathBuf,
        /// Also bind the checkpoint to this model kind and print the binding report (mapped,
        /// missing, unexpected, size mismatches...): resnet, vgg, efficientnet-lite, bert, gpt2, llama.
        #[arg(long)]
        model: Option<String>,
        /// Classes of the task head (a new head when it differs from the checkpoint's).
        #[arg(long)]
        classes: Option<usize>,
    },
}

fn main() -> ExitCode {
    // The library only emits `log` records (skipped non-finite steps, checkpoint fall-backs,
    // groups that match nothing); the binary shows them on stderr, warnings and worse unless
    // RUST_LOG says otherwise.
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train { recipe, out, fresh, skip_bad, quiet, no_plan } => {
            let flags = cli::train::Flags { fresh, skip_bad, quiet, plan: !no_plan };
            match cli::train::train(&recipe, out.as_deref(), flags) {
                Ok(0) => Ok(()),
                Ok(code) => return ExitCode::from(code),
                Err(e) => Err(e),
            }
        }
        Command::Compare {
            recipe,
            out,
            strategies,
            seeds,
            folds,
            sweep,
            auto,
            sweep_lrs,
            sweep_depths,
            quiet,
        } => {
            let sweep = (sweep || auto).then_some(whet::run::sweep::SweepOptions {
                lrs: sweep_lrs,
                depths: sweep_depths,
                auto,
            });
            cli::compare::compare(&recipe, out.as_deref(), &strategies, &seeds, folds, sweep, quiet)
        }
        Command::Plan { recipe, memory, json } => {
            match cli::plan::plan(&recipe, memory.as_deref(), json.as_deref()) {
                Ok(0) => Ok(()),
                Ok(code) => return ExitCode::from(code),
                Err(e) => Err(e),
            }
        }
        Command::Report { results, out } => report(&results, out.as_deref()),
        Command::Eval { run, test, bootstrap } => cli::train::eval(&run, test.as_deref(), bootstrap),
        Command::Predict(args) => cli::predict::predict(&args),
        Command::Devices => devices(),
        Command::LrFind { recipe, start, end, steps, plot, quiet } => {
            cli::lr_find::lr_find(&recipe, &cli::lr_find::Sweep { start, end, steps }, plot.as_deref(), quiet)
        }
        Command::Bench { quick, repeats, only, json, compare } => match compare.as_deref() {
            Some([a, b]) => cli::bench::compare(a, b),
            _ => cli::bench::bench(whet::bench::BenchOptions { quick, repeats, only }, json.as_deref()),
        },
        Command::Inspect { checkpoint, model, classes } => inspect(&checkpoint).and_then(|()| match model {
            Some(kind) => bind_report(&checkpoint, &kind, classes),
            None => Ok(()),
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("whet: {e}");
            ExitCode::FAILURE
        }
    }
}

fn inspect(path: &std::path::Path) -> whet::Result<()> {
    use whet::weights::gguf::{GgufFile, MetaValue};
    // GGUF metadata first (hyperparameters and tokenizer arrays), then the tensors of any format.
    let mut magic = [0u8; 4];
    let is_gguf = path.is_file()
        && std::fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic)).is_ok()
        && &magic == b"GGUF";
    if is_gguf {
        let g = GgufFile::open(path)?;
        println!("metadata ({} keys, GGUF v{}):", g.metadata().len(), g.version);
        for (k, v) in g.metadata() {
            let shown = match v {
                MetaValue::Str(s) if s.chars().count() > 60 => {
                    format!("{:?}... ({} chars)", s.chars().take(60).collect::<String>(), s.chars().count())
                }
                other => other.to_string(),
            };
            println!("  {k} = {shown}");
        }
    }
    let src = whet::weights::open(path)?;
    let tensors = src.tensors();
    let width = tensors.iter().map(|t| t.name.len()).max().unwrap_or(0);
    let mut params: u128 = 0;
    println!("tensors ({}):", tensors.len());
    for t in &tensors {
        params += t.shape.iter().map(|&d| d as u128).product::<u128>();
        println!("  {:width$}  {:<5}  {:?}", t.name, format!("{:?}", t.dtype), t.shape);
    }
    println!("parameters: {params}");
    Ok(())
}

/// Bind the checkpoint to a model and print the report; a report with problems is the error
/// (the same text a failed load gives).
fn bind_report(path: &std::path::Path, kind: &str, classes: Option<usize>) -> whet::Result<()> {
    let kind: whet::models::zoo::ModelKind = kind.parse()?;
    let engine = whet::Engine::new(whet::EngineOptions::from_env()?)?;
    let (_model, report) = whet::models::zoo::load(&engine, path, kind, classes, 0)?;
    print!("{report}");
    for (p, k) in &report.mapped {
        if p != k {
            println!("  mapped: {p} <- {k}");
        }
    }
    Ok(())
}

/// `whet report RESULTS.json`: the report rendered again from its numbers.
fn report(results: &std::path::Path, out: Option<&std::path::Path>) -> whet::Result<()> {
    let r = whet::report::results::CompareResults::load_json(results)?;
    let dir = out.or_else(|| results.parent()).unwrap_or(std::path::Path::new("."));
    let path = whet::report::html::write_report(&r, dir)?;
    println!("report: {}", path.display());
    Ok(())
}

fn devices() -> whet::Result<()> {
    for a in whet::Engine::adapters() {
        let mark = if a.preferred { "*" } else { " " };
        println!("{mark} {} ({}, {})", a.name, a.device_type, a.backend);
    }
    let engine = whet::Engine::new(whet::EngineOptions::from_env()?)?;
    let info = engine.adapter_info();
    println!(
        "using: {} ({:?}, {:?}, driver {})",
        info.name, info.device_type, info.backend, info.driver_info
    );
    let l = engine.limits();
    println!(
        "limits: max buffer {} MiB, max storage binding {} MiB, {} workgroups per dimension",
        l.max_buffer_size >> 20,
        l.max_storage_buffer_binding_size >> 20,
        l.max_compute_workgroups_per_dimension
    );
    println!("choose another with WHET_ADAPTER=<part of its name>");
    Ok(())
}
