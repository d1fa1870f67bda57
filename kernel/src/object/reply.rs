//! # Reply objects (MCS): where a Call waits for its answer
//!
//! A reply object (32 bytes, `REPLY_SIZE_BITS`) links a caller blocked on
//! it to the server that will answer, and records the *call stack* of
//! scheduling-context donation: when a Call donates the caller's SC to a
//! passive server, the reply object is pushed on that SC's stack, so the SC
//! goes back to the caller when the server replies.
//!
//! | offset | field |
//! |---|---|
//! | 0 | the TCB: the caller blocked on this reply, or the server blocked in Recv with it; 0 if none |
//! | 8 | previous reply object on the call stack, or 0 |
//! | 16 | next: the SC, if this reply is the head of the stack (bit 0 set), else the next reply object; 0 if none |
//! | 24 | unused |
//!
//! Zero rule: an all-zero reply object names no thread and is on no stack.
//! The thread side of the link is the thread's `reply_object` field.

use crate::object::sched_context::{self, Sc};
use crate::object::tcb::{Tcb, ThreadState};
use crate::{memory, sched};
use septa_abi::REPLY_SIZE_BITS;

const TCB: u64 = 0;
const PREV: u64 = 8;
const NEXT: u64 = 16;
/// In the `next` word: what it names is an SC (this reply heads the stack).
const IS_HEAD: u64 = 1;

/// A reply object, named by its physical address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReplyObj(u64);

/// Bytes in a reply object.
const REPLY_BYTES: u64 = 1 << REPLY_SIZE_BITS;

impl ReplyObj {
    /// The reply object at `paddr`, checked once here to lie in the window
    /// and be aligned, so that its words are reached without a check each.
    #[inline(always)]
    pub fn new(paddr: u64) -> ReplyObj {
        debug_assert!(paddr != 0);
        memory::check_object(paddr, REPLY_BYTES, REPLY_BYTES);
        ReplyObj(paddr)
    }

    #[inline(always)]
    pub fn from_link(paddr: u64) -> Option<ReplyObj> {
        (paddr != 0).then(|| ReplyObj::new(paddr))
    }

    #[inline(always)]
    pub fn paddr(self) -> u64 {
        self.0
    }

    /// The word at byte offset `off` (one of this module's offsets).
    #[inline(always)]
    fn read(self, off: u64) -> u64 {
        assert!(off + 8 <= REPLY_BYTES && off.is_multiple_of(8));
        // SAFETY: the word lies inside the object, aligned, and
        // `ReplyObj::new` (the only constructor) checked the object's
        // range and alignment.
        unsafe { memory::read_object_field(self.0, off) }
    }

    #[inline(always)]
    fn write(self, off: u64, v: u64) {
        assert!(off + 8 <= REPLY_BYTES && off.is_multiple_of(8));
        // SAFETY: as in `read`.
        unsafe { memory::write_object_field(self.0, off, v) }
    }

    #[inline(always)]
    pub fn tcb(self) -> Option<Tcb> {
        Tcb::from_link(self.read(TCB))
    }

    #[inline(always)]
    pub fn set_tcb(self, t: Option<Tcb>) {
        self.write(TCB, Tcb::link(t))
    }

    /// The previous reply object on the call stack, or 0.
    #[inline(always)]
    pub fn prev(self) -> u64 {
        self.read(PREV) & !IS_HEAD
    }

    #[inline(always)]
    pub fn set_prev(self, r: u64) {
        self.write(PREV, r)
    }

    /// The raw next word: an SC or reply address, with [`IS_HEAD`].
    #[inline(always)]
    fn next_word(self) -> u64 {
        self.read(NEXT)
    }

    /// The address in the next word (an SC if [`Self::is_head`]).
    #[inline(always)]
    pub fn next(self) -> u64 {
        self.next_word() & !IS_HEAD
    }

    /// Whether this reply heads a call stack (its next is an SC).
    #[inline(always)]
    pub fn is_head(self) -> bool {
        self.next_word() & IS_HEAD != 0
    }

    #[inline(always)]
    pub fn set_next(self, ptr: u64, is_head: bool) {
        self.write(NEXT, ptr | if is_head { IS_HEAD } else { 0 })
    }

