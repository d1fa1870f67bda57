//! `[net]` (Septa's addition): the network subsystem in a few lines.
//!
//! ```toml
//! [[virtio]]
//! name = "net0"
//! kind = "net"
//!
//! [net]
//! address = "dhcp"                 # or "10.0.2.15/24", with gateway = "10.0.2.2"
//! mac = "52:54:00:12:34:56"        # the stack's (this is the default)
//! cells = [{ pd = "http", listen = ["tcp/80"], connect = [] }]
//! ```
//!
//! becomes what `septa_net_protocol::wiring` describes, with least
//! authority: a virtio-net driver PD (`net_driver`) that alone maps the
//! device's transport and takes its interrupt; a receive and a transmit
//! virtualiser (`net_virt_rx`, `net_virt_tx`); a network stack PD
//! (`net_stack`, smoltcp), the virtualisers' one client, with the MAC
//! given here; and per cell one socket region shared with the stack alone,
//! mapped into the cell where it has room, with a channel on which the
//! cell calls the stack. The stack is made a client of the timer
//! subsystem (which `[net]` adds if the description has no `[timer]`).
//! Each cell's policy (which ports it may listen on, which it may connect
//! to) goes into the stack's configuration; two cells may not claim one
//! port. With several clients of the virtualisers (the stack and Linux
//! cells' cards) the two virtualisers share a loopback (a queue pair and a
//! data region, read-only in the receive virtualiser, and a channel) over
//! which the transmit virtualiser switches frames from one client to
//! another (`septa_net_protocol::loopback`).
//!
//! Errors are reported at the key that causes them and nothing is added.

use septa_net_protocol::config::{self, Address, Cell, Clients, Name, Rule, MAX_RULES};
use septa_net_protocol::wiring::{self, MAX_CELLS};
use septa_net_protocol::{parse_ipv4, parse_mac, sockets};

use crate::check::SMALL_PAGE;
use crate::diag::{Kind, Sink, Span};
use crate::expand::{channel, end, free_ids, map, pd, region, room};
use crate::model::*;

/// The PDs the expansion adds, their programs and priorities: the driver
/// above the virtualisers, the virtualisers above the stack (sDDF's
/// order), the stack above its cells (they call it).
pub const DRIVER: &str = "net_driver";
pub const VIRT_RX: &str = "net_virt_rx";
pub const VIRT_TX: &str = "net_virt_tx";
pub const STACK: &str = "net_stack";
pub const DRIVER_PROGRAM: &str = "virtio-net";
pub const VIRT_RX_PROGRAM: &str = "net-virt-rx";
pub const VIRT_TX_PROGRAM: &str = "net-virt-tx";
pub const STACK_PROGRAM: &str = "net-stack";
pub const DRIVER_PRIORITY: u8 = 251;
pub const VIRT_PRIORITY: u8 = 250;
pub const STACK_PRIORITY: u8 = 249;
/// The driver's stack (see where it is set).
pub const DRIVER_STACK: u64 = 256 * 1024;

/// The stack's MAC unless the description gives one (QEMU's default for
/// its first card, which its user network expects nothing of).
pub const DEFAULT_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

/// What the front end read for one cell.
pub(crate) struct WantedCell {
    pub pd: String,
    pub span: Option<Span>,
    pub listen: Vec<(String, Option<Span>)>,
    pub connect: Vec<(String, Option<Span>)>,
}

/// What the front end read from `[net]`.
pub(crate) struct Wanted {
    pub device: Option<(String, Option<Span>)>,
    pub mac: Option<(String, Option<Span>)>,
    pub address: Option<(String, Option<Span>)>,
    pub gateway: Option<(String, Option<Span>)>,
    pub cells: Vec<WantedCell>,
    pub whole: Span,
}

