//! # test-timer: clients of the timer driver
//!
//! One program, the role by the PD's name (tests/systems/timer):
//!
//! - `tick_3ms` and `tick_5ms` ask for a periodic timeout (3 and 5 ms);
//! - `once_7ms` asks for a one-shot timeout of 7 ms and asks again each
//!   time it comes, as an sDDF client does.
//!
//! Each takes [`TICKS`] timeouts. For the k-th it reads the time and
//! checks it is not before the timeout was due (the start, read just
//! before asking, plus k periods; the driver's own start is a little
//! later, so this bound is safe) and at most [`TOLERANCE_NS`] after it: the
//! system runs under `-icount`, where QEMU's clock follows the
//! instructions, so lateness is only the work between the timer's
//! interrupt and the client (about 20 µs here). Any other notification, a
//! timeout early, late or out of order, is a failure. The last client to
//! finish, `once_7ms` (20 x 7 ms, and each re-arming a little later),
//! says `done`.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

use septa_runtime::{println, protection_domain, timer, ChannelSet, Handler};
use septa_test_report as report;

/// Timeouts each client takes.
const TICKS: u64 = 20;
/// How late a timeout may be seen, in nanoseconds of QEMU's clock.
const TOLERANCE_NS: u64 = 200_000;
const MS: u64 = 1_000_000;

struct Client {
    name: &'static str,
    period: u64,
    periodic: bool,
    /// When the current period (or one-shot) was counted from.
    start: u64,
    /// Timeouts taken.
    seen: u64,
    /// The time the last one was seen at.
    last: u64,
    failed: bool,
}

impl Client {
    fn fail(&mut self, why: core::fmt::Arguments<'_>) {
        if !self.failed {
            self.failed = true;
            println!("{}", report::fail(self.name, &why));
            println!("{}", report::DONE);
        }
    }

    fn arm(&mut self) {
        let start = match timer::now() {
            Ok(t) => t,
            Err(e) => return self.fail(format_args!("time: {e}")),
        };
        self.start = start;
        let r = if self.periodic {
            timer::set_periodic(self.period)
        } else {
            timer::set_timeout(self.period)
        };
        if let Err(e) = r {
            self.fail(format_args!("arming: {e}"));
        }
    }
}

impl Handler for Client {
    fn notified(&mut self, channels: ChannelSet) {
        let Some(ch) = timer::channel() else { return };
        if !channels.contains(ch) || self.failed {
            let why = format_args!("a notification on {channels}, not the timer's {ch}");
            return self.fail(why);
        }
        let now = match timer::now() {
            Ok(t) => t,
            Err(e) => return self.fail(format_args!("time: {e}")),
        };
        self.seen += 1;
        let seen = self.seen;
        let k = if self.periodic { self.seen } else { 1 };
        let due = self.start + k * self.period;
        if now < due {
            let why = format_args!("timeout {seen} seen at {now} ns, {} ns early", due - now);
            return self.fail(why);
        }
        if now - due > TOLERANCE_NS {
            let why = format_args!("timeout {seen} seen {} ns late", now - due);
            return self.fail(why);
        }
        if now <= self.last {
            return self.fail(format_args!("timeout {seen} out of order"));
        }
        self.last = now;
        if self.seen < TICKS {
            if !self.periodic {
                self.arm();
            }
            return;
        }
        if let Err(e) = timer::cancel() {
            return self.fail(format_args!("cancel: {e}"));
        }
        println!(
            "{}: {TICKS} timeouts every {} ms, each within {} us of due",
            self.name,
            self.period / MS,
            TOLERANCE_NS / 1000
        );
        println!("{}", report::ok(self.name));
        // The one-shot client finishes last (20 x 7 ms and more), so it
        // says done.
        if self.name == "once_7ms" {
            println!("{}", report::DONE);
        }
    }
}

fn init() -> Client {
    let (name, period, periodic) = match septa_runtime::pd_name().as_str() {
        "tick_3ms" => ("tick_3ms", 3 * MS, true),
        "tick_5ms" => ("tick_5ms", 5 * MS, true),
        "once_7ms" => ("once_7ms", 7 * MS, false),
        other => panic!("no timer test role for PD {other:?}"),
    };
    let mut c = Client {
        name,
        period,
        periodic,
        start: 0,
        seen: 0,
        last: 0,
        failed: false,
    };
    if timer::channel().is_none() {
        c.fail(format_args!("not a timer client"));
        return c;
    }
    c.arm();
    c
}

protection_domain!(init);
