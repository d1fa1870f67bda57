//! The kernel's own EL2 stage-1 tables: the window onto physical memory at
//! `KERNEL_WINDOW_BASE` (the identity) in 1 GiB blocks, the first GiB
//! (devices on `virt`) as device memory in 2 MiB blocks but for its first,
//! which stays unmapped so that a null pointer faults. They live in the
//! kernel's BSS, never in memory that could be handed to user level, and
//! replace the loader's tables at boot.

use septa_abi::KERNEL_WINDOW_BASE;
use septa_image::el2::{ATTR_DEVICE, ATTR_NORMAL, MAIR, TCR};

use super::sysreg::{dsb_ish, isb, read_sysreg, write_sysreg};

#[repr(C, align(4096))]
struct Table([u64; 512]);

static mut L0: Table = Table([0; 512]);
static mut L1_WINDOW: Table = Table([0; 512]);
static mut L2_DEVICES: Table = Table([0; 512]);

const VALID_BLOCK: u64 = 0b01;
const VALID_TABLE: u64 = 0b11;
const SH_INNER: u64 = 3 << 8;
const AF: u64 = 1 << 10;
const XN: u64 = 1 << 54;
/// GiBs of physical address space the window covers.
pub const WINDOW_GIB: u64 = 64;

/// Physical address of a kernel-image symbol (the image sits in the window).
pub fn kernel_paddr(vaddr: u64) -> u64 {
    vaddr - KERNEL_WINDOW_BASE
}

/// Builds the window and switches TTBR0_EL2 to it. Must run once, first.
pub fn init() {
    // SAFETY: boot is single-threaded; the tables are not yet in use.
    unsafe {
        let l0 = &raw mut L0;
        let l1 = &raw mut L1_WINDOW;
        let l2 = &raw mut L2_DEVICES;
        // Block 0 (the first 2 MiB, flash on `virt`) stays invalid.
        for b in 1..512u64 {
            (*l2).0[b as usize] = b << 21 | VALID_BLOCK | ATTR_DEVICE | AF | XN;
        }
        (*l1).0[0] = kernel_paddr(l2 as u64) | VALID_TABLE;
        for g in 1..WINDOW_GIB {
            (*l1).0[g as usize] = g << 30 | VALID_BLOCK | ATTR_NORMAL | SH_INNER | AF;
        }
        (*l0).0[(KERNEL_WINDOW_BASE >> 39) as usize] = kernel_paddr(l1 as u64) | VALID_TABLE;
    }
    dsb_ish();
    // MAIR and TCR are the boot contract's (the loader set the same), so
    // only TTBR0_EL2 changes, to tables with the same window: the code
    // running now stays mapped, with the same attributes, across the switch.
    write_sysreg!("mair_el2", MAIR);
    write_sysreg!("tcr_el2", TCR);
    isb();
    write_sysreg!("ttbr0_el2", kernel_paddr(&raw const L0 as u64));
    isb();
    // SAFETY: TLB maintenance has no effect on memory contents.
    unsafe { core::arch::asm!("tlbi alle2", "dsb ish", "isb", options(nostack)) };
    let sctlr = read_sysreg!("sctlr_el2");
    // M, C, I: MMU and caches on (the loader set them; a real boot ROM may not).
    write_sysreg!("sctlr_el2", sctlr | 1 | (1 << 2) | (1 << 12));
    isb();
}

/// The kernel address of physical address `paddr`.
pub const fn ptr(paddr: u64) -> u64 {
    paddr + KERNEL_WINDOW_BASE
}
