//! The TOML front end: `system.toml` to the model.
//!
//! Deserialisation is strict (`deny_unknown_fields` everywhere) and keeps the
//! span of every value that a later check may need to point at. This module
//! only reshapes the text into the model and checks single values (through
//! `check`, shared with the XML front end); rules that relate items to each
//! other live in `validate`.

use std::path::Path;
use std::sync::Arc;

use indexmap::IndexMap;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use toml::Spanned;

use crate::board::Board;
use crate::check;
use crate::diag::{Diagnostic, Kind, Sink, Source, Span};
use crate::model::*;
use crate::units;
use septa_abi::Config;

/// Separates a diagnostic code from its message inside a serde custom error,
/// so that value errors raised while deserialising keep their own code.
const CODE_MARK: char = '\u{1f}';

/// A size: an integer of bytes or a string such as "4 KiB".
#[derive(Debug, Clone, Copy)]
pub(crate) struct SizeValue(pub u64);

/// A duration: an integer of microseconds or a string such as "1 ms".
#[derive(Debug, Clone, Copy)]
pub(crate) struct DurationValue(pub u64);

struct UnitVisitor {
    what: &'static str,
    code: &'static str,
    parse: fn(&str) -> Result<u64, String>,
}

impl Visitor<'_> for UnitVisitor {
    type Value = u64;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "a {} (integer or string with a unit)", self.what)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| {
            E::custom(format!(
                "{}{CODE_MARK}{} cannot be negative",
                self.code, self.what
            ))
        })
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        (self.parse)(v).map_err(|m| E::custom(format!("{}{CODE_MARK}{m}", self.code)))
    }
}

impl<'de> Deserialize<'de> for SizeValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UnitVisitor {
            what: "size",
            code: "size",
            parse: units::parse_size,
        })
        .map(SizeValue)
    }
}

impl<'de> Deserialize<'de> for DurationValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UnitVisitor {
            what: "duration",
            code: "duration",
            parse: units::parse_duration,
        })
        .map(DurationValue)
    }
}

