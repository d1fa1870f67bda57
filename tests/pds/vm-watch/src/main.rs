//! # test-vm-watch: what the VM test systems check from beside the guest
//!
//! One program, its role chosen by the PD's name:
//!
//! - `watch`: the VMM notifies it (channel 0, the VMM's
//!   `vmm_guest_off_channel`) when its guest powers off; it reports the
//!   case `guest-off` and ends the test. The host probe has driven the guest
//!   there through its console (`tests/systems/vm-*/probe`).
#![cfg_attr(target_os = "none", no_std, no_main)]

use septa_runtime::{println, protection_domain, Channel, ChannelSet, Handler};

/// From the VMM: its guest powered off.
const GUEST_OFF: Channel = Channel::new(0);

struct Watch;

impl Handler for Watch {
    fn notified(&mut self, channels: ChannelSet) {
        if channels.contains(GUEST_OFF) {
            println!("[septa-test] ok guest-off");
            println!("[septa-test] done");
        }
    }
}

fn init() -> Watch {
    Watch
}

protection_domain!(init);
