//! The XML front end: a Microkit 2.3.0 `.system` file to the same model as
//! `system.toml`, so that Microkit systems are checked by the same rules.
//!
//! Element and attribute names, defaults and number syntax (decimal, or hex
//! with `0x`, `_` allowed) follow the Microkit manual and tool. A `.system`
//! file has no board; it runs on `qemu-virt` unless a processing instruction
//! `<?septa board="NAME"?>` names another.

use std::path::Path;
use std::sync::Arc;

use roxmltree::{Document, Node};

use crate::board::Board;
use crate::check;
use crate::diag::{Diagnostic, Kind, Sink, Source, Span};
use crate::model::*;
use crate::toml_front::parse_domain_duration;

const DEFAULT_BOARD: &str = "qemu-virt";

struct XmlReader<'s> {
    sink: &'s mut Sink,
}

/// The span of an element's tag name, where its errors point.
fn tag_span(n: &Node) -> Option<Span> {
    let start = n.range().start + 1;
    Some(Span::new(start, start + n.tag_name().name().len()))
}

impl XmlReader<'_> {
    fn allow(&mut self, n: &Node, allowed: &[&str]) {
        for a in n.attributes() {
            if !allowed.contains(&a.name()) {
                self.sink.emit(
                    Kind::XmlUnknownAttribute {
                        attribute: a.name().to_string(),
                        element: n.tag_name().name().to_string(),
                    },
                    Some(a.range_qname().into()),
                );
            }
        }
    }

    fn opt<'a>(&mut self, n: &Node<'a, '_>, name: &str) -> Option<(&'a str, Option<Span>)> {
        n.attributes()
            .find(|a| a.name() == name)
            .map(|a| (a.value(), Some(Span::from(a.range_value()))))
    }

    fn req<'a>(&mut self, n: &Node<'a, '_>, name: &str) -> Option<(&'a str, Option<Span>)> {
        let v = self.opt(n, name);
        if v.is_none() {
            self.sink.emit(
                Kind::XmlMissingAttribute {
                    attribute: name.to_string(),
                    element: n.tag_name().name().to_string(),
                },
                tag_span(n),
            );
        }
        v
    }

    fn int(&mut self, (text, span): (&str, Option<Span>)) -> Option<i64> {
        let clean: String = text.chars().filter(|&c| c != '_').collect();
        let (neg, body) = match clean.strip_prefix('-') {
            Some(b) => (true, b.to_string()),
            None => (false, clean),
        };
        let v = match body.strip_prefix("0x") {
            Some(h) => i64::from_str_radix(h, 16),
            None => body.parse::<i64>(),
        };
        match v {
            Ok(v) => Some(if neg { -v } else { v }),
            Err(_) => {
                self.sink
                    .emit(Kind::XmlValue(format!("`{text}` is not an integer")), span);
                None
            }
        }
    }

    fn num(&mut self, v: (&str, Option<Span>)) -> Option<u64> {
        let span = v.1;
        let n = self.int(v)?;
        if n < 0 {
            self.sink.emit(
                Kind::XmlValue(format!("`{}` must not be negative", v.0)),
                span,
            );
            return None;
        }
        Some(n as u64)
    }

    fn opt_num(&mut self, n: &Node, name: &str) -> Option<u64> {
        let v = self.opt(n, name)?;
        self.num(v)
    }

    fn boolean(&mut self, n: &Node, name: &str, default: bool) -> bool {
        match self.opt(n, name) {
            None => default,
            Some(("true", _)) => true,
            Some(("false", _)) => false,
            Some((other, span)) => {
                self.sink.emit(
                    Kind::XmlValue(format!("{name} must be `true` or `false`, not `{other}`")),
                    span,
                );
                default
            }
        }
    }

    fn symbol(&mut self, n: &Node, name: &str) -> Option<String> {
        let (v, span) = self.opt(n, name)?;
        Some(check::plain_symbol(self.sink, v, span))
    }

    fn unknown_child(&mut self, child: &Node, parent: &Node) {
        self.sink.emit(
            Kind::XmlUnknownElement {
                element: child.tag_name().name().to_string(),
                parent: parent.tag_name().name().to_string(),
            },
            tag_span(child),
        );
    }
}

