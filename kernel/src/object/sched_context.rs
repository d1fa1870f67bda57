//! # Scheduling contexts (MCS): budget and period of CPU time
//!
//! A scheduling context (SC) object is `2^size_bits` bytes, at least
//! `MIN_SCHED_CONTEXT_BITS`. It starts with a 96-byte header (the same size
//! as seL4's `sched_context_t`, so the number of refills an object of a
//! given size holds, which user level sees through ConfigureFlags' range
//! error, is seL4's) followed by a circular buffer of *refills*:
//!
//! | offset | field |
//! |---|---|
//! | 0 | period (ticks; 0 = round robin) |
//! | 8 | consumed (ticks since the last Consumed or timeout fault) |
//! | 16 | core |
//! | 24 | bound TCB, or 0 |
//! | 32 | head of the call stack: the last reply object the SC was donated through, or 0 |
//! | 40 | bound notification, or 0 |
//! | 48 | badge delivered with timeout faults |
//! | 56 | the thread that yielded to this SC, or 0 |
//! | 64, 72, 80 | refill buffer size, head index, tail index |
//! | 88 | sporadic flag |
//! | 96.. | refills, each (release time, amount) in ticks |
//!
//! Zero rule: an all-zero SC has no refills (`refill_max` 0), so it is not
//! active and cannot run a thread until SchedControl configures it.
//!
//! ## Refills: seL4's sporadic server
//!
//! The sum of the amounts of all refills is the budget. A thread may run
//! while the head refill's time has come and it holds at least
//! [`min_budget`]; what it consumes is cut from the head and scheduled to
//! come back one period after the head's time (`schedule_used`), merged with
//! the tail if they touch or the buffer is full. Round-robin SCs (budget =
//! period, stored as period 0) keep exactly two refills: the head to spend
//! and the tail that collects what was spent. The functions here are the
//! algorithm of seL4's `sporadic.c`, checked by property tests.

use crate::cap::Cap;
use crate::error::{Exception, SyscallError};
use crate::invocation::{Invocation, ReplyWords};
use crate::memory;
use crate::object::notification::Ntfn;
use crate::object::reply::ReplyObj;
use crate::object::tcb::Tcb;
use crate::sched;
use septa_abi::{Label, MIN_SCHED_CONTEXT_BITS};

/// Bytes of the header before the refills (seL4's `sizeof(sched_context_t)`).
pub const HEADER_BYTES: u64 = 96;
/// Bytes of one refill.
pub const REFILL_BYTES: u64 = 16;
/// Refills every active SC has at least (seL4's `MIN_REFILLS`).
pub const MIN_REFILLS: u64 = 2;

const PERIOD: u64 = 0;
const CONSUMED: u64 = 8;
// 16: the core, always 0 on one core, never read.
const TCB: u64 = 24;
const REPLY: u64 = 32;
const NTFN: u64 = 40;
const BADGE: u64 = 48;
const YIELD_FROM: u64 = 56;
const REFILL_MAX: u64 = 64;
const REFILL_HEAD: u64 = 72;
const REFILL_TAIL: u64 = 80;
const SPORADIC: u64 = 88;

/// One refill: budget `amount` usable from `time`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Refill {
    pub time: u64,
    pub amount: u64,
}

/// How many refills an SC object of `size_bits` holds (seL4's
/// `refill_absolute_max`).
pub fn refill_absolute_max(size_bits: u32) -> u64 {
    ((1u64 << size_bits) - HEADER_BYTES) / REFILL_BYTES
}

/// A scheduling context, named by its physical address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sc(u64);

/// The smallest SC object: every SC holds at least this much, aligned to
/// it, so its header is always inside.
const MIN_SC_BYTES: u64 = 1 << MIN_SCHED_CONTEXT_BITS;
/// Refills inside the smallest SC object, after the header (its refills
/// 0 and 1: a round-robin SC's two).
const REFILLS_IN_MIN_SC: u64 = (MIN_SC_BYTES - HEADER_BYTES) / REFILL_BYTES;
const _: () = assert!(HEADER_BYTES <= MIN_SC_BYTES);
const _: () =
    assert!(HEADER_BYTES.is_multiple_of(REFILL_BYTES) && MIN_SC_BYTES.is_multiple_of(REFILL_BYTES));

