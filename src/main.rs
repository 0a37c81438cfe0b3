//! The `whet` command line. Today: `whet devices` lists the adapters whet can use and which one
//! it would pick. (`train`, `eval`, `predict` and `inspect` arrive with the training driver.)

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
    /// List the GPU adapters (Vulkan, Metal, DX12; lavapipe without a GPU) and the one whet picks.
    Devices,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Devices => match devices() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("whet: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn devices() -> whet::Result<()> {
    let engine = whet::Engine::new(Default::default())?;
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
