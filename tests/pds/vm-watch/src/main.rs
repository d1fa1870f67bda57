//! # test-vm-watch: what the VM test systems check from beside the guest
//!
//! One program, its role chosen by the PD's name:
//!
//! - `watch`: the VMM notifies it (channel 0, the VMM's
//!   `vmm_guest_off_channel`) when its guest powers off; it reports the
//!   case `guest-off` and ends the test. The host probe has driven the guest
//!   there through its console (`tests/systems/vm-*/probe`).
//! - `meter`: a native PD beside a hostile guest. It spins for ever on its
//!   own budget ([`METER_BUDGET_US`] every [`METER_PERIOD_US`], its share
//!   of the CPU), measuring the CPU time it gets (SchedContext_Consumed on
//!   its own scheduling context, root slot 1) and the work it does (spin
//!   rounds) in windows of at least [`WINDOW_MS`] of the system counter,
//!   each from one return from a period without budget to another. The
//!   guest marks its hostile phase in a word it shares with the meter
//!   (region `phase`: 0 before, 1 while hostile, 2 after). When the VMM
//!   says the guest is off (channel 0), the meter judges its share
//!   ([`report`]): every window, calm or hostile, must have given it its
//!   nominal share, and the hostile windows as much work as the calm ones.
//!
//! vm-hostile runs under `-icount` (its `icount` file), where the system
//! counter follows the instructions executed: a window is the same amount
//! of machine however busy the host is, so the share is measured exactly
//! rather than against a noisy wall clock. The physical counter is
//! readable at EL0 in Microkit's configurations, and both kernels give
//! native threads that access back whenever a guest's timer is saved
//! (seL4's `save_virt_timer`), whatever the guest set.
#![cfg_attr(target_os = "none", no_std, no_main)]

use core::hint::black_box;

use septa_runtime::septa_sel4::abi::kernel_config::mcs::TIMER_CLOCK_HZ;
use septa_runtime::septa_sel4::{cap_type, syscall, CPtr, Cap};
use septa_runtime::{println, protection_domain, setvar, Channel, ChannelSet, Handler};
use septa_test_report as report;

/// From the VMM: its guest powered off.
const GUEST_OFF: Channel = Channel::new(0);
/// The meter's budget and period (as in tests/systems/vm-hostile).
const METER_BUDGET_US: u64 = 2000;
const METER_PERIOD_US: u64 = 10_000;
/// The length of one measured window.
const WINDOW_MS: u64 = 100;
/// What every window must give the meter, in percent of its nominal share
/// (a window spans whole periods, from one return from a period without
/// budget to another, so the rounding is one spin round of ten budgets).
const MIN_SHARE_PERCENT: u64 = 95;
/// What work the hostile windows must do on average, in percent of the
/// calm ones' (the same share of the same machine does the same work; a
/// kernel that charged the meter for someone else's time would show here).
const MIN_WORK_PERCENT: u64 = 95;
/// Spin iterations between two readings of the time used.
const SPIN: u64 = 20_000;
/// A pause between two rounds at least this long means the meter was
/// descheduled: it has run out of budget and is back with the next one
/// (two rounds in a row are about 0.1 ms of the counter apart while it
/// runs, and it waits 8 ms of every 10 between budgets).
const GAP_US: u64 = 2_000;

/// The meter's own scheduling context (root CNode slot 1, CPtr `1 << 58`).
const OWN_SC: Cap<cap_type::SchedContext> = Cap::from_bits(1 << 58);
/// The PD's input: its notification (it has no endpoint).
const INPUT: CPtr = CPtr::from_bits(septa_runtime::septa_sel4::abi::microkit::slot::INPUT);

setvar! {
    /// The word the guest marks its phases in.
    static PHASE = "phase_vaddr";
}

struct Watch;

impl Handler for Watch {
    fn notified(&mut self, channels: ChannelSet) {
        if channels.contains(GUEST_OFF) {
            println!("{}", report::ok("guest-off"));
            println!("{}", report::DONE);
        }
    }
}

fn stop() -> ! {
    println!("{}", report::DONE);
    loop {
        syscall::wait(INPUT);
    }
}

/// Adds the CPU time used since the last call to `used_us`.
fn count(used_us: &mut u64) {
    match OWN_SC.consumed() {
        Ok(us) => *used_us += us,
        Err(e) => {
            let why = format_args!("the meter cannot read its time: {e}");
            println!("{}", report::fail("full-share", &why));
            stop();
        }
    }
}

/// The guest's phase marks: 0 calm (booting, idle), 1 hostile, 2 calm again.
const HOSTILE: u32 = 1;

/// The windows of one phase.
#[derive(Clone, Copy, Default)]
struct Tally {
    windows: u64,
    /// Microseconds of the counter they spanned, CPU time the meter had in
    /// them, spin rounds it did.
    span_us: u64,
    used_us: u64,
    rounds: u64,
    /// The smallest share of one window, in tenths of a percent of the
    /// nominal share.
    worst_permille: u64,
}

/// The meter's nominal share in parts per million.
const NOMINAL_PPM: u64 = 1_000_000 * METER_BUDGET_US / METER_PERIOD_US;

/// `used` of `span` in tenths of a percent of the nominal share.
fn permille_of_nominal(used_us: u64, span_us: u64) -> u64 {
    used_us * 1_000_000 / span_us.max(1) * 1000 / NOMINAL_PPM
}

