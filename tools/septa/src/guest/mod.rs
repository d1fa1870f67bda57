//! The guest side of a VM: the Debian kernel and busybox fetched with a
//! private apt, the initramfs, the device tree, and booting all three on
//! bare QEMU.
//!
//! | module | what it owns |
//! |---|---|
//! | [`policy`] | which Debian suite, archive and packages (named once) |
//! | [`apt`] | apt confined to a folder of the cache |
//! | [`debian`] | the cache: pinned versions, .debs, unpacked trees |
//! | [`kernel`] | the kernel package: Image, config, modules and their order |
//! | [`cpio`] | the newc cpio writer |
//! | [`initramfs`] | busybox, modules and `/init` as a gzip cpio |
//! | [`programs`] | small arm64 programs the tool writes into the initramfs |
//! | [`module`] | the hostile test module the tool writes into the initramfs |
//! | [`dtb`] | the guest's device tree (`vm-fdt`) |
//! | [`bare`] | booting a guest on bare QEMU: the yardstick and a test |
//! | [`cli`] | `cargo septa guest` and `cargo septa dtb` |
//!
//! [`prepare`] puts them together for one VM of a description: it writes
//! `Image`, `initramfs.cpio.gz` and `guest.dtb` (and `guest.dts` when
//! `dtc` is installed) into the build folder `build/SYSTEM/guest-VM/`.
//!
//! The cache: `$SEPTA_CACHE`, else `$XDG_CACHE_HOME/septa`, else
//! `~/.cache/septa` (else `build/cache` in the repository), under
//! `debian/SUITE-ARCH/`. A per-user cache rather than the build folder,
//! because the packages (about 22 MB) are the same for every checkout and
//! every system: a fresh clone on the same machine, CI's included, reuses
//! what was fetched before, and `cargo clean` or `rm -rf build` does not
//! lose it. Nothing outside that folder is written but the build folder.

pub mod apt;
pub mod bare;
pub mod cli;
pub mod cpio;
pub mod debian;
pub mod dtb;
pub mod initramfs;
pub mod kernel;
pub mod module;
pub mod policy;
pub mod programs;

use std::path::{Path, PathBuf};

use miette::{miette, IntoDiagnostic, Result, WrapErr};
use septa_sysdesc::{System, Vm};
use septa_vm_layout::{place, ImageHeader, Placement};

use crate::workspace::Workspace;

/// The line the initramfs's `/init` prints once the modules are loaded,
/// just before the shell starts.
pub const INIT_MARKER: &str = "septa-guest: init reached";

/// How [`prepare`] may use the network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Look for newer package versions even when some are pinned.
    pub refresh: bool,
    /// Never run apt: only what the cache holds (a missing package is an
    /// error). Tests use it to show that a filled cache needs no network.
    pub offline: bool,
    /// The cache root instead of [`cache_root`]'s.
    pub cache: Option<PathBuf>,
}

/// Where the guest's files went, and what they are.
#[derive(Debug, Clone)]
pub struct Artefacts {
    pub dir: PathBuf,
    /// The unpacked arm64 Image.
    pub kernel: PathBuf,
    pub header: ImageHeader,
    pub initrd: PathBuf,
    pub dtb: PathBuf,
    pub placement: Placement,
    pub tree: dtb::GuestTree,
    /// The Debian packages used (name, version, .deb bytes); empty when the
    /// description names its own kernel and initrd.
    pub packages: Vec<(String, String, u64)>,
    /// The Debian kernel's `uname -r`.
    pub release: Option<String>,
    /// Whether apt ran (the network was used).
    pub network: bool,
}

/// The cache root.
pub fn cache_root(ws: &Workspace) -> PathBuf {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("SEPTA_CACHE")
        .or_else(|| env("XDG_CACHE_HOME").map(|p| p.join("septa")))
        .or_else(|| env("HOME").map(|p| p.join(".cache/septa")))
        .unwrap_or_else(|| ws.root.join("build/cache"))
}