impl Sc {
    /// The SC at `paddr`, whose header is checked once here to lie in the
    /// window and be aligned, so that its words are reached without a check
    /// each (the refills after it are checked on each access).
    #[inline(always)]
    pub fn new(paddr: u64) -> Sc {
        debug_assert!(paddr != 0, "SC at 0");
        memory::check_object(paddr, MIN_SC_BYTES, MIN_SC_BYTES);
        Sc(paddr)
    }

    #[inline(always)]
    pub fn from_link(paddr: u64) -> Option<Sc> {
        (paddr != 0).then(|| Sc::new(paddr))
    }

    #[inline(always)]
    pub fn link(s: Option<Sc>) -> u64 {
        s.map_or(0, |s| s.0)
    }

    #[inline(always)]
    pub fn paddr(self) -> u64 {
        self.0
    }

    /// The header word at byte offset `off` (one of this module's offsets).
    #[inline(always)]
    fn read(self, off: u64) -> u64 {
        assert!(off + 8 <= HEADER_BYTES && off.is_multiple_of(8));
        // SAFETY: the word lies inside the header, aligned, and `Sc::new`
        // (the only constructor) checked the header's range and alignment.
        unsafe { memory::read_object_field(self.0, off) }
    }

    #[inline(always)]
    fn write(self, off: u64, v: u64) {
        assert!(off + 8 <= HEADER_BYTES && off.is_multiple_of(8));
        // SAFETY: as in `read`.
        unsafe { memory::write_object_field(self.0, off, v) }
    }

    #[inline(always)]
    pub fn period(self) -> u64 {
        self.read(PERIOD)
    }
    pub fn set_period(self, v: u64) {
        self.write(PERIOD, v)
    }
    pub fn consumed(self) -> u64 {
        self.read(CONSUMED)
    }
    pub fn set_consumed(self, v: u64) {
        self.write(CONSUMED, v)
    }
    /// The bound TCB's address, or 0.
    #[inline(always)]
    pub fn tcb(self) -> u64 {
        self.read(TCB)
    }
    #[inline(always)]
    pub fn set_tcb(self, t: u64) {
        self.write(TCB, t)
    }
    /// The head of this SC's call stack, or 0.
    #[inline(always)]
    pub fn reply(self) -> u64 {
        self.read(REPLY)
    }
    #[inline(always)]
    pub fn set_reply(self, r: u64) {
        self.write(REPLY, r)
    }
    pub fn notification(self) -> u64 {
        self.read(NTFN)
    }
    pub fn set_notification(self, n: u64) {
        self.write(NTFN, n)
    }
    pub fn badge(self) -> u64 {
        self.read(BADGE)
    }
    pub fn set_badge(self, b: u64) {
        self.write(BADGE, b)
    }
    pub fn yield_from(self) -> u64 {
        self.read(YIELD_FROM)
    }
    pub fn set_yield_from(self, t: u64) {
        self.write(YIELD_FROM, t)
    }
    #[inline(always)]
    pub fn refill_max(self) -> u64 {
        self.read(REFILL_MAX)
    }
    pub fn set_refill_max(self, v: u64) {
        self.write(REFILL_MAX, v)
    }
    #[inline(always)]
    fn head_index(self) -> u64 {
        self.read(REFILL_HEAD)
    }
    fn set_head_index(self, v: u64) {
        self.write(REFILL_HEAD, v)
    }
    #[inline(always)]
    fn tail_index(self) -> u64 {
        self.read(REFILL_TAIL)
    }
    fn set_tail_index(self, v: u64) {
        self.write(REFILL_TAIL, v)
    }
    #[inline(always)]
    pub fn sporadic(self) -> bool {
        self.read(SPORADIC) != 0
    }
    pub fn set_sporadic(self, on: bool) {
        self.write(SPORADIC, on as u64)
    }

    #[inline(always)]
    fn refill_at(self, index: u64) -> Refill {
        let off = self.refill_offset(index);
        // SAFETY: `refill_offset` checked the refill's 16 bytes as an
        // object (in the window, aligned); both words lie inside.
        let [time, amount]: [u64; 2] = unsafe { memory::read_object_field(self.0, off) };
        Refill { time, amount }
    }

