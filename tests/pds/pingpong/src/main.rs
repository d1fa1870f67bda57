//! # test-pingpong: notification ping-pong
//!
//! The same program runs as two PDs, told apart by the name the tool
//! patches in. `ping` signals `pong` on channel 0 and counts a round trip
//! each time `pong` signals back; after [`ROUND_TRIPS`] it prints the
//! result. `pong` answers every signal. Owns nothing else.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

use septa_runtime::{println, protection_domain, Channel, ChannelSet, Handler};
use septa_test_report as report;

/// Round trips `ping` makes before it reports.
const ROUND_TRIPS: u32 = 10_000;
/// Both ends name the other end channel 0.
const PEER: Channel = Channel::new(0);

struct PingPong {
    ping: bool,
    trips: u32,
}

impl Handler for PingPong {
    fn notified(&mut self, channels: ChannelSet) {
        if !channels.contains(PEER) {
            println!(
                "{}",
                report::fail("pingpong", &format_args!("notified on {channels}"))
            );
            return;
        }
        if !self.ping {
            let _ = PEER.notify();
            return;
        }
        self.trips += 1;
        if self.trips == ROUND_TRIPS {
            println!("ping: {} round trips", self.trips);
            println!("{}", report::ok("pingpong"));
            println!("{}", report::DONE);
        } else {
            let _ = PEER.notify();
        }
    }
}

fn init() -> PingPong {
    let ping = septa_runtime::pd_name().as_str() == "ping";
    if ping {
        // Deferred, so the first signal goes out with our first receive.
        let _ = PEER.deferred_notify();
    }
    PingPong { ping, trips: 0 }
}

protection_domain!(init);
