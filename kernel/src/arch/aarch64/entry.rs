//! Kernel entry, exception vectors, the return to a thread, and the idle
//! loop.
//!
//! While a thread runs, SP_EL2 points at its `UserContext` (inside its
//! TCB), so an exception from a lower EL stores the registers straight into
//! the thread's block and only then moves to the kernel stack;
//! [`restore_user`] does the reverse. The system-call, fault and interrupt
//! handlers in `trap` set the fault address (`FaultIP`), which depends on
//! the kind of exception. A system call by `svc` is recognised here and
//! goes straight to its handler: Call and ReplyRecv to the one that tries
//! the IPC fast path (`crate::fastpath`), any other to the general path.
//!
//! The thread ID registers TPIDR_EL0 and TPIDRRO_EL0 are saved on every
//! entry and loaded on every return, as seL4 does (`c_entry_hook`,
//! `c_exit_hook`): the thread's registers are always what the kernel and
//! Read/WriteRegisters see.
//!
//! When the idle thread is current the CPU waits in [`enter_idle`] at EL2
//! with interrupts unmasked and SP on the kernel stack; an interrupt there
//! arrives at the "current EL, SPx" IRQ vector and goes straight to the
//! interrupt handler, with nothing to save.

use crate::context::{OFFSET_LR, OFFSET_PC, OFFSET_SP, OFFSET_TPIDR};

/// Where ESR_EL2's exception class starts.
pub const ESR_EC_SHIFT: u64 = 26;

