//! Block subsystems (`[blk.DEVICE]`, Septa's addition): a virtio block
//! device shared by partition between client PDs, declared in a few lines
//! and expanded here into what a person could write by hand: the driver
//! PD, the virtualiser PD, their regions, maps, channels, the IRQ and the
//! setvars, each with no more authority than its job needs.
//!
//! ```text
//!  client ──queues, data, info──┐
//!  client ──queues, data, info──┤ DEV_virt ──queues, info── DEV_driver ── device
//!                               └─ (data regions: client and device only)
//! ```
//!
//! | PD | maps | channels |
//! |---|---|---|
//! | `DEV_driver` (`virtio-blk`) | the transport (uncached), its DMA region, the driver queues, the storage info (rw), every data region (the device moves data in place) | the IRQ; the virtualiser |
//! | `DEV_virt` (`blk-virt`) | the driver queues, the storage info (r), its own data region (to read the partition table), each client's queues and info (rw) | the driver; each client |
//! | each client | its queues, its data region, its info (r) | the virtualiser |
//!
//! The virtualiser never maps a client's data: it checks each request's
//! buffer against the client's data region by size and hands the device
//! the physical address. Every name the expansion makes starts with the
//! device's name; the setvars are documented with the PDs that read them
//! (`drivers/virtio-blk`, `drivers/blk-virt`, `lib/block-protocol`).
//!
//! The partitions are laid out here too, so that `report`, `graph` and the
//! tool that writes the disk image agree: the first starts at 1 MiB and
//! each is MiB-aligned, in the order written (GPT entry or MBR slot 1, 2,
//! ...).

use serde::Serialize;

use crate::board::Board;
use crate::diag::{Kind, Sink, Span};
use crate::model::*;

/// Program crates of the generated PDs.
pub const DRIVER_PROGRAM: &str = "virtio-blk";
pub const VIRT_PROGRAM: &str = "blk-virt";
/// Default priorities: the driver above the virtualiser above clients.
pub const DRIVER_PRIORITY: u8 = 250;
pub const VIRT_PRIORITY: u8 = 240;
/// Stacks: the driver holds its virtqueue's shadow descriptors (4 KiB)
/// and moves them as it starts.
pub const DRIVER_STACK: u64 = 64 << 10;
pub const VIRT_STACK: u64 = 32 << 10;
/// Default queue capacity and data region of a client.
pub const DEFAULT_QUEUE: u64 = 32;
pub const DEFAULT_DATA: u64 = 256 << 10;
/// Clients of one virtualiser (its arrays' length) and data windows of one
/// driver (one for each client and the virtualiser's own).
pub const MAX_CLIENTS: usize = 15;
/// The driver's DMA region (virtqueue and request headers) and the
/// virtualiser's own data region (the first and last 64 KiB of the disk,
/// for the partition table).
pub const DRIVER_DMA: u64 = 64 << 10;
pub const VIRT_DATA: u64 = 128 << 10;
/// Capacity of the queues between driver and virtualiser: the driver has
/// 42 requests in flight at most (`drivers/virtio-blk`).
pub const DRIVER_QUEUE: u64 = 64;
/// Partitions start at 1 MiB and on MiB boundaries.
pub const ALIGN: u64 = 1 << 20;
/// Sectors a GPT keeps at the disk's end (its array and backup header).
pub const GPT_TAIL_SECTORS: u64 = 33;
/// The lowest address the tool maps a client's regions at, unless told.
pub const CLIENT_BASE: u64 = 0x6000_0000;
const LARGE: u64 = 2 << 20;
const PAGE: u64 = 4 << 10;
const SECTOR: u64 = 512;

/// Which partition table a disk has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PartitionTable {
    Gpt,
    Mbr,
}

impl std::fmt::Display for PartitionTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PartitionTable::Gpt => "GPT",
            PartitionTable::Mbr => "MBR",
        })
    }
}

/// A block subsystem, as declared and laid out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlkDisk {
    /// The `[[virtio]]` block device.
    pub device: String,
    pub table: PartitionTable,
    pub partitions: Vec<BlkPartition>,
    /// The PDs generated for it.
    pub driver: String,
    pub virt: String,
    #[serde(skip)]
    pub src: Src,
}

