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
