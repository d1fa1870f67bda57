//! # The MCS scheduler: current thread, ready queues, time and budgets
//!
//! This module owns the scheduler's kernel globals ([`SchedState`]): the
//! current thread and scheduling context, the scheduler action, the 256
//! ready queues with their two-level bitmap, the release queue of threads
//! waiting for budget, the kernel's notion of time, the FPU owner and the
//! (one-entry) domain schedule. Its functions are seL4's `thread.c` and the
//! scheduling parts of `tcb.c`:
//!
//! - a system call or interrupt starts with [`update_timestamp`] and
//!   [`check_budget`] (the time since the last kernel entry is charged to
//!   the current scheduling context), changes thread states through
//!   [`set_thread_state`], [`possible_switch_to`] and
//!   [`reschedule_required`], and ends with [`schedule`] and
//!   [`activate_thread`];
//! - [`schedule`] picks the next thread, commits consumed time, and
//!   reprograms the timer for the end of the new thread's head refill or the
//!   next release, whichever is first ([`set_next_interrupt`]).
//!
//! ## The idle thread
//!
//! The idle thread is a real TCB with its own scheduling context, as in
//! seL4, so the code treats "nothing to run" like any other thread; its
//! objects live in kernel memory (given to [`init`]). When it is current the
//! arch code does not return to user level: it waits for interrupts with
//! `wfi` at EL2 on the kernel stack, and an interrupt there enters the
//! kernel as if from a thread with nothing to save. That is cheaper than an
//! idle context at EL0 (no address space, no register block), and it keeps
//! the idle thread out of every user-visible structure.
//!
//! ## FPU
//!
//! FP/SIMD state is switched lazily, on first use: it stays in the
//! registers while the kernel runs (the kernel never touches them), and a
//! switch to a thread that does not own those registers only turns FP/SIMD
//! off (a trap to EL2). The thread's first FP/SIMD instruction then traps,
//! and [`handle_fpu_trap`] saves the owner's state into its TCB, loads the
//! thread's and lets the instruction run again. Threads that never touch
//! the FPU between switches (most servers, the IPC paths) never pay for
//! it. seL4 16.0.0 switches eagerly on every thread switch
//! (`lazyFPURestore`); user level cannot tell the difference, as every
//! thread always finds its own FP/SIMD state. Threads with
//! `seL4_TCBFlag_fpuDisabled` run with FP/SIMD trapped, and their trap is
//! a fault as before.

use crate::cap::Cap;
use crate::fault::Fault;
use crate::machine;
use crate::object::sched_context::{self, refill_budget_check, refill_new, Sc, MIN_REFILLS};
use crate::object::tcb::queue::TcbQueue;
use crate::object::tcb::{Tcb, ThreadState, FLAG_FPU_DISABLED};
use crate::object::{endpoint, notification, vspace};
use core::cell::Cell;

/// Priorities 0..=255.
pub const NUM_PRIORITIES: usize = 256;
pub const MAX_PRIO: u64 = (NUM_PRIORITIES - 1) as u64;
/// Domains of this configuration.
pub const NUM_DOMAINS: u64 = 1;
/// Entries of the domain schedule (seL4's `CONFIG_NUM_DOMAIN_SCHEDULES`).
pub const DOMAIN_SCHEDULE_LENGTH: usize = 2;
/// Longest duration a domain schedule entry holds (56 bits).
pub const DSCHED_MAX_DURATION: u64 = u64::MAX >> 8;
/// The kernel's worst-case execution time estimate on this platform, in
/// microseconds (seL4's `KERNEL_WCET` for qemu-arm-virt).
pub const KERNEL_WCET_US: u64 = 10;
/// The root task's and the idle thread's time slice (seL4's
/// `CONFIG_BOOT_THREAD_TIME_SLICE`, milliseconds).
pub const BOOT_THREAD_TIME_SLICE_MS: u64 = 5;

const L2_WORDS: usize = NUM_PRIORITIES / 64;

/// What [`schedule`] does next (seL4's `ksSchedulerAction`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    ResumeCurrent,
    ChooseNew,
    SwitchTo(Tcb),
}