fn elements<'a, 'i>(n: &Node<'a, 'i>) -> impl Iterator<Item = Node<'a, 'i>> {
    n.children().filter(|c| c.is_element())
}

/// Parses a `.system` file.
pub(crate) fn parse(source: &Arc<Source>, base_dir: &Path) -> (Option<System>, Vec<Diagnostic>) {
    let doc = match Document::parse(&source.text) {
        Ok(d) => d,
        Err(e) => {
            let pos = e.pos();
            let offset = offset_of(&source.text, pos.row as usize, pos.col as usize);
            return (
                None,
                vec![Diagnostic::new(
                    Kind::XmlSyntax(e.to_string()),
                    source,
                    Some(Span::new(offset, offset + 1)),
                )],
            );
        }
    };
    let mut sink = Sink::new(source);
    let system = lower(&doc, &mut sink, base_dir);
    (system, sink.out)
}

fn offset_of(text: &str, row: usize, col: usize) -> usize {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(row.saturating_sub(1))
        .map(str::len)
        .sum();
    let line = &text[line_start.min(text.len())..];
    line_start
        + line
            .char_indices()
            .nth(col.saturating_sub(1))
            .map(|(i, _)| i)
            .unwrap_or(line.len())
}

fn check_text(x: &mut XmlReader, n: &Node) {
    for c in n.children() {
        if c.is_text() && !c.text().unwrap_or("").trim().is_empty() {
            x.sink.emit(
                Kind::XmlText(n.tag_name().name().to_string()),
                Some(c.range().into()),
            );
        } else if c.is_element() {
            check_text(x, &c);
        }
    }
}

fn lower(doc: &Document, sink: &mut Sink, base_dir: &Path) -> Option<System> {
    let root = doc.root_element();
    if root.tag_name().name() != "system" {
        sink.emit(
            Kind::XmlRoot(root.tag_name().name().to_string()),
            tag_span(&root),
        );
        return None;
    }
    let mut x = XmlReader { sink };
    x.allow(&root, &[]);
    check_text(&mut x, &root);

    let (board_name, board_span) = doc
        .root()
        .children()
        .find(|c| c.is_pi() && c.pi().is_some_and(|p| p.target == "septa"))
        .and_then(|c| {
            let v = c.pi()?.value?;
            let name = v
                .trim()
                .strip_prefix("board=")?
                .trim_matches(|c| c == '"' || c == '\'');
            Some((name.to_string(), Some(Span::from(c.range()))))
        })
        .unwrap_or((DEFAULT_BOARD.to_string(), None));
    let board = crate::find_board(x.sink, &board_name, board_span, base_dir)?;

    let mut pds = Vec::new();
    let mut regions = Vec::new();
    let mut channel_nodes = Vec::new();
    let mut domains = None;
    let mut io_spaces = Vec::new();
    for c in elements(&root) {
        match c.tag_name().name() {
            "protection_domain" => lower_pd(&mut x, &board, &mut pds, &c, None),
            "memory_region" => regions.push(lower_region(&mut x, &c, base_dir)),
            "channel" => channel_nodes.push(c),
            "virtual_machine" => x.sink.emit(Kind::VmNotChild, tag_span(&c)),
            "domains" => {
                if domains.is_some() {
                    x.sink.emit(
                        Kind::XmlRepeated {
                            element: "domains".into(),
                            parent: "system".into(),
                        },
                        tag_span(&c),
                    );
                }
                domains = Some(lower_domains(&mut x, &c));
            }
            "io_address_space" => io_spaces.push(lower_io_space(&mut x, &c)),
            _ => x.unknown_child(&c, &root),
        }
    }
    let mut channels = Vec::new();
    for c in channel_nodes {
        if let Some(ch) = lower_channel(&mut x, &pds, &c) {
            channels.push(ch);
        }
    }
    Some(System {
        board,
        // Microkit chooses the configuration when the SDK is built, not in
        // the description.
        config: None,
        user_errors: None,
        pds,
        regions,
        channels,
        forwards: Vec::new(),
        virtio: Vec::new(),
        domains,
        io_spaces,
        blk: Vec::new(),
        serial: None,
        timer: None,
        net: None,
        cells: Vec::new(),
        stats: None,
    })
}

