//! # Endpoints: synchronous IPC rendezvous (16 bytes, `ENDPOINT_SIZE_BITS`)
//!
//! An endpoint is a queue of threads all waiting the same way: senders
//! (state Send) or receivers (state Recv), ordered by priority, then by
//! arrival. Word 0 holds the queue's head (a TCB address, 2 KiB aligned)
//! with the state in its two low bits; word 1 holds the queue's end.
//!
//! Zero rule: the all-zero endpoint is idle with an empty queue.
//!
//! [`send_ipc`] and [`receive_ipc`] are seL4's MCS `sendIPC` and
//! `receiveIPC`: a send meets a waiting receiver (or queues), a receive
//! meets a waiting sender (or queues); a Call, or a fault message, links
//! the sender to the receiver's reply object and may donate the sender's
//! scheduling context to a passive receiver.

use crate::ipc;
use crate::memory;
use crate::object::notification::{self, Ntfn};
use crate::object::reply::{self, ReplyObj};
use crate::object::sched_context;
use crate::object::tcb::queue::TcbQueue;
use crate::object::tcb::{Tcb, ThreadState};
use crate::sched;
use septa_abi::ENDPOINT_SIZE_BITS;

/// Endpoint states (seL4's `EPState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EpState {
    Idle = 0,
    Send = 1,
    Recv = 2,
}

const STATE_MASK: u64 = 3;

/// An endpoint, named by its physical address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ep(u64);

/// Bytes in an endpoint object.
const EP_BYTES: u64 = 1 << ENDPOINT_SIZE_BITS;

impl Ep {
    /// The endpoint at `paddr`, checked once here to lie in the window and
    /// be aligned, so that its words are reached without a check each.
    #[inline(always)]
    pub fn new(paddr: u64) -> Ep {
        debug_assert!(paddr != 0);
        memory::check_object(paddr, EP_BYTES, EP_BYTES);
        Ep(paddr)
    }

    #[inline(always)]
    pub fn paddr(self) -> u64 {
        self.0
    }

    /// Word `i` (0 or 1).
    #[inline(always)]
    fn word(self, i: u64) -> u64 {
        assert!(i < 2);
        // SAFETY: word `i` lies inside the object, whose range and
        // alignment `Ep::new` (the only constructor) checked.
        unsafe { memory::read_object_field(self.0, 8 * i) }
    }

    #[inline(always)]
    fn set_word(self, i: u64, v: u64) {
        assert!(i < 2);
        // SAFETY: as in `word`.
        unsafe { memory::write_object_field(self.0, 8 * i, v) }
    }

    #[inline(always)]
    pub fn state(self) -> EpState {
        match self.word(0) & STATE_MASK {
            1 => EpState::Send,
            2 => EpState::Recv,
            _ => EpState::Idle,
        }
    }

    #[inline(always)]
    pub fn set_state(self, s: EpState) {
        let w = self.word(0);
        self.set_word(0, (w & !STATE_MASK) | s as u64)
    }

    #[inline(always)]
    pub fn queue(self) -> TcbQueue {
        TcbQueue {
            head: Tcb::from_link(self.word(0) & !STATE_MASK),
            end: Tcb::from_link(self.word(1)),
        }
    }

    #[inline(always)]
    pub fn set_queue(self, q: TcbQueue) {
        let state = self.word(0) & STATE_MASK;
        self.set_word(0, Tcb::link(q.head) | state);
        self.set_word(1, Tcb::link(q.end));
    }
}

/// Queues `t` on `ep` in state `st` (seL4's `tcbEPAppend`).
#[inline(always)]
pub fn append(t: Tcb, ep: Ep, st: EpState) {
    let q = ep.queue();
    if q.is_empty() {
        // The common case, spelled out: `t` alone (its links are clear,
        // as it was in no queue).
        ep.set_word(0, t.paddr() | st as u64);
        ep.set_word(1, t.paddr());
        return;
    }
    ep.set_queue(q.insert_by_priority(t));
    ep.set_state(st);
}

