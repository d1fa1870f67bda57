//! `[cell.NAME]` (Septa's addition): a workload declared with exactly the
//! CPU, memory and services it may use.
//!
//! ```toml
//! [cell.worker]
//! program = "cell-demo"
//! band = "normal"                 # low, normal or high: cells run below every service
//! budget = "2 ms"
//! period = "10 ms"
//! memory = "256 KiB"              # stack, heap and program image together
//! stack = "16 KiB"
//! heap = "64 KiB"
//! restart = { policy = "restart", limit = 3, backoff = "10 ms" }
//! services = [
//!     { kind = "console", prefix = "w| " },
//!     { kind = "timer" },
//!     { kind = "channel", pd = "counter", id = 2, pp = true },
//! ]
//! ```
//!
//! becomes one PD named after the cell and nothing else it was not
//! declared to have: its scheduling context (budget, period, a priority in
//! its band), its stack, its heap (a region `NAME_heap` mapped at
//! `septa_cells::heap::VADDR`, address and size patched into the image),
//! a timeout endpoint (the monitor counts its budget overruns), and per
//! service: a client of the serial subsystem (`console`, added to
//! `[serial]`, which is created if the description has none), a client of
//! the timer subsystem (`timer`, likewise), a channel to a named PD
//! (`channel`: the PD's end has the id written, the cell's end the lowest
//! free one, and the cell finds it by the PD's name in a table the tool
//! patches, `septa_cells::peers`), a cell of the network subsystem
//! (`net`: `listen` and `connect` rules as `[net]` `cells` takes them,
//! `"tcp/80"`, added there; the stack holds the cell to them on its own
//! channel and socket region), a client of the key-value cell (`kv`: a
//! `namespace` and a byte `quota`; the PD running program `kv` serves it
//! on its own channel and buffer, confined to its namespace and quota).
//! Those services' shared regions count in the cell's memory quota.
//!
//! Errors are reported at the key that causes them, and a cell with errors
//! adds nothing, so that no error cascades into generated items.

use septa_cells::kv::MAX_NAMESPACE;
use septa_cells::{heap, peers, Band};

use crate::check::{self, SMALL_PAGE};
use crate::diag::{Kind, Sink, Span};
use crate::expand::{channel, end, free_ids, map, pd, region, room};
use crate::model::*;
use crate::units::fmt_size;

/// The services a cell may name, and the keys each takes beside `kind`.
const SERVICES: [(&str, &[&str], &str); 5] = [
    ("console", &["prefix", "colour"], "`prefix` and `colour`"),
    ("timer", &[], "no other key"),
    (
        "channel",
        &["pd", "id", "pp", "notify"],
        "`pd`, `id`, `pp` and `notify`",
    ),
    ("net", &["listen", "connect"], "`listen` and `connect`"),
    ("kv", &["namespace", "quota"], "`namespace` and `quota`"),
];

/// A value as written, with where.
pub(crate) type At<T> = (T, Option<Span>);

/// One entry of a cell's `services`, as the front end read it: its kind,
/// then each key that was written with its value and span.
pub(crate) struct WantedService {
    pub kind: (String, Option<Span>),
    pub prefix: Option<(String, Option<Span>)>,
    pub colour: Option<(String, Option<Span>)>,
    pub pd: Option<(String, Option<Span>)>,
    pub id: Option<(i64, Option<Span>)>,
    pub pp: Option<(bool, Option<Span>)>,
    pub notify: Option<(bool, Option<Span>)>,
    pub listen: Option<At<Vec<At<String>>>>,
    pub connect: Option<At<Vec<At<String>>>>,
    pub namespace: Option<At<String>>,
    pub quota: Option<At<u64>>,
    /// A Linux cell's: the guest takes the keyboard (`console`), its
    /// address and forwards (`net`), its disk (`disk`).
    pub input: Option<At<bool>>,
    pub virtio: Option<At<bool>>,
    pub address: Option<At<String>>,
    pub forward: Option<At<Vec<crate::linux::WantedForward>>>,
    pub device: Option<At<String>>,
    pub partition: Option<At<String>>,
    pub whole: Span,
}