impl Tally {
    fn add(&mut self, span_us: u64, used_us: u64, rounds: u64) {
        let share = permille_of_nominal(used_us, span_us);
        if self.windows == 0 || share < self.worst_permille {
            self.worst_permille = share;
        }
        self.windows += 1;
        self.span_us += span_us;
        self.used_us += used_us;
        self.rounds += rounds;
    }

    fn permille(&self) -> u64 {
        permille_of_nominal(self.used_us, self.span_us)
    }

    /// Spin rounds per second of the counter.
    fn rounds_per_s(&self) -> u64 {
        self.rounds * 1_000_000 / self.span_us.max(1)
    }

    fn describe(&self, what: &str) {
        println!(
            "meter: {} {what} windows of {WINDOW_MS} ms gave it {}.{}% of its nominal share ({}.{}% of the CPU; worst window {}.{}%), {} spin rounds a second",
            self.windows,
            self.permille() / 10,
            self.permille() % 10,
            self.permille() * NOMINAL_PPM / 1_000_000 / 10,
            self.permille() * NOMINAL_PPM / 1_000_000 % 10,
            self.worst_permille / 10,
            self.worst_permille % 10,
            self.rounds_per_s()
        );
    }
}

fn phase() -> u32 {
    // SAFETY: the description maps the region `phase` (4 KiB) uncached and
    // read-only at PHASE in this PD for its whole life (the guest writes
    // its first word); it is read with a volatile load, never referenced.
    unsafe { core::ptr::read_volatile(PHASE.as_ptr::<u32>()) }
}

fn meter() -> ! {
    let window_ticks = WINDOW_MS * TIMER_CLOCK_HZ / 1000;
    let gap_ticks = GAP_US * TIMER_CLOCK_HZ / 1_000_000;
    let mut calm = Tally::default();
    let mut hostile = Tally::default();
    let mut used_us = 0u64;
    let mut rounds = 0u64;
    // What was used before the first window does not count.
    count(&mut used_us);
    used_us = 0;
    // A window starts and ends as the meter comes back from a period
    // without budget, so it spans whole periods of the meter's, each with
    // one budget (a window cut anywhere in a period would count part of a
    // budget or part of a gap, up to 8% either way). `start` is unset
    // until the first such return.
    let mut start: Option<u64> = None;
    let mut last = septa_pmu::system_counter();
    // A window counts as hostile if the guest was hostile at any time in
    // it (as far as the meter saw).
    let mut was_hostile = false;
    loop {
        let mut x = 0u64;
        for i in 0..SPIN {
            x = black_box(x.wrapping_add(i));
        }
        rounds += 1;
        // The time of this round: if the meter was descheduled in it,
        // also the end of its last budget's (up to one round, SPIN
        // iterations, about 0.6% of a window's budget), which the window
        // that ends here takes.
        count(&mut used_us);
        let now = septa_pmu::system_counter();
        was_hostile |= phase() == HOSTILE;
        let resumed = now.wrapping_sub(last) >= gap_ticks;
        last = now;
        if resumed {
            match start {
                Some(s) if now.wrapping_sub(s) + gap_ticks >= window_ticks => {
                    let span_us = now.wrapping_sub(s) * 1_000_000 / TIMER_CLOCK_HZ;
                    let tally = if was_hostile { &mut hostile } else { &mut calm };
                    tally.add(span_us, used_us, rounds);
                    was_hostile = phase() == HOSTILE;
                    start = Some(now);
                    used_us = 0;
                    rounds = 0;
                }
                Some(_) => {}
                None => {
                    start = Some(now);
                    used_us = 0;
                    rounds = 0;
                    was_hostile = phase() == HOSTILE;
                }
            }
        }
        let (_, badge) = syscall::poll(INPUT);
        if ChannelSet::from_bits(badge).contains(GUEST_OFF) {
            report(&calm, &hostile);
            println!("{}", report::ok("guest-off"));
            stop();
        }
    }
}

/// Judges the share: every window, calm or hostile, must have given the
/// meter at least [`MIN_SHARE_PERCENT`]% of its nominal share (a guest
/// that took the CPU away even for a few periods would leave a window
/// short), and the hostile windows must have done at least
/// [`MIN_WORK_PERCENT`]% of the calm ones' work per second.
fn report(calm: &Tally, hostile: &Tally) {
    calm.describe("calm");
    hostile.describe("hostile");
    if calm.windows == 0 || hostile.windows == 0 {
        println!(
            "{}",
            report::fail("full-share", &"no calm or no hostile window was measured")
        );
        return;
    }
    let worst = calm.worst_permille.min(hostile.worst_permille);
    let work_pct = hostile.rounds_per_s() * 100 / calm.rounds_per_s().max(1);
    if worst >= MIN_SHARE_PERCENT * 10 && work_pct >= MIN_WORK_PERCENT {
        println!("{}", report::ok("full-share"));
    } else {
        println!(
            "{}",
            report::fail(
                "full-share",
                &format_args!(
                    "the worst window gave {}.{}% of the nominal share, the hostile windows did {work_pct}% of the calm ones' work",
                    worst / 10,
                    worst % 10
                )
            )
        );
    }
}

fn init() -> Watch {
    if septa_runtime::pd_name().as_str() == "meter" {
        meter()
    }
    Watch
}

protection_domain!(init);