core::arch::global_asm!(
    r#"
    .section .text.entry, "ax"
    .global _start
_start:
    msr     daifset, #0xf
    ldr     x9, =__kernel_stack_top
    mov     sp, x9
    ldr     x9, =septa_vectors
    msr     vbar_el2, x9
    isb
    bl      kernel_boot
1:  wfe
    b       1b

    .text
    .macro  vector target
    .balign 0x80
    b       \target
    .endm

    .macro  save_user
    stp     x0, x1, [sp, #16 * 0]
    stp     x2, x3, [sp, #16 * 1]
    stp     x4, x5, [sp, #16 * 2]
    stp     x6, x7, [sp, #16 * 3]
    stp     x8, x9, [sp, #16 * 4]
    stp     x10, x11, [sp, #16 * 5]
    stp     x12, x13, [sp, #16 * 6]
    stp     x14, x15, [sp, #16 * 7]
    stp     x16, x17, [sp, #16 * 8]
    stp     x18, x19, [sp, #16 * 9]
    stp     x20, x21, [sp, #16 * 10]
    stp     x22, x23, [sp, #16 * 11]
    stp     x24, x25, [sp, #16 * 12]
    stp     x26, x27, [sp, #16 * 13]
    stp     x28, x29, [sp, #16 * 14]
    mrs     x21, sp_el0
    stp     x30, x21, [sp, #{lr}]
    mrs     x22, elr_el2
    mrs     x23, spsr_el2
    stp     x22, x23, [sp, #{pc}]
    // TPIDRRO_EL0 too: read-only at EL0, but a guest at EL1 writes it
    // (seL4's `arm_save_thread_id` on every entry).
    mrs     x24, tpidr_el0
    mrs     x25, tpidrro_el0
    stp     x24, x25, [sp, #{tpidr}]
    ldr     x9, =__kernel_stack_top
    mov     sp, x9
    .endm

    .balign 0x800
    .global septa_vectors
septa_vectors:
    vector  kernel_trap_entry
    vector  kernel_trap_entry
    vector  kernel_trap_entry
    vector  kernel_trap_entry
    vector  kernel_trap_entry
    vector  idle_irq_entry
    vector  kernel_trap_entry
    vector  kernel_trap_entry
    vector  lower_sync_entry
    vector  lower_irq_entry
    vector  kernel_trap_entry
    vector  kernel_trap_entry
    vector  kernel_trap_entry
    vector  kernel_trap_entry
    vector  kernel_trap_entry
    vector  kernel_trap_entry

lower_sync_entry:
    save_user
    mrs     x0, esr_el2
    // System calls by `svc` go straight to their handler, Call and
    // ReplyRecv to the fast path's: x7 still holds the number.
    lsr     x9, x0, #{ec_shift}
    cmp     x9, #{ec_svc64}
    b.ne    1f
    // x7 is Call (-1) or ReplyRecv (-2): x7 + 2 is 1 or 0.
    mov     x0, x7
    add     x9, x7, #{neg_reply_recv}
    cmp     x9, #{neg_reply_recv} - {neg_call}
    b.hi    2f
    bl      handle_fast_syscall
    b       .
2:  bl      handle_svc
    b       .
1:  mrs     x1, far_el2
    bl      handle_lower_sync
    b       .

lower_irq_entry:
    save_user
    mov     x0, #0
    bl      handle_irq
    b       .

idle_irq_entry:
    ldr     x9, =__kernel_stack_top
    mov     sp, x9
    mov     x0, #1
    bl      handle_irq
    b       .

kernel_trap_entry:
    mrs     x0, esr_el2
    mrs     x1, elr_el2
    mrs     x2, far_el2
    bl      handle_kernel_trap
    b       .

    .global septa_restore_user
septa_restore_user:
    mov     sp, x0
    ldp     x21, x22, [sp, #{sp_el0}]
    ldr     x23, [sp, #{pc} + 8]
    ldp     x24, x25, [sp, #{tpidr}]
    msr     sp_el0, x21
    msr     elr_el2, x22
    msr     spsr_el2, x23
    msr     tpidr_el0, x24
    msr     tpidrro_el0, x25
    ldp     x0, x1, [sp, #16 * 0]
    ldp     x2, x3, [sp, #16 * 1]
    ldp     x4, x5, [sp, #16 * 2]
    ldp     x6, x7, [sp, #16 * 3]
    ldp     x8, x9, [sp, #16 * 4]
    ldp     x10, x11, [sp, #16 * 5]
    ldp     x12, x13, [sp, #16 * 6]
    ldp     x14, x15, [sp, #16 * 7]
    ldp     x16, x17, [sp, #16 * 8]
    ldp     x18, x19, [sp, #16 * 9]
    ldp     x20, x21, [sp, #16 * 10]
    ldp     x22, x23, [sp, #16 * 11]
    ldp     x24, x25, [sp, #16 * 12]
    ldp     x26, x27, [sp, #16 * 13]
    ldp     x28, x29, [sp, #16 * 14]
    ldr     x30, [sp, #{lr}]
    eret

    .global septa_enter_idle
septa_enter_idle:
    ldr     x9, =__kernel_stack_top
    mov     sp, x9
    msr     daifclr, #2
2:  wfi
    b       2b
"#,
    ec_shift = const ESR_EC_SHIFT,
    ec_svc64 = const super::sysreg::ec::SVC64,
    neg_call = const -septa_abi::syscall::CALL,
    neg_reply_recv = const -septa_abi::syscall::REPLY_RECV,
    lr = const OFFSET_LR,
    sp_el0 = const OFFSET_SP,
    pc = const OFFSET_PC,
    tpidr = const OFFSET_TPIDR,
);

extern "C" {
    fn septa_restore_user(ctx: u64) -> !;
    fn septa_enter_idle() -> !;
}

/// Returns to the thread whose registers are at kernel address `ctx`.
///
/// # Safety
/// `ctx` must be the current thread's register block (inside its TCB, in
/// the kernel window), and the thread's address space must be installed.
#[inline(always)]
pub unsafe fn restore_user(ctx: u64) -> ! {
    // SAFETY: forwarded to the caller.
    unsafe { septa_restore_user(ctx) }
}

/// Waits for interrupts with nothing to run (the idle thread). Never
/// returns: an interrupt enters the kernel afresh on the kernel stack.
pub fn enter_idle() -> ! {
    // SAFETY: the idle loop uses only the kernel stack, which nothing else
    // uses at this point (the kernel is about to leave); the interrupt
    // vector it wakes into resets the stack itself.
    unsafe { septa_enter_idle() }
}
