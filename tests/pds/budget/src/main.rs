//! # test-budget: a budget leaves time to lower priorities
//!
//! Two PDs from one program, both spinning for ever:
//! - `spinner`, at high priority with a budget of 1 ms every 10 ms;
//! - `low`, at a lower priority.
//!
//! Each measures its own CPU time with `SchedContext_Consumed` on its own
//! scheduling context (given to it as an extra cap in root slot 1) and
//! publishes it in the shared region `stats`. Without the budget `low`
//! would never run; with it, `low` should get about nine times the
//! spinner's time. Each PD judges from its side; `low` ends the test.
#![cfg_attr(target_os = "none", no_std, no_main)]

use core::hint::black_box;
use core::sync::atomic::{AtomicU64, Ordering};

use septa_runtime::septa_sel4::{cap_type, Cap};
use septa_runtime::{println, protection_domain, setvar, NullHandler};
use septa_test_report as report;

/// The extra cap slot of the PD's own scheduling context (root CNode slot
/// 1, as the description's `caps` puts it: CPtr `1 << 58`).
const OWN_SC: Cap<cap_type::SchedContext> = Cap::from_bits(1 << 58);
/// The spinner judges after this much of its own time.
const SPINNER_SAMPLE_US: u64 = 30_000;
/// `low` judges after this much of its own time (and the spinner's verdict).
const LOW_SAMPLE_US: u64 = 200_000;
/// Spin iterations between two readings of the time used.
const SPIN: u64 = 20_000;

setvar! {
    static STATS = "stats_vaddr";
}

/// Words of the shared region.
const SPINNER_US: usize = 0;
const LOW_US: usize = 1;
const VERDICT: usize = 2;
const VERDICT_OK: u64 = 1;
const VERDICT_FAIL: u64 = 2;

fn stat(i: usize) -> &'static AtomicU64 {
    // SAFETY: the tool maps the region `stats` (4 KiB) read-write at STATS
    // in both PDs for their whole life; its first words are used only as
    // these atomics (one core: the PDs never run at the same time).
    unsafe { &*STATS.as_ptr::<AtomicU64>().add(i) }
}

/// Spins a while, then adds the time used since the last call to `total`.
fn spin_and_count(total: &mut u64) -> Result<(), ()> {
    let mut x = 0u64;
    for i in 0..SPIN {
        x = black_box(x.wrapping_add(i));
    }
    *total += OWN_SC.consumed().map_err(|_| ())?;
    Ok(())
}

fn spinner() -> ! {
    let mut mine = 0;
    let mut judged = false;
    loop {
        if spin_and_count(&mut mine).is_err() {
            println!(
                "{}",
                report::fail("budget", &"spinner cannot read its consumed time")
            );
            stat(VERDICT).store(VERDICT_FAIL, Ordering::Relaxed);
            loop {
                core::hint::spin_loop();
            }
        }
        stat(SPINNER_US).store(mine, Ordering::Relaxed);
        if !judged && mine >= SPINNER_SAMPLE_US {
            judged = true;
            let low = stat(LOW_US).load(Ordering::Relaxed);
            println!("spinner: used {mine} us; low used {low} us meanwhile");
            let ok = low >= 3 * mine;
            if ok {
                println!("{}", report::ok("budget-spinner"));
            } else {
                println!(
                    "{}",
                    report::fail("budget-spinner", &"low got too little time")
                );
            }
            stat(VERDICT).store(
                if ok { VERDICT_OK } else { VERDICT_FAIL },
                Ordering::Relaxed,
            );
        }
    }
}

fn low() -> ! {
    let mut mine = 0;
    loop {
        if spin_and_count(&mut mine).is_err() {
            println!(
                "{}",
                report::fail("budget", &"low cannot read its consumed time")
            );
            println!("{}", report::DONE);
            loop {
                core::hint::spin_loop();
            }
        }
        stat(LOW_US).store(mine, Ordering::Relaxed);
        let verdict = stat(VERDICT).load(Ordering::Relaxed);
        if mine >= LOW_SAMPLE_US && verdict != 0 {
            let spun = stat(SPINNER_US).load(Ordering::Relaxed);
            let share = spun * 100 / (spun + mine).max(1);
            println!("low: used {mine} us; spinner used {spun} us ({share}% of the two)");
            if (3..=25).contains(&share) && verdict == VERDICT_OK {
                println!("{}", report::ok("budget-low"));
            } else {
                println!(
                    "{}",
                    report::fail("budget-low", &format_args!("the spinner took {share}%"))
                );
            }
            println!("{}", report::DONE);
            loop {
                core::hint::spin_loop();
            }
        }
    }
}

fn init() -> NullHandler {
    if septa_runtime::pd_name().as_str() == "spinner" {
        spinner()
    } else {
        low()
    }
}

protection_domain!(init);
