//! What the kernel package holds: the Image, its configuration and its
//! modules, and which modules a guest's devices need.
//!
//! Debian's `linux-image-*-cloud-arm64` package ships
//! `boot/vmlinuz-RELEASE`, `boot/config-RELEASE` and
//! `lib/modules/RELEASE/kernel/**.ko`. Checked on bookworm's 6.1 kernels
//! (6.1.0-57, 2026-12): the `vmlinuz` is the plain arm64 Image with the EFI
//! stub (not gzip, not an EFI zboot), and the modules are uncompressed
//! (`CONFIG_MODULE_COMPRESS_NONE`); the package has no `modules.dep`
//! (depmod writes it when the package is installed), so a module's
//! dependencies are read from its own `.modinfo` section (`depends=`).
//! A gzip `vmlinuz` and an EFI zboot with a gzip payload, as other
//! releases ship, are unpacked too; compressed modules are refused with a
//! clear error.
//!
//! In the cloud kernel's configuration, the PL011 console, the GICv2, the
//! architected timer, PSCI and devtmpfs are built in; virtio, the ring, the
//! virtio-mmio transport and the console, net and block drivers are modules.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use miette::{miette, IntoDiagnostic, Result, WrapErr};
use object::{Object, ObjectSection};
use septa_sysdesc::VirtioKind;
use septa_vm_layout::image::{sniff, Format, ImageHeader};

/// A kernel tree: the root an Image package was extracted to.
pub struct Kernel {
    pub root: PathBuf,
    /// `uname -r`: the part after `vmlinuz-`.
    pub release: String,
    /// `CONFIG_NAME` to `y`, `m` or a value.
    pub config: BTreeMap<String, String>,
}

/// Options a guest on a Septa VM cannot boot without, each with what it is.
const REQUIRED: &[(&str, &str)] = &[
    ("CONFIG_SERIAL_AMBA_PL011", "the PL011 UART driver"),
    (
        "CONFIG_SERIAL_AMBA_PL011_CONSOLE",
        "the console on the PL011",
    ),
    ("CONFIG_ARM_GIC", "the GICv2 driver"),
    ("CONFIG_ARM_ARCH_TIMER", "the architected timer"),
    ("CONFIG_ARM_PSCI_FW", "PSCI"),
    ("CONFIG_BLK_DEV_INITRD", "initramfs support"),
    ("CONFIG_RD_GZIP", "gzip-compressed initramfs support"),
    ("CONFIG_DEVTMPFS", "devtmpfs"),
];

