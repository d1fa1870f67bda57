//! # The IPC fast path: Call and ReplyRecv through a passive server
//!
//! The common protected procedure call is a client Calling a server that
//! waits in Recv without a scheduling context of its own, and the server
//! answering with ReplyRecv. The general path does that through the whole
//! system-call machinery: cap lookups into decoded caps, the IPC buffers,
//! the transfer, reply and donation bookkeeping one state change at a
//! time, then the scheduler. For the common case, a short message (the
//! four register words at most, no caps) and a switch the scheduler would
//! make anyway, the result is a handful of link updates; seL4 has the same
//! split (`fastpath_call` and `fastpath_reply_recv`, MCS flavour).
//!
//! ## Exactly the slow path's result
//!
//! The fast path is an optimisation, never a second semantics: whenever it
//! acts, the kernel state afterwards (threads, endpoint, reply object,
//! scheduling context, scheduler globals, the address space and FPU
//! requests made of the machine) is what [`crate::syscall::handle_syscall_slow`]
//! produces from the same state. So it acts only when every condition
//! under which the slow path would do something else is ruled out, which
//! is a little stricter than seL4's fast path:
//!
//! - the message: at most four words, no extra caps; the caller has no
//!   fault pending (the slow path would send the fault instead);
//! - the caps: found by [`crate::cspace::lookup_fp`] through the thread's
//!   memo ([`lookup_fp_memo`]; any lookup failure is the slow
//!   path's to report), with the rights the slow path checks;
//! - Call: a receiver waits; it is passive (no SC, so the caller's is
//!   donated) and has a reply object; the cap has grant or grant-reply (a
//!   reply object is only linked then);
//! - ReplyRecv: the reply object heads the call stack of the SC the server
//!   runs on, its caller waits on it without a fault and without an SC of
//!   its own; no signal is pending on the server's bound notification (it
//!   would be received instead) and no sender waits on the endpoint; the
//!   SC's head refill is ready (else the caller would be postponed);
//! - time: the budget check at the start of every system call passes (a
//!   thread out of budget is left to the slow path, which ends its time
//!   slice); seL4's fast path skips it and lets the next timer interrupt
//!   catch up, which would not be the slow path's result;
//! - scheduling: the slow path ends by releasing the threads whose refill
//!   has come due and choosing the highest-priority ready thread, so no
//!   release may be due, the woken thread must be one no ready thread
//!   outranks, in the current domain, with time left in the domain, and
//!   the scheduler must have had nothing else pending; neither thread is
//!   in a scheduler queue and the woken one has no YieldTo to complete
//!   (seL4's fast path leaves a due release to the timer interrupt that
//!   follows);
//! - the address space: the woken thread's VSpace is valid and its ASID
//!   already has a VMID (the slow path would assign one).
//!
//! Every check comes before any change ("the point of no return"): a
//! declined call has changed nothing but the kernel's reading of the
//! clock, which the slow path then reads again, and the thread's look-up
//! memo, a cache of what the walk found. The host tests
//! (`tests::thread::fastpath`) run the same scenarios through both paths
//! and compare the whole outcome (but for that cache).

use crate::cap::{EP_GRANT, EP_GRANT_REPLY, EP_RECEIVE, EP_SEND};
use crate::context::{Reg, MSG_REGISTERS};
use crate::cspace::{lookup_fp_memo, lookup_fp_pair_memo};
use crate::object::endpoint::{self, Ep, EpState};
use crate::object::notification::{self, Ntfn, NtfnState};
use crate::object::reply::ReplyObj;
use crate::object::sched_context::Sc;
use crate::object::tcb::{self, Tcb, ThreadState};
use crate::object::vspace;
use crate::{preempt, sched};

mod recv;
mod wake;
#[cfg(test)]
pub use recv::RECV_TAKEN;
// `recv` inline is the svc entry's (target only), `recv_out_of_line` the
// host tests' (host only).
#[cfg_attr(not(target_os = "none"), allow(unused_imports))]
pub use recv::recv;
#[cfg(not(target_os = "none"))]
pub use recv::recv_out_of_line;

