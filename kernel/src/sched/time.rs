//! # Time and budgets
//!
//! Ticks of the system counter converted as seL4 converts them, and the
//! MCS budget rules: each kernel entry charges the time since the last one
//! to the current scheduling context; a spent head refill ends the time
//! slice (a timeout fault, round robin, or a wait in the release queue),
//! and the timer is programmed for the next event.

use super::*;
use crate::fault::Fault;
use crate::machine;
use crate::object::sched_context::refill_budget_check;

// ---------------------------------------------------------------------------
// Time, in ticks of the system counter, converted as seL4 converts.

fn freq() -> u64 {
    machine::counter_frequency()
}

/// seL4 converts through kHz when the clock is not a whole number of MHz.
fn use_khz() -> bool {
    !freq().is_multiple_of(1_000_000)
}

fn clock_unit() -> u64 {
    if use_khz() {
        freq() / 1000
    } else {
        freq() / 1_000_000
    }
}

/// Microseconds to ticks, out of line: boot, `sched::init` and SchedControl
/// Configure convert (each inlined copy was ~130 bytes of divisions);
/// the budget check's bound keeps its inlined conversion
/// ([`us_to_ticks_inline`]).
#[inline(never)]
pub fn us_to_ticks(us: u64) -> u64 {
    us_to_ticks_inline(us)
}

#[inline(always)]
fn us_to_ticks_inline(us: u64) -> u64 {
    if use_khz() {
        us.wrapping_mul(clock_unit()) / 1000
    } else {
        us.wrapping_mul(clock_unit())
    }
}

pub fn ticks_to_us(ticks: u64) -> u64 {
    if use_khz() {
        ticks.wrapping_mul(1000) / clock_unit()
    } else {
        ticks / clock_unit()
    }
}

/// Largest microsecond value `us_to_ticks` takes without overflow.
pub fn max_us_to_ticks() -> u64 {
    u64::MAX / clock_unit()
}

/// Largest tick value `ticks_to_us` takes without overflow.
pub fn max_ticks_to_us() -> u64 {
    if use_khz() {
        u64::MAX / clock_unit()
    } else {
        u64::MAX
    }
}

/// Longest budget or period, in microseconds (seL4's `MAX_PERIOD_US`).
pub fn max_period_us() -> u64 {
    max_us_to_ticks() / 8
}

/// Refill times at or past this are never advanced further.
pub fn max_release_time() -> u64 {
    u64::MAX - 5 * us_to_ticks_inline(max_period_us())
}

/// The least budget a thread needs to enter and leave the kernel (computed
/// once, by [`init`](super::init): the clock's frequency is fixed).
#[inline]
pub fn min_budget() -> u64 {
    with(|s| s.min_budget.get())
}

/// [`min_budget`]'s value, computed at boot (the clock conversion takes a
/// few divisions; inlined in each of its ~16 users it cost ~2 KB of code).
pub(super) fn compute_min_budget() -> u64 {
    2 * us_to_ticks(KERNEL_WCET_US)
}

pub fn min_budget_us() -> u64 {
    2 * KERNEL_WCET_US
}

#[inline]
pub fn cur_time() -> u64 {
    with(|s| s.cur_time.get())
}

pub fn set_reprogram() {
    with(|s| s.reprogram.set(true))
}

// ---------------------------------------------------------------------------
// Budgets.

/// Reads the clock at kernel entry and accumulates the time since the
/// last entry (seL4's `updateTimestamp`).
#[inline]
pub fn update_timestamp() {
    let now = machine::now();
    with(|s| {
        let prev = s.cur_time.replace(now);
        let consumed = now.wrapping_sub(prev);
        s.consumed.set(s.consumed.get() + consumed);
        super::domain::charge_domain_time(s, consumed);
    });
}

/// Charges the consumed time to the current SC (seL4's `commitTime`).
pub fn commit_time() {
    commit_time_inline()
}

/// [`commit_time`] written out where it is called: the fast paths' SC
/// switches, where the clock was just read in the same function, so the
/// time consumed and the current SC come from registers rather than
/// memory, and no call is made for a round-robin SC (a sporadic one's
/// refill check stays a call).
#[inline(always)]
pub fn commit_time_inline() {
    let (sc, idle_sc, consumed) = with(|s| (s.cur_sc.get(), s.idle_sc.get(), s.consumed.get()));
    if let Some(sc) = sc {
        if sc.is_active() && Some(sc) != idle_sc {
            charge_consumed(sc, consumed);
        }
    }
    with(|s| s.consumed.set(0));
}

/// [`commit_time_inline`] where the current SC is known to be `sc`, active
/// and not the idle thread's (the active-server fast paths, after
/// [`fast_budget`](super::fast_budget) found it with budget).
#[inline(always)]
pub fn commit_time_to(sc: Sc) {
    debug_assert!(
        with(|s| s.cur_sc.get() == Some(sc) && s.idle_sc.get() != Some(sc)) && sc.is_active()
    );
    charge_consumed(sc, with(|s| s.consumed.get()));
    with(|s| s.consumed.set(0));
}

