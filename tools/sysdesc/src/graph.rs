//! Pictures of a system: DOT for those who have Graphviz, and a
//! self-contained SVG laid out here, for those who do not.
//!
//! The SVG layout is deliberately simple. PDs stand in rows by priority,
//! highest at the top, so protected procedure calls (which go to strictly
//! higher priorities) point upwards. A PD's virtual machine sits at its
//! right; memory regions form the bottom row, linked to every PD or VM that
//! maps them. Channels are lines with an arrowhead at each end that may be
//! notified; PPCs are thick blue arrows towards the callee; a parent's link
//! to its child is dotted. IRQs are listed inside the PD that receives them,
//! and a PD a subsystem's expansion added (`[serial]`) says so.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::model::{IrqKind, Pd, System};
use crate::units::{fmt_duration, fmt_size};

/// Escapes text for XML and for DOT's double-quoted strings.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A DOT double-quoted string; line breaks become DOT's `\n`.
fn dot_id(s: &str) -> String {
    let quoted = s
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!("\"{quoted}\"")
}

fn irq_text(kind: &IrqKind) -> String {
    match kind {
        IrqKind::Arm { irq, device, .. } => match device {
            Some(d) => format!("IRQ {irq} ({d})"),
            None => format!("IRQ {irq}"),
        },
        IrqKind::IoApic { pin, vector, .. } => format!("IOAPIC pin {pin} vec {vector}"),
        IrqKind::Msi { vector, .. } => format!("MSI vec {vector}"),
    }
}

fn sched_text(prio: u8, budget: u64, period: u64) -> String {
    if budget == period {
        format!("prio {prio} · {}", fmt_duration(budget))
    } else {
        format!(
            "prio {prio} · {}/{}",
            fmt_duration(budget),
            fmt_duration(period)
        )
    }
}

fn program_text(pd: &Pd) -> String {
    match &pd.program {
        crate::model::Program::Crate(c) => c.clone(),
        crate::model::Program::Elf(p) => p.display().to_string(),
    }
}