impl WantedService {
    /// The keys written beside `kind`, with their spans.
    fn keys(&self) -> Vec<(&'static str, Option<Span>)> {
        let mut k = Vec::new();
        let mut add = |name, span: Option<Option<Span>>| {
            if let Some(s) = span {
                k.push((name, s));
            }
        };
        add("prefix", self.prefix.as_ref().map(|v| v.1));
        add("colour", self.colour.as_ref().map(|v| v.1));
        add("pd", self.pd.as_ref().map(|v| v.1));
        add("id", self.id.as_ref().map(|v| v.1));
        add("pp", self.pp.as_ref().map(|v| v.1));
        add("notify", self.notify.as_ref().map(|v| v.1));
        add("listen", self.listen.as_ref().map(|v| v.1));
        add("connect", self.connect.as_ref().map(|v| v.1));
        add("namespace", self.namespace.as_ref().map(|v| v.1));
        add("quota", self.quota.as_ref().map(|v| v.1));
        add("input", self.input.as_ref().map(|v| v.1));
        add("virtio", self.virtio.as_ref().map(|v| v.1));
        add("address", self.address.as_ref().map(|v| v.1));
        add("forward", self.forward.as_ref().map(|v| v.1));
        add("device", self.device.as_ref().map(|v| v.1));
        add("partition", self.partition.as_ref().map(|v| v.1));
        k
    }
}

/// What the front end read from `[cell.NAME]`.
pub(crate) struct Wanted {
    pub name: String,
    pub name_span: Option<Span>,
    pub program: Program,
    pub band: Option<(String, Option<Span>)>,
    pub priority: Option<(i64, Option<Span>)>,
    pub budget_us: u64,
    pub period_us: u64,
    pub memory: (u64, Option<Span>),
    pub stack: (u64, Option<Span>),
    pub heap: Option<(u64, Option<Span>)>,
    pub restart: Restart,
    pub services: Vec<WantedService>,
    pub src: Src,
}

/// What the cells ask of the serial, timer and network subsystems: the
/// clients to add to `[serial]`, `[timer]` and `[net]`.
#[derive(Default)]
pub(crate) struct Clients {
    pub serial: Vec<crate::serial::WantedClient>,
    pub timer: Vec<(String, Option<Span>)>,
    pub net: Vec<crate::net::WantedCell>,
}

/// The program of the key-value cell that serves `kv` services.
pub const KV_PROGRAM: &str = "kv";

/// The region a cell's `kv` buffer is in, and its size (a key's page and
/// the largest value).
fn kv_region(cell: &str) -> String {
    format!("{cell}_kv")
}
const KV_REGION_SIZE: u64 = septa_cells::kv::BUFFER_BYTES as u64;

/// Checks every cell and adds the sound ones to `system`; returns the
/// clients they want of the subsystems.
pub(crate) fn expand(system: &mut System, cells: Vec<Wanted>, sink: &mut Sink) -> Clients {
    let mut clients = Clients::default();
    // The Linux cells, expanded already, count too.
    let mut names: Vec<String> = system
        .cells
        .iter()
        .map(|c| system.pds[c.pd].name.clone())
        .collect();
    names.extend(cells.iter().map(|c| c.name.clone()));
    let mut namespaces: Vec<String> = Vec::new();
    let mut total: u64 = system.cells.iter().map(|c| c.memory).sum();
    for c in cells {
        total = total.saturating_add(c.memory.0);
        expand_one(system, c, &names, &mut namespaces, &mut clients, sink);
    }
    let ram = system.board.ram.size;
    if names.len() > 1 && total > ram {
        sink.emit(
            Kind::CellOverBoard {
                what: "the cells' memory quotas together".into(),
                quota: fmt_size(total),
                ram: fmt_size(ram),
                board: system.board.name.clone(),
            },
            system.cells.last().and_then(|c| c.src.at("memory")),
        );
    }
    clients
}

/// Checks that no PD takes cell `cell`'s name, nor any region the names
/// it will give its `regions`.
pub(crate) fn names_free(
    system: &System,
    sink: &mut Sink,
    cell: &str,
    span: Option<Span>,
    regions: &[&str],
) {
    let taken = system
        .pd_index(cell)
        .map(|_| (cell, "PD"))
        .into_iter()
        .chain(
            regions
                .iter()
                .filter(|r| system.region(r).is_some())
                .map(|r| (*r, "region")),
        );
    for (name, what) in taken {
        sink.emit(
            Kind::CellNameTaken {
                cell: cell.into(),
                name: name.into(),
                what,
            },
            span,
        );
    }
}