impl Kernel {
    /// Finds the kernel in an extracted package.
    pub fn open(root: &Path) -> Result<Kernel> {
        let boot = root.join("boot");
        let release = std::fs::read_dir(&boot)
            .into_diagnostic()
            .wrap_err_with(|| format!("the kernel package has no {}", boot.display()))?
            .filter_map(|e| e.ok())
            .find_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_prefix("vmlinuz-"))
                    .map(String::from)
            })
            .ok_or_else(|| miette!("no boot/vmlinuz-* in {}", root.display()))?;
        let config_path = boot.join(format!("config-{release}"));
        let text = std::fs::read_to_string(&config_path)
            .into_diagnostic()
            .wrap_err_with(|| format!("reading {}", config_path.display()))?;
        Ok(Kernel {
            root: root.to_path_buf(),
            config: parse_config(&text),
            release,
        })
    }

    pub fn vmlinuz(&self) -> PathBuf {
        self.root.join(format!("boot/vmlinuz-{}", self.release))
    }

    /// How an option is set: `Some("y")`, `Some("m")`, ..., or `None`.
    pub fn option(&self, name: &str) -> Option<&str> {
        self.config.get(name).map(String::as_str)
    }

    /// The options a Septa guest needs built in.
    pub fn check_config(&self) -> Result<()> {
        let missing: Vec<String> = REQUIRED
            .iter()
            .filter(|(o, _)| self.option(o) != Some("y"))
            .map(|(o, what)| format!("{o} ({what})"))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(miette!(
                "kernel {} lacks what a guest needs built in: {}",
                self.release,
                missing.join(", ")
            ))
        }
    }

    fn modules_dir(&self) -> PathBuf {
        self.root.join("lib/modules").join(&self.release)
    }

    /// Every module file of the package, by module name (`-` read as `_`).
    pub fn module_files(&self) -> Result<BTreeMap<String, PathBuf>> {
        let mut out = BTreeMap::new();
        let mut stack = vec![self.modules_dir().join("kernel")];
        while let Some(dir) = stack.pop() {
            let entries = std::fs::read_dir(&dir)
                .into_diagnostic()
                .wrap_err_with(|| format!("reading {}", dir.display()))?;
            for e in entries {
                let path = e.into_diagnostic()?.path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                    continue;
                };
                let stem = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s));
                if let Some(stem) = stem {
                    out.insert(stem.replace('-', "_"), path.clone());
                }
            }
        }
        Ok(out)
    }

    /// The modules to load, dependencies first, for the transport and the
    /// drivers of `kinds`; what is built in is left out.
    pub fn modules_for(&self, kinds: &[VirtioKind]) -> Result<Vec<(String, PathBuf)>> {
        if kinds.is_empty() {
            return Ok(Vec::new());
        }
        let mut wanted = vec![("virtio_mmio", "CONFIG_VIRTIO_MMIO")];
        for k in kinds {
            let m = match k {
                VirtioKind::Console => ("virtio_console", "CONFIG_VIRTIO_CONSOLE"),
                VirtioKind::Net => ("virtio_net", "CONFIG_VIRTIO_NET"),
                VirtioKind::Blk => ("virtio_blk", "CONFIG_VIRTIO_BLK"),
            };
            if !wanted.contains(&m) {
                wanted.push(m);
            }
        }
        let files = self.module_files()?;
        let mut roots = Vec::new();
        for (module, option) in wanted {
            match self.option(option) {
                Some("y") => {}
                Some("m") => roots.push(module.to_string()),
                _ => {
                    return Err(miette!(
                        "kernel {} has no {module} driver ({option} is not set)",
                        self.release
                    ))
                }
            }
        }
        load_order(&roots, &files, |path| {
            modinfo_depends(&std::fs::read(path).into_diagnostic()?)
        })
    }

    /// The Image, unpacked from `vmlinuz` if need be, and its checked
    /// header.
    pub fn image(&self) -> Result<(Vec<u8>, ImageHeader)> {
        let path = self.vmlinuz();
        let bytes = std::fs::read(&path)
            .into_diagnostic()
            .wrap_err_with(|| format!("reading {}", path.display()))?;
        unpack_image(bytes).wrap_err_with(|| format!("kernel {}", path.display()))
    }
}

/// An Image, from an Image, a gzip of one, or an EFI zboot with a gzip
/// payload; with its header checked.
pub fn unpack_image(bytes: Vec<u8>) -> Result<(Vec<u8>, ImageHeader)> {
    let image = match sniff(&bytes) {
        Format::Image | Format::Unknown => bytes,
        Format::Gzip => gunzip(&bytes)?,
        Format::ZBoot {
            offset,
            size,
            compression,
        } => {
            let kind = String::from_utf8_lossy(&compression)
                .trim_end_matches('\0')
                .to_string();
            if kind != "gzip" {
                return Err(miette!(
                    "an EFI zboot image compressed with {kind:?}: only gzip payloads are unpacked"
                ));
            }
            let (start, len) = (offset as usize, size as usize);
            let payload = bytes
                .get(start..start.saturating_add(len))
                .ok_or_else(|| miette!("an EFI zboot image whose payload [{start:#x}, +{len:#x}) runs past its {:#x} bytes", bytes.len()))?;
            gunzip(payload)?
        }
    };
    let header = ImageHeader::parse(&image).into_diagnostic()?;
    Ok((image, header))
}

fn gunzip(b: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(b)
        .read_to_end(&mut out)
        .into_diagnostic()
        .wrap_err("a corrupt gzip stream")?;
    Ok(out)
}

