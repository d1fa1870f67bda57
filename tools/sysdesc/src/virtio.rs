//! Virtio devices (`[[virtio]]`, Septa's addition): which of the board's
//! virtio-mmio transports each device sits on.
//!
//! The board profile lists the transports (devices whose `compatible` is
//! `virtio,mmio`, in address order); the tool gives each device one of them,
//! so that a region or IRQ naming the device (`device = "NAME"`) gets the
//! transport's registers and interrupt, and the QEMU command line attaches
//! the device to that transport (`bus=virtio-mmio-bus.SLOT`).
//!
//! A device may ask for a `slot`; the others are placed in the order they
//! are written, each on the highest free transport of the page that holds
//! the fewest devices so far. Several transports share a 4 KiB page (eight on QEMU `virt`),
//! and a PD that maps one can reach its page-mates, so the first devices get
//! a page each. On QEMU `virt` the order is slots 31, 23, 15, 7, 30, 22, ...:
//! the first matches the transport QEMU itself gives the first `-device` of
//! its command line (QEMU 7.2 hw/arm/virt.c creates the transports upwards
//! and a new bus is put first in the list that `-device` searches).

use std::path::Path;

use crate::board::{Board, Device};
use crate::check::SMALL_PAGE;
use crate::diag::{Kind, Sink, Span};
use crate::model::{Src, Virtio, VirtioKind};

/// What the front end read for one device, with the spans to report at.
pub(crate) struct Wanted {
    pub name: String,
    pub name_span: Option<Span>,
    pub kind: String,
    pub kind_span: Option<Span>,
    pub slot: Option<(i64, Option<Span>)>,
    pub file: Option<(String, Option<Span>)>,
    pub size: Option<(u64, Option<Span>)>,
    pub whole: Span,
}

/// A disk image the tool makes is whole MiB (partitions are MiB-aligned)
/// and at least 2 MiB.
pub const IMAGE_ALIGN: u64 = 1 << 20;
pub const MIN_IMAGE: u64 = 2 << 20;

/// The board's virtio-mmio transports, in address order.
pub fn transports(board: &Board) -> Vec<&Device> {
    let mut t: Vec<&Device> = board
        .devices
        .iter()
        .filter(|d| d.compatible == "virtio,mmio")
        .collect();
    t.sort_by_key(|d| d.range.base);
    t
}

/// The device a region or IRQ names: a virtio device's transport, else a
/// board device.
pub fn resolve<'a>(board: &'a Board, virtio: &[Virtio], name: &str) -> Option<&'a Device> {
    match virtio.iter().find(|v| v.name == name) {
        Some(v) => board.device(&v.transport),
        None => board.device(name),
    }
}

