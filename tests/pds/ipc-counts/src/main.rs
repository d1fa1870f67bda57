//! # test-ipc-counts: traffic of a known size
//!
//! The same program runs as two PDs, told apart by their names. `caller`
//! (the lower priority) makes [`CALLS`] protected calls to `callee` on
//! channel 0, then signals it [`NOTIFICATIONS`] times; `callee` (the
//! higher priority) answers each call and counts what it got. Each signal
//! wakes `callee` at once (it outranks the signaller), so none is merged
//! with another. Both runtimes count their own IPC into the pages
//! `[stats]` gives them; the host's probe reads the statistics console
//! and checks the counts are exactly this traffic
//! (`tests/systems/ipc-counts/probe`).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

use septa_runtime::MessageInfo;
use septa_runtime::{msginfo_new, println, protection_domain, Channel, ChannelSet, Handler};
use septa_test_report as report;

/// What `caller` sends.
const CALLS: u32 = 250;
const NOTIFICATIONS: u32 = 1_000;
/// Both ends name the other channel 0.
const PEER: Channel = Channel::new(0);

#[derive(Default)]
struct Callee {
    calls: u32,
    notifications: u32,
}

impl Handler for Callee {
    fn notified(&mut self, channels: ChannelSet) {
        if channels.contains(PEER) {
            self.notifications += 1;
        }
        if self.notifications == NOTIFICATIONS {
            println!(
                "callee: {} calls answered, {} notifications",
                self.calls, self.notifications
            );
            let ok = self.calls == CALLS;
            if ok {
                println!("{}", report::ok("callee-got-the-traffic"));
            } else {
                println!(
                    "{}",
                    report::fail(
                        "callee-got-the-traffic",
                        &format_args!("{} calls", self.calls)
                    )
                );
            }
            println!("{}", report::DONE);
        }
    }

    fn protected(&mut self, _: Channel, msg: MessageInfo) -> MessageInfo {
        self.calls += 1;
        msginfo_new(msg.label() + 1, 0)
    }
}

struct Caller;

impl Handler for Caller {
    fn notified(&mut self, _: ChannelSet) {}
}

enum Role {
    Caller(Caller),
    Callee(Callee),
}

impl Handler for Role {
    fn notified(&mut self, channels: ChannelSet) {
        match self {
            Role::Caller(c) => c.notified(channels),
            Role::Callee(c) => c.notified(channels),
        }
    }

    fn protected(&mut self, ch: Channel, msg: MessageInfo) -> MessageInfo {
        match self {
            Role::Caller(_) => msginfo_new(0, 0),
            Role::Callee(c) => c.protected(ch, msg),
        }
    }
}

fn init() -> Role {
    if septa_runtime::pd_name().as_str() != "caller" {
        return Role::Callee(Callee::default());
    }
    // The first call also waits until `callee` is in its event loop.
    let mut answered = 0;
    for i in 0..CALLS {
        if PEER
            .pp_call(msginfo_new(u64::from(i), 0))
            .is_ok_and(|r| r.label() == u64::from(i) + 1)
        {
            answered += 1;
        }
    }
    for _ in 0..NOTIFICATIONS {
        let _ = PEER.notify();
    }
    println!("caller: {answered} of {CALLS} calls answered, {NOTIFICATIONS} notifications sent");
    Role::Caller(Caller)
}

protection_domain!(init);
