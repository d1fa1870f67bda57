//! Stage-2 translation tables: the address spaces of threads.
//!
//! With hypervisor support seL4 gives every thread (native or guest) a
//! stage-2 address space: native threads run at EL0 with stage 1 off, so
//! their virtual addresses are IPAs. 40-bit IPA, 4 KiB granule, lookup from
//! level 1 with two concatenated tables (8 KiB, 1024 entries) as the root.

use super::sysreg::{dsb_ish, isb, write_sysreg};

/// VTCR_EL2: T0SZ 24 (40-bit IPA), start at level 1, write-back, inner
/// shareable, 4 KiB granule, 40-bit PA, and the RES1 bit 31.
pub const VTCR: u64 =
    (1 << 31) | (0b010 << 16) | (0b11 << 12) | (0b01 << 10) | (0b01 << 8) | (0b01 << 6) | 24;

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