/// The length and extra-caps fields of a message info word (bits 0..9).
const MI_LENGTH_AND_CAPS: u64 = (1 << 9) - 1;
/// The length field.
const MI_LENGTH: u64 = (1 << 7) - 1;
/// The caps-unwrapped field, which a delivered message clears.
const MI_CAPS_UNWRAPPED: u64 = 0x7 << 9;
/// The extra-caps field.
const MI_EXTRA_CAPS: u64 = 0x3 << 7;
/// Longest message the fast path carries: the register words. A word
/// whose length and extra-caps fields together read at most this has no
/// extra caps and a short length.
const FAST_LENGTH: u64 = MSG_REGISTERS.len() as u64;

#[cfg(test)]
std::thread_local! {
    /// How often the fast path did a Call, a ReplyRecv, a signal and an
    /// interrupt on this test thread (tests check that their scenarios do
    /// exercise it).
    pub static TAKEN: core::cell::Cell<[u64; 4]> = const { core::cell::Cell::new([0; 4]) };
}

#[cfg(test)]
std::thread_local! {
    /// How often the active-server fast paths did a Call (0) and a
    /// ReplyRecv (1) on this test thread (not counted in [`TAKEN`]).
    pub static TAKEN_ACTIVE: core::cell::Cell<[u64; 2]> = const { core::cell::Cell::new([0; 2]) };
}

/// Counts a fast Call (0), ReplyRecv (1), signal (2) or interrupt (3)
/// (tests only).
#[inline(always)]
fn taken(_which: usize) {
    #[cfg(test)]
    count(&TAKEN, _which);
}

/// Adds one to entry `which` of a test thread's counter.
#[cfg(test)]
fn count<const N: usize>(
    counter: &'static std::thread::LocalKey<core::cell::Cell<[u64; N]>>,
    which: usize,
) {
    counter.with(|t| {
        let mut n = t.get();
        n[which] += 1;
        t.set(n)
    });
}

/// Whether the message in `info` is short and carries no caps.
#[inline(always)]
fn short_message(info: u64) -> bool {
    info & MI_LENGTH_AND_CAPS <= FAST_LENGTH
}

/// The message info a receiver gets for a short message: label and length
/// as sent, no caps (what the slow path's transfer builds).
#[inline(always)]
fn delivered_info(info: u64) -> u64 {
    info & !MI_CAPS_UNWRAPPED
}

/// Copies the message registers of a short message.
#[inline(always)]
fn copy_message(from: Tcb, to: Tcb, info: u64) {
    let n = info & MI_LENGTH;
    // Unrolled over the four registers, each a constant offset.
    for (i, &r) in MSG_REGISTERS.iter().enumerate() {
        if (i as u64) < n {
            to.set_reg(r, from.reg(r));
        }
    }
}

/// Call by the current thread `cur`, if it is the fast case: the message
/// goes to a passive server waiting on the endpoint, with the caller's
/// scheduling context, and the server runs. Returns whether it was done.
#[inline(always)]
pub fn call(cur: Tcb) -> bool {
    let info = cur.reg(Reg::MSG_INFO);
    if !short_message(info) || cur.has_fault() {
        return false;
    }
    let ep_cap = lookup_fp_memo(cur, cur.reg(Reg::CAP));
    let Some((ep, badge, rights)) = ep_cap.as_endpoint() else {
        return false;
    };
    if rights & EP_SEND == 0 || rights & (EP_GRANT | EP_GRANT_REPLY) == 0 {
        return false;
    }
    let ep = Ep::new(ep);
    if ep.state() != EpState::Recv {
        return false;
    }
    let Some(dest) = ep.queue().head else {
        return false;
    };
    // A server with a scheduling context of its own has its fast path.
    if dest.sched_context() != 0 {
        return match call_active(cur, info, ep, badge, dest) {
            Some(t) => sched::fast_made_current(t),
            None => false,
        };
    }
    // A passive server, with a reply object to be called through.
    if dest.yield_to() != 0 || !dest.in_no_queue() {
        return false;
    }
    let Some(reply) = ReplyObj::from_link(dest.reply_object()) else {
        return false;
    };
    let Some(root) = vspace::ready_root(dest.slot(tcb::VTABLE).raw_cap()) else {
        return false;
    };
    if !cur.in_no_queue() {
        return false;
    }
    let Some(sc) = sched::fast_budget() else {
        return false;
    };
    if cur.sched_context() != sc.paddr()
        || sc.tcb() != cur.paddr()
        || !sched::fast_would_choose(dest.priority(), dest.domain())
    {
        return false;
    }

    // --- point of no return ---
    preempt::reset_work_units();
    endpoint::dequeue(dest, ep);
    copy_message(cur, dest, info);
    dest.set_reg(Reg::MSG_INFO, delivered_info(info));
    dest.set_reg(Reg::BADGE, badge);
    // The caller waits on the server's reply object (seL4's `reply_push`)...
    dest.set_reply_object(0);
    reply.set_tcb(Some(cur));
    cur.set_reply_object(reply.paddr());
    cur.set_state_raw(ThreadState::BlockedOnReply);
    // ... which goes on top of the call stack of the caller's SC, and the
    // SC goes to the server.
    let below = sc.reply();
    if let Some(b) = ReplyObj::from_link(below) {
        b.set_next(reply.paddr(), false);
    }
    reply.set_prev(below);
    sc.set_reply(reply.paddr());
    reply.set_next(sc.paddr(), true);
    cur.set_sched_context(0);
    sc.set_tcb(dest.paddr());
    dest.set_sched_context(sc.paddr());
    dest.set_state_raw(ThreadState::Running);
    sched::fast_switch_to(dest, root);
    taken(0);
    true
}

