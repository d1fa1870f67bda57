//! Stage-2 translation tables: the address spaces of threads.
//!
//! With hypervisor support seL4 gives every thread (native or guest) a
//! stage-2 address space: native threads run at EL0 with stage 1 off, so
//! their virtual addresses are IPAs. 40-bit IPA, 4 KiB granule, lookup from
//! level 1 with two concatenated tables (8 KiB, 1024 entries) as the root.
//!
//! The portable core (`object::vspace`) decides which root and VMID are
//! current and when the TLB must be flushed; this module only performs it.
//! It also owns the empty root installed for threads without a valid
//! VSpace, and reports how many VMIDs the hardware provides.

use super::mmu::kernel_paddr;
use super::sysreg::{dsb_ish, isb, read_sysreg, write_sysreg};

/// VTCR_EL2: T0SZ 24 (40-bit IPA), start at level 1, write-back, inner
/// shareable, 4 KiB granule, 40-bit PA, and the RES1 bit 31.
pub const VTCR: u64 =
    (1 << 31) | (0b010 << 16) | (0b11 << 12) | (0b01 << 10) | (0b01 << 8) | (0b01 << 6) | 24;

/// VMID bits in use: VTCR_EL2.VS is 0, so VMIDs are 8 bits wide even on a
/// CPU that offers 16 (seL4's `hw_asid_t` is 8 bits as well).
const VMID_BITS_USED: u32 = 8;

/// An all-invalid root, aligned as VTTBR_EL2 requires for two concatenated
/// level-1 tables. In `.rodata` (file-backed, so zero whatever the loader
/// does with BSS); only the table walker ever reads it.
#[repr(C, align(8192))]
struct EmptyRoot([u64; 1024]);

#[link_section = ".rodata.septa_empty_vspace"]
static EMPTY_ROOT: EmptyRoot = EmptyRoot([0; 1024]);

/// Physical address of the empty root (the kernel image is in the window).
pub fn empty_root_paddr() -> u64 {
    kernel_paddr(&raw const EMPTY_ROOT as u64)
}

/// How many VMIDs the core may hand out: ID_AA64MMFR1_EL1.VMIDBits says 8
/// or 16 bits, of which [`VMID_BITS_USED`] are used.
pub fn vmid_count() -> u32 {
    const VMID_BITS_16: u64 = 0b0010;
    let mmfr1 = read_sysreg!("id_aa64mmfr1_el1");
    let hw_bits = if (mmfr1 >> 4) & 0xf == VMID_BITS_16 {
        16
    } else {
        8
    };
    1 << hw_bits.min(VMID_BITS_USED)
}

/// Makes a page-table entry the kernel just wrote visible to the table
/// walker. Walks are cacheable (VTCR_EL2 IRGN0/ORGN0 write-back), so the
/// walker snoops the data cache and a barrier is all that is needed.
pub fn sync_entry(_paddr: u64) {
    dsb_ish();
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
#[inline(never)]
pub fn flush_vmid(vmid: u16) {
    with_vmid(vmid, flush_current_vmid);
}

/// Discards the TLB entries for the page at IPA `vaddr` in `vmid`. Native
/// threads run with stage 1 off, so entries are combined stage 1+2 ones and
/// the stage-1 side is dropped too, as the architecture requires.
#[inline(never)]
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