/// Lowers a `protection_domain` element (a child of `parent`, if given)
/// into `pds`, then its child PDs after it.
fn lower_pd(x: &mut XmlReader, board: &Board, pds: &mut Vec<Pd>, n: &Node, parent: Option<usize>) {
    let mut allowed = vec![
        "name",
        "priority",
        "budget",
        "period",
        "passive",
        "stack_size",
        "smc",
        "cpu",
        "domain",
        "fpu",
    ];
    if parent.is_some() {
        allowed.extend(["id", "setvar_id"]);
    }
    x.allow(n, &allowed);
    let mut src = Src::new(n.range().into());
    let (name, name_span) = x.req(n, "name").unwrap_or(("", tag_span(n)));
    src.set("name", name_span.unwrap_or_default());
    check::name_length(x.sink, name, name_span);
    let a = pd_attributes(x, board, n, &mut src);
    let (child_id, setvar_id) = if parent.is_some() {
        let id = x.req(n, "id").and_then(|v| {
            src.set("id", v.1.unwrap_or_default());
            x.int(v).map(|i| check::child_id(x.sink, i, v.1))
        });
        if let Some((_, s)) = x.opt(n, "setvar_id") {
            src.set("setvar_id", s.unwrap_or_default());
        }
        (id, x.symbol(n, "setvar_id"))
    } else {
        (None, None)
    };
    let e = pd_elements(x, board, n, name, &mut src);
    let index = pds.len();
    pds.push(Pd {
        name: name.to_string(),
        parent,
        child_id,
        setvar_id,
        program: e.program,
        symbols: e.symbols,
        priority: a.priority,
        budget_us: a.budget_us,
        period_us: a.period_us,
        passive: a.passive,
        stack_size: a.stack_size,
        cpu: a.cpu,
        smc: a.smc,
        fpu: a.fpu,
        domain: a.domain,
        restart: Restart::default(),
        maps: e.maps,
        irqs: e.irqs,
        setvars: e.setvars,
        ioports: e.ioports,
        caps: e.caps,
        vm: e.vm,
        consts: Vec::new(),
        subsystem: None,
        src,
    });
    for c in e.children {
        lower_pd(x, board, pds, &c, Some(index));
    }
}

/// What a `protection_domain`'s attributes say besides its name and the
/// child-only ones.
struct PdAttributes {
    priority: u8,
    budget_us: u64,
    period_us: u64,
    passive: bool,
    stack_size: u64,
    smc: bool,
    cpu: u8,
    fpu: bool,
    domain: Option<String>,
}

/// A `protection_domain`'s scheduling, stack, CPU, SMC, FPU and domain
/// attributes, checked, with their spans recorded in `src`.
fn pd_attributes(x: &mut XmlReader, board: &Board, n: &Node, src: &mut Src) -> PdAttributes {
    let priority = match x.opt(n, "priority") {
        Some(v) => {
            src.set("priority", v.1.unwrap_or_default());
            x.int(v)
                .map(|p| check::priority(x.sink, p, v.1))
                .unwrap_or(0)
        }
        None => 0,
    };
    let budget_attr = x.opt(n, "budget");
    let budget = budget_attr.and_then(|v| x.num(v));
    let period = x.opt_num(n, "period");
    let (budget_us, period_us) = check::budget_period(
        x.sink,
        budget,
        period,
        budget_attr.and_then(|b| b.1).or(tag_span(n)),
    );
    let passive = x.boolean(n, "passive", false);
    let stack_size = match x.opt(n, "stack_size") {
        Some(v) => {
            src.set("stack", v.1.unwrap_or_default());
            let s = x.num(v).unwrap_or(check::DEFAULT_STACK);
            check::stack(x.sink, s, v.1);
            s
        }
        None => check::DEFAULT_STACK,
    };
    let smc = x.boolean(n, "smc", false);
    if let Some((_, s)) = x.opt(n, "smc") {
        src.set("smc", s.unwrap_or_default());
    }
    let cpu = match x.opt(n, "cpu") {
        Some(v) => x
            .int(v)
            .map(|c| check::cpu(x.sink, board, c, v.1))
            .unwrap_or(0),
        None => 0,
    };
    let fpu = x.boolean(n, "fpu", true);
    let domain = x.opt(n, "domain").map(|(d, s)| {
        src.set("domain", s.unwrap_or_default());
        d.to_string()
    });
    PdAttributes {
        priority,
        budget_us,
        period_us,
        passive,
        stack_size,
        smc,
        cpu,
        fpu,
        domain,
    }
}