/// The commit's charge of `consumed` to an active SC other than the idle
/// thread's: its refills, then its running total.
#[inline(always)]
fn charge_consumed(sc: Sc, consumed: u64) {
    if consumed > 0 {
        if sc.is_round_robin() {
            charge_round_robin(sc, consumed);
        } else {
            refill_budget_check(sc, consumed);
        }
    }
    sc.set_consumed(sc.consumed().wrapping_add(consumed));
}

/// A round-robin SC moves consumed time from its head to its tail.
#[inline(always)]
fn charge_round_robin(sc: Sc, consumed: u64) {
    sched_context::move_round_robin(sc, consumed);
}

/// Whether the current thread may go on: its head refill covers what it
/// consumed plus a kernel exit. If not, the time is charged and the thread
/// ends its time slice (seL4's `checkBudget`).
pub fn check_budget() -> bool {
    let (sc, consumed) = with(|s| (s.cur_sc.get(), s.consumed.get()));
    if sc.is_some_and(|sc| sc.refill_sufficient(consumed)) {
        // The thread may go on, but not past the end of its domain's time.
        return !cur_domain_expired();
    }
    charge_budget(consumed, true);
    false
}

/// Whether [`check_budget`] would let the current thread go on, and so
/// change nothing: its head refill covers what it consumed plus a kernel
/// exit, and its domain has time left.
#[inline(always)]
pub fn budget_lets_current_go_on() -> bool {
    let (sc, consumed) = with(|s| (s.cur_sc.get(), s.consumed.get()));
    match sc {
        Some(sc) => sc.refill_sufficient(consumed) && !cur_domain_expired(),
        None => false,
    }
}

/// [`check_budget`] for kernel entries that must be retried once the
/// thread has budget again: it is left in Restart (seL4's
/// `checkBudgetRestart`).
pub fn check_budget_restart() -> bool {
    let ok = check_budget();
    let cur = cur_thread();
    if !ok && cur.state().is_runnable() {
        set_thread_state(cur, ThreadState::Restart);
    }
    ok
}

/// Charges `consumed` to the current SC and ends the current thread's time
/// slice (seL4's `chargeBudget`).
pub fn charge_budget(consumed: u64, can_timeout_fault: bool) {
    let (sc, idle_sc) = with(|s| (s.cur_sc.get(), s.idle_sc.get()));
    if let Some(sc) = sc {
        if Some(sc) != idle_sc {
            if sc.is_round_robin() {
                sched_context::refill_round_robin_reset(sc);
            } else {
                refill_budget_check(sc, consumed);
            }
            sc.set_consumed(sc.consumed().wrapping_add(consumed));
        }
    }
    with(|s| s.consumed.set(0));
    let cur = cur_thread();
    if is_schedulable(cur) {
        end_timeslice(can_timeout_fault);
        reschedule_required();
        set_reprogram();
    }
}

/// The current thread's head refill is spent: raise a timeout fault if it
/// has a handler, else round-robin it or park it until its next refill
/// (seL4's `endTimeslice`).
pub fn end_timeslice(can_timeout_fault: bool) {
    let cur = cur_thread();
    let Some(sc) = cur_sc() else {
        return;
    };
    if can_timeout_fault && !sc.is_round_robin() && crate::fault::valid_timeout_handler(cur) {
        crate::fault::handle_timeout(cur, Fault::Timeout { badge: sc.badge() });
    } else if sc.refill_ready() && sc.refill_sufficient(0) {
        tcb_sched_append(cur);
    } else {
        postpone(sc);
    }
}

/// Programs the timer for the end of the current head refill or the next
/// release, whichever is first (seL4's `setNextInterrupt`).
pub fn set_next_interrupt() {
    set_next_interrupt_for(sc_of(cur_thread()));
}

/// [`set_next_interrupt`] for a current thread whose SC is `sc`.
pub fn set_next_interrupt_for(sc: Option<Sc>) {
    machine::set_deadline(next_deadline(sc));
}

/// [`set_next_interrupt_for`] at the end of a fast path (which knows `sc`
/// and always leaves by an exception return to a thread, never to the
/// idle thread's `wfi`): the same deadline, written without the timer's
/// `isb`, which the `eret` makes unneeded
/// (`machine::set_deadline_before_eret`).
#[inline(always)]
pub fn set_next_interrupt_before_eret(sc: Option<Sc>) {
    machine::set_deadline_before_eret(next_deadline(sc));
}

/// The timer's next deadline when the current thread's SC is `sc`: the end
/// of its head refill or the next release, whichever is first (and, with
/// domains, the end of the domain's time).
#[inline(always)]
fn next_deadline(sc: Option<Sc>) -> u64 {
    let now = cur_time();
    let mut next = now.wrapping_add(sc.map_or(0, |sc| sc.head_near().amount));
    if NUM_DOMAINS > 1 {
        next = next.min(now.saturating_add(with(|s| s.domain_time.get())));
    }
    if let Some(h) = with(|s| s.release_queue.get().head) {
        next = next.min(ready_time(h));
    }
    next
}
