//! Numbers that user level can observe and that depend on the kernel's
//! build configuration for Septa's one platform (QEMU `virt`, GICv2, hyp,
//! MCS, one core; what differs between release, debug and benchmark is in
//! [`crate::config`]), plus the capability type tags that
//! `DebugCapIdentify` returns.
//!
//! Each value is the one a real seL4 16.0.0 kernel built for this
//! configuration (`qemu-arm-virt`, `KernelArmHypervisorSupport`,
//! `KernelIsMCS`, Microkit's options) uses; the source of each is named. A
//! kernel that claims the ABI must produce the same values (the conformance
//! suite checks them in error details and results).

/// Capability type tags (`cap_get_capType`), as `DebugCapIdentify` returns
/// them: the generic tags of `structures_64.bf` and the aarch64 ones of
/// `arch/arm/arch/64/mode/object/structures.bf`.
pub mod cap_tag {
    pub const NULL: u32 = 0;
    pub const FRAME: u32 = 1;
    pub const UNTYPED: u32 = 2;
    pub const PAGE_TABLE: u32 = 3;
    pub const ENDPOINT: u32 = 4;
    pub const NOTIFICATION: u32 = 6;
    pub const REPLY: u32 = 8;
    pub const VSPACE: u32 = 9;
    pub const CNODE: u32 = 10;
    pub const ASID_CONTROL: u32 = 11;
    pub const THREAD: u32 = 12;
    pub const ASID_POOL: u32 = 13;
    pub const IRQ_CONTROL: u32 = 14;
    pub const VCPU: u32 = 15;
    pub const IRQ_HANDLER: u32 = 16;
    pub const ZOMBIE: u32 = 18;
    pub const DOMAIN: u32 = 20;
    pub const SCHED_CONTEXT: u32 = 22;
    pub const SCHED_CONTROL: u32 = 24;
    pub const SMC: u32 = 25;
    pub const SGI_SIGNAL: u32 = 27;
}

/// Interrupts of the platform (generated `platform_gen.h` and
/// `devices_gen.h` of `qemu-arm-virt`, GICv2).
pub mod irq {
    /// The highest IRQ number `IRQControl` accepts (`maxIRQ`).
    pub const MAX_IRQ: u64 = 159;
    /// The hypervisor timer PPI the kernel keeps for itself (hyp build).
    pub const KERNEL_TIMER: u64 = 26;
    /// The virtual GIC maintenance PPI, reserved by the kernel.
    pub const VGIC_MAINTENANCE: u64 = 25;
    /// The virtual timer PPI, reserved by the kernel.
    pub const VTIMER: u64 = 27;
    /// Software-generated interrupts 0..16 (`NUM_SGIS`).
    pub const NUM_SGIS: u64 = 16;
    /// GICv2 SGI target list entries (`GIC_SGI_NUM_TARGETS`).
    pub const SGI_NUM_TARGETS: u64 = 8;
}

/// Most objects one `Untyped_Retype` may create (`CONFIG_RETYPE_FAN_OUT_LIMIT`).
pub const RETYPE_FAN_OUT_LIMIT: u64 = 256;

/// Scheduling domains (`CONFIG_NUM_DOMAINS`, Microkit's 16).
pub const NUM_DOMAINS: u64 = 16;
/// Entries of the domain schedule (`CONFIG_NUM_DOMAIN_SCHEDULES`,
/// Microkit's 100).
pub const NUM_DOMAIN_SCHEDULES: u64 = 100;
/// Bits of a domain schedule entry's duration (`DSCHED_MAX_DURATION` is
/// `u64::MAX >> 8`).
pub const DOMAIN_DURATION_BITS: u32 = 56;

/// Thread priorities are 0..=MAX_PRIORITY (`CONFIG_NUM_PRIORITIES` - 1).
pub const MAX_PRIORITY: u64 = 255;

/// The valid `TCB_SetFlags` bits (`seL4_TCBFlag_MASK`).
pub const TCB_FLAGS_MASK: u64 = 1;

/// SPSR of a user thread as the kernel sets and sanitises it
/// (`PSTATE_USER` of this build's configuration: see
/// [`crate::Config::pstate_user`]).
pub const PSTATE_USER: u64 = crate::CONFIG.pstate_user();

/// SCTLR_EL1 of a new VCPU, what ReadReg of it returns (`SCTLR_EL1_VM` of
/// `armv/armv8-a/64/armv/vcpu.h`): the Cortex-A57 reset value's RES1 bits
/// 0x30d00800, CP15BEN (bit 5), UCT (15), nTWI (16), nTWE (18) and UCI
/// (26); the MMU and caches off.
pub const VCPU_INITIAL_SCTLR: u64 = 0x30d0_0800 | 1 << 5 | 1 << 15 | 1 << 16 | 1 << 18 | 1 << 26;

/// MCS time (`sporadic.h`, `timer.h`, generated `platform_gen.h`).
pub mod mcs {
    /// Frequency of the generic timer as the kernel assumes it
    /// (`TIMER_CLOCK_HZ`).
    pub const TIMER_CLOCK_HZ: u64 = 62_500_000;
    /// The kernel's worst-case execution time (`getKernelWcetUs`).
    pub const KERNEL_WCET_US: u64 = 10;
    /// The smallest budget or period (`MIN_BUDGET_US` = 2 * WCET * scale 1).
    pub const MIN_BUDGET_US: u64 = 2 * KERNEL_WCET_US;
    /// The largest budget or period: `getMaxUsToTicks() / 8`, where the
    /// timer's kHz rate divides `u64::MAX` (`USE_KHZ`, 62.5 MHz).
    pub const MAX_PERIOD_US: u64 = (u64::MAX / (TIMER_CLOCK_HZ / 1000)) / 8;
    /// Refills every scheduling context has (`MIN_REFILLS`).
    pub const MIN_REFILLS: u64 = 2;
    /// `sizeof(sched_context_t)`: twelve words.
    pub const SCHED_CONTEXT_HEADER_BYTES: u64 = 96;
    /// `sizeof(refill_t)`: time and amount.
    pub const REFILL_BYTES: u64 = 16;
    /// The initial thread's round-robin time slice
    /// (`CONFIG_BOOT_THREAD_TIME_SLICE`, milliseconds).
    pub const BOOT_THREAD_TIME_SLICE_MS: u64 = 5;
    /// `seL4_SchedContext_Sporadic` of `ConfigureFlags`.
    pub const FLAG_SPORADIC: u64 = 1;

    /// Refills a scheduling context of `2^size_bits` bytes can hold
    /// (`refill_absolute_max`).
    pub const fn max_refills(size_bits: u32) -> u64 {
        ((1 << size_bits) - SCHED_CONTEXT_HEADER_BYTES) / REFILL_BYTES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_limits_follow_their_formulas() {
        assert_eq!(mcs::MIN_BUDGET_US, 20);
        assert_eq!(mcs::MAX_PERIOD_US, 36_893_488_147_419);
        assert_eq!(mcs::max_refills(crate::MIN_SCHED_CONTEXT_BITS), 2);
        assert_eq!(mcs::max_refills(8), 10);
    }
}
