//! # septa-net-client: a cell's sockets
//!
//! A cell of `[net]` is patched with its channel to the network stack and
//! where its socket region is (`septa-net-protocol`'s `wiring::cell`).
//! This crate turns those into sockets: [`Net::listen`] then
//! [`Listener::accept`], [`Net::connect`], [`Stream::send`] and
//! [`Stream::recv`], [`Net::udp_bind`] then [`UdpSocket::send_to`] and
//! [`UdpSocket::recv_from`]. Every call is non-blocking: a cell is event
//! driven, and the stack notifies [`Net::channel`] whenever something
//! changed in its region (data, a connection, a state), so the cell's
//! `notified` retries what could not be done.
//!
//! Control goes by protected procedure call (the stack runs above its
//! cells); bytes go through each socket's two rings, and the stack is
//! notified after each send and each read that freed room it asked for.
//! A refused call (the description does not allow the port) is an
//! [`Error::Denied`] here and a line on the console from the stack.
//!
//! Owns: the cell's ends of its rings. Must not: touch another slot's
//! rings than the sockets it holds.
#![no_std]

use septa_net_protocol::calls::{self, Error, Stats};
use septa_net_protocol::config::PdNames;
use septa_net_protocol::sockets::{self as layout, Dgram, State};
use septa_queue::serial::{Consumer, Producer};
use septa_queue::Shared;
use septa_runtime::{mr_get, mr_set, msginfo_new, setvar, Channel};

pub use septa_net_protocol::calls::Error as NetError;
pub use septa_net_protocol::sockets::State as SocketState;

setvar! {
    static CHANNEL = "septa_net_channel";
    static SOCKETS = "septa_net_sockets";
    static SOCKETS_SIZE = "septa_net_sockets_size";
}

septa_runtime::patched! {
    static PDS: [u8; PdNames::SIZE] = "septa_net_pds", [0; PdNames::SIZE];
}

/// The names of the system's PDs (as many as [`PdNames::MAX`]), which the
/// tool writes into every cell.
pub fn system_pds() -> PdNames {
    PdNames::decode(&PDS.get())
}

/// The cell's connection to the stack.
#[derive(Clone, Copy, Debug)]
pub struct Net {
    chan: Channel,
    mem: Shared,
}

/// What the stack's `INFO` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Info {
    /// The stack's IPv4 address; `None` until DHCP has answered.
    pub ip: Option<[u8; 4]>,
    pub prefix: u8,
    pub gateway: [u8; 4],
    pub mac: [u8; 6],
}

/// What a read found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    /// This many bytes.
    Data(usize),
    /// Nothing yet.
    WouldBlock,
    /// The peer closed its side and everything it sent has been read.
    Eof,
}

impl Net {
    /// The stack, if this PD is a cell of `[net]`.
    pub fn get() -> Option<Net> {
        let ch = CHANNEL.get();
        if !(1..=64).contains(&ch) || (SOCKETS_SIZE.get() as usize) < layout::REGION_SIZE as usize {
            return None;
        }
        // SAFETY: the tool maps the cell's socket region read-write at the
        // patched address with the patched size (checked above to hold
        // every slot) for the PD's whole life, and this crate touches it
        // only through `Shared`.
        let mem = unsafe { Shared::new(SOCKETS.addr() as *mut u8, layout::REGION_SIZE as usize) }?;
        Some(Net {
            chan: Channel::new((ch - 1) as u8),
            mem,
        })
    }

    /// The channel on which the stack notifies this cell.
    pub fn channel(&self) -> Channel {
        self.chan
    }

    fn call(&self, label: u64, args: &[u64]) -> Result<u64, Error> {
        for (i, a) in args.iter().enumerate() {
            mr_set(i, *a);
        }
        let reply = self
            .chan
            .pp_call(msginfo_new(label, args.len() as u64))
            .map_err(|_| Error::Unknown)?;
        match reply.label() {
            calls::OK => Ok(mr_get(0)),
            e => Err(Error::from_label(e)),
        }
    }