/// A partition, as declared and laid out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlkPartition {
    pub name: String,
    /// Its entry in the table, from 1.
    pub index: u32,
    pub first_sector: u64,
    pub sectors: u64,
    /// The PD it is given to, and that client's queue capacity and data
    /// region size.
    pub client: Option<String>,
    pub queue: u64,
    pub data: u64,
    /// Where the client's regions start, if the description says.
    pub vaddr: Option<u64>,
    #[serde(skip)]
    pub src: Src,
}

/// What the front end read for one partition.
pub(crate) struct WantedPartition {
    pub name: (String, Option<Span>),
    pub size: (u64, Option<Span>),
    pub client: Option<(String, Option<Span>)>,
    pub queue: Option<(i64, Option<Span>)>,
    pub data: Option<(u64, Option<Span>)>,
    pub vaddr: Option<(u64, Option<Span>)>,
    pub whole: Span,
}

/// What the front end read for one `[blk.DEVICE]` section.
pub(crate) struct Wanted {
    pub device: (String, Option<Span>),
    pub table: Option<(String, Option<Span>)>,
    pub partitions: Vec<WantedPartition>,
    pub driver_priority: Option<(i64, Option<Span>)>,
    pub virt_priority: Option<(i64, Option<Span>)>,
    pub whole: Span,
}

/// The pieces of the system the expansion adds to.
pub(crate) struct Parts<'a> {
    pub board: &'a Board,
    pub virtio: &'a [Virtio],
    pub pds: &'a mut Vec<Pd>,
    pub regions: &'a mut Vec<Region>,
    pub channels: &'a mut Vec<Channel>,
}

/// Checks each section and expands it; returns the subsystems.
pub(crate) fn expand(sink: &mut Sink, wanted: Vec<Wanted>, parts: &mut Parts<'_>) -> Vec<BlkDisk> {
    let mut out = Vec::new();
    let mut clients_seen: Vec<String> = Vec::new();
    for w in wanted {
        if let Some(d) = one(sink, w, parts, &mut clients_seen) {
            out.push(d);
        }
    }
    out
}

fn one(
    sink: &mut Sink,
    w: Wanted,
    parts: &mut Parts<'_>,
    seen: &mut Vec<String>,
) -> Option<BlkDisk> {
    let src = Src::new(w.whole).with("device", w.device.1);
    let (dev, dev_span) = (&w.device.0, w.device.1);
    let Some(v) = parts.virtio.iter().find(|v| &v.name == dev) else {
        sink.emit(Kind::BlkUnknownDevice(dev.clone()), dev_span);
        return None;
    };
    if v.kind != VirtioKind::Blk {
        sink.emit(
            Kind::BlkNotBlk {
                device: dev.clone(),
                kind: v.kind.to_string(),
            },
            dev_span,
        );
        return None;
    }
    let Some(disk_size) = v.size else {
        sink.emit(Kind::BlkImageSize(dev.clone()), dev_span);
        return None;
    };
    let table = match w.table.as_ref().map(|(t, s)| (t.as_str(), *s)) {
        None | Some(("gpt", _)) => PartitionTable::Gpt,
        Some(("mbr", _)) => PartitionTable::Mbr,
        Some((other, span)) => {
            sink.emit(Kind::BlkTable(other.to_string()), span);
            PartitionTable::Gpt
        }
    };
    let partitions = layout(sink, &w, table, disk_size, parts.pds, seen)?;
    let clients: Vec<&BlkPartition> = partitions.iter().filter(|p| p.client.is_some()).collect();
    if clients.len() > MAX_CLIENTS {
        sink.emit(
            Kind::BlkTooManyClients {
                device: dev.clone(),
                count: clients.len(),
                max: MAX_CLIENTS,
            },
            dev_span,
        );
        return None;
    }
    let priority = |p: &Option<(i64, Option<Span>)>, default: u8, sink: &mut Sink| match p {
        Some((v, span)) => crate::check::priority(sink, *v, *span),
        None => default,
    };
    let driver_priority = priority(&w.driver_priority, DRIVER_PRIORITY, sink);
    let virt_priority = priority(&w.virt_priority, VIRT_PRIORITY, sink);
    let g = Gen {
        dev: dev.clone(),
        src: src.clone(),
    };
    g.build(parts, v, &partitions, driver_priority, virt_priority, sink);
    Some(BlkDisk {
        device: dev.clone(),
        table,
        driver: g.driver(),
        virt: g.virt(),
        partitions,
        src,
    })
}