/// What a `protection_domain`'s child elements say.
struct PdElements<'a, 'input> {
    program: Program,
    symbols: Option<std::path::PathBuf>,
    maps: Vec<Map>,
    irqs: Vec<Irq>,
    setvars: Vec<SetVar>,
    ioports: Vec<IoPort>,
    caps: Vec<CapMap>,
    vm: Option<Vm>,
    /// Child PDs, lowered after their parent.
    children: Vec<Node<'a, 'input>>,
}

/// The child elements of the `protection_domain` `n` (named `name`).
fn pd_elements<'a, 'input>(
    x: &mut XmlReader,
    board: &Board,
    n: &Node<'a, 'input>,
    name: &str,
    src: &mut Src,
) -> PdElements<'a, 'input> {
    let mut program = None;
    let mut e = PdElements {
        program: Program::Elf("".into()),
        symbols: None,
        maps: Vec::new(),
        irqs: Vec::new(),
        setvars: Vec::new(),
        ioports: Vec::new(),
        caps: Vec::new(),
        vm: None,
        children: Vec::new(),
    };
    let mut seen_cspace = false;
    for c in elements(n) {
        match c.tag_name().name() {
            "program_image" => {
                x.allow(&c, &["path", "path_for_symbols"]);
                if program.is_some() {
                    x.sink.emit(
                        Kind::XmlRepeated {
                            element: "program_image".into(),
                            parent: "protection_domain".into(),
                        },
                        tag_span(&c),
                    );
                }
                if let Some((p, s)) = x.req(&c, "path") {
                    src.set("program", s.unwrap_or_default());
                    program = Some(check::program(x.sink, p, s, true));
                }
                e.symbols = x.opt(&c, "path_for_symbols").map(|(p, _)| p.into());
            }
            "map" => e.maps.push(lower_map(x, &c, true)),
            "irq" => e.irqs.push(lower_irq(x, &c)),
            "setvar" => e.setvars.extend(lower_setvar(x, &c)),
            "ioport" => e.ioports.push(lower_ioport(x, &c)),
            "protection_domain" => e.children.push(c),
            "virtual_machine" => {
                let v = lower_vm(x, board, &c);
                if e.vm.is_some() {
                    x.sink
                        .emit(Kind::MoreThanOneVm(name.to_string()), tag_span(&c));
                } else {
                    e.vm = Some(v);
                }
            }
            "cspace" => {
                if seen_cspace {
                    x.sink.emit(
                        Kind::XmlRepeated {
                            element: "cspace".into(),
                            parent: "protection_domain".into(),
                        },
                        tag_span(&c),
                    );
                }
                seen_cspace = true;
                lower_cspace(x, &c, &mut e.caps);
            }
            _ => x.unknown_child(&c, n),
        }
    }
    match program {
        Some(p) => e.program = p,
        None => x.sink.emit(
            Kind::XmlMissingElement {
                element: "program_image".into(),
                parent: "protection_domain".into(),
            },
            tag_span(n),
        ),
    }
    e
}

/// A `setvar`: a symbol set to a region's physical address (`None` when
/// an attribute is missing, which is reported).
fn lower_setvar(x: &mut XmlReader, c: &Node) -> Option<SetVar> {
    x.allow(c, &["symbol", "region_paddr"]);
    let sym = x.req(c, "symbol");
    let reg = x.req(c, "region_paddr");
    let (sym, reg) = (sym?, reg?);
    Some(SetVar {
        symbol: check::plain_symbol(x.sink, sym.0, sym.1),
        value: SetValue::Paddr(reg.0.to_string()),
        src: Src::new(c.range().into())
            .with("symbol", sym.1)
            .with("region", reg.1),
    })
}

