//! What the kernel reads of the flattened device tree the loader hands
//! over, in one pass over its structure block: the memory node, the
//! PL011s, the GICv2 and `/chosen`'s `stdout-path` (and `/aliases`, which
//! that path may name).
//!
//! Boot took about 160,000 instructions to read these with the `fdt` crate
//! on QEMU virt (its node iterator parses every property of every node and
//! checks every name as UTF-8); this walk compares bytes and keeps slices
//! into the blob. Nothing here allocates or panics: a blob that is not a
//! device tree, is cut short or points outside itself gives an error, and
//! boot then falls back to the board's defaults as it did before.
//!
//! Format facts (the Devicetree Specification 0.4, chapter 5): a header of
//! big-endian words, a structure block of 4-byte aligned tokens
//! (BEGIN_NODE with the NUL-terminated name, END_NODE, PROP with length
//! and name offset into the strings block, NOP, END), and a node's `reg`
//! read with its parent's `#address-cells` (default 2) and `#size-cells`
//! (default 1).

/// The header's magic word.
const MAGIC: u32 = 0xd00d_feed;
const BEGIN_NODE: u32 = 1;
const END_NODE: u32 = 2;
const PROP: u32 = 3;
const NOP: u32 = 4;
const END: u32 = 9;

/// Nodes deeper than this are walked but not remembered by path.
const MAX_DEPTH: usize = 8;
/// PL011 nodes remembered, in tree order.
pub const PL011_NODES: usize = 4;

/// Compatible strings of the GICv2 the kernel drives.
const GIC_COMPATIBLE: [&[u8]; 3] = [b"arm,cortex-a15-gic", b"arm,gic-400", b"arm,cortex-a7-gic"];

/// Why a blob was not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// No magic, or a header that does not fit the blob.
    BadHeader,
    /// A token, name or property runs past its block, or an unknown token.
    BadStructure,
}

/// A node's `reg`, with the cell counts of its parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reg<'a> {
    bytes: &'a [u8],
    address_cells: u32,
    size_cells: u32,
}

impl<'a> Reg<'a> {
    /// The (address, size) pairs. Addresses of more than two cells keep
    /// their low 64 bits; a size of zero cells reads as 0.
    pub fn regions(&self) -> impl Iterator<Item = (u64, u64)> + 'a {
        let (ac, sc) = (self.address_cells as usize, self.size_cells as usize);
        let entry = (ac + sc) * 4;
        let bytes = if entry == 0 { &[][..] } else { self.bytes };
        bytes
            .chunks_exact(entry.max(1))
            .map(move |e| (cells(&e[..ac * 4]), cells(&e[ac * 4..])))
    }
}

/// A node the kernel remembers: its `reg` (if any) and where it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Node<'a> {
    pub reg: Option<Reg<'a>>,
    /// The names from the root's child down to the node itself.
    path: [&'a [u8]; MAX_DEPTH],
    depth: usize,
}

impl Node<'_> {
    /// Whether `path` (absolute, `/a/b`) names this node.
    fn is_at(&self, path: &[u8]) -> bool {
        let Some(rest) = path.strip_prefix(b"/") else {
            return false;
        };
        let mut parts = rest.split(|&b| b == b'/');
        self.path[..self.depth]
            .iter()
            .all(|name| parts.next() == Some(name))
            && parts.next().is_none()
    }
}

/// Aliases remembered from `/aliases` (a `stdout-path` may name one).
const ALIASES: usize = 16;

/// A node being read: its name, its children's cell counts, and the
/// properties the kernel wants of it.
#[derive(Clone, Copy)]
struct Open<'a> {
    name: &'a [u8],
    address_cells: u32,
    size_cells: u32,
    reg: Option<&'a [u8]>,
    compatible: &'a [u8],
}

impl<'a> Open<'a> {
    fn new(name: &'a [u8]) -> Self {
        Open {
            name,
            address_cells: 2,
            size_cells: 1,
            reg: None,
            compatible: b"",
        }
    }
}

/// What one pass over the tree found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceTree<'a> {
    /// `/chosen`'s `stdout-path`, less its NUL and any `:options`.
    stdout_path: Option<&'a [u8]>,
    /// `/aliases`' properties (name, path), the first [`ALIASES`].
    aliases: [(&'a [u8], &'a [u8]); ALIASES],
    /// The first nodes compatible with `arm,pl011`, in tree order.
    pub pl011: [Option<Node<'a>>; PL011_NODES],
    /// The first node compatible with a GICv2.
    pub gic: Option<Node<'a>>,
    /// The first top-level node named `memory` (with or without a unit
    /// address).
    pub memory: Option<Node<'a>>,
}