/// Checks the devices one by one and gives each a transport.
pub(crate) fn assign(
    sink: &mut Sink,
    board: &Board,
    base_dir: &Path,
    wanted: Vec<Wanted>,
) -> Vec<Virtio> {
    let slots = transports(board);
    if wanted.len() > slots.len() {
        sink.emit(
            Kind::TooManyVirtio {
                count: wanted.len(),
                max: slots.len(),
                board: board.name.clone(),
            },
            wanted.get(slots.len()).and_then(|w| w.name_span),
        );
        return Vec::new();
    }
    let mut taken: Vec<Option<String>> = vec![None; slots.len()];
    let mut names: Vec<&str> = Vec::new();
    // Explicit slots first, so that automatic placement avoids them.
    let mut chosen: Vec<Option<u64>> = Vec::with_capacity(wanted.len());
    for w in &wanted {
        let Some((slot, span)) = w.slot else {
            chosen.push(None);
            continue;
        };
        if slot < 0 || slot as usize >= slots.len() {
            sink.emit(
                Kind::VirtioSlotRange {
                    slot,
                    max: slots.len(),
                },
                span,
            );
            chosen.push(None);
            continue;
        }
        let i = slot as usize;
        if let Some(other) = &taken[i] {
            sink.emit(
                Kind::VirtioSlotTaken {
                    slot: slot as u64,
                    other: other.clone(),
                },
                span,
            );
        } else {
            taken[i] = Some(w.name.clone());
        }
        chosen.push(Some(slot as u64));
    }
    let page_of = |i: usize| slots[i].range.base / SMALL_PAGE;
    let mut out = Vec::new();
    for (w, explicit) in wanted.iter().zip(chosen) {
        if names.contains(&w.name.as_str()) {
            sink.emit(Kind::DuplicateVirtio(w.name.clone()), w.name_span);
        }
        names.push(&w.name);
        let plain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if w.name.is_empty() || !w.name.chars().all(plain) {
            sink.emit(Kind::VirtioName(w.name.clone()), w.name_span);
        }
        if board.device(&w.name).is_some() {
            sink.emit(
                Kind::VirtioNameClash {
                    name: w.name.clone(),
                    board: board.name.clone(),
                },
                w.name_span,
            );
        }
        let kind = VirtioKind::parse(&w.kind);
        if kind.is_none() {
            sink.emit(Kind::VirtioKind(w.kind.clone()), w.kind_span);
        }
        match (&w.file, kind) {
            (None, Some(VirtioKind::Blk)) => {
                sink.emit(Kind::VirtioFileMissing(w.name.clone()), w.name_span)
            }
            (Some((_, span)), Some(k)) if k != VirtioKind::Blk => {
                sink.emit(Kind::VirtioFileUnexpected(k.to_string()), *span)
            }
            // With a size the tool makes the image when it is missing.
            (Some((path, span)), _) if w.size.is_none() => {
                backing_file(sink, base_dir, path, *span)
            }
            _ => {}
        }
        match (&w.size, kind) {
            (Some((_, span)), Some(k)) if k != VirtioKind::Blk => {
                sink.emit(Kind::VirtioFileUnexpected(k.to_string()), *span)
            }
            (Some((size, span)), _) if *size < MIN_IMAGE || !size.is_multiple_of(IMAGE_ALIGN) => {
                sink.emit(Kind::VirtioImageSize(*size), *span)
            }
            _ => {}
        }
        let slot = match explicit {
            Some(s) => s as usize,
            None => {
                let crowd = |i: usize| {
                    (0..slots.len())
                        .filter(|&j| taken[j].is_some() && page_of(j) == page_of(i))
                        .count()
                };
                // The free transport in the least crowded page, the
                // highest such; more devices than slots was reported above.
                let best = (0..slots.len())
                    .rev()
                    .filter(|&i| taken[i].is_none())
                    .min_by_key(|&i| crowd(i));
                let Some(i) = best else { continue };
                taken[i] = Some(w.name.clone());
                i
            }
        };
        let mut src = Src::new(w.whole)
            .with("name", w.name_span)
            .with("kind", w.kind_span);
        if let Some((_, span)) = w.slot {
            src = src.with("slot", span);
        }
        out.push(Virtio {
            name: w.name.clone(),
            kind: kind.unwrap_or(VirtioKind::Console),
            slot: slot as u64,
            transport: slots[slot].name.clone(),
            file: w.file.as_ref().map(|(p, _)| p.into()),
            size: w.size.map(|(s, _)| s),
            src,
        });
    }
    out
}

/// A block device's backing file must be a readable file.
fn backing_file(sink: &mut Sink, base: &Path, path: &str, span: Option<Span>) {
    if let Some(reason) = unreadable(base, path) {
        sink.emit(
            Kind::VirtioFileUnreadable {
                path: path.to_string(),
                reason,
            },
            span,
        );
    }
}

