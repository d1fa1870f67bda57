//! The benchmark configuration's utilisation tracking and system calls
//! (`crate::benchmark`): what a thread's counters and the totals say after
//! a logged stretch of system calls, on the host double's clock (one tick
//! one cycle).

use super::*;
use septa_abi::benchmark_utilisation as index;
use septa_abi::CONFIG;

/// The root thread's counters and the totals, as BenchmarkGetThreadUtilisation
/// puts them in its IPC buffer, for the TCB at root slot `tcb`.
fn utilisation(s: &Sys, tcb: u64) -> [u64; index::WORDS] {
    let root = s.root.tcb;
    root.set_reg(Reg::CAP, tcb);
    s.syscall(root, sys::BENCHMARK_GET_THREAD_UTILISATION);
    // The message words in the buffer itself, not in registers.
    let buf = crate::ipc::lookup_ipc_buffer(true, root).unwrap();
    core::array::from_fn(|i| buffer_word(buf, 1 + i))
}

fn tick(by: u64) {
    machine::set_now(machine::now() + by);
}

#[test]
fn a_logged_stretch_counts_schedules_entries_and_cycles() {
    if !CONFIG.track_utilisation() {
        return;
    }
    let s = Sys::new();
    let root = s.root.tcb;
    root.set_reg(Reg::CAP, 0x55);
    let start = machine::now();
    s.syscall(root, sys::BENCHMARK_RESET_LOG);
    assert_eq!(root.reg(Reg::CAP), 0, "seL4_NoError in x0");
    for _ in 0..3 {
        tick(100);
        s.syscall(root, sys::YIELD);
    }
    tick(50);
    let end = machine::now();
    s.syscall(root, sys::BENCHMARK_FINALIZE_LOG);
    tick(1000);
    let u = utilisation(&s, ROOT_TCB);
    // Scheduled from the reset's entry to the finalisation's.
    assert_eq!(u[index::TCB_UTILISATION], end - start);
    assert_eq!(u[index::TOTAL_UTILISATION], end - start);
    // The reset schedules it once, each Yield once more.
    assert_eq!(u[index::TCB_NUMBER_SCHEDULES], 4);
    // ... and the finalisation switches the count to the idle thread.
    assert_eq!(u[index::TOTAL_NUMBER_SCHEDULES], 5);
    assert_eq!(u[index::IDLE_NUMBER_SCHEDULES], 1);
    // The reset's exit and the three Yields' (the finalisation's exit is
    // past the log).
    assert_eq!(u[index::TCB_NUMBER_KERNEL_ENTRIES], 4);
    assert_eq!(u[index::TOTAL_NUMBER_KERNEL_ENTRIES], 4);
    // The clock stood still in the kernel.
    assert_eq!(u[index::TCB_KERNEL_UTILISATION], 0);
    assert_eq!(u[index::IDLE_LOCALCPU_UTILISATION], 0);

    // Reset: the thread's counters are zero; the totals stay.
    root.set_reg(Reg::CAP, ROOT_TCB);
    s.syscall(root, sys::BENCHMARK_RESET_THREAD_UTILISATION);
    let u = utilisation(&s, ROOT_TCB);
    assert_eq!(u[..4], [0; 4]);
    assert_eq!(u[index::TOTAL_UTILISATION], end - start);
}

#[test]
fn a_cap_that_is_not_a_tcb_leaves_the_buffer_alone() {
    if !CONFIG.track_utilisation() {
        return;
    }
    let s = Sys::new();
    let root = s.root.tcb;
    let buf = crate::ipc::lookup_ipc_buffer(true, root).unwrap();
    for i in 0..index::WORDS {
        set_buffer_word(buf, 1 + i, 0xaa);
    }
    let u = utilisation(&s, SCHED_CONTROL);
    assert_eq!(u, [0xaa; index::WORDS]);
}

#[test]
fn null_syscall_and_flush_caches_return_to_the_caller() {
    if !CONFIG.track_utilisation() {
        return;
    }
    let s = Sys::new();
    let root = s.root.tcb;
    let _ = machine::take_log();
    s.syscall(root, sys::BENCHMARK_NULL_SYSCALL);
    root.set_reg(Reg::CAP, 0);
    s.syscall(root, sys::BENCHMARK_FLUSH_CACHES);
    root.set_reg(Reg::CAP, 1);
    root.set_reg(Reg::MSG_INFO, 2);
    s.syscall(root, sys::BENCHMARK_FLUSH_CACHES);
    assert_eq!(s.cur(), root);
    assert_eq!(root.state(), ThreadState::Running);
    let flushes: Vec<_> = machine::take_log()
        .into_iter()
        .filter(|op| matches!(op, machine::Op::FlushCaches(_)))
        .collect();
    assert_eq!(
        flushes,
        [
            machine::Op::FlushCaches(None),
            machine::Op::FlushCaches(Some(2))
        ]
    );
}