/// Turns a message of several lines into one.
fn one_line(msg: &str) -> String {
    msg.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Levenshtein distance, for "did you mean" hints on misspelt keys.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Classifies a `toml` error into a diagnostic kind.
pub(crate) fn toml_error(err: &toml::de::Error, source: &Arc<Source>) -> Diagnostic {
    let span = err.span().map(Span::from);
    let msg = one_line(err.message());
    let kind = if let Some((code, rest)) = msg.split_once(CODE_MARK) {
        match code {
            "size" => Kind::BadSize(rest.to_string()),
            _ => Kind::BadDuration(rest.to_string()),
        }
    } else if let Some(rest) = msg.strip_prefix("unknown field `") {
        let (key, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let expected = expected.trim_start_matches(", ").to_string();
        let known: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        let guess = known
            .iter()
            .map(|k| (edit_distance(key, k), *k))
            .filter(|(d, _)| *d <= 2)
            .min();
        Kind::UnknownKey {
            key: key.to_string(),
            expected: match (guess, expected.is_empty()) {
                (Some((_, k)), _) => format!("did you mean `{k}`? {expected}"),
                (None, true) => "this table takes no keys".to_string(),
                (None, false) => expected,
            },
        }
    } else if let Some(rest) = msg.strip_prefix("missing field `") {
        Kind::MissingKey(rest.trim_end_matches('`').to_string())
    } else if msg.starts_with("invalid type") {
        Kind::WrongType(msg)
    } else {
        Kind::BadValue(msg)
    };
    Diagnostic::new(kind, source, span)
}

// ------------------------------------------------------------- raw format

type Named<T> = IndexMap<Spanned<String>, Spanned<T>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    system: Spanned<RawSystem>,
    #[serde(default)]
    pd: Named<RawPd>,
    #[serde(default)]
    region: Named<RawRegion>,
    #[serde(default)]
    channel: Vec<Spanned<RawChannel>>,
    #[serde(default)]
    forward: Vec<Spanned<RawForward>>,
    #[serde(default)]
    virtio: Vec<Spanned<RawVirtio>>,
    #[serde(default)]
    domain: Named<RawDomain>,
    domain_schedule: Option<Spanned<RawSchedule>>,
    #[serde(default)]
    io_space: Named<RawIoSpace>,
    #[serde(default)]
    blk: Named<RawBlk>,
    serial: Option<Spanned<RawSerial>>,
    timer: Option<Spanned<RawTimer>>,
    net: Option<Spanned<RawNet>>,
    #[serde(default)]
    cell: Named<RawCell>,
    stats: Option<Spanned<RawStats>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNet {
    device: Option<Spanned<String>>,
    mac: Option<Spanned<String>>,
    address: Option<Spanned<String>>,
    gateway: Option<Spanned<String>>,
    #[serde(default)]
    cells: Vec<Spanned<RawNetCell>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStats {
    console: Spanned<String>,
    http: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetCell {
    pd: Spanned<String>,
    #[serde(default)]
    listen: Vec<Spanned<String>>,
    #[serde(default)]
    connect: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCell {
    program: Option<Spanned<String>>,
    linux: Option<Spanned<RawLinux>>,
    band: Option<Spanned<String>>,
    priority: Option<Spanned<i64>>,
    budget: Option<Spanned<DurationValue>>,
    period: Option<Spanned<DurationValue>>,
    memory: Option<Spanned<SizeValue>>,
    stack: Option<Spanned<SizeValue>>,
    heap: Option<Spanned<SizeValue>>,
    restart: Option<Spanned<RawRestart>>,
    #[serde(default)]
    services: Vec<Spanned<RawService>>,
}

/// One of a cell's services: `kind`, and the keys of that kind (the
/// expansion refuses keys of another kind).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    kind: Spanned<String>,
    prefix: Option<Spanned<String>>,
    colour: Option<Spanned<String>>,
    pd: Option<Spanned<String>>,
    id: Option<Spanned<i64>>,
    pp: Option<Spanned<bool>>,
    notify: Option<Spanned<bool>>,
    listen: Option<Spanned<Vec<Spanned<String>>>>,
    connect: Option<Spanned<Vec<Spanned<String>>>>,
    namespace: Option<Spanned<String>>,
    quota: Option<Spanned<SizeValue>>,
    input: Option<Spanned<bool>>,
    virtio: Option<Spanned<bool>>,
    address: Option<Spanned<String>>,
    forward: Option<Spanned<Vec<Spanned<RawCellForward>>>>,
    device: Option<Spanned<String>>,
    partition: Option<Spanned<String>>,
}

/// A Linux cell's guest (`linux = { ... }`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLinux {
    ram: Spanned<SizeValue>,
    kernel: Option<Spanned<String>>,
    initrd: Option<Spanned<String>>,
    bootargs: Option<Spanned<String>>,
    sealed: Option<Spanned<bool>>,
    vmm: Option<Spanned<String>>,
}

/// A forward to a Linux cell's guest: a `[[forward]]` whose address is
/// the guest's.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCellForward {
    host: Spanned<u16>,
    guest: Spanned<u16>,
    proto: Option<Proto2>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimer {
    clients: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSerial {
    clients: Vec<Spanned<RawSerialClient>>,
    #[serde(default)]
    input: Vec<Spanned<String>>,
    #[serde(default)]
    colour: bool,
    device: Option<Spanned<String>>,
    capacity: Option<Spanned<SizeValue>>,
}

/// A serial client: a PD's name, or a table naming it with its options.
enum RawSerialClient {
    Name(String),
    Table(RawSerialClientTable),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSerialClientTable {
    pd: Spanned<String>,
    prefix: Option<Spanned<String>>,
    colour: Option<Spanned<String>>,
}

impl<'de> Deserialize<'de> for RawSerialClient {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawSerialClient;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a PD's name, or a table `{ pd, prefix, colour }`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawSerialClient, E> {
                Ok(RawSerialClient::Name(v.to_string()))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, m: A) -> Result<RawSerialClient, A::Error> {
                RawSerialClientTable::deserialize(de::value::MapAccessDeserializer::new(m))
                    .map(RawSerialClient::Table)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSystem {
    board: Spanned<String>,
    /// The kernel configuration: release, debug or benchmark.
    config: Option<Spanned<String>>,
    /// Whether a Septa kernel with printing reports failed invocations.
    user_errors: Option<Spanned<bool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPd {
    program: Spanned<String>,
    symbols: Option<Spanned<String>>,
    priority: Option<Spanned<i64>>,
    budget: Option<Spanned<DurationValue>>,
    period: Option<Spanned<DurationValue>>,
    #[serde(default)]
    passive: bool,
    stack: Option<Spanned<SizeValue>>,
    cpu: Option<Spanned<i64>>,
    smc: Option<Spanned<bool>>,
    #[serde(default = "yes")]
    fpu: bool,
    domain: Option<Spanned<String>>,
    restart: Option<Spanned<RawRestart>>,
    #[serde(default)]
    maps: Vec<Spanned<RawMap>>,
    #[serde(default)]
    irqs: Vec<Spanned<RawIrq>>,
    #[serde(default)]
    setvars: Vec<Spanned<RawSetVar>>,
    #[serde(default)]
    ioports: Vec<Spanned<RawIoPort>>,
    #[serde(default)]
    caps: Vec<Spanned<RawCap>>,
    id: Option<Spanned<i64>>,
    setvar_id: Option<Spanned<String>>,
    #[serde(default)]
    children: Named<RawPd>,
    #[serde(default)]
    vm: Named<RawVm>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRestart {
    policy: Option<Spanned<RawPolicy>>,
    limit: Option<Spanned<u32>>,
    backoff: Option<Spanned<DurationValue>>,
    memory: Option<Spanned<Memory2>>,
    generation: Option<Spanned<String>>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum RawPolicy {
    Restart,
    Stop,
    Halt,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum Memory2 {
    Reload,
    Keep,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMap {
    region: Spanned<String>,
    vaddr: Spanned<u64>,
    perms: Option<Spanned<String>>,
    cached: Option<bool>,
    setvar_vaddr: Option<Spanned<String>>,
    setvar_size: Option<Spanned<String>>,
    setvar_prefill_size: Option<Spanned<String>>,
    setvar_device: Option<Spanned<String>>,
    setvar_device_size: Option<Spanned<String>>,
}

/// VM maps: as PD maps, but a VM has no image in which to set variables.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVmMap {
    region: Spanned<String>,
    vaddr: Spanned<u64>,
    perms: Option<Spanned<String>>,
    cached: Option<bool>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum Trigger2 {
    Level,
    Edge,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum Polarity2 {
    High,
    Low,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIrq {
    id: Spanned<i64>,
    irq: Option<Spanned<i64>>,
    device: Option<Spanned<String>>,
    trigger: Option<Trigger2>,
    setvar_id: Option<Spanned<String>>,
    // x86-64 only
    pin: Option<Spanned<i64>>,
    ioapic: Option<Spanned<i64>>,
    vector: Option<Spanned<i64>>,
    polarity: Option<Polarity2>,
    pcidev: Option<Spanned<String>>,
    handle: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSetVar {
    symbol: Spanned<String>,
    region: Option<Spanned<String>>,
    region_size: Option<Spanned<String>>,
    value: Option<Spanned<u64>>,
    text: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIoPort {
    id: Spanned<i64>,
    addr: Spanned<u64>,
    size: Spanned<i64>,
    setvar_id: Option<Spanned<String>>,
    setvar_addr: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCap {
    slot: Spanned<i64>,
    cap: Spanned<String>,
    pd: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVm {
    priority: Option<Spanned<i64>>,
    budget: Option<Spanned<DurationValue>>,
    period: Option<Spanned<DurationValue>>,
    #[serde(default)]
    vcpus: Vec<Spanned<RawVcpu>>,
    #[serde(default)]
    maps: Vec<Spanned<RawVmMap>>,
    kernel: Option<Spanned<String>>,
    initrd: Option<Spanned<String>>,
    bootargs: Option<Spanned<String>>,
    #[serde(default)]
    devices: Vec<Spanned<RawGuestDevice>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGuestDevice {
    name: Spanned<String>,
    kind: Spanned<String>,
    slot: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVcpu {
    id: Spanned<i64>,
    cpu: Option<Spanned<i64>>,
    setvar_id: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegion {
    size: Option<Spanned<SizeValue>>,
    page_size: Option<Spanned<SizeValue>>,
    phys: Option<Spanned<u64>>,
    device: Option<Spanned<String>>,
    prefill: Option<Spanned<String>>,
    prefill_bootinfo: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChannel {
    a: Spanned<RawEnd>,
    b: Spanned<RawEnd>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnd {
    pd: Spanned<String>,
    id: Spanned<i64>,
    #[serde(default)]
    pp: bool,
    #[serde(default = "yes")]
    notify: bool,
    setvar_id: Option<Spanned<String>>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum Proto2 {
    Tcp,
    Udp,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawForward {
    host: Spanned<u16>,
    guest: Spanned<u16>,
    proto: Option<Proto2>,
    device: Option<Spanned<String>>,
    address: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVirtio {
    name: Spanned<String>,
    kind: Spanned<String>,
    slot: Option<Spanned<i64>>,
    file: Option<Spanned<String>>,
    size: Option<Spanned<SizeValue>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBlk {
    table: Option<Spanned<String>>,
    #[serde(default)]
    partitions: Vec<Spanned<RawPartition>>,
    driver_priority: Option<Spanned<i64>>,
    virt_priority: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPartition {
    name: Spanned<String>,
    size: Spanned<SizeValue>,
    client: Option<Spanned<String>>,
    queue: Option<Spanned<i64>>,
    data: Option<Spanned<SizeValue>>,
    vaddr: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDomain {
    id: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    start_index: Option<Spanned<u64>>,
    index_shift: Option<Spanned<u64>>,
    entries: Vec<Spanned<RawEntry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    domain: Option<Spanned<String>>,
    duration: Option<Spanned<String>>,
    #[serde(default)]
    end: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIoSpace {
    peripheral: Spanned<String>,
    domain_id: Option<u64>,
    #[serde(default)]
    maps: Vec<Spanned<RawIoMap>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIoMap {
    region: Spanned<String>,
    iovaddr: Spanned<u64>,
    perms: Option<Spanned<String>>,
}

// ---------------------------------------------------------------- lowering

/// Where a value was written, for a diagnostic about it.
fn span_of<T>(s: &Spanned<T>) -> Option<Span> {
    Some(Span::from(s.span()))
}

/// Parses a TOML system description. Returns the model (if the text could be
/// shaped into one) and every diagnostic found on the way.
pub(crate) fn parse(source: &Arc<Source>, base_dir: &Path) -> (Option<System>, Vec<Diagnostic>) {
    // A first pass as a plain table tells syntax errors from schema errors.
    if let Err(e) = source.text.parse::<toml::Table>() {
        let span = e.span().map(Span::from);
        return (
            None,
            vec![Diagnostic::new(
                Kind::TomlSyntax(one_line(e.message())),
                source,
                span,
            )],
        );
    }
    let raw: RawFile = match toml::from_str(&source.text) {
        Ok(r) => r,
        Err(e) => return (None, vec![toml_error(&e, source)]),
    };
    let mut sink = Sink::new(source);
    let system = lower(raw, &mut sink, base_dir);
    (system, sink.out)
}

fn lower(raw: RawFile, sink: &mut Sink, base_dir: &Path) -> Option<System> {
    let board_name = raw.system.get_ref().board.clone();
    let board = crate::find_board(sink, board_name.get_ref(), span_of(&board_name), base_dir)?;
    let config = raw.system.get_ref().config.as_ref().and_then(|c| {
        let found = Config::from_name(c.get_ref());
        if found.is_none() {
            sink.emit(Kind::UnknownConfig(c.get_ref().clone()), span_of(c));
        }
        found
    });

    // Virtio devices first: regions and IRQs may name them.
    let wanted = raw
        .virtio
        .into_iter()
        .map(|v| {
            let whole = Span::from(v.span());
            let v = v.into_inner();
            crate::virtio::Wanted {
                name_span: span_of(&v.name),
                kind_span: span_of(&v.kind),
                slot: v.slot.as_ref().map(|s| (*s.get_ref(), span_of(s))),
                file: v.file.as_ref().map(|f| (f.get_ref().clone(), span_of(f))),
                size: v.size.as_ref().map(|s| (s.get_ref().0, span_of(s))),
                name: v.name.into_inner(),
                kind: v.kind.into_inner(),
                whole,
            }
        })
        .collect();
    let virtio = crate::virtio::assign(sink, &board, base_dir, wanted);
    let devices = Devices {
        board: &board,
        virtio: &virtio,
        base_dir,
    };

    let mut pds = Vec::new();
    for (name, pd) in raw.pd {
        lower_pd(sink, &devices, &mut pds, name, pd, None);
    }

    let regions: Vec<Region> = raw
        .region
        .into_iter()
        .map(|(name, r)| lower_region(sink, &devices, name, r, base_dir))
        .collect();

    let mut channels = Vec::new();
    for ch in raw.channel {
        let src = Src::new(Span::from(ch.span()));
        let ch = ch.into_inner();
        let a = lower_end(sink, &pds, ch.a);
        let b = lower_end(sink, &pds, ch.b);
        if let (Some(a), Some(b)) = (a, b) {
            channels.push(Channel { a, b, src });
        }
    }

    let forwards = raw
        .forward
        .into_iter()
        .map(|f| {
            let src = Src::new(Span::from(f.span()));
            let f = f.into_inner();
            let src = src
                .with("host", span_of(&f.host))
                .with("guest", span_of(&f.guest))
                .with("device", f.device.as_ref().and_then(span_of));
            let address = f.address.as_ref().and_then(|a| {
                let parsed = septa_net_protocol::parse_ipv4(a.get_ref());
                if parsed.is_none() {
                    sink.emit(Kind::ForwardAddress(a.get_ref().clone()), span_of(a));
                }
                parsed
            });
            Forward {
                address,
                host: *f.host.get_ref(),
                guest: *f.guest.get_ref(),
                proto: match f.proto {
                    Some(Proto2::Udp) => Proto::Udp,
                    _ => Proto::Tcp,
                },
                device: f.device.map(|d| d.into_inner()),
                src,
            }
        })
        .collect();

    // Block subsystems after the Linux cells (below): a cell's disk makes
    // it a partition's client.
    let mut wanted_blk: Vec<crate::blk::Wanted> = raw.blk.into_iter().map(lower_blk).collect();
    let domains = if raw.domain.is_empty() && raw.domain_schedule.is_none() {
        None
    } else {
        Some(lower_domains(sink, raw.domain, raw.domain_schedule))
    };

    let io_spaces = raw
        .io_space
        .into_iter()
        .map(|(name, s)| {
            let src = Src::new(Span::from(s.span())).with("name", span_of(&name));
            let s = s.into_inner();
            IoSpace {
                name: name.into_inner(),
                peripheral: s.peripheral.get_ref().clone(),
                domain_id: s.domain_id,
                maps: s
                    .maps
                    .into_iter()
                    .map(|m| {
                        let src = Src::new(Span::from(m.span()));
                        let m = m.into_inner();
                        let perms = m
                            .perms
                            .as_ref()
                            .map(|p| check::perms(sink, p.get_ref(), span_of(p)))
                            .unwrap_or(Perms::READ_WRITE);
                        IoMap {
                            src: src
                                .with("region", span_of(&m.region))
                                .with("iovaddr", span_of(&m.iovaddr)),
                            region: m.region.into_inner(),
                            iovaddr: m.iovaddr.into_inner(),
                            perms,
                        }
                    })
                    .collect(),
                src: src.with("peripheral", span_of(&s.peripheral)),
            }
        })
        .collect();

    let mut system = System {
        board,
        config,
        user_errors: raw
            .system
            .get_ref()
            .user_errors
            .as_ref()
            .map(|b| *b.get_ref()),
        pds,
        regions,
        channels,
        forwards,
        virtio,
        domains,
        io_spaces,
        blk: Vec::new(),
        serial: None,
        timer: None,
        net: None,
        cells: Vec::new(),
        stats: None,
    };
    // Cells first: they may add clients to the serial, timer and network
    // subsystems (the serial and timer ones are created for them if the
    // description has none). Linux cells before the block subsystems,
    // whose partitions they may take, and before the other cells.
    let mut cells = Vec::new();
    let mut linux = Vec::new();
    for (name, c) in raw.cell {
        match lower_cell(sink, name, c) {
            Some(LoweredCell::Program(c)) => cells.push(c),
            Some(LoweredCell::Linux(c)) => linux.push(c),
            None => {}
        }
    }
    let names: Vec<String> = cells
        .iter()
        .map(|c: &crate::cells::Wanted| c.name.clone())
        .chain(linux.iter().map(|c| c.name.clone()))
        .collect();
    let linux_clients =
        crate::linux::expand(&mut system, linux, &names, &mut wanted_blk, base_dir, sink);
    system.blk = crate::blk::expand(
        sink,
        wanted_blk,
        &mut crate::blk::Parts {
            board: &system.board,
            virtio: &system.virtio,
            pds: &mut system.pds,
            regions: &mut system.regions,
            channels: &mut system.channels,
        },
    );
    let mut clients = crate::cells::expand(&mut system, cells, sink);
    clients.serial.extend(linux_clients.serial);
    clients.timer.extend(linux_clients.timer);
    let mut linux_input = linux_clients.input;
    if let Some(stats) = raw.stats {
        let whole = Span::from(stats.span());
        let stats = stats.into_inner();
        let console = stats.console;
        let wanted = crate::stats::Wanted {
            console: (console.get_ref().clone(), span_of(&console)),
            http: stats
                .http
                .as_ref()
                .map(|h| (h.get_ref().clone(), span_of(h))),
            whole,
        };
        if let Some(client) = crate::stats::expand(&mut system, wanted, sink) {
            clients.timer.push(client);
        }
    }
    let first_cell = system.cells.first().and_then(|c| c.src.whole());
    // The network stack is a timer client: `[net]` comes before `[timer]`,
    // and adds the stack to it (or makes one for it).
    let mut timer_wanted = raw.timer.map(|timer| {
        let whole = Span::from(timer.span());
        let clients = timer
            .into_inner()
            .clients
            .into_iter()
            .map(|c| {
                let span = span_of(&c);
                (c.into_inner(), span)
            })
            .collect();
        crate::timer::Wanted { clients, whole }
    });
    if raw.net.is_none() {
        crate::net::check_no_net(&system, sink);
    }
    if let Some(net) = raw.net {
        let whole = Span::from(net.span());
        let mut wanted = lower_net(net);
        wanted.cells.append(&mut clients.net);
        if let Some(stack) = crate::net::expand(&mut system, wanted, sink) {
            let name = system.pds[stack].name.clone();
            match &mut timer_wanted {
                Some(t) => t.clients.insert(0, (name, Some(whole))),
                None => {
                    timer_wanted = Some(crate::timer::Wanted {
                        clients: vec![(name, Some(whole))],
                        whole,
                    })
                }
            }
        }
    }
    // A cell's network service needs the subsystem: its device and
    // address are the description's to give.
    for c in clients.net.drain(..) {
        sink.emit(
            Kind::CellServiceUnavailable {
                cell: c.pd,
                what: "network service",
                subsystem: "network subsystem ([net])",
            },
            c.span,
        );
    }
    // After `[net]`, so that its PDs (`net_stack`, ...) may be serial
    // clients.
    let serial = match raw.serial {
        Some(s) => {
            let mut w = lower_serial(s);
            w.clients.append(&mut clients.serial);
            w.input.append(&mut linux_input);
            Some(w)
        }
        None => (!clients.serial.is_empty()).then(|| crate::serial::Wanted {
            clients: std::mem::take(&mut clients.serial),
            input: std::mem::take(&mut linux_input),
            colour: false,
            device: None,
            capacity: None,
            whole: first_cell.unwrap_or(Span { start: 0, end: 0 }),
        }),
    };
    if let Some(w) = serial {
        crate::serial::expand(&mut system, w, sink);
    }
    match &mut timer_wanted {
        Some(t) => t.clients.append(&mut clients.timer),
        None if !clients.timer.is_empty() => {
            let whole = clients.timer[0].1.unwrap_or(Span { start: 0, end: 0 });
            timer_wanted = Some(crate::timer::Wanted {
                clients: std::mem::take(&mut clients.timer),
                whole,
            });
        }
        None => {}
    }
    if let Some(t) = timer_wanted {
        crate::timer::expand(&mut system, t, sink);
    }
    crate::net::finish(&mut system);
    crate::stats::counters(&mut system, sink);
    Some(system)
}

fn lower_net(raw: Spanned<RawNet>) -> crate::net::Wanted {
    let whole = Span::from(raw.span());
    let r = raw.into_inner();
    let text = |v: Option<Spanned<String>>| {
        v.map(|v| {
            let span = span_of(&v);
            (v.into_inner(), span)
        })
    };
    let list = |v: Vec<Spanned<String>>| -> Vec<(String, Option<Span>)> {
        v.into_iter()
            .map(|s| {
                let span = span_of(&s);
                (s.into_inner(), span)
            })
            .collect()
    };
    crate::net::Wanted {
        device: text(r.device),
        mac: text(r.mac),
        address: text(r.address),
        gateway: text(r.gateway),
        cells: r
            .cells
            .into_iter()
            .map(|c| {
                let span = Some(Span::from(c.span()));
                let c = c.into_inner();
                crate::net::WantedCell {
                    pd: c.pd.into_inner(),
                    span,
                    listen: list(c.listen),
                    connect: list(c.connect),
                }
            })
            .collect(),
        whole,
    }
}

/// A `[cell.NAME]` as lowered: a cell that runs a program, or a Linux
/// cell.
enum LoweredCell {
    Program(crate::cells::Wanted),
    Linux(crate::linux::Wanted),
}

/// `[cell.NAME]`: single values checked here, the rest by the expansion
/// (`None`: a cell without the keys it must have, reported).
fn lower_cell(sink: &mut Sink, name: Spanned<String>, c: Spanned<RawCell>) -> Option<LoweredCell> {
    let mut src = Src::new(Span::from(c.span()));
    src.set("name", Span::from(name.span()));
    let name_span = span_of(&name);
    let name = name.into_inner();
    let c = c.into_inner();
    check::name_length(sink, &name, name_span);
    let budget_span = c
        .budget
        .as_ref()
        .and_then(span_of)
        .or(c.period.as_ref().and_then(span_of));
    let (budget_us, period_us) = check::budget_period(
        sink,
        c.budget.as_ref().map(|b| b.get_ref().0),
        c.period.as_ref().map(|b| b.get_ref().0),
        budget_span.or(name_span),
    );
    if let Some(m) = &c.memory {
        src.set("memory", Span::from(m.span()));
    }
    let restart = match &c.restart {
        Some(r) => {
            src.set("restart", Span::from(r.span()));
            lower_restart(sink, r.get_ref())
        }
        None => Restart::default(),
    };
    if restart.generation.is_some() {
        sink.emit(
            Kind::RestartOption {
                key: "generation".into(),
            },
            c.restart.as_ref().and_then(span_of),
        );
    }
    let text = |s: &Spanned<String>| (s.get_ref().clone(), span_of(s));
    let rules = |l: &Spanned<Vec<Spanned<String>>>| {
        (l.get_ref().iter().map(text).collect::<Vec<_>>(), span_of(l))
    };
    let services = c
        .services
        .iter()
        .map(|s| {
            let whole = Span::from(s.span());
            let v = s.get_ref();
            crate::cells::WantedService {
                kind: text(&v.kind),
                prefix: v.prefix.as_ref().map(text),
                colour: v.colour.as_ref().map(text),
                pd: v.pd.as_ref().map(text),
                id: v.id.as_ref().map(|i| (*i.get_ref(), span_of(i))),
                pp: v.pp.as_ref().map(|b| (*b.get_ref(), span_of(b))),
                notify: v.notify.as_ref().map(|b| (*b.get_ref(), span_of(b))),
                listen: v.listen.as_ref().map(rules),
                connect: v.connect.as_ref().map(rules),
                namespace: v.namespace.as_ref().map(text),
                quota: v.quota.as_ref().map(|q| (q.get_ref().0, span_of(q))),
                input: v.input.as_ref().map(|b| (*b.get_ref(), span_of(b))),
                virtio: v.virtio.as_ref().map(|b| (*b.get_ref(), span_of(b))),
                address: v.address.as_ref().map(text),
                forward: v.forward.as_ref().map(|f| {
                    let list = f
                        .get_ref()
                        .iter()
                        .map(|w| {
                            let fw = w.get_ref();
                            crate::linux::WantedForward {
                                host: *fw.host.get_ref(),
                                guest: *fw.guest.get_ref(),
                                proto: match fw.proto {
                                    Some(Proto2::Udp) => Proto::Udp,
                                    _ => Proto::Tcp,
                                },
                                src: Src::new(Span::from(w.span()))
                                    .with("host", span_of(&fw.host))
                                    .with("guest", span_of(&fw.guest)),
                            }
                        })
                        .collect();
                    (list, span_of(f))
                }),
                device: v.device.as_ref().map(text),
                partition: v.partition.as_ref().map(text),
                whole,
            }
        })
        .collect();
    let band = c.band.as_ref().map(text);
    let priority = c.priority.as_ref().map(|p| (*p.get_ref(), span_of(p)));
    let stack = c.stack.as_ref().map(|s| (s.get_ref().0, span_of(s)));
    if let Some(l) = c.linux {
        let lspan = span_of(&l);
        let l = l.into_inner();
        let refused = [
            ("program", c.program.as_ref().and_then(span_of)),
            ("memory", c.memory.as_ref().and_then(span_of)),
            ("heap", c.heap.as_ref().and_then(span_of)),
        ]
        .into_iter()
        .filter(|(_, span)| span.is_some())
        .collect();
        return Some(LoweredCell::Linux(crate::linux::Wanted {
            name,
            name_span,
            linux: Box::new(crate::linux::WantedLinux {
                ram: (l.ram.get_ref().0, span_of(&l.ram)),
                kernel: l.kernel.as_ref().map(text),
                initrd: l.initrd.as_ref().map(text),
                bootargs: l.bootargs.as_ref().map(text),
                sealed: l.sealed.as_ref().map(|b| (*b.get_ref(), span_of(b))),
                vmm: l.vmm.as_ref().map(text),
                span: lspan,
            }),
            band,
            priority,
            budget_us,
            period_us,
            stack,
            restart,
            services,
            refused,
            src,
        }));
    }
    let missing = |sink: &mut Sink, key, help| {
        sink.emit(
            Kind::CellMissingKey {
                cell: name.clone(),
                key,
                help,
            },
            name_span,
        )
    };
    let Some(program) = &c.program else {
        missing(
            sink,
            "program",
            "a cell runs a program (`program = \"CRATE\"`) or a Linux guest (`linux = { ram = \"128 MiB\" }`)",
        );
        return None;
    };
    let Some(memory) = &c.memory else {
        missing(
            sink,
            "memory",
            "a cell that runs a program declares its memory quota: `memory = \"256 KiB\"`",
        );
        return None;
    };
    let program = check::program(sink, program.get_ref(), span_of(program), false);
    src.set(
        "program",
        Span::from(c.program.as_ref().map_or(0..0, |p| p.span())),
    );
    Some(LoweredCell::Program(crate::cells::Wanted {
        name,
        name_span,
        program,
        band,
        priority,
        budget_us,
        period_us,
        memory: (memory.get_ref().0, span_of(memory)),
        stack: stack.unwrap_or((check::DEFAULT_STACK, None)),
        heap: c.heap.as_ref().map(|h| (h.get_ref().0, span_of(h))),
        restart,
        services,
        src,
    }))
}

fn lower_serial(raw: Spanned<RawSerial>) -> crate::serial::Wanted {
    let whole = Span::from(raw.span());
    let r = raw.into_inner();
    let text = |s: Spanned<String>| {
        let span = span_of(&s);
        (s.into_inner(), span)
    };
    crate::serial::Wanted {
        clients: r
            .clients
            .into_iter()
            .map(|c| {
                let span = span_of(&c);
                match c.into_inner() {
                    RawSerialClient::Name(pd) => crate::serial::WantedClient {
                        pd,
                        span,
                        prefix: None,
                        colour: None,
                    },
                    RawSerialClient::Table(t) => crate::serial::WantedClient {
                        span: span_of(&t.pd),
                        pd: t.pd.into_inner(),
                        prefix: t.prefix.map(text),
                        colour: t.colour.map(text),
                    },
                }
            })
            .collect(),
        input: r.input.into_iter().map(text).collect(),
        colour: r.colour,
        device: r.device.map(text),
        capacity: r.capacity.map(|c| (c.get_ref().0, span_of(&c))),
        whole,
    }
}

/// A `[blk.DEVICE]` section, as read.
fn lower_blk((device, b): (Spanned<String>, Spanned<RawBlk>)) -> crate::blk::Wanted {
    let whole = Span::from(b.span());
    let b = b.into_inner();
    let num = |v: &Option<Spanned<i64>>| v.as_ref().map(|x| (*x.get_ref(), span_of(x)));
    crate::blk::Wanted {
        device: (device.get_ref().clone(), span_of(&device)),
        table: b.table.as_ref().map(|t| (t.get_ref().clone(), span_of(t))),
        driver_priority: num(&b.driver_priority),
        virt_priority: num(&b.virt_priority),
        partitions: b
            .partitions
            .iter()
            .map(|p| {
                let v = p.get_ref();
                crate::blk::WantedPartition {
                    name: (v.name.get_ref().clone(), span_of(&v.name)),
                    size: (v.size.get_ref().0, span_of(&v.size)),
                    client: v.client.as_ref().map(|c| (c.get_ref().clone(), span_of(c))),
                    queue: num(&v.queue),
                    data: v.data.as_ref().map(|d| (d.get_ref().0, span_of(d))),
                    vaddr: v.vaddr.as_ref().map(|a| (*a.get_ref(), span_of(a))),
                    whole: Span::from(p.span()),
                }
            })
            .collect(),
        whole,
    }
}

/// The devices regions and IRQs may name: the board's and the system's
/// virtio devices.
struct Devices<'a> {
    board: &'a Board,
    virtio: &'a [Virtio],
    /// The description's folder, which relative file names start from.
    base_dir: &'a Path,
}

impl Devices<'_> {
    fn get(&self, name: &str) -> Option<&crate::board::Device> {
        crate::virtio::resolve(self.board, self.virtio, name)
    }
}

/// Lowers PD `name` (a child of `parent`, if given) into `pds`, then its
/// children after it.
fn lower_pd(
    sink: &mut Sink,
    devices: &Devices,
    pds: &mut Vec<Pd>,
    name: Spanned<String>,
    pd: Spanned<RawPd>,
    parent: Option<usize>,
) {
    let mut src = Src::new(Span::from(pd.span()));
    src.set("name", Span::from(name.span()));
    let name_span = span_of(&name);
    let name = name.into_inner();
    let mut pd = pd.into_inner();
    let board = devices.board;
    check::name_length(sink, &name, name_span);

    let program = check::program(sink, pd.program.get_ref(), span_of(&pd.program), false);
    src.set("program", Span::from(pd.program.span()));
    let sched = lower_sched(sink, board, &pd, name_span, &mut src);
    let restart = match &pd.restart {
        Some(r) => {
            src.set("restart", Span::from(r.span()));
            if let Some(g) = &r.get_ref().generation {
                src.set("restart.generation", Span::from(g.span()));
            }
            lower_restart(sink, r.get_ref())
        }
        None => Restart::default(),
    };
    let maps = pd.maps.iter().map(|m| lower_pd_map(sink, m)).collect();
    let irqs = pd
        .irqs
        .iter()
        .map(|i| lower_irq(sink, devices, i))
        .collect();
    let setvars = pd.setvars.iter().map(|s| lower_setvar(sink, s)).collect();
    let ioports = pd.ioports.iter().map(|p| lower_ioport(sink, p)).collect();
    let caps = pd.caps.iter().filter_map(|c| lower_cap(sink, c)).collect();
    let mut vms = std::mem::take(&mut pd.vm).into_iter();
    let vm = vms
        .next()
        .map(|(vname, v)| lower_vm(sink, board, devices.base_dir, vname, v));
    if let Some((extra, _)) = vms.next() {
        sink.emit(Kind::MoreThanOneVm(name.clone()), span_of(&extra));
    }
    let (child_id, setvar_id) = lower_child_keys(sink, &pd, parent, &name, name_span, &mut src);

    let index = pds.len();
    pds.push(Pd {
        name,
        parent,
        child_id,
        setvar_id,
        program,
        symbols: pd.symbols.as_ref().map(|s| s.get_ref().into()),
        priority: sched.priority,
        budget_us: sched.budget_us,
        period_us: sched.period_us,
        passive: pd.passive,
        stack_size: sched.stack_size,
        cpu: sched.cpu,
        smc: pd.smc.map(|s| s.into_inner()).unwrap_or(false),
        fpu: pd.fpu,
        domain: pd.domain.map(|d| d.into_inner()),
        restart,
        maps,
        irqs,
        setvars,
        ioports,
        caps,
        vm,
        consts: Vec::new(),
        subsystem: None,
        src,
    });
    for (cname, child) in pd.children {
        lower_pd(sink, devices, pds, cname, child, Some(index));
    }
}

/// How a PD is scheduled and where it runs.
struct Sched {
    priority: u8,
    budget_us: u64,
    period_us: u64,
    stack_size: u64,
    cpu: u8,
}

/// A PD's priority, budget and period, stack and CPU, checked, with the
/// spans of those keys (and of `smc` and `domain`) recorded in `src`.
fn lower_sched(
    sink: &mut Sink,
    board: &Board,
    pd: &RawPd,
    name_span: Option<Span>,
    src: &mut Src,
) -> Sched {
    let priority = match &pd.priority {
        Some(p) => {
            src.set("priority", Span::from(p.span()));
            check::priority(sink, *p.get_ref(), span_of(p))
        }
        None => 0,
    };
    let budget_span = pd
        .budget
        .as_ref()
        .and_then(span_of)
        .or(pd.period.as_ref().and_then(span_of));
    let (budget_us, period_us) = check::budget_period(
        sink,
        pd.budget.as_ref().map(|b| b.get_ref().0),
        pd.period.as_ref().map(|b| b.get_ref().0),
        budget_span.or(name_span),
    );
    let stack_size = match &pd.stack {
        Some(s) => {
            check::stack(sink, s.get_ref().0, span_of(s));
            s.get_ref().0
        }
        None => check::DEFAULT_STACK,
    };
    if let Some(s) = &pd.stack {
        src.set("stack", Span::from(s.span()));
    }
    let cpu = match &pd.cpu {
        Some(c) => {
            src.set("cpu", Span::from(c.span()));
            check::cpu(sink, board, *c.get_ref(), span_of(c))
        }
        None => 0,
    };
    if let Some(s) = &pd.smc {
        src.set("smc", Span::from(s.span()));
    }
    if let Some(d) = &pd.domain {
        src.set("domain", Span::from(d.span()));
    }
    Sched {
        priority,
        budget_us,
        period_us,
        stack_size,
        cpu,
    }
}

/// One of a PD's maps, with its `setvar_*` symbols.
fn lower_pd_map(sink: &mut Sink, m: &Spanned<RawMap>) -> Map {
    let mm = m.get_ref();
    let mut map = lower_map(
        sink,
        Span::from(m.span()),
        &mm.region,
        &mm.vaddr,
        mm.perms.as_ref(),
        mm.cached,
    );
    for (key, v, slot) in [
        ("setvar_vaddr", &mm.setvar_vaddr, &mut map.setvar_vaddr),
        ("setvar_size", &mm.setvar_size, &mut map.setvar_size),
        (
            "setvar_prefill_size",
            &mm.setvar_prefill_size,
            &mut map.setvar_prefill_size,
        ),
        ("setvar_device", &mm.setvar_device, &mut map.setvar_device),
        (
            "setvar_device_size",
            &mm.setvar_device_size,
            &mut map.setvar_device_size,
        ),
    ] {
        if let Some(v) = v {
            *slot = Some(check::symbol(sink, v.get_ref(), span_of(v)));
            map.src.set(key, Span::from(v.span()));
        }
    }
    map
}

/// A `setvars` entry: a symbol set to a region's physical address
/// (`region`, Microkit's), or (Septa's) to a region's size, a number or a
/// text; exactly one of the four.
fn lower_setvar(sink: &mut Sink, s: &Spanned<RawSetVar>) -> SetVar {
    let v = s.get_ref();
    let mut src = Src::new(Span::from(s.span())).with("symbol", span_of(&v.symbol));
    let mut given = Vec::new();
    if let Some(r) = &v.region {
        src.set("region", Span::from(r.span()));
        given.push(SetValue::Paddr(r.get_ref().clone()));
    }
    if let Some(r) = &v.region_size {
        src.set("region", Span::from(r.span()));
        given.push(SetValue::Size(r.get_ref().clone()));
    }
    if let Some(n) = &v.value {
        src.set("value", Span::from(n.span()));
        given.push(SetValue::Number(*n.get_ref()));
    }
    if let Some(t) = &v.text {
        src.set("value", Span::from(t.span()));
        if t.get_ref().len() > SetValue::TEXT_MAX {
            sink.emit(
                Kind::SetvarTextLength {
                    len: t.get_ref().len(),
                    max: SetValue::TEXT_MAX,
                },
                span_of(t),
            );
        }
        given.push(SetValue::Text(t.get_ref().clone()));
    }
    if given.len() != 1 {
        sink.emit(Kind::SetvarValue(given.len()), src.whole());
    }
    SetVar {
        symbol: check::symbol(sink, v.symbol.get_ref(), span_of(&v.symbol)),
        value: given.into_iter().next().unwrap_or(SetValue::Number(0)),
        src,
    }
}

/// An x86 I/O port range (refused later on other boards).
fn lower_ioport(sink: &mut Sink, p: &Spanned<RawIoPort>) -> IoPort {
    let v = p.get_ref();
    let id = check::ioport_id(sink, *v.id.get_ref(), span_of(&v.id));
    if *v.size.get_ref() <= 0 {
        sink.emit(Kind::IoPortSize, span_of(&v.size));
    }
    IoPort {
        id,
        addr: *v.addr.get_ref(),
        size: (*v.size.get_ref()).max(0) as u64,
        setvar_id: v
            .setvar_id
            .as_ref()
            .map(|s| check::symbol(sink, s.get_ref(), span_of(s))),
        setvar_addr: v
            .setvar_addr
            .as_ref()
            .map(|s| check::symbol(sink, s.get_ref(), span_of(s))),
        src: Src::new(Span::from(p.span())).with("id", span_of(&v.id)),
    }
}

/// An extra capability for the PD's root CNode; `None` (reported) for an
/// unknown kind.
fn lower_cap(sink: &mut Sink, c: &Spanned<RawCap>) -> Option<CapMap> {
    let v = c.get_ref();
    let slot = check::cap_slot(sink, *v.slot.get_ref(), span_of(&v.slot));
    let kind = match v.cap.get_ref().as_str() {
        "tcb" => CapKind::Tcb,
        "sc" => CapKind::Sc,
        "vspace" => CapKind::Vspace,
        "notification" => CapKind::Notification,
        other => {
            sink.emit(Kind::CapKind(other.to_string()), span_of(&v.cap));
            return None;
        }
    };
    Some(CapMap {
        slot,
        kind,
        pd: v.pd.get_ref().clone(),
        src: Src::new(Span::from(c.span()))
            .with("slot", span_of(&v.slot))
            .with("pd", span_of(&v.pd)),
    })
}

/// The child-only keys `id` and `setvar_id`: required and allowed for a
/// child, refused on a PD at the root.
fn lower_child_keys(
    sink: &mut Sink,
    pd: &RawPd,
    parent: Option<usize>,
    name: &str,
    name_span: Option<Span>,
    src: &mut Src,
) -> (Option<u64>, Option<String>) {
    let child_id = match (&pd.id, parent) {
        (Some(id), Some(_)) => {
            src.set("id", Span::from(id.span()));
            Some(check::child_id(sink, *id.get_ref(), span_of(id)))
        }
        (None, Some(_)) => {
            sink.emit(Kind::ChildMissingId(name.to_string()), name_span);
            None
        }
        (Some(id), None) => {
            sink.emit(
                Kind::RootHasChildKey {
                    key: "id".to_string(),
                    pd: name.to_string(),
                },
                span_of(id),
            );
            None
        }
        (None, None) => None,
    };
    let setvar_id = match (&pd.setvar_id, parent) {
        (Some(s), Some(_)) => Some(check::symbol(sink, s.get_ref(), span_of(s))),
        (Some(s), None) => {
            sink.emit(
                Kind::RootHasChildKey {
                    key: "setvar_id".to_string(),
                    pd: name.to_string(),
                },
                span_of(s),
            );
            None
        }
        _ => None,
    };
    if let Some(s) = &pd.setvar_id {
        src.set("setvar_id", Span::from(s.span()));
    }
    (child_id, setvar_id)
}

fn lower_restart(sink: &mut Sink, r: &RawRestart) -> Restart {
    let policy = match r.policy.as_ref().map(|p| *p.get_ref()) {
        Some(RawPolicy::Restart) => Policy::Restart,
        Some(RawPolicy::Halt) => Policy::Halt,
        Some(RawPolicy::Stop) | None => Policy::Stop,
    };
    if policy != Policy::Restart {
        for (key, span) in [
            ("limit", r.limit.as_ref().and_then(span_of)),
            ("backoff", r.backoff.as_ref().and_then(span_of)),
            ("memory", r.memory.as_ref().and_then(span_of)),
            ("generation", r.generation.as_ref().and_then(span_of)),
        ] {
            if span.is_some() {
                sink.emit(
                    Kind::RestartOption {
                        key: key.to_string(),
                    },
                    span,
                );
            }
        }
    }
    if let Some(l) = &r.limit {
        if *l.get_ref() == 0 && policy == Policy::Restart {
            sink.emit(Kind::RestartZeroLimit, span_of(l));
        }
    }
    Restart {
        policy,
        limit: r.limit.as_ref().map(|l| *l.get_ref()),
        backoff_us: r.backoff.as_ref().map(|b| b.get_ref().0).unwrap_or(0),
        memory: match r.memory.as_ref().map(|m| *m.get_ref()) {
            Some(Memory2::Keep) => RestartMemory::Keep,
            _ => RestartMemory::Reload,
        },
        generation: r.generation.as_ref().map(|g| g.get_ref().clone()),
    }
}

fn lower_map(
    sink: &mut Sink,
    whole: Span,
    region: &Spanned<String>,
    vaddr: &Spanned<u64>,
    perms: Option<&Spanned<String>>,
    cached: Option<bool>,
) -> Map {
    let mut src = Src::new(whole)
        .with("region", span_of(region))
        .with("vaddr", span_of(vaddr));
    let perms = match perms {
        Some(p) => {
            src.set("perms", Span::from(p.span()));
            check::perms(sink, p.get_ref(), span_of(p))
        }
        None => Perms::READ_WRITE,
    };
    Map {
        region: region.get_ref().clone(),
        vaddr: *vaddr.get_ref(),
        perms,
        cached: cached.unwrap_or(true),
        setvar_vaddr: None,
        setvar_size: None,
        setvar_prefill_size: None,
        setvar_device: None,
        setvar_device_size: None,
        src,
    }
}

fn lower_irq(sink: &mut Sink, devices: &Devices, i: &Spanned<RawIrq>) -> Irq {
    let board = devices.board;
    let v = i.get_ref();
    let mut src = Src::new(Span::from(i.span())).with("id", span_of(&v.id));
    let id = check::irq_id(sink, *v.id.get_ref(), span_of(&v.id));
    let trigger = match v.trigger {
        Some(Trigger2::Edge) => Trigger::Edge,
        _ => Trigger::Level,
    };
    let x86 = v.pin.is_some() || v.pcidev.is_some();
    let kind = if x86 {
        lower_x86_irq(sink, v, &mut src, trigger)
    } else {
        match (&v.irq, &v.device) {
            (Some(n), None) => {
                src.set("irq", Span::from(n.span()));
                if *n.get_ref() < 0 {
                    sink.emit(
                        Kind::BadValue("an IRQ number cannot be negative".into()),
                        span_of(n),
                    );
                }
                IrqKind::Arm {
                    irq: (*n.get_ref()).max(0) as u64,
                    trigger,
                    device: None,
                }
            }
            (None, Some(d)) => {
                src.set("device", Span::from(d.span()));
                // The number and, unless given, the trigger come from the board.
                let found = devices
                    .get(d.get_ref())
                    .and_then(|dev| dev.irqs.first().map(|&n| (n, dev.trigger)));
                let (irq, board_trigger) = found.unwrap_or_else(|| {
                    sink.emit(
                        Kind::IrqUnknownDevice {
                            device: d.get_ref().clone(),
                            board: board.name.clone(),
                        },
                        span_of(d),
                    );
                    (0, None)
                });
                let trigger = match (v.trigger, board_trigger) {
                    (None, Some(crate::board::BoardTrigger::Edge)) => Trigger::Edge,
                    _ => trigger,
                };
                IrqKind::Arm {
                    irq,
                    trigger,
                    device: Some(d.get_ref().clone()),
                }
            }
            _ => {
                sink.emit(Kind::IrqSource, Some(Span::from(i.span())));
                IrqKind::Arm {
                    irq: 0,
                    trigger,
                    device: None,
                }
            }
        }
    };
    Irq {
        id,
        kind,
        setvar_id: v
            .setvar_id
            .as_ref()
            .map(|s| check::symbol(sink, s.get_ref(), span_of(s))),
        src,
    }
}

fn lower_x86_irq(sink: &mut Sink, v: &RawIrq, src: &mut Src, trigger: Trigger) -> IrqKind {
    let vector = v.vector.as_ref().map(|x| *x.get_ref()).unwrap_or(-1);
    if let Some(x) = &v.vector {
        src.set("vector", Span::from(x.span()));
    }
    if !(0..=check::X86_MAX_VECTOR as i64).contains(&vector) {
        sink.emit(
            Kind::X86IrqRange {
                what: "vector".to_string(),
                max: check::X86_MAX_VECTOR,
            },
            v.vector.as_ref().and_then(span_of).or(src.whole()),
        );
    }
    let vector = vector.max(0) as u64;
    if let Some(pci) = &v.pcidev {
        let addr = check::pci_address(pci.get_ref()).unwrap_or_else(|| {
            sink.emit(
                Kind::BadValue(format!(
                    "`{}` is not a PCI address bus:dev.func",
                    pci.get_ref()
                )),
                span_of(pci),
            );
            (0, 0, 0)
        });
        IrqKind::Msi {
            pci: addr,
            handle: v
                .handle
                .as_ref()
                .map(|h| (*h.get_ref()).max(0) as u64)
                .unwrap_or(0),
            vector,
        }
    } else {
        IrqKind::IoApic {
            ioapic: v
                .ioapic
                .as_ref()
                .map(|h| (*h.get_ref()).max(0) as u64)
                .unwrap_or(0),
            pin: v
                .pin
                .as_ref()
                .map(|h| (*h.get_ref()).max(0) as u64)
                .unwrap_or(0),
            vector,
            trigger,
            polarity: match v.polarity {
                Some(Polarity2::Low) => Polarity::Low,
                _ => Polarity::High,
            },
        }
    }
}

fn lower_vm(
    sink: &mut Sink,
    board: &Board,
    base_dir: &Path,
    name: Spanned<String>,
    v: Spanned<RawVm>,
) -> Vm {
    let src = Src::new(Span::from(v.span())).with("name", span_of(&name));
    let v = v.into_inner();
    let priority = v
        .priority
        .as_ref()
        .map(|p| check::priority(sink, *p.get_ref(), span_of(p)))
        .unwrap_or(0);
    let budget_span = v
        .budget
        .as_ref()
        .and_then(span_of)
        .or(v.period.as_ref().and_then(span_of));
    let (budget_us, period_us) = check::budget_period(
        sink,
        v.budget.as_ref().map(|b| b.get_ref().0),
        v.period.as_ref().map(|b| b.get_ref().0),
        budget_span.or(span_of(&name)),
    );
    let vcpus = v
        .vcpus
        .iter()
        .map(|c| {
            let cv = c.get_ref();
            Vcpu {
                id: check::vcpu_id(sink, *cv.id.get_ref(), span_of(&cv.id)),
                cpu: cv
                    .cpu
                    .as_ref()
                    .map(|x| check::cpu(sink, board, *x.get_ref(), span_of(x))),
                setvar_id: cv
                    .setvar_id
                    .as_ref()
                    .map(|s| check::symbol(sink, s.get_ref(), span_of(s))),
                src: Src::new(Span::from(c.span()))
                    .with("id", span_of(&cv.id))
                    .with("cpu", cv.cpu.as_ref().and_then(span_of)),
            }
        })
        .collect();
    let maps = v
        .maps
        .iter()
        .map(|m| {
            let mm = m.get_ref();
            lower_map(
                sink,
                Span::from(m.span()),
                &mm.region,
                &mm.vaddr,
                mm.perms.as_ref(),
                mm.cached,
            )
        })
        .collect();
    let text = |s: &Option<Spanned<String>>| s.as_ref().map(|s| (s.get_ref().clone(), span_of(s)));
    let wanted = crate::guest::Wanted {
        vm: name.get_ref().clone(),
        kernel: text(&v.kernel),
        initrd: text(&v.initrd),
        bootargs: text(&v.bootargs),
        devices: v
            .devices
            .iter()
            .map(|d| {
                let dd = d.get_ref();
                crate::guest::WantedDevice {
                    name: dd.name.get_ref().clone(),
                    name_span: span_of(&dd.name),
                    kind: dd.kind.get_ref().clone(),
                    kind_span: span_of(&dd.kind),
                    slot: dd.slot.as_ref().map(|s| (*s.get_ref(), span_of(s))),
                    whole: Span::from(d.span()),
                }
            })
            .collect(),
    };
    let guest = crate::guest::lower(sink, base_dir, wanted);
    Vm {
        name: name.into_inner(),
        priority,
        budget_us,
        period_us,
        vcpus,
        maps,
        guest,
        src,
    }
}

fn lower_region(
    sink: &mut Sink,
    devices: &Devices,
    name: Spanned<String>,
    r: Spanned<RawRegion>,
    base_dir: &Path,
) -> Region {
    let whole = Span::from(r.span());
    let name_span = span_of(&name);
    let name = name.into_inner();
    let r = r.into_inner();
    let board = devices.board;
    let mut src = Src::new(whole).with("name", name_span);
    let page_given = r.page_size.is_some();
    let page = match &r.page_size {
        Some(p) => {
            src.set("page_size", Span::from(p.span()));
            check::page_size(sink, p.get_ref().0, span_of(p))
        }
        None => check::SMALL_PAGE,
    };
    if r.prefill.is_some() && r.prefill_bootinfo.is_some() {
        sink.emit(
            Kind::PrefillBoth,
            r.prefill_bootinfo.as_ref().and_then(span_of),
        );
    }
    let prefill_len = r
        .prefill
        .as_ref()
        .and_then(|p| check::prefill_file(sink, base_dir, p.get_ref(), span_of(p)));
    let bootinfo = r
        .prefill_bootinfo
        .as_ref()
        .and_then(|b| check::bootinfo(sink, b.get_ref(), span_of(b)));
    if let Some(b) = &r.prefill_bootinfo {
        src.set("prefill_bootinfo", Span::from(b.span()));
    }
    // A region named after a device takes its pages from the board.
    let mut device_range = None;
    if let Some(d) = &r.device {
        src.set("device", Span::from(d.span()));
        if r.phys.is_some() {
            sink.emit(Kind::PhysAndDevice, r.phys.as_ref().and_then(span_of));
        }
        match devices.get(d.get_ref()) {
            Some(dev) => {
                let start = dev.range.base / page * page;
                let end = dev.range.end().div_ceil(page) * page;
                device_range = Some((start, end - start));
            }
            None => {
                sink.emit(
                    Kind::RegionUnknownDevice {
                        device: d.get_ref().clone(),
                        board: board.name.clone(),
                        known: devices
                            .virtio
                            .iter()
                            .map(|v| v.name.as_str())
                            .chain(
                                board.devices.iter().map(|d| d.name.as_str()).filter(|n| {
                                    !n.starts_with("virtio-mmio") || *n == "virtio-mmio0"
                                }),
                            )
                            .collect::<Vec<_>>()
                            .join(", ")
                            + ", ..., virtio-mmio31",
                    },
                    span_of(d),
                )
            }
        }
    }
    let size_given = r
        .size
        .as_ref()
        .map(|s| (s.get_ref().0, span_of(s)))
        .or(device_range.map(|(_, size)| (size, None)));
    if let Some(s) = &r.size {
        src.set("size", Span::from(s.span()));
    }
    // A prefill, boot-info or device that was named but is wrong has been
    // reported already; do not also report the size as missing.
    let named = r.prefill.is_some() || r.prefill_bootinfo.is_some() || r.device.is_some();
    let size = check::region_size(sink, &name, size_given, page, prefill_len, named, name_span);
    if let Some(p) = &r.phys {
        src.set("phys", Span::from(p.span()));
    }
    let prefill = match (&r.prefill, prefill_len, bootinfo) {
        (Some(p), Some(len), _) => Some(Prefill::File {
            path: p.get_ref().into(),
            len,
        }),
        (_, _, Some(b)) => Some(Prefill::BootInfo(b)),
        _ => None,
    };
    Region {
        name,
        size,
        page_size: page,
        page_size_given: page_given,
        phys: r
            .phys
            .map(|p| p.into_inner())
            .or(device_range.map(|(base, _)| base)),
        device: r.device.map(|d| d.into_inner()),
        prefill,
        src,
    }
}

fn lower_end(sink: &mut Sink, pds: &[Pd], end: Spanned<RawEnd>) -> Option<End> {
    let whole = Span::from(end.span());
    let e = end.into_inner();
    let id = check::channel_id(sink, *e.id.get_ref(), span_of(&e.id));
    let pd = pds.iter().position(|p| &p.name == e.pd.get_ref());
    if pd.is_none() {
        sink.emit(Kind::UnknownPd(e.pd.get_ref().clone()), span_of(&e.pd));
    }
    Some(End {
        pd: pd?,
        id,
        pp: e.pp,
        notify: e.notify,
        setvar_id: e
            .setvar_id
            .as_ref()
            .map(|s| check::symbol(sink, s.get_ref(), span_of(s))),
        src: Src::new(whole)
            .with("pd", span_of(&e.pd))
            .with("id", span_of(&e.id)),
    })
}

fn lower_domains(
    sink: &mut Sink,
    domains: Named<RawDomain>,
    schedule: Option<Spanned<RawSchedule>>,
) -> Domains {
    let domains = domains
        .into_iter()
        .map(|(name, d)| {
            let src = Src::new(Span::from(d.span())).with("name", span_of(&name));
            let d = d.into_inner();
            Domain {
                name: name.into_inner(),
                id: d.id.as_ref().map(|i| (*i.get_ref()).max(0) as u64),
                src: src.with("id", d.id.as_ref().and_then(span_of)),
            }
        })
        .collect();
    let schedule = schedule.map(|s| {
        let src = Src::new(Span::from(s.span()));
        let s = s.into_inner();
        let mut entries = Vec::new();
        let mut entry_src = Vec::new();
        for e in s.entries {
            let esrc = Src::new(Span::from(e.span()));
            let ev = e.into_inner();
            match (ev.end, &ev.domain, &ev.duration) {
                (true, None, None) => entries.push(ScheduleEntry::End),
                (false, Some(d), Some(dur)) => {
                    let duration = parse_domain_duration(sink, dur.get_ref(), span_of(dur));
                    entries.push(ScheduleEntry::Run {
                        domain: d.get_ref().clone(),
                        duration,
                    });
                }
                (false, None, _) => {
                    sink.emit(Kind::MissingKey("domain".into()), esrc.whole());
                    continue;
                }
                (false, Some(_), None) => {
                    sink.emit(Kind::MissingKey("duration".into()), esrc.whole());
                    continue;
                }
                (true, _, _) => {
                    sink.emit(
                        Kind::BadValue("an end marker takes no `domain` or `duration`".to_string()),
                        esrc.whole(),
                    );
                    continue;
                }
            }
            let esrc = esrc
                .with("domain", ev.domain.as_ref().and_then(span_of))
                .with("duration", ev.duration.as_ref().and_then(span_of));
            entry_src.push(esrc);
        }
        Schedule {
            start_index: s.start_index.as_ref().map(|x| *x.get_ref()).unwrap_or(0),
            index_shift: s.index_shift.as_ref().map(|x| *x.get_ref()),
            entries,
            entry_src,
            src: src
                .with("start_index", s.start_index.as_ref().and_then(span_of))
                .with("index_shift", s.index_shift.as_ref().and_then(span_of)),
        }
    });
    Domains { domains, schedule }
}

/// Domain schedule durations: microseconds with a unit, or kernel ticks.
pub(crate) fn parse_domain_duration(
    sink: &mut Sink,
    text: &str,
    span: Option<Span>,
) -> DomainDuration {
    let d = if let Some(n) = text.trim().strip_suffix("ticks") {
        n.trim().parse::<u64>().ok().map(DomainDuration::Ticks)
    } else {
        units::parse_duration(text).ok().map(DomainDuration::Us)
    };
    match d {
        Some(DomainDuration::Ticks(0)) | Some(DomainDuration::Us(0)) => {
            sink.emit(Kind::ZeroDomainDuration, span);
            d.unwrap()
        }
        Some(d) => d,
        None => {
            sink.emit(Kind::DomainDuration(text.to_string()), span);
            DomainDuration::Us(1)
        }
    }
}