    #[inline(always)]
    fn set_refill_at(self, index: u64, r: Refill) {
        let off = self.refill_offset(index);
        // SAFETY: as in `refill_at`.
        unsafe { memory::write_object_field(self.0, off, [r.time, r.amount]) }
    }

    /// The amount of refill `index` (for the round-robin commit, which
    /// the fast paths make).
    #[inline(always)]
    fn refill_amount_at(self, index: u64) -> u64 {
        let off = self.refill_offset_near(index);
        // SAFETY: as in `refill_at`; the amount is the refill's second word.
        unsafe { memory::read_object_field(self.0, off + 8) }
    }

    #[inline(always)]
    fn set_refill_amount_at(self, index: u64, amount: u64) {
        let off = self.refill_offset_near(index);
        // SAFETY: as in `refill_amount_at`.
        unsafe { memory::write_object_field(self.0, off + 8, amount) }
    }

    /// Where refill `index` is, as an offset from the SC, checked as a
    /// 16-byte object (refills are 16-byte aligned: the SC is at least
    /// 128-byte aligned and its header 96 bytes long). The refill's words
    /// are then reached from the SC's kernel address, as the header's are
    /// (`memory::read_object_field`), at small offsets from one register,
    /// rather than from the refill's own address plus the window's offset
    /// built in two more instructions each time.
    #[inline(always)]
    fn refill_offset(self, index: u64) -> u64 {
        let off = HEADER_BYTES + index * REFILL_BYTES;
        memory::check_object(self.0.wrapping_add(off), REFILL_BYTES, REFILL_BYTES);
        off
    }

    /// [`refill_offset`](Self::refill_offset) without the check for the
    /// first [`REFILLS_IN_MIN_SC`] refills, which lie inside the smallest
    /// SC object, checked by `Sc::new` with the header: a comparison
    /// instead of the check and its address. Used where the fast paths
    /// read refills (a round-robin SC's two are refills 0 and 1);
    /// elsewhere the check alone costs fewer bytes.
    #[inline(always)]
    fn refill_offset_near(self, index: u64) -> u64 {
        let off = HEADER_BYTES + index * REFILL_BYTES;
        if index >= REFILLS_IN_MIN_SC {
            memory::check_object(self.0.wrapping_add(off), REFILL_BYTES, REFILL_BYTES);
        }
        off
    }

    #[inline(always)]
    pub fn head(self) -> Refill {
        self.refill_at(self.head_index())
    }

    /// [`head`](Self::head) for the fast paths (see
    /// [`refill_offset_near`](Self::refill_offset_near)).
    #[inline(always)]
    pub fn head_near(self) -> Refill {
        let off = self.refill_offset_near(self.head_index());
        // SAFETY: as in `refill_at`.
        let [time, amount]: [u64; 2] = unsafe { memory::read_object_field(self.0, off) };
        Refill { time, amount }
    }

    fn set_head(self, r: Refill) {
        self.set_refill_at(self.head_index(), r)
    }

    pub fn tail(self) -> Refill {
        self.refill_at(self.tail_index())
    }

    fn set_tail(self, r: Refill) {
        self.set_refill_at(self.tail_index(), r)
    }

    /// Configured with a budget (seL4's `sc_active`).
    #[inline(always)]
    pub fn is_active(self) -> bool {
        self.refill_max() > 0
    }

    /// Budget equals period (seL4's `isRoundRobin`).
    #[inline(always)]
    pub fn is_round_robin(self) -> bool {
        self.period() == 0
    }

    /// Whether the SC is active and its head refill usable now (seL4's
    /// `sc_released`).
    pub fn is_released(self) -> bool {
        self.is_active() && self.refill_ready()
    }

    /// Sporadic (seL4's `sc_sporadic`): refills are delayed to the moment
    /// a thread unblocks on it.
    #[inline(always)]
    pub fn is_sporadic(self) -> bool {
        self.sporadic()
    }

    /// The head refill may be used now (seL4's `refill_ready`).
    #[inline(always)]
    pub fn refill_ready(self) -> bool {
        self.head().time <= sched::cur_time()
    }

    /// What is left of the head refill once `usage` is charged.
    #[inline(always)]
    pub fn refill_capacity(self, usage: u64) -> u64 {
        self.head().amount.saturating_sub(usage)
    }

