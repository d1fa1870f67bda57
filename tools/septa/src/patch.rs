//! Patching: the values the tool writes into each PD's image before its
//! segments become frame contents, exactly as Microkit 2.3.0's tool does.
//!
//! Every PD gets libmicrokit's symbols (`microkit_name`, NUL-padded to 64
//! bytes; `microkit_passive`, one byte; the masks `microkit_irqs`,
//! `microkit_notifications`, `microkit_pps`, `microkit_ioports`, one bit per
//! channel id), then each `setvar` the description gives it: a map's vaddr,
//! size or prefill size, a region's physical address, or the id of a
//! channel end, IRQ, child or vCPU. A setvar must name an 8-byte symbol
//! (Microkit's rule, so a patch never spills into a neighbour).
//!
//! Input: the validated `System`, the chosen physical addresses of regions,
//! and the images. Output: the images, patched; or an error naming the PD
//! and the symbol.

use std::collections::HashMap;
use std::path::PathBuf;

use septa_abi::microkit::PD_NAME_LENGTH;
use septa_sysdesc::{Prefill, SetValue, System};

use crate::elf::{ElfError, ElfImage};

/// What a write is, for error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// One of libmicrokit's symbols: the symbol must be at least as large
    /// as the value.
    Microkit,
    /// A `setvar` of a word: the symbol must be exactly 8 bytes, or for
    /// `NAME[INDEX]` an array of 8-byte words that holds element INDEX.
    Setvar,
    /// A value the tool offers a VMM PD (see [`vm_writes`]): written if the
    /// program declares the symbol (8 bytes), skipped if not.
    Offered,
    /// A text setvar: written NUL-padded over the whole symbol, which must
    /// be longer than the text, or for `NAME[INDEX]` over element INDEX of
    /// an array of [`SetValue::TEXT_ELEMENT`]-byte elements.
    Text,
    /// Bytes a subsystem's expansion computed: the symbol must be exactly
    /// as large as they are.
    Const,
}

/// One value to write at a symbol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    pub symbol: String,
    pub bytes: Vec<u8>,
    pub kind: Kind,
}

impl Write {
    fn word(symbol: &str, value: u64, kind: Kind) -> Write {
        Write {
            symbol: symbol.to_string(),
            bytes: value.to_le_bytes().to_vec(),
            kind,
        }
    }