/// The scheduler's globals, each a `Cell` (see `crate::global`): read
/// and written through the shared reference [`with`] hands out.
#[derive(Debug)]
pub struct SchedState {
    pub cur_thread: Cell<Option<Tcb>>,
    pub idle_thread: Cell<Option<Tcb>>,
    pub action: Cell<Action>,
    pub cur_sc: Cell<Option<Sc>>,
    pub idle_sc: Cell<Option<Sc>>,
    /// Ticks at the last kernel entry.
    pub cur_time: Cell<u64>,
    /// Ticks consumed since the last commit.
    pub consumed: Cell<u64>,
    /// The timer must be reprogrammed before leaving the kernel.
    pub reprogram: Cell<bool>,
    pub release_queue: Cell<TcbQueue>,
    l1_bitmap: Cell<u64>,
    l2_bitmap: [Cell<u64>; L2_WORDS],
    ready: [Cell<TcbQueue>; NUM_PRIORITIES],
    pub fpu_owner: Cell<Option<Tcb>>,
    pub cur_domain: Cell<u64>,
    pub domain_time: Cell<u64>,
    pub dom_schedule: [Cell<u64>; DOMAIN_SCHEDULE_LENGTH],
    pub dom_schedule_idx: Cell<usize>,
    pub dom_schedule_start: Cell<usize>,
    /// [`min_budget`] once computed (0 until then): the conversion takes
    /// a few divisions, and every budget check needs it.
    min_budget: Cell<u64>,
}

impl SchedState {
    const fn new() -> SchedState {
        SchedState {
            cur_thread: Cell::new(None),
            idle_thread: Cell::new(None),
            action: Cell::new(Action::ResumeCurrent),
            cur_sc: Cell::new(None),
            idle_sc: Cell::new(None),
            cur_time: Cell::new(0),
            consumed: Cell::new(0),
            reprogram: Cell::new(false),
            release_queue: Cell::new(TcbQueue::EMPTY),
            l1_bitmap: Cell::new(0),
            l2_bitmap: [const { Cell::new(0) }; L2_WORDS],
            ready: [const { Cell::new(TcbQueue::EMPTY) }; NUM_PRIORITIES],
            fpu_owner: Cell::new(None),
            cur_domain: Cell::new(0),
            domain_time: Cell::new(DSCHED_MAX_DURATION),
            dom_schedule: [Cell::new(DSCHED_MAX_DURATION), Cell::new(0)],
            dom_schedule_idx: Cell::new(0),
            dom_schedule_start: Cell::new(0),
            min_budget: Cell::new(0),
        }
    }

    /// Every field back to its value at boot.
    fn reset(&self) {
        let n = SchedState::new();
        self.cur_thread.set(n.cur_thread.get());
        self.idle_thread.set(n.idle_thread.get());
        self.action.set(n.action.get());
        self.cur_sc.set(n.cur_sc.get());
        self.idle_sc.set(n.idle_sc.get());
        self.cur_time.set(n.cur_time.get());
        self.consumed.set(n.consumed.get());
        self.reprogram.set(n.reprogram.get());
        self.release_queue.set(n.release_queue.get());
        self.l1_bitmap.set(n.l1_bitmap.get());
        for (a, b) in self.l2_bitmap.iter().zip(&n.l2_bitmap) {
            a.set(b.get());
        }
        for (a, b) in self.ready.iter().zip(&n.ready) {
            a.set(b.get());
        }
        self.fpu_owner.set(n.fpu_owner.get());
        self.cur_domain.set(n.cur_domain.get());
        self.domain_time.set(n.domain_time.get());
        for (a, b) in self.dom_schedule.iter().zip(&n.dom_schedule) {
            a.set(b.get());
        }
        self.dom_schedule_idx.set(n.dom_schedule_idx.get());
        self.dom_schedule_start.set(n.dom_schedule_start.get());
        self.min_budget.set(n.min_budget.get());
    }
}

crate::kernel_cells!(
    static SCHED: SchedState = SchedState::new();
);

/// Host tests: the scheduler's globals as at boot (kernel globals outlive
/// one test case on its thread).
#[cfg(test)]
pub fn reset_for_test() {
    with(|s| s.reset());
}

/// Runs `f` on the scheduler state (shared: its fields are cells).
#[inline(always)]
pub fn with<R>(f: impl FnOnce(&SchedState) -> R) -> R {
    SCHED.with(f)
}

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

pub fn us_to_ticks(us: u64) -> u64 {
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
    u64::MAX - 5 * us_to_ticks(max_period_us())
}