/// An x86 `ioport` (refused later on other boards).
fn lower_ioport(x: &mut XmlReader, c: &Node) -> IoPort {
    x.allow(c, &["id", "setvar_id", "setvar_addr", "addr", "size"]);
    let id = x
        .req(c, "id")
        .and_then(|v| x.int(v).map(|i| check::ioport_id(x.sink, i, v.1)));
    let addr = x.req(c, "addr").and_then(|v| x.num(v));
    let size = x.req(c, "size").and_then(|v| {
        let s = x.int(v)?;
        if s <= 0 {
            x.sink.emit(Kind::IoPortSize, v.1);
        }
        Some(s.max(0) as u64)
    });
    IoPort {
        id: id.unwrap_or(0),
        addr: addr.unwrap_or(0),
        size: size.unwrap_or(0),
        setvar_id: x.symbol(c, "setvar_id"),
        setvar_addr: x.symbol(c, "setvar_addr"),
        src: Src::new(c.range().into()),
    }
}

/// The `cap_*` elements of a `cspace`, into `caps`.
fn lower_cspace(x: &mut XmlReader, c: &Node, caps: &mut Vec<CapMap>) {
    x.allow(c, &[]);
    for cap in elements(c) {
        let kind = match cap.tag_name().name() {
            "cap_tcb" => CapKind::Tcb,
            "cap_sc" => CapKind::Sc,
            "cap_vspace" => CapKind::Vspace,
            other => {
                if let Some(k) = other.strip_prefix("cap_") {
                    x.sink.emit(Kind::CapKind(k.to_string()), tag_span(&cap));
                } else {
                    x.unknown_child(&cap, c);
                }
                continue;
            }
        };
        x.allow(&cap, &["slot", "pd"]);
        let slot = x.req(&cap, "slot");
        let pd = x.req(&cap, "pd");
        let (Some(slot), Some(pd)) = (slot, pd) else {
            continue;
        };
        let Some(slot_n) = x.int(slot) else { continue };
        caps.push(CapMap {
            slot: check::cap_slot(x.sink, slot_n, slot.1),
            kind,
            pd: pd.0.to_string(),
            src: Src::new(cap.range().into())
                .with("slot", slot.1)
                .with("pd", pd.1),
        });
    }
}

fn lower_map(x: &mut XmlReader, n: &Node, allow_setvar: bool) -> Map {
    let mut allowed = vec!["mr", "vaddr", "perms", "cached"];
    if allow_setvar {
        allowed.extend(["setvar_vaddr", "setvar_size", "setvar_prefill_size"]);
    }
    x.allow(n, &allowed);
    let mut src = Src::new(n.range().into());
    let region = x.req(n, "mr").map(|(r, s)| {
        src.set("region", s.unwrap_or_default());
        r.to_string()
    });
    let vaddr = x.req(n, "vaddr").and_then(|v| {
        src.set("vaddr", v.1.unwrap_or_default());
        x.num(v)
    });
    let perms = match x.opt(n, "perms") {
        Some((p, s)) => {
            src.set("perms", s.unwrap_or_default());
            check::perms(x.sink, p, s)
        }
        None => Perms::READ_WRITE,
    };
    let cached = x.boolean(n, "cached", true);
    let mut map = Map {
        region: region.unwrap_or_default(),
        vaddr: vaddr.unwrap_or(0),
        perms,
        cached,
        setvar_vaddr: None,
        setvar_size: None,
        setvar_prefill_size: None,
        setvar_device: None,
        setvar_device_size: None,
        src,
    };
    if allow_setvar {
        for key in ["setvar_vaddr", "setvar_size", "setvar_prefill_size"] {
            if let Some((_, s)) = x.opt(n, key) {
                map.src.set(key, s.unwrap_or_default());
            }
        }
        map.setvar_vaddr = x.symbol(n, "setvar_vaddr");
        map.setvar_size = x.symbol(n, "setvar_size");
        map.setvar_prefill_size = x.symbol(n, "setvar_prefill_size");
    }
    map
}

