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
    stats.stack_size = 16 << 10;
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
        src,
    });
    Some((PD.into(), Some(w.whole)))
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
}
