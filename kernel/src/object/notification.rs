//! # Notifications: asynchronous signals (64 bytes in MCS,
//! `NOTIFICATION_SIZE_BITS`)
//!
//! | offset | field |
//! |---|---|
//! | 0 | state: Idle 0, Waiting 1 (threads queued), Active 2 (a badge pending) |
//! | 8, 16 | wait queue head and end |
//! | 24 | the pending badge word (ORed signals) |
//! | 32 | the bound TCB, or 0 |
//! | 40 | the bound scheduling context, or 0 |
//!
//! Zero rule: the all-zero notification is idle, with no bound TCB or
//! scheduling context and a zero badge word.
//!
//! A signal wakes the first waiter (or the bound thread if it waits in
//! Recv on an endpoint), else ORs its badge into the word. In MCS a
//! notification may carry a scheduling context that it lends to a thread
//! without one when it wakes it (passive servers that handle interrupts).

use crate::context::Reg;
use crate::memory;
use crate::object::sched_context::{self, Sc};
use crate::object::tcb::queue::TcbQueue;
use crate::object::tcb::{Tcb, ThreadState};
use crate::{ipc, sched};
use septa_abi::NOTIFICATION_SIZE_BITS;

/// Notification states (seL4's `NtfnState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NtfnState {
    Idle = 0,
    Waiting = 1,
    Active = 2,
}

const STATE: u64 = 0;
const QUEUE: u64 = 8;
const BADGE: u64 = 24;
const BOUND_TCB: u64 = 32;
const SCHED_CONTEXT: u64 = 40;

/// A notification, named by its physical address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ntfn(u64);

/// Bytes in a notification object.
const NTFN_BYTES: u64 = 1 << NOTIFICATION_SIZE_BITS;

impl Ntfn {
    /// The notification at `paddr`, checked once here to lie in the window
    /// and be aligned, so that its words are reached without a check each.
    #[inline(always)]
    pub fn new(paddr: u64) -> Ntfn {
        debug_assert!(paddr != 0);
        memory::check_object(paddr, NTFN_BYTES, NTFN_BYTES);
        Ntfn(paddr)
    }

    #[inline(always)]
    pub fn from_link(paddr: u64) -> Option<Ntfn> {
        (paddr != 0).then(|| Ntfn::new(paddr))
    }

    #[inline(always)]
    pub fn paddr(self) -> u64 {
        self.0
    }

    /// The word at byte offset `off` (one of this module's offsets).
    #[inline(always)]
    fn read(self, off: u64) -> u64 {
        assert!(off + 8 <= NTFN_BYTES && off.is_multiple_of(8));
        // SAFETY: the word lies inside the object, aligned, and
        // `Ntfn::new` (the only constructor) checked the object's range
        // and alignment.
        unsafe { memory::read_object_field(self.0, off) }
    }

    #[inline(always)]
    fn write(self, off: u64, v: u64) {
        assert!(off + 8 <= NTFN_BYTES && off.is_multiple_of(8));
        // SAFETY: as in `read`.
        unsafe { memory::write_object_field(self.0, off, v) }
    }

    pub fn state(self) -> NtfnState {
        match self.read(STATE) {
            1 => NtfnState::Waiting,
            2 => NtfnState::Active,
            _ => NtfnState::Idle,
        }
    }

    pub fn set_state(self, s: NtfnState) {
        self.write(STATE, s as u64)
    }

    #[inline]
    pub fn queue(self) -> TcbQueue {
        TcbQueue {
            head: Tcb::from_link(self.read(QUEUE)),
            end: Tcb::from_link(self.read(QUEUE + 8)),
        }
    }

    /// The first waiter, as `queue().head` (inlined, for the fast path).
    #[inline(always)]
    pub fn queue_head(self) -> Option<Tcb> {
        Tcb::from_link(self.read(QUEUE))
    }

    #[inline]
    pub fn set_queue(self, q: TcbQueue) {
        self.write(QUEUE, Tcb::link(q.head));
        self.write(QUEUE + 8, Tcb::link(q.end));
    }

    pub fn badge(self) -> u64 {
        self.read(BADGE)
    }

    pub fn set_badge(self, b: u64) {
        self.write(BADGE, b)
    }

