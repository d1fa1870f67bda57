//! The guest code of the VCPU cases: short routines that a thread bound
//! to a VCPU runs at EL1 (EL1h, interrupts masked, its MMU off, so its
//! addresses are guest-physical: the worker address space maps the
//! suite's image at the addresses it is linked for, and the guest runs it
//! there). Each routine reports by `hvc #0`, which reaches the kernel's
//! system-call path: with a number in x7 that is no system call, the
//! VMM side (the case) receives an UnknownSyscall fault carrying x0..x7
//! and the address of the `hvc`, and resumes the guest past it by
//! replying with the registers and that address plus 4.
//!
//! Every routine ends in an `hvc` that loops on itself, so a guest never
//! runs off its code. The addresses of the routines and of each `hvc` are
//! exported, so the cases can check the fault addresses exactly.
//!
//! On the host the addresses are 0: the cases are never run there.

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
core::arch::global_asm!(
    r#"
    .section .text.septa_guest, "ax"
    .balign 4

    // Where the guest runs: CurrentEL, SPSel, DAIF and SP (SP_EL1).
    .global septa_guest_probe
septa_guest_probe:
    mrs     x0, CurrentEL
    mrs     x1, SPSel
    mrs     x2, DAIF
    mov     x3, sp
    .global septa_guest_probe_hvc
septa_guest_probe_hvc:
    hvc     #0
    b       septa_guest_probe_hvc

    // Writes TPIDR_EL1, VBAR_EL1, CONTEXTIDR_EL1, SP_EL1, ELR_EL1 and
    // TPIDRRO_EL0 (which EL1 may write) from x0..x5, reports, then reads
    // them back with MPIDR_EL1 into x0..x6.
    .global septa_guest_sysregs
septa_guest_sysregs:
    msr     tpidr_el1, x0
    msr     vbar_el1, x1
    msr     contextidr_el1, x2
    mov     sp, x3
    msr     elr_el1, x4
    msr     tpidrro_el0, x5
    isb
    .global septa_guest_sysregs_hvc1
septa_guest_sysregs_hvc1:
    hvc     #0
    mrs     x0, tpidr_el1
    mrs     x1, vbar_el1
    mrs     x2, contextidr_el1
    mov     x3, sp
    mrs     x4, mpidr_el1
    mrs     x5, elr_el1
    mrs     x6, tpidrro_el0
    .global septa_guest_sysregs_hvc2
septa_guest_sysregs_hvc2:
    hvc     #0
    b       septa_guest_sysregs_hvc2

    // A real system call by hvc (the number in x5), then a report with the
    // number in x6.
    .global septa_guest_syscall
septa_guest_syscall:
    mov     x7, x5
    .global septa_guest_syscall_call
septa_guest_syscall_call:
    hvc     #0
    mov     x7, x6
    .global septa_guest_syscall_hvc
septa_guest_syscall_hvc:
    hvc     #0
    b       septa_guest_syscall_hvc

    // Instructions HCR_EL2 traps for a guest: SMC and WFI.
    .global septa_guest_smc
septa_guest_smc:
    smc     #0x17
    .global septa_guest_wfi
septa_guest_wfi:
    wfi
    .global septa_guest_traps_hvc
septa_guest_traps_hvc:
    hvc     #0
    b       septa_guest_traps_hvc

    // Loads from x1 (a guest-physical address with nothing mapped until
    // the VMM maps a page there), stores x2 at x1 + 8 and loads it back
    // into x3; then branches to x4, where nothing is mapped either.
    .global septa_guest_load
septa_guest_load:
    ldr     x0, [x1]
    str     x2, [x1, #8]
    ldr     x3, [x1, #8]
    .global septa_guest_load_hvc
septa_guest_load_hvc:
    hvc     #0
    .global septa_guest_jump
septa_guest_jump:
    blr     x4
    .global septa_guest_jump_hvc
septa_guest_jump_hvc:
    hvc     #0
    b       septa_guest_jump_hvc

    // FP/SIMD: d0 from x0, report, d0 into x1, report.
    .global septa_guest_fp
septa_guest_fp:
    fmov    d0, x0
    .global septa_guest_fp_hvc1
septa_guest_fp_hvc1:
    hvc     #0
    fmov    x1, d0
    .global septa_guest_fp_hvc2
septa_guest_fp_hvc2:
    hvc     #0
    b       septa_guest_fp_hvc2

    // The virtual timer: due at once (CVAL 0) and enabled with x1, then x2
    // turns of a loop, a report, x3 turns, the timer off, a report.
    .global septa_guest_vtimer
septa_guest_vtimer:
    msr     cntv_cval_el0, xzr
    msr     cntv_ctl_el0, x1
    isb
1:  subs    x2, x2, #1
    b.ne    1b
    .global septa_guest_vtimer_hvc1
septa_guest_vtimer_hvc1:
    hvc     #0
2:  subs    x3, x3, #1
    b.ne    2b
    msr     cntv_ctl_el0, xzr
    isb
    .global septa_guest_vtimer_hvc2
septa_guest_vtimer_hvc2:
    hvc     #0
    b       septa_guest_vtimer_hvc2

    // The GIC virtual CPU interface at x1: priority mask and group 0 on,
    // wait until a virtual IRQ is pending (ISR_EL1.I), acknowledge it
    // (GICV_IAR into x5), report; end it (GICV_EOIR), report.
    .global septa_guest_vgic
septa_guest_vgic:
    mov     w3, #0xf0
    str     w3, [x1, #4]
    mov     w3, #1
    str     w3, [x1]
1:  mrs     x4, isr_el1
    tbz     x4, #7, 1b
    ldr     w5, [x1, #0xc]
    .global septa_guest_vgic_hvc1
septa_guest_vgic_hvc1:
    hvc     #0
    str     w5, [x1, #0x10]
    isb
    .global septa_guest_vgic_hvc2
septa_guest_vgic_hvc2:
    hvc     #0
    b       septa_guest_vgic_hvc2

    // The guest's own debug registers: MDSCR_EL1 and the first breakpoint
    // and watchpoint control registers.
    .global septa_guest_debug
septa_guest_debug:
    mrs     x0, mdscr_el1
    mrs     x1, dbgbcr0_el1
    mrs     x2, dbgwcr0_el1
    .global septa_guest_debug_hvc
septa_guest_debug_hvc:
    hvc     #0
    b       septa_guest_debug_hvc

    // An EL1 vector table: every entry reports (its address tells which).
    .balign 2048
    .global septa_guest_vectors
septa_guest_vectors:
    .rept   16
    .balign 128
    hvc     #0
    b       . - 4
    .endr
"#
);

/// The routines and report points, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sym {
    Probe,
    ProbeHvc,
    Sysregs,
    SysregsHvc1,
    SysregsHvc2,
    Syscall,
    SyscallCall,
    SyscallHvc,
    Smc,
    Wfi,
    TrapsHvc,
    Load,
    LoadHvc,
    Jump,
    JumpHvc,
    Fp,
    FpHvc1,
    FpHvc2,
    Vtimer,
    VtimerHvc1,
    VtimerHvc2,
    Vgic,
    VgicHvc1,
    VgicHvc2,
    Debug,
    DebugHvc,
    Vectors,
}

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod imp {
    use super::Sym;

    macro_rules! symbols {
        ($($sym:ident => $name:ident,)*) => {
            extern "C" {
                $(static $name: u8;)*
            }
            /// The address of `s` in the image (and in a guest).
            pub fn addr(s: Sym) -> u64 {
                // Only the addresses of the assembly's symbols are taken.
                match s {
                    $(Sym::$sym => core::ptr::addr_of!($name) as u64,)*
                }
            }
        };
    }

    symbols!(
        Probe => septa_guest_probe,
        ProbeHvc => septa_guest_probe_hvc,
        Sysregs => septa_guest_sysregs,
        SysregsHvc1 => septa_guest_sysregs_hvc1,
        SysregsHvc2 => septa_guest_sysregs_hvc2,
        Syscall => septa_guest_syscall,
        SyscallCall => septa_guest_syscall_call,
        SyscallHvc => septa_guest_syscall_hvc,
        Smc => septa_guest_smc,
        Wfi => septa_guest_wfi,
        TrapsHvc => septa_guest_traps_hvc,
        Load => septa_guest_load,
        LoadHvc => septa_guest_load_hvc,
        Jump => septa_guest_jump,
        JumpHvc => septa_guest_jump_hvc,
        Fp => septa_guest_fp,
        FpHvc1 => septa_guest_fp_hvc1,
        FpHvc2 => septa_guest_fp_hvc2,
        Vtimer => septa_guest_vtimer,
        VtimerHvc1 => septa_guest_vtimer_hvc1,
        VtimerHvc2 => septa_guest_vtimer_hvc2,
        Vgic => septa_guest_vgic,
        VgicHvc1 => septa_guest_vgic_hvc1,
        VgicHvc2 => septa_guest_vgic_hvc2,
        Debug => septa_guest_debug,
        DebugHvc => septa_guest_debug_hvc,
        Vectors => septa_guest_vectors,
    );
}

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
mod imp {
    use super::Sym;

    /// Guests only run on the target.
    pub fn addr(_: Sym) -> u64 {
        0
    }
}

pub use imp::addr;

/// Offset of the vector for a synchronous exception from the current EL
/// with SP_ELx in an EL1 vector table.
pub const VECTOR_SYNC_CURRENT_SPX: u64 = 0x200;
