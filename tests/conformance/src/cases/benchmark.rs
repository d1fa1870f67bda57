//! The benchmark configuration's system calls
//! (`KernelBenchmarks=track_utilisation`, seL4 16.0.0's
//! src/benchmark/benchmark.c and benchmark_utilisation.c): flushing the
//! caches, the null call, and utilisation tracking between ResetLog and
//! FinalizeLog, read with GetThreadUtilisation. Elsewhere every one of
//! them is an unknown system call (src/api/syscall.c
//! `handleUnknownSyscall`), and in the benchmark configuration so is
//! BenchmarkSetLogBuffer (no kernel log buffer).
//!
//! The counters are PMU cycles and the suite runs among its own threads,
//! so the checks are the relations seL4's bookkeeping guarantees, not
//! exact figures.

use septa_abi::benchmark_utilisation as index;
use septa_abi::{syscall as nr, Label, CONFIG, TCB_REGISTER_COUNT};
use septa_sel4::syscall::{self, CacheType};

use crate::cases::fault::{expect_unknown_syscall, fault_ep, svc_body};
use crate::cases::util::{recv_fault, reply};
use crate::env::Cx;
use crate::report::Outcome;
use crate::thread::{self, Spawn};
use crate::{check, check_eq, needs, ok, Case};

pub const LABELS: &[Label] = &[];

pub const CASES: &[Case] = &[
    Case {
        name: "benchmark/null-call-and-cache-flushes-return",
        run: null_and_flushes,
    },
    Case {
        name: "benchmark/utilisation-of-a-logged-stretch",
        run: logged_stretch,
    },
    Case {
        name: "benchmark/utilisation-of-no-tcb-writes-nothing",
        run: not_a_tcb,
    },
    Case {
        name: "benchmark/calls-the-configuration-lacks-are-unknown",
        run: unknown_elsewhere,
    },
];

fn benchmark_config() -> bool {
    CONFIG.track_utilisation()
}

fn null_and_flushes(_: &mut Cx) -> Outcome {
    needs!(benchmark_config(), "the benchmark configuration");
    check!(syscall::benchmark_null_syscall(), "NullSyscall");
    check!(syscall::benchmark_flush_caches(), "FlushCaches");
    for kind in [CacheType::Instruction, CacheType::Data, CacheType::Both] {
        check!(
            syscall::benchmark_flush_l1_caches(kind),
            "FlushCaches of L1 {kind:?}"
        );
    }
    Ok(())
}

/// Yields while logging.
const YIELDS: u64 = 5;