impl<'a> DeviceTree<'a> {
    /// Reads `blob` (at least the header's `totalsize` bytes of it).
    pub fn read(blob: &'a [u8]) -> Result<Self, Error> {
        let word = |at: usize| be32(blob, at).ok_or(Error::BadHeader);
        if word(0)? != MAGIC {
            return Err(Error::BadHeader);
        }
        let blob = &blob[..(word(4)? as usize).min(blob.len())];
        let block = |off: usize, len: usize| {
            blob.get(word(off)? as usize..)
                .and_then(|b| b.get(..word(len).ok()? as usize))
                .ok_or(Error::BadHeader)
        };
        let mut dt = DeviceTree::default();
        dt.walk(block(8, 36)?, block(12, 32)?)?;
        Ok(dt)
    }

    fn walk(&mut self, s: &'a [u8], strings: &'a [u8]) -> Result<(), Error> {
        let bad = Error::BadStructure;
        // The nodes open, the root at 1; deeper ones are walked through.
        let mut stack = [Open::new(b""); MAX_DEPTH + 2];
        let mut depth = 0usize;
        let (mut pl011s, mut aliases) = (0, 0);
        let mut at = 0;
        loop {
            let token = be32(s, at).ok_or(bad)?;
            at += 4;
            match token {
                BEGIN_NODE => {
                    let name = s.get(at..).and_then(until_nul).ok_or(bad)?;
                    at = align4(at + name.len() + 1);
                    depth += 1;
                    if let Some(slot) = stack.get_mut(depth) {
                        *slot = Open::new(name);
                    }
                }
                END_NODE => {
                    if depth == 0 {
                        return Err(bad);
                    }
                    if (2..stack.len()).contains(&depth) {
                        self.close(&stack[..=depth], &mut pl011s);
                    }
                    depth -= 1;
                }
                PROP => {
                    let len = be32(s, at).ok_or(bad)? as usize;
                    let name_at = be32(s, at + 4).ok_or(bad)? as usize;
                    let value = s.get(at + 8..).and_then(|v| v.get(..len)).ok_or(bad)?;
                    let name = strings.get(name_at..).and_then(until_nul).ok_or(bad)?;
                    at = align4(at + 8 + len);
                    if depth == 0 {
                        return Err(bad);
                    }
                    let Some(node) = stack.get_mut(depth) else {
                        continue;
                    };
                    match name {
                        b"#address-cells" => node.address_cells = be32(value, 0).unwrap_or(2),
                        b"#size-cells" => node.size_cells = be32(value, 0).unwrap_or(1),
                        b"reg" => node.reg = Some(value),
                        b"compatible" => node.compatible = value,
                        _ if depth == 2 && node.name == b"chosen" && name == b"stdout-path" => {
                            let path = until_nul(value).unwrap_or(value);
                            let end = path.iter().position(|&b| b == b':').unwrap_or(path.len());
                            self.stdout_path = Some(&path[..end]);
                        }
                        _ if depth == 2 && node.name == b"aliases" && aliases < ALIASES => {
                            self.aliases[aliases] = (name, until_nul(value).unwrap_or(value));
                            aliases += 1;
                        }
                        _ => {}
                    }
                }
                NOP => {}
                END => return if depth == 0 { Ok(()) } else { Err(bad) },
                _ => return Err(bad),
            }
        }
    }

    /// Classifies the node that ends: `stack[2..]` is its path (`stack[1]`
    /// is the root).
    fn close(&mut self, stack: &[Open<'a>], pl011s: &mut usize) {
        let depth = stack.len() - 1;
        let (open, parent) = (&stack[depth], &stack[depth - 1]);
        let mut node = Node {
            reg: open.reg.map(|bytes| Reg {
                bytes,
                address_cells: parent.address_cells,
                size_cells: parent.size_cells,
            }),
            path: [b""; MAX_DEPTH],
            depth: depth - 1,
        };
        for (slot, o) in node.path.iter_mut().zip(&stack[2..]) {
            *slot = o.name;
        }
        let base = open.name.split(|&b| b == b'@').next().unwrap_or(b"");
        if depth == 2 && base == b"memory" && self.memory.is_none() {
            self.memory = Some(node);
        }
        for c in open.compatible.split(|&b| b == 0) {
            if c == b"arm,pl011" && *pl011s < PL011_NODES {
                self.pl011[*pl011s] = Some(node);
                *pl011s += 1;
            } else if self.gic.is_none() && GIC_COMPATIBLE.contains(&c) {
                self.gic = Some(node);
            }
        }
    }

    /// The console UART: the PL011 `stdout-path` names (directly or
    /// through an alias), else the first PL011.
    pub fn uart(&self) -> Option<Node<'a>> {
        let first = self.pl011[0];
        let Some(mut path) = self.stdout_path else {
            return first;
        };
        if !path.starts_with(b"/") {
            match self.aliases.iter().find(|(name, _)| *name == path) {
                Some((_, p)) => path = p,
                None => return first,
            }
        }
        self.pl011
            .iter()
            .flatten()
            .find(|n| n.is_at(path))
            .copied()
            .or(first)
    }
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let w = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
}

