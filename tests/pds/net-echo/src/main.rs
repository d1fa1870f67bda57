//! A cell that echoes: every byte a TCP connection to port 7 sends comes
//! back on it (a connection whose echo cannot go out yet stops being read,
//! so TCP's window holds the sender back), and every UDP datagram to port 7
//! goes back to its sender. It reports `ok echo-listening` and `done` once
//! both sockets are open: the host's probe does the rest.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

use septa_net_client::{Listener, Net, Read, Stream, UdpSocket};
use septa_runtime::{println, protection_domain, ChannelSet, Handler};
use septa_test_report as report;

const PORT: u16 = 7;
const MAX: usize = 4;
const CHUNK: usize = 16 * 1024;

struct Conn {
    stream: Stream,
    /// Bytes read and not yet sent back.
    pending: heapless::Vec<u8, CHUNK>,
    done: usize,
    eof: bool,
}

struct Echo {
    net: Net,
    listener: Listener,
    udp: UdpSocket,
    conns: heapless::Vec<Conn, MAX>,
}

impl Conn {
    /// Moves the connection on; `false` once it is over.
    fn serve(&mut self) -> bool {
        loop {
            while self.done < self.pending.len() {
                match self.stream.send(&self.pending[self.done..]) {
                    Ok(0) => return true,
                    Ok(n) => self.done += n,
                    Err(_) => return false,
                }
            }
            self.pending.clear();
            self.done = 0;
            if self.eof {
                return false;
            }
            let mut buf = [0u8; CHUNK];
            match self.stream.recv(&mut buf) {
                Ok(Read::Data(n)) => {
                    let _ = self.pending.extend_from_slice(&buf[..n]);
                }
                Ok(Read::WouldBlock) => return true,
                Ok(Read::Eof) => self.eof = true,
                Err(_) => return false,
            }
        }
    }
}

impl Echo {
    fn run(&mut self) {
        while !self.conns.is_full() {
            match self.listener.accept() {
                Ok(Some(stream)) => {
                    let _ = self.conns.push(Conn {
                        stream,
                        pending: heapless::Vec::new(),
                        done: 0,
                        eof: false,
                    });
                }
                _ => break,
            }
        }
        let mut i = 0;
        while i < self.conns.len() {
            if self.conns[i].serve() {
                i += 1;
            } else {
                self.conns.swap_remove(i).stream.close();
            }
        }
        let mut buf = [0u8; 2048];
        while let Ok(Some((n, ip, port))) = self.udp.recv_from(&mut buf) {
            if !matches!(self.udp.send_to(&buf[..n], ip, port), Ok(true)) {
                break;
            }
        }
    }
}

impl Handler for Echo {
    fn notified(&mut self, channels: ChannelSet) {
        if channels.contains(self.net.channel()) {
            self.run();
        }
    }
}

fn init() -> Echo {
    let net = Net::get().expect("echo: not a cell of [net]");
    let listener = net.listen(PORT);
    let udp = net.udp_bind(PORT);
    let (Ok(listener), Ok(udp)) = (listener, udp) else {
        println!(
            "{}",
            report::fail("echo-listening", &"cannot listen on tcp/7 and udp/7")
        );
        println!("{}", report::DONE);
        panic!("echo: no sockets");
    };
    println!("echo: echoing tcp/{PORT} and udp/{PORT}");
    println!("{}", report::ok("echo-listening"));
    println!("{}", report::DONE);
    Echo {
        net,
        listener,
        udp,
        conns: heapless::Vec::new(),
    }
}

protection_domain!(init);
