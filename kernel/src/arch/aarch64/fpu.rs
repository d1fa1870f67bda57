//! The FP/SIMD registers, which the core switches through `machine`: saved
//! into and loaded from a TCB's save area, and their trap at EL2.
//!
//! The kernel is built for soft float and never touches q0..q31 itself, so
//! a thread's FP/SIMD state stays in the registers across kernel entries;
//! these routines are the only code that moves it. The assembler is told
//! the FP and SIMD extensions exist for these instructions only.

use super::mmu::ptr;
use super::sysreg::{isb, read_sysreg, write_sysreg};

/// CPTR_EL2.TFP: FP/SIMD instructions at EL0..EL2 trap to EL2.
const CPTR_TFP: u64 = 1 << 10;
/// Byte offsets of FPSR and FPCR in the save area (after q0..q31).
const FPSR_OFFSET: u64 = 512;

/// Lets FP/SIMD instructions run (`on`) or makes them trap to EL2.
#[inline(always)]
pub fn enable(on: bool) {
    let cptr = read_sysreg!("cptr_el2");
    let new = if on {
        cptr & !CPTR_TFP
    } else {
        cptr | CPTR_TFP
    };
    if new != cptr {
        // Only the FP trap bit changes; the kernel itself uses no FP.
        write_sysreg!("cptr_el2", new);
        isb();
    }
}

/// Stores q0..q31, FPSR and FPCR at physical `paddr` (528 bytes, 16-byte
/// aligned). The FPU must be enabled.
pub fn save(paddr: u64) {
    let p = ptr(paddr);
    // SAFETY: `p` is a TCB's FP save area in the kernel window (checked by
    // the TCB layout: 528 bytes, 16-byte aligned, inside the object); the
    // instructions only read FP registers and write that area.
    unsafe {
        core::arch::asm!(
            ".arch_extension fp",
            ".arch_extension simd",
            "stp q0, q1, [{p}, #0]",
            "stp q2, q3, [{p}, #32]",
            "stp q4, q5, [{p}, #64]",
            "stp q6, q7, [{p}, #96]",
            "stp q8, q9, [{p}, #128]",
            "stp q10, q11, [{p}, #160]",
            "stp q12, q13, [{p}, #192]",
            "stp q14, q15, [{p}, #224]",
            "stp q16, q17, [{p}, #256]",
            "stp q18, q19, [{p}, #288]",
            "stp q20, q21, [{p}, #320]",
            "stp q22, q23, [{p}, #352]",
            "stp q24, q25, [{p}, #384]",
            "stp q26, q27, [{p}, #416]",
            "stp q28, q29, [{p}, #448]",
            "stp q30, q31, [{p}, #480]",
            "mrs {t}, fpsr",
            "str {t}, [{p}, #{fpsr}]",
            "mrs {t}, fpcr",
            "str {t}, [{p}, #{fpsr} + 8]",
            p = in(reg) p,
            t = out(reg) _,
            fpsr = const FPSR_OFFSET,
            options(nostack, preserves_flags),
        );
    }
}

/// Loads q0..q31, FPSR and FPCR from physical `paddr`. The FPU must be
/// enabled.
pub fn load(paddr: u64) {
    let p = ptr(paddr);
    // SAFETY: as in `save`; the instructions only read that area and write
    // FP registers, which the kernel does not use.
    unsafe {
        core::arch::asm!(
            ".arch_extension fp",
            ".arch_extension simd",
            "ldp q0, q1, [{p}, #0]",
            "ldp q2, q3, [{p}, #32]",
            "ldp q4, q5, [{p}, #64]",
            "ldp q6, q7, [{p}, #96]",
            "ldp q8, q9, [{p}, #128]",
            "ldp q10, q11, [{p}, #160]",
            "ldp q12, q13, [{p}, #192]",
            "ldp q14, q15, [{p}, #224]",
            "ldp q16, q17, [{p}, #256]",
            "ldp q18, q19, [{p}, #288]",
            "ldp q20, q21, [{p}, #320]",
            "ldp q22, q23, [{p}, #352]",
            "ldp q24, q25, [{p}, #384]",
            "ldp q26, q27, [{p}, #416]",
            "ldp q28, q29, [{p}, #448]",
            "ldp q30, q31, [{p}, #480]",
            "ldr {t}, [{p}, #{fpsr}]",
            "msr fpsr, {t}",
            "ldr {t}, [{p}, #{fpsr} + 8]",
            "msr fpcr, {t}",
            p = in(reg) p,
            t = out(reg) _,
            fpsr = const FPSR_OFFSET,
            options(nostack, preserves_flags),
        );
    }
}