    /// The value as a number, for reports (names print as text).
    pub fn describe(&self) -> String {
        if self.kind == Kind::Const {
            return format!("{} bytes", self.bytes.len());
        }
        match self.bytes.len() {
            _ if self.kind == Kind::Text => format!("{:?}", String::from_utf8_lossy(&self.bytes)),
            8 => format!(
                "{:#x}",
                u64::from_le_bytes(self.bytes[..8].try_into().unwrap())
            ),
            1 => format!("{}", self.bytes[0]),
            _ => format!(
                "{:?}",
                String::from_utf8_lossy(&self.bytes).trim_end_matches('\0')
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error("PD `{pd}`: its program {path} has no symbol `{symbol}` ({why})")]
    Missing {
        pd: String,
        path: PathBuf,
        symbol: String,
        why: &'static str,
    },
    #[error("PD `{pd}`: symbol `{symbol}` is {size} bytes, but {want}")]
    Size {
        pd: String,
        symbol: String,
        size: u64,
        want: String,
    },
    #[error("PD `{pd}`: region `{region}` has no physical address for setvar `{symbol}`")]
    NoPaddr {
        pd: String,
        region: String,
        symbol: String,
    },
    #[error("PD `{pd}`: {0}", pd = .1)]
    Elf(#[source] ElfError, String),
}

/// Every write for PD `pd`. `paddrs` gives the physical address of each
/// region that has one (fixed in the description or chosen by the tool).
pub fn writes_for(
    system: &System,
    pd: usize,
    paddrs: &HashMap<String, u64>,
) -> Result<Vec<Write>, PatchError> {
    let p = &system.pds[pd];
    let mut out = Vec::new();
    let mut name = p.name.as_bytes().to_vec();
    name.resize(PD_NAME_LENGTH, 0);
    out.push(Write {
        symbol: "microkit_name".into(),
        bytes: name,
        kind: Kind::Microkit,
    });
    out.push(Write {
        symbol: "microkit_passive".into(),
        bytes: vec![u8::from(p.passive)],
        kind: Kind::Microkit,
    });
    let mut notifications = 0u64;
    let mut pps = 0u64;
    let mut setvars = Vec::new();
    for ch in &system.channels {
        for end in [&ch.a, &ch.b] {
            if end.pd != pd {
                continue;
            }
            if end.notify {
                notifications |= 1 << end.id;
            }
            if end.pp {
                pps |= 1 << end.id;
            }
            if let Some(s) = &end.setvar_id {
                setvars.push(Write::word(s, end.id, Kind::Setvar));
            }
        }
    }
    let irqs = p.irqs.iter().fold(0u64, |m, i| m | 1 << i.id);
    let ioports = p.ioports.iter().fold(0u64, |m, i| m | 1 << i.id);
    for (sym, value) in [
        ("microkit_irqs", irqs),
        ("microkit_notifications", notifications),
        ("microkit_pps", pps),
        ("microkit_ioports", ioports),
    ] {
        out.push(Write::word(sym, value, Kind::Microkit));
    }
    for irq in &p.irqs {
        if let Some(s) = &irq.setvar_id {
            setvars.push(Write::word(s, irq.id, Kind::Setvar));
        }
    }
    let vm_maps = p.vm.iter().flat_map(|v| v.maps.iter());
    for m in p.maps.iter().chain(vm_maps) {
        let region = system
            .region(&m.region)
            .expect("the front end checked every map's region");
        if let Some(s) = &m.setvar_vaddr {
            setvars.push(Write::word(s, m.vaddr, Kind::Setvar));
        }
        if let Some(s) = &m.setvar_size {
            setvars.push(Write::word(s, region.size, Kind::Setvar));
        }
        // The device's registers (the front end checked that a region
        // with these setvars names a device).
        let device = || {
            region
                .device
                .as_deref()
                .and_then(|d| system.device(d))
                .expect("the front end checked that the region covers a device")
        };
        if let Some(s) = &m.setvar_device {
            // They sit at their offset in the region's first page.
            let dev = device();
            let offset = dev.range.base - region.phys.unwrap_or(dev.range.base);
            setvars.push(Write::word(s, m.vaddr + offset, Kind::Setvar));
        }
        if let Some(s) = &m.setvar_device_size {
            setvars.push(Write::word(s, device().range.size, Kind::Setvar));
        }
        if let Some(s) = &m.setvar_prefill_size {
            let len = match &region.prefill {
                Some(Prefill::File { len, .. }) => *len,
                _ => region.size,
            };
            setvars.push(Write::word(s, len, Kind::Setvar));
        }
    }
    for sv in &p.setvars {
        let size_of = |r: &str| system.region(r).map(|r| r.size);
        let write = match &sv.value {
            SetValue::Paddr(r) => {
                let paddr = paddrs.get(r).copied().ok_or_else(|| PatchError::NoPaddr {
                    pd: p.name.clone(),
                    region: r.clone(),
                    symbol: sv.symbol.clone(),
                })?;
                Write::word(&sv.symbol, paddr, Kind::Setvar)
            }
            SetValue::Size(r) => Write::word(
                &sv.symbol,
                size_of(r).expect("the front end checked the region"),
                Kind::Setvar,
            ),
            SetValue::Number(n) => Write::word(&sv.symbol, *n, Kind::Setvar),
            SetValue::Text(t) => Write {
                symbol: sv.symbol.clone(),
                bytes: t.as_bytes().to_vec(),
                kind: Kind::Text,
            },
        };
        setvars.push(write);
    }
    for (_, child) in system.children(pd) {
        if let (Some(s), Some(id)) = (&child.setvar_id, child.child_id) {
            setvars.push(Write::word(s, id, Kind::Setvar));
        }
    }
    if let Some(vm) = &p.vm {
        for v in &vm.vcpus {
            if let Some(s) = &v.setvar_id {
                setvars.push(Write::word(s, v.id, Kind::Setvar));
            }
        }
    }
    for io in &p.ioports {
        if let Some(s) = &io.setvar_id {
            setvars.push(Write::word(s, io.id, Kind::Setvar));
        }
        if let Some(s) = &io.setvar_addr {
            setvars.push(Write::word(s, io.addr, Kind::Setvar));
        }
    }
    for c in &p.consts {
        setvars.push(Write {
            symbol: c.symbol.clone(),
            bytes: c.bytes.clone(),
            kind: Kind::Const,
        });
    }
    out.extend(setvars);
    out.extend(vm_writes(system, pd));
    Ok(out)
}

/// What the tool offers a PD that runs a VM, besides its guest's files
/// ([`crate::guests`]):
///
/// | symbol | value |
/// |---|---|
/// | `septa_vm_ram_gpa`, `septa_vm_ram_size` | the guest's RAM, guest-physical |
/// | `septa_vm_ram_vaddr` | where the PD maps that RAM, if it maps it as one span |
/// | `septa_vm_vcpus` | the vCPU ids in the description's order, a byte each, 0xff after the last |
/// | `septa_vm_shared_gpa`, `_size`, `_vaddr` | a sealed guest's shared window, guest-physical, and where the PD maps it |
/// | `septa_vm_blk` | the guest's `blk` device's transport slot plus one, when the PD is a `[blk]` partition's client |
pub fn vm_writes(system: &System, pd: usize) -> Vec<Write> {
    let Some(vm) = &system.pds[pd].vm else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let ram = vm.ram(|n| system.region(n).map(|r| r.size));
    if let Some(first) = ram.first() {
        let end = ram.iter().map(|r| r.0 + r.1).max().unwrap_or(first.0);
        out.push(Write::word("septa_vm_ram_gpa", first.0, Kind::Offered));
        out.push(Write::word(
            "septa_vm_ram_size",
            end - first.0,
            Kind::Offered,
        ));
    }
    if let Ok(vaddr) = crate::guests::vmm_ram_vaddr(system, pd) {
        out.push(Write::word("septa_vm_ram_vaddr", vaddr, Kind::Offered));
    }
    // A sealed guest's shared window, where the VMM maps it.
    if let Some((gpa, size)) = vm.guest.shared {
        let window = vm.maps.iter().find(|m| m.vaddr == gpa).and_then(|vm_map| {
            system.pds[pd]
                .maps
                .iter()
                .find(|m| m.region == vm_map.region)
        });
        if let Some(m) = window {
            out.push(Write::word("septa_vm_shared_gpa", gpa, Kind::Offered));
            out.push(Write::word("septa_vm_shared_size", size, Kind::Offered));
            out.push(Write::word("septa_vm_shared_vaddr", m.vaddr, Kind::Offered));
        }
    }
    // The guest's disk, when the VMM is the client of a [blk] partition:
    // its transport slot plus one.
    let name = &system.pds[pd].name;
    let client = system
        .blk
        .iter()
        .flat_map(|d| &d.partitions)
        .any(|p| p.client.as_deref() == Some(name.as_str()));
    let disk = vm
        .guest
        .devices
        .iter()
        .find(|d| d.kind == septa_sysdesc::VirtioKind::Blk);
    if let (true, Some(d)) = (client, disk) {
        out.push(Write::word(
            "septa_vm_blk",
            u64::from(d.slot) + 1,
            Kind::Offered,
        ));
    }
    // The guest's virtio console: its transport slot plus one.
    if let Some(d) = vm
        .guest
        .devices
        .iter()
        .find(|d| d.kind == septa_sysdesc::VirtioKind::Console)
    {
        out.push(Write::word(
            "septa_vm_console",
            u64::from(d.slot) + 1,
            Kind::Offered,
        ));
    }
    let mut ids = [0xffu8; 8];
    for (slot, v) in ids.iter_mut().zip(&vm.vcpus) {
        *slot = v.id as u8;
    }
    out.push(Write::word(
        "septa_vm_vcpus",
        u64::from_le_bytes(ids),
        Kind::Offered,
    ));
    out
}

/// Applies `writes` to `image`, finding the symbols in `symbols` (the
/// description's `symbols` image) or else in the image itself.
pub fn apply(
    pd: &str,
    image: &mut ElfImage,
    symbols: Option<&ElfImage>,
    writes: &[Write],
) -> Result<(), PatchError> {
    for w in writes {
        let table = symbols.unwrap_or(image);
        // The front end accepted only names and `NAME[INDEX]`.
        let (name, index) = septa_sysdesc::split_symbol(&w.symbol).unwrap_or((&w.symbol, None));
        let Some((addr, size)) = table.symbol(name) else {
            if w.kind == Kind::Offered {
                continue;
            }
            return Err(PatchError::Missing {
                pd: pd.to_string(),
                path: table.path.clone(),
                symbol: name.to_string(),
                why: match w.kind {
                    Kind::Microkit => "every PD must link septa-runtime or libmicrokit",
                    Kind::Setvar | Kind::Text => "the description sets it with a setvar",
                    Kind::Offered => unreachable!("skipped above"),
                    Kind::Const => "a subsystem the description declares writes it",
                },
            });
        };
        let (offset, bytes) = placement(w, index, size).map_err(|want| PatchError::Size {
            pd: pd.to_string(),
            symbol: name.to_string(),
            size,
            want,
        })?;
        image
            .write(addr + offset, &bytes)
            .map_err(|e| PatchError::Elf(e, pd.to_string()))?;
    }
    Ok(())
}

/// Where in a symbol of `size` bytes write `w` goes (element `index`, if
/// given) and the bytes it writes there; or what the symbol should have
/// been.
fn placement(w: &Write, index: Option<u32>, size: u64) -> Result<(u64, Vec<u8>), String> {
    let len = w.bytes.len() as u64;
    match (w.kind, index) {
        (Kind::Microkit, _) if size >= len => Ok((0, w.bytes.clone())),
        (Kind::Microkit, _) => Err(format!("the tool writes {len}")),
        (Kind::Setvar | Kind::Offered, None) if size == 8 => Ok((0, w.bytes.clone())),
        (Kind::Setvar | Kind::Offered, None) => Err("a setvar must be an 8-byte word".to_string()),
        (Kind::Const, None) if size == len => Ok((0, w.bytes.clone())),
        (Kind::Const, None) => Err(format!("the tool writes exactly {len}")),
        (Kind::Text, None) if size > len => {
            let mut bytes = w.bytes.clone();
            bytes.resize(size as usize, 0);
            Ok((0, bytes))
        }
        (Kind::Text, None) => Err(format!("the text is {len} bytes, and a NUL must follow it")),
        (kind, Some(i)) => {
            let element = if kind == Kind::Text {
                SetValue::TEXT_ELEMENT
            } else {
                8
            };
            let offset = u64::from(i) * element;
            if !size.is_multiple_of(element) || offset + element > size {
                return Err(format!(
                    "element {i} needs an array of at least {} {element}-byte elements",
                    i + 1
                ));
            }
            let mut bytes = w.bytes.clone();
            bytes.resize(element as usize, 0);
            Ok((offset, bytes))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::tests::sample;
    use std::path::Path;

    const SYSTEM: &str = r#"
[system]
board = "qemu-virt"

[pd.server]
program = "server"
priority = 200
passive = true
maps = [{ region = "shared", vaddr = 0x3000_0000, setvar_vaddr = "shared_vaddr", setvar_size = "shared_size" }]
irqs = [{ irq = 40, id = 3, setvar_id = "irq_ch" }]
setvars = [{ symbol = "shared_paddr", region = "shared" }]

[pd.client]
program = "client"
priority = 100

[region.shared]
size = "8 KiB"

[[channel]]
a = { pd = "client", id = 1, pp = true, notify = false }
b = { pd = "server", id = 2, setvar_id = "client_ch" }

[[channel]]
a = { pd = "client", id = 5 }
b = { pd = "server", id = 0 }
"#;

    fn system() -> System {
        septa_sysdesc::parse_str("t.toml", SYSTEM, septa_sysdesc::Format::Toml)
            .map_err(|r| r.render())
            .unwrap()
            .system
    }

    fn value(ws: &[Write], sym: &str) -> Vec<u8> {
        ws.iter()
            .find(|w| w.symbol == sym)
            .unwrap_or_else(|| panic!("no write of {sym}"))
            .bytes
            .clone()
    }

    fn word(ws: &[Write], sym: &str) -> u64 {
        u64::from_le_bytes(value(ws, sym).try_into().unwrap())
    }

    #[test]
    fn masks_follow_channel_ends_and_irqs() {
        let s = system();
        let paddrs = HashMap::from([("shared".to_string(), 0xa000_0000)]);
        let server = writes_for(&s, 0, &paddrs).unwrap();
        assert_eq!(&value(&server, "microkit_name")[..7], b"server\0");
        assert_eq!(value(&server, "microkit_name").len(), 64);
        assert_eq!(value(&server, "microkit_passive"), [1]);
        assert_eq!(word(&server, "microkit_irqs"), 1 << 3);
        // The server may notify on both channels; it may call neither.
        assert_eq!(word(&server, "microkit_notifications"), 1 << 2 | 1 << 0);
        assert_eq!(word(&server, "microkit_pps"), 0);
        assert_eq!(word(&server, "shared_vaddr"), 0x3000_0000);
        assert_eq!(word(&server, "shared_size"), 0x2000);
        assert_eq!(word(&server, "shared_paddr"), 0xa000_0000);
        assert_eq!(word(&server, "irq_ch"), 3);
        assert_eq!(word(&server, "client_ch"), 2);
        let client = writes_for(&s, 1, &paddrs).unwrap();
        assert_eq!(word(&client, "microkit_pps"), 1 << 1);
        assert_eq!(word(&client, "microkit_notifications"), 1 << 5);
        assert_eq!(value(&client, "microkit_passive"), [0]);
    }

    #[test]
    fn setvar_device_points_at_the_registers_inside_the_page_and_sizes_them() {
        let text = r#"
[system]
board = "qemu-virt"

[pd.d]
program = "d"
maps = [
    { region = "con", vaddr = 0x2000_0000, cached = false, setvar_device = "con_regs", setvar_device_size = "con_size" },
    { region = "uart", vaddr = 0x2100_0000, cached = false, setvar_device = "uart_regs", setvar_device_size = "uart_size" },
]

[region.con]
device = "con"

[region.uart]
device = "uart"

[[virtio]]
name = "con"
kind = "console"
"#;
        let s = septa_sysdesc::parse_str("d.toml", text, septa_sysdesc::Format::Toml)
            .map_err(|r| r.render())
            .unwrap()
            .system;
        let w = writes_for(&s, 0, &HashMap::new()).unwrap();
        // The first virtio device takes transport 31, at 0x0a00_3e00.
        assert_eq!(word(&w, "con_regs"), 0x2000_0e00);
        assert_eq!(word(&w, "uart_regs"), 0x2100_0000);
        // Sizes from the board profile: a transport's registers, not its page.
        assert_eq!(word(&w, "con_size"), 0x200);
        assert_eq!(word(&w, "uart_size"), 0x1000);
    }

    #[test]
    fn a_region_without_an_address_cannot_be_a_setvar() {
        let err = writes_for(&system(), 0, &HashMap::new()).unwrap_err();
        assert!(matches!(err, PatchError::NoPaddr { .. }), "{err}");
    }

    #[test]
    fn apply_writes_at_the_symbols_and_checks_sizes() {
        let mut img = sample();
        let writes = vec![
            Write::word("microkit_irqs", 0x8, Kind::Microkit),
            Write::word("in_bss", 0x1234, Kind::Setvar),
        ];
        apply("p", &mut img, None, &writes).unwrap();
        assert_eq!(img.read_bytes(0x20_2048, 8).unwrap(), 8u64.to_le_bytes());
        assert_eq!(
            img.read_bytes(0x20_2800, 8).unwrap(),
            0x1234u64.to_le_bytes()
        );

        let err = apply("p", &mut img, None, &[Write::word("wide", 1, Kind::Setvar)]);
        assert!(matches!(err, Err(PatchError::Size { size: 4, .. })));
        let err = apply("p", &mut img, None, &[Write::word("nope", 1, Kind::Setvar)]);
        assert!(matches!(err, Err(PatchError::Missing { .. })));
    }

    #[test]
    fn a_symbols_image_supplies_the_addresses() {
        let mut img = sample();
        let mut syms = sample();
        syms.path = Path::new("symbols.elf").to_path_buf();
        let mut only = ElfImage::synthetic(0, vec![], &[("microkit_pps", 0x20_2100, 8)]);
        only.path = syms.path.clone();
        apply(
            "p",
            &mut img,
            Some(&only),
            &[Write::word("microkit_pps", 5, Kind::Microkit)],
        )
        .unwrap();
        assert_eq!(img.read_bytes(0x20_2100, 8).unwrap(), 5u64.to_le_bytes());
        // The image's own table is not consulted when a symbols image is given.
        let err = apply(
            "p",
            &mut img,
            Some(&only),
            &[Write::word("microkit_irqs", 5, Kind::Microkit)],
        );
        assert!(matches!(err, Err(PatchError::Missing { .. })));
    }

    #[test]
    fn setvars_write_sizes_numbers_texts_and_array_elements() {
        let text = r#"
[system]
board = "qemu-virt"

[pd.v]
program = "v"
setvars = [
    { symbol = "buf_paddr", region = "buf" },
    { symbol = "sizes[2]", region_size = "buf" },
    { symbol = "count", value = 3 },
    { symbol = "names[1]", text = "client" },
]

[region.buf]
size = "12 KiB"
"#;
        let s = septa_sysdesc::parse_str("v.toml", text, septa_sysdesc::Format::Toml)
            .map_err(|r| r.render())
            .unwrap()
            .system;
        let paddrs = HashMap::from([("buf".to_string(), 0x4000_0000)]);
        let w = writes_for(&s, 0, &paddrs).unwrap();
        assert_eq!(word(&w, "buf_paddr"), 0x4000_0000);
        assert_eq!(word(&w, "sizes[2]"), 0x3000);
        assert_eq!(word(&w, "count"), 3);
        assert_eq!(value(&w, "names[1]"), b"client");

        let mut img = ElfImage::synthetic(
            0,
            vec![crate::elf::Segment {
                vaddr: 0x20_0000,
                data: vec![0xff; 0x400],
                mem_size: 0x400,
                read: true,
                write: true,
                execute: false,
            }],
            &[
                ("buf_paddr", 0x20_0000, 8),
                ("sizes", 0x20_0008, 32),
                ("count", 0x20_0028, 8),
                ("names", 0x20_0100, 128),
            ],
        );
        let setvars: Vec<Write> = w.into_iter().filter(|w| w.kind != Kind::Microkit).collect();
        apply("v", &mut img, None, &setvars).unwrap();
        let word_at = |img: &ElfImage, a| {
            u64::from_le_bytes(img.read_bytes(a, 8).unwrap().try_into().unwrap())
        };
        assert_eq!(word_at(&img, 0x20_0018), 0x3000, "element 2 of sizes");
        assert_eq!(word_at(&img, 0x20_0010), u64::MAX, "element 1 untouched");
        let name = img.read_bytes(0x20_0140, 64).unwrap();
        assert_eq!(&name[..7], b"client\0");
        assert!(name[7..].iter().all(|&b| b == 0), "NUL-padded");
        assert_eq!(img.read_bytes(0x20_0100, 1).unwrap(), [0xff]);
    }

    #[test]
    fn array_elements_and_texts_must_fit_their_symbols() {
        let mut img = sample();
        let text = |sym: &str, t: &str| Write {
            symbol: sym.into(),
            bytes: t.as_bytes().to_vec(),
            kind: Kind::Text,
        };
        // `in_bss` is one word: element 0 fits, element 1 does not.
        apply(
            "p",
            &mut img,
            None,
            &[Write::word("in_bss[0]", 7, Kind::Setvar)],
        )
        .unwrap();
        for bad in [
            Write::word("in_bss[1]", 7, Kind::Setvar),
            Write::word("wide[0]", 7, Kind::Setvar),
            text("in_bss", "eight by"),
            text("in_bss[0]", "x"),
            text("microkit_name[1]", "x"),
        ] {
            let err = apply("p", &mut img, None, std::slice::from_ref(&bad));
            assert!(
                matches!(err, Err(PatchError::Size { .. })),
                "{bad:?}: {err:?}"
            );
        }
        apply("p", &mut img, None, &[text("in_bss", "seven b")]).unwrap();
        assert_eq!(img.read_bytes(0x20_2800, 8).unwrap(), b"seven b\0");
        apply("p", &mut img, None, &[text("microkit_name[0]", "pd")]).unwrap();
    }
}