fn logged_stretch(cx: &mut Cx) -> Outcome {
    needs!(benchmark_config(), "the benchmark configuration");
    let me = cx.root_tcb();
    check_eq!(syscall::benchmark_reset_log(), Some(0), "ResetLog's x0");
    let mut x = 0u64;
    for i in 0..YIELDS {
        syscall::yield_now();
        // Some cycles at user level between the entries.
        for j in 0..1000 {
            x = core::hint::black_box(x.wrapping_add(i ^ j));
        }
    }
    check!(syscall::benchmark_finalize_log(), "FinalizeLog");
    let Some(u) = syscall::benchmark_get_thread_utilisation(me) else {
        unreachable!("the benchmark configuration has the call");
    };
    // benchmark_utilisation_switch: ResetLog schedules the caller once,
    // each Yield (chooseThread, switchToThread) once more.
    check!(
        u[index::TCB_NUMBER_SCHEDULES] > YIELDS,
        "{} schedules for {YIELDS} yields",
        u[index::TCB_NUMBER_SCHEDULES]
    );
    // c_exit_hook: ResetLog's exit and each Yield's counted.
    check!(
        u[index::TCB_NUMBER_KERNEL_ENTRIES] > YIELDS,
        "{} kernel entries for {YIELDS} yields",
        u[index::TCB_NUMBER_KERNEL_ENTRIES]
    );
    check!(u[index::TCB_UTILISATION] > 0, "no cycles scheduled");
    check!(
        u[index::TCB_UTILISATION] <= u[index::TOTAL_UTILISATION],
        "scheduled for {} of {} cycles",
        u[index::TCB_UTILISATION],
        u[index::TOTAL_UTILISATION]
    );
    check!(
        u[index::TCB_KERNEL_UTILISATION] <= u[index::TCB_UTILISATION],
        "{} cycles in the kernel of {} scheduled",
        u[index::TCB_KERNEL_UTILISATION],
        u[index::TCB_UTILISATION]
    );
    // FinalizeLog switches the count to the idle thread.
    check!(
        u[index::TOTAL_NUMBER_SCHEDULES] > u[index::TCB_NUMBER_SCHEDULES],
        "{} schedules in all, {} of them the caller's",
        u[index::TOTAL_NUMBER_SCHEDULES],
        u[index::TCB_NUMBER_SCHEDULES]
    );
    check!(u[index::IDLE_NUMBER_SCHEDULES] >= 1, "the idle thread's");
    check_eq!(
        u[index::IDLE_LOCALCPU_UTILISATION],
        u[index::IDLE_TCBCPU_UTILISATION],
        "one core"
    );
    check!(
        u[index::TOTAL_NUMBER_KERNEL_ENTRIES] >= u[index::TCB_NUMBER_KERNEL_ENTRIES],
        "kernel entries in all"
    );
    // ResetThreadUtilisation zeroes the thread's counters, not the totals.
    check!(syscall::benchmark_reset_thread_utilisation(me), "Reset");
    let Some(after) = syscall::benchmark_get_thread_utilisation(me) else {
        unreachable!("the benchmark configuration has the call");
    };
    check_eq!(after[..4], [0; 4], "the thread's counters after a reset");
    check_eq!(
        after[index::TOTAL_UTILISATION],
        u[index::TOTAL_UTILISATION],
        "the total after a reset of the thread"
    );
    Ok(())
}

fn not_a_tcb(cx: &mut Cx) -> Outcome {
    needs!(benchmark_config(), "the benchmark configuration");
    for i in 0..index::WORDS {
        septa_sel4::ipc_buffer::set_mr(i, 0xaa + i as u64);
    }
    // A CNode cap: a user error, nothing written.
    let cnode = septa_sel4::Cap::from_bits(cx.root_cnode().bits());
    let Some(u) = syscall::benchmark_get_thread_utilisation(cnode) else {
        unreachable!("the benchmark configuration has the call");
    };
    let want: [u64; index::WORDS] = core::array::from_fn(|i| 0xaa + i as u64);
    check_eq!(u, want, "the message words");
    Ok(())
}

fn unknown_elsewhere(cx: &mut Cx) -> Outcome {
    let numbers: &[i64] = if benchmark_config() {
        // No kernel log buffer; the all-threads calls need a debug build.
        &[nr::BENCHMARK_SET_LOG_BUFFER, -28, -29]
    } else {
        &[
            nr::BENCHMARK_FLUSH_CACHES,
            nr::BENCHMARK_RESET_LOG,
            nr::BENCHMARK_FINALIZE_LOG,
            nr::BENCHMARK_SET_LOG_BUFFER,
            nr::BENCHMARK_NULL_SYSCALL,
            nr::BENCHMARK_GET_THREAD_UTILISATION,
            nr::BENCHMARK_RESET_THREAD_UTILISATION,
        ]
    };
    // One thread tries each number: stopped after each fault (label 1: no
    // restart), it gets the next number in x7 and is resumed at its svc.
    let (ep, handler, r) = fault_ep(cx, 0x75)?;
    let t = thread::spawn(cx, Spawn::new(svc_body, numbers[0] as u64).fault(handler))?;
    let count = TCB_REGISTER_COUNT as u64;
    for (i, &n) in numbers.iter().enumerate() {
        if i > 0 {
            let mut regs = ok!(t.tcb.read_registers(false, 0, count));
            regs.x7 = n as u64;
            ok!(t.tcb.write_registers(false, 0, count, &regs));
            ok!(t.tcb.resume());
        }
        let (f, badge) = recv_fault(ep, r);
        check_eq!(badge, 0x75, "the fault's badge (number {n})");
        let (_, _, _, _, _, number) = expect_unknown_syscall(f)?;
        check_eq!(number, n as u64, "the unknown call's number");
        reply(r, 1, &[]);
    }
    Ok(())
}
