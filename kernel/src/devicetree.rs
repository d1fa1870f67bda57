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

/// Nodes deeper than this are walked but not remembered.
const MAX_DEPTH: usize = 8;
/// PL011 nodes remembered, in tree order.
pub const PL011_NODES: usize = 4;

/// Compatible strings the kernel looks for: the PL011, then the GICv2s it
/// drives.
const COMPATIBLE: [&[u8]; 4] = [
    b"arm,pl011",
    b"arm,cortex-a15-gic",
    b"arm,gic-400",
    b"arm,cortex-a7-gic",
];

/// Property names the kernel reads of every node (`/chosen`'s
/// `stdout-path` and `/aliases`' entries are the rest); their places in
/// this list are what [`index_of`] gives the walk.
const PROPS: [&[u8]; 4] = [b"#address-cells", b"#size-cells", b"reg", b"compatible"];

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
    pub fn regions(&self) -> Regions<'a> {
        Regions { reg: *self, at: 0 }
    }
}

/// The iterator of [`Reg::regions`].
pub struct Regions<'a> {
    reg: Reg<'a>,
    at: usize,
}

impl Iterator for Regions<'_> {
    type Item = (u64, u64);

    #[inline(never)]
    fn next(&mut self) -> Option<(u64, u64)> {
        let (ac, sc) = (
            self.reg.address_cells as usize,
            self.reg.size_cells as usize,
        );
        let entry = (ac + sc) * 4;
        let e = self.reg.bytes.get(self.at..)?.get(..entry)?;
        if entry == 0 {
            return None;
        }
        self.at += entry;
        Some((cells(&e[..ac * 4]), cells(&e[ac * 4..])))
    }
}

/// A node the kernel remembers: its `reg` (if any) and where it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Node<'a> {
    pub reg: Option<Reg<'a>>,
    /// Where its token is in the structure block (which names it for
    /// [`DeviceTree::uart`]'s second walk).
    at: usize,
}

/// Entries of `/aliases` looked at for a `stdout-path` that names one.
const ALIASES: usize = 16;

/// A node being read: its name, its children's cell counts, and the
/// properties the kernel wants of it.
#[derive(Clone, Copy)]
struct Open<'a> {
    name: &'a [u8],
    at: usize,
    address_cells: u32,
    size_cells: u32,
    reg: Option<&'a [u8]>,
    compatible: &'a [u8],
}

/// One token of the structure block, NOPs passed over.
#[derive(Clone, Copy)]
enum Token<'a> {
    /// A node begins: its name.
    Begin(&'a [u8]),
    /// The node open ends.
    End,
    /// A property of the node open: its name and value.
    Prop(&'a [u8], &'a [u8]),
}

/// What one pass over the tree found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceTree<'a> {
    /// The structure and strings blocks.
    blocks: (&'a [u8], &'a [u8]),
    /// `/chosen`'s `stdout-path`, less its NUL and any `:options`.
    stdout_path: Option<&'a [u8]>,
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
        let mut dt = DeviceTree {
            blocks: (block(8, 36)?, block(12, 32)?),
            ..DeviceTree::default()
        };
        let new = Open {
            name: b"",
            at: 0,
            address_cells: 2,
            size_cells: 1,
            reg: None,
            compatible: b"",
        };
        // The nodes open, the root at 1; deeper ones are walked through.
        let mut stack = [new; MAX_DEPTH + 2];
        let mut pl011s = 0;
        let blocks = dt.blocks;
        walk(blocks, &mut |depth, at, token| {
            match token {
                Token::Begin(name) => {
                    if let Some(slot) = stack.get_mut(depth) {
                        *slot = Open { name, at, ..new };
                    }
                }
                Token::End => {
                    if (2..stack.len()).contains(&depth) {
                        dt.close(&stack[depth - 1], &stack[depth], depth == 2, &mut pl011s);
                    }
                }
                Token::Prop(name, value) => {
                    let Some(node) = stack.get_mut(depth) else {
                        return false;
                    };
                    match index_of(&PROPS, name) {
                        Some(0) => node.address_cells = be32(value, 0).unwrap_or(2),
                        Some(1) => node.size_cells = be32(value, 0).unwrap_or(1),
                        Some(2) => node.reg = Some(value),
                        Some(_) => node.compatible = value,
                        None if depth == 2 && node.name == b"chosen" && name == b"stdout-path" => {
                            let path = until_nul(value).unwrap_or(value);
                            let end = path.iter().position(|&b| b == b':').unwrap_or(path.len());
                            dt.stdout_path = Some(&path[..end]);
                        }
                        None => {}
                    }
                }
            }
            false
        })?;
        Ok(dt)
    }

    /// Classifies `open`, a node that ends, with `parent` the node around
    /// it (`top`: the root).
    fn close(&mut self, parent: &Open<'a>, open: &Open<'a>, top: bool, pl011s: &mut usize) {
        let node = Node {
            reg: open.reg.map(|bytes| Reg {
                bytes,
                address_cells: parent.address_cells,
                size_cells: parent.size_cells,
            }),
            at: open.at,
        };
        let base = open.name.split(|&b| b == b'@').next().unwrap_or(b"");
        if top && base == b"memory" && self.memory.is_none() {
            self.memory = Some(node);
        }
        let mut list = open.compatible;
        while !list.is_empty() {
            let c = until_nul(list).unwrap_or(list);
            list = list.get(c.len() + 1..).unwrap_or(&[]);
            match index_of(&COMPATIBLE, c) {
                Some(0) if *pl011s < PL011_NODES => {
                    self.pl011[*pl011s] = Some(node);
                    *pl011s += 1;
                }
                Some(1..) if self.gic.is_none() => self.gic = Some(node),
                _ => {}
            }
        }
    }

    /// The console UART: the PL011 `stdout-path` names (directly or
    /// through one of the first [`ALIASES`] entries of `/aliases`), else
    /// the first PL011. Only a tree with two PL011s or more is walked
    /// again for it.
    #[inline(never)]
    pub fn uart(&self) -> Option<Node<'a>> {
        let first = self.pl011[0];
        if self.pl011[1].is_none() {
            return first;
        }
        let Some(mut path) = self.stdout_path else {
            return first;
        };
        if !path.starts_with(b"/") {
            // The entries of the top-level nodes named `aliases`, the
            // first `ALIASES` of them.
            let (mut n, mut in_aliases) = (0, false);
            let mut alias = None;
            let _ = walk(self.blocks, &mut |depth, _, token| {
                if let Token::Begin(name) = token {
                    if depth == 2 {
                        in_aliases = name == b"aliases";
                    }
                } else if let Token::Prop(name, value) = token {
                    if depth == 2 && in_aliases && n < ALIASES && index_of(&PROPS, name).is_none() {
                        n += 1;
                        if name == path {
                            alias = Some(until_nul(value).unwrap_or(value));
                            return true;
                        }
                    }
                }
                false
            });
            path = alias.unwrap_or(b"");
        }
        self.pl011_at(path).or(first)
    }

    /// The PL011 remembered at `path` (absolute, `/a/b`).
    fn pl011_at(&self, path: &[u8]) -> Option<Node<'a>> {
        let rest = path.strip_prefix(b"/")?;
        // The open nodes at depths 2 to `matched + 1` have the path's
        // first `matched` names; `starts[m]` is where name `m` begins.
        let mut starts = [0; MAX_DEPTH + 1];
        let mut matched = 0;
        let mut found = None;
        let _ = walk(self.blocks, &mut |depth, at, token| {
            match token {
                Token::Begin(name) if depth == matched + 2 && matched < MAX_DEPTH => {
                    let part = &rest[starts[matched]..];
                    let end = part.iter().position(|&b| b == b'/');
                    if part[..end.unwrap_or(part.len())] != *name {
                        return false;
                    }
                    let Some(end) = end else {
                        // The last name: the node is at `path`.
                        found = self.pl011.iter().flatten().find(|n| n.at == at).copied();
                        return found.is_some();
                    };
                    starts[matched + 1] = starts[matched] + end + 1;
                    matched += 1;
                }
                Token::End if depth == matched + 1 && matched > 0 => matched -= 1,
                _ => {}
            }
            false
        });
        found
    }
}