/// ReplyRecv by the current thread `cur`, if it is the fast case: a server
/// running on its caller's scheduling context answers with a short
/// message, the context goes back to the caller, which runs, and the
/// server waits on the endpoint again. Returns whether it was done.
#[inline(always)]
pub fn reply_recv(cur: Tcb) -> bool {
    let info = cur.reg(Reg::MSG_INFO);
    if !short_message(info) || cur.has_fault() {
        return false;
    }
    // First what rules out most other uses cheaply: the server runs on an
    // SC that was lent to it through a call stack.
    let Some(sc) = Sc::from_link(cur.sched_context()) else {
        return false;
    };
    let top = sc.reply();
    if top == 0 {
        // No call stack: a server on its own SC may answer an active caller.
        return match reply_recv_active(cur, info, sc) {
            Some(t) => sched::fast_made_current(t),
            None => false,
        };
    }
    let (ep_cap, reply_cap) = lookup_fp_pair_memo(cur, cur.reg(Reg::CAP), cur.reg(Reg::REPLY));
    let Some((ep, _, rights)) = ep_cap.as_endpoint() else {
        return false;
    };
    if rights & EP_RECEIVE == 0 {
        return false;
    }
    // The reply heads that call stack.
    let Some((reply, _)) = reply_cap.as_reply() else {
        return false;
    };
    if reply != top {
        return false;
    }
    let reply = ReplyObj::new(reply);
    if !reply.is_head() || reply.next() != sc.paddr() {
        return false;
    }
    // A pending signal would be received instead of waiting.
    if let Some(n) = Ntfn::from_link(cur.bound_notification()) {
        if n.state() == NtfnState::Active {
            return false;
        }
    }
    let ep = Ep::new(ep);
    if ep.state() == EpState::Send {
        return false;
    }
    let Some(caller) = reply.tcb() else {
        return false;
    };
    if caller.state() != ThreadState::BlockedOnReply
        || caller.has_fault()
        || caller.sched_context() != 0
        || caller.yield_to() != 0
        || !caller.in_no_queue()
    {
        return false;
    }
    let Some(root) = vspace::ready_root(caller.slot(tcb::VTABLE).raw_cap()) else {
        return false;
    };
    if !cur.in_no_queue()
        || sched::fast_budget() != Some(sc)
        || sc.tcb() != cur.paddr()
        || !sc.refill_ready()
        || !sched::fast_would_choose(caller.priority(), caller.domain())
    {
        return false;
    }

    // --- point of no return ---
    preempt::reset_work_units();
    // The reply (seL4's `reply_pop`): the SC goes back to the caller and
    // the reply object leaves the call stack.
    let below = reply.prev();
    sc.set_reply(below);
    if let Some(b) = ReplyObj::from_link(below) {
        b.set_next(sc.paddr(), true);
    }
    reply.set_next(0, false);
    reply.set_prev(0);
    cur.set_sched_context(0);
    sc.set_tcb(caller.paddr());
    caller.set_sched_context(sc.paddr());
    caller.set_reply_object(0);
    copy_message(cur, caller, info);
    caller.set_reg(Reg::MSG_INFO, delivered_info(info));
    caller.set_reg(Reg::BADGE, 0);
    caller.set_state_raw(ThreadState::Running);
    // The server waits on the endpoint with the reply object.
    cur.set_state_raw(ThreadState::BlockedOnReceive);
    cur.set_blocking_object(ep.paddr());
    cur.set_reply_object(reply.paddr());
    reply.set_tcb(Some(cur));
    endpoint::append(cur, ep, EpState::Recv);
    sched::fast_switch_to(caller, root);
    taken(1);
    true
}

