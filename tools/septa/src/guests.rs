//! The guest stage: each VM's guest files, handed to its VMM.
//!
//! For every PD that runs a VM and whose program asks for its guest (it
//! declares the symbol [`ASK`], as the `vmm` crate does), the tool prepares
//! the guest ([`crate::guest::prepare`]: Debian's kernel and the busybox
//! initramfs from the cache, or the description's own files, and the
//! device tree) and adds to the model, before patching and the spec:
//!
//! - three regions, `guest.VM.kernel`, `guest.VM.initrd` and
//!   `guest.VM.dtb`, prefilled with the Image, the initrd and the device
//!   tree (2 MiB pages where a file is that large);
//! - a read-only map of each into the VMM, from [`IMAGES_VADDR`] up, whose
//!   `setvar_vaddr` / `setvar_prefill_size` are `septa_vm_kernel_vaddr` /
//!   `septa_vm_kernel_size` and likewise for `initrd` and `dtb`.
//!
//! The files stay read-only and separate from guest RAM, so the VMM can
//! load them again when the guest resets or the VMM restarts. The guest's
//! RAM and vCPUs reach the VMM through patched symbols too
//! ([`crate::patch`]: `septa_vm_ram_*`, `septa_vm_vcpus`); the description
//! must map the VM's RAM into the VMM, as one span in the same order
//! ([`vmm_ram_vaddr`]).
//!
//! Input: the model, the PDs' program images, the build folder. Output: the
//! model with the regions and maps added, and each guest's
//! [`Artefacts`].

use std::path::Path;

use miette::{miette, Result};
use septa_sysdesc::{Map, Perms, Prefill, Region, System};

use crate::elf::ElfImage;
use crate::guest::{self, Artefacts};
use crate::workspace::Workspace;

/// The symbol by which a VMM program asks for its guest's files.
pub const ASK: &str = "septa_vm_kernel_vaddr";

/// Where the guest files are mapped in the VMM: far above where PDs map
/// their regions (the top of the address space holds the stack).
pub const IMAGES_VADDR: u64 = 0x80_0000_0000;

const LARGE_PAGE: u64 = 2 << 20;
const PAGE: u64 = 4 << 10;

/// A guest prepared for PD `pd`.
#[derive(Clone)]
pub struct Prepared {
    pub pd: usize,
    pub artefacts: Artefacts,
    /// What its VMM holds, as built.
    pub footprint: Footprint,
}

/// The memory a VMM PD holds, from its program's segments and the maps of
/// the system as built (issue 16's "VMM memory footprint", printed by
/// `septa bench`). Every figure is in bytes of whole pages, as mapped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Executable segments.
    pub code: u64,
    /// The other segments: read-only data, data and .bss (the heap, a
    /// static array, is in .bss).
    pub data: u64,
    /// The stack the description gives it, and its IPC buffer page.
    pub stack: u64,
    /// Regions it maps other than its guest's RAM and the guest's files:
    /// queues and data regions of the serial, network and block
    /// subsystems, anything else the description maps into it.
    pub regions: u64,
    /// The guest's kernel, initrd and device tree (read-only regions
    /// from which it loads the guest on every boot).
    pub guest_files: u64,
    /// Its VM's RAM, and how much of it the VMM maps.
    pub guest_ram: u64,
    pub guest_ram_mapped: u64,
}

impl Footprint {
    /// What the VMM itself costs: code, data, stack and its own regions
    /// (not the guest's RAM, nor the guest's files).
    pub fn total(&self) -> u64 {
        self.code + self.data + self.stack + self.regions
    }

    /// The share of the guest's RAM mapped into the VMM, 0 to 1.
    pub fn ram_share(&self) -> f64 {
        if self.guest_ram == 0 {
            0.0
        } else {
            self.guest_ram_mapped as f64 / self.guest_ram as f64
        }
    }

    /// The figures as `septa bench` names them.
    pub fn figures(&self) -> Vec<(String, f64)> {
        [
            ("vmm-footprint-bytes", self.total() as f64),
            ("vmm-code-bytes", self.code as f64),
            ("vmm-data-bytes", self.data as f64),
            ("vmm-stack-bytes", self.stack as f64),
            ("vmm-region-bytes", self.regions as f64),
            ("vmm-guest-file-bytes", self.guest_files as f64),
            ("vmm-guest-ram-mapped-bytes", self.guest_ram_mapped as f64),
            ("vmm-guest-ram-share", self.ram_share()),
        ]
        .into_iter()
        .map(|(n, v)| (n.to_string(), v))
        .collect()
    }
}