/// Why `base/path` is not a file the tool can read, if it is not.
pub(crate) fn unreadable(base: &Path, path: &str) -> Option<String> {
    match std::fs::metadata(base.join(path)) {
        Ok(m) if m.is_file() => None,
        Ok(_) => Some("not a file".to_string()),
        Err(e) => Some(e.kind().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Source;

    fn want(name: &str, kind: &str, slot: Option<i64>) -> Wanted {
        Wanted {
            name: name.into(),
            name_span: None,
            kind: kind.into(),
            kind_span: None,
            slot: slot.map(|s| (s, None)),
            file: None,
            size: None,
            whole: Span::new(0, 0),
        }
    }

    fn run(w: Vec<Wanted>) -> (Vec<Virtio>, Vec<String>) {
        let source = Source::new("t.toml", "");
        let mut sink = Sink::new(&source);
        let v = assign(&mut sink, &Board::qemu_virt(), Path::new("."), w);
        (v, sink.out.iter().map(|d| d.code().to_string()).collect())
    }

    #[test]
    fn qemu_virt_has_32_transports_from_0x0a00_0000() {
        let b = Board::qemu_virt();
        let t = transports(&b);
        assert_eq!(t.len(), 32);
        assert_eq!(t[0].range.base, 0x0a00_0000);
        assert_eq!(t[31].range.base, 0x0a00_3e00);
        assert_eq!(t[31].irqs, [79]);
    }

    #[test]
    fn devices_get_a_page_each_from_the_top_then_share() {
        let names = ["a", "b", "c", "d", "e", "f"];
        let (v, errs) = run(names.iter().map(|n| want(n, "console", None)).collect());
        assert!(errs.is_empty(), "{errs:?}");
        let slots: Vec<u64> = v.iter().map(|d| d.slot).collect();
        assert_eq!(slots, [31, 23, 15, 7, 30, 22]);
        assert_eq!(v[0].transport, "virtio-mmio31");
    }

    #[test]
    fn explicit_slots_are_kept_and_avoided() {
        let (v, errs) = run(vec![want("a", "net", None), want("b", "blk", Some(31))]);
        // `b` has no file: reported, but it still gets its slot.
        assert_eq!(errs, ["septa::virtio::file_missing"]);
        assert_eq!((v[0].slot, v[1].slot), (23, 31));
    }

    #[test]
    fn a_full_board_places_every_device() {
        let (v, errs) = run((0..32)
            .map(|i| want(&format!("d{i}"), "net", None))
            .collect());
        assert!(errs.is_empty(), "{errs:?}");
        let mut slots: Vec<u64> = v.iter().map(|d| d.slot).collect();
        slots.sort();
        assert_eq!(slots, (0..32).collect::<Vec<u64>>());
        let (_, errs) = run((0..33)
            .map(|i| want(&format!("d{i}"), "net", None))
            .collect());
        assert_eq!(errs, ["septa::virtio::too_many"]);
    }

    #[test]
    fn regions_and_irqs_naming_a_device_get_its_transport() {
        let text = r#"
[system]
board = "qemu-virt"

[pd.d]
program = "d"
maps = [{ region = "regs", vaddr = 0x2000_0000, cached = false, setvar_device = "regs" }]
irqs = [{ device = "con", id = 1 }]

[region.regs]
device = "con"

[[virtio]]
name = "net0"
kind = "net"

[[virtio]]
name = "con"
kind = "console"
"#;
        let s = crate::parse_str("v.toml", text, crate::Format::Toml)
            .unwrap_or_else(|r| panic!("{}", r.one_line()))
            .system;
        assert_eq!(s.virtio_device("net0").unwrap().slot, 31);
        let con = s.virtio_device("con").unwrap();
        assert_eq!((con.slot, con.transport.as_str()), (23, "virtio-mmio23"));
        // Transport 23 sits at 0x0a00_2e00, in the page at 0x0a00_2000.
        let r = s.region("regs").unwrap();
        assert_eq!((r.phys, r.size), (Some(0x0a00_2000), 0x1000));
        assert_eq!(s.device("con").unwrap().range.base, 0x0a00_2e00);
        match &s.pds[0].irqs[0].kind {
            crate::IrqKind::Arm { irq, trigger, .. } => {
                assert_eq!((*irq, *trigger), (48 + 23, crate::Trigger::Edge))
            }
            other => panic!("{other:?}"),
        }
    }
}