/// Counts an active-server fast Call (0) or ReplyRecv (1) (tests only).
#[inline(always)]
fn taken_active(_which: usize) {
    #[cfg(test)]
    count(&TAKEN_ACTIVE, _which);
}

/// Call by the current thread `cur` to a server `dest` with a scheduling
/// context of its own (an active server), the head of the receive queue
/// of `ep`, if it is the fast case; [`call`] has checked the message
/// `info` (short, no caps, no fault), the cap (send right, grant or
/// grant-reply, `badge`) and that `dest` waits. Returns the thread made
/// current (`dest`) if it was done; if not, nothing changed.
///
/// The slow path (`sendIPC` and `reply_push` in MCS form): the message
/// goes to `dest`, its reply object is unlinked from it and linked to
/// `cur`, which blocks on it (the scheduler action becomes ChooseNew), but
/// nothing is donated, so the reply object stays off every call stack;
/// `dest` runs, and `possible_switch_to` (with ChooseNew pending) puts it
/// at the head of its ready queue; `schedule` chooses the head of the
/// highest ready queue, which is `dest` when no ready thread outranks it,
/// takes it out again, and switches SC (commit of `cur`'s time to its
/// SC, the refill check of `dest`'s, the timer). The fast path does that
/// when, beyond [`call`]'s checks:
///
/// - `dest` has a reply object (else `cur` would end Inactive), no YieldTo
///   to complete, is in no queue (neither ready nor release: the slow
///   path's `possible_switch_to` would do nothing), and its SC is active,
///   constant-bandwidth (a sporadic one's refills are unblocked on wake)
///   and has a ready head refill with budget (a server out of budget is
///   left to the slow path);
/// - `dest`'s address space is ready, `cur` is in no queue and runs on its
///   own SC with the budget for this entry, and the scheduler would choose
///   `dest` ([`sched::fast_would_choose`]).
#[inline(always)]
fn call_active(cur: Tcb, info: u64, ep: Ep, badge: u64, dest: Tcb) -> Option<Tcb> {
    let dsc = Sc::new(dest.sched_context());
    if dest.yield_to() != 0 || !dest.in_no_queue() || !dsc.is_active() || dsc.is_sporadic() {
        return None;
    }
    let reply = ReplyObj::from_link(dest.reply_object())?;
    let root = vspace::ready_root(dest.slot(tcb::VTABLE).raw_cap())?;
    if !cur.in_no_queue() {
        return None;
    }
    let sc = sched::fast_budget()?;
    if cur.sched_context() != sc.paddr()
        || !dsc.refill_usable_near()
        || !sched::fast_would_choose(dest.priority(), dest.domain())
    {
        return None;
    }

    // --- point of no return ---
    preempt::reset_work_units();
    endpoint::dequeue(dest, ep);
    copy_message(cur, dest, info);
    dest.set_reg(Reg::MSG_INFO, delivered_info(info));
    dest.set_reg(Reg::BADGE, badge);
    // The caller waits on the server's reply object; no donation, so the
    // reply object goes on no call stack.
    dest.set_reply_object(0);
    reply.set_tcb(Some(cur));
    cur.set_reply_object(reply.paddr());
    cur.set_state_raw(ThreadState::BlockedOnReply);
    dest.set_state_raw(ThreadState::Running);
    sched::fast_switch_to_other_sc(dest, dsc, root, sc);
    taken_active(0);
    Some(dest)
}

