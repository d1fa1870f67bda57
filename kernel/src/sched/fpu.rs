//! # FPU ownership
//!
//! FP/SIMD state is switched lazily, on first use: it stays in the
//! registers while the kernel runs (the kernel never touches them), and a
//! switch to a thread that does not own those registers only turns FP/SIMD
//! off (a trap to EL2). The thread's first FP/SIMD instruction then traps,
//! and [`handle_fpu_trap`] saves the owner's state into its TCB, loads the
//! thread's and lets the instruction run again. Threads that never touch
//! the FPU between switches (most servers, the IPC paths) never pay for
//! it. seL4 16.0.0 switches eagerly on every thread switch
//! (`lazyFPURestore`); user level cannot tell the difference, as every
//! thread always finds its own FP/SIMD state. Threads with
//! `seL4_TCBFlag_fpuDisabled` run with FP/SIMD trapped, and their trap is
//! a fault as before.

use super::*;
use crate::machine;

/// Makes the FPU state of `new` live, saving the previous owner's (seL4's
/// `switchLocalFpuOwner`).
pub fn switch_local_fpu_owner(new: Option<Tcb>) {
    machine::fpu_enable(true);
    if let Some(owner) = with(|s| s.fpu_owner.get()) {
        machine::fpu_save(owner.fpu_paddr());
    }
    match new {
        Some(t) => machine::fpu_load(t.fpu_paddr()),
        None => machine::fpu_enable(false),
    }
    with(|s| s.fpu_owner.set(new));
}

/// Prepares the FPU for `t` before it runs (seL4's `lazyFPURestore`, but
/// lazier): on if `t` may use it and its state is in the registers, else
/// off, so that its first use traps to [`handle_fpu_trap`].
#[inline(always)]
pub fn lazy_fpu_restore(t: Tcb) {
    // The owner first: its test is the usual answer (no thread switched to
    // owns the registers) and needs no read of the thread.
    let live = with(|s| s.fpu_owner.get()) == Some(t) && t.flags() & FLAG_FPU_DISABLED == 0;
    machine::fpu_enable(live);
}

/// The current thread used FP/SIMD while it was off: if the thread may use
/// the FPU, its state becomes live (the owner's saved first) and the
/// instruction runs again when the thread resumes; returns false if the
/// thread runs with `seL4_TCBFlag_fpuDisabled`, whose trap is a fault.
/// Nothing else happens (no time is charged, nothing is scheduled): to the
/// rest of the kernel the thread simply ran on.
pub fn handle_fpu_trap() -> bool {
    let cur = cur_thread();
    if cur.flags() & FLAG_FPU_DISABLED != 0 || is_idle(cur) {
        return false;
    }
    if with(|s| s.fpu_owner.get()) == Some(cur) {
        machine::fpu_enable(true);
    } else {
        switch_local_fpu_owner(Some(cur));
    }
    true
}

/// A thread goes away or stops using the FPU: save its state and forget it
/// as the owner (seL4's `fpuRelease`). Out of line (TCB invocations and
/// deletion call it); the FPU trap keeps its inlined switch.
#[inline(never)]
pub fn fpu_release(t: Tcb) {
    if with(|s| s.fpu_owner.get()) == Some(t) {
        switch_local_fpu_owner(None);
    }
}