/// Checks the partitions and places them on the disk.
fn layout(
    sink: &mut Sink,
    w: &Wanted,
    table: PartitionTable,
    disk_size: u64,
    pds: &[Pd],
    seen: &mut Vec<String>,
) -> Option<Vec<BlkPartition>> {
    let mut ok = true;
    if table == PartitionTable::Mbr && w.partitions.len() > 4 {
        sink.emit(Kind::BlkMbrPartitions(w.partitions.len()), w.device.1);
        ok = false;
    }
    let mut out: Vec<BlkPartition> = Vec::new();
    let mut next = ALIGN;
    for (i, p) in w.partitions.iter().enumerate() {
        let (name, name_span) = (&p.name.0, p.name.1);
        let plain = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        if name.is_empty() || name.len() > 36 || !name.chars().all(plain) {
            sink.emit(Kind::BlkPartitionName(name.clone()), name_span);
            ok = false;
        }
        if out.iter().any(|q| &q.name == name) {
            sink.emit(Kind::BlkDuplicatePartition(name.clone()), name_span);
            ok = false;
        }
        let (size, size_span) = p.size;
        if size == 0 || !size.is_multiple_of(PAGE) {
            sink.emit(Kind::BlkPartitionSize(size), size_span);
            ok = false;
        }
        let client = match &p.client {
            Some((c, span)) => {
                if !pds.iter().any(|pd| &pd.name == c) {
                    sink.emit(Kind::UnknownPd(c.clone()), *span);
                    ok = false;
                } else if seen.contains(c) {
                    sink.emit(Kind::BlkClientTwice(c.clone()), *span);
                    ok = false;
                }
                seen.push(c.clone());
                Some(c.clone())
            }
            None => None,
        };
        let queue = match p.queue {
            Some((q, span)) => {
                if !(1..=1 << 16).contains(&q) || !(q as u64).is_power_of_two() {
                    sink.emit(Kind::BlkQueue(q), span);
                    ok = false;
                }
                q.max(1) as u64
            }
            None => DEFAULT_QUEUE,
        };
        let data = match p.data {
            Some((d, span)) => {
                if d == 0 || !d.is_multiple_of(PAGE) {
                    sink.emit(Kind::BlkDataSize(d), span);
                    ok = false;
                }
                d
            }
            None => DEFAULT_DATA,
        };
        let first = next;
        next = (first + size).next_multiple_of(ALIGN);
        out.push(BlkPartition {
            name: name.clone(),
            index: i as u32 + 1,
            first_sector: first / SECTOR,
            sectors: size / SECTOR,
            client,
            queue,
            data,
            vaddr: p.vaddr.map(|v| v.0),
            src: Src::new(p.whole)
                .with("name", name_span)
                .with("size", size_span)
                .with("client", p.client.as_ref().and_then(|c| c.1))
                .with("vaddr", p.vaddr.and_then(|v| v.1)),
        });
    }
    let end = out
        .last()
        .map_or(ALIGN, |p| (p.first_sector + p.sectors) * SECTOR);
    let room = match table {
        PartitionTable::Gpt => disk_size - GPT_TAIL_SECTORS * SECTOR,
        PartitionTable::Mbr => disk_size,
    };
    if ok && end > room {
        sink.emit(
            Kind::BlkTooSmall {
                device: w.device.0.clone(),
                need: end
                    + if table == PartitionTable::Gpt {
                        GPT_TAIL_SECTORS * SECTOR
                    } else {
                        0
                    },
                have: disk_size,
            },
            w.device.1,
        );
        ok = false;
    }
    ok.then_some(out)
}

/// Names and wiring of one subsystem's generated items.
struct Gen {
    dev: String,
    src: Src,
}

