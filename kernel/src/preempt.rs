//! # Preemption points of long-running kernel operations
//!
//! Deleting a CNode full of caps, revoking a large derivation subtree and
//! clearing a large untyped can take unbounded time. Like seL4, the kernel
//! counts *work units* in those loops and, every
//! [`MAX_WORK_UNITS_PER_PREEMPTION`] units, asks whether something more
//! urgent is waiting (an interrupt, or in MCS the end of the current budget
//! or domain). If so the operation stops with [`Preempted`]; all work done so
//! far is kept in a consistent state, and the caller, left in the Restart
//! state, re-executes the same system call later, which picks up where it
//! stopped.
//!
//! The question "is something waiting?" belongs to the interrupt controller
//! and the scheduler, so it is a hook ([`set_preemption_check`]) that they
//! register; until one is registered, nothing preempts.
//!
//! In host tests the counter and hook are per test thread.

use crate::error::Preempted;

/// Work units between two checks (seL4's default
/// `CONFIG_MAX_NUM_WORK_UNITS_PER_PREEMPTION`).
pub const MAX_WORK_UNITS_PER_PREEMPTION: u64 = 100;

#[cfg(not(test))]
mod state {
    use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

    static UNITS: AtomicU64 = AtomicU64::new(0);
    // The hook as the address of a `fn() -> bool`, 0 for none.
    static HOOK: AtomicUsize = AtomicUsize::new(0);

    pub fn units() -> u64 {
        UNITS.load(Ordering::Relaxed)
    }
    pub fn set_units(n: u64) {
        UNITS.store(n, Ordering::Relaxed)
    }
    pub fn hook() -> Option<fn() -> bool> {
        let raw = HOOK.load(Ordering::Relaxed);
        if raw == 0 {
            return None;
        }
        // SAFETY: the only non-zero values ever stored in HOOK are addresses
        // of `fn() -> bool` items, converted by `set_hook` below; function
        // pointers and usize have the same size on every target we build.
        Some(unsafe { core::mem::transmute::<usize, fn() -> bool>(raw) })
    }
    pub fn set_hook(h: Option<fn() -> bool>) {
        HOOK.store(h.map_or(0, |f| f as usize), Ordering::Relaxed)
    }
}

#[cfg(test)]
mod state {
    use std::cell::Cell;

    std::thread_local! {
        static UNITS: Cell<u64> = const { Cell::new(0) };
        static HOOK: Cell<Option<fn() -> bool>> = const { Cell::new(None) };
    }

    pub fn units() -> u64 {
        UNITS.with(|u| u.get())
    }
    pub fn set_units(n: u64) {
        UNITS.with(|u| u.set(n))
    }
    pub fn hook() -> Option<fn() -> bool> {
        HOOK.with(|h| h.get())
    }
    pub fn set_hook(h: Option<fn() -> bool>) {
        HOOK.with(|c| c.set(h))
    }
}

/// Registers the check that decides whether to preempt (interrupt pending,
/// budget or domain expired). `None` disables preemption.
pub fn set_preemption_check(check: Option<fn() -> bool>) {
    state::set_hook(check);
}

/// Resets the work counter; the kernel entry path calls this at the start
/// of each system call, as seL4 does.
pub fn reset_work_units() {
    state::set_units(0);
}

/// Records one unit of work and, every [`MAX_WORK_UNITS_PER_PREEMPTION`]
/// units, asks the registered check whether to stop here.
pub fn preemption_point() -> Result<(), Preempted> {
    let units = state::units() + 1;
    if units < MAX_WORK_UNITS_PER_PREEMPTION {
        state::set_units(units);
        return Ok(());
    }
    state::set_units(0);
    match state::hook() {
        Some(check) if check() => Err(Preempted),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preempts_only_every_hundred_units_and_only_when_asked() {
        reset_work_units();
        set_preemption_check(None);
        for _ in 0..1000 {
            assert_eq!(preemption_point(), Ok(()));
        }
        set_preemption_check(Some(|| true));
        reset_work_units();
        let first = (1..=1000).find(|_| preemption_point().is_err());
        assert_eq!(first, Some(MAX_WORK_UNITS_PER_PREEMPTION));
        set_preemption_check(None);
    }
}
