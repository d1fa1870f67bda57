//! # test-misuse: channels the description does not grant
//!
//! As PD `misuse`, it notifies, calls and acknowledges on channels it was
//! not given. Each must be refused by the runtime (with a line on the
//! console, which the system's `expect` file checks) and reported as an
//! error, and nothing may reach the kernel; the one channel it was given
//! must still work: PD `sink` (the same program) reports the signal and
//! ends the test. Owns nothing.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

use septa_runtime::{
    msginfo_new, println, protection_domain, Channel, ChannelError, ChannelSet, Handler,
};
use septa_test_report as report;

/// The one channel of the system, id 0 at both ends.
const GRANTED: Channel = Channel::new(0);

enum Role {
    Misuse,
    Sink,
}

impl Handler for Role {
    fn notified(&mut self, channels: ChannelSet) {
        if let Role::Sink = self {
            // `misuse` signals only when every refusal came as it should.
            if channels.contains(GRANTED) {
                println!("{}", report::ok("misuse"));
            } else {
                println!(
                    "{}",
                    report::fail("misuse", &format_args!("sink notified on {channels}"))
                );
            }
            println!("{}", report::DONE);
        }
    }
}

/// Tries everything that must be refused; true if all were.
fn misuse() -> bool {
    let mut ok = true;
    let mut check = |what: &str, got: Result<(), ChannelError>, want: ChannelError| {
        if got != Err(want) {
            ok = false;
            println!(
                "{}",
                report::fail("misuse", &format_args!("{what} gave {got:?}, not {want:?}"))
            );
        }
    };
    check(
        "notify 5",
        Channel::new(5).notify(),
        ChannelError::NotNotification,
    );
    check(
        "pp_call 0",
        GRANTED.pp_call(msginfo_new(0, 0)).map(drop),
        ChannelError::NotPp,
    );
    check("irq_ack 0", GRANTED.irq_ack(), ChannelError::NotIrq);
    check(
        "notify 62",
        Channel::new(62).notify(),
        ChannelError::OutOfRange,
    );
    ok
}

fn init() -> Role {
    if septa_runtime::pd_name().as_str() == "sink" {
        return Role::Sink;
    }
    let ok = misuse();
    // Tell the sink how it went: a second signal on the granted channel
    // would merge with the first, so success is the only signal sent.
    if ok {
        let _ = GRANTED.notify();
    } else {
        println!("{}", report::DONE);
    }
    Role::Misuse
}

protection_domain!(init);
