//! `[stats]` (Septa's addition): the statistics PD and the console
//! `cargo septa top` attaches to.
//!
//! ```toml
//! [stats]
//! console = "stats"          # a [[virtio]] console device
//! ```
//!
//! becomes: PD `stats` (program `cell-stats`), which each second asks the
//! monitor to refresh the statistics table (a call on its monitor
//! endpoint, `septa_cells::stats`), reads the table from region
//! `stats_table` (mapped read-only; only the monitor writes it) and writes
//! it as a line of text to the virtio console; PD `stats_console`
//! (program `virtio-console`), the console's driver, wired as
//! `tests/systems/console-probe` wires one by hand; and the statistics PD
//! as a client of the timer subsystem (created if the description has
//! none). Nothing a cell does reaches any of them: a cell has no channel
//! to them, and the monitor counts faults and reads scheduling contexts
//! itself.

use crate::check::SMALL_PAGE;
use crate::diag::{Kind, Sink, Span};
use crate::expand::{channel, end, map, pd, region};
use crate::model::*;

pub const PD: &str = "stats";
pub const PROGRAM: &str = "cell-stats";
pub const CONSOLE_PD: &str = "stats_console";
pub const CONSOLE_PROGRAM: &str = "virtio-console";
/// Below the timer driver and the serial virtualisers, above every cell;
/// the console driver above the statistics PD, which calls it.
pub const PRIORITY: u8 = 240;
pub const CONSOLE_PRIORITY: u8 = 241;
/// The regions the expansion adds.
pub const TABLE: &str = "stats_table";
const REGS: &str = "stats_console_regs";
const DMA: &str = "stats_console_dma";
const DMA_SIZE: u64 = 64 << 10;
/// Where they are mapped.
const TABLE_VADDR: u64 = 0x3000_0000;
const REGS_VADDR: u64 = 0x2000_0000;
const DMA_VADDR: u64 = 0x2100_0000;
/// The console driver's channel to its client and its interrupt's id
/// (the program's, `drivers/virtio-console`).
const DRIVER_CLIENT_ID: u64 = 1;
const DRIVER_IRQ_ID: u64 = 0;

pub(crate) struct Wanted {
    pub console: (String, Option<Span>),
    /// The PD the table is also exported to, read-only (the HTTP status
    /// cell's dashboard).
    pub http: Option<(String, Option<Span>)>,
    pub whole: Span,
}

/// The symbols by which the exported-to PD finds the table.
pub const EXPORT_VADDR_SYMBOL: &str = "septa_stats_table";
pub const EXPORT_SIZE_SYMBOL: &str = "septa_stats_table_size";

