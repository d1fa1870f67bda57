//! The smallest protection domain: says hello, then echoes protected calls
//! and reports notifications. Build it with
//! `cargo build -p septa-runtime --target aarch64-unknown-none --example hello`
//! (it links with the PD linker script like every PD: see the crate docs).
#![cfg_attr(target_os = "none", no_std, no_main)]

use septa_runtime::{
    mr_get, mr_set, println, protection_domain, Channel, ChannelSet, Handler, MessageInfo,
};

struct Hello;

impl Handler for Hello {
    fn notified(&mut self, channels: ChannelSet) {
        log::info!("notified on {channels}");
    }

    fn protected(&mut self, channel: Channel, msg: MessageInfo) -> MessageInfo {
        // Echo the first word back, doubled.
        mr_set(0, mr_get(0).wrapping_mul(2));
        log::info!("call on channel {channel} with label {}", msg.label());
        MessageInfo::new(0, 0, 0, 1)
    }
}

fn init() -> Hello {
    println!("hello from {}", septa_runtime::pd_name());
    Hello
}

protection_domain!(init);