/// The system in Graphviz's DOT language.
pub fn dot(s: &System) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "digraph system {{");
    let _ = writeln!(o, "  rankdir=BT;");
    let _ = writeln!(o, "  node [fontname=\"sans-serif\", fontsize=11];");
    let _ = writeln!(o, "  edge [fontname=\"sans-serif\", fontsize=9];");
    for pd in &s.pds {
        let mut label = format!(
            "{}\n{}",
            pd.name,
            sched_text(pd.priority, pd.budget_us, pd.period_us)
        );
        if pd.passive {
            label += "\npassive";
        }
        if let Some(sub) = pd.subsystem {
            let _ = write!(label, "\nadded by [{sub}]");
        }
        for irq in &pd.irqs {
            let _ = write!(label, "\n{} → ch {}", irq_text(&irq.kind), irq.id);
        }
        let _ = writeln!(
            o,
            "  {} [shape=box, style=\"rounded,filled\", fillcolor=\"#dbe8f6\", label={}];",
            dot_id(&format!("pd:{}", pd.name)),
            dot_id(&label)
        );
        if let Some(vm) = &pd.vm {
            let _ = writeln!(
                o,
                "  {} [shape=box, style=\"dashed,filled\", fillcolor=\"#f3e5f5\", label={}];",
                dot_id(&format!("vm:{}", vm.name)),
                dot_id(&format!(
                    "VM {}\n{} vCPU(s)\n{}",
                    vm.name,
                    vm.vcpus.len(),
                    sched_text(vm.priority, vm.budget_us, vm.period_us)
                ))
            );
            let _ = writeln!(
                o,
                "  {} -> {} [style=dashed, color=\"#7b1fa2\", label=\"runs\"];",
                dot_id(&format!("pd:{}", pd.name)),
                dot_id(&format!("vm:{}", vm.name))
            );
        }
        if let Some(p) = pd.parent {
            let _ = writeln!(
                o,
                "  {} -> {} [style=dotted, color=\"#7b1fa2\", label=\"child {}\"];",
                dot_id(&format!("pd:{}", s.pds[p].name)),
                dot_id(&format!("pd:{}", pd.name)),
                pd.child_id.unwrap_or(0)
            );
        }
    }
    for r in &s.regions {
        let mut label = format!("{}\n{}", r.name, fmt_size(r.size));
        if let Some(p) = r.phys {
            let _ = write!(label, " @ {p:#x}");
        }
        let _ = writeln!(
            o,
            "  {} [shape=note, style=filled, fillcolor=\"#e8f5e9\", label={}];",
            dot_id(&format!("mr:{}", r.name)),
            dot_id(&label)
        );
    }
    for pd in &s.pds {
        let owners = std::iter::once((format!("pd:{}", pd.name), &pd.maps))
            .chain(pd.vm.iter().map(|vm| (format!("vm:{}", vm.name), &vm.maps)));
        for (owner, maps) in owners {
            for m in maps {
                let _ = writeln!(
                    o,
                    "  {} -> {} [dir=none, style=dashed, color=\"#689f38\", label=\"{} {:#x}\"];",
                    dot_id(&owner),
                    dot_id(&format!("mr:{}", m.region)),
                    m.perms,
                    m.vaddr
                );
            }
        }
    }
    for d in &s.blk {
        let _ = writeln!(
            o,
            "  {} [shape=cylinder, style=filled, fillcolor=\"#fff3e0\", label={}];",
            dot_id(&format!("disk:{}", d.device)),
            dot_id(&disk_lines(d).join("\n"))
        );
        let _ = writeln!(
            o,
            "  {} -> {} [color=\"#e65100\", label=\"drives\"];",
            dot_id(&format!("pd:{}", d.driver)),
            dot_id(&format!("disk:{}", d.device))
        );
    }
    for ch in &s.channels {
        let (a, b) = (&s.pds[ch.a.pd].name, &s.pds[ch.b.pd].name);
        let (a, b) = (dot_id(&format!("pd:{a}")), dot_id(&format!("pd:{b}")));
        let ids = format!("{}↔{}", ch.a.id, ch.b.id);
        let dir = match (ch.a.notify, ch.b.notify) {
            (true, true) => "both",
            (true, false) => "forward",
            (false, true) => "back",
            (false, false) => "none",
        };
        let _ = writeln!(
            o,
            "  {a} -> {b} [dir={dir}, label=\"notify {ids}\", color=\"#455a64\"];"
        );
        if ch.a.pp {
            let _ = writeln!(
                o,
                "  {a} -> {b} [penwidth=2.5, color=\"#1565c0\", label=\"PPC {ids}\"];"
            );
        }
        if ch.b.pp {
            let _ = writeln!(
                o,
                "  {b} -> {a} [penwidth=2.5, color=\"#1565c0\", label=\"PPC {ids}\"];"
            );
        }
    }
    let _ = writeln!(o, "}}");
    o
}

/// A block subsystem's disk: its table and each partition, with its client.
fn disk_lines(d: &crate::blk::BlkDisk) -> Vec<String> {
    let mut lines = vec![format!("disk {} ({})", d.device, d.table)];
    for p in &d.partitions {
        let client = p
            .client
            .as_deref()
            .map(|c| format!(" → {c}"))
            .unwrap_or_default();
        lines.push(format!(
            "{} {} {}{client}",
            p.index,
            p.name,
            fmt_size(p.sectors * 512)
        ));
    }
    lines
}

// ------------------------------------------------------------------- SVG

const FONT: f64 = 13.0;
const SMALL: f64 = 11.0;
const LINE: f64 = 16.0;
const PAD: f64 = 10.0;
const GAP_X: f64 = 60.0;
const GAP_Y: f64 = 90.0;
const MARGIN: f64 = 30.0;
const PER_ROW: usize = 4;

#[derive(Clone, Copy, PartialEq)]
enum NodeKind {
    Pd,
    Vm,
    Region,
    Disk,
}