/// ReplyRecv by the current thread `cur`, running on its own scheduling
/// context `sc` (which heads no call stack), if it is the fast case: the
/// answer goes to an active caller, which runs on its own SC, and `cur`
/// waits on the endpoint again. [`reply_recv`] has checked the message
/// `info` (short, no caps, no fault). Returns the thread made current
/// (the caller) if it was done; if not, nothing changed.
///
/// The slow path (`doReplyTransfer`, then `receiveIPC`): the reply object,
/// on no call stack, is unlinked from its caller, which takes the
/// message and runs; its refill ready and sufficient, `possible_switch_to`
/// makes it the SwitchTo candidate; `cur` blocks in Recv with the reply
/// object (after taking back an SC its bound notification lent it);
/// `schedule` switches to the candidate when no ready thread outranks it
/// (or when it does not outrank `cur`, checked the stricter way), then
/// switches SC as for the call. The fast path does that when:
///
/// - the caps: an endpoint with the receive right in x0, a reply object
///   in x6 that is on no call stack (no links: `reply_remove` only
///   unlinks it) and whose caller waits on it without a fault;
/// - the server: no signal pending on its bound notification and its SC
///   not the notification's (either is the slow path's), no sender waits
///   on the endpoint, it is in no queue, runs on `sc` with the budget for
///   this entry;
/// - the caller: in no queue, no YieldTo, an active constant-bandwidth SC
///   of its own (a sporadic one's refills are unblocked; without one it
///   could not run) whose head refill is ready and sufficient (else it is
///   postponed, or gets a timeout fault), its address space ready, and
///   the scheduler would choose it ([`sched::fast_would_choose`]).
#[inline(always)]
fn reply_recv_active(cur: Tcb, info: u64, sc: Sc) -> Option<Tcb> {
    let (ep_cap, reply_cap) = lookup_fp_pair_memo(cur, cur.reg(Reg::CAP), cur.reg(Reg::REPLY));
    let (ep, _, rights) = ep_cap.as_endpoint()?;
    if rights & EP_RECEIVE == 0 {
        return None;
    }
    let (reply, _) = reply_cap.as_reply()?;
    let reply = ReplyObj::new(reply);
    if reply.next() != 0 || reply.is_head() || reply.prev() != 0 {
        return None;
    }
    if let Some(n) = Ntfn::from_link(cur.bound_notification()) {
        if n.state() == NtfnState::Active || n.sched_context() == sc.paddr() {
            return None;
        }
    }
    let ep = Ep::new(ep);
    if ep.state() == EpState::Send {
        return None;
    }
    let caller = reply.tcb()?;
    let csc = Sc::from_link(caller.sched_context())?;
    if caller.state() != ThreadState::BlockedOnReply
        || caller.has_fault()
        || caller.yield_to() != 0
        || !caller.in_no_queue()
        || !csc.is_active()
        || csc.is_sporadic()
    {
        return None;
    }
    let root = vspace::ready_root(caller.slot(tcb::VTABLE).raw_cap())?;
    if !cur.in_no_queue()
        || sched::fast_budget() != Some(sc)
        || !csc.refill_usable_near()
        || !sched::fast_would_choose(caller.priority(), caller.domain())
    {
        return None;
    }

    // --- point of no return ---
    preempt::reset_work_units();
    // The reply (`reply_remove` of a reply on no call stack): the caller
    // lets go of the reply object, takes the message and runs.
    caller.set_reply_object(0);
    copy_message(cur, caller, info);
    caller.set_reg(Reg::MSG_INFO, delivered_info(info));
    caller.set_reg(Reg::BADGE, 0);
    caller.set_state_raw(ThreadState::Running);
    // The server waits on the endpoint with the reply object.
    cur.set_state_raw(ThreadState::BlockedOnReceive);
    cur.set_blocking_object(ep.paddr());
    cur.set_reply_object(reply.paddr());
    reply.set_tcb(Some(cur));
    endpoint::append(cur, ep, EpState::Recv);
    sched::fast_switch_to_other_sc(caller, csc, root, sc);
    taken_active(1);
    Some(caller)
}