    /// The head refill can pay for `usage` and still leave enough to enter
    /// and leave the kernel (seL4's `refill_sufficient`).
    #[inline(always)]
    pub fn refill_sufficient(self, usage: u64) -> bool {
        self.refill_capacity(usage) >= sched::min_budget()
    }

    /// [`refill_sufficient`](Self::refill_sufficient) from
    /// [`head_near`](Self::head_near), for the fast paths.
    #[inline(always)]
    pub fn refill_sufficient_near(self, usage: u64) -> bool {
        self.head_near().amount.saturating_sub(usage) >= sched::min_budget()
    }

    /// [`refill_ready`](Self::refill_ready) and `refill_sufficient(0)`
    /// from one [`head_near`](Self::head_near), for the fast paths: the
    /// head refill may be used now and holds a kernel entry and exit.
    #[inline(always)]
    pub fn refill_usable_near(self) -> bool {
        let h = self.head_near();
        h.time <= sched::cur_time() && h.amount >= sched::min_budget()
    }

    fn next_index(self, index: u64) -> u64 {
        if index == self.refill_max() - 1 {
            0
        } else {
            index + 1
        }
    }

    /// Refills in use.
    pub fn refill_size(self) -> u64 {
        let (h, t) = (self.head_index(), self.tail_index());
        if h <= t {
            t - h + 1
        } else {
            t + 1 + (self.refill_max() - h)
        }
    }

    fn refill_full(self) -> bool {
        self.refill_size() == self.refill_max()
    }

    fn refill_single(self) -> bool {
        self.head_index() == self.tail_index()
    }

    /// The refills in use, head first (tests).
    #[cfg(test)]
    pub fn refills(self, out: &mut [Refill]) -> usize {
        let mut i = self.head_index();
        let mut n = 0;
        loop {
            if n < out.len() {
                out[n] = self.refill_at(i);
            }
            n += 1;
            if i == self.tail_index() || n as u64 >= self.refill_max() {
                return n;
            }
            i = self.next_index(i);
        }
    }

    fn pop_head(self) -> Refill {
        debug_assert!(!self.refill_single());
        let r = self.head();
        self.set_head_index(self.next_index(self.head_index()));
        r
    }

    fn add_tail(self, r: Refill) {
        debug_assert!(self.refill_size() < self.refill_max());
        let t = self.next_index(self.tail_index());
        self.set_tail_index(t);
        self.set_refill_at(t, r);
    }

    fn maybe_add_empty_tail(self) {
        if self.is_round_robin() {
            self.add_tail(Refill {
                time: self.head().time,
                amount: 0,
            });
        }
    }
}

// ---------------------------------------------------------------------------
// The refill algorithm (seL4's sporadic.c).

/// Sets up the refills of an SC that is not in use: the whole budget
/// available from now (seL4's `refill_new`).
pub fn refill_new(sc: Sc, max_refills: u64, budget: u64, period: u64) {
    sc.set_period(period);
    sc.set_head_index(0);
    sc.set_tail_index(0);
    sc.set_refill_max(max_refills);
    sc.set_head(Refill {
        time: sched::cur_time(),
        amount: budget,
    });
    sc.maybe_add_empty_tail();
}

/// Changes the parameters of an SC in use without letting it exceed the
/// new budget in any window of the new period (seL4's `refill_update`).
pub fn refill_update(sc: Sc, new_period: u64, new_budget: u64, new_max_refills: u64) {
    let head = sc.head();
    sc.set_refill_at(0, head);
    sc.set_head_index(0);
    sc.set_tail_index(0);
    sc.set_refill_max(new_max_refills);
    sc.set_period(new_period);
    if sc.refill_ready() {
        let mut h = sc.head();
        h.time = sched::cur_time();
        sc.set_head(h);
    }
    let h = sc.head();
    if h.amount >= new_budget {
        sc.set_head(Refill {
            time: h.time,
            amount: new_budget,
        });
        sc.maybe_add_empty_tail();
    } else {
        sc.add_tail(Refill {
            time: h.time + new_period,
            amount: new_budget - h.amount,
        });
    }
}