struct Node {
    key: String,
    kind: NodeKind,
    title: String,
    lines: Vec<String>,
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

impl Node {
    fn new(key: String, kind: NodeKind, title: String, lines: Vec<String>) -> Node {
        // Width from the longest line: about 0.6 em per character.
        let longest = lines
            .iter()
            .map(|l| l.chars().count() as f64 * SMALL * 0.6)
            .fold(title.chars().count() as f64 * FONT * 0.65, f64::max);
        let w = (longest + 2.0 * PAD).max(130.0);
        let h = PAD * 2.0 + LINE * (1 + lines.len()) as f64;
        Node {
            key,
            kind,
            title,
            lines,
            x: 0.0,
            y: 0.0,
            w,
            h,
        }
    }

    fn centre(&self) -> (f64, f64) {
        (self.x + self.w / 2.0, self.y + self.h / 2.0)
    }

    /// Where the line from the centre towards (tx, ty) leaves the box.
    fn border_towards(&self, tx: f64, ty: f64) -> (f64, f64) {
        let (cx, cy) = self.centre();
        let (dx, dy) = (tx - cx, ty - cy);
        if dx == 0.0 && dy == 0.0 {
            return (cx, cy);
        }
        let sx = if dx != 0.0 {
            (self.w / 2.0) / dx.abs()
        } else {
            f64::INFINITY
        };
        let sy = if dy != 0.0 {
            (self.h / 2.0) / dy.abs()
        } else {
            f64::INFINITY
        };
        let s = sx.min(sy);
        (cx + dx * s, cy + dy * s)
    }
}

#[derive(Clone, Copy, PartialEq)]
enum EdgeKind {
    Notify { to_b: bool, to_a: bool },
    Ppc,
    Map,
    Child,
    Runs,
}

struct Edge {
    a: usize,
    b: usize,
    kind: EdgeKind,
    label: String,
}

/// The system as a self-contained SVG picture.
pub fn svg(s: &System) -> String {
    let mut nodes: Vec<Node> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut rows: Vec<Vec<usize>> = Vec::new();

    // PD rows: one per distinct priority, highest first, wrapped if long.
    let mut prios: Vec<u8> = s.pds.iter().map(|p| p.priority).collect();
    prios.sort_unstable_by(|a, b| b.cmp(a));
    prios.dedup();
    for prio in prios {
        let mut row = Vec::new();
        for pd in s.pds.iter().filter(|p| p.priority == prio) {
            let mut lines = vec![
                sched_text(pd.priority, pd.budget_us, pd.period_us),
                program_text(pd),
            ];
            if pd.passive {
                lines.push("passive".to_string());
            }
            if let Some(sub) = pd.subsystem {
                lines.push(format!("added by [{sub}]"));
            }
            for irq in &pd.irqs {
                lines.push(format!("{} → ch {}", irq_text(&irq.kind), irq.id));
            }
            let key = format!("pd:{}", pd.name);
            index.insert(key.clone(), nodes.len());
            row.push(nodes.len());
            nodes.push(Node::new(key, NodeKind::Pd, pd.name.clone(), lines));
            if let Some(vm) = &pd.vm {
                let key = format!("vm:{}", vm.name);
                index.insert(key.clone(), nodes.len());
                row.push(nodes.len());
                nodes.push(Node::new(
                    key,
                    NodeKind::Vm,
                    format!("VM {}", vm.name),
                    vec![
                        sched_text(vm.priority, vm.budget_us, vm.period_us),
                        format!("{} vCPU(s)", vm.vcpus.len()),
                    ],
                ));
            }
            if row.len() >= PER_ROW {
                rows.push(std::mem::take(&mut row));
            }
        }
        if !row.is_empty() {
            rows.push(row);
        }
    }
    let mut row = Vec::new();
    for d in &s.blk {
        let mut lines = disk_lines(d);
        let title = lines.remove(0);
        let key = format!("disk:{}", d.device);
        index.insert(key.clone(), nodes.len());
        row.push(nodes.len());
        nodes.push(Node::new(key, NodeKind::Disk, title, lines));
    }
    if !row.is_empty() {
        rows.push(std::mem::take(&mut row));
    }
    for r in &s.regions {
        let mut lines = vec![fmt_size(r.size)];
        match (&r.device, r.phys) {
            (Some(d), Some(p)) => lines.push(format!("{d} @ {p:#x}")),
            (None, Some(p)) => lines.push(format!("@ {p:#x}")),
            _ => {}
        }
        let key = format!("mr:{}", r.name);
        index.insert(key.clone(), nodes.len());
        row.push(nodes.len());
        nodes.push(Node::new(key, NodeKind::Region, r.name.clone(), lines));
        if row.len() > PER_ROW {
            rows.push(std::mem::take(&mut row));
        }
    }
    if !row.is_empty() {
        rows.push(row);
    }

    // Place rows top to bottom, each centred.
    let widths: Vec<f64> = rows
        .iter()
        .map(|r| r.iter().map(|&i| nodes[i].w).sum::<f64>() + GAP_X * (r.len() as f64 - 1.0))
        .collect();
    let width = widths.iter().cloned().fold(legend_width(), f64::max) + 2.0 * MARGIN;
    let mut y = MARGIN + 30.0;
    for (r, w) in rows.iter().zip(&widths) {
        let mut x = (width - w) / 2.0;
        let h = r.iter().map(|&i| nodes[i].h).fold(0.0, f64::max);
        for &i in r {
            nodes[i].x = x;
            nodes[i].y = y + (h - nodes[i].h) / 2.0;
            x += nodes[i].w + GAP_X;
        }
        y += h + GAP_Y;
    }
    let legend_y = y - GAP_Y + 40.0;
    let height = legend_y + 50.0;

    // Edges.
    let mut edges = Vec::new();
    let pd = |name: &str| index[&format!("pd:{name}")];
    for ch in &s.channels {
        let (a, b) = (pd(&s.pds[ch.a.pd].name), pd(&s.pds[ch.b.pd].name));
        let ids = format!("{}↔{}", ch.a.id, ch.b.id);
        if ch.a.notify || ch.b.notify || !(ch.a.pp || ch.b.pp) {
            edges.push(Edge {
                a,
                b,
                kind: EdgeKind::Notify {
                    to_b: ch.a.notify,
                    to_a: ch.b.notify,
                },
                label: ids.clone(),
            });
        }
        if ch.a.pp {
            edges.push(Edge {
                a,
                b,
                kind: EdgeKind::Ppc,
                label: format!("PPC {ids}"),
            });
        }
        if ch.b.pp {
            edges.push(Edge {
                a: b,
                b: a,
                kind: EdgeKind::Ppc,
                label: format!("PPC {ids}"),
            });
        }
    }
    for d in &s.blk {
        edges.push(Edge {
            a: pd(&d.driver),
            b: index[&format!("disk:{}", d.device)],
            kind: EdgeKind::Runs,
            label: String::new(),
        });
    }
    for p in &s.pds {
        if let Some(parent) = p.parent {
            edges.push(Edge {
                a: pd(&s.pds[parent].name),
                b: pd(&p.name),
                kind: EdgeKind::Child,
                label: format!("child {}", p.child_id.unwrap_or(0)),
            });
        }
        let owner = pd(&p.name);
        let mut maps: Vec<(usize, &crate::model::Map)> =
            p.maps.iter().map(|m| (owner, m)).collect();
        if let Some(vm) = &p.vm {
            let v = index[&format!("vm:{}", vm.name)];
            edges.push(Edge {
                a: owner,
                b: v,
                kind: EdgeKind::Runs,
                label: String::new(),
            });
            maps.extend(vm.maps.iter().map(|m| (v, m)));
        }
        for (o, m) in maps {
            if let Some(&r) = index.get(&format!("mr:{}", m.region)) {
                edges.push(Edge {
                    a: o,
                    b: r,
                    kind: EdgeKind::Map,
                    label: m.perms.to_string(),
                });
            }
        }
    }

    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">"#
    );
    let _ = writeln!(
        o,
        r##"<defs>
  <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#455a64"/></marker>
  <marker id="ppc" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#1565c0"/></marker>
  <marker id="child" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#7b1fa2"/></marker>
</defs>
<rect width="100%" height="100%" fill="white"/>"##
    );
    let _ = writeln!(
        o,
        r##"<text x="{MARGIN}" y="{}" font-size="16" font-weight="bold" fill="#263238">system on {}</text>"##,
        MARGIN + 4.0,
        esc(&s.board.name)
    );

