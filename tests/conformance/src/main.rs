//! # septa-conformance: the kernel conformance suite (seL4 16.0.0 ABI)
//!
//! A root task, started by the kernel with BootInfo in x0, that judges a
//! kernel against the seL4 16.0.0 ABI of Septa's configuration (aarch64,
//! EL2/hyp, MCS, one core): every invocation of `septa_abi::Label`, on its
//! success path and on each error path with the error's details, plus IPC,
//! notifications, faults, MCS scheduling, revocation, VSpaces, IRQs, the
//! debug, SMC and domain capabilities, and guests: threads bound to VCPUs
//! running at EL1 (`cases::guest`). Every expected
//! value comes from the seL4 16.0.0 source or from a run on a real seL4
//! 16.0.0 kernel, and the same image passes on one
//! (`cargo septa test conformance --kernel PATH`).
//!
//! What it owns: its cases (`cases/`), the allocators over BootInfo's
//! untypeds and empty slots ([`env`]), the worker address spaces its
//! threads run in ([`space`]), thread start-up ([`thread`]) and the watchdog
//! that turns a hung or crashed case into one failure ([`watchdog`]).
//!
//! What it must not do: talk to the kernel other than through `septa-sel4`
//! (no raw system calls beyond the few fault cases that need a specific
//! instruction), or depend on anything but the seL4 ABI.
//!
//! Output is the harness protocol, written with `septa-test-report`:
//! `[septa-test] ok CASE` or `[septa-test] FAIL CASE: expected X got Y`,
//! the summary line `N passed, M failed`, then `[septa-test] done`. Before each case it prints
//! `[conformance] run CASE`, so a case that stops the machine is named.
#![cfg_attr(all(target_arch = "aarch64", target_os = "none"), no_std, no_main)]
// A case's failure carries its message in a fixed buffer (there is no
// heap); returning it by value is the point, and speed is irrelevant here.
#![allow(clippy::result_large_err)]

pub mod cases;
pub mod console;
pub mod env;
pub mod pmu;
pub mod report;
pub mod space;
pub mod thread;
pub mod watchdog;

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::env::Cx;
use crate::report::{Failure, Outcome, PROGRESS};
use crate::watchdog::Abort;
use septa_test_report as verdict;

/// One case: a name (`group/what`) and the function that runs it.
pub struct Case {
    pub name: &'static str,
    pub run: fn(&mut Cx) -> Outcome,
}

/// Restarts of the root thread (timeouts, crashes, panics) before the suite
/// gives up on the kernel.
const MAX_ABORTS: u64 = 25;

static CURRENT: AtomicU64 = AtomicU64::new(0);
static PASSED: AtomicU64 = AtomicU64::new(0);
static FAILED: AtomicU64 = AtomicU64::new(0);
static NOT_APPLICABLE: AtomicU64 = AtomicU64::new(0);
static ABORTS: AtomicU64 = AtomicU64::new(0);

/// Every case, in running order.
pub fn all_cases() -> impl Iterator<Item = &'static Case> {
    cases::GROUPS.iter().flat_map(|g| g.iter())
}

fn case_at(i: usize) -> Option<&'static Case> {
    all_cases().nth(i)
}

fn pass(name: &str) {
    PASSED.fetch_add(1, Relaxed);
    outln!("{}", verdict::ok(name));
}

fn fail_case(name: &str, why: core::fmt::Arguments<'_>) {
    FAILED.fetch_add(1, Relaxed);
    outln!("{}", verdict::fail(name, &why));
}

/// Undoes what the running case did to shared state; the error, if any, is
/// the kernel's answer to the cleanup.
fn after_case() -> Result<(), septa_sel4::Error> {
    let cx = Cx::new();
    let max = septa_abi::kernel_config::MAX_PRIORITY;
    // A case may have lowered the root's priority to let its threads run.
    let prio = cx.root_tcb().set_priority(cx.root_tcb(), max);
    let cleaned = env::cleanup_case();
    thread::reset();
    thread::clear_receive_path();
    prio.and(cleaned)
}