/// A cell's band (`None` if unknown, reported) and priority (its band's
/// lowest unless given; one outside the band is reported).
pub(crate) fn placement(
    sink: &mut Sink,
    name: &str,
    band: Option<&(String, Option<Span>)>,
    priority: Option<(i64, Option<Span>)>,
) -> (Option<Band>, u8) {
    let band = match band {
        Some((b, span)) => Band::from_name(b).or_else(|| {
            let known: Vec<String> = Band::ALL
                .iter()
                .map(|b| {
                    let r = b.range();
                    format!("`{}` ({}..={})", b.name(), r.start(), r.end())
                })
                .collect();
            sink.emit(Kind::CellUnknownBand(b.clone(), known.join(", ")), *span);
            None
        }),
        None => Some(Band::Normal),
    };
    let priority = match (band, priority) {
        (Some(b), Some((p, span))) => {
            let r = b.range();
            if p < i64::from(*r.start()) || p > i64::from(*r.end()) {
                sink.emit(
                    Kind::CellPriorityBand {
                        cell: name.into(),
                        priority: p,
                        band: b.name(),
                        lo: *r.start(),
                        hi: *r.end(),
                    },
                    span,
                );
            }
            p.clamp(0, 254) as u8
        }
        (Some(b), None) => *b.range().start(),
        (None, _) => 0,
    };
    (band, priority)
}

/// A table of services: each kind, the keys it takes beside `kind`, and
/// how the help names them.
pub(crate) type ServiceTable = [(&'static str, &'static [&'static str], &'static str)];

/// The services of cell `cell` that `table` knows and whose keys it
/// allows, each kind once but those in `repeatable`; the rest reported.
pub(crate) fn known_services<'a>(
    sink: &mut Sink,
    cell: &str,
    services: &'a [WantedService],
    table: &ServiceTable,
    repeatable: &[&str],
) -> Vec<(&'static str, &'a WantedService)> {
    let mut out = Vec::new();
    let mut seen: Vec<&'static str> = Vec::new();
    for s in services {
        let Some((kind, keys, allowed)) = table.iter().find(|k| k.0 == s.kind.0) else {
            let mut known: Vec<&str> = table.iter().map(|k| k.0).collect();
            known.sort();
            sink.emit(
                Kind::CellUnknownService {
                    cell: cell.into(),
                    kind: s.kind.0.clone(),
                    known: format!("the services are {}", known.join(", ")),
                },
                s.kind.1,
            );
            continue;
        };
        let mut bad = false;
        for (key, span) in s.keys() {
            if !keys.contains(&key) {
                bad = true;
                sink.emit(
                    Kind::CellServiceKey {
                        cell: cell.into(),
                        kind,
                        key,
                        allowed,
                    },
                    span,
                );
            }
        }
        if !repeatable.contains(kind) && seen.contains(kind) {
            sink.emit(
                Kind::CellDuplicateService {
                    cell: cell.into(),
                    kind,
                },
                s.kind.1,
            );
            continue;
        }
        seen.push(kind);
        if !bad {
            out.push((*kind, s));
        }
    }
    out
}

