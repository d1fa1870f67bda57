//! Linux cells (Septa's addition): a `[cell.NAME]` with `linux = { ... }`
//! in place of a `program`, a Linux guest declared in a few lines:
//!
//! ```toml
//! [cell.web]
//! linux = { ram = "128 MiB", bootargs = "console=ttyAMA0 quiet" }
//! band = "normal"
//! budget = "9 ms"                 # the VCPU's (and, apart, the VMM's)
//! period = "10 ms"
//! restart = { policy = "restart" }
//! services = [
//!     { kind = "console", input = true },
//!     { kind = "net", address = "10.0.2.16", forward = [{ host = 8081, guest = 8000 }] },
//!     { kind = "disk", device = "disk", partition = "guest" },
//!     { kind = "channel", pd = "watch", id = 0 },
//! ]
//! ```
//!
//! becomes what a VM description spells out by hand, and nothing more:
//!
//! | declared | becomes |
//! |---|---|
//! | the cell | PD `NAME` (program `vmm`, the cell's band, one above its VCPU, the cell's budget, period, stack (64 KiB) and restart policy), its VM `NAME` (one VCPU at the cell's priority, budget and period) |
//! | `linux.ram` | region `NAME_ram` (2 MiB pages), the guest's RAM at `RAM_BASE` (rwx) and the VMM's (rw, to load the guest); region `NAME_gic_vcpu`, the board's GICV at the guest's `GICC_BASE` |
//! | `linux.kernel`, `initrd`, `bootargs` | the VM's guest (Debian's cloud kernel and the tool's initramfs unless a path is given) |
//! | `console` (`input`) | the VMM a client of `[serial]` (created if missing), in its `input` if asked: the guest's PL011 |
//! | `net` (`address`, `forward`) | a virtio-net card `eth0` in the guest, the VMM a client of `[net]`'s virtualisers; each forward a `[[forward]]` to the guest's address |
//! | `disk` (`device`, `partition`) | a virtio-blk disk `vda`, the VMM the partition's client of the block virtualiser |
//! | `channel` (`pd`, `id`) | a channel the VMM notifies when the guest powers off (`vmm_guest_off_channel`) |
//!
//! Least authority: the VMM is a cell (no fault endpoint, no TCB cap,
//! only the rights sending needs on its channels); it keeps its VSpace
//! cap, which it needs to clean the guest's files to the point of
//! coherency. It maps only its guest's RAM and the regions of the
//! services declared.
//!
//! Errors are reported at the key that causes them, and a cell with
//! errors adds nothing.

use std::path::Path;

use septa_cells::Band;
use septa_vm_layout::map::{GICC_BASE, RAM_BASE, RAM_MIN};

use crate::cells::{known_services, names_free, placement, ServiceTable, WantedService};
use crate::diag::{Kind, Sink, Span};
use crate::expand::{channel, end, free_ids, map, pd, region};
use crate::model::*;
use crate::units::fmt_size;

/// The VMM's program.
pub const VMM_PROGRAM: &str = "vmm";
/// The VMM's stack unless the cell gives one.
pub const VMM_STACK: u64 = 64 << 10;
/// Where the VMM maps its guest's RAM.
pub const VMM_RAM_VADDR: u64 = 0x2_0000_0000;
/// The guest's RAM pages.
pub const RAM_PAGE: u64 = 2 << 20;
/// A sealed guest's shared window: its size, and where it lies (right
/// below its RAM, so that its top is a power of two: Linux's ZONE_DMA is
/// the memory below the smallest DMA limit, rounded up to a power of two).
pub const SHARED_SIZE: u64 = 16 << 20;
pub const SHARED_BASE: u64 = RAM_BASE - SHARED_SIZE;
/// Where a sealed guest's VMM maps the shared window.
pub const VMM_SHARED_VADDR: u64 = 0x3_0000_0000;
/// The command-line options a sealed guest's tool sets itself.
pub const SEALED_BOOTARGS: [&str; 3] = ["swiotlb=", "cma=", "sysctl.vm.lowmem_reserve_ratio="];
/// The board device the guest's CPU interface is.
pub const GIC_VCPU: &str = "gic-vcpu";
/// Its size in the guest (GICv2's CPU interface).
pub const GIC_VCPU_SIZE: u64 = 8 << 10;
/// The guest's devices' names.
pub const NET_DEVICE: &str = "eth0";
pub const CONSOLE_DEVICE: &str = "hvc0";
/// The command line of a guest whose console is the virtio console,
/// unless the cell gives one.
pub const VIRTIO_CONSOLE_BOOTARGS: &str = "console=hvc0";
pub const DISK_DEVICE: &str = "vda";
/// The kernel sources the tool knows by name.
const DEBIAN: [&str; 2] = ["debian", "debian:bookworm"];