/// Send on a notification by the current thread `cur`, if it is the fast
/// case (the benchmark configuration's `KernelSignalFastpath`, seL4's
/// `fastpath_signal`): the notification only takes the badge, or a waiter
/// of no higher priority than `cur`, with a scheduling context of its own
/// that has budget, wakes and is queued while `cur` runs on. Returns
/// whether it was done.
///
/// As for Call and ReplyRecv, the result is exactly the slow path's: the
/// budget check passes and the scheduler had nothing pending (seL4's
/// signal fast path skips the first); a thread to wake must need no
/// donated context and no unblock of its refills' sporadic state, and the
/// slow path's schedule (which puts `cur` back first, so that nothing
/// outranks it) ends switching to `cur` again: the fast path makes the
/// same address-space and FPU requests.
#[inline(always)]
pub fn signal(cur: Tcb) -> bool {
    // Extra caps are looked up (and may fault) before a signal.
    if cur.has_fault() || cur.reg(Reg::MSG_INFO) & MI_EXTRA_CAPS != 0 {
        return false;
    }
    let cap = lookup_fp_memo(cur, cur.reg(Reg::CAP));
    let Some((ntfn, badge, rights)) = cap.as_notification() else {
        return false;
    };
    if rights & EP_SEND == 0 || !cur.in_no_queue() {
        return false;
    }
    let n = Ntfn::new(ntfn);
    // Who the slow path would wake: waking a bound thread cancels its
    // endpoint wait.
    let (dest, bound) = match n.state() {
        NtfnState::Active => (None, false),
        NtfnState::Idle => match n.bound_tcb() {
            Some(t) if t.state() == ThreadState::BlockedOnReceive => (Some(t), true),
            _ => (None, false),
        },
        NtfnState::Waiting => (n.queue_head(), false),
    };
    // A thread to wake first (seL4's order): one that would outrank `cur`
    // is switched to, directly if nothing else is to be done
    // ([`wake::wake_and_switch`]); a bound one, or one that needs more
    // than a plain resume, goes the slow way.
    if let Some(dest) = dest {
        if bound || dest.priority() > cur.priority() {
            return wake::wake_and_switch(cur, n, dest, bound, badge)
                || signal_and_switch(cur, ntfn, badge);
        }
        let Some(dsc) = Sc::from_link(dest.sched_context()) else {
            return false;
        };
        if !dest.in_no_queue() || !dsc.is_active() || !dsc.refill_usable_near() || dsc.is_sporadic()
        {
            return false;
        }
    }
    let Some(sc) = sched::fast_budget() else {
        return false;
    };
    if cur.sched_context() != sc.paddr() || !sched::fast_keeps_current(cur.priority()) {
        return false;
    }
    let Some(dest) = dest else {
        // --- point of no return ---
        preempt::reset_work_units();
        if n.state() == NtfnState::Active {
            n.set_badge(n.badge() | badge);
        } else {
            n.set_state(NtfnState::Active);
            n.set_badge(badge);
        }
        taken(2);
        return true;
    };
    let same_domain = dest.domain() == sched::cur_domain();
    let root = if same_domain {
        let Some(root) = vspace::ready_root(cur.slot(tcb::VTABLE).raw_cap()) else {
            return false;
        };
        Some(root)
    } else {
        None
    };

    // --- point of no return ---
    preempt::reset_work_units();
    crate::object::notification::fast_dequeue(dest, n);
    dest.set_state_raw(ThreadState::Running);
    dest.set_reg(Reg::BADGE, badge);
    // What possible_switch_to and schedule make of it: across domains, or
    // below `cur`, at the head of its queue; at `cur`'s priority, behind.
    if !same_domain || dest.priority() < cur.priority() {
        sched::tcb_sched_enqueue(dest);
    } else {
        sched::tcb_sched_append(dest);
    }
    if let Some(root) = root {
        sched::fast_switch_to(cur, root);
    }
    taken(2);
    true
}