fn expand_one(
    system: &mut System,
    c: Wanted,
    cells: &[String],
    namespaces: &mut Vec<String>,
    clients: &mut Clients,
    sink: &mut Sink,
) {
    let errors = sink.out.len();
    let name = c.name.clone();
    let heap_region = format!("{name}_heap");
    let heap_size = c.heap.map_or(0, |h| h.0);
    let regions: &[&str] = if heap_size > 0 { &[&heap_region] } else { &[] };
    names_free(system, sink, &name, c.name_span, regions);

    // Where it runs.
    let (band, priority) = placement(sink, &name, c.band.as_ref(), c.priority);

    // Its memory: stack and heap within the quota, the quota within the
    // board (the program image is added when it is built).
    let (memory, memory_span) = c.memory;
    check::stack(sink, c.stack.0, c.stack.1);
    if let Some((h, span)) = c.heap {
        if !h.is_multiple_of(SMALL_PAGE) {
            sink.emit(
                Kind::CellHeapAlign {
                    cell: name.clone(),
                    size: fmt_size(h),
                    page: fmt_size(SMALL_PAGE),
                },
                span,
            );
        }
    }
    // The regions its services share with their servers are its memory
    // too.
    let regions: u64 = c
        .services
        .iter()
        .map(|s| match s.kind.0.as_str() {
            "net" => septa_net_protocol::sockets::REGION_SIZE,
            "kv" => KV_REGION_SIZE,
            _ => 0,
        })
        .sum();
    let need = c.stack.0.saturating_add(heap_size).saturating_add(regions);
    if memory == 0 {
        sink.emit(Kind::CellZeroMemory(name.clone()), memory_span);
    } else if memory > system.board.ram.size {
        sink.emit(
            Kind::CellOverBoard {
                what: format!("cell `{name}`'s memory quota"),
                quota: fmt_size(memory),
                ram: fmt_size(system.board.ram.size),
                board: system.board.name.clone(),
            },
            memory_span,
        );
    } else if need > memory {
        sink.emit(
            Kind::CellOverQuota {
                cell: name.clone(),
                need: fmt_size(need),
                stack: fmt_size(c.stack.0),
                heap: fmt_size(heap_size),
                regions: fmt_size(regions),
                quota: fmt_size(memory),
            },
            memory_span,
        );
    }

    // Its services.
    let mut console: Option<&WantedService> = None;
    let mut timer = false;
    let mut wanted_peers: Vec<(usize, u64, bool, bool, Option<Span>)> = Vec::new();
    let mut net: Option<crate::net::WantedCell> = None;
    let mut kv: Option<(usize, String, u64)> = None;
    for (kind, s) in known_services(sink, &name, &c.services, &SERVICES, &["channel"]) {
        match kind {
            "console" => console = Some(s),
            "timer" => timer = true,
            "channel" => {
                if let Some(p) = channel_service(system, &name, cells, s, sink) {
                    if wanted_peers.iter().any(|w| w.0 == p.0) {
                        sink.emit(
                            Kind::CellDuplicateChannel {
                                cell: name.clone(),
                                pd: system.pds[p.0].name.clone(),
                            },
                            s.pd.as_ref().and_then(|p| p.1),
                        );
                    } else {
                        wanted_peers.push(p);
                    }
                }
            }
            "net" => {
                let list = |l: &Option<At<Vec<At<String>>>>| {
                    l.as_ref().map_or(Vec::new(), |l| l.0.clone())
                };
                net = Some(crate::net::WantedCell {
                    pd: name.clone(),
                    span: Some(s.whole),
                    listen: list(&s.listen),
                    connect: list(&s.connect),
                });
            }
            _ => kv = kv_service(system, &name, namespaces, s, sink),
        }
    }
    if wanted_peers.len() > peers::MAX {
        sink.emit(
            Kind::CellTooManyChannels {
                cell: name.clone(),
                count: wanted_peers.len(),
                max: peers::MAX,
            },
            wanted_peers.get(peers::MAX).and_then(|w| w.4),
        );
    }
    if sink.out[errors..].iter().any(|d| !d.is_warning()) {
        return;
    }

    // Sound: add the PD, its heap, its channels; hand its console and
    // timer to their subsystems.
    let src = c.src.clone();
    let p = system.pds.len();
    let mut cell_pd = pd(&name, "", priority, Subsystem::Cell, &src);
    cell_pd.program = c.program.clone();
    cell_pd.budget_us = c.budget_us;
    cell_pd.period_us = c.period_us;
    cell_pd.stack_size = c.stack.0;
    cell_pd.restart = c.restart.clone();
    if heap_size > 0 {
        system
            .regions
            .push(region(heap_region.clone(), heap_size, &src));
        cell_pd.maps.push(Map {
            setvar_vaddr: Some(heap::VADDR_SYMBOL.into()),
            setvar_size: Some(heap::SIZE_SYMBOL.into()),
            ..map(heap_region.clone(), heap::VADDR, &src)
        });
    }
    system.pds.push(cell_pd);
    let mut table = Vec::new();
    let mut cell_peers = Vec::new();
    for (id, (peer, peer_id, pp, notify, _)) in wanted_peers.into_iter().enumerate() {
        let id = id as u64;
        system.channels.push(channel(
            End {
                pp,
                notify,
                ..end(p, id, None, &src)
            },
            end(peer, peer_id, None, &src),
            &src,
        ));
        cell_peers.push(CellPeer {
            pd: peer,
            cell_id: id,
            peer_id,
            pp,
            notify,
        });
        table.push((system.pds[peer].name.clone(), id as u8, pp, notify));
    }
    let entries: Vec<peers::Peer> = table
        .iter()
        .map(|(n, id, pp, notify)| peers::Peer {
            name: n,
            id: *id,
            flags: if *pp { peers::PP } else { 0 } | if *notify { peers::NOTIFY } else { 0 },
        })
        .collect();
    // Names are PD names (under 64 bytes, checked) and at most MAX
    // entries (checked above). A cell with no channel gets no table: the
    // zeroed one in its image already says so, and a program that is no
    // `septa-cell` program (the HTTP status cell, on the runtime itself)
    // need not carry the symbol.
    if let (false, Ok(bytes)) = (entries.is_empty(), peers::encode(&entries)) {
        system.pds[p].consts.push(Const {
            symbol: peers::SYMBOL.into(),
            bytes: bytes.to_vec(),
            what: "the cell's channels by peer name".into(),
        });
    }
    if let Some(s) = console {
        clients.serial.push(crate::serial::WantedClient {
            pd: name.clone(),
            span: s.kind.1,
            prefix: s.prefix.clone(),
            colour: s.colour.clone(),
        });
    }
    if timer {
        clients.timer.push((name.clone(), c.name_span));
    }
    // Its key-value client: a buffer it shares with the store alone, and
    // a channel on which it calls the store; the store is told the
    // client's name, namespace and quota for that channel.
    let kv = kv.map(|(server, namespace, quota)| {
        let region_name = kv_region(&name);
        system
            .regions
            .push(region(region_name.clone(), KV_REGION_SIZE, &src));
        let cell_id = table.len() as u64;
        let server_id = free_ids(system, server).next().unwrap_or(0);
        let at = room(system, p, KV_REGION_SIZE);
        system.pds[p].maps.push(Map {
            setvar_vaddr: Some("kv_buffer".into()),
            setvar_size: Some("kv_buffer_size".into()),
            ..map(region_name.clone(), at, &src)
        });
        let at = room(system, server, KV_REGION_SIZE);
        let sym = |s: &str| format!("{s}[{server_id}]");
        system.pds[server].maps.push(Map {
            setvar_vaddr: Some(sym("kv_client_buffer")),
            setvar_size: Some(sym("kv_client_buffer_size")),
            ..map(region_name, at, &src)
        });
        for (symbol, value) in [
            ("kv_client_name", SetValue::Text(name.clone())),
            (
                septa_cells::kv::NAMESPACE_SYMBOL,
                SetValue::Text(namespace.clone()),
            ),
            (septa_cells::kv::QUOTA_SYMBOL, SetValue::Number(quota)),
        ] {
            system.pds[server].setvars.push(SetVar {
                symbol: sym(symbol),
                value,
                src: src.clone(),
            });
        }
        system.channels.push(channel(
            End {
                pp: true,
                notify: false,
                ..end(p, cell_id, Some("kv_channel"), &src)
            },
            End {
                notify: false,
                ..end(server, server_id, None, &src)
            },
            &src,
        ));
        CellKv {
            pd: server,
            namespace,
            quota,
            cell_id,
            server_id,
        }
    });
    let net_rules = net.as_ref().map(|n| {
        let texts = |l: &[At<String>]| l.iter().map(|r| r.0.clone()).collect();
        (texts(&n.listen), texts(&n.connect))
    });
    clients.net.extend(net);
    system.cells.push(Cell {
        pd: p,
        band: band.map_or("normal", Band::name).into(),
        memory,
        heap: heap_size,
        heap_region: (heap_size > 0).then_some(heap_region),
        console: console.is_some(),
        timer,
        peers: cell_peers,
        net: net_rules,
        kv,
        regions,
        linux: None,
        src,
    });
}