    #[inline(always)]
    pub fn bound_tcb(self) -> Option<Tcb> {
        Tcb::from_link(self.read(BOUND_TCB))
    }

    pub fn set_bound_tcb(self, t: Option<Tcb>) {
        self.write(BOUND_TCB, Tcb::link(t))
    }

    /// The bound scheduling context's address, or 0.
    pub fn sched_context(self) -> u64 {
        self.read(SCHED_CONTEXT)
    }

    pub fn set_sched_context(self, sc: u64) {
        self.write(SCHED_CONTEXT, sc)
    }

    fn set_active(self, badge: u64) {
        self.set_state(NtfnState::Active);
        self.set_badge(badge);
    }
}

/// Lends the notification's SC to a woken thread that has none (seL4's
/// `maybeDonateSchedContext`).
fn maybe_donate_sched_context(t: Tcb, n: Ntfn) {
    if t.sched_context() != 0 {
        return;
    }
    if let Some(sc) = Sc::from_link(n.sched_context()) {
        if sc.tcb() == 0 {
            sched_context::donate(sc, t);
            sched_context::resume(sc);
        }
    }
}

/// A thread about to wait gives back the SC its notification lent it
/// (seL4's `maybeReturnSchedContext`).
pub fn maybe_return_sched_context(n: Ntfn, t: Tcb) {
    let Some(sc) = Sc::from_link(n.sched_context()) else {
        return;
    };
    if sc.paddr() == t.sched_context() {
        t.set_sched_context(0);
        sc.set_tcb(0);
        if sched::cur_thread_opt() == Some(t) {
            sched::reschedule_required();
        }
    }
}

/// Wakes `t` with `badge`, lending it the notification's SC if needed.
fn wake(t: Tcb, n: Ntfn, badge: u64) {
    sched::set_thread_state(t, ThreadState::Running);
    t.set_reg(Reg::BADGE, badge);
    maybe_donate_sched_context(t, n);
    if sched::is_schedulable(t) {
        sched::possible_switch_to(t);
    }
    if let Some(sc) = sched::sc_of(t) {
        if sc.is_sporadic() && Some(sc) != sched::cur_sc() {
            sched_context::refill_unblock_check(sc);
        }
    }
}

/// Signals the notification at `notification` with `badge` (seL4's
/// `sendSignal`): wakes a waiting or bound thread, or ORs the badge into
/// the notification word. Interrupt delivery calls this too.
pub fn send_signal(notification: u64, badge: u64) {
    let n = Ntfn::new(notification);
    match n.state() {
        NtfnState::Idle => match n.bound_tcb() {
            Some(t) if t.state() == ThreadState::BlockedOnReceive => {
                ipc::cancel_ipc(t);
                wake(t, n, badge);
            }
            // A bound thread blocked on a reply (in the middle of a Call) is
            // not woken by its notification.
            _ => n.set_active(badge),
        },
        NtfnState::Waiting => {
            let dest = n.queue().head.expect("a waiting notification has a waiter");
            dequeue(dest, n);
            wake(dest, n, badge);
        }
        NtfnState::Active => n.set_badge(n.badge() | badge),
    }
}

/// Waits on (or polls) the notification `n` (seL4's `receiveSignal`).
pub fn receive_signal(thread: Tcb, n: Ntfn, blocking: bool) {
    match n.state() {
        NtfnState::Idle | NtfnState::Waiting => {
            if blocking {
                thread.set_state_raw(ThreadState::BlockedOnNotification);
                thread.set_blocking_object(n.paddr());
                sched::schedule_tcb(thread);
                append(thread, n);
                maybe_return_sched_context(n, thread);
            } else {
                ipc::do_nb_recv_failed_transfer(thread);
            }
        }
        NtfnState::Active => {
            thread.set_reg(Reg::BADGE, n.badge());
            n.set_state(NtfnState::Idle);
            maybe_donate_sched_context(thread, n);
            if let Some(sc) = sched::sc_of(thread) {
                if Some(sc) != sched::cur_sc() && sc.is_sporadic() {
                    sched_context::refill_unblock_check(sc);
                }
            }
        }
    }
}

