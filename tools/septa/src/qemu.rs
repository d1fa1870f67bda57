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

/// Debian's package that holds [`QEMU`].
pub const PACKAGE: &str = "qemu-system-arm";

fn installed() -> bool {
    Command::new(QEMU)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// What to do about QEMU, from what the machine has.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// It is there.
    Present,
    /// Install it with apt-get (we are root on a Debian-like system).
    Install,
    /// It is missing and cannot be installed from here: the error a person
    /// reads, and what to do.
    Refuse { error: String, help: String },
}

/// The decision, apart from the machine so that it can be tested.
pub fn plan(installed: bool, root: bool, apt: bool) -> Plan {
    match (installed, root, apt) {
        (true, _, _) => Plan::Present,
        (false, true, true) => Plan::Install,
        (false, false, true) => Plan::Refuse {
            error: format!(
                "{QEMU} is not installed, and installing it needs root (this tool runs apt-get \
                 itself only as root)"
            ),
            help: format!("run `sudo apt-get install {PACKAGE}`, then this command again"),
        },
        (false, _, false) => Plan::Refuse {
            error: format!("{QEMU} is not installed, and there is no apt-get to install it with"),
            help: format!(
                "install QEMU's aarch64 system emulator ({QEMU}) with your system's package \
                 manager, then run this command again"
            ),
        },
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false)
}

fn has_apt() -> bool {
    Command::new("apt-get")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Installs QEMU from Debian's packages when it is missing and we may.
pub fn ensure_installed() -> Result<()> {
    // Ask about root and apt-get only when it matters.
    let p = if installed() {
        Plan::Present
    } else {
        plan(false, is_root(), has_apt())
    };
    match p {
        Plan::Present => return Ok(()),
        Plan::Refuse { error, help } => return Err(miette!(help = help, "{error}")),
        Plan::Install => {}
    }
    eprintln!("   installing {PACKAGE} with apt-get");
    for args in [
        &["update", "-qq"][..],
        &["install", "-y", "-qq", PACKAGE][..],
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
        Err(miette!("{QEMU} still missing after installing {PACKAGE}"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_is_installed_only_as_root_with_apt() {
        assert_eq!(plan(true, false, false), Plan::Present);
        assert_eq!(plan(true, true, true), Plan::Present);
        assert_eq!(plan(false, true, true), Plan::Install);
    }

    #[test]
    fn without_root_the_refusal_says_what_to_run() {
        let Plan::Refuse { error, help } = plan(false, false, true) else {
            panic!("a user who is not root was offered an install");
        };
        assert!(
            error.contains(QEMU) && error.contains("needs root"),
            "{error}"
        );
        assert!(
            help.contains(&format!("sudo apt-get install {PACKAGE}")),
            "{help}"
        );
    }

    #[test]
    fn without_apt_the_refusal_names_the_emulator() {
        for root in [false, true] {
            let Plan::Refuse { error, help } = plan(false, root, false) else {
                panic!("an install was planned without apt-get");
            };
            assert!(error.contains("no apt-get"), "{error}");
            assert!(help.contains(QEMU), "{help}");
        }
    }
}
