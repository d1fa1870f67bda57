//! Data and instruction cache maintenance by physical range (through the
//! kernel window), for the Page and VSpace cache invocations and for code
//! the kernel writes on a thread's behalf.

use super::mmu::ptr;

/// Smallest data cache line of the CPU (CTR_EL0.DminLine), in bytes.
fn dcache_line() -> u64 {
    let ctr = super::sysreg::read_sysreg!("ctr_el0");
    4 << ((ctr >> 16) & 0xf)
}

fn each_line(paddr: u64, len: u64, op: impl Fn(u64)) {
    let line = dcache_line();
    let mut a = ptr(paddr) & !(line - 1);
    let end = ptr(paddr) + len;
    while a < end {
        op(a);
        a += line;
    }
    super::sysreg::dsb_ish();
}

pub fn clean(paddr: u64, len: u64) {
    // SAFETY: cache maintenance by VA on the window does not change memory contents.
    each_line(paddr, len, |a| unsafe {
        core::arch::asm!("dc cvac, {}", in(reg) a, options(nostack))
    });
}

pub fn invalidate(paddr: u64, len: u64) {
    // SAFETY: callers ask to discard lines of memory user level owns and
    // asked to invalidate (the seL4 semantics of Invalidate_Data).
    each_line(paddr, len, |a| unsafe {
        core::arch::asm!("dc ivac, {}", in(reg) a, options(nostack))
    });
}

pub fn clean_invalidate(paddr: u64, len: u64) {
    // SAFETY: clean then invalidate never loses data.
    each_line(paddr, len, |a| unsafe {
        core::arch::asm!("dc civac, {}", in(reg) a, options(nostack))
    });
}

/// Makes instructions written to `paddr..+len` visible to instruction fetch.
pub fn unify_instruction(paddr: u64, len: u64) {
    // SAFETY: clean to the point of unification, then drop the instruction cache.
    each_line(paddr, len, |a| unsafe {
        core::arch::asm!("dc cvau, {}", in(reg) a, options(nostack))
    });
    // SAFETY: instruction cache invalidation has no effect on memory.
    unsafe { core::arch::asm!("ic iallu", "dsb ish", "isb", options(nostack)) };
}

/// Cleans and invalidates the data and unified caches of `level` (0 is
/// L1) by set and way.
#[inline(never)]
fn clean_invalidate_level(level: u64) {
    super::sysreg::write_sysreg!("csselr_el1", level << 1);
    super::sysreg::isb();
    let ccsidr = super::sysreg::read_sysreg!("ccsidr_el1");
    let line_shift = (ccsidr & 0x7) + 4;
    let ways = ((ccsidr >> 3) & 0x3ff) + 1;
    let sets = ((ccsidr >> 13) & 0x7fff) + 1;
    // The way number sits in the top bits of the operand.
    let way_shift = (ways as u32 - 1).leading_zeros();
    for way in 0..ways {
        for set in 0..sets {
            let operand = (way << way_shift) | (set << line_shift) | (level << 1);
            // SAFETY: clean and invalidate never loses data.
            unsafe { core::arch::asm!("dc cisw, {}", in(reg) operand, options(nostack)) };
        }
    }
}

/// Invalidates the instruction caches to the point of unification.
fn invalidate_instruction() {
    // SAFETY: instruction cache invalidation has no effect on memory.
    unsafe { core::arch::asm!("ic iallu", "dsb ish", "isb", options(nostack)) };
}

/// Cleans and invalidates every data cache up to the point of coherency,
/// then the instruction caches (seL4's `arch_clean_invalidate_caches`, for
/// BenchmarkFlushCaches).
pub fn clean_invalidate_all() {
    let clidr = super::sysreg::read_sysreg!("clidr_el1");
    let loc = (clidr >> 24) & 0x7;
    super::sysreg::dsb_ish();
    for level in 0..loc {
        // Cache type of the level: 2 data, 3 separate, 4 unified.
        if (clidr >> (3 * level)) & 0x7 >= 2 {
            clean_invalidate_level(level);
        }
    }
    super::sysreg::dsb_ish();
    invalidate_instruction();
}

/// The level-1 caches only (seL4's `arch_clean_invalidate_L1_caches`):
/// bit 1 of `kind` the data cache, bit 0 the instruction cache.
pub fn clean_invalidate_l1(kind: u64) {
    super::sysreg::dsb_ish();
    if kind & 2 != 0 {
        clean_invalidate_level(0);
        super::sysreg::dsb_ish();
    }
    if kind & 1 != 0 {
        invalidate_instruction();
    }
}