/// Walks the structure block, calling `f(depth, at, token)` for each token
/// (the root at depth 1; a node's end with its own depth; `at` where the
/// token is) until `f` says to stop or the tree ends, and checks that the
/// tokens nest.
#[inline(never)]
fn walk<'a>(
    (s, strings): (&'a [u8], &'a [u8]),
    f: &mut dyn FnMut(usize, usize, Token<'a>) -> bool,
) -> Result<(), Error> {
    let bad = Error::BadStructure;
    let mut depth = 0usize;
    let mut at = 0;
    loop {
        let start = at;
        let token = be32(s, at).ok_or(bad)?;
        at += 4;
        let token = match token {
            BEGIN_NODE => {
                let name = s.get(at..).and_then(until_nul).ok_or(bad)?;
                at = align4(at + name.len() + 1);
                depth += 1;
                Token::Begin(name)
            }
            END_NODE if depth > 0 => Token::End,
            PROP if depth > 0 => {
                let len = be32(s, at).ok_or(bad)? as usize;
                let name_at = be32(s, at + 4).ok_or(bad)? as usize;
                let value = s.get(at + 8..).and_then(|v| v.get(..len)).ok_or(bad)?;
                let name = strings.get(name_at..).and_then(until_nul).ok_or(bad)?;
                at = align4(at + 8 + len);
                Token::Prop(name, value)
            }
            NOP => continue,
            END if depth == 0 => return Ok(()),
            _ => return Err(bad),
        };
        if f(depth, start, token) {
            return Ok(());
        }
        if let Token::End = token {
            depth -= 1;
        }
    }
}

/// Where `name` is in `list`.
#[inline(never)]
fn index_of(list: &[&[u8]], name: &[u8]) -> Option<usize> {
    list.iter().position(|&x| x == name)
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

    /// With one PL011 `uart` answers without walking again: that PL011,
    /// whatever `stdout-path` names (as the path's walk would answer).
    #[test]
    fn one_pl011_is_the_uart_whatever_stdout_path_names() {
        for stdout in [
            None,
            Some("/pl011@9000000"),
            Some("/virtio"),
            Some("serial3"),
        ] {
            let mut w = FdtWriter::new().unwrap();
            let root = w.begin_node("").unwrap();
            let n = w.begin_node("virtio").unwrap();
            w.property_array_u64("reg", &[0x0a00_0000, 0x200]).unwrap();
            w.end_node(n).unwrap();
            let n = w.begin_node("pl011@9000000").unwrap();
            w.property_string("compatible", "arm,pl011").unwrap();
            w.property_array_u32("reg", &[0, 0x0900_0000, 0x1000])
                .unwrap();
            w.end_node(n).unwrap();
            let chosen = w.begin_node("chosen").unwrap();
            if let Some(path) = stdout {
                w.property_string("stdout-path", path).unwrap();
            }
            w.end_node(chosen).unwrap();
            w.end_node(root).unwrap();
            let dtb = w.finish().unwrap();
            assert_eq!(uart_base(&dtb), Some(0x0900_0000), "{stdout:?}");
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
