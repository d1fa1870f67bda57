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
//! | [`dtb`] | the guest's device tree (`vm-fdt`) |
//! | [`bare`] | booting a guest on bare QEMU: the yardstick and a test |
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
pub mod cpio;
pub mod debian;
pub mod dtb;
pub mod initramfs;
pub mod kernel;
pub mod policy;

use std::path::{Path, PathBuf};

use miette::{miette, IntoDiagnostic, Result, WrapErr};
use septa_sysdesc::{System, Vm};
use septa_vm_layout::{place, ImageHeader, Placement};

use crate::workspace::Workspace;

/// The line the initramfs's `/init` prints once the modules are loaded,
/// just before the shell starts.
pub const INIT_MARKER: &str = "septa-guest: init reached";

/// How [`prepare`] may use the network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Look for newer package versions even when some are pinned.
    pub refresh: bool,
    /// Never run apt: only what the cache holds (a missing package is an
    /// error). Tests use it to show that a filled cache needs no network.
    pub offline: bool,
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
            let dir = cache_root(ws).join("debian").join(policy.key());
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
        bootargs: g
            .bootargs
            .clone()
            .unwrap_or_else(|| dtb::DEFAULT_BOOTARGS.to_string()),
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
    use std::path::PathBuf;

    /// A fresh folder for one test.
    pub(crate) fn tempdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("septa-guest-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}

/// The guest of the description `file`'s VM `vm`, prepared in its build
/// folder `build/SYSTEM/guest-VM/`.
pub fn prepare_file(
    ws: &Workspace,
    file: &Path,
    vm: Option<&str>,
    opts: Options,
) -> Result<Artefacts> {
    let loaded = crate::describe::load(file)?;
    let system = &loaded.system;
    let vm = find_vm(system, vm)?;
    let out = ws
        .build_dir(&crate::pack::system_name(file))
        .join(format!("guest-{}", vm.name));
    let base = file.parent().unwrap_or(Path::new("."));
    prepare(ws, system, vm, base, &out, opts)
}

/// `cargo septa guest`: prepare, say what it is, and boot it on bare QEMU
/// if asked.
pub fn cli(
    ws: &Workspace,
    file: &Path,
    vm: Option<&str>,
    opts: Options,
    boot: Option<bare::Options>,
) -> Result<()> {
    let a = prepare_file(ws, file, vm, opts)?;
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    for (name, version, bytes) in &a.packages {
        println!("package  {name} {version} ({bytes} bytes)");
    }
    if let Some(r) = &a.release {
        println!("release  {r}");
    }
    let p = &a.placement;
    println!(
        "kernel   {} ({} bytes; text_offset {:#x}, image_size {:#x}, {} pages) at {:#x}",
        a.kernel.display(),
        size(&a.kernel),
        a.header.text_offset,
        a.header.image_size,
        a.header.page_size,
        p.kernel
    );
    println!(
        "dtb      {} ({} bytes) at {:#x}",
        a.dtb.display(),
        size(&a.dtb),
        p.dtb
    );
    println!(
        "initrd   {} ({} bytes) at {:#x}..{:#x}",
        a.initrd.display(),
        size(&a.initrd),
        p.initrd,
        p.initrd_end
    );
    println!(
        "network  {}",
        if a.network {
            "used (apt)"
        } else {
            "not used: all from the cache"
        }
    );
    if let Some(opts) = boot {
        let b = bare::boot(&a, &opts)?;
        println!(
            "bare QEMU: `{INIT_MARKER}` after {:.3} s (wall)",
            b.to_marker.as_secs_f64()
        );
        if let Some(ns) = b.guest_ns_at_marker {
            println!(
                "bare QEMU: guest clock at the marker {ns} ns{}",
                if opts.icount {
                    " (under -icount shift=0: virtual ns)"
                } else {
                    ""
                }
            );
        }
        for (cmd, out) in opts.commands.iter().zip(&b.outputs) {
            println!("$ {cmd}");
            for l in out {
                println!("{l}");
            }
        }
    }
    Ok(())
}

/// `cargo septa dtb`: the guest's device tree, and its source if `dtc` is
/// installed.
pub fn cli_dtb(
    ws: &Workspace,
    file: &Path,
    vm: Option<&str>,
    output: Option<PathBuf>,
    opts: Options,
) -> Result<()> {
    let a = prepare_file(ws, file, vm, opts)?;
    let dtb = match output {
        Some(o) => {
            std::fs::copy(&a.dtb, &o)
                .into_diagnostic()
                .wrap_err_with(|| format!("writing {}", o.display()))?;
            o
        }
        None => a.dtb.clone(),
    };
    eprintln!("dtb: {}", dtb.display());
    match dtb::to_dts(&dtb) {
        Some(Ok(dts)) => {
            let path = dtb.with_extension("dts");
            write(&path, dts.as_bytes())?;
            eprintln!("dts: {}", path.display());
            print!("{dts}");
        }
        Some(Err(e)) => return Err(miette!("dtc cannot read {}: {e}", dtb.display())),
        None => eprintln!("(install device-tree-compiler to see it as source)"),
    }
    Ok(())
}
