//! A VM's guest (Septa's addition to `[pd.NAME.vm.VM]`): its kernel, initrd,
//! command line and virtio devices, and the checks on its RAM.
//!
//! The guest's memory map is `septa_vm_layout::map`, shared with the VMM:
//! its devices sit on the guest's own virtio-mmio transports (slot `n` at
//! `0x0a00_0000 + 0x200 * n`, as on QEMU `virt`), assigned in the order
//! written unless a device asks for a `slot`. Its RAM is the VM's maps at
//! and above `RAM_BASE`: one contiguous, readable, writable, cached span
//! from `RAM_BASE`, of at least `RAM_MIN` bytes. A map below `RAM_BASE`
//! must leave the devices the VMM emulates alone (it may put the GIC's
//! virtual CPU interface at `GICC_BASE`).

use std::path::Path;

use septa_vm_layout::map::{self as layout, RAM_BASE, RAM_MIN, VIRTIO_MMIO_COUNT};

use crate::diag::{Kind, Sink, Span};
use crate::model::{Guest, GuestDevice, Src, System, VirtioKind};

/// Linux's command line limit on arm64 (COMMAND_LINE_SIZE), NUL included.
pub const BOOTARGS_MAX: usize = 2048;

/// One device as the front end read it.
pub(crate) struct WantedDevice {
    pub name: String,
    pub name_span: Option<Span>,
    pub kind: String,
    pub kind_span: Option<Span>,
    pub slot: Option<(i64, Option<Span>)>,
    pub whole: Span,
}

/// What the front end read for one guest.
pub(crate) struct Wanted {
    pub vm: String,
    pub kernel: Option<(String, Option<Span>)>,
    pub initrd: Option<(String, Option<Span>)>,
    pub bootargs: Option<(String, Option<Span>)>,
    pub devices: Vec<WantedDevice>,
}

/// Checks what was read and gives each device a transport.
pub(crate) fn lower(sink: &mut Sink, base_dir: &Path, w: Wanted) -> Guest {
    for (what, file) in [("kernel", &w.kernel), ("initrd", &w.initrd)] {
        if let Some((path, span)) = file {
            readable(sink, base_dir, what, path, *span);
        }
    }
    if let (Some((_, span)), None) = (&w.kernel, &w.initrd) {
        sink.emit(Kind::GuestKernelWithoutInitrd(w.vm.clone()), *span);
    }
    if let Some((args, span)) = &w.bootargs {
        if args.len() >= BOOTARGS_MAX {
            sink.emit(
                Kind::GuestBootargsTooLong {
                    len: args.len(),
                    max: BOOTARGS_MAX - 1,
                },
                *span,
            );
        }
    }
    Guest {
        kernel: w.kernel.map(|(p, _)| p.into()),
        initrd: w.initrd.map(|(p, _)| p.into()),
        bootargs: w.bootargs.map(|(a, _)| a),
        devices: devices(sink, &w.vm, w.devices),
        shared: None,
    }
}

fn devices(sink: &mut Sink, vm: &str, wanted: Vec<WantedDevice>) -> Vec<GuestDevice> {
    let mut taken: Vec<Option<&str>> = vec![None; VIRTIO_MMIO_COUNT as usize];
    // Explicit slots first, so that the others go around them.
    let mut slots: Vec<Option<u32>> = Vec::with_capacity(wanted.len());
    for w in &wanted {
        let Some((slot, span)) = w.slot else {
            slots.push(None);
            continue;
        };
        if !(0..VIRTIO_MMIO_COUNT as i64).contains(&slot) {
            sink.emit(
                Kind::GuestSlotRange {
                    slot,
                    max: VIRTIO_MMIO_COUNT,
                },
                span,
            );
            slots.push(None);
            continue;
        }
        match taken[slot as usize] {
            Some(other) => sink.emit(
                Kind::GuestSlotTaken {
                    slot: slot as u32,
                    other: other.to_string(),
                },
                span,
            ),
            None => taken[slot as usize] = Some(&w.name),
        }
        slots.push(Some(slot as u32));
    }
    let mut out: Vec<GuestDevice> = Vec::new();
    for (w, slot) in wanted.iter().zip(slots) {
        let plain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if w.name.is_empty() || !w.name.chars().all(plain) {
            sink.emit(Kind::GuestDeviceName(w.name.clone()), w.name_span);
        }
        if out.iter().any(|d| d.name == w.name) {
            sink.emit(
                Kind::DuplicateGuestDevice {
                    name: w.name.clone(),
                    vm: vm.to_string(),
                },
                w.name_span,
            );
        }
        let kind = VirtioKind::parse(&w.kind);
        if kind.is_none() {
            sink.emit(Kind::VirtioKind(w.kind.clone()), w.kind_span);
        }
        let slot = match slot {
            Some(s) => s,
            None => {
                let Some(free) = taken.iter().position(Option::is_none) else {
                    sink.emit(
                        Kind::GuestTooManyDevices {
                            vm: vm.to_string(),
                            max: VIRTIO_MMIO_COUNT,
                        },
                        w.name_span,
                    );
                    continue;
                };
                taken[free] = Some(&w.name);
                free as u32
            }
        };
        let mut src = Src::new(w.whole)
            .with("name", w.name_span)
            .with("kind", w.kind_span);
        if let Some((_, span)) = w.slot {
            src = src.with("slot", span);
        }
        out.push(GuestDevice {
            name: w.name.clone(),
            kind: kind.unwrap_or(VirtioKind::Console),
            slot,
            src,
        });
    }
    out
}