/// A `kv` service: the key-value cell that serves it, the namespace and
/// the quota.
fn kv_service(
    system: &System,
    cell: &str,
    namespaces: &mut Vec<String>,
    s: &WantedService,
    sink: &mut Sink,
) -> Option<(usize, String, u64)> {
    let mut missing = |key| {
        sink.emit(
            Kind::CellServiceMissingKey {
                cell: cell.into(),
                kind: "kv",
                key,
            },
            Some(s.whole),
        );
    };
    let (Some((ns, ns_span)), Some((quota, quota_span))) = (&s.namespace, s.quota) else {
        if s.namespace.is_none() {
            missing("namespace");
        }
        if s.quota.is_none() {
            missing("quota");
        }
        return None;
    };
    if !septa_cells::kv::valid_namespace(ns.as_bytes()) {
        sink.emit(
            Kind::CellKvNamespace {
                cell: cell.into(),
                namespace: ns.clone(),
                max: MAX_NAMESPACE,
            },
            *ns_span,
        );
        return None;
    }
    if namespaces.contains(ns) {
        sink.emit(
            Kind::CellKvNamespaceTaken {
                cell: cell.into(),
                namespace: ns.clone(),
            },
            *ns_span,
        );
        return None;
    }
    if quota == 0 {
        sink.emit(Kind::CellKvQuota(cell.into()), quota_span);
        return None;
    }
    let servers: Vec<usize> = (0..system.pds.len())
        .filter(|&i| system.pds[i].program == Program::Crate(KV_PROGRAM.into()))
        .collect();
    let [server] = servers[..] else {
        sink.emit(
            Kind::CellServiceUnavailable {
                cell: cell.into(),
                what: "key-value service",
                subsystem: if servers.is_empty() {
                    "PD running program `kv`"
                } else {
                    "single PD running program `kv` (it has several)"
                },
            },
            s.kind.1,
        );
        return None;
    };
    if free_ids(system, server).next().is_none() {
        sink.emit(
            Kind::CellKvNoChannel {
                cell: cell.into(),
                server: system.pds[server].name.clone(),
            },
            s.kind.1,
        );
        return None;
    }
    namespaces.push(ns.clone());
    Some((server, ns.clone(), quota))
}

