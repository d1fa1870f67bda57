//! Cross builds of the target crates with the workspace's pinned toolchain.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use miette::{miette, IntoDiagnostic, Result};
use septa_abi::Config;

use crate::toolchain;
use crate::workspace::Workspace;

/// The target of code that never touches floating point (kernel, loader).
pub const SOFTFLOAT: &str = "aarch64-unknown-none-softfloat";
/// The target of user-level code.
pub const USER: &str = "aarch64-unknown-none";

/// Builds the binaries `packages` for `target` in release mode, for the
/// kernel configuration `config`, and returns their paths, in the same
/// order.
///
/// Every configuration has a target directory of its own
/// (`target/septa-CONFIG`), so switching between them rebuilds nothing. The
/// configuration reaches the code through `septa-abi`'s cargo features,
/// which the build turns on for `septa-abi` itself: every crate, the kernel
/// and each program alike, then reads `septa_abi::CONFIG`.
pub fn build(
    ws: &Workspace,
    target: &str,
    packages: &[&str],
    config: Config,
) -> Result<Vec<PathBuf>> {
    let dir = target_dir(ws, config);
    build_in(ws, target, packages, config, &dir)
}

/// Where the cross builds of `config` go.
pub fn target_dir(ws: &Workspace, config: Config) -> PathBuf {
    ws.target_dir().join(format!("septa-{}", config.name()))
}

fn build_in(
    ws: &Workspace,
    target: &str,
    packages: &[&str],
    config: Config,
    target_dir: &std::path::Path,
) -> Result<Vec<PathBuf>> {
    // Once per run: the pinned targets and components, before the first
    // cross build needs them.
    static TOOLCHAIN: OnceLock<std::result::Result<(), toolchain::ToolchainError>> =
        OnceLock::new();
    TOOLCHAIN
        .get_or_init(|| toolchain::ensure(&ws.root))
        .clone()
        .map_err(|e| miette!("{e}"))?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&ws.root)
        .args(["build", "--release", "--target", target])
        .arg("--target-dir")
        .arg(target_dir);
    for p in packages {
        cmd.args(["-p", p]);
    }
    if config != Config::Release {
        // septa-abi among the packages, so that its feature may be named.
        cmd.args(["-p", "septa-abi", "--features"])
            .arg(format!("septa-abi/{}", config.name()));
    }
    // The outer `cargo run` sets these for the tool itself; they must not
    // leak into the cross build.
    for var in [
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_BIN_NAME",
        "CARGO_CRATE_NAME",
        "CARGO_MANIFEST_DIR",
    ] {
        cmd.env_remove(var);
    }
    eprintln!(
        "   building {} for {target} ({} configuration)",
        packages.join(", "),
        config.name()
    );
    let status = cmd.status().into_diagnostic()?;
    if !status.success() {
        return Err(miette!(
            "cargo build of {} for {target} failed",
            packages.join(", ")
        ));
    }
    Ok(packages
        .iter()
        .map(|p| target_dir.join(target).join("release").join(p))
        .collect())
}