    fn rings(&self, slot: usize) -> (Consumer, Producer) {
        let base = layout::slot(slot);
        let w = |at, len| self.mem.window(base + at, len).expect("inside the region");
        let ring = layout::RING as usize;
        let rx = Consumer::attach(
            w(layout::RX_QUEUE, 12),
            w(layout::RX_DATA, ring),
            layout::RING,
        )
        .expect("a slot's receive ring");
        let tx = Producer::attach(
            w(layout::TX_QUEUE, 12),
            w(layout::TX_DATA, ring),
            layout::RING,
        )
        .expect("a slot's send ring");
        (rx, tx)
    }

    fn slot(&self, v: u64) -> Result<usize, Error> {
        let s = v as usize;
        if s < layout::SLOTS {
            Ok(s)
        } else {
            Err(Error::Invalid)
        }
    }

    fn stream(&self, slot: usize) -> Stream {
        let (rx, tx) = self.rings(slot);
        Stream {
            net: *self,
            slot,
            rx,
            tx,
        }
    }

    /// Listens on TCP `port`.
    pub fn listen(&self, port: u16) -> Result<Listener, Error> {
        let slot = self.slot(self.call(calls::LISTEN, &[u64::from(port)])?)?;
        Ok(Listener { net: *self, slot })
    }

    /// Connects to `ip`:`port` over TCP; the stream is
    /// [`State::Connecting`] until the stack says otherwise.
    pub fn connect(&self, ip: [u8; 4], port: u16) -> Result<Stream, Error> {
        let slot =
            self.slot(self.call(calls::CONNECT, &[calls::ip_to_word(ip), u64::from(port)])?)?;
        Ok(self.stream(slot))
    }

    /// A UDP socket on `port` (0: a port the stack picks, for sending).
    pub fn udp_bind(&self, port: u16) -> Result<UdpSocket, Error> {
        let slot = self.slot(self.call(calls::UDP_BIND, &[u64::from(port)])?)?;
        let (rx, tx) = self.rings(slot);
        Ok(UdpSocket {
            net: *self,
            slot,
            rx,
            tx,
        })
    }

    /// The stack's address.
    pub fn info(&self) -> Result<Info, Error> {
        let ip = self.call(calls::INFO, &[])?;
        let m = mr_get(3).to_le_bytes();
        Ok(Info {
            ip: (ip != 0).then(|| calls::word_to_ip(ip)),
            prefix: mr_get(1) as u8,
            gateway: calls::word_to_ip(mr_get(2)),
            mac: [m[0], m[1], m[2], m[3], m[4], m[5]],
        })
    }

    /// The stack's counters.
    pub fn stats(&self) -> Result<Stats, Error> {
        self.call(calls::STATS, &[])?;
        Ok(Stats::from_words(core::array::from_fn(mr_get)))
    }

    fn state(&self, slot: usize) -> State {
        let mut b = [0u8; 4];
        let _ = self.mem.read(layout::slot(slot) + layout::STATE, &mut b);
        State::from_u32(u32::from_le_bytes(b))
    }

    fn header_u32(&self, slot: usize, at: usize) -> u32 {
        let mut b = [0u8; 4];
        let _ = self.mem.read(layout::slot(slot) + at, &mut b);
        u32::from_le_bytes(b)
    }

    fn close(&self, slot: usize) {
        let _ = self.call(calls::CLOSE, &[slot as u64]);
    }

    fn wake_stack(&self) {
        let _ = self.chan.notify();
    }
}

/// A TCP listener.
#[derive(Debug)]
pub struct Listener {
    net: Net,
    slot: usize,
}