fn region_names(cells: &[String]) -> Vec<String> {
    let mut v: Vec<String> = [
        "net_regs",
        "net_dma",
        "net_driver_rx_queues",
        "net_driver_rx_data",
        "net_driver_tx_queues",
        "net_driver_tx_data",
        "net_stack_rx_queues",
        "net_stack_rx_data",
        "net_stack_tx_queues",
        "net_stack_tx_data",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(cells.iter().map(|c| sockets_region(c)));
    v.extend(LOOPBACK_REGIONS.iter().map(|s| s.to_string()));
    v
}

/// The loopback's queue pair and data region (a system with several
/// clients of the virtualisers).
const LOOPBACK_REGIONS: [&str; 2] = ["net_loopback_queues", "net_loopback_data"];

fn sockets_region(cell: &str) -> String {
    format!("net_sockets_{cell}")
}

/// Checks `[net]` against the system and, if it is sound, adds the
/// subsystem to it. Returns the stack's PD, to be made a timer client.
pub(crate) fn expand(system: &mut System, w: Wanted, sink: &mut Sink) -> Option<usize> {
    let errors = sink.out.len();

    // The device: the one named, else the system's only net device.
    let nets: Vec<&Virtio> = system
        .virtio
        .iter()
        .filter(|v| v.kind == VirtioKind::Net)
        .collect();
    let device = match &w.device {
        Some((name, span)) => match system.virtio_device(name) {
            Some(v) if v.kind == VirtioKind::Net => Some(v.clone()),
            _ => {
                sink.emit(Kind::NetUnknownDevice(name.clone()), *span);
                None
            }
        },
        None if nets.len() == 1 => Some(nets[0].clone()),
        None if nets.is_empty() => {
            sink.emit(Kind::NetNoDevice, Some(w.whole));
            None
        }
        None => {
            sink.emit(Kind::NetAmbiguousDevice(nets.len()), Some(w.whole));
            None
        }
    };

    let mac = match &w.mac {
        Some((text, span)) => parse_mac(text)
            .filter(|m| m[0] & 1 == 0)
            .unwrap_or_else(|| {
                sink.emit(Kind::NetMac(text.clone()), *span);
                DEFAULT_MAC
            }),
        None => DEFAULT_MAC,
    };

    let address = match &w.address {
        None => Address::Dhcp,
        Some((a, _)) if a == "dhcp" => Address::Dhcp,
        Some((a, span)) => match parse_cidr(a) {
            Some((ip, prefix)) => Address::Static {
                ip,
                prefix,
                gateway: [0; 4],
            },
            None => {
                sink.emit(Kind::NetAddress(a.clone()), *span);
                Address::Dhcp
            }
        },
    };
    let address = match (&w.gateway, address) {
        (Some((g, span)), Address::Static { ip, prefix, .. }) => match parse_ipv4(g) {
            Some(gateway) => Address::Static {
                ip,
                prefix,
                gateway,
            },
            None => {
                sink.emit(Kind::NetGateway(g.clone()), *span);
                address
            }
        },
        (Some((_, span)), Address::Dhcp) => {
            sink.emit(Kind::NetGatewayWithDhcp, *span);
            address
        }
        (None, a) => a,
    };

    // Cells: PDs of the system, each once, below the stack, with rules.
    let mut cells: Vec<(usize, Cell, Option<Span>)> = Vec::new();
    for c in &w.cells {
        let Some(p) = system.pd_index(&c.pd) else {
            sink.emit(Kind::NetUnknownCell(c.pd.clone()), c.span);
            continue;
        };
        if cells.iter().any(|(q, ..)| *q == p) {
            sink.emit(Kind::NetDuplicateCell(c.pd.clone()), c.span);
            continue;
        }
        let pdr = &system.pds[p];
        if pdr.priority >= STACK_PRIORITY {
            sink.emit(
                Kind::NetCellPriority {
                    pd: c.pd.clone(),
                    priority: pdr.priority,
                    stack: STACK_PRIORITY,
                },
                c.span,
            );
        }
        let mut cell = Cell::EMPTY;
        cell.name = Name::new(&c.pd);
        for (list, out) in [
            (&c.listen, &mut cell.listen),
            (&c.connect, &mut cell.connect),
        ] {
            if list.len() > MAX_RULES {
                sink.emit(
                    Kind::NetTooManyRules {
                        count: list.len(),
                        max: MAX_RULES,
                    },
                    list[MAX_RULES].1,
                );
            }
            for (slot, (text, span)) in out.iter_mut().zip(list.iter()) {
                match Rule::parse(text) {
                    Some(r) => *slot = Some(r),
                    None => sink.emit(Kind::NetRule(text.clone()), *span),
                }
            }
        }
        cells.push((p, cell, c.span));
    }
    if cells.len() > MAX_CELLS {
        sink.emit(
            Kind::NetTooManyCells {
                count: cells.len(),
                max: MAX_CELLS,
            },
            w.cells.get(MAX_CELLS).and_then(|c| c.span),
        );
    }
    // Two cells may not claim one port.
    for (i, (_, a, _)) in cells.iter().enumerate() {
        for (_, b, _) in &cells[..i] {
            for r in a.listen.iter().flatten() {
                if b.listen.contains(&Some(*r)) {
                    let span = w.cells[i]
                        .listen
                        .iter()
                        .find(|(t, _)| Rule::parse(t) == Some(*r))
                        .and_then(|(_, s)| *s);
                    sink.emit(
                        Kind::NetPortClaimed {
                            port: format!("{}/{}", r.proto.name(), r.port),
                            cell: a.name.as_str().to_string(),
                            other: b.name.as_str().to_string(),
                        },
                        span,
                    );
                }
            }
        }
    }

    // Names the expansion adds must be free.
    for n in [DRIVER, VIRT_RX, VIRT_TX, STACK] {
        if let Some(p) = system.pd_index(n) {
            sink.emit(
                Kind::NetNameTaken {
                    name: n.into(),
                    what: "PD",
                },
                system.pds[p].src.at("name"),
            );
        }
    }
    let names: Vec<String> = cells
        .iter()
        .map(|(p, ..)| system.pds[*p].name.clone())
        .collect();
    for n in region_names(&names) {
        if let Some(r) = system.region(&n) {
            sink.emit(
                Kind::NetNameTaken {
                    name: n.clone(),
                    what: "region",
                },
                r.src.at("name"),
            );
        }
    }
    let mut ids = Vec::new();
    for (p, _, span) in &cells {
        match free_ids(system, *p).next() {
            Some(id) => ids.push(id),
            None => {
                sink.emit(Kind::NetNoFreeChannel(system.pds[*p].name.clone()), *span);
                ids.push(0);
            }
        }
    }

    let guests = guest_cards(system, mac, sink);

    let device = device?;
    if sink.out[errors..].iter().any(|d| !d.is_warning()) {
        return None;
    }
    let stack = Plan {
        device,
        mac,
        address,
        cells: cells.into_iter().map(|(p, c, _)| (p, c)).collect(),
        ids,
        guests,
        src: Src::new(w.whole),
    };
    Some(build(system, stack))
}

/// `a.b.c.d/n`.
fn parse_cidr(s: &str) -> Option<([u8; 4], u8)> {
    let (ip, prefix) = s.split_once('/')?;
    let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32)?;
    Some((parse_ipv4(ip)?, prefix))
}