/// The least budget a thread needs to enter and leave the kernel (computed
/// once: the clock's frequency is fixed).
#[inline]
pub fn min_budget() -> u64 {
    let m = with(|s| s.min_budget.get());
    if m != 0 {
        return m;
    }
    let m = 2 * us_to_ticks(KERNEL_WCET_US);
    with(|s| s.min_budget.set(m));
    m
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
// Accessors.

/// The current thread (the idle thread when nothing else runs).
#[inline(always)]
pub fn cur_thread() -> Tcb {
    with(|s| s.cur_thread.get()).expect("scheduler initialised")
}

pub fn cur_thread_opt() -> Option<Tcb> {
    with(|s| s.cur_thread.get())
}

#[inline]
pub fn idle_thread() -> Option<Tcb> {
    with(|s| s.idle_thread.get())
}

#[inline]
pub fn is_idle(t: Tcb) -> bool {
    idle_thread() == Some(t)
}

#[inline]
pub fn cur_sc() -> Option<Sc> {
    with(|s| s.cur_sc.get())
}

pub fn action() -> Action {
    with(|s| s.action.get())
}

/// Whether the scheduler action is to switch to `t`.
pub fn action_is(t: Tcb) -> bool {
    action() == Action::SwitchTo(t)
}

/// The scheduling context of a thread.
pub fn sc_of(t: Tcb) -> Option<Sc> {
    Sc::from_link(t.sched_context())
}

/// Runnable, with an active scheduling context, and not waiting for a
/// refill (seL4's `isSchedulable`).
pub fn is_schedulable(t: Tcb) -> bool {
    t.state().is_runnable() && sc_of(t).is_some_and(|sc| sc.is_active()) && !t.in_release_queue()
}

// ---------------------------------------------------------------------------
// Ready queues.

fn add_to_bitmap(s: &SchedState, prio: usize) {
    let l1 = prio >> 6;
    s.l1_bitmap.set(s.l1_bitmap.get() | 1 << l1);
    s.l2_bitmap[l1].set(s.l2_bitmap[l1].get() | 1 << (prio & 63));
}

fn remove_from_bitmap(s: &SchedState, prio: usize) {
    let l1 = prio >> 6;
    let l2 = s.l2_bitmap[l1].get() & !(1 << (prio & 63));
    s.l2_bitmap[l1].set(l2);
    if l2 == 0 {
        s.l1_bitmap.set(s.l1_bitmap.get() & !(1 << l1));
    }
}

#[inline(always)]
fn highest_prio(s: &SchedState) -> Option<u64> {
    let l1_bitmap = s.l1_bitmap.get();
    if l1_bitmap == 0 {
        return None;
    }
    let l1 = 63 - l1_bitmap.leading_zeros() as usize;
    let l2 = 63 - s.l2_bitmap[l1].get().leading_zeros() as u64;
    Some(((l1 as u64) << 6) | l2)
}

/// The highest priority with a ready thread.
pub fn highest_ready_prio() -> Option<u64> {
    with(highest_prio)
}

/// No ready thread outranks `prio` (seL4's `isHighestPrio`).
pub fn is_highest_prio(prio: u64) -> bool {
    with(|s| highest_prio(s).is_none_or(|h| prio >= h))
}

fn prio_index(t: Tcb) -> usize {
    (t.priority() as usize).min(NUM_PRIORITIES - 1)
}

/// Puts a schedulable thread at the head of its ready queue (seL4's
/// `tcbSchedEnqueue`).
pub fn tcb_sched_enqueue(t: Tcb) {
    if t.is_queued() {
        return;
    }
    let p = prio_index(t);
    with(|s| {
        let q = s.ready[p].get();
        if q.is_empty() {
            add_to_bitmap(s, p);
        }
        s.ready[p].set(q.prepend(t));
    });
    t.set_queued(true);
}

/// Puts a schedulable thread at the end of its ready queue (seL4's
/// `tcbSchedAppend`).
pub fn tcb_sched_append(t: Tcb) {
    if t.is_queued() {
        return;
    }
    let p = prio_index(t);
    with(|s| {
        let q = s.ready[p].get();
        if q.is_empty() {
            add_to_bitmap(s, p);
        }
        s.ready[p].set(q.append(t));
    });
    t.set_queued(true);
}

/// Takes a thread off its ready queue, if it is on one (seL4's
/// `tcbSchedDequeue`).
pub fn tcb_sched_dequeue(t: Tcb) {
    if !t.is_queued() {
        return;
    }
    let p = prio_index(t);
    with(|s| {
        let q = s.ready[p].get().remove(t);
        s.ready[p].set(q);
        if q.is_empty() {
            remove_from_bitmap(s, p);
        }
    });
    t.set_queued(false);
}

/// The ready queue of a priority (tests and DebugDumpScheduler).
pub fn ready_queue(prio: u64) -> TcbQueue {
    with(|s| s.ready[(prio as usize).min(NUM_PRIORITIES - 1)].get())
}

// ---------------------------------------------------------------------------
// The release queue: threads whose head refill is not yet due, ordered by
// its release time.

fn ready_time(t: Tcb) -> u64 {
    sc_of(t).map_or(0, |sc| sc.head().time)
}

/// Takes a thread off the release queue, if it is on it (seL4's
/// `tcbReleaseRemove`).
pub fn tcb_release_remove(t: Tcb) {
    if !t.in_release_queue() {
        return;
    }
    with(|s| {
        let q = s.release_queue.get();
        if q.head == Some(t) {
            s.reprogram.set(true);
        }
        s.release_queue.set(q.remove(t));
    });
    t.set_in_release_queue(false);
}

/// Puts a thread into the release queue by its head refill's time (seL4's
/// `tcbReleaseEnqueue`).
pub fn tcb_release_enqueue(t: Tcb) {
    debug_assert!(!t.in_release_queue() && !t.is_queued());
    let new_time = ready_time(t);
    let q = with(|s| s.release_queue.get());
    let nq = match (q.head, q.end) {
        (Some(h), Some(e)) if new_time >= ready_time(h) => {
            if ready_time(e) <= new_time {
                q.append(t)
            } else {
                let mut after = h;
                while new_time >= ready_time(after) {
                    after = after.sched_next().expect("the end is later");
                }
                q.insert_before(t, after)
            }
        }
        _ => q.prepend(t),
    };
    with(|s| {
        if nq.head != s.release_queue.get().head {
            s.reprogram.set(true);
        }
        s.release_queue.set(nq);
    });
    t.set_in_release_queue(true);
}

/// Parks the thread of `sc` in the release queue until its refill is due
/// (seL4's `postpone`).
pub fn postpone(sc: Sc) {
    let Some(t) = Tcb::from_link(sc.tcb()) else {
        return;
    };
    tcb_sched_dequeue(t);
    tcb_release_enqueue(t);
    set_reprogram();
}

/// Releases every thread whose refill has come due (seL4's `awaken`).
pub fn awaken() {
    loop {
        let head = with(|s| s.release_queue.get().head);
        let Some(t) = head else {
            return;
        };
        if !sc_of(t).is_some_and(|sc| sc.refill_ready()) {
            return;
        }
        tcb_release_remove(t);
        possible_switch_to(t);
    }
}

// ---------------------------------------------------------------------------
// Thread states and scheduler actions.

/// Sets a thread's state and notes if the current thread can no longer
/// run (seL4's `setThreadState`).
pub fn set_thread_state(t: Tcb, st: ThreadState) {
    t.set_state_raw(st);
    schedule_tcb(t);
}

/// seL4's `scheduleTCB`.
pub fn schedule_tcb(t: Tcb) {
    let resume = with(|s| s.cur_thread.get() == Some(t) && s.action.get() == Action::ResumeCurrent);
    if resume && !is_schedulable(t) {
        with(|s| s.action.set(Action::ChooseNew));
    }
}

/// The current thread may no longer be the right one to run (seL4's
/// `rescheduleRequired`).
pub fn reschedule_required() {
    if let Action::SwitchTo(t) = action() {
        if is_schedulable(t) {
            tcb_sched_enqueue(t);
        }
    }
    with(|s| s.action.set(Action::ChooseNew));
}

/// A thread became runnable: run it next if the scheduler has nothing
/// else in mind, else queue it (seL4's `possibleSwitchTo`).
pub fn possible_switch_to(t: Tcb) {
    if t.sched_context() == 0 || t.in_release_queue() {
        return;
    }
    let (dom, act) = with(|s| (s.cur_domain.get(), s.action.get()));
    if dom != t.domain() {
        tcb_sched_enqueue(t);
    } else if act != Action::ResumeCurrent {
        reschedule_required();
        tcb_sched_enqueue(t);
    } else {
        with(|s| s.action.set(Action::SwitchTo(t)));
    }
}

/// Changes a thread's priority, moving it in whatever queue it is in
/// (seL4's `setPriority`).
pub fn set_priority(t: Tcb, prio: u64) {
    match t.state() {
        ThreadState::Running | ThreadState::Restart => {
            if t.is_queued() || cur_thread_opt() == Some(t) {
                tcb_sched_dequeue(t);
                t.set_priority_raw(prio);
                if is_schedulable(t) {
                    tcb_sched_enqueue(t);
                }
                reschedule_required();
            } else {
                t.set_priority_raw(prio);
            }
        }
        ThreadState::BlockedOnReceive | ThreadState::BlockedOnSend => {
            t.set_priority_raw(prio);
            endpoint::reorder(endpoint::Ep::new(t.blocking_object()), t);
        }
        ThreadState::BlockedOnNotification => {
            t.set_priority_raw(prio);
            notification::reorder(notification::Ntfn::new(t.blocking_object()), t);
        }
        _ => t.set_priority_raw(prio),
    }
}

/// Moves a thread to domain `dom` (seL4's `setDomain`).
pub fn set_domain(t: Tcb, dom: u64) {
    if dom != with(|s| s.cur_domain.get()) {
        fpu_release(t);
    }
    tcb_sched_dequeue(t);
    t.set_domain_raw(dom);
    if is_schedulable(t) {
        tcb_sched_enqueue(t);
    }
    if cur_thread_opt() == Some(t) {
        reschedule_required();
    }
}

/// Stops a thread (seL4's `suspend`).
pub fn suspend(t: Tcb) {
    crate::ipc::cancel_ipc(t);
    if t.state() == ThreadState::Running {
        // A running thread's fault address may be stale; make it the resume
        // address, whichever way the thread is started again.
        t.update_restart_pc();
    }
    tcb_sched_dequeue(t);
    tcb_release_remove(t);
    sched_context::cancel_yield_to(t);
    set_thread_state(t, ThreadState::Inactive);
}

/// Starts a stopped thread again at its restart address (seL4's
/// `restart`).
pub fn restart(t: Tcb) {
    if !t.state().is_stopped() {
        return;
    }
    crate::ipc::cancel_ipc(t);
    set_thread_state(t, ThreadState::Restart);
    if let Some(sc) = sc_of(t) {
        if sc.is_sporadic() && Some(sc) != cur_sc() {
            sched_context::refill_unblock_check(sc);
        }
        sched_context::resume(sc);
    }
    if is_schedulable(t) {
        possible_switch_to(t);
    }
}

// ---------------------------------------------------------------------------
// Choosing and switching.

/// Makes `t` the current thread: its address space, its FPU state, out of
/// the ready queue (seL4's `switchToThread`).
pub fn switch_to_thread(t: Tcb) {
    vspace::set_vm_root_raw(t.slot(crate::object::tcb::VTABLE).raw_cap());
    lazy_fpu_restore(t);
    tcb_sched_dequeue(t);
    with(|s| s.cur_thread.set(Some(t)));
}

// ---------------------------------------------------------------------------
// What the fast paths ask of the scheduler (see `crate::fastpath`).

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
                && s.release_queue
                    .get()
                    .head
                    .is_none_or(|t| !sc_of(t).is_some_and(|sc| sc.refill_ready()))
        },
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
    vspace::set_ready_root(root);
    lazy_fpu_restore(t);
    with(|s| s.cur_thread.set(Some(t)));
}