/// The footprint of VMM PD `pd` running program `image` in `sys` (with
/// the guest's files already added as its regions).
pub fn footprint(sys: &System, pd: usize, image: &ElfImage) -> Footprint {
    let pages = |lo: u64, hi: u64| hi.next_multiple_of(PAGE) - (lo & !(PAGE - 1));
    let mut f = Footprint::default();
    for s in &image.segments {
        let n = pages(s.vaddr, s.end());
        if s.execute {
            f.code += n;
        } else {
            f.data += n;
        }
    }
    let p = &sys.pds[pd];
    f.stack = p.stack_size.next_multiple_of(PAGE) + PAGE;
    let ram: Vec<&str> =
        p.vm.as_ref()
            .map(|vm| {
                vm.ram(|n| sys.region(n).map(|r| r.size))
                    .into_iter()
                    .map(|(_, _, m)| m.region.as_str())
                    .collect()
            })
            .unwrap_or_default();
    f.guest_ram = ram
        .iter()
        .filter_map(|n| sys.region(n))
        .map(|r| r.size)
        .sum();
    let files = p.vm.as_ref().map(|vm| format!("guest.{}.", vm.name));
    for m in &p.maps {
        let size = sys.region(&m.region).map_or(0, |r| r.size);
        if ram.contains(&m.region.as_str()) {
            f.guest_ram_mapped += size;
        } else if files.as_deref().is_some_and(|f| m.region.starts_with(f)) {
            f.guest_files += size;
        } else {
            f.regions += size.next_multiple_of(PAGE);
        }
    }
    f
}

/// Where the VMM PD `pd` maps its VM's RAM: the address of the RAM's first
/// byte, when every RAM region of the VM is mapped into the PD in the same
/// order and without gaps.
pub fn vmm_ram_vaddr(sys: &System, pd: usize) -> Result<u64, String> {
    let p = &sys.pds[pd];
    let Some(vm) = &p.vm else {
        return Err(format!("PD `{}` has no VM", p.name));
    };
    let ram = vm.ram(|n| sys.region(n).map(|r| r.size));
    let Some(&(base, _, first)) = ram.first() else {
        return Err(format!("virtual machine `{}` has no RAM", vm.name));
    };
    let Some(start) = p
        .maps
        .iter()
        .find(|m| m.region == first.region)
        .map(|m| m.vaddr)
    else {
        return Err(format!(
            "PD `{}` must map the RAM of its virtual machine `{}` (region `{}`) to load the guest",
            p.name, vm.name, first.region
        ));
    };
    for &(gpa, _, m) in &ram[1..] {
        let want = start + (gpa - base);
        if !p
            .maps
            .iter()
            .any(|pm| pm.region == m.region && pm.vaddr == want)
        {
            return Err(format!(
                "PD `{}` must map region `{}` of its guest's RAM at {want:#x}, right after the RAM before it",
                p.name, m.region
            ));
        }
    }
    Ok(start)
}

fn round(len: u64) -> (u64, u64) {
    if len >= LARGE_PAGE {
        (len.next_multiple_of(LARGE_PAGE), LARGE_PAGE)
    } else {
        (len.max(1).next_multiple_of(PAGE), PAGE)
    }
}

