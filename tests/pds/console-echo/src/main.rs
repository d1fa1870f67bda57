//! # test-console-echo: the host talks to a PD through a virtio console
//!
//! A client of the `virtio-console` driver (channel 0, which may call the
//! driver). At start-up it reads once, which returns only after the driver
//! has brought the device up, and prints the marker the host probe waits
//! for. Then, each time the driver notifies it, it reads the input; every
//! complete line it answers with the line upper-cased, through the driver.
//! The line `bye` ends the test. What the host sees is judged by the host
//! (tests/systems/console-probe/probe); this PD judges that the driver
//! answers its calls. Owns nothing but its line buffer.
#![cfg_attr(target_os = "none", no_std, no_main)]

use septa_runtime::{mr_get, mr_set, msginfo_new, println, protection_domain};
use septa_runtime::{Channel, ChannelSet, Handler, MessageInfo};
use septa_serial_protocol::calls::{self as protocol, MAX_BYTES};
use septa_test_report as report;

const DRIVER: Channel = Channel::new(0);
/// The line that ends the test.
const BYE: &[u8] = b"bye";
/// The longest line kept; longer ones are cut.
const LINE: usize = 256;

/// One call to the driver; `None` (after saying why) if it failed.
fn call(msg: MessageInfo) -> Option<MessageInfo> {
    match DRIVER.pp_call(msg) {
        Ok(reply) if reply.label() == protocol::OK => Some(reply),
        Ok(reply) => {
            let why = format_args!("error reply {}", reply.label());
            println!("{}", report::fail("console-driver", &why));
            None
        }
        Err(e) => {
            println!("{}", report::fail("console-driver", &e));
            None
        }
    }
}

fn send(bytes: &[u8]) -> bool {
    bytes.chunks(MAX_BYTES).all(|chunk| {
        let used = protocol::pack(chunk, mr_set);
        call(msginfo_new(protocol::WRITE, used as u64)).is_some()
    })
}

struct Echo {
    line: [u8; LINE],
    len: usize,
    lines: usize,
}

impl Echo {
    /// Answers a complete line; returns false once it was `bye`.
    fn answer(&mut self) -> bool {
        let line = &self.line[..self.len];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line == BYE {
            return false;
        }
        let mut out = [0u8; LINE + 1];
        let n = line.len();
        for (o, c) in out.iter_mut().zip(line) {
            *o = c.to_ascii_uppercase();
        }
        out[n] = b'\n';
        self.lines += 1;
        send(&out[..=n])
    }
}

impl Handler for Echo {
    fn notified(&mut self, channels: ChannelSet) {
        if !channels.contains(DRIVER) {
            return;
        }
        let mut buf = [0u8; MAX_BYTES];
        loop {
            let Some(_) = call(msginfo_new(protocol::READ, 0)) else {
                println!("{}", report::DONE);
                return;
            };
            let Some(bytes) = protocol::unpack(&mut buf, mr_get) else {
                println!("{}", report::fail("console-driver", &"malformed reply"));
                println!("{}", report::DONE);
                return;
            };
            if bytes.is_empty() {
                return;
            }
            for &b in bytes {
                if b != b'\n' {
                    if self.len < LINE {
                        self.line[self.len] = b;
                        self.len += 1;
                    }
                    continue;
                }
                let more = self.answer();
                self.len = 0;
                if !more {
                    println!("console-echo: answered {} lines", self.lines);
                    println!("{}", report::ok("console-lines"));
                    println!("{}", report::DONE);
                    return;
                }
            }
        }
    }
}

fn init() -> Echo {
    // The driver serves calls only once its device is up.
    if call(msginfo_new(protocol::READ, 0)).is_some() {
        println!("{}", report::ok("console-driver"));
        println!("console-echo: ready");
    } else {
        println!("{}", report::DONE);
    }
    Echo {
        line: [0; LINE],
        len: 0,
        lines: 0,
    }
}

protection_domain!(init);