fn switch_to_idle_thread() {
    vspace::set_vm_root(&Cap::Null);
    with(|s| s.cur_thread.set(s.idle_thread.get()));
}

fn choose_thread() {
    match highest_ready_prio() {
        Some(p) => {
            let t = ready_queue(p).head.expect("bitmap and queues agree");
            switch_to_thread(t);
        }
        None => switch_to_idle_thread(),
    }
}

fn next_domain() {
    with(|s| {
        let mut idx = s.dom_schedule_idx.get() + 1;
        if idx >= DOMAIN_SCHEDULE_LENGTH || s.dom_schedule[idx].get() == 0 {
            idx = s.dom_schedule_start.get();
        }
        s.dom_schedule_idx.set(idx);
        s.reprogram.set(true);
        let e = s.dom_schedule[idx].get();
        s.cur_domain.set(e >> 56);
        s.domain_time.set(e & DSCHED_MAX_DURATION);
    });
    crate::preempt::reset_work_units();
}

fn schedule_choose_new_thread() {
    if with(|s| s.domain_time.get()) == 0 {
        switch_local_fpu_owner(None);
        next_domain();
    }
    choose_thread();
}

/// Picks the thread to run and prepares to leave the kernel: commits
/// consumed time and reprograms the timer if needed (seL4's `schedule`).
pub fn schedule() {
    awaken();
    let act = action();
    if act != Action::ResumeCurrent {
        let cur = cur_thread();
        let was_runnable = is_schedulable(cur);
        if was_runnable {
            tcb_sched_enqueue(cur);
        }
        match act {
            Action::SwitchTo(cand) => {
                let fastfail = is_idle(cur) || cand.priority() < cur.priority();
                if fastfail && !is_highest_prio(cand.priority()) {
                    tcb_sched_enqueue(cand);
                    with(|s| s.action.set(Action::ChooseNew));
                    schedule_choose_new_thread();
                } else if was_runnable && cand.priority() == cur.priority() {
                    // The current thread went to the head of the queue; the
                    // candidate goes behind it.
                    tcb_sched_append(cand);
                    with(|s| s.action.set(Action::ChooseNew));
                    schedule_choose_new_thread();
                } else {
                    switch_to_thread(cand);
                }
            }
            _ => schedule_choose_new_thread(),
        }
    }
    with(|s| s.action.set(Action::ResumeCurrent));
    switch_sched_context();
    if with(|s| s.reprogram.replace(false)) {
        set_next_interrupt();
    }
}

