//! Where the repository, its build outputs and its boards are.

use std::path::{Path, PathBuf};

use miette::{miette, Result};

pub struct Workspace {
    pub root: PathBuf,
}

impl Workspace {
    /// The repository this tool was built from, or the one above the
    /// current directory that has a `rust-toolchain.toml` and `kernel/`.
    pub fn locate() -> Result<Workspace> {
        let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut candidates = vec![];
        if let Ok(cwd) = std::env::current_dir() {
            candidates.extend(cwd.ancestors().map(Path::to_path_buf));
        }
        candidates.push(built_from);
        candidates
            .into_iter()
            .find(|p| {
                p.join("kernel/Cargo.toml").is_file() && p.join("rust-toolchain.toml").is_file()
            })
            .map(|root| Workspace {
                root: root.canonicalize().unwrap_or(root),
            })
            .ok_or_else(|| {
                miette!(
                    "not inside a Septa repository (no kernel/ and rust-toolchain.toml above here)"
                )
            })
    }

    /// Build outputs of the system named `name`.
    pub fn build_dir(&self, name: &str) -> PathBuf {
        self.root.join("build").join(name)
    }

    pub fn target_dir(&self) -> PathBuf {
        self.root.join("target")
    }
}

/// The workspace crate a program path `NAME.elf` stands for, when no such
/// file is beside the description (`base`) and the workspace has a package
/// called NAME (a PD crate, built like any other): how a Microkit
/// `.system` file written for Septa names Septa's programs.
pub fn crate_for_elf(ws: &Workspace, base: &Path, elf: &Path) -> Option<String> {
    if base.join(elf).exists() || elf.parent().is_some_and(|p| !p.as_os_str().is_empty()) {
        return None;
    }
    let stem = elf.file_stem()?.to_str()?;
    (elf.extension()? == "elf" && package_names(ws).iter().any(|p| p == stem))
        .then(|| stem.to_string())
}

/// The names of the workspace's packages (`cargo metadata`), read once.
fn package_names(ws: &Workspace) -> &'static [String] {
    static NAMES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = std::process::Command::new(cargo)
            .current_dir(&ws.root)
            .args(["metadata", "--no-deps", "--format-version", "1"])
            .output();
        let Ok(out) = out else { return vec![] };
        let Ok(meta) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
            return vec![];
        };
        meta["packages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["name"].as_str().map(String::from))
            .collect()
    })
}
