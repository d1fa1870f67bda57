//! The generic timer's registers at EL0: the physical count, its
//! frequency, and the EL1 physical timer's compare value and control
//! (Arm ARM D12 "The Generic Timer in AArch64 state"). A kernel lets EL0
//! use them only if it exports them: seL4 with `KernelArmExportPCNTUser`
//! and `KernelArmExportPTMRUser` (Microkit 2.3.0's configurations for
//! QEMU virt), and Septa's kernel in those configurations; elsewhere the
//! first access is an undefined-instruction fault.
//!
//! The one place in this driver with `unsafe`: each access is one `mrs` or
//! `msr` of a register the kernel gave EL0, with no effect on memory.
#![allow(unsafe_code)]

/// CNTP_CTL_EL0: the timer is on (and, with IMASK clear, its interrupt).
pub const CTL_ENABLE: u64 = 1 << 0;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod imp {
    use core::arch::asm;

    /// CNTPCT_EL0, after an `isb` so it is not read ahead of the code
    /// before it.
    pub fn count() -> u64 {
        let v: u64;
        // SAFETY: reads a system register the kernel exports to EL0
        // (module comment); touches no memory.
        unsafe { asm!("isb", "mrs {}, cntpct_el0", out(reg) v, options(nomem, nostack)) };
        v
    }

    /// CNTFRQ_EL0.
    pub fn frequency() -> u64 {
        let v: u64;
        // SAFETY: as in `count`; CNTFRQ_EL0 is readable at EL0 whenever
        // either counter is.
        unsafe { asm!("mrs {}, cntfrq_el0", out(reg) v, options(nomem, nostack)) };
        v
    }

    /// CNTP_CVAL_EL0: the timer fires once the count reaches `ticks`.
    pub fn set_compare(ticks: u64) {
        // SAFETY: writes a system register the kernel exports to EL0; its
        // only effect is on when the timer's interrupt is raised.
        unsafe { asm!("msr cntp_cval_el0, {}", "isb", in(reg) ticks, options(nomem, nostack)) };
    }

    /// CNTP_CTL_EL0.
    pub fn set_control(v: u64) {
        // SAFETY: as in `set_compare`.
        unsafe { asm!("msr cntp_ctl_el0, {}", "isb", in(reg) v, options(nomem, nostack)) };
    }
}

/// On the host, where a PD only type-checks, a counter that stands still.
#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
mod imp {
    pub fn count() -> u64 {
        0
    }
    pub fn frequency() -> u64 {
        62_500_000
    }
    pub fn set_compare(_ticks: u64) {}
    pub fn set_control(_v: u64) {}
}

pub use imp::*;
