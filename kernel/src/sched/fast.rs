//! # What the IPC fast paths ask of the scheduler (see `crate::fastpath`)

use super::*;

/// Whether the slow path's [`schedule`], after an IPC that blocked the
/// current thread and made `t` (priority `prio`, in domain `domain`)
/// runnable, would switch straight to `t` and change nothing else: the
/// scheduler was left alone since the last exit (no action pending, no
/// timer reprogramming), no thread in the release queue is due (which
/// [`awaken`] would make ready first), the domain has time left and is
/// `t`'s, and no ready thread outranks `t` (which `choose_thread` would
/// pick instead). Call after [`fast_budget`], which reads the clock.
#[inline(always)]
pub fn fast_would_choose(prio: u64, domain: u64) -> bool {
    with(
        #[inline(always)]
        |s| {
            s.action.get() == Action::ResumeCurrent
                && !s.reprogram.get()
                && s.domain_time.get() != 0
                && s.cur_domain.get() == domain
                && highest_prio(s).is_none_or(|h| prio >= h)
                && no_release_due(s)
        },
    )
}

/// The scheduler was left alone since the last exit and [`schedule`] has
/// nothing to do on its own: no action pending, no timer reprogramming,
/// time left in the domain, no release due.
#[inline(always)]
fn nothing_pending(s: &SchedState) -> bool {
    s.action.get() == Action::ResumeCurrent
        && !s.reprogram.get()
        && s.domain_time.get() != 0
        && no_release_due(s)
}

/// No thread of the release queue is due to be released.
#[inline(always)]
fn no_release_due(s: &SchedState) -> bool {
    s.release_queue
        .get()
        .head
        .is_none_or(|t| !sc_of(t).is_some_and(|sc| sc.refill_ready()))
}

/// Whether the slow path's [`schedule`] after a system call that changed
/// nothing it looks at would keep the current thread running, priority
/// `prio`, without a switch: nothing pending, and no ready thread of the
/// domain outranks it. Call after [`fast_budget`].
#[inline(always)]
pub fn fast_keeps_current(prio: u64) -> bool {
    with(
        #[inline(always)]
        |s| nothing_pending(s) && highest_prio(s).is_none_or(|h| prio >= h),
    )
}

/// Reads the clock as [`update_timestamp`] does and returns the current
/// scheduling context if [`check_budget`] would let the current thread go
/// on: its head refill covers what it consumed plus a kernel exit.
#[inline(always)]
pub fn fast_budget() -> Option<Sc> {
    update_timestamp();
    let (sc, consumed) = with(|s| (s.cur_sc.get(), s.consumed.get()));
    sc.filter(|sc| sc.refill_sufficient(consumed))
}

/// The end of a fast path: makes `t`, which is in no queue, the current
/// thread in the address space `root` (what [`switch_to_thread`] does).
#[inline(always)]
pub fn fast_switch_to(t: Tcb, root: vspace::ReadyRoot) {
    crate::benchmark::switch_away(t);
    vspace::set_ready_root(root);
    lazy_fpu_restore(t);
    vcpu::switch_to(t);
    with(|s| s.cur_thread.set(Some(t)));
}
