//! The echo cell's logic, shared by the test PDs that echo: every byte a
//! TCP connection to port 7 sends comes back on it (a connection whose
//! echo cannot go out yet stops being read, so TCP's window holds the
//! sender back), and every UDP datagram to port 7 goes back to its sender.
#![no_std]
#![forbid(unsafe_code)]

use septa_net_client::{Listener, Net, Read, Stream, UdpSocket};

pub const PORT: u16 = 7;
const MAX: usize = 4;
const CHUNK: usize = 16 * 1024;

struct Conn {
    stream: Stream,
    /// Bytes read and not yet sent back.
    pending: heapless::Vec<u8, CHUNK>,
    done: usize,
    eof: bool,
}

pub struct Echo {
    net: Net,
    listener: Listener,
    udp: UdpSocket,
    conns: heapless::Vec<Conn, MAX>,
    /// TCP bytes sent back so far, over every connection.
    pub echoed: u64,
}

impl Conn {
    /// Moves the connection on; `false` once it is over.
    fn serve(&mut self, echoed: &mut u64) -> bool {
        loop {
            while self.done < self.pending.len() {
                match self.stream.send(&self.pending[self.done..]) {
                    Ok(0) => return true,
                    Ok(n) => {
                        self.done += n;
                        *echoed += n as u64;
                    }
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
    /// Listens on tcp/7 and binds udp/7 (the cell must be of `[net]`).
    pub fn new() -> Result<Echo, &'static str> {
        let net = Net::get().ok_or("not a cell of [net]")?;
        let listener = net.listen(PORT);
        let udp = net.udp_bind(PORT);
        let (Ok(listener), Ok(udp)) = (listener, udp) else {
            return Err("cannot listen on tcp/7 and udp/7");
        };
        Ok(Echo {
            net,
            listener,
            udp,
            conns: heapless::Vec::new(),
            echoed: 0,
        })
    }

    /// The stack's channel: call [`run`](Self::run) when it fires.
    pub fn channel(&self) -> septa_runtime::Channel {
        self.net.channel()
    }

    /// Sends one datagram from udp/7 (the cell must be allowed to send
    /// to `port`); `false` if there is no room now.
    pub fn send_datagram(&mut self, payload: &[u8], ip: [u8; 4], port: u16) -> bool {
        matches!(self.udp.send_to(payload, ip, port), Ok(true))
    }

    /// Accepts, echoes and closes what can be now.
    pub fn run(&mut self) {
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
            if self.conns[i].serve(&mut self.echoed) {
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