fn switch_sched_context() {
    let cur = cur_thread();
    let next = sc_of(cur);
    if cur_sc() != next {
        set_reprogram();
        if let Some(sc) = next {
            if !sc.is_sporadic() {
                sched_context::refill_unblock_check(sc);
            }
        }
    }
    if with(|s| s.reprogram.get()) {
        commit_time();
    }
    with(|s| s.cur_sc.set(next));
}

/// Prepares the current thread to run after [`schedule`]: completes a
/// YieldTo, turns Restart into Running at the restart address (seL4's
/// `activateThread`).
pub fn activate_thread() {
    let cur = cur_thread();
    if cur.yield_to() != 0 {
        sched_context::complete_yield_to(cur);
    }
    match cur.state() {
        ThreadState::Running | ThreadState::Idle => {}
        ThreadState::Restart => {
            cur.set_next_pc(cur.restart_pc());
            set_thread_state(cur, ThreadState::Running);
        }
        st => {
            debug_assert!(false, "the current thread is {st:?}");
        }
    }
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
        s.consumed.set(s.consumed.get() + now.wrapping_sub(prev));
    });
}

/// Charges the consumed time to the current SC (seL4's `commitTime`).
pub fn commit_time() {
    let (sc, idle_sc, consumed) = with(|s| (s.cur_sc.get(), s.idle_sc.get(), s.consumed.get()));
    if let Some(sc) = sc {
        if sc.is_active() && Some(sc) != idle_sc {
            if consumed > 0 {
                if sc.is_round_robin() {
                    charge_round_robin(sc, consumed);
                } else {
                    refill_budget_check(sc, consumed);
                }
            }
            sc.set_consumed(sc.consumed().wrapping_add(consumed));
        }
    }
    with(|s| s.consumed.set(0));
}

