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
//!   its own scheduling context, root slot 1) in each second of the PL031
//!   real-time clock. The guest marks its hostile phase in a word it shares
//!   with the meter (region `phase`: 0 before, 1 while hostile, 2 after).
//!   When the VMM says the guest is off (channel 0), the meter compares the
//!   CPU time it had per second while the guest was hostile with what it
//!   had while the guest was not ([`report`]).
//!
//! Why a comparison, not the budget itself: under QEMU without `-icount`
//! the meter measures less than its nominal share (about 80-85% on this
//! project's machines, the same with no VM at all: the real-time clock and
//! the kernel's accounting do not agree exactly on a loaded host), so the
//! question "does the guest take anything from it" is answered against the
//! same PD's own calm seconds. The generic counter would be the kernel's
//! own time base, but not every configuration exports it to EL0, and a
//! clock made of MCS wake-ups drifts by each wake-up's latency. The meter
//! sees a second begin only when it runs, at most one period late, so a
//! second it measures is off by a budget at most (a tenth of the share).
#![cfg_attr(target_os = "none", no_std, no_main)]

use core::hint::black_box;

use septa_runtime::septa_sel4::{cap_type, syscall, CPtr, Cap};
use septa_runtime::{println, protection_domain, setvar, Channel, ChannelSet, Handler};
use septa_test_report as report;

/// From the VMM: its guest powered off.
const GUEST_OFF: Channel = Channel::new(0);
/// The meter's budget and period (as in tests/systems/vm-hostile).
const METER_BUDGET_US: u64 = 2000;
const METER_PERIOD_US: u64 = 10_000;
/// What hostile seconds must give the meter on average, in percent of what
/// calm ones gave...
const MIN_FRACTION_PERCENT: u64 = 90;
/// ...and at worst.
const MIN_SECOND_PERCENT: u64 = 60;
/// Spin iterations between two readings of the time used.
const SPIN: u64 = 200_000;

/// The meter's own scheduling context (root CNode slot 1, CPtr `1 << 58`).
const OWN_SC: Cap<cap_type::SchedContext> = Cap::from_bits(1 << 58);
/// The PD's input: its notification (it has no endpoint).
const INPUT: CPtr = CPtr::from_bits(septa_runtime::septa_sel4::abi::microkit::slot::INPUT);

setvar! {
    /// The PL031 real-time clock's registers (its data register, RTCDR, at
    /// offset 0, counts seconds).
    static RTC = "rtc_vaddr";
    /// The word the guest marks its phases in.
    static PHASE = "phase_vaddr";
}

/// The wall clock, in whole seconds.
fn seconds() -> u32 {
    // SAFETY: the description maps the RTC's register page uncached at RTC
    // in this PD alone; RTCDR is a 32-bit read-only register at offset 0,
    // read with a volatile load as device registers must be.
    unsafe { core::ptr::read_volatile(RTC.as_ptr::<u32>()) }
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

/// CPU time per phase: seconds measured and microseconds used in them.
#[derive(Clone, Copy, Default)]
struct Tally {
    seconds: u64,
    used_us: u64,
    worst_ms: u64,
}

impl Tally {
    fn add(&mut self, secs: u64, used_us: u64) {
        if self.seconds == 0 || used_us / secs / 1000 < self.worst_ms {
            self.worst_ms = used_us / secs / 1000;
        }
        self.seconds += secs;
        self.used_us += used_us;
    }

    fn per_second_ms(&self) -> u64 {
        self.used_us / self.seconds.max(1) / 1000
    }
}

fn phase() -> u32 {
    // SAFETY: the description maps the region `phase` (4 KiB) uncached and
    // read-only at PHASE in this PD for its whole life (the guest writes
    // its first word); it is read with a volatile load, never referenced.
    unsafe { core::ptr::read_volatile(PHASE.as_ptr::<u32>()) }
}

fn meter() -> ! {
    let mut calm = Tally::default();
    let mut hostile = Tally::default();
    let mut used_us = 0u64;
    // Start on a second's edge; what was used before does not count.
    let mut second = seconds();
    while seconds() == second {}
    second = seconds();
    count(&mut used_us);
    used_us = 0;
    // A second counts as hostile if the guest was hostile at any time in
    // it (as far as the meter saw).
    let mut was_hostile = false;
    loop {
        let mut x = 0u64;
        for i in 0..SPIN {
            x = black_box(x.wrapping_add(i));
        }
        count(&mut used_us);
        was_hostile |= phase() == HOSTILE;
        let now = seconds();
        if now != second {
            let secs = u64::from(now.wrapping_sub(second)).max(1);
            if was_hostile {
                hostile.add(secs, used_us);
            } else {
                calm.add(secs, used_us);
            }
            was_hostile = phase() == HOSTILE;
            second = now;
            used_us = 0;
        }
        let (_, badge) = syscall::poll(INPUT);
        if ChannelSet::from_bits(badge).contains(GUEST_OFF) {
            report(&calm, &hostile);
            println!("{}", report::ok("guest-off"));
            stop();
        }
    }
}

/// Judges the share: while the guest was hostile the meter must have had
/// at least [`MIN_FRACTION_PERCENT`]% of the CPU time per second it had
/// while the guest was calm, and no hostile second below
/// [`MIN_SECOND_PERCENT`]% of that (a guest that took the CPU away even for
/// one second would leave one near zero).
fn report(calm: &Tally, hostile: &Tally) {
    let nominal_ms = 1000 * METER_BUDGET_US / METER_PERIOD_US;
    println!(
        "meter: {} calm seconds gave it {} ms each ({}% of its nominal {nominal_ms} ms), {} hostile seconds {} ms each (worst {} ms)",
        calm.seconds,
        calm.per_second_ms(),
        calm.per_second_ms() * 100 / nominal_ms,
        hostile.seconds,
        hostile.per_second_ms(),
        hostile.worst_ms
    );
    if calm.seconds == 0 || hostile.seconds == 0 {
        println!(
            "{}",
            report::fail("full-share", &"no calm or no hostile second was measured")
        );
        return;
    }
    let calm_ms = calm.per_second_ms().max(1);
    let avg_pct = hostile.per_second_ms() * 100 / calm_ms;
    let worst_pct = hostile.worst_ms * 100 / calm_ms;
    if avg_pct >= MIN_FRACTION_PERCENT && worst_pct >= MIN_SECOND_PERCENT {
        println!("{}", report::ok("full-share"));
    } else {
        println!(
            "{}",
            report::fail(
                "full-share",
                &format_args!(
                    "hostile seconds gave {avg_pct}% of the calm ones (worst {worst_pct}%)"
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