/// The services of a Linux cell and their keys.
const SERVICES: [(&str, &[&str], &str); 4] = [
    (
        "console",
        &["prefix", "colour", "input", "virtio"],
        "`prefix`, `colour`, `input` and `virtio`",
    ),
    ("net", &["address", "forward"], "`address` and `forward`"),
    ("disk", &["device", "partition"], "`device` and `partition`"),
    ("channel", &["pd", "id"], "`pd` and `id`"),
];

/// `linux = { ... }` as read.
pub(crate) struct WantedLinux {
    pub ram: (u64, Option<Span>),
    pub kernel: Option<(String, Option<Span>)>,
    pub initrd: Option<(String, Option<Span>)>,
    pub bootargs: Option<(String, Option<Span>)>,
    /// `sealed = true`: the VMM keeps only the shared window mapped.
    pub sealed: Option<(bool, Option<Span>)>,
    /// The VMM's program, if not `vmm` (a test build of it).
    pub vmm: Option<(String, Option<Span>)>,
    pub span: Option<Span>,
}

/// A forward to the guest, as read.
pub(crate) struct WantedForward {
    pub host: u16,
    pub guest: u16,
    pub proto: Proto,
    pub src: Src,
}

/// What the front end read from a `[cell.NAME]` with `linux`.
pub(crate) struct Wanted {
    pub name: String,
    pub name_span: Option<Span>,
    pub linux: Box<WantedLinux>,
    pub band: Option<(String, Option<Span>)>,
    pub priority: Option<(i64, Option<Span>)>,
    pub budget_us: u64,
    pub period_us: u64,
    pub stack: Option<(u64, Option<Span>)>,
    pub restart: Restart,
    pub services: Vec<WantedService>,
    /// Keys of a program's cell that were written (`program`, `memory`,
    /// `heap`): each an error here.
    pub refused: Vec<(&'static str, Option<Span>)>,
    pub src: Src,
}

/// What the Linux cells ask of the serial subsystem.
#[derive(Default)]
pub(crate) struct Clients {
    pub serial: Vec<crate::serial::WantedClient>,
    pub input: Vec<(String, Option<Span>)>,
    /// The VMMs, each a client of `[timer]`.
    pub timer: Vec<(String, Option<Span>)>,
}

/// Checks every Linux cell and adds the sound ones to `system`: before
/// `[blk]` is expanded (a cell's disk makes it a partition's client in
/// `blk`) and before the cells that run programs (`cells`: every cell's
/// name, which no channel may name).
pub(crate) fn expand(
    system: &mut System,
    wanted: Vec<Wanted>,
    cells: &[String],
    blk: &mut [crate::blk::Wanted],
    base_dir: &Path,
    sink: &mut Sink,
) -> Clients {
    let mut clients = Clients::default();
    for c in wanted {
        expand_one(system, c, cells, blk, base_dir, &mut clients, sink);
    }
    clients
}

/// Why a program cell's key is not a Linux cell's.
fn refusal(key: &str) -> &'static str {
    match key {
        "program" => "a Linux cell runs the VMM, which the tool gives it; its guest is `linux`",
        "memory" => "a Linux cell's memory is its guest's RAM, `linux.ram` (the VMM's stack and service regions besides)",
        _ => "a Linux cell's guest has its own heap in its RAM",
    }
}