/// A round-robin SC moves consumed time from its head to its tail.
fn charge_round_robin(sc: Sc, consumed: u64) {
    sched_context::move_round_robin(sc, consumed);
}

/// Whether the current thread may go on: its head refill covers what it
/// consumed plus a kernel exit. If not, the time is charged and the thread
/// ends its time slice (seL4's `checkBudget`).
pub fn check_budget() -> bool {
    let (sc, consumed) = with(|s| (s.cur_sc.get(), s.consumed.get()));
    if sc.is_some_and(|sc| sc.refill_sufficient(consumed)) {
        return true;
    }
    charge_budget(consumed, true);
    false
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
    let cur = cur_thread();
    let now = cur_time();
    let mut next = now.wrapping_add(sc_of(cur).map_or(0, |sc| sc.head().amount));
    if let Some(h) = with(|s| s.release_queue.get().head) {
        next = next.min(ready_time(h));
    }
    machine::set_deadline(next);
}

// ---------------------------------------------------------------------------
// FPU ownership.

/// Makes the FPU state of `new` live, saving the previous owner's (seL4's
/// `switchLocalFpuOwner`).
pub fn switch_local_fpu_owner(new: Option<Tcb>) {
    machine::fpu_enable(true);
    if let Some(owner) = with(|s| s.fpu_owner.get()) {
        machine::fpu_save(owner.fpu_paddr());
    }
    match new {
        Some(t) => machine::fpu_load(t.fpu_paddr()),
        None => machine::fpu_enable(false),
    }
    with(|s| s.fpu_owner.set(new));
}

