//! # septa-pmu: counting instructions from a protection domain
//!
//! Under QEMU with `-icount shift=0,sleep=off` the PMU cycle counter
//! (PMCCNTR_EL0) advances once per instruction, and the system counter
//! (62.5 MHz, read as CNTPCT_EL0, which Microkit's configurations export to
//! EL0: `KernelArmExportPCNTUser`) once per 16. The benchmark configuration
//! (seL4's KernelArmExportPMUUser) lets EL0 read the PMU; counting the kernel's own instructions at EL2 is then the
//! reader's choice (PMCCFILTR_EL0.NSH), exactly as on real seL4.
//!
//! Owns: a few register accesses. Must not: touch anything else. On the
//! host every reading is 0, so code using it still compiles and tests.
#![no_std]

/// PMCCFILTR_EL0.NSH: count cycles at EL2 (non-secure) as well.
#[cfg_attr(
    not(all(target_arch = "aarch64", target_os = "none")),
    allow(dead_code)
)]
const PMCCFILTR_NSH: u64 = 1 << 27;

/// Starts the cycle counter (PMCR_EL0.E, PMCNTENSET_EL0.C: real seL4's
/// PMU export leaves them off) and makes it count EL2 too, so a round trip
/// through the kernel is counted whole. Needs a kernel that exports the
/// PMU to EL0 (else it traps).
pub fn count_kernel_too() {
    #[cfg(all(target_arch = "aarch64", target_os = "none"))]
    // SAFETY: writes PMU control, enable and filter registers that EL0 may
    // write when the kernel exported the PMU; they change what is counted,
    // not memory.
    unsafe {
        core::arch::asm!(
            "mrs {t}, pmcr_el0",
            "orr {t}, {t}, #1",
            "msr pmcr_el0, {t}",
            "msr pmcntenset_el0, {c}",
            "msr pmccfiltr_el0, {f}",
            "isb",
            t = out(reg) _,
            c = in(reg) 1u64 << 31,
            f = in(reg) PMCCFILTR_NSH,
            options(nostack, nomem)
        );
    }
}

/// The architectural event INST_RETIRED.
#[cfg_attr(
    not(all(target_arch = "aarch64", target_os = "none")),
    allow(dead_code)
)]
const INST_RETIRED: u64 = 0x08;

/// Starts event counter 0 counting instructions retired (INST_RETIRED), at
/// EL2 too. Unlike the cycle counter, which under `-icount` follows QEMU's
/// virtual clock and so also advances while the CPU waits for a device,
/// QEMU counts this event from the instructions executed alone (it offers
/// it only under `-icount`): the figure for work that waits on I/O.
pub fn count_instructions() {
    count_kernel_too();
    #[cfg(all(target_arch = "aarch64", target_os = "none"))]
    // SAFETY: as `count_kernel_too`: PMU selection, type and enable
    // registers EL0 may write once the PMU is exported; no memory.
    unsafe {
        core::arch::asm!(
            "msr pmselr_el0, xzr",
            "isb",
            "msr pmxevtyper_el0, {t}",
            "msr pmcntenset_el0, {c}",
            "isb",
            t = in(reg) INST_RETIRED | PMCCFILTR_NSH,
            c = in(reg) 1u64,
            options(nostack, nomem)
        );
    }
}

/// Event counter 0 (32 bits): instructions retired since
/// [`count_instructions`], modulo 2^32 (subtract with `wrapping_sub`).
pub fn instructions() -> u32 {
    #[cfg(all(target_arch = "aarch64", target_os = "none"))]
    {
        let v: u64;
        // SAFETY: reading PMEVCNTR0_EL0 has no side effects; the kernel
        // exported the PMU to EL0.
        unsafe {
            core::arch::asm!("isb", "mrs {}, pmevcntr0_el0", out(reg) v, options(nostack, nomem))
        };
        v as u32
    }
    #[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
    0
}

/// The PMU cycle counter (instructions under `-icount shift=0`).
pub fn cycles() -> u64 {
    #[cfg(all(target_arch = "aarch64", target_os = "none"))]
    {
        let v: u64;
        // SAFETY: reading PMCCNTR_EL0 has no side effects; the kernel
        // exported it to EL0 (else this traps, which the kernel reports).
        unsafe {
            core::arch::asm!("isb", "mrs {}, pmccntr_el0", out(reg) v, options(nostack, nomem))
        };
        v
    }
    #[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
    0
}

/// The system counter as EL0 may read it (CNTPCT_EL0, exported in every
/// configuration): 16 instructions a tick under icount.
pub fn system_counter() -> u64 {
    #[cfg(all(target_arch = "aarch64", target_os = "none"))]
    {
        let v: u64;
        // SAFETY: reading the physical counter has no side effects; both
        // kernels let EL0 read it.
        unsafe {
            core::arch::asm!("isb", "mrs {}, cntpct_el0", out(reg) v, options(nostack, nomem))
        };
        v
    }
    #[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
    0
}

/// Instructions per system counter tick under `-icount shift=0`.
pub const INSTRUCTIONS_PER_TICK: u64 = 16;

/// The system counter's frequency in Hz (CNTFRQ_EL0, which EL0 may read
/// whenever it may read the counter); 0 on the host.
pub fn counter_frequency() -> u64 {
    #[cfg(all(target_arch = "aarch64", target_os = "none"))]
    {
        let v: u64;
        // SAFETY: reading CNTFRQ_EL0 has no side effects, and EL0 may read
        // it where it may read the physical counter (as above).
        unsafe { core::arch::asm!("mrs {}, cntfrq_el0", out(reg) v, options(nostack, nomem)) };
        v
    }
    #[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
    0
}
