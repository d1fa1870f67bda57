//! The pinned toolchain's targets and components (`rust-toolchain.toml`),
//! made present before the first cross build.
//!
//! rustup installs them itself when it auto-installs the pinned toolchain,
//! and adds missing ones on later use, but only while auto-install is on:
//! with `RUSTUP_AUTO_INSTALL=0` (or under rustup 1.28.0, which never
//! auto-installed) a toolchain installed earlier without the aarch64
//! targets stays without them, and the cross build fails on a missing
//! `core`. So before cross-building, the tool compares what the file
//! lists with what rustup says is installed (local, no network) and adds
//! what is missing with `rustup target add` / `rustup component add`,
//! which are explicit installs and work whatever auto-install says.
//!
//! A missing toolchain cannot be handled here: rustup's `cargo` refuses to
//! start before this tool runs, and says to run `rustup toolchain install`.
//! Without rustup (a distribution's Rust) nothing is checked; cargo then
//! reports a missing target itself.

use std::path::Path;
use std::process::Command;

/// Why the pinned targets and components could not be made present.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ToolchainError {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("`rustup {command}` failed; run it by hand (it needs the network), then try again")]
    Install { command: String },
}

/// What `rust-toolchain.toml` asks for besides the compiler.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pinned {
    pub targets: Vec<String>,
    pub components: Vec<String>,
}

/// Reads the `[toolchain]` table's `targets` and `components`.
pub fn parse_pinned(text: &str) -> Result<Pinned, String> {
    let value: toml::Table = text.parse().map_err(|e| format!("{e}"))?;
    let table = value
        .get("toolchain")
        .and_then(|t| t.as_table())
        .ok_or("no [toolchain] table")?;
    let list = |key: &str| -> Result<Vec<String>, String> {
        match table.get(key) {
            None => Ok(vec![]),
            Some(v) => v
                .as_array()
                .ok_or(format!("`{key}` is not a list"))?
                .iter()
                .map(|s| {
                    s.as_str()
                        .map(str::to_string)
                        .ok_or(format!("`{key}` holds a non-string"))
                })
                .collect(),
        }
    };
    Ok(Pinned {
        targets: list("targets")?,
        components: list("components")?,
    })
}

/// What is pinned but not installed, given rustup's lists of installed
/// targets and components (one name a line) and the host triple (rustup
/// lists host components as `NAME-HOST`, others as `NAME`).
pub fn missing(pinned: &Pinned, host: &str, targets: &str, components: &str) -> Pinned {
    let has_target = |t: &String| targets.lines().any(|l| l.trim() == t);
    let has_component = |c: &String| {
        let hosted = format!("{c}-{host}");
        components
            .lines()
            .map(str::trim)
            .any(|l| l == c || l == hosted)
    };
    Pinned {
        targets: pinned
            .targets
            .iter()
            .filter(|t| !has_target(t))
            .cloned()
            .collect(),
        components: pinned
            .components
            .iter()
            .filter(|c| !has_component(c))
            .cloned()
            .collect(),
    }
}

/// The rustup commands that install `missing` into `toolchain` (the one
/// rustup chose for this run, if known; else rustup reads the toolchain
/// file itself).
pub fn install_commands(toolchain: Option<&str>, missing: &Pinned) -> Vec<Vec<String>> {
    let mut out = vec![];
    for (what, names) in [
        ("target", &missing.targets),
        ("component", &missing.components),
    ] {
        if names.is_empty() {
            continue;
        }
        let mut args = vec![what.to_string(), "add".to_string()];
        if let Some(t) = toolchain {
            args.extend(["--toolchain".to_string(), t.to_string()]);
        }
        args.extend(names.iter().cloned());
        out.push(args);
    }
    out
}

