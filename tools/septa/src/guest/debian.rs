//! Fetching the guest's Debian packages into the cache, once.
//!
//! The cache folder of one policy ([`super::policy::Policy::key`]) holds:
//!
//! ```text
//! apt/                   the private apt (super::apt)
//! pin.toml               the package versions chosen, with their sizes
//! debs/NAME_VER_arm64.deb  the packages, as downloaded
//! extract/NAME_VER/      each package unpacked with `dpkg-deb -x` (no root)
//! lock                   held while a run fills the cache
//! ```
//!
//! With `pin.toml`, both .debs (of the pinned sizes) and both extracted
//! trees present, nothing runs apt: no network is needed. A missing or
//! wrong-sized .deb is downloaded again at its pinned version; `refresh`
//! looks for newer versions first.

use std::path::{Path, PathBuf};

use miette::{miette, IntoDiagnostic, Result, WrapErr};
use serde::{Deserialize, Serialize};

use super::apt::{Apt, Record};
use super::policy::Policy;

/// One pinned package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pinned {
    pub package: String,
    pub version: String,
    pub size: u64,
    pub filename: String,
}

impl From<Record> for Pinned {
    fn from(r: Record) -> Pinned {
        Pinned {
            package: r.package,
            version: r.version,
            size: r.size,
            filename: r.filename,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    pub kernel: Pinned,
    pub busybox: Pinned,
}

/// A package in the cache.
#[derive(Debug, Clone)]
pub struct Package {
    pub pinned: Pinned,
    pub deb: PathBuf,
    /// Where it is unpacked.
    pub root: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Fetched {
    pub kernel: Package,
    pub busybox: Package,
    /// Whether this run used apt (and so the network).
    pub network: bool,
}

const PIN: &str = "pin.toml";

/// Makes sure both packages are in the cache folder `dir`.
pub fn fetch(dir: &Path, policy: &Policy, apt: &Apt, refresh: bool) -> Result<Fetched> {
    super::mkdirs(dir)?;
    // Two runs filling one cache would trip over each other's files.
    let lock = std::fs::File::create(dir.join("lock")).into_diagnostic()?;
    lock.lock().into_diagnostic()?;
    let pin_path = dir.join(PIN);
    let mut network = false;
    let mut online = || -> Result<()> {
        if !network {
            apt.configure(policy)?;
            apt.update()?;
            network = true;
        }
        Ok(())
    };
    let pin = match read_pin(&pin_path)? {
        Some(pin) if !refresh => pin,
        _ => {
            online()?;
            let pin = resolve(apt, policy)?;
            let text = format!(
                "# The guest packages `septa guest` chose; `cargo septa guest --refresh` looks for newer ones.\n{}",
                toml::to_string(&pin).into_diagnostic()?
            );
            super::write(&pin_path, text.as_bytes())?;
            pin
        }
    };
    let mut packages = Vec::new();
    for p in [&pin.kernel, &pin.busybox] {
        let name = p
            .filename
            .rsplit('/')
            .next()
            .filter(|n| n.ends_with(".deb") && !n.contains(".."))
            .ok_or_else(|| miette!("{PIN}: `{}` is not a .deb file name", p.filename))?;
        let deb = dir.join("debs").join(name);
        let cached = std::fs::metadata(&deb).is_ok_and(|m| m.len() == p.size);
        if !cached {
            online()?;
            download(apt, p, &deb)?;
        }
        let root =
            dir.join("extract")
                .join(format!("{}_{}", p.package, p.version.replace(':', "%3a")));
        extract(&deb, &root)?;
        packages.push(Package {
            pinned: p.clone(),
            deb,
            root,
        });
    }
    let busybox = packages.pop().expect("two packages");
    let kernel = packages.pop().expect("two packages");
    Ok(Fetched {
        kernel,
        busybox,
        network,
    })
}

fn read_pin(path: &Path) -> Result<Option<Pin>> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text)
            .map(Some)
            .into_diagnostic()
            .wrap_err_with(|| {
                format!(
                    "{} is corrupt: delete it, or run `cargo septa guest --refresh`",
                    path.display()
                )
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).into_diagnostic(),
    }
}

/// The current kernel package (the one the metapackage depends on) and
/// busybox.
fn resolve(apt: &Apt, policy: &Policy) -> Result<Pin> {
    let meta = apt.show(policy.kernel_meta)?;
    let image = meta
        .depends
        .iter()
        .find(|d| d.starts_with("linux-image-"))
        .ok_or_else(|| {
            miette!(
                "{} {} depends on no linux-image package ({:?})",
                meta.package,
                meta.version,
                meta.depends
            )
        })?;
    Ok(Pin {
        kernel: apt.show(image)?.into(),
        busybox: apt.show(policy.busybox)?.into(),
    })
}

fn download(apt: &Apt, p: &Pinned, deb: &Path) -> Result<()> {
    let partial = deb.with_file_name("partial");
    let _ = std::fs::remove_dir_all(&partial);
    apt.download(&p.package, &p.version, &partial)
        .wrap_err_with(|| {
            format!(
                "{} {} could not be downloaded; if Debian's archive no longer has it, `cargo septa guest --refresh` picks the current version",
                p.package, p.version
            )
        })?;
    let got = std::fs::read_dir(&partial)
        .into_diagnostic()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .ok_or_else(|| miette!("apt-get download left no .deb in {}", partial.display()))?;
    let len = std::fs::metadata(&got).into_diagnostic()?.len();
    if len != p.size {
        return Err(miette!(
            "{} is {len} bytes, but the archive's index says {}",
            got.display(),
            p.size
        ));
    }
    std::fs::rename(&got, deb).into_diagnostic()?;
    let _ = std::fs::remove_dir_all(&partial);
    Ok(())
}

/// Unpacks `deb` into `root` unless a complete unpacking is there: into a
/// fresh folder beside it, then renamed, so a run stopped half-way leaves
/// no half tree behind a valid name.
pub fn extract(deb: &Path, root: &Path) -> Result<()> {
    if root.is_dir() {
        return Ok(());
    }
    let tmp = root.with_extension("partial");
    let _ = std::fs::remove_dir_all(&tmp);
    super::mkdirs(&tmp)?;
    let out = std::process::Command::new("dpkg-deb")
        .arg("-x")
        .arg(deb)
        .arg(&tmp)
        .output()
        .map_err(|e| miette!("cannot run dpkg-deb ({e}): install the package `dpkg`"))?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&tmp);
        // A corrupt download: remove it, so that the next run fetches it
        // again instead of failing the same way.
        let _ = std::fs::remove_file(deb);
        return Err(miette!(
            "{} is not a valid package ({}); it was removed and will be downloaded again:\n{}",
            deb.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    std::fs::rename(&tmp, root).into_diagnostic()
}