fn run_case(i: usize, case: &Case) {
    CURRENT.store(i as u64, Relaxed);
    outln!("{PROGRESS} run {}", case.name);
    thread::reset();
    watchdog::arm(watchdog::DEFAULT_LIMIT_TICKS);
    let outcome = (case.run)(&mut Cx::new());
    watchdog::disarm();
    let cleanup = after_case();
    match (outcome, cleanup) {
        (Ok(()), Ok(())) => pass(case.name),
        (Ok(()), Err(e)) => fail_case(
            case.name,
            format_args!("cleanup after the case (revoke and delete) failed: {e:?}"),
        ),
        (Err(f), _) if f.is_not_applicable() => {
            NOT_APPLICABLE.fetch_add(1, Relaxed);
            outln!(
                "{PROGRESS} n/a {}: needs {} (this is the {} configuration)",
                case.name,
                f.message(),
                septa_abi::CONFIG.name()
            );
        }
        (Err(f), _) => fail_case(case.name, format_args!("{f}")),
    }
}

/// Runs the cases from index `start` to the end, then the PMU report.
fn run_from(start: usize) -> ! {
    let mut i = start;
    while let Some(case) = case_at(i) {
        run_case(i, case);
        i += 1;
    }
    CURRENT.store(i as u64, Relaxed);
    watchdog::arm(watchdog::DEFAULT_LIMIT_TICKS);
    let pmu = pmu::report(&mut Cx::new());
    watchdog::disarm();
    if let Err(f) = pmu {
        outln!("{PROGRESS} pmu: report failed: {f}");
    }
    let _ = after_case();
    finish()
}

fn finish() -> ! {
    let passed = PASSED.load(Relaxed);
    let failed = FAILED.load(Relaxed);
    let na = NOT_APPLICABLE.load(Relaxed);
    outln!(
        "{PROGRESS} {} configuration: {passed} passed, {failed} failed, {na} not applicable",
        septa_abi::CONFIG.name()
    );
    outln!("{passed} passed, {failed} failed");
    outln!("{}", verdict::DONE);
    let cx = Cx::new();
    let _ = cx.root_tcb().suspend();
    loop {
        septa_sel4::syscall::yield_now();
    }
}

/// Where the root thread restarts after the watchdog aborted a case (or a
/// panic unwound it): report the case, clean up, go on with the next.
pub extern "C" fn recover() -> ! {
    outln!();
    let i = CURRENT.load(Relaxed) as usize;
    if i >= all_cases().count() {
        // The PMU report, after the cases, went wrong: not a case.
        outln!(
            "{PROGRESS} pmu: report aborted ({:x?})",
            watchdog::take_abort()
        );
        let _ = after_case();
        finish();
    }
    let name = case_at(i).map_or("(no case)", |c| c.name);
    match watchdog::take_abort() {
        Abort::Timeout => fail_case(
            name,
            format_args!("did not finish within its time limit (hung or deadlocked)"),
        ),
        Abort::Fault(f) => fail_case(name, format_args!("crashed the root task: {f:x?} (hex)")),
        Abort::Panic => fail_case(name, format_args!("panicked (see the line above)")),
        Abort::None => fail_case(name, format_args!("aborted for no recorded reason")),
    }
    if let Err(e) = after_case() {
        outln!("{PROGRESS} cleanup after {name} failed: {e:?}");
    }
    if ABORTS.fetch_add(1, Relaxed) + 1 >= MAX_ABORTS {
        outln!("{PROGRESS} {MAX_ABORTS} cases aborted; stopping the suite");
        finish();
    }
    run_from(i + 1)
}

/// Everything before the first case: memory pools (required), worker
/// address spaces and the watchdog (each optional: without them the cases
/// that need threads fail, or a hung case stops the suite, which on a kernel
/// still being built is better than running nothing).
fn setup(stack_top: u64) -> Result<(), Failure> {
    env::init()?;
    let mut cx = Cx::new();
    // First the console, where the configuration has no kernel printing.
    console::init(&mut cx)?;
    match space::setup(&mut cx) {
        Ok(()) => {
            if let Err(f) = watchdog::start(&mut cx, recover as *const () as u64, stack_top) {
                outln!("{PROGRESS} no watchdog ({f}): a hung or crashing case stops the suite");
            }
        }
        Err(f) => outln!(
            "{PROGRESS} no worker address spaces ({f}): every case that starts a thread fails, and there is no watchdog"
        ),
    }
    env::seal_infrastructure();
    Ok(())
}

