//! Per-thread CPU state the core switches through `machine`: the FP/SIMD
//! registers (saved into and loaded from a TCB's save area), their trap at
//! EL2, the pending-interrupt check for preemption points, and SMC calls.
//!
//! The kernel is built for soft float and never touches q0..q31 itself, so
//! a thread's FP/SIMD state stays in the registers across kernel entries;
//! these routines are the only code that moves it. The assembler is told
//! the FP and SIMD extensions exist for these instructions only.

use super::mmu::ptr;
use super::sysreg::{isb, read_sysreg, write_sysreg};

/// CPTR_EL2.TFP: FP/SIMD instructions at EL0..EL2 trap to EL2.
const CPTR_TFP: u64 = 1 << 10;
/// ISR_EL1.I: a physical IRQ is pending (read at EL2).
const ISR_I: u64 = 1 << 7;
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

/// Whether an interrupt waits at the CPU (the kernel runs with IRQs
/// masked, so one that arrived shows here until it is taken).
pub fn irq_pending() -> bool {
    read_sysreg!("isr_el1") & ISR_I != 0
}

/// SMC Calling Convention: function ids of PSCI (32- and 64-bit ranges).
const PSCI_RANGES: [(u64, u64); 2] = [(0x8400_0000, 0x8400_001f), (0xc400_0000, 0xc400_001f)];
/// SMCCC's "not supported" result.
const SMCCC_NOT_SUPPORTED: u64 = u64::MAX;

/// Makes an SMC call with x0..x7 = `args`; returns x0..x7. QEMU `virt`
/// without a secure world answers only PSCI calls (any other `smc` would
/// be undefined at EL2), so others get SMCCC's "not supported".
pub fn smc_call(args: [u64; 8]) -> [u64; 8] {
    let f = args[0] & 0xffff_ffff;
    if !PSCI_RANGES.iter().any(|&(lo, hi)| (lo..=hi).contains(&f)) {
        let mut r = args;
        r[0] = SMCCC_NOT_SUPPORTED;
        return r;
    }
    let mut r = args;
    // SAFETY: a PSCI call to the firmware (QEMU) through the SMC conduit;
    // it only reads and writes x0..x7 (x8..x17 may be clobbered by SMCCC).
    unsafe {
        core::arch::asm!(
            "smc #0",
            inout("x0") r[0],
            inout("x1") r[1],
            inout("x2") r[2],
            inout("x3") r[3],
            inout("x4") r[4],
            inout("x5") r[5],
            inout("x6") r[6],
            inout("x7") r[7],
            out("x8") _, out("x9") _, out("x10") _, out("x11") _,
            out("x12") _, out("x13") _, out("x14") _, out("x15") _,
            out("x16") _, out("x17") _,
            options(nostack),
        );
    }
    r
}