    // Maps first, so that they sit under everything else. Each edge takes
    // the least bent curve that misses every other box and differs from the
    // curves already drawn between the same two boxes.
    let mut used: BTreeMap<(usize, usize), Vec<i32>> = BTreeMap::new();
    let under = [EdgeKind::Map, EdgeKind::Runs, EdgeKind::Child];
    for pass in 0..2 {
        for e in &edges {
            if (pass == 0) != under.contains(&e.kind) {
                continue;
            }
            let key = (e.a.min(e.b), e.a.max(e.b));
            let taken = used.entry(key).or_default();
            // Bends are measured for the pair's own direction so that the
            // two directions of a channel do not pick the same curve.
            let sign = if e.a <= e.b { 1 } else { -1 };
            let bend = BENDS
                .iter()
                .map(|b| b * sign)
                .filter(|b| !taken.contains(b))
                .find(|&b| !curve_hits(&nodes, e.a, e.b, b as f64))
                .or_else(|| BENDS.iter().map(|b| b * sign).find(|b| !taken.contains(b)))
                .unwrap_or(0);
            taken.push(bend);
            draw_edge(&mut o, &nodes[e.a], &nodes[e.b], e, bend as f64);
        }
    }
    for n in &nodes {
        draw_node(&mut o, n);
    }
    draw_legend(&mut o, legend_y);
    let _ = writeln!(o, "</svg>");
    o
}

