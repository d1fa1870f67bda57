//! A cell that echoes (`test_net_echo::Echo`: TCP and UDP port 7). It
//! reports `ok echo-listening` and `done` once both sockets are open: the
//! host's probe does the rest.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

use septa_runtime::{println, protection_domain, ChannelSet, Handler};
use septa_test_report as report;
use test_net_echo::{Echo, PORT};

struct Cell(Echo);

impl Handler for Cell {
    fn notified(&mut self, channels: ChannelSet) {
        if channels.contains(self.0.channel()) {
            self.0.run();
        }
    }
}

fn init() -> Cell {
    let echo = Echo::new().unwrap_or_else(|e| {
        println!("{}", report::fail("echo-listening", &e));
        println!("{}", report::DONE);
        panic!("echo: {e}");
    });
    println!("echo: echoing tcp/{PORT} and udp/{PORT}");
    println!("{}", report::ok("echo-listening"));
    println!("{}", report::DONE);
    Cell(echo)
}

protection_domain!(init);