/// A `channel` service: the peer's index, its end's id, and whether the
/// cell may call and notify it.
pub(crate) fn channel_service(
    system: &System,
    cell: &str,
    cells: &[String],
    s: &WantedService,
    sink: &mut Sink,
) -> Option<(usize, u64, bool, bool, Option<Span>)> {
    let Some((pd, pd_span)) = &s.pd else {
        sink.emit(
            Kind::CellServiceMissingKey {
                cell: cell.into(),
                kind: "channel",
                key: "pd",
            },
            Some(s.whole),
        );
        return None;
    };
    let Some((id, id_span)) = s.id else {
        sink.emit(
            Kind::CellServiceMissingKey {
                cell: cell.into(),
                kind: "channel",
                key: "id",
            },
            Some(s.whole),
        );
        return None;
    };
    let id = check::channel_id(sink, id, id_span);
    if cells.contains(pd) {
        sink.emit(
            Kind::CellChannelToCell {
                cell: cell.into(),
                pd: pd.clone(),
            },
            *pd_span,
        );
        return None;
    }
    let Some(p) = system.pd_index(pd) else {
        sink.emit(
            Kind::CellUnknownPd {
                cell: cell.into(),
                pd: pd.clone(),
            },
            *pd_span,
        );
        return None;
    };
    Some((
        p,
        id,
        s.pp.is_some_and(|v| v.0),
        s.notify.is_none_or(|v| v.0),
        *pd_span,
    ))
}