fn lower_irq(x: &mut XmlReader, n: &Node) -> Irq {
    let mut src = Src::new(n.range().into());
    let id = x
        .req(n, "id")
        .and_then(|v| {
            src.set("id", v.1.unwrap_or_default());
            x.int(v).map(|i| check::irq_id(x.sink, i, v.1))
        })
        .unwrap_or(0);
    let trigger = match x.opt(n, "trigger") {
        None | Some(("level", _)) => Trigger::Level,
        Some(("edge", _)) => Trigger::Edge,
        Some((t, s)) => {
            x.sink.emit(
                Kind::XmlValue(format!("trigger must be `level` or `edge`, not `{t}`")),
                s,
            );
            Trigger::Level
        }
    };
    let kind = if let Some(v) = x.opt(n, "irq") {
        x.allow(n, &["irq", "id", "setvar_id", "trigger"]);
        src.set("irq", v.1.unwrap_or_default());
        IrqKind::Arm {
            irq: x.num(v).unwrap_or(0),
            trigger,
            device: None,
        }
    } else if x.opt(n, "pin").is_some() {
        x.allow(
            n,
            &[
                "id",
                "setvar_id",
                "ioapic",
                "pin",
                "trigger",
                "polarity",
                "vector",
            ],
        );
        let polarity = match x.opt(n, "polarity") {
            Some(("low", _)) => Polarity::Low,
            _ => Polarity::High,
        };
        IrqKind::IoApic {
            ioapic: x.opt_num(n, "ioapic").unwrap_or(0),
            pin: x.opt_num(n, "pin").unwrap_or(0),
            vector: x.opt_num(n, "vector").unwrap_or(0),
            trigger,
            polarity,
        }
    } else if let Some((pci, s)) = x.opt(n, "pcidev") {
        x.allow(n, &["id", "setvar_id", "pcidev", "handle", "vector"]);
        let addr = check::pci_address(pci).unwrap_or_else(|| {
            x.sink.emit(
                Kind::XmlValue(format!("`{pci}` is not a PCI address bus:dev.func")),
                s,
            );
            (0, 0, 0)
        });
        IrqKind::Msi {
            pci: addr,
            handle: x.opt_num(n, "handle").unwrap_or(0),
            vector: x.opt_num(n, "vector").unwrap_or(0),
        }
    } else {
        x.allow(n, &["irq", "id", "setvar_id", "trigger"]);
        x.req(n, "irq");
        IrqKind::Arm {
            irq: 0,
            trigger,
            device: None,
        }
    };
    Irq {
        id,
        kind,
        setvar_id: x.symbol(n, "setvar_id"),
        src,
    }
}

fn lower_vm(x: &mut XmlReader, board: &Board, n: &Node) -> Vm {
    x.allow(n, &["name", "budget", "period", "priority"]);
    let (name, name_span) = x.req(n, "name").unwrap_or(("", tag_span(n)));
    let src = Src::new(n.range().into()).with("name", name_span);
    let priority = x
        .opt(n, "priority")
        .and_then(|v| x.int(v).map(|p| check::priority(x.sink, p, v.1)))
        .unwrap_or(0);
    let budget_attr = x.opt(n, "budget");
    let budget = budget_attr.and_then(|v| x.num(v));
    let period = x.opt_num(n, "period");
    let (budget_us, period_us) = check::budget_period(
        x.sink,
        budget,
        period,
        budget_attr.and_then(|b| b.1).or(tag_span(n)),
    );
    let mut vcpus = Vec::new();
    let mut maps = Vec::new();
    for c in elements(n) {
        match c.tag_name().name() {
            "vcpu" => {
                x.allow(&c, &["id", "setvar_id", "cpu"]);
                let idv = x.req(&c, "id");
                let id = idv.and_then(|v| x.int(v).map(|i| check::vcpu_id(x.sink, i, v.1)));
                let cpu = x
                    .opt(&c, "cpu")
                    .and_then(|v| x.int(v).map(|i| check::cpu(x.sink, board, i, v.1)));
                vcpus.push(Vcpu {
                    id: id.unwrap_or(0),
                    cpu,
                    setvar_id: x.symbol(&c, "setvar_id"),
                    src: Src::new(c.range().into()).with("id", idv.and_then(|v| v.1)),
                });
            }
            "map" => maps.push(lower_map(x, &c, false)),
            _ => x.unknown_child(&c, n),
        }
    }
    Vm {
        name: name.to_string(),
        priority,
        budget_us,
        period_us,
        vcpus,
        maps,
        guest: Default::default(),
        src,
    }
}