/// The VM named `name`, or the description's only VM.
pub fn find_vm<'a>(system: &'a System, name: Option<&str>) -> Result<&'a Vm> {
    let vms: Vec<&Vm> = system.pds.iter().filter_map(|p| p.vm.as_ref()).collect();
    match name {
        Some(n) => vms.iter().copied().find(|v| v.name == n).ok_or_else(|| {
            let names: Vec<&str> = vms.iter().map(|v| v.name.as_str()).collect();
            miette!(
                "the description has no virtual machine `{n}` (it has: {})",
                if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                }
            )
        }),
        None => match vms.as_slice() {
            [one] => Ok(one),
            [] => Err(miette!("the description has no virtual machine")),
            _ => Err(miette!(
                "the description has {} virtual machines: name one with --vm",
                vms.len()
            )),
        },
    }
}

/// The guest RAM of `vm`: base and size (the description's validation has
/// made it one span).
pub fn guest_ram(system: &System, vm: &Vm) -> Result<(u64, u64)> {
    let ram = vm.ram(|n| system.region(n).map(|r| r.size));
    let first = ram.first().ok_or_else(|| {
        miette!(
            "virtual machine `{}` has no RAM: map a region at {:#x}",
            vm.name,
            septa_vm_layout::map::RAM_BASE
        )
    })?;
    let end = ram.iter().map(|r| r.0 + r.1).max().unwrap_or(first.0);
    Ok((first.0, end - first.0))
}

/// The command line of a guest, with a sealed one's DMA options: its
/// swiotlb bounce pool half the shared window (`swiotlb=` counts 2 KiB
/// slabs; Linux allocates it below the DMA limit, so in the window), no
/// contiguous memory area (`cma=0`: Linux would put it in the window too,
/// and lend its pages to any movable allocation), and ZONE_DMA (the
/// window) kept from allocations that could be served elsewhere
/// (`lowmem_reserve_ratio` 1 for ZONE_DMA: its reserve against them is
/// all the memory above it, so they never fall back into it).
pub fn sealed_bootargs(bootargs: String, shared: Option<(u64, u64)>) -> String {
    match shared {
        Some((_, size)) => format!(
            "{bootargs} swiotlb={} cma=0 sysctl.vm.lowmem_reserve_ratio=1",
            size / 2 / 2048
        ),
        None => bootargs,
    }
}

/// Fetches (or takes from the cache) and builds the guest of `vm`; its
/// files go to `out`; relative paths of the description start at
/// `base_dir`.
pub fn prepare(
    ws: &Workspace,
    system: &System,
    vm: &Vm,
    base_dir: &Path,
    out: &Path,
    opts: Options,
) -> Result<Artefacts> {
    mkdirs(out)?;
    let ram = guest_ram(system, vm)?;
    let g = &vm.guest;
    let mut packages = Vec::new();
    let mut release = None;
    let mut network = false;
    let kernel_path = out.join("Image");
    let initrd_path;
    let header;
    match (&g.kernel, &g.initrd) {
        (Some(k), Some(i)) => {
            let k = base_dir.join(k);
            let bytes = std::fs::read(&k)
                .into_diagnostic()
                .wrap_err_with(|| format!("reading the guest kernel {}", k.display()))?;
            let (image, h) = kernel::unpack_image(bytes)
                .wrap_err_with(|| format!("the guest kernel {}", k.display()))?;
            write(&kernel_path, &image)?;
            header = h;
            initrd_path = base_dir.join(i);
        }
        (Some(_), None) => {
            return Err(miette!(
                "virtual machine `{}` names its own kernel but no initrd",
                vm.name
            ))
        }
        (None, initrd) => {
            let policy = policy::Policy::default();
            let dir = opts
                .cache
                .clone()
                .unwrap_or_else(|| cache_root(ws))
                .join("debian")
                .join(policy.key());
            let mut apt = apt::Apt::new(&dir.join("apt"));
            if opts.offline {
                apt.apt_get = "/nonexistent/offline/apt-get".into();
                apt.apt_cache = "/nonexistent/offline/apt-cache".into();
            }
            let fetched = debian::fetch(&dir, &policy, &apt, opts.refresh).wrap_err(
                "fetching the guest's Debian packages (the first time needs the network)",
            )?;
            network = fetched.network;
            for p in [&fetched.kernel, &fetched.busybox] {
                packages.push((
                    p.pinned.package.clone(),
                    p.pinned.version.clone(),
                    p.pinned.size,
                ));
            }
            let k = kernel::Kernel::open(&fetched.kernel.root)?;
            k.check_config()?;
            let (image, h) = k.image()?;
            write(&kernel_path, &image)?;
            header = h;
            initrd_path = match initrd {
                Some(i) => base_dir.join(i),
                None => {
                    let kinds: Vec<_> = g.devices.iter().map(|d| d.kind).collect();
                    let busybox_path = fetched.busybox.root.join("bin/busybox");
                    let contents = initramfs::Contents {
                        busybox: std::fs::read(&busybox_path)
                            .into_diagnostic()
                            .wrap_err_with(|| format!("reading {}", busybox_path.display()))?,
                        release: k.release.clone(),
                        modules: k.modules_for(&kinds)?,
                        hostile: hostile_module(&k),
                    };
                    let p = out.join("initramfs.cpio.gz");
                    write(&p, &initramfs::build(&contents)?)?;
                    p
                }
            };
            release = Some(k.release);
        }
    }
    let initrd_len = std::fs::metadata(&initrd_path)
        .into_diagnostic()
        .wrap_err_with(|| format!("the guest initrd {}", initrd_path.display()))?
        .len();
    let placement = place(ram.0, ram.1, &header, initrd_len)
        .into_diagnostic()
        .wrap_err_with(|| format!("placing the guest of virtual machine `{}`", vm.name))?;
    let tree = dtb::GuestTree {
        vcpus: vm.vcpus.len() as u32,
        ram,
        bootargs: sealed_bootargs(
            g.bootargs
                .clone()
                .unwrap_or_else(|| dtb::DEFAULT_BOOTARGS.to_string()),
            g.shared,
        ),
        shared: g.shared,
        initrd: Some((placement.initrd, placement.initrd_end)),
        devices: g
            .devices
            .iter()
            .map(|d| (d.name.clone(), d.kind, d.slot))
            .collect(),
    };
    let dtb_path = out.join("guest.dtb");
    write(&dtb_path, &dtb::build(&tree)?)?;
    if let Some(Ok(dts)) = dtb::to_dts(&dtb_path) {
        write(&out.join("guest.dts"), dts.as_bytes())?;
    }
    Ok(Artefacts {
        dir: out.to_path_buf(),
        kernel: kernel_path,
        header,
        initrd: initrd_path,
        dtb: dtb_path,
        placement,
        tree,
        packages,
        release,
        network,
    })
}