/// [`dequeue`] out of line, for the cancelling paths (deleting an
/// endpoint, cancelling badged sends, `cancel_ipc`), which need not carry
/// its inlined copy.
#[inline(never)]
pub fn dequeue_cold(t: Tcb, ep: Ep) {
    dequeue(t, ep);
}

/// Takes `t` off `ep`'s queue; an emptied endpoint becomes idle (seL4's
/// `tcbEPDequeue`).
#[inline(always)]
pub fn dequeue(t: Tcb, ep: Ep) {
    let w0 = ep.word(0);
    if w0 & !STATE_MASK == t.paddr() {
        // The head, spelled out (the common case): its successor, if any,
        // becomes the head; the end stays unless the queue empties.
        match t.sched_next() {
            Some(n) => {
                n.set_sched_prev(None);
                ep.set_word(0, n.paddr() | (w0 & STATE_MASK));
            }
            None => {
                ep.set_word(0, EpState::Idle as u64);
                ep.set_word(1, 0);
            }
        }
        t.set_sched_prev(None);
        t.set_sched_next(None);
        return;
    }
    let q = ep.queue().remove(t);
    ep.set_queue(q);
    if q.is_empty() {
        ep.set_state(EpState::Idle);
    }
}

/// Re-sorts `t` in `ep`'s queue after its priority changed (seL4's
/// `reorderEP`).
pub fn reorder(ep: Ep, t: Tcb) {
    let q = ep.queue().remove(t).insert_by_priority(t);
    ep.set_queue(q);
}

/// Sends from `thread` on `ep` (seL4's MCS `sendIPC`). `can_donate` lets a
/// Call (or fault) give the sender's scheduling context to a passive
/// receiver.
#[allow(clippy::too_many_arguments)]
pub fn send_ipc(
    blocking: bool,
    do_call: bool,
    badge: u64,
    can_grant: bool,
    can_grant_reply: bool,
    can_donate: bool,
    thread: Tcb,
    ep: Ep,
) {
    match ep.state() {
        EpState::Idle | EpState::Send => {
            if blocking {
                thread.set_state_raw(ThreadState::BlockedOnSend);
                thread.set_blocking_object(ep.paddr());
                thread.set_blocked_send(badge, can_grant, can_grant_reply, do_call);
                sched::schedule_tcb(thread);
                append(thread, ep, EpState::Send);
            }
        }
        EpState::Recv => {
            let dest = ep.queue().head.expect("a receiving endpoint has a waiter");
            dequeue(dest, ep);
            ipc::do_ipc_transfer(thread, Some(ep), badge, can_grant, dest);
            let reply = ReplyObj::from_link(dest.reply_object());
            if let Some(r) = reply {
                reply::unlink(r, dest);
            }
            if do_call || thread.has_fault() {
                match reply {
                    Some(r) if can_grant || can_grant_reply => {
                        reply::push(thread, dest, r, can_donate)
                    }
                    _ => sched::set_thread_state(thread, ThreadState::Inactive),
                }
            } else if can_donate && dest.sched_context() == 0 {
                if let Some(sc) = sched::sc_of(thread) {
                    sched_context::donate(sc, dest);
                }
            }
            sched::set_thread_state(dest, ThreadState::Running);
            if let Some(sc) = sched::sc_of(dest) {
                if sc.is_sporadic() && Some(sc) != sched::cur_sc() {
                    sched_context::refill_unblock_check(sc);
                }
            }
            sched::possible_switch_to(dest);
        }
    }
}