fn lower_region(x: &mut XmlReader, n: &Node, base_dir: &Path) -> Region {
    x.allow(
        n,
        &[
            "name",
            "size",
            "page_size",
            "phys_addr",
            "prefill_path",
            "prefill_bootinfo",
        ],
    );
    let (name, name_span) = x.req(n, "name").unwrap_or(("", tag_span(n)));
    let mut src = Src::new(n.range().into()).with("name", name_span);
    let page_attr = x.opt(n, "page_size");
    let page = match page_attr {
        Some(v) => {
            src.set("page_size", v.1.unwrap_or_default());
            x.num(v)
                .map(|p| check::page_size(x.sink, p, v.1))
                .unwrap_or(check::SMALL_PAGE)
        }
        None => check::SMALL_PAGE,
    };
    let prefill_path = x.opt(n, "prefill_path");
    let bootinfo_attr = x.opt(n, "prefill_bootinfo");
    if prefill_path.is_some() && bootinfo_attr.is_some() {
        x.sink
            .emit(Kind::PrefillBoth, bootinfo_attr.and_then(|b| b.1));
    }
    let prefill_len = prefill_path.and_then(|(p, s)| check::prefill_file(x.sink, base_dir, p, s));
    let bootinfo = bootinfo_attr.and_then(|(b, s)| {
        src.set("prefill_bootinfo", s.unwrap_or_default());
        check::bootinfo(x.sink, b, s)
    });
    let size_attr = x.opt(n, "size");
    let size_given = size_attr.and_then(|v| {
        src.set("size", v.1.unwrap_or_default());
        x.num(v).map(|s| (s, v.1))
    });
    // A size, prefill or boot-info that was written but is wrong has been
    // reported already; do not also report the size as missing.
    let named = size_attr.is_some() || prefill_path.is_some() || bootinfo_attr.is_some();
    let size = check::region_size(
        x.sink,
        name,
        size_given,
        page,
        prefill_len,
        named,
        name_span,
    );
    let phys = x.opt(n, "phys_addr").and_then(|v| {
        src.set("phys", v.1.unwrap_or_default());
        x.num(v)
    });
    let prefill = match (prefill_path, prefill_len, bootinfo) {
        (Some((p, _)), Some(len), _) => Some(Prefill::File {
            path: p.into(),
            len,
        }),
        (_, _, Some(b)) => Some(Prefill::BootInfo(b)),
        _ => None,
    };
    Region {
        name: name.to_string(),
        size,
        page_size: page,
        page_size_given: page_attr.is_some(),
        phys,
        device: None,
        prefill,
        src,
    }
}

fn lower_channel(x: &mut XmlReader, pds: &[Pd], n: &Node) -> Option<Channel> {
    x.allow(n, &[]);
    let mut ends = Vec::new();
    for c in elements(n) {
        if c.tag_name().name() != "end" {
            x.unknown_child(&c, n);
            continue;
        }
        x.allow(&c, &["pd", "id", "pp", "notify", "setvar_id"]);
        let pd = x.req(&c, "pd");
        let idv = x.req(&c, "id");
        let id = idv.and_then(|v| x.int(v).map(|i| check::channel_id(x.sink, i, v.1)));
        let pp = x.boolean(&c, "pp", false);
        let notify = x.boolean(&c, "notify", true);
        let setvar_id = x.symbol(&c, "setvar_id");
        let (Some((pd_name, pd_span)), Some(id)) = (pd, id) else {
            continue;
        };
        let Some(pd_idx) = pds.iter().position(|p| p.name == pd_name) else {
            x.sink.emit(Kind::UnknownPd(pd_name.to_string()), pd_span);
            continue;
        };
        ends.push(End {
            pd: pd_idx,
            id,
            pp,
            notify,
            setvar_id,
            src: Src::new(c.range().into())
                .with("pd", pd_span)
                .with("id", idv.and_then(|v| v.1)),
        });
    }
    let count = elements(n).count();
    if count != 2 {
        x.sink.emit(Kind::ChannelEnds(count), tag_span(n));
        return None;
    }
    let mut it = ends.into_iter();
    let (a, b) = (it.next()?, it.next()?);
    Some(Channel {
        a,
        b,
        src: Src::new(n.range().into()),
    })
}

