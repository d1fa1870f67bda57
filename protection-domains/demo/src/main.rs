//! # septa-demo: the protection domains of the default system
//!
//! One program, three roles by the PD's name (patched in by the tool):
//! - `counter`: a passive server (it runs on its callers' time); each
//!   protected call adds one to the visit count it keeps in the shared
//!   region `stats` and returns the new count;
//! - `greeter`: calls `counter` a few times, then notifies `listener`;
//! - `listener`: woken by that notification, reads the count from `stats`
//!   (mapped read-only into it) and reports.
//!
//! The listener also prints the harness's result lines, so the test suite
//! boots the README's default system too.
#![cfg_attr(target_os = "none", no_std, no_main)]

use septa_runtime::{
    mr_get, mr_set, msginfo_new, println, protection_domain, setvar, Channel, ChannelSet, Handler,
    MessageInfo,
};
use septa_test_report as report;

/// Calls the greeter makes.
const VISITS: u64 = 3;
/// The greeter's channel to the counter, and to the listener.
const TO_COUNTER: Channel = Channel::new(0);
const TO_LISTENER: Channel = Channel::new(1);

setvar! {
    /// Where the shared `stats` region is mapped in this PD.
    static STATS = "stats";
}

fn count() -> u64 {
    // SAFETY: the tool maps `stats` at STATS in the counter (read-write)
    // and the listener (read-only); the word is written only by the
    // counter and read with a volatile load.
    unsafe { STATS.as_ptr::<u64>().read_volatile() }
}

enum Role {
    Counter,
    Greeter,
    Listener,
}

impl Handler for Role {
    fn protected(&mut self, _ch: Channel, _msg: MessageInfo) -> MessageInfo {
        let n = count() + 1;
        // SAFETY: as in `count`; only the counter writes, and it is the
        // counter that runs this.
        unsafe { STATS.as_ptr::<u64>().write_volatile(n) };
        mr_set(0, n);
        msginfo_new(0, 1)
    }

    fn notified(&mut self, _channels: ChannelSet) {
        let n = count();
        println!("listener: the counter has recorded {n} visits");
        if n == VISITS {
            println!("{}", report::ok("default-system"));
        } else {
            println!(
                "{}",
                report::fail(
                    "default-system",
                    &format_args!("{n} visits recorded, {VISITS} made")
                )
            );
        }
        println!("{}", report::DONE);
    }
}

fn init() -> Role {
    match septa_runtime::pd_name().as_str() {
        "counter" => Role::Counter,
        "listener" => Role::Listener,
        _ => {
            println!("greeter: hello from a protection domain on Septa");
            for _ in 0..VISITS {
                match TO_COUNTER.pp_call(msginfo_new(0, 0)) {
                    Ok(_) => println!("greeter: the counter says this is visit {}", mr_get(0)),
                    Err(e) => println!("greeter: the call failed: {e:?}"),
                }
            }
            let _ = TO_LISTENER.notify();
            Role::Greeter
        }
    }
}

protection_domain!(init);