fn expand_one(
    system: &mut System,
    c: Wanted,
    cells: &[String],
    blk: &mut [crate::blk::Wanted],
    base_dir: &Path,
    clients: &mut Clients,
    sink: &mut Sink,
) {
    let errors = sink.out.len();
    let name = c.name.clone();
    for (key, span) in &c.refused {
        sink.emit(
            Kind::LinuxCellKey {
                cell: name.clone(),
                key,
                why: refusal(key),
            },
            *span,
        );
    }
    let ram_region = format!("{name}_ram");
    let gic_region = format!("{name}_gic_vcpu");
    names_free(
        system,
        sink,
        &name,
        c.name_span,
        &[&ram_region, &gic_region],
    );

    // Where it runs: the VCPU at the cell's priority, the VMM above it.
    let (band, priority) = placement(sink, &name, c.band.as_ref(), c.priority);
    if let Some(b) = band {
        let top = *b.range().end();
        if priority >= top {
            sink.emit(
                Kind::LinuxPriorityTop {
                    cell: name.clone(),
                    priority,
                    band: b.name(),
                    top: top - 1,
                },
                c.priority.and_then(|p| p.1).or(c.name_span),
            );
        }
    }
    let stack = c.stack.unwrap_or((VMM_STACK, None));
    crate::check::stack(sink, stack.0, stack.1);

    // Its RAM (and a sealed guest's shared window beside it).
    let (ram, ram_span) = c.linux.ram;
    let sealed = c.linux.sealed.as_ref().is_some_and(|s| s.0);
    let window = if sealed { SHARED_SIZE } else { 0 };
    let board_ram = system.board.ram.size;
    let why = if !ram.is_multiple_of(RAM_PAGE) {
        Some("is not whole 2 MiB pages".to_string())
    } else if ram < RAM_MIN {
        Some(format!(
            "is below the least a guest gets, {}",
            fmt_size(RAM_MIN)
        ))
    } else if ram > board_ram {
        Some(format!(
            "is more than the board `{}`'s RAM ({})",
            system.board.name,
            fmt_size(board_ram)
        ))
    } else if ram + window > board_ram {
        Some(format!(
            "and its {} shared window (`sealed`) are more than the board `{}`'s RAM ({})",
            fmt_size(window),
            system.board.name,
            fmt_size(board_ram)
        ))
    } else {
        None
    };
    if let Some(why) = why {
        sink.emit(
            Kind::LinuxRam {
                cell: name.clone(),
                ram: fmt_size(ram),
                why,
                min: fmt_size(RAM_MIN),
            },
            ram_span,
        );
    }
    // Sealed: the VMM cannot load the guest again, so it is not restarted;
    // the tool sets the command line's DMA options itself.
    if sealed {
        let sealed_span = c.linux.sealed.as_ref().and_then(|s| s.1);
        if c.restart.policy == Policy::Restart {
            sink.emit(
                Kind::LinuxSealedRestart { cell: name.clone() },
                c.src.at("restart").or(sealed_span),
            );
        }
        if let Some((args, span)) = &c.linux.bootargs {
            if let Some(opt) = args
                .split_whitespace()
                .find_map(|a| SEALED_BOOTARGS.iter().find(|o| a.starts_with(**o)))
            {
                sink.emit(
                    Kind::LinuxSealedBootargs {
                        cell: name.clone(),
                        option: opt.trim_end_matches('=').to_string(),
                    },
                    *span,
                );
            }
        }
    }
    // What it boots: Debian's unless a path is given.
    let kernel = match c.linux.kernel {
        Some((k, span)) if k.starts_with("debian") => {
            if !DEBIAN.contains(&k.as_str()) {
                sink.emit(
                    Kind::LinuxKernel {
                        cell: name.clone(),
                        kernel: k,
                    },
                    span,
                );
            }
            None
        }
        other => other,
    };
    let gic = system.board.device(GIC_VCPU).map(|d| d.range.base);
    if gic.is_none() {
        sink.emit(
            Kind::RegionUnknownDevice {
                device: GIC_VCPU.into(),
                board: system.board.name.clone(),
                known: system
                    .board
                    .devices
                    .iter()
                    .map(|d| d.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            },
            c.linux.span,
        );
    }

    // Its services.
    let mut console: Option<&WantedService> = None;
    let mut net: Option<&WantedService> = None;
    let mut disk: Option<(usize, usize)> = None;
    let mut off: Option<(usize, u64)> = None;
    let table: &ServiceTable = &SERVICES;
    for (kind, s) in known_services(sink, &name, &c.services, table, &[]) {
        match kind {
            "console" => console = Some(s),
            "net" => {
                let forwards = s.forward.as_ref().is_some_and(|f| !f.0.is_empty());
                if forwards && s.address.is_none() {
                    sink.emit(
                        Kind::LinuxForwardWithoutAddress { cell: name.clone() },
                        s.forward.as_ref().and_then(|f| f.1),
                    );
                }
                if let Some((a, span)) = &s.address {
                    if septa_net_protocol::parse_ipv4(a).is_none() {
                        sink.emit(Kind::ForwardAddress(a.clone()), *span);
                    }
                }
                net = Some(s);
            }
            "disk" => disk = disk_service(&name, blk, s, sink),
            _ => off = off_channel(system, &name, cells, s, sink),
        }
    }
    if sink.out[errors..].iter().any(|d| !d.is_warning()) {
        return;
    }

    // Sound: the guest and its devices...
    let src = c.src.clone();
    let mut devices = Vec::new();
    let device = |name: &str, kind: &str, s: &WantedService| crate::guest::WantedDevice {
        name: name.into(),
        name_span: s.kind.1,
        kind: kind.into(),
        kind_span: s.kind.1,
        slot: None,
        whole: s.whole,
    };
    let virtio_console = console.is_some_and(|s| s.virtio.as_ref().is_some_and(|v| v.0));
    if let (true, Some(s)) = (virtio_console, console) {
        devices.push(device(CONSOLE_DEVICE, "console", s));
    }
    if let Some(s) = net {
        devices.push(device(NET_DEVICE, "net", s));
    }
    if let Some((d, p)) = disk {
        let s = c
            .services
            .iter()
            .find(|s| s.kind.0 == "disk")
            .expect("a disk service");
        devices.push(device(DISK_DEVICE, "blk", s));
        blk[d].partitions[p].client = Some((name.clone(), s.kind.1));
    }
    let mut guest = crate::guest::lower(
        sink,
        base_dir,
        crate::guest::Wanted {
            vm: name.clone(),
            kernel,
            initrd: c.linux.initrd,
            bootargs: c
                .linux
                .bootargs
                .or_else(|| virtio_console.then(|| (VIRTIO_CONSOLE_BOOTARGS.to_string(), None))),
            devices,
        },
    );
    // ... its RAM and CPU interface (and a sealed guest's window)...
    system.regions.push(Region {
        page_size: RAM_PAGE,
        page_size_given: true,
        ..region(ram_region.clone(), ram, &src)
    });
    let shared_region = format!("{name}_shared");
    if sealed {
        guest.shared = Some((SHARED_BASE, SHARED_SIZE));
        system.regions.push(Region {
            page_size: RAM_PAGE,
            page_size_given: true,
            ..region(shared_region.clone(), SHARED_SIZE, &src)
        });
    }
    system.regions.push(Region {
        phys: gic,
        device: Some(GIC_VCPU.into()),
        ..region(gic_region.clone(), GIC_VCPU_SIZE, &src)
    });
    let vm_map = |region: &str, vaddr: u64, perms: Perms, cached: bool| Map {
        perms,
        cached,
        ..map(region.into(), vaddr, &src)
    };
    let vm = Vm {
        name: name.clone(),
        priority,
        budget_us: c.budget_us,
        period_us: c.period_us,
        vcpus: vec![Vcpu {
            id: 0,
            cpu: None,
            setvar_id: None,
            src: src.clone(),
        }],
        maps: vec![
            vm_map(
                &ram_region,
                RAM_BASE,
                Perms {
                    execute: true,
                    ..Perms::READ_WRITE
                },
                true,
            ),
            vm_map(&gic_region, GICC_BASE, Perms::READ_WRITE, false),
        ]
        .into_iter()
        .chain(sealed.then(|| vm_map(&shared_region, SHARED_BASE, Perms::READ_WRITE, true)))
        .collect(),
        guest,
        src: src.clone(),
    };
    // ... and the VMM that runs it.
    let p = system.pds.len();
    let program = c.linux.vmm.as_ref().map_or(VMM_PROGRAM, |v| v.0.as_str());
    let mut vmm = pd(&name, program, priority + 1, Subsystem::Cell, &src);
    vmm.budget_us = c.budget_us;
    vmm.period_us = c.period_us;
    vmm.stack_size = stack.0;
    vmm.restart = c.restart.clone();
    // A sealed guest's VMM maps only the window: the initializer loads
    // the guest into its RAM.
    if sealed {
        vmm.maps
            .push(map(shared_region.clone(), VMM_SHARED_VADDR, &src));
    } else {
        vmm.maps.push(map(ram_region.clone(), VMM_RAM_VADDR, &src));
    }
    vmm.vm = Some(vm);
    system.pds.push(vmm);

    let mut peers = Vec::new();
    if let Some((peer, peer_id)) = off {
        let id = free_ids(system, p).next().unwrap_or(0);
        system.channels.push(channel(
            end(p, id, Some("vmm_guest_off_channel"), &src),
            End {
                notify: false,
                ..end(peer, peer_id, None, &src)
            },
            &src,
        ));
        peers.push(CellPeer {
            pd: peer,
            cell_id: id,
            peer_id,
            pp: false,
            notify: true,
        });
    }
    // The VMM is a client of the timer: a vCPU with nothing to do waits in
    // its WFI until its virtual timer's deadline, which the VMM sets as a
    // timeout (the kernel stops a waiting vCPU's timer), instead of
    // trapping again at once (vmm/src/vm.rs, `wfx`).
    clients.timer.push((name.clone(), c.name_span));
    if let Some(s) = console {
        clients.serial.push(crate::serial::WantedClient {
            pd: name.clone(),
            span: s.kind.1,
            prefix: s.prefix.clone(),
            colour: s.colour.clone(),
        });
        if s.input.as_ref().is_some_and(|i| i.0) {
            clients.input.push((name.clone(), s.kind.1));
        }
    }
    let net = net.map(|s| {
        let address = s.address.as_ref().map(|a| a.0.clone());
        let ip = address.as_deref().and_then(septa_net_protocol::parse_ipv4);
        let mut at = Vec::new();
        for f in s.forward.iter().flat_map(|f| &f.0) {
            at.push(system.forwards.len());
            system.forwards.push(Forward {
                host: f.host,
                guest: f.guest,
                proto: f.proto,
                device: None,
                address: ip,
                src: f.src.clone(),
            });
        }
        (address, at)
    });
    let disk = disk.map(|(d, p)| (blk[d].device.0.clone(), blk[d].partitions[p].name.0.clone()));
    system.cells.push(Cell {
        pd: p,
        band: band.map_or("normal", Band::name).into(),
        memory: ram,
        heap: 0,
        heap_region: None,
        console: console.is_some(),
        timer: true,
        peers,
        net: None,
        kv: None,
        regions: 0,
        linux: Some(CellLinux {
            ram,
            ram_region,
            vcpu_priority: priority,
            input: clients.input.iter().any(|i| i.0 == name),
            virtio_console,
            net,
            disk,
            shared: sealed.then_some((shared_region, SHARED_BASE, SHARED_SIZE)),
        }),
        src,
    });
}

/// A `disk` service: the `[blk.DEVICE]` section and partition it names
/// (indices), which must have no client yet.
fn disk_service(
    cell: &str,
    blk: &[crate::blk::Wanted],
    s: &WantedService,
    sink: &mut Sink,
) -> Option<(usize, usize)> {
    for key in ["device", "partition"] {
        let given = if key == "device" {
            &s.device
        } else {
            &s.partition
        };
        if given.is_none() {
            sink.emit(
                Kind::CellServiceMissingKey {
                    cell: cell.into(),
                    kind: "disk",
                    key,
                },
                Some(s.whole),
            );
            return None;
        }
    }
    let (device, device_span) = s.device.as_ref()?;
    let (partition, partition_span) = s.partition.as_ref()?;
    let Some(d) = blk.iter().position(|b| &b.device.0 == device) else {
        sink.emit(
            Kind::LinuxDiskUnknown {
                cell: cell.into(),
                what: format!("no `[blk.{device}]` section"),
            },
            *device_span,
        );
        return None;
    };
    let Some(p) = blk[d]
        .partitions
        .iter()
        .position(|p| &p.name.0 == partition)
    else {
        sink.emit(
            Kind::LinuxDiskUnknown {
                cell: cell.into(),
                what: format!("`[blk.{device}]` has no partition `{partition}`"),
            },
            *partition_span,
        );
        return None;
    };
    if let Some((client, _)) = &blk[d].partitions[p].client {
        sink.emit(
            Kind::LinuxDiskTaken {
                cell: cell.into(),
                partition: partition.clone(),
                client: client.clone(),
            },
            *partition_span,
        );
        return None;
    }
    Some((d, p))
}

/// A `channel` service: the PD told when the guest powers off, and its
/// end's id.
fn off_channel(
    system: &System,
    cell: &str,
    cells: &[String],
    s: &WantedService,
    sink: &mut Sink,
) -> Option<(usize, u64)> {
    crate::cells::channel_service(system, cell, cells, s, sink).map(|(p, id, ..)| (p, id))
}

/// A Linux cell's first line in `check` and `report`: its guest, VCPU
/// and VMM (the restart policy follows).
pub(crate) fn headline(vmm: &Pd, band: &str, l: &CellLinux) -> String {
    let vm = vmm.vm.as_ref();
    let (budget, period) = vm.map_or((0, 1), |v| (v.budget_us, v.period_us.max(1)));
    let share = budget as f64 * 100.0 / period as f64;
    let boots = match vm.and_then(|v| v.guest.kernel.as_ref()) {
        Some(k) => format!(
            "kernel {}, initrd {}",
            k.display(),
            vm.and_then(|v| v.guest.initrd.as_ref())
                .map_or("?".into(), |i| i.display().to_string())
        ),
        None => "Debian's cloud kernel and the tool's busybox initramfs".into(),
    };
    format!(
        "Linux cell {}: a guest of {} RAM (region {}; {boots}), its VCPU at priority {} (band {band}), \
         budget {budget} us every {period} us ({share:.0}% of a CPU); its VMM, PD {} (program {}, \
         stack {}), at priority {} with a budget of its own as large",
        vmm.name,
        fmt_size(l.ram),
        l.ram_region,
        l.vcpu_priority,
        vmm.name,
        match &vmm.program {
            Program::Crate(c) => c.clone(),
            Program::Elf(p) => p.display().to_string(),
        },
        fmt_size(vmm.stack_size),
        vmm.priority,
    )
}

/// What a Linux cell's guest reaches beyond its console and channels
/// (which the cells' explanation lists as for any cell).
pub(crate) fn reach(system: &System, pd: usize, l: &CellLinux) -> Vec<String> {
    let mut out = Vec::new();
    if l.virtio_console {
        out.push(format!(
            "console device {CONSOLE_DEVICE} (a virtio console, which takes what is typed to the guest; \
             the PL011 beside it gets no input)"
        ));
    }
    if let Some((address, forwards)) = &l.net {
        let card = system.net.as_ref().and_then(|n| {
            let g = n.guests.iter().find(|g| g.pd == pd)?;
            let m = g.mac;
            Some(format!(
                "a client of {} and {} with MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                system.pds[n.virt_rx].name,
                system.pds[n.virt_tx].name,
                m[0],
                m[1],
                m[2],
                m[3],
                m[4],
                m[5]
            ))
        });
        let fwd: Vec<String> = forwards
            .iter()
            .filter_map(|i| system.forwards.get(*i))
            .map(|f| format!("{} host 127.0.0.1:{} -> {}", f.proto, f.host, f.guest))
            .collect();
        out.push(format!(
            "network card {NET_DEVICE} ({}{}{})",
            card.unwrap_or_else(|| "unplugged: no [net]".into()),
            address
                .as_ref()
                .map_or(String::new(), |a| format!(", asks DHCP for {a}")),
            if fwd.is_empty() {
                String::new()
            } else {
                format!("; forwards {}", fwd.join(", "))
            }
        ));
    }
    if let Some((device, partition)) = &l.disk {
        let virt = system
            .blk
            .iter()
            .find(|d| &d.device == device)
            .map_or("?", |d| d.virt.as_str());
        out.push(format!(
            "disk {DISK_DEVICE} (partition `{partition}` of [blk.{device}]: a client of {virt}, \
             which checks every request against the partition)"
        ));
    }
    match &l.shared {
        Some((region, base, size)) => out.push(format!(
            "its RAM ({}), which only its VM maps (sealed: the initializer loads the guest; its VMM \
             never maps the RAM and holds no capability to it), and the shared window {region} \
             ({} at guest-physical {base:#x}, {:.1}% of its memory), which its VM and its VMM map: \
             the guest keeps its virtio rings and buffers there",
            l.ram_region,
            fmt_size(*size),
            *size as f64 * 100.0 / (*size + l.ram) as f64
        )),
        None => out.push(format!(
            "its RAM ({}), which only its VM and its VMM map",
            l.ram_region
        )),
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::expand::mappers;

    const WEB: &str = r#"
[system]
board = "qemu-virt"

[pd.watch]
program = "watch"
priority = 50

[cell.web]
linux = { ram = "128 MiB", bootargs = "quiet" }
priority = 45
budget = "5 ms"
period = "10 ms"
restart = { policy = "restart" }
services = [
    { kind = "console", input = true },
    { kind = "net", address = "10.0.2.16", forward = [{ host = 8081, guest = 8000 }] },
    { kind = "disk", device = "disk", partition = "guest" },
    { kind = "channel", pd = "watch", id = 3 },
]

[[virtio]]
name = "net0"
kind = "net"

[[virtio]]
name = "disk"
kind = "blk"
file = "disk.img"
size = "32 MiB"

[blk.disk]
partitions = [{ name = "guest", size = "16 MiB" }]

[net]
"#;

    #[test]
    fn a_linux_cell_becomes_its_vmm_vm_ram_and_wiring() {
        let s = crate::parse_str("w.toml", WEB, crate::Format::Toml)
            .unwrap_or_else(|r| panic!("{}", r.one_line()))
            .system;
        let p = s.pd_index("web").unwrap();
        let vmm = &s.pds[p];
        assert_eq!(vmm.program, crate::Program::Crate("vmm".into()));
        assert_eq!(
            (vmm.priority, vmm.budget_us, vmm.period_us),
            (46, 5000, 10_000)
        );
        let vm = vmm.vm.as_ref().unwrap();
        assert_eq!(
            (vm.name.as_str(), vm.priority, vm.budget_us),
            ("web", 45, 5000)
        );
        let kinds: Vec<(&str, crate::VirtioKind)> = vm
            .guest
            .devices
            .iter()
            .map(|d| (d.name.as_str(), d.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                ("eth0", crate::VirtioKind::Net),
                ("vda", crate::VirtioKind::Blk)
            ]
        );
        assert_eq!(vm.guest.bootargs.as_deref(), Some("quiet"));
        assert_eq!(vm.guest.kernel, None);
        // Its RAM: the VM's and the VMM's, no one else's.
        assert_eq!(mappers(&s, "web_ram"), ["web"]);
        assert_eq!(s.region("web_ram").unwrap().size, 128 << 20);
        assert_eq!(
            s.region("web_gic_vcpu").unwrap().device.as_deref(),
            Some("gic-vcpu")
        );
        // A serial client with the keyboard, the partition's client, a
        // card of the virtualisers, the forward to its address.
        let serial = s.serial.as_ref().unwrap();
        assert!(serial.clients.iter().any(|c| c.pd == p));
        assert_eq!(serial.input, [p]);
        let part = &s.blk[0].partitions[0];
        assert_eq!(part.client.as_deref(), Some("web"));
        let net = s.net.as_ref().unwrap();
        assert_eq!(net.guests.len(), 1);
        assert_eq!(net.guests[0].pd, p);
        let f = s.forwards.iter().find(|f| f.host == 8081).unwrap();
        assert_eq!((f.guest, f.address), (8000, Some([10, 0, 2, 16])));
        // The channel it tells `watch` on.
        let off = s
            .channels
            .iter()
            .find(|c| c.a.pd == p && c.a.setvar_id.as_deref() == Some("vmm_guest_off_channel"))
            .unwrap();
        assert_eq!(s.pds[off.b.pd].name, "watch");
        assert_eq!((off.b.id, off.b.notify), (3, false));
        let cell = s.cells.iter().find(|c| c.pd == p).unwrap();
        let linux = cell.linux.as_ref().unwrap();
        assert!(linux.input);
        assert_eq!(linux.disk, Some(("disk".into(), "guest".into())));
        let text = crate::cells::explain(&s);
        assert!(text.contains("Linux cell web"), "{text}");
        assert!(
            text.contains("asks DHCP for 10.0.2.16; forwards tcp host 127.0.0.1:8081 -> 8000"),
            "{text}"
        );
        assert!(
            text.contains("disk vda (partition `guest` of [blk.disk]"),
            "{text}"
        );
    }
}