fn lower_domains(x: &mut XmlReader, n: &Node) -> Domains {
    x.allow(n, &[]);
    let mut domains = Vec::new();
    let mut schedule = None;
    for c in elements(n) {
        match c.tag_name().name() {
            "domain" => {
                x.allow(&c, &["name", "id"]);
                let name = x.req(&c, "name");
                let idv = x.opt(&c, "id");
                let id = idv.and_then(|v| x.num(v));
                domains.push(Domain {
                    name: name.map(|n| n.0.to_string()).unwrap_or_default(),
                    id,
                    src: Src::new(c.range().into())
                        .with("name", name.and_then(|n| n.1))
                        .with("id", idv.and_then(|v| v.1)),
                });
            }
            "domain_schedule" => {
                if schedule.is_some() {
                    x.sink.emit(
                        Kind::XmlRepeated {
                            element: "domain_schedule".into(),
                            parent: "domains".into(),
                        },
                        tag_span(&c),
                    );
                }
                x.allow(&c, &["index_shift", "start_index"]);
                let start = x.opt(&c, "start_index");
                let shift = x.opt(&c, "index_shift");
                let mut entries = Vec::new();
                let mut entry_src = Vec::new();
                for e in elements(&c) {
                    match e.tag_name().name() {
                        "schedule_entry" => {
                            x.allow(&e, &["domain", "duration"]);
                            let d = x.req(&e, "domain");
                            let dur = x.req(&e, "duration");
                            let (Some(d), Some(dur)) = (d, dur) else {
                                continue;
                            };
                            let duration = parse_domain_duration(x.sink, dur.0, dur.1);
                            entries.push(ScheduleEntry::Run {
                                domain: d.0.to_string(),
                                duration,
                            });
                            entry_src.push(
                                Src::new(e.range().into())
                                    .with("domain", d.1)
                                    .with("duration", dur.1),
                            );
                        }
                        "schedule_end_marker" => {
                            x.allow(&e, &[]);
                            entries.push(ScheduleEntry::End);
                            entry_src.push(Src::new(e.range().into()));
                        }
                        _ => x.unknown_child(&e, &c),
                    }
                }
                schedule = Some(Schedule {
                    start_index: start.and_then(|v| x.num(v)).unwrap_or(0),
                    index_shift: shift.and_then(|v| x.num(v)),
                    entries,
                    entry_src,
                    src: Src::new(c.range().into())
                        .with("start_index", start.and_then(|v| v.1))
                        .with("index_shift", shift.and_then(|v| v.1)),
                });
            }
            _ => x.unknown_child(&c, n),
        }
    }
    Domains { domains, schedule }
}

fn lower_io_space(x: &mut XmlReader, n: &Node) -> IoSpace {
    x.allow(n, &["name", "peripheral_id", "domain_id"]);
    let name = x.req(n, "name");
    let peripheral = x.req(n, "peripheral_id");
    let domain_id = x.opt_num(n, "domain_id");
    let mut maps = Vec::new();
    for c in elements(n) {
        if c.tag_name().name() != "iomap" {
            x.unknown_child(&c, n);
            continue;
        }
        x.allow(&c, &["mr", "iovaddr", "perms"]);
        let region = x.req(&c, "mr");
        let iovaddr = x.req(&c, "iovaddr").and_then(|v| x.num(v));
        let perms = match x.opt(&c, "perms") {
            Some((p, s)) => check::perms(x.sink, p, s),
            None => Perms::READ_WRITE,
        };
        maps.push(IoMap {
            region: region.map(|r| r.0.to_string()).unwrap_or_default(),
            iovaddr: iovaddr.unwrap_or(0),
            perms,
            src: Src::new(c.range().into()).with("region", region.and_then(|r| r.1)),
        });
    }
    IoSpace {
        name: name.map(|n| n.0.to_string()).unwrap_or_default(),
        peripheral: peripheral.map(|p| p.0.to_string()).unwrap_or_default(),
        domain_id,
        maps,
        src: Src::new(n.range().into()).with("name", tag_span(n)),
    }
}
