//! Stage-2 translation tables: the address spaces of threads.
//!
//! With hypervisor support seL4 gives every thread (native or guest) a
//! stage-2 address space: native threads run at EL0 with stage 1 off, so
//! their virtual addresses are IPAs. 40-bit IPA, 4 KiB granule, lookup from
//! level 1 with two concatenated tables (8 KiB, 1024 entries) as the root.

use super::mmu::ptr;
use super::sysreg::{dsb_ish, isb, write_sysreg};

pub const ROOT_ENTRIES: usize = 1024;
const ENTRIES: usize = 512;

const VALID: u64 = 1 << 0;
const TABLE_OR_PAGE: u64 = 1 << 1;
const AF: u64 = 1 << 10;
const SH_INNER: u64 = 3 << 8;
/// Stage-2 MemAttr: Normal, inner and outer write-back.
const MEMATTR_NORMAL_WB: u64 = 0b1111 << 2;
/// Stage-2 MemAttr: Device-nGnRnE.
const MEMATTR_DEVICE: u64 = 0b0000 << 2;
const S2AP_RO: u64 = 0b01 << 6;
const S2AP_RW: u64 = 0b11 << 6;
const XN: u64 = 1 << 54;
const ADDR_MASK: u64 = 0x0000_00ff_ffff_f000;

/// What a mapping allows and how memory behaves.
#[derive(Clone, Copy, Debug)]
pub struct Attrs {
    pub writable: bool,
    pub executable: bool,
    pub cacheable: bool,
}

/// VTCR_EL2: T0SZ 24 (40-bit IPA), start at level 1, write-back, inner
/// shareable, 4 KiB granule, 40-bit PA, and the RES1 bit 31.
pub const VTCR: u64 =
    (1 << 31) | (0b010 << 16) | (0b11 << 12) | (0b01 << 10) | (0b01 << 8) | (0b01 << 6) | 24;

fn entry(table_paddr: u64, index: usize) -> *mut u64 {
    (ptr(table_paddr) + 8 * index as u64) as *mut u64
}

/// Maps the 4 KiB page at `paddr` at `vaddr` in the address space rooted at
/// `root`, taking missing intermediate tables from `alloc_table` (which
/// returns zeroed 4 KiB tables). Used at boot for the root task.
pub fn map_page(
    root: u64,
    vaddr: u64,
    paddr: u64,
    attrs: Attrs,
    mut alloc_table: impl FnMut() -> u64,
) {
    let l1_index = ((vaddr >> 30) as usize) & (ROOT_ENTRIES - 1);
    let mut table = root;
    for (level, index) in [(1, l1_index), (2, ((vaddr >> 21) as usize) & (ENTRIES - 1))] {
        let e = entry(table, index);
        // SAFETY: `table` is a translation table this address space owns,
        // reached through the kernel window; `index` is within it.
        let cur = unsafe { e.read_volatile() };
        table = if cur & VALID != 0 {
            cur & ADDR_MASK
        } else {
            let t = alloc_table();
            // SAFETY: as above; installing a table descriptor for a zeroed table.
            unsafe { e.write_volatile(t | VALID | TABLE_OR_PAGE) };
            t
        };
        let _ = level;
    }
    let mut d = (paddr & ADDR_MASK) | VALID | TABLE_OR_PAGE | AF;
    d |= if attrs.cacheable {
        MEMATTR_NORMAL_WB | SH_INNER
    } else {
        MEMATTR_DEVICE
    };
    d |= if attrs.writable { S2AP_RW } else { S2AP_RO };
    if !attrs.executable {
        d |= XN;
    }
    // SAFETY: a level-3 table of this address space, index within it.
    unsafe { entry(table, ((vaddr >> 12) as usize) & (ENTRIES - 1)).write_volatile(d) };
}

/// Makes the address space rooted at `root` (with VMID `vmid`) current.
pub fn activate(root: u64, vmid: u16) {
    dsb_ish();
    // VTTBR_EL2 takes the root's physical address and the VMID in bits 48+.
    write_sysreg!("vttbr_el2", root | ((vmid as u64) << 48));
    isb();
}

/// Discards every stage-1+2 TLB entry of the current VMID.
pub fn flush_current_vmid() {
    // SAFETY: TLB maintenance has no effect on memory contents.
    unsafe {
        core::arch::asm!(
            "dsb ishst",
            "tlbi vmalls12e1is",
            "dsb ish",
            "isb",
            options(nostack)
        )
    };
}

/// TLB maintenance applies to the VMID in VTTBR_EL2, so flushing another
/// address space switches to its VMID for the operation and back.
fn with_vmid(vmid: u16, op: impl FnOnce()) {
    let saved = super::sysreg::read_sysreg!("vttbr_el2");
    let other = (saved >> 48) as u16 != vmid;
    if other {
        write_sysreg!(
            "vttbr_el2",
            (saved & !(0xffff << 48)) | ((vmid as u64) << 48)
        );
        isb();
    }
    op();
    if other {
        write_sysreg!("vttbr_el2", saved);
        isb();
    }
}

/// Discards every TLB entry of address space `vmid`.
pub fn flush_vmid(vmid: u16) {
    with_vmid(vmid, flush_current_vmid);
}

/// Discards the TLB entries for the page at IPA `vaddr` in `vmid`. Native
/// threads run with stage 1 off, so entries are combined stage 1+2 ones and
/// the stage-1 side is dropped too, as the architecture requires.
pub fn flush_page(vmid: u16, vaddr: u64) {
    // SAFETY: TLB maintenance has no effect on memory contents.
    with_vmid(vmid, || unsafe {
        core::arch::asm!(
            "dsb ishst",
            "tlbi ipas2e1is, {}",
            "dsb ish",
            "tlbi vmalle1is",
            "dsb ish",
            "isb",
            in(reg) vaddr >> 12,
            options(nostack)
        )
    });
}