/// Prepares the FPU for `t` before it runs (seL4's `lazyFPURestore`, but
/// lazier): on if `t` may use it and its state is in the registers, else
/// off, so that its first use traps to [`handle_fpu_trap`].
#[inline(always)]
pub fn lazy_fpu_restore(t: Tcb) {
    let live = t.flags() & FLAG_FPU_DISABLED == 0 && with(|s| s.fpu_owner.get()) == Some(t);
    machine::fpu_enable(live);
}

/// The current thread used FP/SIMD while it was off: if the thread may use
/// the FPU, its state becomes live (the owner's saved first) and the
/// instruction runs again when the thread resumes; returns false if the
/// thread runs with `seL4_TCBFlag_fpuDisabled`, whose trap is a fault.
/// Nothing else happens (no time is charged, nothing is scheduled): to the
/// rest of the kernel the thread simply ran on.
pub fn handle_fpu_trap() -> bool {
    let cur = cur_thread();
    if cur.flags() & FLAG_FPU_DISABLED != 0 || is_idle(cur) {
        return false;
    }
    if with(|s| s.fpu_owner.get()) == Some(cur) {
        machine::fpu_enable(true);
    } else {
        switch_local_fpu_owner(Some(cur));
    }
    true
}

/// A thread goes away or stops using the FPU: save its state and forget it
/// as the owner (seL4's `fpuRelease`).
pub fn fpu_release(t: Tcb) {
    if with(|s| s.fpu_owner.get()) == Some(t) {
        switch_local_fpu_owner(None);
    }
}

// ---------------------------------------------------------------------------
// Boot.

/// Sets up the idle thread in the given TCB and SC memory (zeroed), and the
/// scheduler state, with `first` to be switched to at the first
/// [`schedule`] (seL4's `create_idle_thread` and `init_core_state`).
pub fn init(idle_tcb: u64, idle_sc: u64, first: Option<Tcb>) {
    let idle = Tcb::new(idle_tcb);
    let sc = Sc::new(idle_sc);
    idle.set_flags(FLAG_FPU_DISABLED);
    idle.set_state_raw(ThreadState::Idle);
    idle.set_name(b"idle_thread");
    with(|s| {
        s.reset();
        s.idle_thread.set(Some(idle));
        s.idle_sc.set(Some(sc));
    });
    crate::object::tcb::debug_reset();
    crate::preempt::set_preemption_check(Some(crate::syscall::preemption_check));
    configure_sched_context(idle, sc, us_to_ticks(BOOT_THREAD_TIME_SLICE_MS * 1000));
    if let Some(f) = first {
        crate::object::tcb::debug_append(f);
    }
    crate::object::tcb::debug_append(idle);
    with(|s| {
        s.action
            .set(first.map_or(Action::ChooseNew, Action::SwitchTo));
        s.cur_thread.set(Some(idle));
        s.cur_sc.set(Some(sc));
        s.consumed.set(0);
        s.reprogram.set(true);
    });
}

/// Binds a boot thread to a round-robin SC with `timeslice` ticks (seL4's
/// `configure_sched_context`).
pub fn configure_sched_context(t: Tcb, sc: Sc, timeslice: u64) {
    t.set_sched_context(sc.paddr());
    refill_new(sc, MIN_REFILLS, timeslice, 0);
    sc.set_tcb(t.paddr());
}

/// The boot's last step: pick the first thread (seL4 ends `init_kernel`
/// with this).
pub fn start() {
    with(|s| {
        s.cur_time.set(machine::now());
        s.consumed.set(0);
    });
    schedule();
    activate_thread();
}
