//! # Utilisation tracking (benchmark configuration)
//!
//! seL4's `KernelBenchmarks=track_utilisation`, as Microkit's benchmark
//! configuration builds it: per thread, the cycles it was scheduled for,
//! how often it was scheduled, the cycles it spent in the kernel and how
//! often it entered it; per core, the same totals. Time is the PMU cycle
//! counter (PMCCNTR_EL0, seL4's `timestamp()`), read at every kernel entry
//! ([`enter`], seL4's `ksEnter` in `c_entry_hook`) and exit ([`exit`],
//! `c_exit_hook`); a switch of threads ([`switch`],
//! `benchmark_utilisation_switch`) closes the old thread's span at the
//! entry's time. Counting runs from BenchmarkResetLog to
//! BenchmarkFinalizeLog, and BenchmarkGetThreadUtilisation copies one
//! thread's counters and the totals into the caller's IPC buffer (the
//! system calls: [`handle_syscall`]).
//!
//! In the other configurations every function here is a no-op the
//! compiler removes (`CONFIG.track_utilisation()` is a constant), and the
//! system calls are unknown ones.
//!
//! A thread's counters live in its TCB at [`OFFSET`], past everything
//! else of the 2 KiB TCB (seL4 puts them at the end of `tcb_t`).

use core::cell::Cell;

use crate::cap::Cap;
use crate::context::Reg;
use crate::object::tcb::{self, Tcb};
use crate::{machine, memory, sched};
use septa_abi::benchmark_utilisation as index;
use septa_abi::syscall as sys;
use septa_abi::CONFIG;

/// Where a thread's counters start in its TCB.
pub const OFFSET: u64 = 0x780;
const START: u64 = OFFSET;
const UTILISATION: u64 = OFFSET + 8;
const SCHEDULES: u64 = OFFSET + 16;
const KERNEL_UTILISATION: u64 = OFFSET + 24;
const KERNEL_ENTRIES: u64 = OFFSET + 32;
const END: u64 = OFFSET + 40;

const _: () = assert!(OFFSET >= tcb::FIELDS_END && END <= 0x800);

/// The core's counters (seL4's `benchmark_*` node state and `ksEnter`),
/// cells (see `crate::global`): the entry and exit hooks run on every
/// kernel entry.
struct Totals {
    enabled: Cell<bool>,
    enter: Cell<u64>,
    start: Cell<u64>,
    end: Cell<u64>,
    kernel_time: Cell<u64>,
    kernel_entries: Cell<u64>,
    schedules: Cell<u64>,
}

impl Totals {
    const fn new() -> Totals {
        Totals {
            enabled: Cell::new(false),
            enter: Cell::new(0),
            start: Cell::new(0),
            end: Cell::new(0),
            kernel_time: Cell::new(0),
            kernel_entries: Cell::new(0),
            schedules: Cell::new(0),
        }
    }
}

crate::kernel_cells!(
    static TOTALS: Totals = Totals::new();
);

/// Forgets an earlier test's counting (host tests run many systems on one
/// test thread).
#[cfg(test)]
pub fn reset_for_test() {
    totals(|s| {
        s.enabled.set(false);
        for c in [
            &s.enter,
            &s.start,
            &s.end,
            &s.kernel_time,
            &s.kernel_entries,
            &s.schedules,
        ] {
            c.set(0);
        }
    });
}

#[inline(always)]
fn totals<R>(f: impl FnOnce(&Totals) -> R) -> R {
    TOTALS.with(f)
}

#[inline(always)]
fn enabled() -> bool {
    totals(|s| s.enabled.get())
}

#[inline(never)]
fn get(t: Tcb, off: u64) -> u64 {
    memory::read::<u64>(t.paddr() + off)
}

#[inline(never)]
fn set(t: Tcb, off: u64, v: u64) {
    memory::write::<u64>(t.paddr() + off, v)
}

fn add(t: Tcb, off: u64, v: u64) {
    set(t, off, get(t, off).wrapping_add(v))
}

/// A kernel entry begins (first thing of every entry).
#[inline(always)]
pub fn enter() {
    if CONFIG.track_utilisation() {
        let now = machine::cycles();
        totals(|s| s.enter.set(now));
    }
}

/// A kernel exit into `cur` (the current thread, maybe the idle one)
/// (last thing before every exit).
#[inline(always)]
pub fn exit(cur: Tcb) {
    if CONFIG.track_utilisation() && enabled() {
        exit_counting(cur);
    }
}

#[inline(never)]
fn exit_counting(cur: Tcb) {
    let spent = totals(|s| {
        let spent = machine::cycles().wrapping_sub(s.enter.get());
        s.kernel_entries.set(s.kernel_entries.get() + 1);
        s.kernel_time.set(s.kernel_time.get().wrapping_add(spent));
        spent
    });
    add(cur, KERNEL_ENTRIES, 1);
    add(cur, KERNEL_UTILISATION, spent);
}

/// The current thread makes way for `next` (which may be itself).
#[inline(always)]
pub fn switch(next: Tcb) {
    if CONFIG.track_utilisation() && enabled() {
        switch_counting(sched::cur_thread(), next);
    }
}

/// [`switch`], unless `next` is the current thread (a fast path's switch:
/// seL4's `switchToThread_fp` counts, its signal fast path, which stays
/// with the current thread, does not).
#[inline(always)]
pub fn switch_away(next: Tcb) {
    if CONFIG.track_utilisation() && enabled() {
        let cur = sched::cur_thread();
        if cur != next {
            switch_counting(cur, next);
        }
    }
}