struct Plan {
    device: Virtio,
    mac: [u8; 6],
    address: Address,
    /// (PD, policy) per cell.
    cells: Vec<(usize, Cell)>,
    /// Each cell's channel id.
    ids: Vec<u64>,
    /// The guests' cards: (card, the VMM's two channel ids).
    guests: Vec<(NetGuest, [u64; 2])>,
    src: Src,
}

/// The VMs' network cards: one client of the virtualisers each, with a
/// MAC of its own (the stack's, its last byte counted up past the
/// stack's). Checks each VMM can be one.
fn guest_cards(system: &System, stack_mac: [u8; 6], sink: &mut Sink) -> Vec<(NetGuest, [u64; 2])> {
    let mut out: Vec<(NetGuest, [u64; 2])> = Vec::new();
    let mut last = stack_mac[5];
    for (p, pdr) in system.pds.iter().enumerate() {
        let Some(vm) = &pdr.vm else { continue };
        let mut cards = vm
            .guest
            .devices
            .iter()
            .filter(|d| d.kind == VirtioKind::Net);
        let Some(card) = cards.next() else { continue };
        for extra in cards {
            sink.emit(
                Kind::GuestSecondNet {
                    device: extra.name.clone(),
                    vm: vm.name.clone(),
                },
                extra.src.at("name"),
            );
        }
        if pdr.priority >= VIRT_PRIORITY {
            sink.emit(
                Kind::GuestNetPriority {
                    pd: pdr.name.clone(),
                    priority: pdr.priority,
                    virt: VIRT_PRIORITY,
                },
                card.src.at("kind"),
            );
        }
        let mut free = free_ids(system, p);
        let ids = match (free.next(), free.next()) {
            (Some(a), Some(b)) => [a, b],
            _ => {
                sink.emit(
                    Kind::GuestNetNoChannel(pdr.name.clone()),
                    card.src.at("kind"),
                );
                [0, 0]
            }
        };
        last = last.wrapping_add(1);
        let mut mac = stack_mac;
        mac[5] = last;
        out.push((
            NetGuest {
                pd: p,
                vm: vm.name.clone(),
                device: card.name.clone(),
                mac,
            },
            ids,
        ));
    }
    if out.len() + 1 > wiring::MAX_CLIENTS {
        sink.emit(
            Kind::NetTooManyCells {
                count: out.len() + 1,
                max: wiring::MAX_CLIENTS,
            },
            None,
        );
    }
    out
}