/// The suite proper, once the IPC buffer and BootInfo are known.
fn suite(stack_top: u64) -> ! {
    let count = all_cases().count();
    let set_up = setup(stack_top);
    outln!(
        "{PROGRESS} seL4 16.0.0 ABI conformance suite, {} configuration: {count} cases",
        septa_abi::CONFIG.name()
    );
    if let Err(f) = set_up {
        // Without memory no case can run; each is reported, so the count of
        // failures says how far the kernel is from passing.
        outln!("{PROGRESS} setup failed: {f}");
        for c in all_cases() {
            fail_case(
                c.name,
                format_args!("not run: setup failed ({})", f.message()),
            );
        }
        finish();
    }
    run_from(0)
}

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod rt {
    use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

    use septa_abi::bootinfo::BootInfo;
    use septa_sel4::ipc_buffer::{self, IpcBuffer};

    use crate::outln;
    use crate::report::PROGRESS;

    septa_root_task::entry!(conformance_main, stack = 128 * 1024);

    extern "C" {
        static __stack_top: u8;
        static __stack_bottom: u8;
    }

    fn stack() -> (u64, u64) {
        // Only the addresses of the linker-script symbols are taken.
        (
            core::ptr::addr_of!(__stack_bottom) as u64,
            core::ptr::addr_of!(__stack_top) as u64,
        )
    }

    static STARTED: AtomicU64 = AtomicU64::new(0);

    extern "C" fn conformance_main(bootinfo: *const BootInfo) -> ! {
        // SAFETY: the kernel passes the address of BootInfo in x0 and maps
        // it (with its extra pages) for the life of the root task.
        unsafe { crate::env::set_bootinfo(bootinfo) };
        let ipc = crate::env::bootinfo().ipc_buffer();
        // SAFETY: BootInfo's ipcBuffer is the initial thread's IPC buffer,
        // mapped read-write for its whole life; the suite never holds a
        // Rust reference to it.
        unsafe { ipc_buffer::set_ipc_buffer(ipc as *mut IpcBuffer) };
        STARTED.store(1, Relaxed);
        crate::suite(stack().1)
    }

    fn current_sp() -> u64 {
        let sp: u64;
        // SAFETY: reads the stack pointer into a register; no memory access.
        unsafe { core::arch::asm!("mov {}, sp", out(reg) sp, options(nomem, nostack)) };
        sp
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo) -> ! {
        let sp = current_sp();
        if let Some(w) = crate::thread::worker_of_sp(sp) {
            outln!("{PROGRESS} thread in worker {w} panicked: {info}");
            crate::thread::panicked(w);
        }
        outln!("{PROGRESS} panic: {info}");
        let (bottom, top) = stack();
        if STARTED.load(Relaxed) == 0 || !(bottom..top).contains(&sp) {
            loop {
                septa_sel4::syscall::yield_now();
            }
        }
        crate::watchdog::note_panic();
        // SAFETY: abandons the current stack for a fresh one and continues
        // at `recover`, which never returns and keeps its state in statics;
        // nothing on the abandoned stack is used again.
        unsafe {
            core::arch::asm!(
                "mov sp, {top}",
                "br {entry}",
                top = in(reg) top,
                entry = in(reg) crate::recover as *const () as usize,
                options(noreturn)
            )
        }
    }
}

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
fn main() {
    // On the host the suite cannot run (it is a root task); list it instead.
    let _ = suite;
    for c in all_cases() {
        println!("{}", c.name);
    }
    println!("{} cases", all_cases().count());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn case_names_are_unique_and_well_formed() {
        let mut seen = HashSet::new();
        for c in all_cases() {
            assert!(seen.insert(c.name), "duplicate case {}", c.name);
            let (group, what) = c.name.split_once('/').expect("group/what");
            assert!(!group.is_empty() && !what.is_empty(), "{}", c.name);
            assert!(
                c.name
                    .chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "-/".contains(ch)),
                "{}",
                c.name
            );
        }
    }

    #[test]
    fn the_suite_has_at_least_150_cases() {
        assert!(all_cases().count() >= 150, "{}", all_cases().count());
    }

    #[test]
    fn the_readme_counts_the_cases() {
        // Not with the self-test cases, which only a special build has.
        if !cases::selftest::CASES.is_empty() {
            return;
        }
        let readme = include_str!("../../../README.md");
        let claim = format!("({} cases,", all_cases().count());
        assert!(readme.contains(&claim), "README.md must say {claim:?}");
    }

    #[test]
    fn every_invocation_label_is_exercised() {
        use septa_abi::Label;
        for n in 1..=septa_abi::CONFIG.last_label() {
            let l = Label::from_u64(n).unwrap();
            assert!(cases::covered_labels().any(|x| x == l), "{l:?}");
        }
    }
}
