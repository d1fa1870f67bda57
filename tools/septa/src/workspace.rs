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
