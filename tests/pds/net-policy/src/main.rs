//! The network stack's least authority, from a cell's side. Its
//! description allows it to listen on tcp/8081 and udp/5353 and to connect
//! to tcp/47011; everything else must be refused (an error here, a line
//! from the stack), and what is allowed must work: a second listener on
//! its own port is "in use", its sockets run out at its own quota, and a
//! connection to the host's tcp/47011 (the probe listens there) carries a
//! greeting.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

use septa_net_client::{Net, NetError, SocketState, Stream};
use septa_runtime::{println, protection_domain, ChannelSet, Handler};
use septa_test_report as report;

/// The host, as QEMU's user network shows it.
const HOST: [u8; 4] = [10, 0, 2, 2];
const GREETING: &[u8] = b"hello from a septa cell\n";

fn expect(case: &str, got: Result<(), NetError>, want: Result<(), NetError>) {
    if got == want {
        println!("{}", report::ok(case));
    } else {
        println!(
            "{}",
            report::fail(case, &format_args!("got {got:?}, want {want:?}"))
        );
    }
}

struct Policy {
    net: Net,
    stream: Option<Stream>,
    sent: usize,
    finished: bool,
}

impl Policy {
    fn step(&mut self) {
        if self.finished {
            return;
        }
        if self.stream.is_none() {
            // The connection waits for the stack's address.
            if !matches!(self.net.info(), Ok(i) if i.ip.is_some()) {
                return;
            }
            match self.net.connect(HOST, 47011) {
                Ok(s) => {
                    println!("{}", report::ok("connect-allowed"));
                    self.stream = Some(s);
                }
                Err(e) => {
                    println!("{}", report::fail("connect-allowed", &e));
                    self.finish();
                    return;
                }
            }
        }
        let Some(s) = &mut self.stream else { return };
        match s.state() {
            SocketState::Connecting => {}
            SocketState::Established | SocketState::PeerClosed => {
                while self.sent < GREETING.len() {
                    match s.send(&GREETING[self.sent..]) {
                        Ok(0) => return,
                        Ok(n) => self.sent += n,
                        Err(e) => {
                            println!("{}", report::fail("connect-greets", &e));
                            self.finish();
                            return;
                        }
                    }
                }
                println!("{}", report::ok("connect-greets"));
                self.finish();
            }
            other => {
                println!(
                    "{}",
                    report::fail(
                        "connect-greets",
                        &format_args!("the connection is {other:?}")
                    )
                );
                self.finish();
            }
        }
    }

    fn finish(&mut self) {
        if let Some(s) = self.stream.take() {
            s.close();
        }
        self.finished = true;
        println!("{}", report::DONE);
    }
}

impl Handler for Policy {
    fn notified(&mut self, channels: ChannelSet) {
        if channels.contains(self.net.channel()) {
            self.step();
        }
    }
}

fn init() -> Policy {
    let net = Net::get().expect("policy: not a cell of [net]");
    let denied = Err(NetError::Denied);
    expect("listen-refused", net.listen(81).map(drop), denied);
    expect("listen-refused-udp", net.udp_bind(53).map(drop), denied);
    expect("connect-refused", net.connect(HOST, 9).map(drop), denied);
    let l = net.listen(8081);
    expect(
        "listen-allowed",
        l.as_ref().map(|_| ()).map_err(|e| *e),
        Ok(()),
    );
    expect(
        "listen-in-use",
        net.listen(8081).map(drop),
        Err(NetError::InUse),
    );
    // Datagrams to a port the description does not name are dropped by
    // the stack, which says so; an allowed socket works.
    match net.udp_bind(5353) {
        Ok(mut u) => {
            println!("{}", report::ok("udp-allowed"));
            let _ = u.send_to(b"not allowed", HOST, 9);
        }
        Err(e) => println!("{}", report::fail("udp-allowed", &e)),
    }
    // Its own quota: UDP sockets run out (the stack keeps 2 per cell), and
    // then only for this cell.
    let mut held = 0;
    let quota = loop {
        match net.udp_bind(0) {
            // Kept open: a socket is given back only by `close`.
            Ok(_open) => {
                held += 1;
                if held > 8 {
                    break Err(NetError::Unknown);
                }
            }
            Err(e) => break Err(e),
        }
    };
    expect("quota", quota, Err(NetError::NoSockets));
    println!(
        "policy: {held} more UDP sockets before the quota, then {:?}",
        quota
    );
    Policy {
        net,
        stream: None,
        sent: 0,
        finished: false,
    }
}

protection_domain!(init);