/// Prepares the guest of every VMM that asks for one and adds its files to
/// `sys` (see the module comment). `images[i]` is PD `i`'s program.
pub fn add(
    ws: &Workspace,
    sys: &mut System,
    base: &Path,
    images: &[ElfImage],
    build_dir: &Path,
) -> Result<Vec<Prepared>> {
    let mut out = Vec::new();
    for (pd, image) in images.iter().enumerate() {
        let Some(vm) = sys.pds[pd].vm.clone() else {
            continue;
        };
        if image.symbol(ASK).is_none() {
            continue;
        }
        if vm.guest.shared.is_none() {
            vmm_ram_vaddr(sys, pd).map_err(|e| miette!("{e}"))?;
        }
        let dir = build_dir.join(format!("guest-{}", vm.name));
        let artefacts = guest::prepare(ws, sys, &vm, base, &dir, guest::Options::default())?;
        if vm.guest.shared.is_some() {
            preload(sys, &vm, &artefacts, &dir)?;
        }
        let files = [
            ("kernel", artefacts.kernel.clone()),
            ("initrd", artefacts.initrd.clone()),
            ("dtb", artefacts.dtb.clone()),
        ];
        let mut vaddr = IMAGES_VADDR;
        for (what, path) in files {
            let len = std::fs::metadata(&path)
                .map_err(|e| miette!("the guest's {what} {}: {e}", path.display()))?
                .len();
            let (size, page) = round(len);
            vaddr = vaddr.next_multiple_of(page);
            let name = format!("guest.{}.{what}", vm.name);
            let p = &sys.pds[pd];
            if let Some(m) = p.maps.iter().find(|m| {
                let end = m.vaddr + sys.region(&m.region).map_or(0, |r| r.size);
                m.vaddr < vaddr + size && vaddr < end
            }) {
                return Err(miette!(
                    "PD `{}` maps region `{}` at {:#x}, where the tool puts its guest's {what} ({vaddr:#x}..{:#x})",
                    p.name,
                    m.region,
                    m.vaddr,
                    vaddr + size
                ));
            }
            sys.regions.push(Region {
                name: name.clone(),
                size,
                page_size: page,
                page_size_given: true,
                phys: None,
                device: None,
                prefill: Some(Prefill::File {
                    path: path.clone(),
                    len,
                }),
                src: Default::default(),
            });
            sys.pds[pd].maps.push(Map {
                region: name,
                vaddr,
                perms: Perms {
                    read: true,
                    write: false,
                    execute: false,
                },
                cached: true,
                setvar_vaddr: Some(format!("septa_vm_{what}_vaddr")),
                setvar_size: None,
                setvar_prefill_size: Some(format!("septa_vm_{what}_size")),
                setvar_device: None,
                setvar_device_size: None,
                src: Default::default(),
            });
            vaddr += size;
        }
        let footprint = footprint(sys, pd, image);
        out.push(Prepared {
            pd,
            artefacts,
            footprint,
        });
    }
    Ok(out)
}

