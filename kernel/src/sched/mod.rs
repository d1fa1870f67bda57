//! # The MCS scheduler: current thread, ready queues, time and budgets
//!
//! This module owns the scheduler's kernel globals ([`SchedState`]): the
//! current thread and scheduling context, the scheduler action, the 256
//! ready queues with their two-level bitmap, the release queue of threads
//! waiting for budget, the kernel's notion of time, the FPU owner and the
//! domain schedule. Its functions are seL4's `thread.c` and the
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
//! ## Where things are
//!
//! - this module: the state, the thread-state changes and scheduler
//!   actions, [`schedule`] itself, and boot;
//! - [`queues`]: the ready queues with their bitmap, and the release queue;
//! - [`time`]: ticks and microseconds, and budgets (charging consumed time,
//!   ending time slices, programming the timer);
//! - [`domain`]: the domain schedule;
//! - [`fpu`]: lazy FP/SIMD switching;
//! - [`fast`]: what the IPC fast paths ask of the scheduler;
//! - [`fast_block`]: what the Recv fast path asks of it.

mod domain;
mod fast;
mod fast_block;
mod fpu;
mod queues;
mod time;

use domain::next_domain;
pub(crate) use domain::{
    check_domain_time, cur_domain, cur_domain_expired, entry as domain_entry,
    DOMAIN_SCHEDULE_LENGTH, DSCHED_MAX_DURATION, NUM_DOMAINS,
};
pub(crate) use fast::*;
pub(crate) use fast_block::*;
pub(crate) use fpu::*;
pub(crate) use queues::*;
pub(crate) use time::*;

use crate::cap::Cap;
use crate::machine;
use crate::object::sched_context::{self, refill_new, Sc, MIN_REFILLS};
use crate::object::tcb::queue::TcbQueue;
use crate::object::tcb::{Tcb, ThreadState, FLAG_FPU_DISABLED};
use crate::object::{endpoint, notification, vcpu, vspace};
use core::cell::Cell;

/// Priorities 0..=255.
pub const NUM_PRIORITIES: usize = 256;
pub const MAX_PRIO: u64 = (NUM_PRIORITIES - 1) as u64;
/// The kernel's worst-case execution time estimate on this platform, in
/// microseconds (seL4's `KERNEL_WCET` for qemu-arm-virt).
pub const KERNEL_WCET_US: u64 = 10;
/// The root task's and the idle thread's time slice (seL4's
/// `CONFIG_BOOT_THREAD_TIME_SLICE`, milliseconds).
pub const BOOT_THREAD_TIME_SLICE_MS: u64 = 5;

const L2_WORDS: usize = NUM_PRIORITIES / 64;
/// Ready queues: one per domain and priority.
const READY_QUEUES: usize = NUM_DOMAINS as usize * NUM_PRIORITIES;

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
    /// Per domain: which groups of 64 priorities have a ready thread.
    l1_bitmap: [Cell<u64>; NUM_DOMAINS as usize],
    /// Per domain and group: which priorities have a ready thread.
    l2_bitmap: [Cell<u64>; NUM_DOMAINS as usize * L2_WORDS],
    /// The ready queue of (domain, priority) at `domain * 256 + priority`.
    ready: [Cell<TcbQueue>; READY_QUEUES],
    pub fpu_owner: Cell<Option<Tcb>>,
    pub cur_domain: Cell<u64>,
    pub domain_time: Cell<u64>,
    pub dom_schedule: [Cell<u64>; DOMAIN_SCHEDULE_LENGTH],
    pub dom_schedule_idx: Cell<usize>,
    pub dom_schedule_start: Cell<usize>,
    /// [`min_budget`], set by [`init`]: the conversion takes a few
    /// divisions, and every budget check needs it.
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
            l1_bitmap: [const { Cell::new(0) }; NUM_DOMAINS as usize],
            l2_bitmap: [const { Cell::new(0) }; NUM_DOMAINS as usize * L2_WORDS],
            ready: [const { Cell::new(TcbQueue::EMPTY) }; READY_QUEUES],
            fpu_owner: Cell::new(None),
            cur_domain: Cell::new(0),
            domain_time: Cell::new(DSCHED_MAX_DURATION),
            dom_schedule: domain::boot_schedule(),
            dom_schedule_idx: Cell::new(0),
            dom_schedule_start: Cell::new(0),
            min_budget: Cell::new(0),
        }
    }

    /// Every field back to its value at boot (host builds: see [`init`]).
    #[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
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
        for (a, b) in self.l1_bitmap.iter().zip(&n.l1_bitmap) {
            a.set(b.get());
        }
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
#[inline]
pub fn sc_of(t: Tcb) -> Option<Sc> {
    Sc::from_link(t.sched_context())
}