    #[inline(always)]
    fn set_next_word(self, w: u64) {
        self.write(NEXT, w)
    }
}

/// Unlinks a reply object from its thread, which becomes Inactive (seL4's
/// `reply_unlink`).
pub fn unlink(reply: ReplyObj, tcb: Tcb) {
    debug_assert!(reply.tcb() == Some(tcb));
    reply.set_tcb(None);
    tcb.set_reply_object(0);
    sched::set_thread_state(tcb, ThreadState::Inactive);
}

/// A Call blocks `caller` on `reply` for `callee`; with `can_donate`, the
/// caller's SC goes to a callee without one and the reply is pushed on that
/// SC's call stack (seL4's `reply_push`).
pub fn push(caller: Tcb, callee: Tcb, reply: ReplyObj, can_donate: bool) {
    let donated = sched::sc_of(caller);
    reply.set_tcb(Some(caller));
    caller.set_reply_object(reply.paddr());
    sched::set_thread_state(caller, ThreadState::BlockedOnReply);
    if let Some(sc) = donated {
        if callee.sched_context() == 0 && can_donate {
            let old = ReplyObj::from_link(sc.reply());
            if let Some(old) = old {
                old.set_next(reply.paddr(), false);
            }
            reply.set_prev(old.map_or(0, |o| o.paddr()));
            sc.set_reply(reply.paddr());
            reply.set_next(sc.paddr(), true);
            sched_context::donate(sc, callee);
        }
    }
}

/// Pops the head of a call stack as its caller gets the answer, giving the
/// SC back to the caller if it has none (seL4's `reply_pop`).
pub fn pop(reply: ReplyObj, tcb: Tcb) {
    let sc = Sc::new(reply.next());
    let prev = reply.prev();
    sc.set_reply(prev);
    if let Some(p) = ReplyObj::from_link(prev) {
        p.set_next_word(reply.next_word());
    }
    reply.set_next(0, false);
    if tcb.sched_context() == 0 {
        sched_context::donate(sc, tcb);
    }
    reply.set_prev(0);
    unlink(reply, tcb);
}

/// Takes a reply out of its call stack, wherever it is in it (seL4's
/// `reply_remove`).
pub fn remove(reply: ReplyObj, tcb: Tcb) {
    let next = reply.next();
    let prev = reply.prev();
    if next != 0 && reply.is_head() {
        pop(reply, tcb);
        return;
    }
    if let Some(n) = ReplyObj::from_link(next) {
        // Not the head: the chain breaks here.
        n.set_prev(0);
    }
    if let Some(p) = ReplyObj::from_link(prev) {
        p.set_next(0, false);
    }
    reply.set_prev(0);
    reply.set_next(0, false);
    unlink(reply, tcb);
}

/// Takes the reply a thread is blocked on out of its call stack (seL4's
/// `reply_remove_tcb`).
pub fn remove_tcb(tcb: Tcb) {
    let Some(reply) = ReplyObj::from_link(tcb.reply_object()) else {
        return;
    };
    let next = reply.next();
    let prev = reply.prev();
    if next != 0 {
        if reply.is_head() {
            Sc::new(next).set_reply(0);
        } else {
            ReplyObj::new(next).set_prev(0);
        }
    }
    if let Some(p) = ReplyObj::from_link(prev) {
        p.set_next(0, false);
    }
    reply.set_prev(0);
    reply.set_next(0, false);
    unlink(reply, tcb);
}

/// Clean-up when the last cap to a reply object is deleted: a caller blocked
/// on it leaves the call stack; a server waiting in Recv with it stops
/// waiting (seL4's `finaliseCap` for reply caps).
pub fn finalise(reply: u64) {
    let r = ReplyObj::new(reply);
    let Some(tcb) = r.tcb() else {
        return;
    };
    match tcb.state() {
        ThreadState::BlockedOnReply => remove(r, tcb),
        ThreadState::BlockedOnReceive => crate::ipc::cancel_ipc(tcb),
        st => debug_assert!(false, "reply object's thread is {st:?}"),
    }
}
