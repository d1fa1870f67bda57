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
//!
//! The greeter and the listener are clients of the serial subsystem
//! (`[serial]` in `system.toml`): they print through it, and each echoes
//! the lines typed to it (`cargo septa run`, then Ctrl-\, 0 or 1, Enter to
//! choose which).
#![cfg_attr(target_os = "none", no_std, no_main)]

use septa_runtime::{
    mr_get, mr_set, msginfo_new, println, protection_domain, serial, setvar, Channel, ChannelSet,
    Handler, MessageInfo,
};
use septa_test_report as report;

/// Calls the greeter makes.
const VISITS: u64 = 3;
/// The longest line of input echoed.
const LINE_MAX: usize = 80;
/// The greeter's channel to the counter, and to the listener.
const TO_COUNTER: Channel = Channel::new(0);
const TO_LISTENER: Channel = Channel::new(1);
/// The listener's channel from the greeter.
const FROM_GREETER: Channel = Channel::new(0);

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

/// A PD of the demo: its role, and the line being typed to it.
struct Demo {
    role: Role,
    line: [u8; LINE_MAX],
    len: usize,
}

impl Demo {
    fn name(&self) -> &'static str {
        match self.role {
            Role::Counter => "counter",
            Role::Greeter => "greeter",
            Role::Listener => "listener",
        }
    }

    /// Echoes each line typed to this PD.
    fn input(&mut self) {
        let mut buf = [0u8; 32];
        loop {
            let n = serial::read(&mut buf);
            if n == 0 {
                return;
            }
            for &b in &buf[..n] {
                if b == b'\r' || b == b'\n' {
                    let typed = core::str::from_utf8(&self.line[..self.len]).unwrap_or("?");
                    println!("{}: you typed {typed:?}", self.name());
                    self.len = 0;
                } else if self.len < LINE_MAX {
                    self.line[self.len] = b;
                    self.len += 1;
                }
            }
        }
    }
}

impl Handler for Demo {
    fn protected(&mut self, ch: Channel, msg: MessageInfo) -> MessageInfo {
        self.role.protected(ch, msg)
    }

    fn notified(&mut self, channels: ChannelSet) {
        if serial::input_channel().is_some_and(|ch| channels.contains(ch)) {
            self.input();
        }
        if let Role::Listener = self.role {
            if channels.contains(FROM_GREETER) {
                self.role.notified(channels);
            }
        }
    }
}

impl Role {
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

fn init() -> Demo {
    let role = match septa_runtime::pd_name().as_str() {
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
    };
    Demo {
        role,
        line: [0; LINE_MAX],
        len: 0,
    }
}

protection_domain!(init);
