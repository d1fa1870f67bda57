//! # septa: the command that turns a system description into a running system
//!
//! `cargo septa <subcommand>` (a cargo alias) from the repository root:
//!
//! - `check [FILE]`: parse and validate a system.toml or Microkit `.system`
//!   file, and print its diagnostics;
//! - `build [FILE]`: cross-build loader, kernel, initializer and PDs, and
//!   pack them into one bootable image (with `report.txt` beside it);
//! - `run [FILE]`: build, then boot the image on QEMU;
//! - `report [FILE]`: build, then print where every PD, region and
//!   mapping went (the build's `report.txt`);
//! - `graph [FILE]`: draw the system's PDs, channels, regions, IRQs and VMs
//!   as SVG and DOT;
//! - `guest [FILE]`: fetch and build a VM's guest (Debian kernel, busybox
//!   initramfs, device tree) and boot it on bare QEMU (`guest`);
//! - `dtb [FILE]`: the guest's device tree;
//! - `test [FILTER]`: host tests, then every test system under `tests/`
//!   booted headless and judged by what its PDs print;
//! - `bench [FILTER]`: the benchmark systems under `bench/`, counted in
//!   instructions under QEMU's `-icount`, beside real seL4's figures.
//!
//! Each pipeline stage is its own module with typed input and output:
//! `workspace` (where things are), the front end (crate `septa-sysdesc`:
//! system.toml to a validated model), `toolchain` (the pinned targets and
//! components, present before the first cross build), `cargo` (cross
//! builds), `elf` (program images, and the check that a PD's is laid out as
//! one), `alloc` (free memory estimate, region addresses, the fit check),
//! `patch` (Microkit symbols and setvars), `spec` (the spec the initializer
//! realises), `report` (report.txt), `pack` (the image and the pipeline
//! that leads to it; `pack::compose` is its cargo-free middle, which host
//! tests run through `testkit`), `qemu` (running it: the board profile's
//! machine and the system's virtio devices), `harness` (tests, reading the
//! result lines with `septa-test-report`), `probe` (what a test does from
//! the host), `bench` (benchmarks), `describe` (check and graph) and
//! `guest` (a VM's guest: fetched, built, booted on bare QEMU).
#![forbid(unsafe_code)]

mod alloc;
mod bench;
mod cargo;
mod config;
mod describe;
mod disk;
mod domains;
mod elf;
mod guest;
mod guests;
mod harness;
mod netprobe;
mod pack;
mod patch;
mod probe;
mod qemu;
mod report;
mod session;
mod spec;
#[cfg(test)]
mod testkit;
mod toolchain;
mod top;
mod workspace;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use miette::{IntoDiagnostic, Result, WrapErr};
use septa_abi::Config;

#[derive(Parser)]
#[command(name = "septa", version, about = "Build, run and test Septa systems")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Count instructions per operation on the benchmark systems (bench/systems).
    Bench {
        filter: Option<String>,
        /// A kernel ELF that exports the PMU to EL0 (real seL4 16.0.0 in
        /// Microkit's benchmark configuration) instead of Septa's.
        #[arg(long)]
        kernel: Option<PathBuf>,
        /// The kernel configuration (default: benchmark).
        #[arg(long, value_parser = config::parse)]
        config: Option<Config>,
    },
    /// Parse and validate a system description (system.toml or Microkit .system).
    Check {
        #[arg(default_value = "system.toml")]
        file: PathBuf,
    },
    /// Fetch (once) and build a VM's guest: Debian's kernel, a busybox
    /// initramfs and the device tree; with --boot, boot it on bare QEMU.
    Guest {
        #[arg(default_value = "system.toml")]
        file: PathBuf,
        /// The virtual machine (default: the description's only one).
        #[arg(long)]
        vm: Option<String>,
        /// Look for newer Debian packages than the cached ones.
        #[arg(long)]
        refresh: bool,
        /// Use only the cache; never run apt.
        #[arg(long, conflicts_with = "refresh")]
        offline: bool,
        /// Boot the guest on bare QEMU and run `uname -r` in its shell.
        #[arg(long)]
        boot: bool,
        /// With --boot: under -icount shift=0,sleep=off.
        #[arg(long, requires = "boot")]
        icount: bool,
    },
    /// Write a VM's guest device tree (.dtb, and .dts when dtc is installed).
    Dtb {
        #[arg(default_value = "system.toml")]
        file: PathBuf,
        #[arg(long)]
        vm: Option<String>,
        /// Where to write the .dtb (default: the guest's build folder).
        #[arg(short, long)]
        output: Option<PathBuf>,
        #[arg(long)]
        offline: bool,
    },
    /// Draw a system's PDs, channels, regions, IRQs and VMs as SVG and DOT.
    Graph {
        #[arg(default_value = "system.toml")]
        file: PathBuf,
        /// Where to write the SVG (the DOT goes beside it); default build/NAME/graph.svg.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Build a system into one bootable image.
    Build {
        /// The system description.
        #[arg(default_value = "system.toml")]
        file: PathBuf,
        /// Pack this kernel ELF (e.g. a real seL4 16.0.0 build) instead of Septa's.
        #[arg(long)]
        kernel: Option<PathBuf>,
        /// The kernel configuration: release, debug or benchmark (default:
        /// the description's `[system] config`, else that of the --kernel
        /// ELF, else debug).
        #[arg(long, value_parser = config::parse)]
        config: Option<Config>,
    },
    /// Build a system and print where every PD, region, mapping and object
    /// went (the build's report.txt).
    Report {
        #[arg(default_value = "system.toml")]
        file: PathBuf,
        #[arg(long)]
        kernel: Option<PathBuf>,
        /// The kernel configuration (as for build).
        #[arg(long, value_parser = config::parse)]
        config: Option<Config>,
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
        /// The kernel configuration (as for build).
        #[arg(long, value_parser = config::parse)]
        config: Option<Config>,
        /// Use host port NEW for the description's forwarded host port
        /// HOST (`--port 8080=8081`; repeatable). A forwarded port that
        /// another program holds is replaced by a free one anyway, and
        /// said so.
        #[arg(long = "port", value_name = "HOST=NEW", value_parser = qemu::parse_port_move)]
        ports: Vec<(u16, u16)>,
    },
    /// Attach to a running system's statistics console ([stats]) and show
    /// every PD's CPU share, faults, restarts and overruns, each second.
    Top {
        #[arg(default_value = "system.toml")]
        file: PathBuf,
        /// Stop after this many refreshes (default: until interrupted).
        #[arg(long)]
        frames: Option<u64>,
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
        /// Pack this kernel ELF into every test system (e.g. a real seL4
        /// 16.0.0 build) instead of Septa's.
        #[arg(long)]
        kernel: Option<PathBuf>,
        /// Run only the systems of this configuration (default: each in its
        /// own, `[system] config` or debug; with --kernel, the kernel's).
        #[arg(long, value_parser = config::parse)]
        config: Option<Config>,
    },
}

