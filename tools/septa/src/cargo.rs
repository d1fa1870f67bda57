//! Cross builds of the target crates with the workspace's pinned toolchain.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use miette::{miette, IntoDiagnostic, Result};

use crate::toolchain;
use crate::workspace::Workspace;

/// The target of code that never touches floating point (kernel, loader).
pub const SOFTFLOAT: &str = "aarch64-unknown-none-softfloat";
/// The target of user-level code.
pub const USER: &str = "aarch64-unknown-none";

/// Builds the binaries `packages` for `target` in release mode and returns
/// their paths, in the same order.
pub fn build(ws: &Workspace, target: &str, packages: &[&str]) -> Result<Vec<PathBuf>> {
    build_variant(ws, target, packages, &[], &ws.target_dir())
}

/// As `build`, with cargo `features` on, into `target_dir` (a variant such
/// as the benchmark kernel gets a directory of its own, so building it
/// never invalidates the ordinary build).
pub fn build_variant(
    ws: &Workspace,
    target: &str,
    packages: &[&str],
    features: &[&str],
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
    if !features.is_empty() {
        cmd.args(["--features", &features.join(",")]);
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
    eprintln!("   building {} for {target}", packages.join(", "));
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