/// What each cell may reach, a paragraph per cell: `septa check` prints
/// it and `septa report` lists it under "Cells".
pub fn explain(system: &System) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    for c in &system.cells {
        let pd = &system.pds[c.pd];
        let program = match &pd.program {
            Program::Crate(n) => n.clone(),
            Program::Elf(p) => p.display().to_string(),
        };
        let share = pd.budget_us as f64 * 100.0 / pd.period_us.max(1) as f64;
        let restart = match pd.restart.policy {
            Policy::Stop => "stop on a fault".to_string(),
            Policy::Halt => "halt the system on a fault".to_string(),
            Policy::Restart => format!(
                "restart on a fault{}{}",
                pd.restart
                    .limit
                    .map_or(String::new(), |l| format!(", at most {l} times")),
                if pd.restart.backoff_us > 0 {
                    format!(", {} us apart", pd.restart.backoff_us)
                } else {
                    String::new()
                }
            ),
        };
        let mut reach = Vec::new();
        let mut guest = Vec::new();
        if let Some(l) = &c.linux {
            let _ = writeln!(
                o,
                "{}, {restart}",
                crate::linux::headline(pd, c.band.as_str(), l)
            );
            guest = crate::linux::reach(system, c.pd, l);
        } else {
            let _ = writeln!(
                o,
                "cell {}: program {program}, priority {} (band {}), budget {} us every {} us ({share:.0}% of a CPU), \
                 memory {} (stack {}, heap {}, service regions {}, the program image counted at build), {restart}",
                pd.name,
                pd.priority,
                c.band,
                pd.budget_us,
                pd.period_us,
                fmt_size(c.memory),
                fmt_size(pd.stack_size),
                fmt_size(c.heap),
                fmt_size(c.regions),
            );
        }
        if c.console {
            if let Some(s) = &system.serial {
                let n = s.clients.iter().position(|k| k.pd == c.pd).unwrap_or(0);
                let keyboard = match s.input.iter().position(|k| *k == c.pd) {
                    Some(i) => format!(
                        "; what is typed while it has the keyboard (input {i}), from {}",
                        s.virt_rx.map_or("?", |v| system.pds[v].name.as_str())
                    ),
                    None => String::new(),
                };
                reach.push(format!(
                    "console (serial client {n}: its own queue to {}{keyboard}, nothing else of the UART)",
                    system.pds[s.virt_tx].name
                ));
            }
        }
        if c.timer {
            if let Some(t) = &system.timer {
                let n = t.clients.iter().position(|k| *k == c.pd).unwrap_or(0);
                reach.push(format!(
                    "timer (calls {} as its client {n})",
                    system.pds[t.driver].name
                ));
            }
        }
        for p in &c.peers {
            let how = match (p.pp, p.notify) {
                (true, true) => "calls and notifies",
                (true, false) => "calls",
                (false, true) => "notifies",
                (false, false) => "is notified by",
            };
            reach.push(format!(
                "PD {} (channel {}, its id {}): {how} it",
                system.pds[p.pd].name, p.cell_id, p.peer_id
            ));
        }
        if let Some((listen, connect)) = &c.net {
            let list = |l: &[String]| {
                if l.is_empty() {
                    "nothing".to_string()
                } else {
                    l.join(", ")
                }
            };
            reach.push(format!(
                "network (a cell of {}: listens on {}, connects to {}; the stack refuses the rest)",
                crate::net::STACK,
                list(listen),
                list(connect)
            ));
        }
        if let Some(k) = &c.kv {
            reach.push(format!(
                "key-value store (calls {} on channel {}, its id {}: namespace `{}` alone, at most {} of keys and values)",
                system.pds[k.pd].name,
                k.cell_id,
                k.server_id,
                k.namespace,
                fmt_size(k.quota)
            ));
        }
        reach.append(&mut guest);
        if reach.is_empty() {
            let _ = writeln!(o, "  may reach: nothing but its own memory and CPU");
        } else {
            for r in reach {
                let _ = writeln!(o, "  may reach: {r}");
            }
        }
        if c.linux.is_some() {
            let _ = writeln!(
                o,
                "  and nothing else: no device but the GIC's virtual CPU interface in its VM, no IRQ, shared region \
                 or capability it was not declared; its VCPU's faults go to its VMM, the VMM's faults and budget \
                 overruns to the monitor"
            );
        } else {
            let _ = writeln!(
                o,
                "  and nothing else: no device, IRQ, shared region or capability it was not declared; \
                 its faults and budget overruns go to the monitor"
            );
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_str, Format};

    #[test]
    fn net_and_kv_services_make_a_cell_a_client_of_their_servers() {
        let text = r#"
[system]
board = "qemu-virt"

[pd.store]
program = "kv"
priority = 200

[[virtio]]
name = "net0"
kind = "net"

[net]

[cell.web]
program = "w"
memory = "1 MiB"
services = [
    { kind = "net", listen = ["tcp/80"] },
    { kind = "kv", namespace = "web", quota = "1 KiB" },
]
"#;
        let s = parse_str("c.toml", text, Format::Toml)
            .map_err(|r| r.one_line())
            .unwrap()
            .system;
        let c = &s.cells[0];
        assert_eq!(c.net, Some((vec!["tcp/80".to_string()], vec![])));
        assert_eq!(
            c.regions,
            septa_net_protocol::sockets::REGION_SIZE + KV_REGION_SIZE
        );
        // The store: a channel the cell calls it on, its buffer, and the
        // cell's name, namespace and quota at its end's index.
        let k = c.kv.as_ref().unwrap();
        assert_eq!((k.namespace.as_str(), k.quota), ("web", 1024));
        let store = &s.pds[k.pd];
        assert_eq!(store.name, "store");
        let at = |sym: &str| format!("{sym}[{}]", k.server_id);
        let sv = |sym: &str| {
            store
                .setvars
                .iter()
                .find(|v| v.symbol == at(sym))
                .map(|v| v.value.clone())
        };
        assert_eq!(
            sv("kv_client_namespace"),
            Some(SetValue::Text("web".into()))
        );
        assert_eq!(sv("kv_client_quota"), Some(SetValue::Number(1024)));
        assert!(store.maps.iter().any(|m| m.region == "web_kv"
            && m.setvar_vaddr.as_deref() == Some(at("kv_client_buffer").as_str())));
        let ch = s
            .channels
            .iter()
            .find(|ch| ch.a.pd == c.pd && ch.b.pd == k.pd)
            .unwrap();
        assert!(ch.a.pp && !ch.a.notify && !ch.b.notify);
        assert_eq!(ch.a.setvar_id.as_deref(), Some("kv_channel"));
        // The stack holds the cell's rules.
        let net = s.net.as_ref().unwrap();
        assert_eq!(net.cells.len(), 1);
        assert_eq!(
            (net.cells[0].pd, &net.cells[0].listen[..]),
            (c.pd, &["tcp/80".to_string()][..])
        );
    }

    #[test]
    fn a_cell_becomes_one_pd_with_what_it_declared_and_nothing_else() {
        let text = r#"
[system]
board = "qemu-virt"

[pd.counter]
program = "counter"
priority = 150

[cell.worker]
program = "cell-demo"
band = "high"
priority = 75
budget = "2 ms"
period = "10 ms"
memory = "256 KiB"
stack = "16 KiB"
heap = "64 KiB"
restart = { policy = "restart", limit = 3, backoff = "10 ms" }
services = [
    { kind = "console", prefix = "w| " },
    { kind = "timer" },
    { kind = "channel", pd = "counter", id = 2, pp = true },
]

[cell.idle]
program = "cell-demo"
memory = "64 KiB"
"#;
        let s = parse_str("c.toml", text, Format::Toml)
            .map_err(|r| r.one_line())
            .unwrap()
            .system;
        assert_eq!(s.cells.len(), 2);
        let c = &s.cells[0];
        let pd = &s.pds[c.pd];
        assert_eq!(pd.name, "worker");
        assert_eq!(pd.subsystem, Some(Subsystem::Cell));
        assert_eq!(
            (pd.priority, pd.budget_us, pd.period_us),
            (75, 2000, 10_000)
        );
        assert_eq!(pd.stack_size, 16 << 10);
        assert_eq!(pd.restart.limit, Some(3));
        // Its heap, and nothing else mapped; no IRQ, no extra cap.
        assert_eq!(s.region("worker_heap").unwrap().size, 64 << 10);
        let heap_map = &pd.maps[0];
        assert_eq!(
            (heap_map.region.as_str(), heap_map.vaddr),
            ("worker_heap", heap::VADDR)
        );
        assert!(pd.irqs.is_empty() && pd.caps.is_empty() && pd.setvars.is_empty());
        // Channel 0 to counter (its id 2), which it may call; then the
        // serial queue's and the timer's channels.
        let to_counter: Vec<_> = s
            .channels
            .iter()
            .filter(|ch| ch.a.pd == c.pd && ch.b.pd == s.pd_index("counter").unwrap())
            .map(|ch| (ch.a.id, ch.b.id, ch.a.pp))
            .collect();
        assert_eq!(to_counter, [(0, 2, true)]);
        let table = &pd
            .consts
            .iter()
            .find(|k| k.symbol == peers::SYMBOL)
            .unwrap()
            .bytes;
        let peer = peers::find(table, "counter").unwrap();
        assert_eq!((peer.id, peer.flags), (0, peers::PP | peers::NOTIFY));
        assert!(s
            .serial
            .as_ref()
            .unwrap()
            .clients
            .iter()
            .any(|k| k.pd == c.pd));
        assert_eq!(s.timer.as_ref().unwrap().clients, [c.pd]);
        // The idle cell: band normal's lowest priority, no heap, no service.
        let idle = &s.pds[s.cells[1].pd];
        assert_eq!(idle.priority, 40);
        assert!(idle.maps.is_empty());
        assert!(s.region("idle_heap").is_none());
        let text = explain(&s);
        assert!(text.contains("cell idle:") && text.contains("nothing but its own memory"));
        assert!(text.contains("PD counter (channel 0, its id 2): calls and notifies it"));
    }
}