/// `benchmark_utilisation_switch`, while counting.
#[inline(never)]
fn switch_counting(heir: Tcb, next: Tcb) {
    let enter = totals(|s| {
        s.schedules.set(s.schedules.get() + 1);
        s.enter.get()
    });
    // seL4 adds nothing if the counter wrapped while in the kernel (its
    // overflow interrupt is for boards with a PMU interrupt line).
    let start = get(heir, START);
    if enter > start {
        add(heir, UTILISATION, enter - start);
    }
    set(next, START, enter);
    add(next, SCHEDULES, 1);
}

/// Clears a thread's counters (seL4's `benchmark_track_reset_utilisation`).
fn reset(t: Tcb) {
    for off in [
        UTILISATION,
        SCHEDULES,
        KERNEL_ENTRIES,
        KERNEL_UTILISATION,
        START,
    ] {
        set(t, off, 0);
    }
}

/// The benchmark system calls of this configuration, `w` the number; false
/// if `w` is none of them (an unknown system call then). They return to
/// the caller without a schedule, as seL4's `handleUnknownSyscall` does.
pub fn handle_syscall(w: i64) -> bool {
    if !CONFIG.track_utilisation() {
        return false;
    }
    let cur = sched::cur_thread();
    match w {
        sys::BENCHMARK_FLUSH_CACHES => {
            if cur.reg(Reg::CAP) != 0 {
                machine::clean_invalidate_l1(cur.reg(Reg::MSG_INFO));
            } else {
                machine::clean_invalidate_caches();
            }
        }
        sys::BENCHMARK_RESET_LOG => {
            let idle = sched::idle_thread().expect("scheduler initialised");
            reset(idle);
            let enter = totals(|s| {
                s.enabled.set(true);
                s.start.set(s.enter.get());
                s.kernel_time.set(0);
                s.kernel_entries.set(0);
                s.schedules.set(1);
                s.enter.get()
            });
            set(cur, START, enter);
            add(cur, SCHEDULES, 1);
            cur.set_reg(Reg::CAP, 0);
        }
        sys::BENCHMARK_FINALIZE_LOG => {
            let idle = sched::idle_thread().expect("scheduler initialised");
            if enabled() {
                switch_counting(cur, idle);
            }
            totals(|s| {
                s.end.set(s.enter.get());
                s.enabled.set(false);
            });
        }
        sys::BENCHMARK_NULL_SYSCALL => {}
        sys::BENCHMARK_GET_THREAD_UTILISATION => {
            if let Some(t) = tcb_in_cap_register(cur) {
                dump(cur, t);
            }
        }
        sys::BENCHMARK_RESET_THREAD_UTILISATION => {
            if let Some(t) = tcb_in_cap_register(cur) {
                reset(t);
            }
        }
        _ => return false,
    }
    true
}

/// The TCB the cap in the caller's x0 names; seL4 reports anything else as
/// a user error (printed only with kernel printing) and does nothing.
fn tcb_in_cap_register(cur: Tcb) -> Option<Tcb> {
    match crate::cspace::lookup_cap(&cur.cspace_root(), cur.reg(Reg::CAP)) {
        Ok(Cap::Tcb { paddr }) => Some(Tcb::new(paddr)),
        _ => None,
    }
}

/// BenchmarkGetThreadUtilisation: `t`'s counters, the idle thread's and
/// the totals into `cur`'s IPC buffer message words
/// (`benchmark_track_util_ipc_index`). Without an IPC buffer nothing is
/// written (seL4 would fault in the kernel).
fn dump(cur: Tcb, t: Tcb) {
    let Some(buf) = crate::ipc::lookup_ipc_buffer(true, cur) else {
        return;
    };
    let idle = sched::idle_thread().expect("scheduler initialised");
    let (start, end, schedules, kernel_time, kernel_entries) = totals(|s| {
        (
            s.start.get(),
            s.end.get(),
            s.schedules.get(),
            s.kernel_time.get(),
            s.kernel_entries.get(),
        )
    });
    let words = [
        (index::TCB_UTILISATION, get(t, UTILISATION)),
        (index::TCB_NUMBER_SCHEDULES, get(t, SCHEDULES)),
        (index::TCB_KERNEL_UTILISATION, get(t, KERNEL_UTILISATION)),
        (index::TCB_NUMBER_KERNEL_ENTRIES, get(t, KERNEL_ENTRIES)),
        (index::IDLE_LOCALCPU_UTILISATION, get(idle, UTILISATION)),
        (index::IDLE_TCBCPU_UTILISATION, get(idle, UTILISATION)),
        (index::IDLE_NUMBER_SCHEDULES, get(idle, SCHEDULES)),
        (
            index::IDLE_KERNEL_UTILISATION,
            get(idle, KERNEL_UTILISATION),
        ),
        (index::IDLE_NUMBER_KERNEL_ENTRIES, get(idle, KERNEL_ENTRIES)),
        (index::TOTAL_UTILISATION, end.wrapping_sub(start)),
        (index::TOTAL_NUMBER_SCHEDULES, schedules),
        (index::TOTAL_KERNEL_UTILISATION, kernel_time),
        (index::TOTAL_NUMBER_KERNEL_ENTRIES, kernel_entries),
    ];
    for (i, v) in words {
        // Message word i is IPC buffer word 1 + i (word 0 is the tag).
        memory::write::<u64>(buf + 8 * (1 + i as u64), v);
    }
}
