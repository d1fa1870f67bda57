//! Stage-2 translation tables, the format of every thread's address space.
//!
//! With hypervisor support, seL4 gives every thread a stage-2 address space:
//! native threads run at EL0 with stage 1 off, so their virtual addresses
//! are IPAs; guests add their own stage 1 on top. 40-bit IPAs, a 4 KiB
//! granule, and lookup from level 1 with two concatenated tables as the
//! root (1024 entries, 8 KiB: the VSpace object); page tables (4 KiB, 512
//! entries) at levels 2 and 3. A level-1 entry maps 1 GiB, level 2 2 MiB,
//! level 3 4 KiB.
//!
//! Pure data manipulation through the memory window, so it is tested on the
//! host; TLB maintenance is the caller's job (through `machine`).

use crate::memory;

/// Entries in a VSpace root (two concatenated level-1 tables).
pub const ROOT_ENTRIES: u64 = 1024;
/// Entries in a page table.
pub const ENTRIES: u64 = 512;

const VALID: u64 = 1 << 0;
/// At levels 1 and 2: a table (1) or a block (0); at level 3 must be 1.
const TABLE_OR_PAGE: u64 = 1 << 1;
const MEMATTR_NORMAL_WB: u64 = 0b1111 << 2;
const MEMATTR_DEVICE_NGNRNE: u64 = 0b0000 << 2;
const S2AP_READ: u64 = 1 << 6;
const S2AP_WRITE: u64 = 1 << 7;
const SH_INNER: u64 = 3 << 8;
const AF: u64 = 1 << 10;
const XN: u64 = 1 << 54;
const ADDR_MASK: u64 = 0x0000_00ff_ffff_f000;

/// A level of the walk: 1 (the VSpace root), 2 or 3.
pub type Level = u32;

/// Bits of virtual address one entry at `level` maps.
pub const fn entry_bits(level: Level) -> u32 {
    match level {
        1 => 30,
        2 => 21,
        _ => 12,
    }
}

/// Index of `vaddr` in a table at `level`.
pub const fn index(level: Level, vaddr: u64) -> u64 {
    let entries = if level == 1 { ROOT_ENTRIES } else { ENTRIES };
    (vaddr >> entry_bits(level)) & (entries - 1)
}

/// What a mapping allows and how memory behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attrs {
    pub read: bool,
    pub write: bool,
    pub execute: bool,
    pub cacheable: bool,
}

/// One translation table entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pte(pub u64);

impl Pte {
    pub const INVALID: Pte = Pte(0);

    pub fn table(paddr: u64) -> Pte {
        Pte((paddr & ADDR_MASK) | VALID | TABLE_OR_PAGE)
    }

    /// A leaf: a 4 KiB page at level 3, a block at levels 1 and 2.
    pub fn leaf(level: Level, paddr: u64, a: Attrs) -> Pte {
        let mut d = (paddr & ADDR_MASK) | VALID | AF;
        if level == 3 {
            d |= TABLE_OR_PAGE;
        }
        d |= if a.cacheable {
            MEMATTR_NORMAL_WB | SH_INNER
        } else {
            MEMATTR_DEVICE_NGNRNE
        };
        if a.read {
            d |= S2AP_READ;
        }
        if a.write {
            d |= S2AP_WRITE;
        }
        if !a.execute {
            d |= XN;
        }
        Pte(d)
    }

    pub fn is_valid(self) -> bool {
        self.0 & VALID != 0
    }

    /// A pointer to a next-level table (only meaningful at levels 1 and 2).
    pub fn is_table(self, level: Level) -> bool {
        level < 3 && self.0 & (VALID | TABLE_OR_PAGE) == VALID | TABLE_OR_PAGE
    }

    pub fn addr(self) -> u64 {
        self.0 & ADDR_MASK
    }

    /// A leaf mapping at `level`: a 4 KiB page at level 3 (valid, bit 1
    /// set), a block at levels 1 and 2 (valid, bit 1 clear). seL4's
    /// `pte_is_page_type`.
    pub fn is_page(self, level: Level) -> bool {
        let low = self.0 & (VALID | TABLE_OR_PAGE);
        if level == 3 {
            low == VALID | TABLE_OR_PAGE
        } else {
            low == VALID
        }
    }
}

/// Where a mapping of `vaddr` goes (seL4's `lookupPTSlot`): the walk
/// follows table entries down from the root and stops at the first entry
/// that is not one, or at level 3. Returns the level, the physical address
/// of that entry, and the bits of address it maps (30, 21 or 12): a frame
/// of exactly that size can be mapped there. Out of line (the mapping
/// invocations' four callers); boot's walks stay inlined, being run for
/// every page of the root task.
#[inline(never)]
pub fn lookup_slot(root: u64, vaddr: u64) -> (Level, u64, u32) {
    let (level, entry) = walk(root, vaddr, 3);
    (level, entry, entry_bits(level))
}

/// Physical address of the entry for `vaddr` in the table at `table`.
pub fn entry_at(table: u64, level: Level, vaddr: u64) -> u64 {
    table + 8 * index(level, vaddr)
}

pub fn read(entry: u64) -> Pte {
    Pte(memory::read::<u64>(entry))
}