/// The configuration choice of build, run and report: the flag, else the
/// description's, else the kernel's, else debug.
fn choice(flag: Option<Config>) -> pack::ConfigChoice {
    pack::ConfigChoice {
        flag,
        default: Config::Debug,
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let ws = workspace::Workspace::locate()?;
    match cli.command {
        Command::Check { file } => describe::check(&file),
        Command::Bench {
            filter,
            kernel,
            config,
        } => bench::run(&ws, filter.as_deref(), kernel.as_deref(), config).map(|_| ()),
        Command::Guest {
            file,
            vm,
            refresh,
            offline,
            boot,
            icount,
        } => guest::cli::guest(
            &ws,
            &file,
            vm.as_deref(),
            guest::Options {
                refresh,
                offline,
                cache: None,
            },
            boot.then(|| guest::bare::Options {
                icount,
                limit: std::time::Duration::from_secs(120),
                commands: vec!["uname -r".into(), guest::bare::DMESG_MARKER.into()],
                ..Default::default()
            }),
        ),
        Command::Dtb {
            file,
            vm,
            output,
            offline,
        } => guest::cli::dtb(
            &ws,
            &file,
            vm.as_deref(),
            output,
            guest::Options {
                offline,
                ..Default::default()
            },
        ),
        Command::Graph { file, output } => describe::graph(&ws, &file, output),
        Command::Build {
            file,
            kernel,
            config,
        } => {
            let image = pack::build_system(&ws, &file, kernel.as_deref(), false, choice(config))?;
            println!(
                "image: {} ({} configuration)",
                image.path.display(),
                image.config.name()
            );
            Ok(())
        }
        // The report needs what only the build knows (program segments and
        // entries, patched symbols, the boot footprint), so it is the
        // build's own report, printed.
        Command::Report {
            file,
            kernel,
            config,
        } => {
            let image = pack::build_system(&ws, &file, kernel.as_deref(), false, choice(config))?;
            let path = image.path.with_file_name(pack::REPORT_FILE);
            let text = std::fs::read_to_string(&path)
                .into_diagnostic()
                .wrap_err_with(|| format!("reading {}", path.display()))?;
            print!("{text}");
            Ok(())
        }
        Command::Run {
            file,
            kernel,
            gdb,
            config,
            ports,
        } => {
            // Before the build: a missing QEMU that cannot be installed
            // should not wait for minutes of compiling to be reported.
            qemu::ensure_installed()?;
            let image = pack::build_system(&ws, &file, kernel.as_deref(), false, choice(config))?;
            qemu::run_interactive(&image, gdb, &ports)
        }
        Command::Top { file, frames } => {
            let loaded = describe::load(&file)?;
            let Some(stats) = &loaded.system.stats else {
                return Err(miette::miette!(
                    "{} has no [stats]: nothing for top to attach to",
                    file.display()
                ));
            };
            let dir = ws.build_dir(&pack::system_name(&file));
            top::run(&dir.join(format!("console-{}.sock", stats.console)), frames)
        }
        Command::Test {
            filter,
            no_host,
            timeout,
            kernel,
            config,
        } => {
            let ok = harness::run(
                &ws,
                filter.as_deref(),
                !no_host,
                std::time::Duration::from_secs(timeout),
                kernel.as_deref(),
                config,
            )?;
            if ok {
                Ok(())
            } else {
                std::process::exit(1)
            }
        }
    }
}
