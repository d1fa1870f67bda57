//! # The Recv fast path: block, and run the next ready thread
//!
//! A server that has handled its event goes back to its Recv (or Wait)
//! and blocks: nothing waits for it on the object it receives on. The
//! general path does that through the whole system-call machinery: the
//! budget check, the look-ups into decoded caps, `receive_ipc` or
//! `receive_signal`, then `schedule` with a new thread to choose (the
//! release queue, the domain, the choice from the ready queues' bitmap).
//! seL4 has no fast path for it; the notify-rt benchmark spends half its
//! round trip there (a client signals a higher-priority server, which
//! runs, waits again, and the client resumes).
//!
//! As for every fast path (see the header of `crate::fastpath`), the
//! result is exactly the slow path's, and every check comes before any
//! change. The fast path acts when:
//!
//! - the budget check at the start of the system call passes (the head
//!   refill covers what was consumed, [`sched::fast_block_choice`] checks
//!   the domain's time) and the current thread is in no scheduler queue;
//! - the cap in x0 (found by `lookup_fp_memo`: any failure is the slow path's
//!   to report) is a notification with the receive right, not bound to
//!   another thread, with no signal pending (it would be received at
//!   once) and no scheduling context of its own (`receive_signal`'s
//!   `maybe_return_sched_context`); or an endpoint with the receive
//!   right, where no sender waits (it would be received at once), the
//!   reply object in x6 for a Recv is a reply cap whose object no other
//!   thread waits on (`receive_ipc` would cancel that wait first), and
//!   the thread's bound notification, if any, has no signal pending and
//!   no scheduling context;
//! - [`sched::fast_block_choice`]: the scheduler had nothing pending, no
//!   release is due, the domain has time left, and a ready thread is
//!   there to run (else the slow path idles), whose address space is
//!   ready ([`vspace::ready_root`]: its ASID has a VMID, which the slow
//!   path would otherwise assign).
//!
//! Then the thread blocks as the slow path blocks it (state, blocking
//! object, reply object, the queue by priority) and
//! [`sched::fast_block_switch`] ends the call as `schedule` ends it after
//! choosing: the highest-priority ready thread becomes current
//! (`switch_to_thread`), the scheduling context switch with the time
//! commit, the timer, and `activate_thread`.

use crate::cap::EP_RECEIVE;
use crate::context::Reg;
use crate::cspace::{lookup_fp, lookup_fp_memo};
use crate::object::endpoint::{self, Ep, EpState};
use crate::object::notification::{self, Ntfn, NtfnState};
use crate::object::reply::ReplyObj;
use crate::object::tcb::{self, Tcb, ThreadState};
use crate::object::vspace;
use crate::{preempt, sched};

#[cfg(test)]
std::thread_local! {
    /// How often the Recv fast path was taken on this test thread.
    pub static RECV_TAKEN: core::cell::Cell<u64> = const { core::cell::Cell::new(0) };
}

/// What the thread blocks on.
#[derive(Clone, Copy)]
enum Wait {
    Notification(Ntfn),
    Endpoint(Ep, Option<ReplyObj>),
}

/// Whether a notification lets a thread block behind it as the slow path
/// would, changing nothing else: no signal pending, no SC of its own.
#[inline(always)]
fn quiet(n: Ntfn) -> bool {
    n.state() != NtfnState::Active && n.sched_context() == 0
}

/// Recv (`can_reply`, the reply object in x6) or Wait by the current
/// thread `cur`, if it is the fast case: it blocks on the endpoint or
/// notification in x0 and the highest-priority ready thread runs. Returns
/// whether it was done; if not, nothing changed but the clock reading and
/// the look-up memo (a cache).
#[inline(always)]
pub fn recv(cur: Tcb, can_reply: bool) -> bool {
    let cap = lookup_fp_memo(cur, cur.reg(Reg::CAP));
    let wait = if let Some((paddr, _, rights)) = cap.as_notification() {
        let n = Ntfn::new(paddr);
        if rights & EP_RECEIVE == 0 || !quiet(n) {
            return false;
        }
        if let Some(b) = n.bound_tcb() {
            if b != cur {
                return false;
            }
        }
        Wait::Notification(n)
    } else if let Some((paddr, _, rights)) = cap.as_endpoint() {
        if rights & EP_RECEIVE == 0 {
            return false;
        }
        let ep = Ep::new(paddr);
        if ep.state() == EpState::Send {
            return false;
        }
        let reply = if can_reply {
            let Some((r, _)) =
                lookup_fp(cur.slot(tcb::CTABLE).raw_cap(), cur.reg(Reg::REPLY)).as_reply()
            else {
                return false;
            };
            let r = ReplyObj::new(r);
            if r.tcb().is_some() {
                return false;
            }
            Some(r)
        } else {
            None
        };
        if let Some(n) = Ntfn::from_link(cur.bound_notification()) {
            if !quiet(n) {
                return false;
            }
        }
        Wait::Endpoint(ep, reply)
    } else {
        return false;
    };
    if !cur.in_no_queue() || sched::fast_budget().is_none() {
        return false;
    }
    let Some(next) = sched::fast_block_choice() else {
        return false;
    };
    let Some(root) = vspace::ready_root(next.slot(tcb::VTABLE).raw_cap()) else {
        return false;
    };

    // --- point of no return ---
    preempt::reset_work_units();
    match wait {
        Wait::Notification(n) => {
            cur.set_state_raw(ThreadState::BlockedOnNotification);
            cur.set_blocking_object(n.paddr());
            notification::fast_append(cur, n);
        }
        Wait::Endpoint(ep, reply) => {
            cur.set_state_raw(ThreadState::BlockedOnReceive);
            cur.set_blocking_object(ep.paddr());
            cur.set_reply_object(reply.map_or(0, |r| r.paddr()));
            if let Some(r) = reply {
                r.set_tcb(Some(cur));
            }
            endpoint::append(cur, ep, EpState::Recv);
        }
    }
    sched::fast_block_switch(next, root);
    #[cfg(test)]
    RECV_TAKEN.with(|t| t.set(t.get() + 1));
    true
}

/// [`recv`] out of line, for the host tests' system-call entry
/// (`crate::syscall::handle_syscall`, not in the kernel: the target's
/// entries share `handle_svc`'s inline copy).
#[cfg(not(target_os = "none"))]
#[inline(never)]
pub fn recv_out_of_line(cur: Tcb, can_reply: bool) -> bool {
    recv(cur, can_reply)
}