/// Delivers the pending badge of an active bound notification to a thread
/// about to receive on an endpoint (seL4's `completeSignal`).
pub fn complete_signal(n: Ntfn, t: Tcb) {
    debug_assert!(n.state() == NtfnState::Active);
    t.set_reg(Reg::BADGE, n.badge());
    n.set_state(NtfnState::Idle);
    maybe_donate_sched_context(t, n);
    if let Some(sc) = sched::sc_of(t) {
        if sc.is_sporadic() && sc.paddr() == n.sched_context() && Some(sc) != sched::cur_sc() {
            sched_context::refill_unblock_check(sc);
        }
    }
}

/// Takes a waiter off the queue (seL4's `cancelSignal`).
pub fn cancel_signal(t: Tcb, n: Ntfn) {
    dequeue(t, n);
    sched::set_thread_state(t, ThreadState::Inactive);
}

fn append(t: Tcb, n: Ntfn) {
    n.set_queue(n.queue().insert_by_priority(t));
    n.set_state(NtfnState::Waiting);
}

/// [`append`] for the Recv fast path (`crate::fastpath::recv`), with the
/// common case spelled out: `t` (in no queue, its links clear) alone.
#[inline(always)]
pub fn fast_append(t: Tcb, n: Ntfn) {
    if n.read(QUEUE) == 0 {
        n.write(QUEUE, t.paddr());
        n.write(QUEUE + 8, t.paddr());
        n.set_state(NtfnState::Waiting);
    } else {
        append(t, n)
    }
}

/// [`dequeue`] for the signal and interrupt fast paths
/// (`crate::fastpath`), with the common case spelled out: `t` is the head
/// (its `prev` link clear), its successor becomes the head, or the
/// notification is left idle with an empty queue.
#[inline(always)]
pub fn fast_dequeue(t: Tcb, n: Ntfn) {
    if n.read(QUEUE) != t.paddr() {
        return dequeue(t, n);
    }
    match t.sched_next() {
        Some(next) => {
            next.set_sched_prev(None);
            t.set_sched_next(None);
            n.write(QUEUE, next.paddr());
        }
        None => {
            n.write(QUEUE, 0);
            n.write(QUEUE + 8, 0);
            n.set_state(NtfnState::Idle);
        }
    }
}

fn dequeue(t: Tcb, n: Ntfn) {
    let q = n.queue().remove(t);
    n.set_queue(q);
    if q.is_empty() {
        n.set_state(NtfnState::Idle);
    }
}

/// Re-sorts a waiter after its priority changed (seL4's `reorderNTFN`).
pub fn reorder(n: Ntfn, t: Tcb) {
    n.set_queue(n.queue().remove(t).insert_by_priority(t));
}

pub fn bind_notification(t: Tcb, n: Ntfn) {
    n.set_bound_tcb(Some(t));
    t.set_bound_notification(n.paddr());
}

/// Unbinds the notification of `t`, if any (seL4's `unbindNotification`).
pub fn unbind_notification(t: Tcb) {
    if let Some(n) = Ntfn::from_link(t.bound_notification()) {
        n.set_bound_tcb(None);
        t.set_bound_notification(0);
    }
}

/// Clean-up when the last cap to a notification is deleted: unbind its SC
/// and TCB, restart every waiter (seL4's `schedContextMaybeUnbindNtfn`,
/// `unbindMaybeNotification`, `cancelAllSignals`).
pub fn finalise(notification: u64) {
    let n = Ntfn::new(notification);
    if let Some(sc) = Sc::from_link(n.sched_context()) {
        sched_context::unbind_notification(sc);
    }
    if let Some(t) = n.bound_tcb() {
        n.set_bound_tcb(None);
        t.set_bound_notification(0);
    }
    if n.state() == NtfnState::Waiting {
        let mut next = n.queue().head;
        while let Some(t) = next {
            next = t.sched_next();
            dequeue(t, n);
            sched::set_thread_state(t, ThreadState::Restart);
            if let Some(sc) = sched::sc_of(t) {
                if sc.is_sporadic() && Some(sc) != sched::cur_sc() {
                    sched_context::refill_unblock_check(sc);
                }
            }
            sched::possible_switch_to(t);
        }
        sched::reschedule_required();
    }
}