/// Runs `program args` in `dir`; its stdout, or None if it could not run
/// or failed.
fn output(dir: &Path, program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Adds the pinned targets and components that are missing.
pub fn ensure(root: &Path) -> Result<(), ToolchainError> {
    let file = root.join("rust-toolchain.toml");
    let Ok(text) = std::fs::read_to_string(&file) else {
        return Ok(());
    };
    let pinned = parse_pinned(&text).map_err(|reason| ToolchainError::File {
        path: file.display().to_string(),
        reason,
    })?;
    // Not a rustup installation: nothing to ask, nothing to add.
    if output(root, "rustup", &["--version"]).is_none() {
        return Ok(());
    }
    let host = output(root, "rustc", &["-vV"])
        .and_then(|v| {
            v.lines()
                .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        })
        .unwrap_or_default();
    let (Some(targets), Some(components)) = (
        output(root, "rustup", &["target", "list", "--installed"]),
        output(root, "rustup", &["component", "list", "--installed"]),
    ) else {
        return Ok(());
    };
    let missing = missing(&pinned, &host, &targets, &components);
    // Set by rustup's proxy for the processes it starts (`cargo septa`).
    let toolchain = std::env::var("RUSTUP_TOOLCHAIN").ok();
    for args in install_commands(toolchain.as_deref(), &missing) {
        eprintln!(
            "   rust-toolchain.toml lists {}s this toolchain lacks (rustup adds them by itself \
             only while RUSTUP_AUTO_INSTALL is not 0); adding them: rustup {}",
            args[0],
            args.join(" ")
        );
        let ok = Command::new("rustup")
            .args(&args)
            .current_dir(root)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err(ToolchainError::Install {
                command: args.join(" "),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "x86_64-unknown-linux-gnu";

    fn repo_pinned() -> Pinned {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rust-toolchain.toml"),
        )
        .unwrap();
        parse_pinned(&text).unwrap()
    }

    #[test]
    fn the_repositorys_file_pins_the_cross_targets() {
        let p = repo_pinned();
        for t in [crate::cargo::SOFTFLOAT, crate::cargo::USER] {
            assert!(p.targets.iter().any(|x| x == t), "{p:?} lacks {t}");
        }
        assert!(p.components.iter().any(|c| c == "rust-src"), "{p:?}");
    }

    #[test]
    fn parse_refuses_what_is_not_a_toolchain_file() {
        assert!(parse_pinned("[package]\nname = 'x'\n").is_err());
        assert!(parse_pinned("[toolchain]\ntargets = 'x'\n").is_err());
        assert_eq!(
            parse_pinned("[toolchain]\nchannel = '1.95.0'\n").unwrap(),
            Pinned::default()
        );
    }

    /// rustup's lists as printed by rustup 1.29 for a toolchain that lacks
    /// the soft-float target and clippy.
    const TARGETS: &str = "aarch64-unknown-none\nx86_64-unknown-linux-gnu\n";
    const COMPONENTS: &str = "cargo-x86_64-unknown-linux-gnu\n\
        llvm-tools-x86_64-unknown-linux-gnu\nrust-src\n\
        rust-std-aarch64-unknown-none\nrust-std-x86_64-unknown-linux-gnu\n\
        rustc-x86_64-unknown-linux-gnu\nrustfmt-x86_64-unknown-linux-gnu\n";

    #[test]
    fn what_is_missing_is_found_and_nothing_else() {
        let p = repo_pinned();
        let m = missing(&p, HOST, TARGETS, COMPONENTS);
        assert_eq!(m.targets, ["aarch64-unknown-none-softfloat"]);
        assert_eq!(m.components, ["clippy"]);
        // Complete lists: nothing to do.
        let all_t = format!("{TARGETS}aarch64-unknown-none-softfloat\n");
        let all_c = format!("{COMPONENTS}clippy-{HOST}\n");
        assert_eq!(missing(&p, HOST, &all_t, &all_c), Pinned::default());
        // A component of another host does not count.
        let other = COMPONENTS.replace("rustfmt-x86_64", "rustfmt-aarch64");
        assert!(missing(&p, HOST, TARGETS, &other)
            .components
            .contains(&"rustfmt".to_string()));
    }

    #[test]
    fn missing_pieces_become_rustup_commands_for_the_running_toolchain() {
        let m = Pinned {
            targets: vec!["aarch64-unknown-none".into()],
            components: vec!["rust-src".into(), "clippy".into()],
        };
        let cmds = install_commands(Some("1.95.0-x86_64-unknown-linux-gnu"), &m);
        assert_eq!(
            cmds,
            [
                vec![
                    "target",
                    "add",
                    "--toolchain",
                    "1.95.0-x86_64-unknown-linux-gnu",
                    "aarch64-unknown-none"
                ],
                vec![
                    "component",
                    "add",
                    "--toolchain",
                    "1.95.0-x86_64-unknown-linux-gnu",
                    "rust-src",
                    "clippy"
                ],
            ]
        );
        assert_eq!(
            install_commands(None, &m)[0],
            ["target", "add", "aarch64-unknown-none"]
        );
        assert!(install_commands(None, &Pinned::default()).is_empty());
    }
}