pub fn write(entry: u64, pte: Pte) {
    memory::write::<u64>(entry, pte.0)
}

/// Walks from `root` towards `vaddr` and stops at the first entry that is
/// not a table pointer, or at level `stop`. Returns the level and the
/// physical address of that entry.
pub fn walk(root: u64, vaddr: u64, stop: Level) -> (Level, u64) {
    let mut table = root;
    let mut level = 1;
    loop {
        let e = entry_at(table, level, vaddr);
        let pte = read(e);
        if level == stop || !pte.is_table(level) {
            return (level, e);
        }
        table = pte.addr();
        level += 1;
    }
}

/// Where a 4 KiB mapping of `vaddr` still lacks a table: `Some(level)` of
/// the table that must be installed (2 or 3), or `None` if the walk reaches
/// level 3.
pub fn missing_table(root: u64, vaddr: u64) -> Option<Level> {
    match walk(root, vaddr, 3) {
        (3, _) => None,
        (level, _) => Some(level + 1),
    }
}

/// Installs the (zeroed) page table at `table` for `vaddr` at `level`
/// (2 or 3) in `root`; the entry above it must be empty.
pub fn install_table(root: u64, vaddr: u64, level: Level, table: u64) {
    let (at, e) = walk(root, vaddr, level - 1);
    debug_assert_eq!(at, level - 1);
    write(e, Pte::table(table));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::arena::Arena;

    const RW: Attrs = Attrs {
        read: true,
        write: true,
        execute: false,
        cacheable: true,
    };

    #[test]
    fn indices_split_a_40_bit_address() {
        let v = (0x3ff << 30) | (0x1ab << 21) | (0x0cd << 12) | 0x123;
        assert_eq!(
            (index(1, v), index(2, v), index(3, v)),
            (0x3ff, 0x1ab, 0x0cd)
        );
    }

    #[test]
    fn leaf_bits_follow_the_stage_2_format() {
        let p = Pte::leaf(3, 0x4123_4000, RW);
        assert_eq!(p.0 & 0b11, 0b11);
        assert_eq!(p.addr(), 0x4123_4000);
        assert_eq!(p.0 & (0b11 << 6), 0b11 << 6);
        assert_ne!(p.0 & XN, 0);
        let ro_x_dev = Pte::leaf(
            2,
            0x20_0000,
            Attrs {
                read: true,
                write: false,
                execute: true,
                cacheable: false,
            },
        );
        assert_eq!(ro_x_dev.0 & 0b11, 0b01, "a block at level 2");
        assert_eq!(ro_x_dev.0 & (0b11 << 6), 0b01 << 6);
        assert_eq!(ro_x_dev.0 & (0b1111 << 2), 0);
        assert_eq!(ro_x_dev.0 & XN, 0);
        assert!(!ro_x_dev.is_table(2));
        assert!(Pte::table(0x5000).is_table(1));
        assert!(!Pte::leaf(3, 0x5000, RW).is_table(3));
    }

    #[test]
    fn pages_and_blocks_are_told_from_tables_by_level() {
        let page = Pte::leaf(3, 0x5000, RW);
        let block = Pte::leaf(2, 0x20_0000, RW);
        let table = Pte::table(0x6000);
        assert!(page.is_page(3) && !page.is_page(2));
        assert!(block.is_page(2) && block.is_page(1) && !block.is_page(3));
        assert!(!table.is_page(1) && !table.is_page(2));
        assert!(!Pte::INVALID.is_page(3) && !Pte::INVALID.is_page(1));
    }

    #[test]
    fn lookup_slot_reports_the_size_a_slot_maps() {
        let a = Arena::new(1 << 20, 0);
        let root = a.phys_base;
        let v = 0x4000_0000 + 0x20_0000 + 0x3000;
        assert_eq!(lookup_slot(root, v), (1, root + 8, 30));
        install_table(root, v, 2, root + 0x2000);
        assert_eq!(lookup_slot(root, v), (2, root + 0x2000 + 8, 21));
        // A block stops the walk where it is.
        write(root + 0x2000 + 8, Pte::leaf(2, 0x4020_0000, RW));
        assert_eq!(lookup_slot(root, v).2, 21);
        write(root + 0x2000 + 8, Pte::table(root + 0x3000));
        assert_eq!(lookup_slot(root, v), (3, root + 0x3000 + 8 * 3, 12));
    }

    #[test]
    fn tables_install_and_walks_reach_them() {
        let a = Arena::new(1 << 20, 0);
        let root = a.phys_base;
        let (l2, l3) = (root + 0x2000, root + 0x3000);
        let v = 0x40_0000 + 0x5000;
        assert_eq!(missing_table(root, v), Some(2));
        install_table(root, v, 2, l2);
        assert_eq!(missing_table(root, v), Some(3));
        install_table(root, v, 3, l3);
        assert_eq!(missing_table(root, v), None);
        let (level, e) = walk(root, v, 3);
        assert_eq!((level, e), (3, l3 + 8 * 5));
        write(e, Pte::leaf(3, 0x4800_0000, RW));
        assert_eq!(read(e).addr(), 0x4800_0000);
        assert_eq!(
            missing_table(root, v + (2 << 20)),
            Some(3),
            "the next 2 MiB needs its own level-3 table"
        );
    }
}