/// Schedules a used amount to come back, merging it with the tail when
/// they touch or when no slot is free.
fn schedule_used(sc: Sc, new: Refill) {
    let tail = sc.tail();
    if tail.time + tail.amount >= new.time {
        sc.set_tail(Refill {
            time: tail.time,
            amount: tail.amount + new.amount,
        });
    } else if !sc.refill_full() {
        sc.add_tail(new);
    } else {
        sc.set_tail(Refill {
            time: new.time - tail.amount,
            amount: tail.amount + new.amount,
        });
    }
}

/// Whether the head refill ends after the next one starts.
fn head_overlapping(sc: Sc) -> bool {
    if sc.refill_single() {
        return false;
    }
    let head = sc.head();
    sc.refill_at(sc.next_index(sc.head_index())).time <= head.time + head.amount
}

/// Charges `usage` ticks to `sc` (the current SC), when they empty or
/// nearly empty its head refill (seL4's `refill_budget_check`).
pub fn refill_budget_check(sc: Sc, usage: u64) {
    debug_assert!(!sc.is_round_robin());
    let max_release = sched::max_release_time();
    let mut usage = usage;
    // Whole head refills used up go one period later.
    loop {
        let head = sc.head();
        if !(head.amount <= usage && head.time < max_release) {
            break;
        }
        if sc.refill_single() {
            sc.set_head(Refill {
                time: head.time + sc.period(),
                amount: head.amount,
            });
        } else {
            let mut old = sc.pop_head();
            old.time += sc.period();
            schedule_used(sc, old);
        }
        usage -= head.amount;
    }
    let head = sc.head();
    if usage > 0 && head.time < max_release {
        debug_assert!(head.amount > usage);
        let used = Refill {
            time: head.time + sc.period(),
            amount: usage,
        };
        sc.set_head(Refill {
            time: head.time + usage,
            amount: head.amount - usage,
        });
        schedule_used(sc, used);
    }
    // The head must hold at least the minimum budget: merge with the next,
    // starting earlier so the next refill does not end any later.
    while sc.head().amount < sched::min_budget() && !sc.refill_single() {
        let head = sc.pop_head();
        let mut next = sc.head();
        next.amount += head.amount;
        next.time -= head.amount;
        sc.set_head(next);
    }
}

/// Brings the refills of a thread that becomes runnable up to now, merging
/// those that have come due (seL4's `refill_unblock_check`).
pub fn refill_unblock_check(sc: Sc) {
    if sc.is_round_robin() {
        return;
    }
    if sc.refill_ready() {
        let mut h = sc.head();
        h.time = sched::cur_time();
        sc.set_head(h);
        sched::set_reprogram();
        while head_overlapping(sc) {
            let old = sc.pop_head();
            let mut h = sc.head();
            h.time = old.time;
            h.amount += old.amount;
            sc.set_head(h);
        }
    }
}

// ---------------------------------------------------------------------------
// Binding.

/// Makes `tcb` run on `sc` (seL4's `schedContext_bindTCB`).
pub fn bind_tcb(sc: Sc, tcb: Tcb) {
    tcb.set_sched_context(sc.paddr());
    sc.set_tcb(tcb.paddr());
    if sc.is_sporadic() && sc.is_active() && Some(sc) != sched::cur_sc() {
        refill_unblock_check(sc);
    }
    resume(sc);
    if sched::enqueue_if_schedulable(tcb) {
        sched::reschedule_required();
    }
}

/// Takes the bound thread off `sc` (seL4's `schedContext_unbindTCB`).
#[inline(never)]
pub fn unbind_tcb(sc: Sc) {
    let Some(tcb) = Tcb::from_link(sc.tcb()) else {
        return;
    };
    if Some(tcb) == sched::cur_thread_opt() {
        sched::reschedule_required();
    }
    sched::tcb_sched_dequeue(tcb);
    sched::tcb_release_remove(tcb);
    tcb.set_sched_context(0);
    sc.set_tcb(0);
}