/// The hostile test module for kernel `k`, modelled on one of its own
/// modules; without that module (another kernel) there is none, said once.
fn hostile_module(k: &kernel::Kernel) -> Option<Vec<u8>> {
    let made = k.module_files().and_then(|files| {
        let t = files
            .get(module::TEMPLATE)
            .ok_or_else(|| miette!("the kernel has no {}.ko", module::TEMPLATE))?;
        let bytes = std::fs::read(t).into_diagnostic()?;
        module::build(&module::template(&bytes, module::TEMPLATE)?)
    });
    match made {
        Ok(m) => Some(m),
        Err(e) => {
            eprintln!("   note: the initramfs has no {}.ko: {e}", module::NAME);
            None
        }
    }
}

pub(crate) fn mkdirs(p: &Path) -> Result<()> {
    std::fs::create_dir_all(p)
        .into_diagnostic()
        .wrap_err_with(|| format!("creating {}", p.display()))
}

/// Writes a file whole: to a temporary name, then renamed over `p`, so a
/// reader never sees half of it.
pub(crate) fn write(p: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = p.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes)
        .and_then(|_| std::fs::rename(&tmp, p))
        .into_diagnostic()
        .wrap_err_with(|| format!("writing {}", p.display()))
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Read;
    use std::path::{Path, PathBuf};

    use super::*;

    fn system(extra: &str) -> System {
        let text = format!(
            "[system]\nboard = \"qemu-virt\"\n[pd.vmm]\nprogram = \"vmm\"\n\
             [pd.vmm.vm.linux]\nvcpus = [{{ id = 0 }}]\n{extra}\n\
             [region.ram]\nsize = \"128 MiB\"\n"
        );
        septa_sysdesc::parse_str_in("g.toml", &text, septa_sysdesc::Format::Toml, Path::new("/"))
            .map_err(|r| r.render())
            .unwrap()
            .system
    }

    fn ws() -> Workspace {
        Workspace {
            root: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."),
        }
    }

    #[test]
    fn a_guest_is_prepared_from_the_cache_alone() {
        let top = debian::tests::filled_cache("prepare");
        let s = system(
            "maps = [{ region = \"ram\", vaddr = 0x4000_0000, perms = \"rwx\" }]\n\
             devices = [{ name = \"eth0\", kind = \"net\" }, { name = \"vda\", kind = \"blk\" }]",
        );
        let vm = find_vm(&s, None).unwrap();
        let out = top.join("out");
        let opts = Options {
            offline: true,
            cache: Some(top.to_path_buf()),
            ..Default::default()
        };
        let a = prepare(&ws(), &s, vm, Path::new("/"), &out, opts).unwrap();
        assert!(!a.network);
        assert_eq!(a.release.as_deref(), Some(debian::tests::RELEASE));
        assert_eq!(a.header.image_size, 4 << 20);
        assert_eq!(a.placement.kernel, 0x4000_0000);
        assert_eq!(a.tree.ram, (0x4000_0000, 128 << 20));
        assert_eq!(
            a.tree.initrd,
            Some((a.placement.initrd, a.placement.initrd_end))
        );
        // The initramfs loads the transport, then each driver after what
        // it depends on; the console's driver is not there.
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&a.initrd).unwrap())
            .read_to_end(&mut raw)
            .unwrap();
        let text = String::from_utf8_lossy(&raw);
        let at = |m: &str| {
            text.find(&format!("/{m}.ko ||"))
                .unwrap_or_else(|| panic!("{m}"))
        };
        assert!(at("virtio_ring") < at("virtio") && at("virtio") < at("virtio_mmio"));
        assert!(at("failover") < at("net_failover") && at("net_failover") < at("virtio_net"));
        assert!(at("virtio_blk") > at("virtio"));
        assert!(!text.contains("virtio_console.ko"));
        assert!(a.dtb.is_file() && a.kernel.is_file());
    }

    #[test]
    fn a_vm_without_ram_or_with_too_little_is_refused() {
        let top = debian::tests::filled_cache("prepare-ram");
        let opts = Options {
            offline: true,
            cache: Some(top.to_path_buf()),
            ..Default::default()
        };
        let s = system("");
        let err = prepare(
            &ws(),
            &s,
            find_vm(&s, None).unwrap(),
            Path::new("/"),
            &top,
            opts,
        )
        .unwrap_err();
        assert!(err.to_string().contains("has no RAM"), "{err}");
        assert!(find_vm(&s, Some("other"))
            .unwrap_err()
            .to_string()
            .contains("has: linux"));
    }

    #[test]
    fn the_users_kernel_and_initrd_are_taken_as_they_are() {
        let dir = tempdir("own-kernel");
        let mut image = vec![0u8; 4096];
        image[16..24].copy_from_slice(&(2u64 << 20).to_le_bytes());
        image[56..60].copy_from_slice(b"ARM\x64");
        std::fs::write(dir.join("Image"), &image).unwrap();
        std::fs::write(dir.join("initrd"), b"my initrd").unwrap();
        let text = "[system]\nboard = \"qemu-virt\"\n[pd.vmm]\nprogram = \"vmm\"\n\
             [pd.vmm.vm.linux]\nvcpus = [{ id = 0 }]\nkernel = \"Image\"\ninitrd = \"initrd\"\n\
             maps = [{ region = \"ram\", vaddr = 0x4000_0000 }]\n[region.ram]\nsize = \"64 MiB\"\n";
        let s = septa_sysdesc::parse_str_in("g.toml", text, septa_sysdesc::Format::Toml, &dir)
            .map_err(|r| r.render())
            .unwrap()
            .system;
        let run = || {
            let vm = find_vm(&s, None).unwrap();
            prepare(&ws(), &s, vm, &dir, &dir.join("out"), Options::default())
        };
        let a = run().unwrap();
        assert!(a.packages.is_empty() && !a.network);
        assert_eq!(a.initrd, dir.join("initrd"));
        assert_eq!(a.placement.initrd_end - a.placement.initrd, 9);
        // A corrupt kernel is an error that says what is wrong with it.
        image[56] = 0;
        std::fs::write(dir.join("Image"), &image).unwrap();
        let err = run().unwrap_err();
        assert!(
            format!("{err:?}").contains("no arm64 Image magic"),
            "{err:?}"
        );
    }

    /// A fresh folder for one test.
    pub(crate) fn tempdir(name: &str) -> crate::testkit::Scratch {
        crate::testkit::Scratch::new(&format!("guest-{name}"))
    }
}