/// The setvars of the driver, the virtualiser and the clients (see the
/// PDs' documentation for what each reads).
mod sym {
    pub const REGS: &str = "regs_vaddr";
    pub const REGS_SIZE: &str = "regs_size";
    pub const DMA: &str = "dma_vaddr";
    pub const DMA_SIZE: &str = "dma_size";
    pub const DMA_PADDR: &str = "dma_paddr";
    pub const DRIVER_QUEUES: &str = "blk_driver_queues";
    pub const DRIVER_QUEUES_SIZE: &str = "blk_driver_queues_size";
    pub const DRIVER_CAPACITY: &str = "blk_driver_capacity";
    pub const DRIVER_INFO: &str = "blk_driver_info";
    pub const DRIVER_CHANNEL: &str = "blk_driver_channel";
    pub const DRIVER_IRQ: &str = "blk_driver_irq";
    pub const WINDOW: &str = "blk_window";
    pub const WINDOW_SIZE: &str = "blk_window_size";
    pub const WINDOW_PADDR: &str = "blk_window_paddr";
    pub const VIRT_DATA: &str = "blk_virt_data";
    pub const VIRT_DATA_SIZE: &str = "blk_virt_data_size";
    pub const VIRT_DATA_IO: &str = "blk_virt_data_io";
    pub const CLIENT_QUEUES: &str = "blk_client_queues";
    pub const CLIENT_QUEUES_SIZE: &str = "blk_client_queues_size";
    pub const CLIENT_CAPACITY: &str = "blk_client_capacity";
    pub const CLIENT_INFO: &str = "blk_client_info";
    pub const CLIENT_DATA_IO: &str = "blk_client_data_io";
    pub const CLIENT_DATA_SIZE: &str = "blk_client_data_size";
    pub const CLIENT_PARTITION: &str = "blk_client_partition";
    pub const CLIENT_PARTITION_NAME: &str = "blk_client_partition_name";
    pub const CLIENT_NAME: &str = "blk_client_name";
    pub const CLIENT_CHANNEL: &str = "blk_client_channel";
    // A client's own (septa-block-protocol's).
    pub const QUEUES: &str = "blk_queues";
    pub const QUEUES_SIZE: &str = "blk_queues_size";
    pub const CAPACITY: &str = "blk_capacity";
    pub const DATA: &str = "blk_data";
    pub const DATA_SIZE: &str = "blk_data_size";
    pub const INFO: &str = "blk_info";
    pub const CHANNEL: &str = "blk_channel";
}

/// Fixed addresses inside the generated PDs, which have nothing else.
mod at {
    pub const DRIVER_REGS: u64 = 0x2000_0000;
    pub const DRIVER_DMA: u64 = 0x2100_0000;
    pub const DRIVER_INFO: u64 = 0x2200_0000;
    pub const DRIVER_QUEUES: u64 = 0x2300_0000;
    pub const DRIVER_WINDOWS: u64 = 0x4000_0000;
    pub const VIRT_DRIVER_QUEUES: u64 = 0x2000_0000;
    pub const VIRT_DRIVER_INFO: u64 = 0x2100_0000;
    pub const VIRT_DATA: u64 = 0x2200_0000;
    pub const VIRT_CLIENT_QUEUES: u64 = 0x3000_0000;
    pub const VIRT_CLIENT_INFO: u64 = 0x3800_0000;
    /// Between one client's regions and the next's in the virtualiser.
    pub const VIRT_STRIDE: u64 = 0x10_0000;
}

fn indexed(sym: &str, i: usize) -> String {
    format!("{sym}[{i}]")
}

impl Gen {
    fn driver(&self) -> String {
        format!("{}_driver", self.dev)
    }
    fn virt(&self) -> String {
        format!("{}_virt", self.dev)
    }
    fn name(&self, what: &str) -> String {
        format!("{}_{what}", self.dev)
    }

    fn region(&self, name: String, size: u64, device: Option<(&str, u64)>) -> Region {
        Region {
            name,
            size: size.next_multiple_of(PAGE),
            page_size: PAGE,
            page_size_given: false,
            phys: device.map(|(_, p)| p),
            device: device.map(|(d, _)| d.to_string()),
            prefill: None,
            src: self.src.clone(),
        }
    }

