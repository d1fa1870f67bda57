//! Booting an image on QEMU `virt`, interactively or headless for tests.

use std::process::{Command, Stdio};

use miette::{miette, IntoDiagnostic, Result};

use crate::pack::Image;

pub const QEMU: &str = "qemu-system-aarch64";

/// The machine every image boots on (the board profile's settings).
pub fn base_command(image: &Image) -> Command {
    let mut c = Command::new(QEMU);
    c.args([
        "-machine",
        "virt,virtualization=on",
        "-cpu",
        "cortex-a53",
        "-m",
        "2G",
    ])
    .arg("-device")
    .arg(format!(
        "loader,file={},addr={:#x},cpu-num=0",
        image.path.display(),
        image.load_addr
    ));
    c
}

fn installed() -> bool {
    Command::new(QEMU)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Installs QEMU from Debian's packages when it is missing and we may.
pub fn ensure_installed() -> Result<()> {
    if installed() {
        return Ok(());
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false);
    if !root {
        return Err(miette!(
            help = "run `sudo apt-get install qemu-system-arm` (Debian) and try again",
            "{QEMU} is not installed and installing it needs root"
        ));
    }
    eprintln!("   installing qemu-system-arm with apt-get");
    for args in [
        &["update", "-qq"][..],
        &["install", "-y", "-qq", "qemu-system-arm"][..],
    ] {
        let ok = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .into_diagnostic()?
            .success();
        if !ok {
            return Err(miette!("apt-get {} failed", args.join(" ")));
        }
    }
    if installed() {
        Ok(())
    } else {
        Err(miette!(
            "{QEMU} still missing after installing qemu-system-arm"
        ))
    }
}

/// Boots with the serial console on this terminal (Ctrl-A X quits).
pub fn run_interactive(image: &Image, gdb: bool) -> Result<()> {
    let mut c = base_command(image);
    c.arg("-nographic");
    if gdb {
        c.args(["-s", "-S"]);
        eprintln!("   waiting for gdb on localhost:1234");
    }
    eprintln!("   booting {} (quit with Ctrl-A X)", image.path.display());
    let status = c.status().into_diagnostic()?;
    if status.success() {
        Ok(())
    } else {
        Err(miette!("QEMU exited with {status}"))
    }
}

/// QEMU flags that make time count instructions: the PMU cycle counter
/// advances once per instruction and the system counter once per 16, the
/// same on every run (shared/benchmarks.md).
pub const ICOUNT: [&str; 2] = ["-icount", "shift=0,sleep=off"];

/// A headless boot whose serial output arrives on the child's stdout.
pub fn headless(image: &Image) -> Command {
    let mut c = base_command(image);
    c.args(["-display", "none", "-monitor", "none", "-serial", "stdio"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}