/// Moves `sc` from whichever thread has it to `to` (seL4's
/// `schedContext_donate`).
pub fn donate(sc: Sc, to: Tcb) {
    if let Some(from) = Tcb::from_link(sc.tcb()) {
        sched::tcb_sched_dequeue(from);
        sched::tcb_release_remove(from);
        from.set_sched_context(0);
        if Some(from) == sched::cur_thread_opt() || sched::action_is(from) {
            sched::reschedule_required();
        }
    }
    sc.set_tcb(to.paddr());
    to.set_sched_context(sc.paddr());
}

/// If the bound thread can run but its head refill is not ready or not
/// enough, parks it in the release queue (seL4's `schedContext_resume`).
pub fn resume(sc: Sc) {
    let Some(tcb) = Tcb::from_link(sc.tcb()) else {
        return;
    };
    if sched::is_schedulable(tcb) && !(sc.refill_ready() && sc.refill_sufficient(0)) {
        debug_assert!(!tcb.is_queued());
        sched::postpone(sc);
    }
}

pub fn bind_notification(sc: Sc, ntfn: Ntfn) {
    ntfn.set_sched_context(sc.paddr());
    sc.set_notification(ntfn.paddr());
}

/// Out of line: deletion and three SchedContext methods call it (two
/// inlined copies were 92 bytes beside this one).
#[inline(never)]
pub fn unbind_notification(sc: Sc) {
    if let Some(n) = Ntfn::from_link(sc.notification()) {
        n.set_sched_context(0);
        sc.set_notification(0);
    }
}

/// Detaches the call stack from `sc` (seL4's `schedContext_unbindReply`).
pub fn unbind_reply(sc: Sc) {
    if let Some(r) = ReplyObj::from_link(sc.reply()) {
        r.set_next(0, false);
        sc.set_reply(0);
    }
}

/// Takes the consumed time in microseconds, leaving what cannot be
/// converted in one go (seL4's `schedContext_updateConsumed`).
pub fn update_consumed(sc: Sc) -> u64 {
    // At most `max` ticks now, the rest left for later; one conversion
    // (written out per branch, it was inlined twice: 360 bytes).
    let consumed = sc.consumed();
    let taken = consumed.min(sched::max_ticks_to_us());
    sc.set_consumed(consumed - taken);
    sched::ticks_to_us(taken)
}

/// Forgets a pending YieldTo of `tcb` (seL4's `schedContext_cancelYieldTo`).
pub fn cancel_yield_to(tcb: Tcb) {
    if let Some(sc) = Sc::from_link(tcb.yield_to()) {
        sc.set_yield_from(0);
        tcb.set_yield_to(0);
    }
}

/// Completes the YieldTo of `yielder`: it gets the consumed time as its
/// reply (seL4's `schedContext_completeYieldTo`).
pub fn complete_yield_to(yielder: Tcb) {
    if let Some(sc) = Sc::from_link(yielder.yield_to()) {
        let consumed = update_consumed(sc);
        crate::ipc::reply_from_kernel_words(yielder, &[consumed]);
        cancel_yield_to(yielder);
    }
}

/// Clean-up when the last cap to a scheduling context is deleted: unbind
/// the thread, the notification and the call stack, complete a pending
/// YieldTo, and mark it unconfigured.
pub fn finalise(sched_context: u64) {
    let sc = Sc::new(sched_context);
    unbind_tcb(sc);
    unbind_notification(sc);
    unbind_reply(sc);
    if let Some(from) = Tcb::from_link(sc.yield_from()) {
        complete_yield_to(from);
    }
    sc.set_refill_max(0);
    sc.set_sporadic(false);
}

// ---------------------------------------------------------------------------
// Invocations.