/// Runnable, with an active scheduling context, and not waiting for a
/// refill (seL4's `isSchedulable`).
#[inline]
pub fn is_schedulable(t: Tcb) -> bool {
    schedulable(t)
}

/// [`is_schedulable`], always inline (the interrupt fast path).
#[inline(always)]
pub(crate) fn schedulable(t: Tcb) -> bool {
    t.state().is_runnable() && sc_of(t).is_some_and(|sc| sc.is_active()) && !t.in_release_queue()
}

// ---------------------------------------------------------------------------
// Thread states and scheduler actions.

/// Sets a thread's state and notes if the current thread can no longer
/// run (seL4's `setThreadState`).
pub fn set_thread_state(t: Tcb, st: ThreadState) {
    t.set_state_raw(st);
    schedule_tcb(t);
}

/// seL4's `scheduleTCB`. Out of line: inlined, its two reads of the
/// scheduler and the schedulability test were ~130 bytes at each of 17
/// slow-path callers (issue 15's code size).
#[inline(never)]
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
                enqueue_if_schedulable(t);
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

/// Queues `t` if it can run, and says whether it did: the requeue of
/// SetPriority, SetDomain and an SC's binding (TCB, domain and
/// SchedContext invocations), out of line so that `tcb_sched_enqueue` is
/// inlined once for the three (~170 bytes a copy).
#[inline(never)]
pub fn enqueue_if_schedulable(t: Tcb) -> bool {
    let schedulable = is_schedulable(t);
    if schedulable {
        tcb_sched_enqueue(t);
    }
    schedulable
}

/// Moves a thread to domain `dom` (seL4's `setDomain`).
pub fn set_domain(t: Tcb, dom: u64) {
    if dom != with(|s| s.cur_domain.get()) {
        // seL4's `prepareSetDomain`.
        vcpu::flush_if_current(t);
        fpu_release(t);
    }
    tcb_sched_dequeue(t);
    t.set_domain_raw(dom);
    enqueue_if_schedulable(t);
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

/// Makes `t` the current thread: its VCPU (if any), its address space,
/// its FPU state, out of the ready queue (seL4's `switchToThread`).
pub fn switch_to_thread(t: Tcb) {
    crate::benchmark::switch(t);
    vspace::set_vm_root_raw(t.slot(crate::object::tcb::VTABLE).raw_cap());
    lazy_fpu_restore(t);
    vcpu::switch_to(t);
    tcb_sched_dequeue(t);
    with(|s| s.cur_thread.set(Some(t)));
}

fn switch_to_idle_thread() {
    if septa_abi::CONFIG.track_utilisation() {
        crate::benchmark::switch(idle_thread().expect("scheduler initialised"));
    }
    vcpu::switch_to_idle();
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

fn schedule_choose_new_thread() {
    if with(|s| s.domain_time.get()) == 0 {
        // seL4's `prepareNextDomain`.
        vcpu::flush();
        switch_local_fpu_owner(None);
        next_domain();
    }
    choose_thread();
}

/// Picks the thread to run and prepares to leave the kernel: commits
/// consumed time and reprograms the timer if needed (seL4's `schedule`).
pub fn schedule() {
    awaken();
    check_domain_time();
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

// Inline in both of its callers (`schedule` and `schedule_after_signal`):
// out of line it costs every slow-path schedule a call (ppc-active +15).
#[inline(always)]
fn switch_sched_context() {
    let cur = cur_thread();
    let next = sc_of(cur);
    if cur_sc() != next {
        set_reprogram();
        if let Some(sc) = next {
            // A round-robin SC's check does nothing: not called for it.
            if !sc.is_sporadic() && !sc.is_round_robin() {
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
        // The target boots once, and its state is still the static's
        // initial value (`SchedState::new`); resetting it built a second
        // copy of the 4,096 ready queues and copied it in (about 50,000
        // instructions of boot). Host tests boot again and again on one
        // thread.
        #[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
        s.reset();
        s.idle_thread.set(Some(idle));
        s.idle_sc.set(Some(sc));
    });
    crate::object::tcb::debug_reset();
    crate::preempt::set_preemption_check(Some(crate::syscall::preemption_check));
    let min_budget = time::compute_min_budget();
    with(|s| s.min_budget.set(min_budget));
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
