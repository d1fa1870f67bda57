//! # septa: the command that turns a system description into a running system
//!
//! `cargo septa <subcommand>` (a cargo alias) from the repository root:
//!
//! - `build [FILE]`: cross-build loader, kernel, initializer and PDs, and
//!   pack them into one bootable image;
//! - `run [FILE]`: build, then boot the image on QEMU;
//! - `test [FILTER]`: host tests, then every test system under `tests/`
//!   booted headless and judged by what its PDs print.
//!
//! Each pipeline stage is its own module with typed input and output:
//! `workspace` (where things are), `cargo` (cross builds), `pack` (the
//! image), `qemu` (running it), `harness` (tests).
#![forbid(unsafe_code)]

mod cargo;
mod harness;
mod pack;
mod qemu;
mod workspace;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use miette::Result;

#[derive(Parser)]
#[command(name = "septa", version, about = "Build, run and test Septa systems")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build a system into one bootable image.
    Build {
        /// The system description.
        #[arg(default_value = "system.toml")]
        file: PathBuf,
        /// Pack this kernel ELF (e.g. a real seL4 16.0.0 build) instead of Septa's.
        #[arg(long)]
        kernel: Option<PathBuf>,
    },
    /// Build a system and boot it on QEMU.
    Run {
        #[arg(default_value = "system.toml")]
        file: PathBuf,
        #[arg(long)]
        kernel: Option<PathBuf>,
        /// Wait for a debugger on localhost:1234 before the first instruction.
        #[arg(long)]
        gdb: bool,
    },
    /// Run the host tests, then boot every test system whose name matches FILTER.
    Test {
        filter: Option<String>,
        /// Skip the host tests (cargo test).
        #[arg(long)]
        no_host: bool,
        /// Seconds each test system may run.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        /// Boot the test systems on this kernel ELF (e.g. a real seL4 16.0.0 build).
        #[arg(long)]
        kernel: Option<PathBuf>,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let ws = workspace::Workspace::locate()?;
    match cli.command {
        Command::Build { file, kernel } => {
            let image = pack::build_system(&ws, &file, kernel.as_deref())?;
            println!("image: {}", image.path.display());
            Ok(())
        }
        Command::Run { file, kernel, gdb } => {
            let image = pack::build_system(&ws, &file, kernel.as_deref())?;
            qemu::ensure_installed()?;
            qemu::run_interactive(&image, gdb)
        }
        Command::Test {
            filter,
            no_host,
            timeout,
            kernel,
        } => {
            let ok = harness::run(
                &ws,
                filter.as_deref(),
                !no_host,
                std::time::Duration::from_secs(timeout),
                kernel.as_deref(),
            )?;
            if ok {
                Ok(())
            } else {
                std::process::exit(1)
            }
        }
    }
}