    fn map(&self, region: &str, vaddr: u64, write: bool) -> Map {
        Map {
            region: region.to_string(),
            vaddr,
            perms: Perms {
                read: true,
                write,
                execute: false,
            },
            cached: true,
            setvar_vaddr: None,
            setvar_size: None,
            setvar_prefill_size: None,
            setvar_device: None,
            setvar_device_size: None,
            src: self.src.clone(),
        }
    }

    fn setvar(&self, symbol: String, value: SetValue) -> SetVar {
        SetVar {
            symbol,
            value,
            src: self.src.clone(),
        }
    }

    fn pd(&self, name: String, program: &str, priority: u8, stack_size: u64) -> Pd {
        Pd {
            name,
            parent: None,
            child_id: None,
            setvar_id: None,
            program: Program::Crate(program.to_string()),
            symbols: None,
            priority,
            budget_us: septa_abi::microkit::DEFAULT_BUDGET_US,
            period_us: septa_abi::microkit::DEFAULT_BUDGET_US,
            passive: false,
            stack_size,
            cpu: 0,
            smc: false,
            fpu: true,
            domain: None,
            restart: Restart::default(),
            maps: Vec::new(),
            irqs: Vec::new(),
            setvars: Vec::new(),
            ioports: Vec::new(),
            caps: Vec::new(),
            vm: None,
            consts: Vec::new(),
            subsystem: Some(crate::model::Subsystem::Blk),
            src: self.src.clone(),
        }
    }

    fn end(&self, pd: usize, id: u64, setvar_id: String) -> End {
        End {
            pd,
            id,
            pp: false,
            notify: true,
            setvar_id: Some(setvar_id),
            src: self.src.clone(),
        }
    }