/// A big-endian number of up to two cells (the low 64 bits of more).
fn cells(b: &[u8]) -> u64 {
    b.iter().fold(0u64, |v, &x| (v << 8) | u64::from(x))
}

/// The bytes before the first NUL; `None` without one.
fn until_nul(b: &[u8]) -> Option<&[u8]> {
    b.iter().position(|&x| x == 0).map(|n| &b[..n])
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_fdt::FdtWriter;

    /// A tree shaped like QEMU virt's: cells 2/2, memory, the GIC with its
    /// four windows, a PL011, 32 virtio-mmio nodes, nested nodes, /chosen.
    fn qemu_like(stdout: Option<&str>, aliases: &[(&str, &str)]) -> Vec<u8> {
        let mut w = FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        w.property_string("compatible", "linux,dummy-virt").unwrap();
        for i in 0..32u64 {
            let base = 0x0a00_0000 + i * 0x200;
            let n = w.begin_node(&format!("virtio_mmio@{base:x}")).unwrap();
            w.property_string("compatible", "virtio,mmio").unwrap();
            w.property_array_u64("reg", &[base, 0x200]).unwrap();
            w.property_array_u32("interrupts", &[0, 16 + i as u32, 1])
                .unwrap();
            w.end_node(n).unwrap();
        }
        let mem = w.begin_node("memory@40000000").unwrap();
        w.property_string("device_type", "memory").unwrap();
        w.property_array_u64("reg", &[0x4000_0000, 0x8000_0000])
            .unwrap();
        w.end_node(mem).unwrap();
        let gic = w.begin_node("intc@8000000").unwrap();
        w.property_string_list(
            "compatible",
            vec!["arm,cortex-a15-gic".into(), "arm,cortex-a9-gic".into()],
        )
        .unwrap();
        w.property_array_u64(
            "reg",
            &[
                0x0800_0000,
                0x1_0000,
                0x0801_0000,
                0x1_0000,
                0x0803_0000,
                0x1_0000,
                0x0804_0000,
                0x1_0000,
            ],
        )
        .unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        let v2m = w.begin_node("v2m@8020000").unwrap();
        w.property_string("compatible", "arm,gic-v2m-frame")
            .unwrap();
        w.property_array_u64("reg", &[0x0802_0000, 0x1000]).unwrap();
        w.end_node(v2m).unwrap();
        w.end_node(gic).unwrap();
        let uart = w.begin_node("pl011@9000000").unwrap();
        w.property_string_list(
            "compatible",
            vec!["arm,pl011".into(), "arm,primecell".into()],
        )
        .unwrap();
        w.property_array_u64("reg", &[0x0900_0000, 0x1000]).unwrap();
        w.end_node(uart).unwrap();
        let soc = w.begin_node("soc").unwrap();
        w.property_u32("#address-cells", 1).unwrap();
        w.property_u32("#size-cells", 1).unwrap();
        let uart2 = w.begin_node("serial@9040000").unwrap();
        w.property_string("compatible", "arm,pl011").unwrap();
        w.property_array_u32("reg", &[0x0904_0000, 0x1000]).unwrap();
        w.end_node(uart2).unwrap();
        w.end_node(soc).unwrap();
        if !aliases.is_empty() {
            let a = w.begin_node("aliases").unwrap();
            for (name, path) in aliases {
                w.property_string(name, path).unwrap();
            }
            w.end_node(a).unwrap();
        }
        let chosen = w.begin_node("chosen").unwrap();
        if let Some(path) = stdout {
            w.property_string("stdout-path", path).unwrap();
        }
        w.end_node(chosen).unwrap();
        w.end_node(root).unwrap();
        w.finish().unwrap()
    }

    fn uart_base(dtb: &[u8]) -> Option<u64> {
        let dt = DeviceTree::read(dtb).unwrap();
        dt.uart()?.reg?.regions().next().map(|(a, _)| a)
    }

    #[test]
    fn reads_memory_gic_and_uart_of_a_qemu_like_tree() {
        let dtb = qemu_like(Some("/pl011@9000000"), &[]);
        let dt = DeviceTree::read(&dtb).unwrap();
        let mem: Vec<_> = dt.memory.unwrap().reg.unwrap().regions().collect();
        assert_eq!(mem, [(0x4000_0000, 0x8000_0000)]);
        let gic: Vec<_> = dt.gic.unwrap().reg.unwrap().regions().collect();
        assert_eq!(
            gic,
            [
                (0x0800_0000, 0x1_0000),
                (0x0801_0000, 0x1_0000),
                (0x0803_0000, 0x1_0000),
                (0x0804_0000, 0x1_0000)
            ]
        );
        assert_eq!(uart_base(&dtb), Some(0x0900_0000));
    }

    /// The same answers as the `fdt` crate the kernel used before.
    #[test]
    fn agrees_with_the_fdt_crate() {
        let dtb = qemu_like(Some("/pl011@9000000"), &[]);
        let f = fdt::Fdt::new(&dtb).unwrap();
        let dt = DeviceTree::read(&dtb).unwrap();
        let theirs: Vec<_> = f
            .memory()
            .regions()
            .map(|r| (r.starting_address as u64, r.size.unwrap() as u64))
            .collect();
        let ours: Vec<_> = dt.memory.unwrap().reg.unwrap().regions().collect();
        assert_eq!(ours, theirs);
        let uart = f.chosen().stdout().unwrap().reg().unwrap().next().unwrap();
        assert_eq!(uart_base(&dtb), Some(uart.starting_address as u64));
        let gic = f.find_compatible(&["arm,cortex-a15-gic"]).unwrap();
        let theirs: Vec<_> = gic
            .reg()
            .unwrap()
            .map(|r| (r.starting_address as u64, r.size.unwrap() as u64))
            .collect();
        let ours: Vec<_> = dt.gic.unwrap().reg.unwrap().regions().collect();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn stdout_path_picks_the_uart_nested_aliased_or_with_options() {
        // A nested node, read with its parent's one-cell addresses.
        let dtb = qemu_like(Some("/soc/serial@9040000"), &[]);
        assert_eq!(uart_base(&dtb), Some(0x0904_0000));
        let dtb = qemu_like(Some("/pl011@9000000:115200n8"), &[]);
        assert_eq!(uart_base(&dtb), Some(0x0900_0000));
        let dtb = qemu_like(
            Some("serial1:115200"),
            &[
                ("serial0", "/pl011@9000000"),
                ("serial1", "/soc/serial@9040000"),
            ],
        );
        assert_eq!(uart_base(&dtb), Some(0x0904_0000));
        // No stdout-path, an unknown alias, a path to nothing: the first PL011.
        for dtb in [
            qemu_like(None, &[]),
            qemu_like(Some("serial7"), &[("serial0", "/soc/serial@9040000")]),
            qemu_like(Some("/nowhere"), &[]),
            qemu_like(Some("/soc"), &[]),
        ] {
            assert_eq!(uart_base(&dtb), Some(0x0900_0000));
        }
    }

    #[test]
    fn not_a_device_tree_is_an_error() {
        assert_eq!(DeviceTree::read(&[]), Err(Error::BadHeader));
        assert_eq!(DeviceTree::read(&[0; 64]), Err(Error::BadHeader));
        let mut dtb = qemu_like(Some("/pl011@9000000"), &[]);
        // The structure block's offset past the end.
        dtb[8..12].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
        assert_eq!(DeviceTree::read(&dtb), Err(Error::BadHeader));
    }

    /// Every cut and every corrupted word gives an answer or an error,
    /// never a panic (the kernel then boots on the board's defaults).
    #[test]
    fn cut_or_corrupted_trees_never_panic() {
        let dtb = qemu_like(Some("/pl011@9000000"), &[("serial0", "/pl011@9000000")]);
        for len in 0..dtb.len() {
            let mut cut = dtb[..len].to_vec();
            if cut.len() >= 8 {
                cut[4..8].copy_from_slice(&(len as u32).to_be_bytes());
            }
            let _ = DeviceTree::read(&cut).map(|dt| dt.uart());
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut bad = dtb.clone();
            let at = (seed as usize % (bad.len() / 4)) * 4;
            bad[at..at + 4].copy_from_slice(&((seed >> 32) as u32).to_be_bytes());
            if let Ok(dt) = DeviceTree::read(&bad) {
                let _ = dt.uart().and_then(|n| n.reg).map(|r| r.regions().count());
                let _ = dt.gic.and_then(|n| n.reg).map(|r| r.regions().count());
                let _ = dt.memory.and_then(|n| n.reg).map(|r| r.regions().count());
            }
        }
    }
}