impl Listener {
    /// The next connection, if one waits.
    pub fn accept(&self) -> Result<Option<Stream>, Error> {
        if self.net.header_u32(self.slot, layout::WAITING) == 0 {
            return Ok(None);
        }
        match self.net.call(calls::ACCEPT, &[self.slot as u64]) {
            Ok(s) => Ok(Some(self.net.stream(self.net.slot(s)?))),
            Err(Error::WouldBlock) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Stops listening.
    pub fn close(self) {
        self.net.close(self.slot);
    }
}

/// A TCP connection.
#[derive(Debug)]
pub struct Stream {
    net: Net,
    slot: usize,
    rx: Consumer,
    tx: Producer,
}

impl Stream {
    pub fn state(&self) -> State {
        self.net.state(self.slot)
    }

    /// The peer's address and port.
    pub fn peer(&self) -> ([u8; 4], u16) {
        let mut ip = [0u8; 4];
        let mut port = [0u8; 2];
        let base = layout::slot(self.slot);
        let _ = self.net.mem.read(base + layout::REMOTE_IP, &mut ip);
        let _ = self.net.mem.read(base + layout::REMOTE_PORT, &mut port);
        (ip, u16::from_le_bytes(port))
    }

    /// Reads what has arrived.
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<Read, Error> {
        // The state first: bytes that arrived before the end are in the
        // ring by the time it says PeerClosed.
        let state = self.state();
        let n = self.rx.read(buf).map_err(|_| Error::Invalid)?;
        if n > 0 {
            if self.rx.take_signal_request() {
                self.net.wake_stack();
            }
            return Ok(Read::Data(n));
        }
        match state {
            State::PeerClosed => Ok(Read::Eof),
            State::Closed => Err(Error::from_label(u64::from(
                self.net.header_u32(self.slot, layout::ERROR),
            ))),
            _ => Ok(Read::WouldBlock),
        }
    }

    /// Sends what fits now; returns how much (0: the ring is full, and the
    /// stack will notify when it has made room).
    pub fn send(&mut self, bytes: &[u8]) -> Result<usize, Error> {
        match self.state() {
            State::Closed => {
                return Err(Error::from_label(u64::from(
                    self.net.header_u32(self.slot, layout::ERROR),
                )))
            }
            State::Free | State::Listening | State::Udp => return Err(Error::Invalid),
            _ => {}
        }
        let n = self.tx.write(bytes).map_err(|_| Error::Invalid)?;
        if n < bytes.len() {
            let _ = self.tx.try_idle(1);
        }
        if n > 0 {
            self.net.wake_stack();
        }
        Ok(n)
    }

    /// Bytes sent and not yet taken by the stack.
    pub fn unsent(&mut self) -> usize {
        (layout::RING - self.tx.space().unwrap_or(0)) as usize
    }

    /// Closes the connection: the stack sends what is left, then FIN.
    pub fn close(self) {
        self.net.close(self.slot);
    }
}

/// A UDP socket.
#[derive(Debug)]
pub struct UdpSocket {
    net: Net,
    slot: usize,
    rx: Consumer,
    tx: Producer,
}

impl UdpSocket {
    /// Sends a datagram to `ip`:`port`, whole; `Ok(false)` if the ring has
    /// no room for it now. A port the description does not allow is
    /// refused by the stack (it drops the datagram and says so), unless
    /// the datagram answers a peer that wrote to this socket.
    pub fn send_to(&mut self, payload: &[u8], ip: [u8; 4], port: u16) -> Result<bool, Error> {
        if payload.len() > layout::MAX_DATAGRAM {
            return Err(Error::Invalid);
        }
        let h = Dgram {
            len: payload.len() as u16,
            port,
            ip,
        };
        let need = (layout::DGRAM_HEADER + payload.len()) as u32;
        if self.tx.space().map_err(|_| Error::Invalid)? < need {
            let _ = self.tx.try_idle(need);
            return Ok(false);
        }
        let _ = self.tx.stage_slice(&h.encode());
        let _ = self.tx.stage_slice(payload);
        self.tx.commit();
        self.net.wake_stack();
        Ok(true)
    }

    /// The next datagram: its length (cut to `buf`), source address and
    /// port.
    pub fn recv_from(&mut self, buf: &mut [u8]) -> Result<Option<(usize, [u8; 4], u16)>, Error> {
        let mut hdr = [0u8; layout::DGRAM_HEADER];
        let got = self.rx.peek(0, &mut hdr).map_err(|_| Error::Invalid)?;
        if got < layout::DGRAM_HEADER {
            return Ok(None);
        }
        let h = Dgram::decode(&hdr);
        let len = h.len as usize;
        let _ = self.rx.skip(layout::DGRAM_HEADER as u32);
        let n = len.min(buf.len());
        let _ = self.rx.take_slice(&mut buf[..n]);
        let _ = self.rx.skip((len - n) as u32);
        self.rx.commit();
        if self.rx.take_signal_request() {
            self.net.wake_stack();
        }
        Ok(Some((n, h.ip, h.port)))
    }

    /// Gives the socket back.
    pub fn close(self) {
        self.net.close(self.slot);
    }
}