/// Receives on `ep` for `thread` (seL4's MCS `receiveIPC`). A pending
/// signal on the thread's bound notification is taken first.
///
/// Out of line (see the crate header): inlined into `handle_recv` it slowed
/// ReplyRecv.
#[inline(never)]
pub fn receive_ipc(thread: Tcb, ep: Ep, blocking: bool, reply: Option<ReplyObj>) {
    if let Some(r) = reply {
        if let Some(other) = r.tcb() {
            if other != thread {
                // The reply object still has an answer pending elsewhere.
                ipc::cancel_ipc(other);
            }
        }
    }
    let bound = Ntfn::from_link(thread.bound_notification());
    if let Some(n) = bound {
        if n.state() == notification::NtfnState::Active {
            notification::complete_signal(n, thread);
            return;
        }
        if blocking {
            // Give back an SC lent by the notification, so the thread waits
            // passively for donations from its clients.
            notification::maybe_return_sched_context(n, thread);
        }
    }
    match ep.state() {
        EpState::Idle | EpState::Recv => {
            if blocking {
                thread.set_state_raw(ThreadState::BlockedOnReceive);
                thread.set_blocking_object(ep.paddr());
                thread.set_reply_object(reply.map_or(0, |r| r.paddr()));
                sched::schedule_tcb(thread);
                if let Some(r) = reply {
                    r.set_tcb(Some(thread));
                }
                append(thread, ep, EpState::Recv);
            } else {
                ipc::do_nb_recv_failed_transfer(thread);
            }
        }
        EpState::Send => {
            let sender = ep.queue().head.expect("a sending endpoint has a waiter");
            dequeue(sender, ep);
            let badge = sender.blocking_badge();
            let can_grant = sender.blocking_can_grant();
            let can_grant_reply = sender.blocking_can_grant_reply();
            ipc::do_ipc_transfer(sender, Some(ep), badge, can_grant, thread);
            let do_call = sender.blocking_is_call();
            if let Some(sc) = sched::sc_of(sender) {
                if sc.is_sporadic() && Some(sc) != sched::cur_sc() {
                    sched_context::refill_unblock_check(sc);
                }
            }
            // The fault is decoded only if there is one.
            let fault = if sender.has_fault() {
                sender.fault()
            } else {
                crate::fault::Fault::Null
            };
            if do_call || !fault.is_null() {
                match reply {
                    Some(r) if can_grant || can_grant_reply => {
                        let can_donate = sender.sched_context() != 0 && !fault.is_timeout();
                        reply::push(sender, thread, r, can_donate);
                    }
                    _ => sched::set_thread_state(sender, ThreadState::Inactive),
                }
            } else {
                sched::set_thread_state(sender, ThreadState::Running);
                sched::possible_switch_to(sender);
            }
        }
    }
}

/// Restarts a thread taken off a queue, unless it was blocked with a fault
/// message, which cannot be delivered now: it stays Inactive.
fn restart_if_no_fault(t: Tcb) {
    if !t.has_fault() {
        sched::set_thread_state(t, ThreadState::Restart);
        if let Some(sc) = sched::sc_of(t) {
            if sc.is_sporadic() && Some(sc) != sched::cur_sc() {
                sched_context::refill_unblock_check(sc);
            }
        }
        sched::possible_switch_to(t);
    } else {
        sched::set_thread_state(t, ThreadState::Inactive);
    }
}

/// Releases everything that waits on the endpoint whose last cap is being
/// deleted (seL4's `cancelAllIPC`).
pub fn finalise(endpoint: u64) {
    let ep = Ep::new(endpoint);
    if ep.state() == EpState::Idle {
        return;
    }
    let mut next = ep.queue().head;
    while let Some(t) = next {
        next = t.sched_next();
        dequeue_cold(t, ep);
        if t.state() == ThreadState::BlockedOnReceive {
            if let Some(r) = ReplyObj::from_link(t.reply_object()) {
                reply::unlink(r, t);
            }
        }
        restart_if_no_fault(t);
    }
    sched::reschedule_required();
}

/// Cancels the queued sends that carry `badge` (seL4's `cancelBadgedSends`,
/// invoked by CNode CancelBadgedSends through a cap with all rights).
pub fn cancel_badged_sends(endpoint: u64, badge: u64) {
    let ep = Ep::new(endpoint);
    if ep.state() != EpState::Send {
        return;
    }
    let mut next = ep.queue().head;
    while let Some(t) = next {
        next = t.sched_next();
        if t.blocking_badge() == badge {
            dequeue_cold(t, ep);
            restart_if_no_fault(t);
        }
    }
    sched::reschedule_required();
}