/// Send on a notification that wakes a thread: the bound thread waiting on
/// an endpoint, or a waiter above `cur` (the notify-rt case: a server
/// woken by its client). The signal itself is the slow path's
/// ([`notification::send_signal`]), only the system call's generic part
/// (the invocation's look-up and decode, the Restart and Running states it
/// passes through) is left out, and the switch to a woken thread that
/// outranks `cur` is made directly ([`sched::schedule_after_signal`]).
/// Done when `cur`, running without a fault, has the budget for this
/// entry (else the slow path ends its time slice); the caller checked the
/// cap, its send right and that no extra caps are named.
#[inline(never)]
fn signal_and_switch(cur: Tcb, ntfn: u64, badge: u64) -> bool {
    if cur.state() != ThreadState::Running {
        return false;
    }
    let Some(sc) = sched::fast_budget() else {
        return false;
    };
    // The budget check also ends the call when the domain's time is up.
    if cur.sched_context() != sc.paddr() || sched::cur_domain_expired() {
        return false;
    }

    // --- point of no return ---
    preempt::reset_work_units();
    notification::send_signal(ntfn, badge);
    sched::schedule_after_signal(cur);
    sched::activate_thread();
    taken(2);
    true
}

/// An interrupt `irq` (acknowledged) that signals a notification on which
/// a thread waits that outranks the interrupted thread `cur`, if it is the
/// fast case: the signal is delivered and the woken thread becomes
/// current, what [`crate::syscall::handle_interrupt_entry`]'s slow part
/// (`handle_irq`, `schedule`, `activate_thread`) makes of it, without its
/// general steps. Returns whether it was done; if not, nothing changed.
///
/// Called after the entry's `update_timestamp`, when `check_budget` would
/// let `cur` go on (and change nothing). Then the slow path masks and
/// ends the IRQ, signals the notification in its slot (the woken thread
/// runs, takes the badge, and becomes the scheduler's `SwitchTo`
/// candidate), and `schedule` switches to it. The fast path acts when
/// that is all that happens:
///
/// - the IRQ is not the kernel's timer, is in the Signal state, its slot
///   holds a notification cap with the send right;
/// - the notification has a waiter (the head of its queue), or is idle
///   with its bound thread blocked in Recv on an endpoint (a Microkit PD's
///   wait; the slow path's `cancel_ipc` takes it off the endpoint);
/// - that thread has an active scheduling context of its own (no
///   donation), constant-bandwidth (a sporadic one's refills are
///   unblocked on wake), is in no scheduler queue, has no YieldTo to
///   complete, and outranks `cur`, and its address space is ready
///   ([`vspace::ready_root`]);
/// - the scheduler: no action pending (so `possible_switch_to` makes it
///   the candidate), the thread in the current domain, which has time
///   left, no release due (`awaken` would find nothing), and if `cur` is
///   the idle thread, no ready thread above the woken one (`schedule`'s
///   "fast fail").
///
/// The rest is `schedule`'s SwitchTo case as written out for the signal
/// fast path: `cur` back in its ready queue if it can run, the switch, the
/// scheduling context switch with the time commit, and the timer.
#[inline(always)]
pub fn interrupt(irq: crate::machine::Irq) -> bool {
    use crate::machine;
    use crate::object::irq;
    if irq == machine::TIMER_IRQ {
        return false;
    }
    let Some((ntfn, badge)) = irq::signal_target(irq) else {
        return false;
    };
    let n = Ntfn::new(ntfn);
    let (dest, bound) = match n.state() {
        NtfnState::Waiting => match n.queue_head() {
            Some(t) => (t, false),
            None => return false,
        },
        NtfnState::Idle => match n.bound_tcb() {
            Some(t) if t.state() == ThreadState::BlockedOnReceive => (t, true),
            _ => return false,
        },
        NtfnState::Active => return false,
    };
    let Some(dsc) = Sc::from_link(dest.sched_context()) else {
        return false;
    };
    let cur = sched::cur_thread();
    if dest.priority() <= cur.priority()
        || !dest.in_no_queue()
        || dest.yield_to() != 0
        || !dsc.is_active()
        || dsc.is_sporadic()
        || !sched::fast_interrupt_would_switch(cur, dest.priority(), dest.domain())
    {
        return false;
    }
    let Some(root) = vspace::ready_root(dest.slot(tcb::VTABLE).raw_cap()) else {
        return false;
    };

    // --- point of no return ---
    machine::irq_mask(irq);
    machine::irq_eoi(irq);
    #[cfg(test)]
    irq::test_log::record(ntfn, badge);
    wake::deliver_and_switch(cur, n, dest, dsc, bound, badge, root);
    taken(3);
    true
}
