//! # A signal that wakes a higher-priority thread, switched to directly
//!
//! The notify-rt case of the signal fast path (`super::signal`): the
//! client's Send on a notification wakes the server, which waits on it or
//! is bound to it and in Recv on an endpoint, and outranks the client.
//! `super::signal_and_switch` does that through the slow path's
//! `send_signal` (`wake`, `possible_switch_to`) and
//! `sched::schedule_after_signal`; [`wake_and_switch`] does what they
//! come to when the woken thread needs nothing but to run: the same steps
//! as the interrupt fast path (`super::interrupt`), whose checks are the
//! same because the same slow-path functions decide (`wake`: the thread
//! Running with the badge, `possible_switch_to` making it the candidate,
//! `schedule` switching to it with the signaller back at the head of its
//! ready queue).

use super::taken;
use crate::context::Reg;
use crate::object::notification::{self, Ntfn};
use crate::object::sched_context::Sc;
use crate::object::tcb::{self, Tcb, ThreadState};
use crate::object::vspace;
use crate::{preempt, sched};

/// Send by the current thread `cur` on `n` with `badge`, which wakes
/// `dest` (the head of `n`'s queue, or with `bound` the thread bound to
/// `n` and blocked in Recv on an endpoint), if it is the direct case:
/// `dest` outranks `cur`, has an active constant-bandwidth SC of its own
/// (no donation in `wake`, no sporadic unblock), is in no scheduler queue
/// and has no YieldTo; `cur` runs with the budget for this entry on its
/// own SC; the scheduler would switch straight to `dest`
/// ([`sched::fast_interrupt_would_switch`]: no action pending, `dest` in
/// the current domain, which has time left, no release due); `dest`'s
/// address space is ready. The caller checked the cap, its rights, that
/// no extra caps are named and that `cur` is in no queue. Returns whether
/// it was done; if not, nothing changed but the clock reading.
#[inline(always)]
pub(super) fn wake_and_switch(cur: Tcb, n: Ntfn, dest: Tcb, bound: bool, badge: u64) -> bool {
    let Some(dsc) = Sc::from_link(dest.sched_context()) else {
        return false;
    };
    if dest.priority() <= cur.priority()
        || !dest.in_no_queue()
        || dest.yield_to() != 0
        || !dsc.is_active()
        || dsc.is_sporadic()
        || cur.state() != ThreadState::Running
    {
        return false;
    }
    let Some(sc) = sched::fast_budget() else {
        return false;
    };
    if cur.sched_context() != sc.paddr()
        || !sched::fast_interrupt_would_switch(cur, dest.priority(), dest.domain())
    {
        return false;
    }
    let Some(root) = vspace::ready_root(dest.slot(tcb::VTABLE).raw_cap()) else {
        return false;
    };

    // --- point of no return ---
    preempt::reset_work_units();
    deliver_and_switch(cur, n, dest, dsc, bound, badge, root);
    taken(2);
    true
}

/// The signal's delivery once every check has passed, shared with the
/// interrupt fast path: `dest` leaves its wait (its bound notification's
/// endpoint Recv cancelled, or taken off `n`'s queue), runs with the
/// badge, and becomes current in address space `root` on its scheduling
/// context `dsc`.
#[inline(always)]
pub(super) fn deliver_and_switch(
    cur: Tcb,
    n: Ntfn,
    dest: Tcb,
    dsc: Sc,
    bound: bool,
    badge: u64,
    root: vspace::ReadyRoot,
) {
    if bound {
        crate::ipc::cancel_ipc(dest);
    } else {
        notification::fast_dequeue(dest, n);
    }
    dest.set_state_raw(ThreadState::Running);
    dest.set_reg(Reg::BADGE, badge);
    sched::fast_interrupt_switch(cur, dest, dsc, root);
}
