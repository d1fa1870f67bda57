//! Kernel entry, exception vectors, and the return to a thread.
//!
//! While a thread runs, SP_EL2 points at its `UserContext`, so an exception
//! from a lower EL stores the registers straight into the thread's block and
//! only then moves to the kernel stack. `restore_user` does the reverse.

use crate::context::UserContext;

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
    stp     x30, x21, [sp, #16 * 15]
    mrs     x22, elr_el2
    mrs     x23, spsr_el2
    stp     x22, x23, [sp, #16 * 16]
    mrs     x24, tpidr_el0
    str     x24, [sp, #16 * 17]
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
    vector  kernel_trap_entry
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
    mrs     x1, far_el2
    mrs     x2, hpfar_el2
    bl      handle_lower_sync
    b       .

lower_irq_entry:
    save_user
    bl      handle_lower_irq
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
    ldp     x21, x22, [sp, #16 * 15 + 8]
    ldp     x23, x24, [sp, #16 * 16 + 8]
    ldr     x25, [sp, #16 * 17 + 8]
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
    ldr     x30, [sp, #16 * 15]
    eret
"#
);

extern "C" {
    fn septa_restore_user(ctx: *const UserContext) -> !;
}

/// Returns to the thread whose registers are in `ctx`.
///
/// # Safety
/// `ctx` must stay valid (and be the current thread's context) until the
/// next exception, and the thread's address space must be installed.
pub unsafe fn restore_user(ctx: *const UserContext) -> ! {
    // SAFETY: forwarded to the caller.
    unsafe { septa_restore_user(ctx) }
}
