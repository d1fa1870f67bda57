//! # test-domains: a system that lives by its domain schedule
//!
//! The shape of Microkit's `domains` example (tests/systems/domains): an
//! `emitter` and a `collector` PD, each in a scheduling domain of its own,
//! the monitor in domain 0, and a schedule monitor 3 ms, emitter 4 ms,
//! collector 2 ms. The emitter never blocks: it reads the physical counter
//! in a loop, and a jump in it means another domain ran meanwhile. So it
//! sees its own turns (about 4 ms each) and the gaps between them (about
//! 3 + 2 ms), and at each new turn it notifies the collector, which counts
//! in a shared region. After a few turns the emitter judges: its turns and
//! gaps have the schedule's lengths (medians within a tenth of them), and
//! the collector ran in its own turns.
#![cfg_attr(target_os = "none", no_std, no_main)]

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use septa_runtime::{println, protection_domain, setvar, Channel, ChannelSet, Handler};
use septa_test_report as report;

/// The channel from the emitter to the collector (id 0 at both ends).
const LINK: Channel = Channel::new(0);
/// The schedule of domains.system, in microseconds.
const EMITTER_US: u64 = 4000;
const OTHERS_US: u64 = 3000 + 2000;
/// Turns the emitter measures (the first is cut short by its start).
const TURNS: usize = 9;
/// A jump of the counter longer than this is another domain's turn.
const GAP_US: u64 = 500;

setvar! {
    /// The shared region where the collector counts notifications.
    static COUNTS = "counts_vaddr";
}

fn count() -> &'static AtomicU64 {
    // SAFETY: the tool maps the 4 KiB region `counts` read-write at COUNTS
    // in both PDs for their whole life; its first word is only this count.
    unsafe { &*COUNTS.as_ptr::<AtomicU64>() }
}

/// The physical count, which every Microkit configuration exports to EL0.
fn now() -> u64 {
    septa_pmu::system_counter()
}

fn ticks(us: u64) -> u64 {
    us * (septa_abi::kernel_config::mcs::TIMER_CLOCK_HZ / 1_000_000)
}

fn median(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// Within a tenth of `want` either way (the system runs under -icount, so
/// the clock follows the instructions and the turns are exact).
fn about(got: u64, want: u64) -> bool {
    got > want - want / 10 && got < want + want / 10
}

fn emit() {
    let mut turns = [0u64; TURNS];
    let mut gaps = [0u64; TURNS];
    let mut start = now();
    let mut last = start;
    let mut n = 0;
    while n < TURNS {
        let t = now();
        if t - last > ticks(GAP_US) {
            // Another domain ran from `last` to `t`: a turn ended, a new one
            // starts.
            turns[n] = last - start;
            gaps[n] = t - last;
            n += 1;
            start = t;
            let _ = LINK.notify();
        }
        last = t;
    }
    // The first turn began at our start, not at a switch.
    let turn = median(&mut turns[1..]);
    let gap = median(&mut gaps);
    println!(
        "emitter: turns of {} us, gaps of {} us, {} notifications counted",
        turn * 1_000_000 / septa_abi::kernel_config::mcs::TIMER_CLOCK_HZ,
        gap * 1_000_000 / septa_abi::kernel_config::mcs::TIMER_CLOCK_HZ,
        count().load(Relaxed)
    );
    const CASE: &str = "domain-turns";
    if !about(turn, ticks(EMITTER_US)) {
        let why = format_args!("the emitter's turns are not {EMITTER_US} us");
        println!("{}", report::fail(CASE, &why));
    } else if !about(gap, ticks(OTHERS_US)) {
        let why = format_args!("the others' turns are not {OTHERS_US} us");
        println!("{}", report::fail(CASE, &why));
    } else if count().load(Relaxed) == 0 {
        println!("{}", report::fail(CASE, &"the collector never ran"));
    } else {
        println!("{}", report::ok(CASE));
    }
    println!("{}", report::DONE);
}

struct Collector;

impl Handler for Collector {
    fn notified(&mut self, channels: ChannelSet) {
        if channels.contains(LINK) {
            count().fetch_add(1, Relaxed);
        }
    }
}

fn init() -> Collector {
    if septa_runtime::pd_name().as_str() == "emitter" {
        emit();
    }
    Collector
}

protection_domain!(init);