    fn build(
        &self,
        parts: &mut Parts<'_>,
        v: &Virtio,
        partitions: &[BlkPartition],
        driver_priority: u8,
        virt_priority: u8,
        sink: &mut Sink,
    ) {
        let transport = crate::virtio::resolve(parts.board, parts.virtio, &v.name);
        let (regs_base, regs_size, irq, trigger) = match transport {
            Some(d) => (
                d.range.base / PAGE * PAGE,
                d.range.end().div_ceil(PAGE) * PAGE - d.range.base / PAGE * PAGE,
                d.irqs.first().copied().unwrap_or(0),
                match d.trigger {
                    Some(crate::board::BoardTrigger::Edge) => Trigger::Edge,
                    _ => Trigger::Level,
                },
            ),
            None => (0, PAGE, 0, Trigger::Level),
        };
        let regs = self.name("regs");
        let dma = self.name("dma");
        let info = self.name("info");
        let dq = self.name("driver_queues");
        let vdata = self.name("virt_data");
        let queue_bytes = |cap: u64| {
            // septa-block-protocol's layout: requests, then responses at a
            // 64-byte boundary.
            (16 + 32 * cap).next_multiple_of(64) + 8 + 12 * cap
        };
        let mut regions = vec![
            self.region(regs.clone(), regs_size, Some((&v.name, regs_base))),
            self.region(dma.clone(), DRIVER_DMA, None),
            self.region(info.clone(), PAGE, None),
            self.region(dq.clone(), queue_bytes(DRIVER_QUEUE), None),
            self.region(vdata.clone(), VIRT_DATA, None),
        ];

        // The driver.
        let mut driver = self.pd(self.driver(), DRIVER_PROGRAM, driver_priority, DRIVER_STACK);
        let mut m = self.map(&regs, at::DRIVER_REGS, true);
        m.cached = false;
        m.setvar_device = Some(sym::REGS.into());
        m.setvar_device_size = Some(sym::REGS_SIZE.into());
        driver.maps.push(m);
        let mut m = self.map(&dma, at::DRIVER_DMA, true);
        m.setvar_vaddr = Some(sym::DMA.into());
        m.setvar_size = Some(sym::DMA_SIZE.into());
        driver.maps.push(m);
        let mut m = self.map(&info, at::DRIVER_INFO, true);
        m.setvar_vaddr = Some(sym::DRIVER_INFO.into());
        driver.maps.push(m);
        let mut m = self.map(&dq, at::DRIVER_QUEUES, true);
        m.setvar_vaddr = Some(sym::DRIVER_QUEUES.into());
        m.setvar_size = Some(sym::DRIVER_QUEUES_SIZE.into());
        driver.maps.push(m);
        driver
            .setvars
            .push(self.setvar(sym::DMA_PADDR.into(), SetValue::Paddr(dma.clone())));
        driver
            .setvars
            .push(self.setvar(sym::DRIVER_CAPACITY.into(), SetValue::Number(DRIVER_QUEUE)));
        driver.irqs.push(Irq {
            id: 0,
            kind: IrqKind::Arm {
                irq,
                trigger,
                device: Some(v.name.clone()),
            },
            setvar_id: Some(sym::DRIVER_IRQ.into()),
            src: self.src.clone(),
        });

        // The virtualiser.
        let mut virt = self.pd(self.virt(), VIRT_PROGRAM, virt_priority, VIRT_STACK);
        let mut m = self.map(&dq, at::VIRT_DRIVER_QUEUES, true);
        m.setvar_vaddr = Some(sym::DRIVER_QUEUES.into());
        m.setvar_size = Some(sym::DRIVER_QUEUES_SIZE.into());
        virt.maps.push(m);
        let mut m = self.map(&info, at::VIRT_DRIVER_INFO, false);
        m.setvar_vaddr = Some(sym::DRIVER_INFO.into());
        virt.maps.push(m);
        let mut m = self.map(&vdata, at::VIRT_DATA, true);
        m.setvar_vaddr = Some(sym::VIRT_DATA.into());
        m.setvar_size = Some(sym::VIRT_DATA_SIZE.into());
        virt.maps.push(m);
        virt.setvars
            .push(self.setvar(sym::DRIVER_CAPACITY.into(), SetValue::Number(DRIVER_QUEUE)));
        virt.setvars
            .push(self.setvar(sym::VIRT_DATA_IO.into(), SetValue::Paddr(vdata.clone())));

        // The driver's data windows: the virtualiser's, then each client's.
        let mut windows: Vec<(String, u64)> = vec![(vdata.clone(), VIRT_DATA)];
        let mut client_wiring = Vec::new();
        for (i, p) in partitions.iter().filter(|p| p.client.is_some()).enumerate() {
            let client = p.client.as_deref().expect("filtered");
            let q = self.name(&format!("{}_queues", p.name));
            let d = self.name(&format!("{}_data", p.name));
            let inf = self.name(&format!("{}_info", p.name));
            regions.push(self.region(q.clone(), queue_bytes(p.queue), None));
            regions.push(self.region(d.clone(), p.data, None));
            regions.push(self.region(inf.clone(), PAGE, None));
            windows.push((d.clone(), p.data));
            let base = at::VIRT_STRIDE * i as u64;
            let mut m = self.map(&q, at::VIRT_CLIENT_QUEUES + base, true);
            m.setvar_vaddr = Some(indexed(sym::CLIENT_QUEUES, i));
            m.setvar_size = Some(indexed(sym::CLIENT_QUEUES_SIZE, i));
            virt.maps.push(m);
            let mut m = self.map(&inf, at::VIRT_CLIENT_INFO + base, true);
            m.setvar_vaddr = Some(indexed(sym::CLIENT_INFO, i));
            virt.maps.push(m);
            for (s, value) in [
                (sym::CLIENT_CAPACITY, SetValue::Number(p.queue)),
                (sym::CLIENT_DATA_IO, SetValue::Paddr(d.clone())),
                (sym::CLIENT_DATA_SIZE, SetValue::Size(d.clone())),
                (sym::CLIENT_PARTITION, SetValue::Number(u64::from(p.index))),
                (sym::CLIENT_PARTITION_NAME, SetValue::Text(p.name.clone())),
                (sym::CLIENT_NAME, SetValue::Text(client.to_string())),
            ] {
                virt.setvars.push(self.setvar(indexed(s, i), value));
            }
            client_wiring.push((i, client.to_string(), q, d, inf, p));
        }
        let mut next = at::DRIVER_WINDOWS;
        for (k, (region, size)) in windows.iter().enumerate() {
            let mut m = self.map(region, next, true);
            m.setvar_vaddr = Some(indexed(sym::WINDOW, k));
            m.setvar_size = Some(indexed(sym::WINDOW_SIZE, k));
            driver.maps.push(m);
            driver.setvars.push(self.setvar(
                indexed(sym::WINDOW_PADDR, k),
                SetValue::Paddr(region.clone()),
            ));
            next += size.next_multiple_of(LARGE);
        }

        let driver_index = parts.pds.len();
        parts.pds.push(driver);
        parts.pds.push(virt);
        let virt_index = driver_index + 1;
        parts.channels.push(Channel {
            a: self.end(driver_index, 1, sym::DRIVER_CHANNEL.into()),
            b: self.end(virt_index, 0, sym::DRIVER_CHANNEL.into()),
            src: self.src.clone(),
        });

        // Each client: its maps, its setvars, its channel.
        for (i, client, q, d, inf, p) in client_wiring {
            let Some(ci) = parts.pds.iter().position(|pd| pd.name == client) else {
                continue;
            };
            let span = (16 + 32 * p.queue).next_multiple_of(64) + 8 + 12 * p.queue;
            let need = p.data.next_multiple_of(LARGE) + span.next_multiple_of(PAGE) + PAGE;
            let base = p
                .vaddr
                .unwrap_or_else(|| free_range(&parts.pds[ci], parts.regions, &regions, need));
            let data_at = base;
            let queues_at = base + p.data.next_multiple_of(LARGE);
            let info_at = queues_at + span.next_multiple_of(PAGE);
            let pd = &mut parts.pds[ci];
            let mut m = self.map(&d, data_at, true);
            m.setvar_vaddr = Some(sym::DATA.into());
            m.setvar_size = Some(sym::DATA_SIZE.into());
            m.src = p.src.clone();
            pd.maps.push(m);
            let mut m = self.map(&q, queues_at, true);
            m.setvar_vaddr = Some(sym::QUEUES.into());
            m.setvar_size = Some(sym::QUEUES_SIZE.into());
            m.src = p.src.clone();
            pd.maps.push(m);
            let mut m = self.map(&inf, info_at, false);
            m.setvar_vaddr = Some(sym::INFO.into());
            m.src = p.src.clone();
            pd.maps.push(m);
            pd.setvars.push(SetVar {
                symbol: sym::CAPACITY.into(),
                value: SetValue::Number(p.queue),
                src: p.src.clone(),
            });
            let Some(id) = free_channel(ci, pd, parts.channels) else {
                sink.emit(Kind::BlkNoChannel(client.clone()), p.src.at("client"));
                continue;
            };
            parts.channels.push(Channel {
                a: self.end(virt_index, i as u64 + 1, indexed(sym::CLIENT_CHANNEL, i)),
                b: End {
                    src: p.src.clone(),
                    ..self.end(ci, id, sym::CHANNEL.into())
                },
                src: p.src.clone(),
            });
        }
        parts.regions.extend(regions);
    }
}

/// The lowest address from [`CLIENT_BASE`], 2 MiB-aligned, where `need`
/// bytes overlap none of the PD's maps.
fn free_range(pd: &Pd, regions: &[Region], new: &[Region], need: u64) -> u64 {
    let size_of = |name: &str| {
        regions
            .iter()
            .chain(new)
            .find(|r| r.name == name)
            .map_or(PAGE, |r| r.size)
    };
    let taken: Vec<(u64, u64)> = pd
        .maps
        .iter()
        .map(|m| (m.vaddr, m.vaddr + size_of(&m.region)))
        .collect();
    let mut at = CLIENT_BASE;
    while let Some(&(_, end)) = taken.iter().find(|&&(s, e)| at < e && s < at + need) {
        at = end.next_multiple_of(LARGE);
    }
    at
}

/// The lowest channel id PD `index` does not use yet.
fn free_channel(index: usize, pd: &Pd, channels: &[Channel]) -> Option<u64> {
    let used = |id: u64| {
        pd.irqs.iter().any(|i| i.id == id)
            || channels
                .iter()
                .flat_map(|c| [&c.a, &c.b])
                .any(|e| e.pd == index && e.id == id)
    };
    (0..=crate::check::MAX_ID).find(|&id| !used(id))
}