/// A VM network card without `[net]` is an error (called when the
/// description has no `[net]`).
pub(crate) fn check_no_net(system: &System, sink: &mut Sink) {
    for pdr in &system.pds {
        let Some(vm) = &pdr.vm else { continue };
        for d in vm
            .guest
            .devices
            .iter()
            .filter(|d| d.kind == VirtioKind::Net)
        {
            sink.emit(
                Kind::GuestNetWithoutNet {
                    device: d.name.clone(),
                    vm: vm.name.clone(),
                },
                d.src.at("kind"),
            );
        }
    }
}

fn fixed(region: &str, vaddr: u64, src: &Src) -> Map {
    map(region.into(), vaddr, src)
}

fn build(system: &mut System, plan: Plan) -> usize {
    use wiring::{driver as dw, stack as sw, virt as vw};
    let src = &plan.src;
    let dev = system
        .device(&plan.device.name)
        .cloned()
        .expect("a virtio device has a transport");

    // Regions.
    let page_base = dev.range.base / SMALL_PAGE * SMALL_PAGE;
    let page_end = dev.range.end().div_ceil(SMALL_PAGE) * SMALL_PAGE;
    system.regions.push(Region {
        phys: Some(page_base),
        device: Some(plan.device.name.clone()),
        ..region("net_regs".into(), page_end - page_base, src)
    });
    system
        .regions
        .push(region("net_dma".into(), dw::DMA_SIZE, src));
    for side in ["driver", "stack"] {
        for dir in ["rx", "tx"] {
            system.regions.push(region(
                format!("net_{side}_{dir}_queues"),
                wiring::QUEUES_SIZE,
                src,
            ));
            system.regions.push(region(
                format!("net_{side}_{dir}_data"),
                wiring::DATA_SIZE,
                src,
            ));
        }
    }

    // The driver.
    let d = system.pds.len();
    let mut drv = pd(DRIVER, DRIVER_PROGRAM, DRIVER_PRIORITY, Subsystem::Net, src);
    // The driver keeps its device (virtio-drivers' queues) in its
    // handler, on the stack, and builds a new one there when it resets
    // the device: 80 KiB for the event loop's frame and 71 KiB more for a
    // reset when another driver in the same build turns on virtio-drivers'
    // `alloc` (virtio-blk and virtio-console do), more than the default
    // stack (measured: the frames of a system with a network card and a
    // virtio console).
    drv.stack_size = DRIVER_STACK;
    drv.maps.push(Map {
        cached: false,
        setvar_device: Some("regs_vaddr".into()),
        setvar_device_size: Some("regs_size".into()),
        ..fixed("net_regs", dw::REGS, src)
    });
    drv.maps.push(Map {
        setvar_vaddr: Some("dma_vaddr".into()),
        setvar_size: Some("dma_size".into()),
        ..fixed("net_dma", dw::DMA, src)
    });
    drv.maps
        .push(fixed("net_driver_rx_queues", dw::RX_QUEUES, src));
    drv.maps.push(fixed("net_driver_rx_data", dw::RX_DATA, src));
    drv.maps
        .push(fixed("net_driver_tx_queues", dw::TX_QUEUES, src));
    drv.maps.push(fixed("net_driver_tx_data", dw::TX_DATA, src));
    for (symbol, region) in [
        ("dma_paddr", "net_dma"),
        (dw::RX_DATA_PADDR, "net_driver_rx_data"),
        (dw::TX_DATA_PADDR, "net_driver_tx_data"),
    ] {
        drv.setvars.push(SetVar {
            symbol: symbol.into(),
            value: SetValue::Paddr(region.into()),
            src: src.clone(),
        });
    }
    drv.irqs.push(Irq {
        id: u64::from(dw::IRQ),
        kind: IrqKind::Arm {
            irq: dev.irqs.first().copied().unwrap_or(0),
            trigger: match dev.trigger {
                Some(crate::board::BoardTrigger::Edge) => Trigger::Edge,
                _ => Trigger::Level,
            },
            device: Some(plan.device.name.clone()),
        },
        setvar_id: None,
        src: src.clone(),
    });
    system.pds.push(drv);

    // The virtualisers: the stack is client 0, the guests' cards the
    // clients after it.
    let mut clients = Clients::EMPTY;
    clients.count = 1 + plan.guests.len();
    clients.names[0] = Name::new(STACK);
    clients.macs[0] = plan.mac;
    for (i, (g, _)) in plan.guests.iter().enumerate() {
        clients.names[1 + i] = Name::new(&system.pds[g.pd].name);
        clients.macs[1 + i] = g.mac;
    }
    // Several clients: the virtualisers switch frames between them.
    let loopback = !plan.guests.is_empty();
    if loopback {
        clients.loopback = wiring::LOOPBACK_BUFFERS as u16;
    }
    // Each virtualiser's view: the guests' buffers differ by direction.
    let virt_config = |buffers: u32| {
        let mut c = clients;
        for i in 0..plan.guests.len() {
            c.buffers[1 + i] = buffers as u16;
        }
        Const {
            symbol: vw::CONFIG.into(),
            bytes: c.encode().to_vec(),
            what: "net virtualiser clients".into(),
        }
    };
    let mut virts = [0; 2];
    for (k, (name, program, dir, drv_id, guest_buffers)) in [
        (
            VIRT_RX,
            VIRT_RX_PROGRAM,
            "rx",
            dw::VIRT_RX,
            wiring::GUEST_RX_BUFFERS,
        ),
        (
            VIRT_TX,
            VIRT_TX_PROGRAM,
            "tx",
            dw::VIRT_TX,
            wiring::GUEST_TX_BUFFERS,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let v = system.pds.len();
        let mut p = pd(name, program, VIRT_PRIORITY, Subsystem::Net, src);
        p.stack_size = 16 << 10;
        p.maps.push(fixed(
            &format!("net_driver_{dir}_queues"),
            vw::DRIVER_QUEUES,
            src,
        ));
        p.maps.push(fixed(
            &format!("net_driver_{dir}_data"),
            vw::DRIVER_DATA,
            src,
        ));
        p.maps.push(fixed(
            &format!("net_stack_{dir}_queues"),
            vw::client_queues(0),
            src,
        ));
        p.maps.push(fixed(
            &format!("net_stack_{dir}_data"),
            vw::client_data(0),
            src,
        ));
        for (i, (g, _)) in plan.guests.iter().enumerate() {
            let vmm = &system.pds[g.pd].name;
            p.maps.push(fixed(
                &format!("net_{vmm}_{dir}_queues"),
                vw::client_queues(1 + i),
                src,
            ));
            p.maps.push(fixed(
                &format!("net_{vmm}_{dir}_data"),
                vw::client_data(1 + i),
                src,
            ));
        }
        p.consts.push(virt_config(guest_buffers));
        system.pds.push(p);
        system.channels.push(channel(
            end(d, u64::from(drv_id), None, src),
            end(v, u64::from(vw::DRIVER), None, src),
            src,
        ));
        virts[k] = v;
    }

    // The loopback: the transmit virtualiser fills its buffers, the
    // receive virtualiser only reads them.
    if loopback {
        let [queues, data] = LOOPBACK_REGIONS;
        system
            .regions
            .push(region(queues.into(), wiring::QUEUES_SIZE, src));
        system
            .regions
            .push(region(data.into(), wiring::LOOPBACK_DATA_SIZE, src));
        let [rx, tx] = virts;
        system.pds[tx]
            .maps
            .push(fixed(queues, vw::LOOPBACK_QUEUES, src));
        system.pds[tx]
            .maps
            .push(fixed(data, vw::LOOPBACK_DATA, src));
        system.pds[rx]
            .maps
            .push(fixed(queues, vw::LOOPBACK_QUEUES, src));
        system.pds[rx].maps.push(Map {
            perms: Perms {
                read: true,
                write: false,
                execute: false,
            },
            ..fixed(data, vw::LOOPBACK_DATA, src)
        });
        system.channels.push(channel(
            end(tx, u64::from(vw::LOOPBACK), None, src),
            end(rx, u64::from(vw::LOOPBACK), None, src),
            src,
        ));
    }

    // The stack.
    let s = system.pds.len();
    let mut st = pd(STACK, STACK_PROGRAM, STACK_PRIORITY, Subsystem::Net, src);
    st.stack_size = 256 << 10;
    st.maps
        .push(fixed("net_stack_rx_queues", sw::RX_QUEUES, src));
    st.maps.push(fixed("net_stack_rx_data", sw::RX_DATA, src));
    st.maps
        .push(fixed("net_stack_tx_queues", sw::TX_QUEUES, src));
    st.maps.push(fixed("net_stack_tx_data", sw::TX_DATA, src));
    let mut cfg = config::Stack {
        mac: plan.mac,
        address: plan.address,
        cells: plan.cells.len(),
        cell: [Cell::EMPTY; MAX_CELLS],
    };
    for (i, (_, c)) in plan.cells.iter().enumerate() {
        cfg.cell[i] = *c;
    }
    st.consts.push(Const {
        symbol: sw::CONFIG.into(),
        bytes: cfg.encode().to_vec(),
        what: "net stack configuration".into(),
    });
    system.pds.push(st);
    for (k, v) in virts.iter().enumerate() {
        let stack_id = if k == 0 { sw::VIRT_RX } else { sw::VIRT_TX };
        let virt_id = vw::client_channel(0).unwrap_or(1);
        system.channels.push(channel(
            end(*v, u64::from(virt_id), None, src),
            end(s, u64::from(stack_id), None, src),
            src,
        ));
    }

    // Each guest's card: its VMM maps its four regions where it has room,
    // with a channel to each virtualiser.
    for (i, (g, ids)) in plan.guests.iter().enumerate() {
        let vmm = system.pds[g.pd].name.clone();
        let dirs = [
            ("rx", wiring::GUEST_RX_DATA_SIZE),
            ("tx", wiring::GUEST_TX_DATA_SIZE),
        ];
        for (dir, data) in dirs {
            system.regions.push(region(
                format!("net_{vmm}_{dir}_queues"),
                wiring::QUEUES_SIZE,
                src,
            ));
            system
                .regions
                .push(region(format!("net_{vmm}_{dir}_data"), data, src));
        }
        for (dir, data) in dirs {
            for (what, size) in [("queues", wiring::QUEUES_SIZE), ("data", data)] {
                let at = room(system, g.pd, size);
                system.pds[g.pd].maps.push(Map {
                    setvar_vaddr: Some(format!("vmm_net_{dir}_{what}")),
                    ..map(format!("net_{vmm}_{dir}_{what}"), at, src)
                });
            }
        }
        let virt_id = vw::client_channel(1 + i).map_or(0, u64::from);
        for (k, v) in virts.iter().enumerate() {
            let symbol = if k == 0 {
                "vmm_net_rx_channel"
            } else {
                "vmm_net_tx_channel"
            };
            system.channels.push(channel(
                end(*v, virt_id, None, src),
                end(g.pd, ids[k], Some(symbol), src),
                src,
            ));
        }
        let slot = system.pds[g.pd]
            .vm
            .as_ref()
            .and_then(|vm| vm.guest.devices.iter().find(|d| d.name == g.device))
            .map_or(0, |d| d.slot);
        let mut cfg = [0u8; 8];
        cfg[..6].copy_from_slice(&g.mac);
        cfg[6] = slot as u8;
        cfg[7] = 1;
        system.pds[g.pd].consts.push(Const {
            symbol: "septa_vm_net".into(),
            bytes: cfg.to_vec(),
            what: "the guest's network card (MAC, slot)".into(),
        });
    }

    // Each cell: its socket region, in the stack at its slot and in the
    // cell where it has room, and its channel; and the system's PD names
    // ([`finish`] writes them once every subsystem is expanded).
    let names = vec![0; config::PdNames::SIZE];
    for (i, ((p, _), id)) in plan.cells.iter().zip(&plan.ids).enumerate() {
        let name = system.pds[*p].name.clone();
        let r = sockets_region(&name);
        system
            .regions
            .push(region(r.clone(), sockets::REGION_SIZE, src));
        system.pds[s].maps.push(fixed(&r, sw::cell_region(i), src));
        let at = room(system, *p, sockets::REGION_SIZE);
        system.pds[*p].maps.push(Map {
            setvar_vaddr: Some(wiring::cell::SOCKETS.into()),
            setvar_size: Some(wiring::cell::SOCKETS_SIZE.into()),
            ..map(r, at, src)
        });
        let stack_id = sw::cell_channel(i).map_or(0, u64::from);
        system.channels.push(channel(
            End {
                pp: true,
                ..end(*p, *id, None, src)
            },
            end(s, stack_id, None, src),
            src,
        ));
        system.pds[*p].consts.push(Const {
            symbol: wiring::cell::CHANNEL.into(),
            bytes: (id + 1).to_le_bytes().to_vec(),
            what: "net channel + 1".into(),
        });
        system.pds[*p].consts.push(Const {
            symbol: wiring::cell::PDS.into(),
            bytes: names.clone(),
            what: "the system's PD names".into(),
        });
    }

    system.net = Some(Net {
        device: plan.device.name.clone(),
        driver: d,
        virt_rx: virts[0],
        virt_tx: virts[1],
        stack: s,
        mac: plan.mac,
        address: match plan.address {
            Address::Dhcp => "dhcp".into(),
            Address::Static {
                ip,
                prefix,
                gateway,
                ..
            } => format!(
                "{}.{}.{}.{}/{prefix}{}",
                ip[0],
                ip[1],
                ip[2],
                ip[3],
                if gateway == [0; 4] {
                    String::new()
                } else {
                    format!(
                        " via {}.{}.{}.{}",
                        gateway[0], gateway[1], gateway[2], gateway[3]
                    )
                }
            ),
        },
        cells: plan
            .cells
            .iter()
            .map(|(p, c)| NetCell {
                pd: *p,
                listen: rules(&c.listen),
                connect: rules(&c.connect),
            })
            .collect(),
        guests: plan.guests.into_iter().map(|(g, _)| g).collect(),
        src: plan.src,
    });
    s
}

/// Writes the names of every PD of the system, subsystems' too, into the
/// cells (after every expansion).
pub(crate) fn finish(system: &mut System) {
    let Some(net) = &system.net else { return };
    let names = config::PdNames::new(system.pds.iter().map(|p| p.name.as_str()))
        .encode()
        .to_vec();
    let cells: Vec<usize> = net.cells.iter().map(|c| c.pd).collect();
    for p in cells {
        for c in &mut system.pds[p].consts {
            if c.symbol == wiring::cell::PDS {
                c.bytes = names.clone();
            }
        }
    }
}

fn rules(r: &[Option<Rule>]) -> Vec<String> {
    r.iter()
        .flatten()
        .map(|r| format!("{}/{}", r.proto.name(), r.port))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expand::mappers;
    use crate::{parse_str, Format};

    const SYSTEM: &str = r#"
[system]
board = "qemu-virt"

[pd.http]
program = "http"
priority = 100

[pd.echo]
program = "echo"
priority = 90

[[virtio]]
name = "net0"
kind = "net"

[net]
cells = [
    { pd = "http", listen = ["tcp/80"] },
    { pd = "echo", listen = ["tcp/7", "udp/7"], connect = ["udp/53"] },
]
"#;

    fn system() -> System {
        parse_str("n.toml", SYSTEM, Format::Toml)
            .map_err(|r| r.one_line())
            .unwrap()
            .system
    }

    #[test]
    fn each_region_is_shared_by_its_two_ends_alone() {
        let s = system();
        assert_eq!(mappers(&s, "net_regs"), [DRIVER]);
        assert_eq!(mappers(&s, "net_dma"), [DRIVER]);
        assert_eq!(mappers(&s, "net_driver_rx_data"), [DRIVER, VIRT_RX]);
        assert_eq!(mappers(&s, "net_driver_tx_queues"), [DRIVER, VIRT_TX]);
        assert_eq!(mappers(&s, "net_stack_rx_data"), [VIRT_RX, STACK]);
        assert_eq!(mappers(&s, "net_stack_tx_data"), [VIRT_TX, STACK]);
        assert_eq!(mappers(&s, "net_sockets_http"), ["http", STACK]);
        assert_eq!(mappers(&s, "net_sockets_echo"), ["echo", STACK]);
        let driver = &s.pds[s.pd_index(DRIVER).unwrap()];
        // net0 is on transport 31: IRQ 48 + 31.
        assert_eq!(driver.irqs[0].number(), 79);
        assert_eq!(s.region("net_regs").unwrap().phys, Some(0x0a00_3000));
    }

    #[test]
    fn cells_call_the_stack_and_carry_their_policy() {
        let s = system();
        let net = s.net.as_ref().unwrap();
        let stack = &s.pds[net.stack];
        let cfg =
            config::Stack::decode(stack.consts[0].bytes.as_slice().try_into().unwrap()).unwrap();
        assert_eq!(cfg.cells, 2);
        assert_eq!(cfg.mac, DEFAULT_MAC);
        assert_eq!(cfg.address, Address::Dhcp);
        assert!(cfg.cell[1].may_listen(config::Proto::Udp, 7));
        assert!(cfg.cell[1].may_connect(config::Proto::Udp, 53));
        assert!(!cfg.cell[0].may_listen(config::Proto::Tcp, 7));
        // Cell i is on the stack's channel 2 + i, calling from its id 0.
        let ends: Vec<(String, u64, u64, bool)> = s
            .channels
            .iter()
            .filter(|c| c.b.pd == net.stack && c.a.pd != net.virt_rx && c.a.pd != net.virt_tx)
            .map(|c| (s.pds[c.a.pd].name.clone(), c.a.id, c.b.id, c.a.pp))
            .collect();
        assert_eq!(
            ends,
            [("http".into(), 0, 2, true), ("echo".into(), 0, 3, true)]
        );
        // The stack is a timer client, on its first free id.
        let timer = s.timer.as_ref().unwrap();
        assert_eq!(timer.clients, [net.stack]);
        let http = &s.pds[s.pd_index("http").unwrap()];
        let m = http
            .maps
            .iter()
            .find(|m| m.region == "net_sockets_http")
            .unwrap();
        assert_eq!(m.vaddr, crate::expand::CLIENT_VADDR);
        assert_eq!(http.consts[0].bytes, 1u64.to_le_bytes());
    }

    fn virt_clients(s: &System, pd: usize) -> Clients {
        let c = s.pds[pd]
            .consts
            .iter()
            .find(|c| c.symbol == wiring::virt::CONFIG)
            .unwrap();
        Clients::decode(c.bytes.as_slice().try_into().unwrap()).unwrap()
    }

    #[test]
    fn several_clients_get_a_loopback_between_the_virtualisers() {
        // One client (the stack): no loopback.
        let s = system();
        let net = s.net.as_ref().unwrap();
        for r in LOOPBACK_REGIONS {
            assert!(s.region(r).is_none(), "{r}");
        }
        assert_eq!(virt_clients(&s, net.virt_rx).loopback, 0);
        assert_eq!(virt_clients(&s, net.virt_tx).loopback, 0);
        // A Linux cell's card makes two.
        let text = SYSTEM.replace(
            "[[virtio]]",
            "[cell.vm]\nlinux = { ram = \"64 MiB\" }\npriority = 40\nservices = [{ kind = \"net\" }]\n\n[[virtio]]",
        );
        let s = parse_str("n.toml", &text, Format::Toml)
            .map_err(|r| r.one_line())
            .unwrap()
            .system;
        let net = s.net.as_ref().unwrap();
        for v in [net.virt_rx, net.virt_tx] {
            let c = virt_clients(&s, v);
            assert_eq!((c.count, c.loopback), (2, wiring::LOOPBACK_BUFFERS as u16));
        }
        // The two virtualisers alone map it; the receive one may not write
        // the frames.
        assert_eq!(mappers(&s, "net_loopback_queues"), [VIRT_RX, VIRT_TX]);
        assert_eq!(mappers(&s, "net_loopback_data"), [VIRT_RX, VIRT_TX]);
        assert_eq!(
            s.region("net_loopback_data").unwrap().size,
            wiring::LOOPBACK_DATA_SIZE
        );
        let perms = |pd: usize, r: &str| {
            let m = s.pds[pd].maps.iter().find(|m| m.region == r).unwrap();
            (m.vaddr, m.perms.read, m.perms.write)
        };
        let (q, d) = (wiring::virt::LOOPBACK_QUEUES, wiring::virt::LOOPBACK_DATA);
        assert_eq!(perms(net.virt_tx, "net_loopback_data"), (d, true, true));
        assert_eq!(perms(net.virt_rx, "net_loopback_data"), (d, true, false));
        assert_eq!(perms(net.virt_tx, "net_loopback_queues"), (q, true, true));
        assert_eq!(perms(net.virt_rx, "net_loopback_queues"), (q, true, true));
        // Their channel, on the loopback's id at both ends.
        let ch: Vec<(usize, u64, usize, u64)> = s
            .channels
            .iter()
            .filter(|c| {
                [c.a.pd, c.b.pd] == [net.virt_tx, net.virt_rx]
                    || [c.a.pd, c.b.pd] == [net.virt_rx, net.virt_tx]
            })
            .map(|c| (c.a.pd, c.a.id, c.b.pd, c.b.id))
            .collect();
        let id = u64::from(wiring::virt::LOOPBACK);
        assert_eq!(ch, [(net.virt_tx, id, net.virt_rx, id)]);
    }

    #[test]
    fn a_static_address_and_mac_are_kept() {
        let text = SYSTEM.replace(
            "[net]\n",
            "[net]\naddress = \"10.0.2.20/24\"\ngateway = \"10.0.2.2\"\nmac = \"52:54:00:00:00:07\"\n",
        );
        let s = parse_str("n.toml", &text, Format::Toml).unwrap().system;
        let net = s.net.as_ref().unwrap();
        assert_eq!(net.address, "10.0.2.20/24 via 10.0.2.2");
        let virt = &s.pds[net.virt_rx];
        let c = Clients::decode(virt.consts[0].bytes.as_slice().try_into().unwrap()).unwrap();
        assert_eq!(c.macs[0], [0x52, 0x54, 0, 0, 0, 7]);
        assert_eq!(c.names[0].as_str(), STACK);
    }
}