/// Checks `[stats]` and adds the statistics PD, its console driver and
/// their regions; returns the timer client to add.
pub(crate) fn expand(
    system: &mut System,
    w: Wanted,
    sink: &mut Sink,
) -> Option<(String, Option<Span>)> {
    let errors = sink.out.len();
    let device = system
        .virtio_device(&w.console.0)
        .filter(|v| v.kind == VirtioKind::Console)
        .map(|v| v.name.clone());
    if device.is_none() {
        sink.emit(Kind::StatsConsole(w.console.0.clone()), w.console.1);
    }
    for name in [PD, CONSOLE_PD] {
        if let Some(p) = system.pd_index(name) {
            sink.emit(
                Kind::StatsNameTaken {
                    name: name.into(),
                    what: "PD",
                },
                system.pds[p].src.at("name"),
            );
        }
    }
    for name in [TABLE, REGS, DMA] {
        if let Some(r) = system.region(name) {
            sink.emit(
                Kind::StatsNameTaken {
                    name: name.into(),
                    what: "region",
                },
                r.src.whole(),
            );
        }
    }
    let http = w.http.as_ref().and_then(|(name, span)| {
        let p = system.pd_index(name);
        if p.is_none() {
            sink.emit(Kind::StatsUnknownHttp(name.clone()), *span);
        }
        p
    });
    let device = device?;
    if sink.out[errors..].iter().any(|d| !d.is_warning()) {
        return None;
    }

    let src = Src::new(w.whole);
    let s = system.pds.len();
    let mut stats = pd(PD, PROGRAM, PRIORITY, Subsystem::Stats, &src);
    // Its frame (16 KiB) and copies of the table and a counters page.
    stats.stack_size = 64 << 10;
    stats.maps.push(Map {
        perms: Perms {
            read: true,
            write: false,
            execute: false,
        },
        setvar_vaddr: Some("stats_table_vaddr".into()),
        setvar_size: Some("stats_table_size".into()),
        ..map(TABLE.into(), TABLE_VADDR, &src)
    });
    system.pds.push(stats);

    let d = system.pds.len();
    let mut driver = pd(
        CONSOLE_PD,
        CONSOLE_PROGRAM,
        CONSOLE_PRIORITY,
        Subsystem::Stats,
        &src,
    );
    driver.stack_size = 32 << 10;
    driver.maps.push(Map {
        cached: false,
        setvar_device: Some("regs_vaddr".into()),
        setvar_device_size: Some("regs_size".into()),
        ..map(REGS.into(), REGS_VADDR, &src)
    });
    driver.maps.push(Map {
        setvar_vaddr: Some("dma_vaddr".into()),
        setvar_size: Some("dma_size".into()),
        ..map(DMA.into(), DMA_VADDR, &src)
    });
    driver.setvars.push(SetVar {
        symbol: "dma_paddr".into(),
        value: SetValue::Paddr(DMA.into()),
        src: src.clone(),
    });
    let dev = system.device(&device).cloned();
    let mut regs = region(REGS.into(), SMALL_PAGE, &src);
    regs.device = Some(device.clone());
    if let Some(dev) = &dev {
        let start = dev.range.base / SMALL_PAGE * SMALL_PAGE;
        regs.phys = Some(start);
        regs.size = dev.range.end().div_ceil(SMALL_PAGE) * SMALL_PAGE - start;
        driver.irqs.push(Irq {
            id: DRIVER_IRQ_ID,
            kind: IrqKind::Arm {
                irq: dev.irqs.first().copied().unwrap_or(0),
                trigger: Trigger::Edge,
                device: Some(device.clone()),
            },
            setvar_id: None,
            src: src.clone(),
        });
    }
    system.pds.push(driver);

    system.regions.push(region(TABLE.into(), SMALL_PAGE, &src));
    // The export: the same frame, read-only, where the PD has room.
    if let Some(h) = http {
        let at = crate::expand::room(system, h, SMALL_PAGE);
        system.pds[h].maps.push(Map {
            perms: Perms {
                read: true,
                write: false,
                execute: false,
            },
            setvar_vaddr: Some(EXPORT_VADDR_SYMBOL.into()),
            setvar_size: Some(EXPORT_SIZE_SYMBOL.into()),
            ..map(TABLE.into(), at, &src)
        });
    }
    system.regions.push(regs);
    system.regions.push(region(DMA.into(), DMA_SIZE, &src));
    system.channels.push(channel(
        End {
            pp: true,
            ..end(
                s,
                u64::from(septa_cells::stats::CONSOLE_CHANNEL),
                None,
                &src,
            )
        },
        end(d, DRIVER_CLIENT_ID, None, &src),
        &src,
    ));
    system.stats = Some(Stats {
        pd: s,
        console_driver: d,
        console: device,
        table: TABLE.into(),
        http,
        counters: Vec::new(),
        src,
    });
    Some((PD.into(), Some(w.whole)))
}

/// The suffix of a server's counters region (`net_stack_counters`).
pub const COUNTERS_SUFFIX: &str = "_counters";
/// The suffix of a PD's own IPC counts region (`store_ipc`).
pub const IPC_SUFFIX: &str = "_ipc";

