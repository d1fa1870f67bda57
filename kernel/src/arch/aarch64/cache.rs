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