fn readable(sink: &mut Sink, base: &Path, what: &'static str, path: &str, span: Option<Span>) {
    if let Some(reason) = crate::virtio::unreadable(base, path) {
        sink.emit(
            Kind::GuestFileUnreadable {
                what,
                path: path.to_string(),
                reason,
            },
            span,
        );
    }
}

/// The checks on each VM's RAM and on its maps below RAM.
pub(crate) fn validate(system: &System, sink: &mut Sink) {
    for pd in &system.pds {
        let Some(vm) = &pd.vm else { continue };
        for m in vm.maps.iter().filter(|m| m.vaddr < RAM_BASE) {
            let Some(r) = system.region(&m.region) else {
                continue;
            };
            if let Some(device) = layout::emulated_device_at(m.vaddr, r.size) {
                sink.emit(
                    Kind::GuestMapOnDevice {
                        vm: vm.name.clone(),
                        region: m.region.clone(),
                        device,
                    },
                    m.src.at("vaddr"),
                );
            }
        }
        // A map that runs past the guest's address space is reported as
        // such already; it is no RAM to check further.
        let mut ram = vm.ram(|name| system.region(name).map(|r| r.size));
        ram.retain(|&(base, size, _)| base.saturating_add(size) <= layout::GUEST_PA_LIMIT);
        let Some(&(first, _, first_map)) = ram.first() else {
            // A VM without RAM is a Microkit VM whose guest Septa does not
            // build; its VMM's build says so if it needs one.
            continue;
        };
        if first != RAM_BASE {
            sink.emit(
                Kind::GuestRamStart {
                    vm: vm.name.clone(),
                    at: first,
                },
                first_map.src.at("vaddr"),
            );
        }
        let mut end = first;
        for &(base, size, m) in &ram {
            if base > end {
                sink.emit(
                    Kind::GuestRamGap {
                        vm: vm.name.clone(),
                        from: end,
                        to: base,
                    },
                    m.src.at("vaddr"),
                );
            }
            if !(m.perms.read && m.perms.write && m.cached) {
                sink.emit(
                    Kind::GuestRamPerms {
                        vm: vm.name.clone(),
                        region: m.region.clone(),
                    },
                    m.src.at("vaddr"),
                );
            }
            end = end.max(base.saturating_add(size));
        }
        let total: u64 = ram.iter().map(|r| r.1).sum();
        if total < RAM_MIN {
            sink.emit(
                Kind::GuestRamTooSmall {
                    vm: vm.name.clone(),
                    size: total,
                    min: RAM_MIN,
                },
                first_map.src.at("vaddr"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn devices_take_free_slots_in_order_around_explicit_ones() {
        let text = r#"
[system]
board = "qemu-virt"

[pd.vmm]
program = "vmm"
maps = [{ region = "ram", vaddr = 0x4000_0000 }]

[pd.vmm.vm.linux]
vcpus = [{ id = 0 }]
maps = [{ region = "ram", vaddr = 0x4000_0000, perms = "rwx" }]
devices = [
    { name = "a", kind = "console" },
    { name = "b", kind = "net", slot = 0 },
    { name = "c", kind = "blk" },
]

[region.ram]
size = "128 MiB"
"#;
        let s = crate::parse_str("g.toml", text, crate::Format::Toml)
            .unwrap_or_else(|r| panic!("{}", r.one_line()))
            .system;
        let vm = s.pds[0].vm.as_ref().unwrap();
        let slots: Vec<(&str, u32)> = vm
            .guest
            .devices
            .iter()
            .map(|d| (d.name.as_str(), d.slot))
            .collect();
        assert_eq!(slots, [("a", 1), ("b", 0), ("c", 2)]);
        assert_eq!(vm.guest.kernel, None);
        let ram = vm.ram(|n| s.region(n).map(|r| r.size));
        assert_eq!((ram[0].0, ram[0].1), (0x4000_0000, 128 << 20));
    }
}