/// A sealed guest: its RAM region is prefilled with the guest as the VMM
/// would have loaded it (kernel, device tree and initrd where
/// `septa_vm_layout::place` puts them, zeros between), so that the
/// initializer loads it and the VMM never maps the RAM. The file
/// `ram.img` beside the guest's files holds the RAM's first bytes up to
/// the initrd's end.
fn preload(sys: &mut System, vm: &septa_sysdesc::Vm, a: &Artefacts, dir: &Path) -> Result<()> {
    let ram = vm.ram(|n| sys.region(n).map(|r| r.size));
    let [(base, size, m)] = ram.as_slice() else {
        return Err(miette!(
            "sealed virtual machine `{}` must have its RAM in one region",
            vm.name
        ));
    };
    let region = m.region.clone();
    let p = &a.placement;
    let read = |f: &Path| std::fs::read(f).map_err(|e| miette!("{}: {e}", f.display()));
    let mut img = vec![0u8; (p.initrd_end - base) as usize];
    for (at, bytes) in [
        (p.kernel, read(&a.kernel)?),
        (p.dtb, read(&a.dtb)?),
        (p.initrd, read(&a.initrd)?),
    ] {
        let off = (at - base) as usize;
        img[off..off + bytes.len()].copy_from_slice(&bytes);
    }
    if img.len() as u64 > *size {
        return Err(miette!("the guest of `{}` does not fit its RAM", vm.name));
    }
    let path = dir.join("ram.img");
    std::fs::write(&path, &img).map_err(|e| miette!("{}: {e}", path.display()))?;
    let r = sys
        .regions
        .iter_mut()
        .find(|r| r.name == region)
        .ok_or_else(|| miette!("no region `{region}`"))?;
    r.prefill = Some(Prefill::File {
        path,
        len: img.len() as u64,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn system(vmm_maps: &str) -> System {
        let text = format!(
            "[system]\nboard = \"qemu-virt\"\n[pd.vmm]\nprogram = \"vmm\"\nmaps = [{vmm_maps}]\n\
             [pd.vmm.vm.linux]\nvcpus = [{{ id = 0 }}]\n\
             maps = [{{ region = \"lo\", vaddr = 0x4000_0000 }}, {{ region = \"hi\", vaddr = 0x4400_0000 }}]\n\
             [region.lo]\nsize = \"64 MiB\"\n[region.hi]\nsize = \"64 MiB\"\n"
        );
        septa_sysdesc::parse_str("g.toml", &text, septa_sysdesc::Format::Toml)
            .map_err(|r| r.render())
            .unwrap()
            .system
    }

    #[test]
    fn the_vmm_maps_its_guests_ram_as_one_span() {
        let s = system(
            "{ region = \"lo\", vaddr = 0x2000_0000 }, { region = \"hi\", vaddr = 0x2400_0000 }",
        );
        assert_eq!(vmm_ram_vaddr(&s, 0), Ok(0x2000_0000));
        let s = system("{ region = \"lo\", vaddr = 0x2000_0000 }");
        let e = vmm_ram_vaddr(&s, 0).unwrap_err();
        assert!(e.contains("region `hi`") && e.contains("0x24000000"), "{e}");
        let s = system("");
        let e = vmm_ram_vaddr(&s, 0).unwrap_err();
        assert!(e.contains("must map the RAM") && e.contains("`lo`"), "{e}");
    }

    #[test]
    fn a_vmm_footprint_counts_its_pages_and_not_its_guest() {
        let text = "[system]\nboard = \"qemu-virt\"\n[pd.vmm]\nprogram = \"vmm\"\n\
             maps = [{ region = \"lo\", vaddr = 0x2000_0000 }, { region = \"hi\", vaddr = 0x2400_0000 }, { region = \"q\", vaddr = 0x1000_0000 }]\n\
             [pd.vmm.vm.linux]\nvcpus = [{ id = 0 }]\n\
             maps = [{ region = \"lo\", vaddr = 0x4000_0000 }, { region = \"hi\", vaddr = 0x4400_0000 }]\n\
             [region.lo]\nsize = \"64 MiB\"\n[region.hi]\nsize = \"64 MiB\"\n[region.q]\nsize = \"8 KiB\"\n";
        let mut s = septa_sysdesc::parse_str("g.toml", text, septa_sysdesc::Format::Toml)
            .map_err(|r| r.render())
            .unwrap()
            .system;
        s.regions.push(Region {
            name: "guest.linux.kernel".into(),
            size: 4 << 20,
            page_size: LARGE_PAGE,
            page_size_given: true,
            phys: None,
            device: None,
            prefill: None,
            src: Default::default(),
        });
        s.pds[0].maps.push(Map {
            region: "guest.linux.kernel".into(),
            vaddr: IMAGES_VADDR,
            perms: Perms {
                read: true,
                write: false,
                execute: false,
            },
            cached: true,
            setvar_vaddr: None,
            setvar_size: None,
            setvar_prefill_size: None,
            setvar_device: None,
            setvar_device_size: None,
            src: Default::default(),
        });
        let stack = s.pds[0].stack_size;
        let f = footprint(&s, 0, &crate::elf::tests::sample());
        // sample(): 0x1800 bytes of code, 0x3000 of data (0x100 in the file).
        assert_eq!((f.code, f.data), (0x2000, 0x3000));
        assert_eq!(f.stack, stack.next_multiple_of(PAGE) + PAGE);
        assert_eq!(f.regions, 0x2000);
        assert_eq!(f.guest_files, 4 << 20);
        assert_eq!((f.guest_ram, f.guest_ram_mapped), (128 << 20, 128 << 20));
        assert_eq!(f.ram_share(), 1.0);
        assert_eq!(f.total(), 0x2000 + 0x3000 + f.stack + 0x2000);
        // The VMM maps half of the guest's RAM: half the share.
        s.pds[0].maps.retain(|m| m.region != "hi");
        let f = footprint(&s, 0, &crate::elf::tests::sample());
        assert_eq!(f.guest_ram_mapped, 64 << 20);
        assert_eq!(f.ram_share(), 0.5);
    }

    #[test]
    fn files_are_rounded_to_their_pages() {
        assert_eq!(round(1866), (PAGE, PAGE));
        assert_eq!(round(0x1_0000), (0x1_0000, PAGE));
        assert_eq!(round(27_303_872), (28 << 20, LARGE_PAGE));
    }
}
