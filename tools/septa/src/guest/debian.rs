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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::guest::kernel::tests::module_elf;

    pub(crate) const RELEASE: &str = "6.1.0-99-cloud-arm64";

    /// Builds a .deb of `files` (path, mode, bytes) with dpkg-deb, as a
    /// user may (no root), and returns its bytes.
    fn deb(dir: &Path, package: &str, files: &[(&str, u32, Vec<u8>)]) -> Vec<u8> {
        use std::os::unix::fs::PermissionsExt;
        let root = dir.join(format!("{package}-tree"));
        std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
        std::fs::write(
            root.join("DEBIAN/control"),
            format!("Package: {package}\nVersion: 1.0\nArchitecture: arm64\nMaintainer: t <t@t>\nDescription: test\n"),
        )
        .unwrap();
        for (path, mode, bytes) in files {
            let p = root.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, bytes).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode)).unwrap();
        }
        let out = dir.join(format!("{package}.deb"));
        let st = std::process::Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zgzip", "--build"])
            .arg(&root)
            .arg(&out)
            .output()
            .expect("dpkg-deb (package dpkg) is needed by this test");
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
        std::fs::read(out).unwrap()
    }

    /// A cache folder as a first run leaves it: pin.toml, both .debs.
    /// The kernel is a synthetic Image with the cloud kernel's options
    /// and its virtio modules.
    pub(crate) fn filled_cache(name: &str) -> crate::testkit::Scratch {
        let top = crate::guest::tests::tempdir(name);
        let dir = top.join("debian").join(Policy::default().key());
        let work = top.join("work");
        std::fs::create_dir_all(&work).unwrap();
        let mut image = vec![0u8; 4096];
        image[0..2].copy_from_slice(b"MZ");
        image[16..24].copy_from_slice(&(4u64 << 20).to_le_bytes());
        image[24..32].copy_from_slice(&0xau64.to_le_bytes());
        image[56..60].copy_from_slice(b"ARM\x64");
        let config = "CONFIG_SERIAL_AMBA_PL011=y\nCONFIG_SERIAL_AMBA_PL011_CONSOLE=y\nCONFIG_ARM_GIC=y\nCONFIG_ARM_ARCH_TIMER=y\nCONFIG_ARM_PSCI_FW=y\nCONFIG_BLK_DEV_INITRD=y\nCONFIG_RD_GZIP=y\nCONFIG_DEVTMPFS=y\nCONFIG_VIRTIO_MMIO=m\nCONFIG_VIRTIO_NET=m\nCONFIG_VIRTIO_BLK=m\nCONFIG_VIRTIO_CONSOLE=m\n";
        let m = |dir: &str, name: &str, deps: &str| {
            (
                format!("lib/modules/{RELEASE}/kernel/drivers/{dir}/{name}.ko"),
                0o644,
                module_elf(name, deps),
            )
        };
        let modules = [
            m("virtio", "virtio_ring", ""),
            m("virtio", "virtio", "virtio_ring"),
            m("virtio", "virtio_mmio", "virtio,virtio_ring"),
            m("net", "failover", ""),
            m("net", "net_failover", "failover"),
            m("net", "virtio_net", "virtio_ring,virtio,net_failover"),
            m("block", "virtio_blk", "virtio,virtio_ring"),
            m("char", "virtio_console", "virtio,virtio_ring"),
        ];
        let mut files: Vec<(String, u32, Vec<u8>)> = vec![
            (format!("boot/vmlinuz-{RELEASE}"), 0o644, image),
            (format!("boot/config-{RELEASE}"), 0o644, config.into()),
        ];
        files.extend(modules);
        let files: Vec<(&str, u32, Vec<u8>)> = files
            .iter()
            .map(|(p, m, b)| (p.as_str(), *m, b.clone()))
            .collect();
        let kernel = deb(&work, "linux-image-test", &files);
        let busybox = deb(
            &work,
            "busybox-static",
            &[("bin/busybox", 0o755, b"\x7fELF".to_vec())],
        );
        std::fs::create_dir_all(dir.join("debs")).unwrap();
        let pin = Pin {
            kernel: Pinned {
                package: format!("linux-image-{RELEASE}"),
                version: "6.1.999-1".into(),
                size: kernel.len() as u64,
                filename: "pool/main/l/k_6.1.999-1_arm64.deb".into(),
            },
            busybox: Pinned {
                package: "busybox-static".into(),
                version: "1:1.35.0-4".into(),
                size: busybox.len() as u64,
                filename: "pool/main/b/busybox-static_1.35.0-4_arm64.deb".into(),
            },
        };
        std::fs::write(dir.join("debs/k_6.1.999-1_arm64.deb"), kernel).unwrap();
        std::fs::write(dir.join("debs/busybox-static_1.35.0-4_arm64.deb"), busybox).unwrap();
        std::fs::write(dir.join(PIN), toml::to_string(&pin).unwrap()).unwrap();
        top
    }

    fn offline_apt(dir: &Path) -> Apt {
        let mut apt = Apt::new(&dir.join("apt"));
        apt.apt_get = "/nonexistent/apt-get".into();
        apt.apt_cache = "/nonexistent/apt-cache".into();
        apt
    }

    #[test]
    fn a_filled_cache_needs_no_apt() {
        let top = filled_cache("fetch-offline");
        let dir = top.join("debian").join(Policy::default().key());
        let f = fetch(&dir, &Policy::default(), &offline_apt(&dir), false).unwrap();
        assert!(!f.network);
        assert!(f
            .kernel
            .root
            .join(format!("boot/vmlinuz-{RELEASE}"))
            .is_file());
        assert!(f.busybox.root.join("bin/busybox").is_file());
        assert_eq!(f.busybox.pinned.version, "1:1.35.0-4");
        // Again, from the unpacked trees.
        assert!(
            !fetch(&dir, &Policy::default(), &offline_apt(&dir), false)
                .unwrap()
                .network
        );
    }

    #[test]
    fn a_missing_or_truncated_package_needs_apt_and_says_so() {
        let top = filled_cache("fetch-missing");
        let dir = top.join("debian").join(Policy::default().key());
        let deb = dir.join("debs/busybox-static_1.35.0-4_arm64.deb");
        let bytes = std::fs::read(&deb).unwrap();
        std::fs::write(&deb, &bytes[..bytes.len() / 2]).unwrap();
        let err = fetch(&dir, &Policy::default(), &offline_apt(&dir), false).unwrap_err();
        assert!(
            format!("{err:?}").contains("/nonexistent/apt-get"),
            "{err:?}"
        );
        // A refresh always asks apt.
        std::fs::write(&deb, &bytes).unwrap();
        assert!(fetch(&dir, &Policy::default(), &offline_apt(&dir), true).is_err());
        assert!(fetch(&dir, &Policy::default(), &offline_apt(&dir), false).is_ok());
    }

    #[test]
    fn a_corrupt_package_is_removed_with_a_clear_error() {
        let top = filled_cache("fetch-corrupt");
        let dir = top.join("debian").join(Policy::default().key());
        let deb = dir.join("debs/k_6.1.999-1_arm64.deb");
        let mut bytes = std::fs::read(&deb).unwrap();
        let n = bytes.len();
        bytes[n / 2..].fill(0x55);
        std::fs::write(&deb, &bytes).unwrap();
        let err = fetch(&dir, &Policy::default(), &offline_apt(&dir), false).unwrap_err();
        assert!(
            format!("{err:?}").contains("is not a valid package"),
            "{err:?}"
        );
        assert!(!deb.exists());
    }
}
