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
                && outranks_ready(s, prio)
                && no_release_due(s)
        },
    )
}

/// No ready thread of the current domain has a priority above `prio`.
#[inline(always)]
fn outranks_ready(s: &SchedState, prio: u64) -> bool {
    match highest_prio(s) {
        Some(h) => prio >= h,
        None => true,
    }
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
pub(super) fn no_release_due(s: &SchedState) -> bool {
    match s.release_queue.get().head {
        None => true,
        Some(t) => match sc_of(t) {
            Some(sc) => !sc.refill_ready(),
            None => true,
        },
    }
}

/// Whether the slow path's [`schedule`] after a system call that changed
/// nothing it looks at would keep the current thread running, priority
/// `prio`, without a switch: nothing pending, and no ready thread of the
/// domain outranks it. Call after [`fast_budget`].
#[inline(always)]
pub fn fast_keeps_current(prio: u64) -> bool {
    with(
        #[inline(always)]
        |s| nothing_pending(s) && outranks_ready(s, prio),
    )
}

/// Reads the clock as [`update_timestamp`] does and returns the current
/// scheduling context if [`check_budget`] would let the current thread go
/// on: its head refill covers what it consumed plus a kernel exit.
#[inline(always)]
pub fn fast_budget() -> Option<Sc> {
    update_timestamp();
    let (sc, consumed) = with(|s| (s.cur_sc.get(), s.consumed.get()));
    // Written out: at opt-level "s" `Option::filter` stays a call.
    match sc {
        Some(sc) if sc.refill_sufficient_near(consumed) => Some(sc),
        _ => None,
    }
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

/// The end of a signal sent by the current thread `cur` (the signal fast
/// path's, `crate::fastpath::signal`): [`schedule`] when the signal woke a
/// thread `t` that outranks `cur`, written out for that case, else
/// [`schedule`] itself.
///
/// `schedule` with `SwitchTo(t)` pending, no release due (`awaken` would
/// find nothing), the domain's time left (`check_domain_time` would do
/// nothing), `cur` not the idle thread and below `t` (no "fast fail", no
/// equal priority): `cur` goes back to the head of its ready queue if it
/// can run, `t` becomes current, and the scheduling context switch, the
/// time commit and the timer follow as there. What is left out is the
/// choosing, none of the state changes.
pub fn schedule_after_signal(cur: Tcb) {
    let direct = with(|s| match s.action.get() {
        Action::SwitchTo(t) => {
            t.priority() > cur.priority()
                && s.idle_thread.get() != Some(cur)
                && !(NUM_DOMAINS > 1 && s.domain_time.get() == 0)
                && no_release_due(s)
        }
        _ => false,
    });
    let Action::SwitchTo(t) = action() else {
        return schedule();
    };
    if !direct {
        return schedule();
    }
    if is_schedulable(cur) {
        tcb_sched_enqueue(cur);
    }
    switch_to_thread(t);
    with(|s| s.action.set(Action::ResumeCurrent));
    switch_sched_context();
    if with(|s| s.reprogram.replace(false)) {
        set_next_interrupt();
    }
}

/// Whether [`schedule`], with the thread woken by an interrupt's signal
/// (priority `prio`, above the interrupted thread `cur`'s, in `domain`)
/// made the candidate by `possible_switch_to`, would switch straight to
/// it (the interrupt fast path, `crate::fastpath::interrupt`): no action
/// was pending (else the candidate would be queued and a new thread
/// chosen), the thread is in the current domain, which has time left
/// (`check_domain_time` would do nothing), no release is due (`awaken`
/// would release nothing), and if `cur` is the idle thread (a "fast fail"
/// in `schedule`) no ready thread outranks the woken one. Call after the
/// entry's [`update_timestamp`].
#[inline(always)]
pub fn fast_interrupt_would_switch(cur: Tcb, prio: u64, domain: u64) -> bool {
    with(
        #[inline(always)]
        |s| {
            s.action.get() == Action::ResumeCurrent
                && s.cur_domain.get() == domain
                && !(NUM_DOMAINS > 1 && s.domain_time.get() == 0)
                && no_release_due(s)
                && (s.idle_thread.get() != Some(cur) || outranks_ready(s, prio))
        },
    )
}

/// The end of the interrupt fast path: [`schedule`]'s SwitchTo case for a
/// candidate `t` that outranks the current thread `cur` (as
/// [`schedule_after_signal`] writes it out): `cur` goes back to the head
/// of its ready queue if it can run, `t` (in no queue, its address space
/// `root`) becomes current, then the scheduling context switch, the time
/// commit and the timer as there. The scheduler action stays
/// ResumeCurrent, which is what `schedule` leaves.
#[inline(always)]
pub fn fast_interrupt_switch(cur: Tcb, t: Tcb, sc: Sc, root: vspace::ReadyRoot) {
    if schedulable(cur) {
        tcb_sched_enqueue(cur);
    }
    fast_switch_to(t, root);
    fast_switch_sc(Some(sc));
}

/// [`switch_sched_context`] and then the timer if it is to be reprogrammed
/// (what [`schedule`] ends with), for a switch to a current thread whose
/// scheduling context the fast path already holds, `next`: the same steps
/// without reading the current thread and its SC again, and with the
/// timer's deadline computed from `next` directly
/// ([`set_next_interrupt_before_eret`]).
#[inline(always)]
pub fn fast_switch_sc(next: Option<Sc>) {
    let changed = cur_sc() != next;
    if changed {
        if let Some(sc) = next {
            // As in `switch_sched_context`: a round-robin SC's check does
            // nothing.
            if !sc.is_sporadic() && !sc.is_round_robin() {
                sched_context::refill_unblock_check(sc);
            }
        }
    }
    if changed || with(|s| s.reprogram.get()) {
        commit_time_inline();
        with(|s| {
            s.cur_sc.set(next);
            s.reprogram.set(false);
        });
        set_next_interrupt_before_eret(next);
    }
}

/// The end of the active-server fast paths (`crate::fastpath`
/// `call_active` and `reply_recv_active`): the IPC blocked the current
/// thread and made `t` (in no queue, its address space `root`, its
/// scheduling context `sc`, another than the current one) the thread to
/// run, and [`schedule`] would switch straight to it (the caller checked
/// [`fast_would_choose`], so no action was pending and the timer was not
/// to be reprogrammed). What `schedule` does then, written out for that
/// case: the switch, and `switch_sched_context` for an SC that changes
/// (the timer is to be reprogrammed, the refill check of a
/// constant-bandwidth `sc`, the time commit to the current SC, `sc`
/// current), then the timer; the action stays ResumeCurrent.
///
/// `cur_sc` is the current SC, which [`fast_budget`] found with budget for
/// this entry: so it is active (an SC holds budget only once configured,
/// and its deletion, which leaves the amounts, unbinds its thread first)
/// and not the idle thread's, which the commit need not test again.
#[inline(never)]
pub fn fast_switch_to_other_sc(t: Tcb, sc: Sc, root: vspace::ReadyRoot, cur_sc: Sc) {
    fast_switch_to(t, root);
    if !sc.is_sporadic() && !sc.is_round_robin() {
        sched_context::refill_unblock_check(sc);
    }
    commit_time_to(cur_sc);
    with(|s| {
        s.cur_sc.set(Some(sc));
        s.reprogram.set(false);
    });
    set_next_interrupt_before_eret(Some(sc));
}

/// Stores `t` as the current thread again, after an out-of-line fast path
/// made it current (`crate::fastpath`'s active-server paths), and returns
/// true: a store the compiler sees, from which the kernel exit's read of
/// the current thread is taken (without it, the passive fast paths, which
/// share that exit, paid a load of it: ppc-passive 963 to 973).
#[inline(always)]
pub fn fast_made_current(t: Tcb) -> bool {
    with(|s| s.cur_thread.set(Some(t)));
    true
}