/// After every subsystem is expanded: the per-client counters of the
/// servers cells use (the network stack, every key-value cell, every
/// block virtualiser), each in a page of its own that the server maps
/// read-write (`septa_cells::counters::VADDR_SYMBOL`) and the statistics
/// PD and the exported-to PD map read-only, page `i` at symbols
/// `READER_VADDR_SYMBOL[i]`. The server counts each client by the channel
/// its requests come on; no cell maps a server's page. Then, after the
/// servers' pages, a page for every PD built on the runtime (a crate
/// program), which its runtime writes with its own IPC counts
/// (`septa_cells::counters::IPC_VADDR_SYMBOL`) and the same readers map
/// read-only: a PD can misreport only itself. At most
/// `septa_cells::counters::MAX_SERVERS` pages in all: the rest are left
/// out with a warning (`septa::stats::counters_full`).
pub(crate) fn counters(system: &mut System, sink: &mut Sink) {
    use septa_cells::counters as c;
    let Some(st) = &system.stats else { return };
    let (stats_pd, http) = (st.pd, st.http);
    let src = st.src.clone();
    let mut servers: Vec<usize> = Vec::new();
    if let Some(n) = &system.net {
        servers.push(n.stack);
    }
    for (i, p) in system.pds.iter().enumerate() {
        if p.program == Program::Crate(crate::cells::KV_PROGRAM.into()) {
            servers.push(i);
        }
    }
    for d in &system.blk {
        servers.extend(system.pd_index(&d.virt));
    }
    // Then every PD built on the runtime, which counts its own IPC
    // (`septa_cells::counters::Kind::Ipc`, `lib/runtime/src/ipc_counts.rs`).
    let mut pages: Vec<(usize, String, &str, &str)> = servers
        .into_iter()
        .map(|s| {
            let name = format!("{}{COUNTERS_SUFFIX}", system.pds[s].name);
            (s, name, c::VADDR_SYMBOL, c::SIZE_SYMBOL)
        })
        .collect();
    for (p, pd) in system.pds.iter().enumerate() {
        if matches!(pd.program, Program::Crate(_)) {
            let name = format!("{}{IPC_SUFFIX}", pd.name);
            pages.push((p, name, c::IPC_VADDR_SYMBOL, c::IPC_SIZE_SYMBOL));
        }
    }
    pages.retain(|(_, name, _, _)| system.region(name).is_none());
    if let Some((_, first, _, _)) = pages.get(c::MAX_SERVERS) {
        sink.emit(
            Kind::StatsCountersFull {
                max: c::MAX_SERVERS,
                left_out: pages.len() - c::MAX_SERVERS,
                first: first.clone(),
            },
            src.at(""),
        );
    }
    pages.truncate(c::MAX_SERVERS);
    let mut made = Vec::new();
    for (i, (s, name, vaddr, size)) in pages.into_iter().enumerate() {
        system
            .regions
            .push(region(name.clone(), c::PAGE as u64, &src));
        let at = crate::expand::room(system, s, SMALL_PAGE);
        system.pds[s].maps.push(Map {
            setvar_vaddr: Some(vaddr.into()),
            setvar_size: Some(size.into()),
            ..map(name.clone(), at, &src)
        });
        for reader in std::iter::once(stats_pd).chain(http) {
            let at = crate::expand::room(system, reader, SMALL_PAGE);
            system.pds[reader].maps.push(Map {
                perms: Perms {
                    read: true,
                    write: false,
                    execute: false,
                },
                setvar_vaddr: Some(format!("{}[{i}]", c::READER_VADDR_SYMBOL)),
                setvar_size: Some(format!("{}[{i}]", c::READER_SIZE_SYMBOL)),
                ..map(name.clone(), at, &src)
            });
        }
        made.push((s, name));
    }
    if let Some(st) = &mut system.stats {
        st.counters = made;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_str, Format};

    #[test]
    fn stats_adds_its_pd_a_console_driver_and_a_read_only_table() {
        let text = r#"
[system]
board = "qemu-virt"

[cell.idle]
program = "cell-demo"
memory = "128 KiB"

[[virtio]]
name = "top"
kind = "console"

[stats]
console = "top"
"#;
        let s = parse_str("s.toml", text, Format::Toml)
            .map_err(|r| r.one_line())
            .unwrap()
            .system;
        let st = s.stats.as_ref().unwrap();
        assert_eq!(st.console, "top");
        let pd = &s.pds[st.pd];
        assert_eq!((pd.name.as_str(), pd.priority), (PD, PRIORITY));
        let table = pd.maps.iter().find(|m| m.region == TABLE).unwrap();
        assert!(table.perms.read && !table.perms.write);
        // Nobody else maps the table, and no cell has a channel to it or
        // to its console driver.
        let mapped: Vec<&str> = s
            .pds
            .iter()
            .filter(|p| p.maps.iter().any(|m| m.region == TABLE))
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(mapped, [PD]);
        let idle = s.pd_index("idle").unwrap();
        assert!(!s.channels.iter().any(|c| [c.a.pd, c.b.pd].contains(&idle)
            && [c.a.pd, c.b.pd]
                .iter()
                .any(|p| *p == st.pd || *p == st.console_driver)));
        // It calls its console driver and is a client of the timer.
        let driver = &s.pds[st.console_driver];
        assert_eq!(driver.irqs.len(), 1);
        assert!(s
            .channels
            .iter()
            .any(|c| c.a.pd == st.pd && c.b.pd == st.console_driver && c.a.pp));
        assert_eq!(s.timer.as_ref().unwrap().clients, [st.pd]);
    }

    #[test]
    fn more_counter_pages_than_the_statistics_show_is_a_warning() {
        use septa_cells::counters::MAX_SERVERS;
        let mut text = String::from(
            "[system]\nboard = \"qemu-virt\"\n\n[[virtio]]\nname = \"top\"\nkind = \"console\"\n\n[stats]\nconsole = \"top\"\n",
        );
        // Each key-value PD has a server page and an IPC page; the
        // statistics PD, its console driver and the console's virtualiser
        // an IPC page each: 33 of them make 69 pages, five too many.
        for i in 0..33 {
            text += &format!("\n[pd.kv{i:02}]\nprogram = \"kv\"\npriority = 10\n");
        }
        let warned = |text: &str| -> (Vec<String>, usize) {
            let l = parse_str("s.toml", text, Format::Toml)
                .map_err(|r| r.one_line())
                .unwrap();
            let full = l
                .warnings
                .iter()
                .filter(|w| w.code() == "septa::stats::counters_full")
                .map(|w| w.one_line())
                .collect();
            (full, l.system.stats.as_ref().unwrap().counters.len())
        };
        let (full, shown) = warned(&text);
        assert_eq!(full.len(), 1, "{full:?}");
        assert!(
            full[0].contains("at most 64 counter pages: 5 left out"),
            "{}",
            full[0]
        );
        assert_eq!(shown, MAX_SERVERS);
        // Two PDs fewer: 65 pages, one left out; three fewer: 63, none.
        let without = |n: usize| {
            (0..n).fold(text.clone(), |t, i| {
                t.replace(
                    &format!("\n[pd.kv{i:02}]\nprogram = \"kv\"\npriority = 10\n"),
                    "",
                )
            })
        };
        let (full, _) = warned(&without(2));
        assert!(
            full.len() == 1 && full[0].contains(": 1 left out"),
            "{full:?}"
        );
        let (full, shown) = warned(&without(3));
        assert!(full.is_empty(), "{full:?}");
        assert_eq!(shown, 63);
    }

    #[test]
    fn servers_counters_are_theirs_to_write_and_the_readers_to_read() {
        let text = r#"
[system]
board = "qemu-virt"

[pd.store]
program = "kv"
priority = 200
caps = [{ slot = 1, cap = "notification", pd = "store" }]

[cell.web]
program = "http-status"
memory = "2 MiB"
stack = "128 KiB"
services = [
    { kind = "net", listen = ["tcp/80"] },
    { kind = "kv", namespace = "web", quota = "1 KiB" },
]

[[virtio]]
name = "disk"
kind = "blk"
file = "disk.img"
size = "8 MiB"

[blk.disk]
partitions = [{ name = "store", size = "4 MiB", client = "store" }]

[[virtio]]
name = "net0"
kind = "net"

[net]

[[virtio]]
name = "top"
kind = "console"

[stats]
console = "top"
http = "web"
"#;
        let s = parse_str("s.toml", text, Format::Toml)
            .map_err(|r| r.one_line())
            .unwrap()
            .system;
        let st = s.stats.as_ref().unwrap();
        let names: Vec<&str> = st.counters.iter().map(|(_, r)| r.as_str()).collect();
        assert_eq!(
            names[..3],
            ["net_stack_counters", "store_counters", "disk_virt_counters"]
        );
        // Then every PD on the runtime has its own IPC page: its own to
        // write, the statistics PD's to read.
        for (p, pd) in s.pds.iter().enumerate() {
            let region = format!("{}{IPC_SUFFIX}", pd.name);
            let (i, _) = st
                .counters
                .iter()
                .enumerate()
                .find(|(_, (_, r))| *r == region)
                .unwrap_or_else(|| panic!("no {region}"));
            assert_eq!(st.counters[i].0, p);
            let own = pd
                .maps
                .iter()
                .find(|m| m.region == region && m.perms.write)
                .unwrap();
            assert_eq!(own.setvar_vaddr.as_deref(), Some("septa_ipc_counters"));
            let read = s.pds[st.pd]
                .maps
                .iter()
                .find(|m| m.region == region && m.setvar_vaddr.is_some())
                .filter(|m| !m.perms.write || p == st.pd)
                .unwrap();
            assert!(read.perms.read);
            let mut mappers = crate::expand::mappers(&s, &region);
            mappers.sort();
            mappers.dedup();
            let mut want = vec![pd.name.clone(), "stats".into(), "web".into()];
            want.sort();
            want.dedup();
            assert_eq!(mappers, want, "{region}");
        }
        for (i, (server, region)) in st.counters.iter().enumerate().take(3) {
            let mut mappers = crate::expand::mappers(&s, region);
            mappers.sort();
            let mut want = vec![s.pds[*server].name.clone(), "stats".into(), "web".into()];
            want.sort();
            assert_eq!(mappers, want, "{region}");
            let m = |pd: usize| {
                s.pds[pd]
                    .maps
                    .iter()
                    .find(|m| &m.region == region)
                    .unwrap()
                    .clone()
            };
            assert!(m(*server).perms.write);
            for reader in [st.pd, s.pd_index("web").unwrap()] {
                let r = m(reader);
                assert!(r.perms.read && !r.perms.write);
                assert_eq!(
                    r.setvar_vaddr.as_deref(),
                    Some(format!("septa_server_counters[{i}]").as_str())
                );
            }
        }
    }
}
