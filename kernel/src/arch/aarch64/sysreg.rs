//! Named system-register bits used by more than one module.

/// HCR_EL2 bits (ARM ARM D13.2.48).
pub mod hcr {
    pub const VM: u64 = 1 << 0;
    pub const SWIO: u64 = 1 << 1;
    pub const FMO: u64 = 1 << 3;
    pub const IMO: u64 = 1 << 4;
    pub const AMO: u64 = 1 << 5;
    pub const DC: u64 = 1 << 12;
    pub const TWI: u64 = 1 << 13;
    pub const TWE: u64 = 1 << 14;
    pub const TSC: u64 = 1 << 19;
    pub const TAC: u64 = 1 << 21;
    pub const TTLB: u64 = 1 << 25;
    pub const TVM: u64 = 1 << 26;
    pub const TGE: u64 = 1 << 27;
    pub const RW: u64 = 1 << 31;
    /// Guests run at EL1 with their own stage 1, WFI and WFE trapped (a
    /// VCPU fault each), as seL4's `HCR_VCPU` without
    /// `KernelArmDisableWFIWFETraps`.
    pub const VCPU: u64 = COMMON | TWE | TWI;
    /// Settings common to native threads and guests: stage 2 on, EL1 is
    /// AArch64, physical interrupts and SMC trap to EL2.
    pub const COMMON: u64 = VM | RW | AMO | IMO | FMO | TSC;
    /// Native threads run at EL0 with stage 1 off (DC), traps to EL2 (TGE),
    /// and no access to EL1 translation or cache maintenance by set/way.
    pub const NATIVE: u64 = COMMON | TGE | TVM | TTLB | DC | TAC | SWIO;
}

/// SCTLR_EL1 as native threads run with it (seL4's `SCTLR_EL1_NATIVE`):
/// the A57 reset value's RES1 bits, AArch32 barriers, WFI and WFE not
/// trapped, caches on, and EL0 cache maintenance (UCI) and CTR_EL0 reads
/// (UCT) allowed. Under HCR_EL2.TGE its traps go to EL2.
pub mod sctlr_el1 {
    const RES: u64 = 0x30d0_0800;
    const C: u64 = 1 << 2;
    const CP15BEN: u64 = 1 << 5;
    const I: u64 = 1 << 12;
    const UCT: u64 = 1 << 15;
    const NTWI: u64 = 1 << 16;
    const NTWE: u64 = 1 << 18;
    const UCI: u64 = 1 << 26;
    pub const NATIVE: u64 = RES | CP15BEN | NTWI | NTWE | C | I | UCI | UCT;
}

/// CNTKCTL_EL1: what EL0 may use of the generic timer.
pub mod cntkctl {
    /// The physical count, CNTPCT_EL0.
    pub const EL0PCTEN: u64 = 1 << 0;
    /// The EL1 physical timer, CNTP_*_EL0.
    pub const EL0PTEN: u64 = 1 << 9;
}

/// CNTHCTL_EL2: what EL1 and EL0 may use of the physical counter and timer
/// (without it, EL0 access traps to EL2 whatever CNTKCTL_EL1 says).
pub mod cnthctl {
    pub const EL1PCTEN: u64 = 1 << 0;
    pub const EL1PCEN: u64 = 1 << 1;
}

/// PMU registers of the benchmark configuration.
pub mod pmu {
    /// PMUSERENR_EL0.EN: EL0 may use every PMU register.
    pub const PMUSERENR_EN: u64 = 1 << 0;
    /// PMCR_EL0: enable, reset the event counters, reset the cycle counter.
    pub const PMCR_E: u64 = 1 << 0;
    pub const PMCR_P: u64 = 1 << 1;
    pub const PMCR_C: u64 = 1 << 2;
    /// PMCNTENSET_EL0: the cycle counter.
    pub const PMCNTEN_CYCLES: u64 = 1 << 31;
}

/// Exception classes of ESR_EL2 (ARM ARM D13.2.37).
pub mod ec {
    pub const FP_ASIMD: u64 = 0x07;
    pub const SVC64: u64 = 0x15;
    pub const HVC64: u64 = 0x16;
    pub const INSTR_ABORT_LOWER: u64 = 0x20;
    pub const DATA_ABORT_LOWER: u64 = 0x24;
}

macro_rules! read_sysreg {
    ($name:literal) => {{
        let v: u64;
        // SAFETY: reading a system register has no memory effects.
        unsafe { core::arch::asm!(concat!("mrs {}, ", $name), out(reg) v, options(nomem, nostack)) };
        v
    }};
}

macro_rules! write_sysreg {
    ($name:literal, $v:expr) => {{
        let v: u64 = $v;
        // SAFETY: callers write registers the kernel owns, with values that
        // keep EL2 running; each use site says why its value is right.
        unsafe { core::arch::asm!(concat!("msr ", $name, ", {}"), in(reg) v, options(nostack)) };
    }};
}

pub(crate) use read_sysreg;
pub(crate) use write_sysreg;

pub fn isb() {
    // SAFETY: a barrier has no effect on memory contents.
    unsafe { core::arch::asm!("isb", options(nostack)) };
}

pub fn dsb_ish() {
    // SAFETY: a barrier has no effect on memory contents.
    unsafe { core::arch::asm!("dsb ish", options(nostack)) };
}