/// Decodes an invocation of a SchedContext cap (Bind, Unbind,
/// UnbindObject, Consumed, YieldTo). `reply` gets the words of a
/// successful reply.
pub fn decode_invocation(
    inv: &Invocation,
    sc: Sc,
    reply: &mut ReplyWords,
) -> Result<(), Exception> {
    let cur = sched::cur_thread();
    match Label::from_u64(inv.label) {
        Some(Label::SchedContextConsumed) => {
            reply.push(update_consumed(sc));
            Ok(())
        }
        // Bind and UnbindObject: one look at the cap for both.
        Some(l @ (Label::SchedContextBind | Label::SchedContextUnbindObject)) => {
            let bind = l == Label::SchedContextBind;
            let Some(slot) = inv.extra_cap(0) else {
                return Err(SyscallError::TruncatedMessage.into());
            };
            match slot.cap() {
                Cap::Tcb { paddr } if bind => {
                    let tcb = Tcb::new(paddr);
                    if sc.tcb() != 0 || tcb.sched_context() != 0 {
                        return Err(SyscallError::IllegalOperation.into());
                    }
                    if tcb.state().is_blocked() && !sc.is_released() {
                        return Err(SyscallError::IllegalOperation.into());
                    }
                    bind_tcb(sc, tcb);
                }
                Cap::Tcb { paddr } => {
                    if sc.tcb() != paddr || paddr == cur.paddr() {
                        return Err(SyscallError::IllegalOperation.into());
                    }
                    unbind_tcb(sc);
                }
                Cap::Notification { paddr, .. } if bind => {
                    let ntfn = Ntfn::new(paddr);
                    if sc.notification() != 0 || ntfn.sched_context() != 0 {
                        return Err(SyscallError::IllegalOperation.into());
                    }
                    bind_notification(sc, ntfn);
                }
                Cap::Notification { paddr, .. } => {
                    if sc.notification() != paddr {
                        return Err(SyscallError::IllegalOperation.into());
                    }
                    unbind_notification(sc);
                }
                _ => return Err(SyscallError::InvalidCapability { index: 1 }.into()),
            }
            Ok(())
        }
        Some(Label::SchedContextUnbind) => {
            if sc.tcb() == cur.paddr() {
                return Err(SyscallError::IllegalOperation.into());
            }
            unbind_tcb(sc);
            unbind_notification(sc);
            unbind_reply(sc);
            Ok(())
        }
        Some(Label::SchedContextYieldTo) => decode_yield_to(sc, cur, reply),
        _ => Err(SyscallError::IllegalOperation.into()),
    }
}

fn decode_yield_to(sc: Sc, cur: Tcb, reply: &mut ReplyWords) -> Result<(), Exception> {
    let Some(tcb) = Tcb::from_link(sc.tcb()) else {
        return Err(SyscallError::IllegalOperation.into());
    };
    if tcb == cur || tcb.priority() > cur.mcp() || cur.yield_to() != 0 {
        return Err(SyscallError::IllegalOperation.into());
    }
    if let Some(from) = Tcb::from_link(sc.yield_from()) {
        complete_yield_to(from);
    }
    // Whatever is schedulable from here on is ready and has enough budget.
    resume(sc);
    let return_now = if sched::is_schedulable(tcb) {
        sched::tcb_sched_dequeue(tcb);
        if tcb.priority() < cur.priority() {
            sched::tcb_sched_enqueue(tcb);
            true
        } else {
            cur.set_yield_to(sc.paddr());
            sc.set_yield_from(cur.paddr());
            sched::tcb_sched_enqueue(cur);
            sched::tcb_sched_enqueue(tcb);
            sched::reschedule_required();
            // The consumed time is the reply once the caller runs again.
            false
        }
    } else {
        true
    };
    if return_now {
        reply.push(update_consumed(sc));
    }
    Ok(())
}

/// A round-robin SC spends from its head into its tail (the time-keeping
/// half of seL4's `commitTime` for round-robin SCs).
#[inline(always)]
pub fn move_round_robin(sc: Sc, consumed: u64) {
    // Only the amounts change, each read and written in place (the times
    // stay). A round-robin SC has exactly two refills (the tail added
    // empty when it was configured), so the two are different words.
    let head = sc.head_index();
    debug_assert!(sc.refill_size() == MIN_REFILLS);
    let amount = sc.refill_amount_at(head);
    sc.set_refill_amount_at(head, amount.saturating_sub(consumed));
    let tail = sc.tail_index();
    let amount = sc.refill_amount_at(tail);
    sc.set_refill_amount_at(tail, amount + consumed);
}

/// A round-robin SC whose slice ended gets its whole budget back in the
/// head (seL4's `chargeBudget` for round-robin SCs).
pub fn refill_round_robin_reset(sc: Sc) {
    let (h, t) = (sc.head(), sc.tail());
    sc.set_head(Refill {
        time: h.time,
        amount: h.amount + t.amount,
    });
    sc.set_tail(Refill {
        time: t.time,
        amount: 0,
    });
}