fn draw_node(o: &mut String, n: &Node) {
    let (fill, stroke, dash, rx) = match n.kind {
        NodeKind::Pd => ("#dbe8f6", "#1e3a5f", "", 8.0),
        NodeKind::Vm => ("#f3e5f5", "#7b1fa2", r#" stroke-dasharray="6 4""#, 8.0),
        NodeKind::Region => ("#e8f5e9", "#33691e", "", 2.0),
        NodeKind::Disk => ("#fff3e0", "#e65100", "", 14.0),
    };
    let _ = writeln!(
        o,
        r#"<g id="{}"><rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" rx="{rx}" fill="{fill}" stroke="{stroke}" stroke-width="1.5"{dash}/>"#,
        esc(&n.key),
        n.x,
        n.y,
        n.w,
        n.h
    );
    let cx = n.x + n.w / 2.0;
    let _ = writeln!(
        o,
        r##"<text x="{cx:.1}" y="{:.1}" text-anchor="middle" font-size="{FONT}" font-weight="bold" fill="#102030">{}</text>"##,
        n.y + PAD + FONT,
        esc(&n.title)
    );
    for (i, l) in n.lines.iter().enumerate() {
        let _ = writeln!(
            o,
            r##"<text x="{cx:.1}" y="{:.1}" text-anchor="middle" font-size="{SMALL}" fill="#37474f">{}</text>"##,
            n.y + PAD + FONT + LINE * (i + 1) as f64,
            esc(l)
        );
    }
    let _ = writeln!(o, "</g>");
}

/// Sideways offsets tried for an edge's control point, least bent first.
const BENDS: [i32; 13] = [
    0, 45, -45, 90, -90, 135, -135, 180, -180, 240, -240, 320, -320,
];

/// The quadratic curve from box `a` to box `b` bent by `bend`: its start,
/// control point and end.
fn curve(a: &Node, b: &Node, bend: f64) -> ((f64, f64), (f64, f64), (f64, f64)) {
    let (ac, bc) = (a.centre(), b.centre());
    let (mx, my) = ((ac.0 + bc.0) / 2.0, (ac.1 + bc.1) / 2.0);
    let (dx, dy) = (bc.0 - ac.0, bc.1 - ac.1);
    let len = (dx * dx + dy * dy).sqrt().max(1.0);
    // A quadratic's midpoint lies halfway to its control point: double the
    // bend so that the curve itself moves by `bend`.
    let q = (mx - dy / len * bend * 2.0, my + dx / len * bend * 2.0);
    (a.border_towards(q.0, q.1), q, b.border_towards(q.0, q.1))
}

/// Whether the curve passes through a box other than its two ends.
fn curve_hits(nodes: &[Node], a: usize, b: usize, bend: f64) -> bool {
    let (p1, q, p2) = curve(&nodes[a], &nodes[b], bend);
    const MARGIN_BOX: f64 = 8.0;
    (1..40).any(|i| {
        let t = i as f64 / 40.0;
        let u = 1.0 - t;
        let x = u * u * p1.0 + 2.0 * u * t * q.0 + t * t * p2.0;
        let y = u * u * p1.1 + 2.0 * u * t * q.1 + t * t * p2.1;
        nodes.iter().enumerate().any(|(i, n)| {
            i != a
                && i != b
                && x > n.x - MARGIN_BOX
                && x < n.x + n.w + MARGIN_BOX
                && y > n.y - MARGIN_BOX
                && y < n.y + n.h + MARGIN_BOX
        })
    })
}

fn draw_edge(o: &mut String, a: &Node, b: &Node, e: &Edge, bend: f64) {
    let (p1, (qx, qy), p2) = curve(a, b, bend);
    let (stroke, width, dash, start, end) = match e.kind {
        EdgeKind::Notify { to_b, to_a } => (
            "#455a64",
            1.6,
            "",
            if to_a { "url(#arrow)" } else { "" },
            if to_b { "url(#arrow)" } else { "" },
        ),
        EdgeKind::Ppc => ("#1565c0", 3.0, "", "", "url(#ppc)"),
        EdgeKind::Map => ("#7cb342", 1.2, "5 4", "", ""),
        EdgeKind::Child => ("#7b1fa2", 1.6, "2 4", "", "url(#child)"),
        EdgeKind::Runs => ("#7b1fa2", 1.6, "6 4", "", ""),
    };
    let mut attrs = format!(r#"fill="none" stroke="{stroke}" stroke-width="{width}""#);
    if !dash.is_empty() {
        let _ = write!(attrs, r#" stroke-dasharray="{dash}""#);
    }
    if !start.is_empty() {
        let _ = write!(attrs, r#" marker-start="{start}""#);
    }
    if !end.is_empty() {
        let _ = write!(attrs, r#" marker-end="{end}""#);
    }
    let _ = writeln!(
        o,
        r#"<path d="M{:.1},{:.1} Q{qx:.1},{qy:.1} {:.1},{:.1}" {attrs}/>"#,
        p1.0, p1.1, p2.0, p2.1
    );
    if !e.label.is_empty() {
        // The curve's midpoint, where the label goes on a white patch.
        let lx = 0.25 * p1.0 + 0.5 * qx + 0.25 * p2.0;
        let ly = 0.25 * p1.1 + 0.5 * qy + 0.25 * p2.1;
        let w = e.label.chars().count() as f64 * SMALL * 0.62 + 8.0;
        let colour = match e.kind {
            EdgeKind::Ppc => "#1565c0",
            EdgeKind::Map => "#33691e",
            EdgeKind::Child | EdgeKind::Runs => "#7b1fa2",
            EdgeKind::Notify { .. } => "#37474f",
        };
        let _ = writeln!(
            o,
            r#"<rect x="{:.1}" y="{:.1}" width="{w:.1}" height="15" rx="3" fill="white" fill-opacity="0.9"/><text x="{lx:.1}" y="{:.1}" text-anchor="middle" font-size="{SMALL}" fill="{colour}">{}</text>"#,
            lx - w / 2.0,
            ly - 10.0,
            ly + 1.5,
            esc(&e.label)
        );
    }
}

type LegendItem = (&'static str, &'static str, &'static str, f64, &'static str);

const LEGEND: [LegendItem; 5] = [
    (
        "#455a64",
        "",
        "url(#arrow)",
        1.6,
        "notify (arrow: who is notified)",
    ),
    ("#1565c0", "", "url(#ppc)", 3.0, "PPC caller → callee"),
    ("#7cb342", "5 4", "", 1.2, "maps region (perms)"),
    ("#7b1fa2", "2 4", "url(#child)", 1.6, "parent → child"),
    ("#7b1fa2", "6 4", "", 1.6, "runs VM"),
];

fn legend_step(text: &str) -> f64 {
    48.0 + text.chars().count() as f64 * SMALL * 0.58
}

fn legend_width() -> f64 {
    LEGEND.iter().map(|i| legend_step(i.4)).sum()
}

fn draw_legend(o: &mut String, y: f64) {
    let mut x = MARGIN;
    for (stroke, dash, marker, width, text) in LEGEND {
        let mut attrs = format!(r#"stroke="{stroke}" stroke-width="{width}""#);
        if !dash.is_empty() {
            let _ = write!(attrs, r#" stroke-dasharray="{dash}""#);
        }
        if !marker.is_empty() {
            let _ = write!(attrs, r#" marker-end="{marker}""#);
        }
        let _ = writeln!(
            o,
            r##"<line x1="{x:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" {attrs}/><text x="{:.1}" y="{:.1}" font-size="{SMALL}" fill="#37474f">{}</text>"##,
            x + 34.0,
            x + 40.0,
            y + 4.0,
            esc(text)
        );
        x += legend_step(text);
    }
}

#[cfg(test)]
mod tests {
    use crate::{parse_str, Format};

    const SYS: &str = r#"
[system]
board = "qemu-virt"
[pd.client]
program = "client"
priority = 10
maps = [{ region = "buf", vaddr = 0x1000_0000, perms = "r" }]
[pd.server]
program = "server"
priority = 20
irqs = [{ device = "uart", id = 3 }]
maps = [{ region = "buf", vaddr = 0x1000_0000 }]
[pd.server.children.kid]
id = 4
program = "kid"
[region.buf]
size = "4 KiB"
[[channel]]
a = { pd = "client", id = 0, pp = true, notify = false }
b = { pd = "server", id = 1 }
"#;

    #[test]
    fn dot_names_every_part() {
        let s = parse_str("g.toml", SYS, Format::Toml).unwrap().system;
        let d = super::dot(&s);
        assert!(d.starts_with("digraph system {"));
        assert!(d.contains("\"pd:client\" -> \"pd:server\" [penwidth=2.5"));
        assert!(d.contains("dir=back"), "only the server end notifies:\n{d}");
        assert!(d.contains("label=\"child 4\""));
        assert!(d.contains("IRQ 33 (uart) → ch 3"));
        assert!(d.contains("\"mr:buf\""));
        // Line breaks in labels are DOT's `\n`, not an escaped backslash.
        assert!(d.contains("client\\nprio 10"), "{d}");
        assert!(!d.contains("\\\\n"), "{d}");
    }

    #[test]
    fn a_block_subsystem_shows_its_disk_and_partitions() {
        let text = r#"
[system]
board = "qemu-virt"
[pd.app]
program = "app"
[[virtio]]
name = "disk"
kind = "blk"
file = "d.img"
size = "8 MiB"
[blk.disk]
partitions = [{ name = "data", size = "2 MiB", client = "app" }, { name = "spare", size = "1 MiB" }]
"#;
        let s = parse_str("g.toml", text, Format::Toml).unwrap().system;
        let d = super::dot(&s);
        assert!(d.contains("\"pd:disk_driver\" -> \"disk:disk\""), "{d}");
        assert!(d.contains("1 data 2 MiB → app"), "{d}");
        assert!(d.contains("\"pd:disk_virt\" -> \"pd:app\""), "{d}");
        let svg = super::svg(&s);
        roxmltree::Document::parse(&svg).expect("well-formed SVG");
        assert!(svg.contains("id=\"disk:disk\"") && svg.contains("2 spare 1 MiB"));
    }

    #[test]
    fn svg_is_well_formed_and_complete() {
        let s = parse_str("g.toml", SYS, Format::Toml).unwrap().system;
        let svg = super::svg(&s);
        let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
        let ids: Vec<&str> = doc
            .descendants()
            .filter_map(|n| n.attribute("id"))
            .collect();
        for want in ["pd:client", "pd:server", "pd:kid", "mr:buf"] {
            assert!(ids.contains(&want), "{want} missing from {ids:?}");
        }
        // The server (priority 20) is drawn above the client (10).
        let y = |id: &str| {
            doc.descendants()
                .find(|n| n.attribute("id") == Some(id))
                .and_then(|g| g.first_element_child())
                .and_then(|r| r.attribute("y"))
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap()
        };
        assert!(y("pd:server") < y("pd:client"));
        assert!(svg.contains("marker-end=\"url(#ppc)\""));
    }
}