/// Reads `CONFIG_X=...` lines.
pub fn parse_config(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| l.starts_with("CONFIG_"))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect()
}

/// A module's dependencies, from the `depends=` string of its ELF
/// `.modinfo` section.
pub fn modinfo_depends(elf: &[u8]) -> Result<Vec<String>> {
    let file = object::File::parse(elf)
        .into_diagnostic()
        .wrap_err("not an ELF kernel module (a compressed .ko is not unpacked)")?;
    let section = file
        .section_by_name(".modinfo")
        .ok_or_else(|| miette!("a kernel module without a .modinfo section"))?;
    let data = section.data().into_diagnostic()?;
    Ok(data
        .split(|&b| b == 0)
        .filter_map(|s| std::str::from_utf8(s).ok())
        .find_map(|s| s.strip_prefix("depends="))
        .map(|d| {
            d.split(',')
                .filter(|s| !s.is_empty())
                .map(|s| s.replace('-', "_"))
                .collect()
        })
        .unwrap_or_default())
}

/// `roots` and their dependencies, each after what it depends on.
/// `depends` reads a module file's dependencies.
pub fn load_order(
    roots: &[String],
    files: &BTreeMap<String, PathBuf>,
    depends: impl Fn(&Path) -> Result<Vec<String>>,
) -> Result<Vec<(String, PathBuf)>> {
    let mut order = Vec::new();
    let mut done = BTreeSet::new();
    // Depth-first, with the path so far to catch a cycle.
    fn visit(
        name: &str,
        files: &BTreeMap<String, PathBuf>,
        depends: &dyn Fn(&Path) -> Result<Vec<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        order: &mut Vec<(String, PathBuf)>,
    ) -> Result<()> {
        if done.contains(name) {
            return Ok(());
        }
        if path.iter().any(|p| p == name) {
            return Err(miette!(
                "kernel modules depend on each other in a cycle: {} -> {name}",
                path.join(" -> ")
            ));
        }
        let file = files.get(name).ok_or_else(|| {
            miette!(
                "kernel module {name} is needed{} but not in the package",
                path.last().map(|p| format!(" by {p}")).unwrap_or_default()
            )
        })?;
        let deps = depends(file).wrap_err_with(|| format!("module {}", file.display()))?;
        path.push(name.to_string());
        for d in &deps {
            visit(d, files, depends, path, done, order)?;
        }
        path.pop();
        done.insert(name.to_string());
        order.push((name.to_string(), file.clone()));
        Ok(())
    }
    for r in roots {
        visit(r, files, &depends, &mut Vec::new(), &mut done, &mut order)?;
    }
    Ok(order)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal aarch64 ELF relocatable with a `.modinfo` section.
    pub(crate) fn module_elf(name: &str, depends: &str) -> Vec<u8> {
        use object::write::Object as W;
        let mut o = W::new(
            object::BinaryFormat::Elf,
            object::Architecture::Aarch64,
            object::Endianness::Little,
        );
        let s = o.add_section(
            Vec::new(),
            b".modinfo".to_vec(),
            object::SectionKind::ReadOnlyData,
        );
        let info = format!("license=GPL\0depends={depends}\0name={name}\0");
        o.append_section_data(s, info.as_bytes(), 1);
        o.write().unwrap()
    }

    #[test]
    fn modinfo_depends_are_read() {
        let elf = module_elf("virtio_net", "virtio_ring,virtio,net_failover");
        assert_eq!(
            modinfo_depends(&elf).unwrap(),
            ["virtio_ring", "virtio", "net_failover"]
        );
        assert!(modinfo_depends(&module_elf("virtio_ring", ""))
            .unwrap()
            .is_empty());
        let err = modinfo_depends(b"\xfd7zXZ\0 not an elf").unwrap_err();
        assert!(format!("{err:?}").contains("not an ELF kernel module"));
    }

    #[test]
    fn modules_load_after_their_dependencies() {
        let deps: BTreeMap<&str, &[&str]> = [
            ("virtio_ring", &[][..]),
            ("virtio", &["virtio_ring"][..]),
            ("virtio_mmio", &["virtio", "virtio_ring"][..]),
            ("failover", &[][..]),
            ("net_failover", &["failover"][..]),
            ("virtio_net", &["virtio_ring", "virtio", "net_failover"][..]),
        ]
        .into_iter()
        .collect();
        let files: BTreeMap<String, PathBuf> = deps
            .keys()
            .map(|k| (k.to_string(), PathBuf::from(k)))
            .collect();
        let read = |p: &Path| {
            Ok(deps[p.to_str().unwrap()]
                .iter()
                .map(|s| s.to_string())
                .collect())
        };
        let order: Vec<String> =
            load_order(&["virtio_mmio".into(), "virtio_net".into()], &files, read)
                .unwrap()
                .into_iter()
                .map(|(n, _)| n)
                .collect();
        assert_eq!(
            order,
            [
                "virtio_ring",
                "virtio",
                "virtio_mmio",
                "failover",
                "net_failover",
                "virtio_net"
            ]
        );
        let err = load_order(&["virtio_blk".into()], &files, read).unwrap_err();
        assert!(err
            .to_string()
            .contains("virtio_blk is needed but not in the package"));
    }

    #[test]
    fn a_dependency_cycle_is_an_error() {
        let files: BTreeMap<String, PathBuf> =
            [("a".into(), "a".into()), ("b".into(), "b".into())].into();
        let read = |p: &Path| Ok(vec![if p == Path::new("a") { "b" } else { "a" }.to_string()]);
        let err = load_order(&["a".into()], &files, read).unwrap_err();
        assert!(err.to_string().contains("cycle: a -> b -> a"), "{err}");
    }

    #[test]
    fn images_are_unpacked_from_gzip_and_zboot() {
        use std::io::Write;
        let mut image = vec![0u8; 8192];
        image[16..24].copy_from_slice(&(1u64 << 20).to_le_bytes());
        image[24..32].copy_from_slice(&0xau64.to_le_bytes());
        image[56..60].copy_from_slice(b"ARM\x64");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&image).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(unpack_image(image.clone()).unwrap().0, image);
        assert_eq!(unpack_image(gz.clone()).unwrap().0, image);
        let mut zboot = vec![0u8; 64];
        zboot[0..2].copy_from_slice(b"MZ");
        zboot[4..8].copy_from_slice(b"zimg");
        zboot[8..12].copy_from_slice(&64u32.to_le_bytes());
        zboot[12..16].copy_from_slice(&(gz.len() as u32).to_le_bytes());
        zboot[24..28].copy_from_slice(b"gzip");
        zboot.extend(&gz);
        let (got, header) = unpack_image(zboot.clone()).unwrap();
        assert_eq!((got, header.image_size), (image.clone(), 1 << 20));
        zboot[24..28].copy_from_slice(b"zstd");
        assert!(unpack_image(zboot)
            .unwrap_err()
            .to_string()
            .contains("zstd"));
        // A corrupt gzip and a bad header are errors that say so.
        let mut bad = gz.clone();
        let n = bad.len();
        bad[n / 2..].fill(0);
        assert!(format!("{:?}", unpack_image(bad).unwrap_err()).contains("corrupt gzip"));
        let mut wrong = image;
        wrong[57] = 0;
        assert!(unpack_image(wrong)
            .unwrap_err()
            .to_string()
            .contains("magic"));
    }

    #[test]
    fn config_lines_are_read() {
        let c = parse_config(
            "# comment\nCONFIG_A=y\nCONFIG_B=m\nCONFIG_C=\"x y\"\n# CONFIG_D is not set\n",
        );
        assert_eq!(c.get("CONFIG_A").map(String::as_str), Some("y"));
        assert_eq!(c.get("CONFIG_B").map(String::as_str), Some("m"));
        assert_eq!(c.get("CONFIG_C").map(String::as_str), Some("x y"));
        assert!(!c.contains_key("CONFIG_D"));
    }
}
