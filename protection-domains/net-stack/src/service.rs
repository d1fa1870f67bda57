//! The socket service: each cell's slots, the stack's sockets kept for it,
//! its calls and the bytes between its rings and the sockets.
//!
//! Every cell has its own sockets (`TCP_PER_CELL` TCP, `UDP_PER_CELL`
//! UDP, allocated once with fixed buffers) and its own [`SLOTS`] slots, so
//! a cell that opens sockets in a loop, never reads, or floods its send
//! rings uses up only what is its own: the others' connections go on.
//! Policy is checked at every call that binds or reaches a port; a refusal
//! is the error the cell gets, and a line on the console.

use heapless::Deque;
use septa_net_protocol::calls::{self, Error};
use septa_net_protocol::config::{Cell as Policy, Proto};
use septa_net_protocol::sockets::{self as layout, Dgram, State, SLOTS};
use septa_queue::serial::{Consumer, Producer};
use septa_queue::Shared;
use septa_runtime::{println, Channel};
use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::{tcp, udp};
use smoltcp::wire::{IpAddress, IpEndpoint, IpListenEndpoint, Ipv4Address};

/// TCP sockets the stack keeps for each cell.
pub const TCP_PER_CELL: usize = 6;
/// UDP sockets the stack keeps for each cell.
pub const UDP_PER_CELL: usize = 2;
/// A TCP socket's receive buffer: above 64 KiB, so the stack announces
/// window scaling (smoltcp derives the shift from the buffer's size).
pub const TCP_RX: usize = 96 * 1024;
pub const TCP_TX: usize = 32 * 1024;
/// A UDP socket's buffers: payload bytes and datagrams.
pub const UDP_BYTES: usize = 16 * 1024;
pub const UDP_PACKETS: usize = 16;
/// Connections waiting for `accept` per listener.
pub const BACKLOG: usize = 4;
/// How long a connection being accepted may stay silent in its handshake.
const HANDSHAKE_TIMEOUT: smoltcp::time::Duration = smoltcp::time::Duration::from_secs(5);
/// Peers a UDP socket may answer without a connect rule for their port.
const PEERS: usize = 4;

/// What one of a cell's sockets is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Use {
    Idle,
    /// Listening for slot `s`.
    Listening(usize),
    /// Connected, waiting to be accepted from slot `s`'s listener.
    Waiting(usize),
    /// In slot `s`.
    Slot(usize),
    /// Closing after its slot let it go.
    Closing,
}

struct Pooled {
    handle: SocketHandle,
    used: Use,
}

/// A slot's rings, the stack's ends.
struct Rings {
    rx: Producer,
    tx: Consumer,
}

enum Slot {
    Free,
    Listener {
        port: u16,
        waiting: Deque<usize, BACKLOG>,
    },
    Tcp {
        sock: usize,
        rings: Rings,
        /// The cell closed it: send what is left, then FIN, then free.
        closing: bool,
        state: State,
    },
    Udp {
        sock: usize,
        rings: Rings,
        peers: Deque<(Ipv4Address, u16), PEERS>,
    },
}

pub struct Cell {
    pub chan: Channel,
    pub policy: Policy,
    mem: Shared,
    slots: [Slot; SLOTS],
    tcp: [Pooled; TCP_PER_CELL],
    udp: [Pooled; UDP_PER_CELL],
    /// Something in its region changed: it is owed a notification.
    pub dirty: bool,
    /// Its refusals so far (the log says the first few, then only each
    /// power of two: a cell that floods the stack with forbidden calls
    /// cannot flood the console through it).
    pub refusals: u64,
    /// What it is counted in the statistics (`septa_cells::counters`,
    /// kind net), by the channel its calls come on.
    pub count: Count,
}

/// A cell's counters, as the stack keeps them.
#[derive(Clone, Copy, Default)]
pub struct Count {
    /// Sockets opened: listen, accept, connect, UDP bind that succeeded.
    pub opened: u64,
    pub accepted: u64,
    /// Calls refused with an error (but "would block"), and datagrams
    /// refused by its rules.
    pub refused: u64,
    /// Bytes moved from its rings to its sockets, and back.
    pub tx_bytes: u64,
    pub rx_bytes: u64,
}

/// After the first refusals, how many there have been.
struct Thinned(u64);

impl core::fmt::Display for Thinned {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.0 > LOGGED_REFUSALS {
            write!(f, "; {} refusals of this cell so far", self.0)
        } else {
            Ok(())
        }
    }
}

/// Refusals a cell gets a console line each for before the log thins out.
const LOGGED_REFUSALS: u64 = 8;

/// Whether the `n`th refusal of a cell is logged.
fn logged(n: u64) -> bool {
    n <= LOGGED_REFUSALS || n.is_power_of_two()
}

/// Allocates a cell's sockets (once, at start-up) and adds them to `set`.
pub fn new_cell(chan: Channel, policy: Policy, mem: Shared, set: &mut SocketSet<'static>) -> Cell {
    let leak = |n: usize| -> &'static mut [u8] { alloc::vec![0u8; n].leak() };
    let tcp = core::array::from_fn(|_| {
        let s = tcp::Socket::new(
            tcp::SocketBuffer::new(leak(TCP_RX)),
            tcp::SocketBuffer::new(leak(TCP_TX)),
        );
        Pooled {
            handle: set.add(s),
            used: Use::Idle,
        }
    });
    let udp = core::array::from_fn(|_| {
        let meta = |_| -> &'static mut [udp::PacketMetadata] {
            alloc::vec![udp::PacketMetadata::EMPTY; UDP_PACKETS].leak()
        };
        let s = udp::Socket::new(
            udp::PacketBuffer::new(meta(0), leak(UDP_BYTES)),
            udp::PacketBuffer::new(meta(1), leak(UDP_BYTES)),
        );
        Pooled {
            handle: set.add(s),
            used: Use::Idle,
        }
    });
    for i in 0..SLOTS {
        let _ = mem.write(layout::slot(i), &[0; layout::HEADER_SIZE]);
    }
    Cell {
        chan,
        policy,
        mem,
        slots: core::array::from_fn(|_| Slot::Free),
        refusals: 0,
        count: Count::default(),
        tcp,
        udp,
        dirty: false,
    }
}

/// A call's outcome: the reply's label and MR0.
pub type Reply = Result<u64, Error>;

/// Whether any cell has `proto`/`port` bound (a listener, a UDP socket).
pub fn port_taken(cells: &[Cell], set: &SocketSet<'static>, proto: Proto, port: u16) -> bool {
    cells.iter().any(|c| c.bound(set, proto).contains(&port))
}

impl Cell {
    pub fn name(&self) -> &str {
        self.policy.name.as_str()
    }

    fn header(&self, slot: usize, state: State) {
        let _ = self.mem.write(
            layout::slot(slot) + layout::STATE,
            &(state as u32).to_le_bytes(),
        );
    }

    fn header_u16(&self, slot: usize, at: usize, v: u16) {
        let _ = self.mem.write(layout::slot(slot) + at, &v.to_le_bytes());
    }

    fn header_u32(&self, slot: usize, at: usize, v: u32) {
        let _ = self.mem.write(layout::slot(slot) + at, &v.to_le_bytes());
    }

    fn free_slot(&self) -> Result<usize, Error> {
        self.slots
            .iter()
            .position(|s| matches!(s, Slot::Free))
            .ok_or(Error::NoSockets)
    }

    fn idle_tcp(&self) -> Result<usize, Error> {
        self.tcp
            .iter()
            .position(|p| p.used == Use::Idle)
            .ok_or(Error::NoSockets)
    }

    /// Fresh rings for slot `s`: both indices zero, then the stack's ends.
    fn rings(&self, s: usize) -> Rings {
        let base = layout::slot(s);
        let _ = self.mem.write(base, &[0; layout::HEADER_SIZE]);
        let _ = self.mem.write(base + layout::RX_QUEUE, &[0; 12]);
        let _ = self.mem.write(base + layout::TX_QUEUE, &[0; 12]);
        let w = |at, len| self.mem.window(base + at, len).expect("inside the region");
        Rings {
            rx: Producer::attach(
                w(layout::RX_QUEUE, 12),
                w(layout::RX_DATA, layout::RING as usize),
                layout::RING,
            )
            .expect("a slot's receive ring"),
            tx: Consumer::attach(
                w(layout::TX_QUEUE, 12),
                w(layout::TX_DATA, layout::RING as usize),
                layout::RING,
            )
            .expect("a slot's send ring"),
        }
    }

    fn refuse(&mut self, what: &str, proto: Proto, port: u16) -> Error {
        self.refusals += 1;
        if logged(self.refusals) {
            println!(
                "net_stack: refused: cell `{}` may not {what} {}/{port} (not in the system description){}",
                self.name(),
                proto.name(),
                Thinned(self.refusals)
            );
        }
        Error::Denied
    }

    pub fn listen(&mut self, in_use: bool, port: u16, set: &mut SocketSet<'static>) -> Reply {
        if port == 0 {
            return Err(Error::Invalid);
        }
        if !self.policy.may_listen(Proto::Tcp, port) {
            return Err(self.refuse("listen on", Proto::Tcp, port));
        }
        if in_use {
            return Err(Error::InUse);
        }
        let s = self.free_slot()?;
        let p = self.idle_tcp()?;
        let sock = set.get_mut::<tcp::Socket>(self.tcp[p].handle);
        sock.listen(port).map_err(|_| Error::Invalid)?;
        self.tcp[p].used = Use::Listening(s);
        self.slots[s] = Slot::Listener {
            port,
            waiting: Deque::new(),
        };
        let _ = self.mem.write(layout::slot(s), &[0; layout::HEADER_SIZE]);
        self.header_u16(s, layout::LOCAL_PORT, port);
        self.header(s, State::Listening);
        Ok(s as u64)
    }

    pub fn accept(&mut self, l: usize, set: &mut SocketSet<'static>) -> Reply {
        let Some(Slot::Listener { waiting, .. }) = self.slots.get_mut(l) else {
            return Err(Error::Invalid);
        };
        if waiting.is_empty() {
            return Err(Error::WouldBlock);
        }
        let s = self.free_slot()?;
        let Some(Slot::Listener { waiting, .. }) = self.slots.get_mut(l) else {
            return Err(Error::Invalid);
        };
        let p = waiting.pop_front().expect("not empty");
        let left = waiting.len() as u32;
        self.header_u32(l, layout::WAITING, left);
        let rings = self.rings(s);
        self.tcp[p].used = Use::Slot(s);
        let sock = set.get_mut::<tcp::Socket>(self.tcp[p].handle);
        let state = tcp_state(sock);
        self.publish_endpoints(s, sock);
        self.slots[s] = Slot::Tcp {
            sock: p,
            rings,
            closing: false,
            state,
        };
        self.header(s, state);
        Ok(s as u64)
    }

    fn publish_endpoints(&self, s: usize, sock: &tcp::Socket) {
        if let Some(l) = sock.local_endpoint() {
            self.header_u16(s, layout::LOCAL_PORT, l.port);
        }
        if let Some(r) = sock.remote_endpoint() {
            self.header_u16(s, layout::REMOTE_PORT, r.port);
            let IpAddress::Ipv4(ip) = r.addr;
            let _ = self
                .mem
                .write(layout::slot(s) + layout::REMOTE_IP, &ip.octets());
        }
    }

    pub fn connect(
        &mut self,
        ip: [u8; 4],
        port: u16,
        local_port: u16,
        iface: &mut Interface,
        set: &mut SocketSet<'static>,
    ) -> Reply {
        if port == 0 {
            return Err(Error::Invalid);
        }
        if !self.policy.may_connect(Proto::Tcp, port) {
            return Err(self.refuse("connect to", Proto::Tcp, port));
        }
        if iface.ipv4_addr().is_none() {
            return Err(Error::NotReady);
        }
        let s = self.free_slot()?;
        let p = self.idle_tcp()?;
        let sock = set.get_mut::<tcp::Socket>(self.tcp[p].handle);
        let remote = IpEndpoint::new(Ipv4Address::from(ip).into(), port);
        sock.connect(iface.context(), remote, local_port)
            .map_err(|_| Error::Invalid)?;
        let rings = self.rings(s);
        self.tcp[p].used = Use::Slot(s);
        self.slots[s] = Slot::Tcp {
            sock: p,
            rings,
            closing: false,
            state: State::Connecting,
        };
        self.header_u16(s, layout::REMOTE_PORT, port);
        let _ = self.mem.write(layout::slot(s) + layout::REMOTE_IP, &ip);
        self.header(s, State::Connecting);
        Ok(s as u64)
    }

    pub fn udp_bind(
        &mut self,
        port: u16,
        in_use: bool,
        ephemeral: u16,
        set: &mut SocketSet<'static>,
    ) -> Reply {
        let port = if port == 0 {
            ephemeral
        } else {
            if !self.policy.may_listen(Proto::Udp, port) {
                return Err(self.refuse("bind", Proto::Udp, port));
            }
            if in_use {
                return Err(Error::InUse);
            }
            port
        };
        let s = self.free_slot()?;
        let p = self
            .udp
            .iter()
            .position(|p| p.used == Use::Idle)
            .ok_or(Error::NoSockets)?;
        let sock = set.get_mut::<udp::Socket>(self.udp[p].handle);
        sock.bind(IpListenEndpoint::from(port))
            .map_err(|_| Error::InUse)?;
        let rings = self.rings(s);
        self.udp[p].used = Use::Slot(s);
        self.slots[s] = Slot::Udp {
            sock: p,
            rings,
            peers: Deque::new(),
        };
        self.header_u16(s, layout::LOCAL_PORT, port);
        self.header(s, State::Udp);
        Ok(s as u64)
    }

    /// The ports of `proto` this cell has bound.
    pub fn bound(&self, set: &SocketSet<'static>, proto: Proto) -> heapless::Vec<u16, SLOTS> {
        let mut out = heapless::Vec::new();
        for s in &self.slots {
            match (s, proto) {
                (Slot::Udp { sock, .. }, Proto::Udp) => {
                    let port = set
                        .get::<udp::Socket>(self.udp[*sock].handle)
                        .endpoint()
                        .port;
                    let _ = out.push(port);
                }
                (Slot::Listener { port, .. }, Proto::Tcp) => {
                    let _ = out.push(*port);
                }
                _ => {}
            }
        }
        out
    }

    pub fn close(&mut self, s: usize, set: &mut SocketSet<'static>) -> Reply {
        let Some(slot) = self.slots.get_mut(s) else {
            return Err(Error::Invalid);
        };
        match slot {
            Slot::Free => return Err(Error::Invalid),
            Slot::Listener { waiting, .. } => {
                // Its listening socket and everything waiting go.
                for p in 0..TCP_PER_CELL {
                    if matches!(self.tcp[p].used, Use::Listening(x) | Use::Waiting(x) if x == s) {
                        set.get_mut::<tcp::Socket>(self.tcp[p].handle).abort();
                        self.tcp[p].used = Use::Closing;
                    }
                }
                waiting.clear();
                self.slots[s] = Slot::Free;
                self.header(s, State::Free);
            }
            Slot::Tcp { closing, .. } => {
                // Freed once what the cell wrote is out (`pump`).
                *closing = true;
            }
            Slot::Udp { sock, .. } => {
                let p = *sock;
                set.get_mut::<udp::Socket>(self.udp[p].handle).close();
                self.udp[p].used = Use::Idle;
                self.slots[s] = Slot::Free;
                self.header(s, State::Free);
            }
        }
        Ok(0)
    }

    /// Moves bytes both ways between the rings and the sockets, keeps
    /// listeners listening and publishes states. Returns whether the stack
    /// should poll again (a socket has new data to send).
    pub fn pump(&mut self, set: &mut SocketSet<'static>, refused: &mut u64) -> bool {
        let mut more = false;
        // Listeners: a listening socket that left Listen has a connection.
        for s in 0..SLOTS {
            let Slot::Listener { port, waiting } = &mut self.slots[s] else {
                continue;
            };
            let port = *port;
            let mut listening = false;
            for p in 0..TCP_PER_CELL {
                if self.tcp[p].used != Use::Listening(s) {
                    continue;
                }
                let sock = set.get_mut::<tcp::Socket>(self.tcp[p].handle);
                let st = sock.state();
                if st == tcp::State::Listen {
                    listening = true;
                } else if st == tcp::State::SynReceived {
                    // A handshake under way: another socket listens
                    // meanwhile, and this one gives up if the peer goes
                    // quiet (a SYN flood holds a cell's sockets only so
                    // long).
                    sock.set_timeout(Some(HANDSHAKE_TIMEOUT));
                } else if matches!(st, tcp::State::Established | tcp::State::CloseWait)
                    && !waiting.is_full()
                {
                    sock.set_timeout(None);
                    let _ = waiting.push_back(p);
                    self.tcp[p].used = Use::Waiting(s);
                    self.dirty = true;
                } else {
                    // Closed again before anyone took it, or no room.
                    sock.abort();
                    self.tcp[p].used = Use::Closing;
                }
            }
            // Drop waiting connections that died meanwhile.
            let n = waiting.len();
            for _ in 0..n {
                let p = waiting.pop_front().expect("counted");
                if set.get::<tcp::Socket>(self.tcp[p].handle).is_open() {
                    let _ = waiting.push_back(p);
                } else {
                    self.tcp[p].used = Use::Closing;
                }
            }
            let count = waiting.len() as u32;
            self.header_u32(s, layout::WAITING, count);
            if !listening {
                if let Ok(p) = self.idle_tcp() {
                    let sock = set.get_mut::<tcp::Socket>(self.tcp[p].handle);
                    if sock.listen(port).is_ok() {
                        self.tcp[p].used = Use::Listening(s);
                    }
                }
            }
        }
        // Connections and datagrams.
        for s in 0..SLOTS {
            match &mut self.slots[s] {
                Slot::Tcp {
                    sock,
                    rings,
                    closing,
                    state,
                } => {
                    let p = *sock;
                    let tcp = set.get_mut::<tcp::Socket>(self.tcp[p].handle);
                    let mut moved = false;
                    // Cell to network.
                    while tcp.can_send() {
                        let r = tcp.send(|buf| {
                            let n = rings.tx.read(buf).unwrap_or(0);
                            (n, n)
                        });
                        match r {
                            Ok(n) if n > 0 => {
                                moved = true;
                                more = true;
                                self.count.tx_bytes += n as u64;
                            }
                            _ => break,
                        }
                    }
                    if moved && rings.tx.take_signal_request() {
                        self.dirty = true;
                    }
                    // Network to cell.
                    let mut got = false;
                    while tcp.can_recv() {
                        let r = tcp.recv(|buf| {
                            let n = rings.rx.write(buf).unwrap_or(0);
                            (n, n)
                        });
                        match r {
                            Ok(n) if n > 0 => {
                                got = true;
                                self.count.rx_bytes += n as u64;
                            }
                            _ => break,
                        }
                    }
                    if tcp.can_recv() {
                        // The ring is full: the cell tells us when it reads.
                        let _ = rings.rx.try_idle(1);
                    }
                    if got {
                        self.dirty = true;
                        more = true; // the window opened: an ACK may be due
                    }
                    let now = tcp_state(tcp);
                    if *closing {
                        let drained = rings.tx.is_empty().unwrap_or(true);
                        if drained || !tcp.may_send() {
                            tcp.close();
                            self.tcp[p].used = Use::Closing;
                            self.slots[s] = Slot::Free;
                            self.header(s, State::Free);
                            more = true;
                            continue;
                        }
                    } else if now != *state {
                        *state = now;
                        if now == State::Established {
                            // The connection's endpoints, now known.
                            let t = set.get::<tcp::Socket>(self.tcp[p].handle);
                            self.publish_endpoints(s, t);
                        }
                        if now == State::Closed {
                            self.header_u32(s, layout::ERROR, Error::Failed as u32);
                        }
                        self.header(s, now);
                        self.dirty = true;
                    }
                }
                Slot::Udp { sock, rings, peers } => {
                    let p = *sock;
                    let udp = set.get_mut::<udp::Socket>(self.udp[p].handle);
                    let mut buf = [0u8; layout::DGRAM_HEADER + layout::MAX_DATAGRAM];
                    // Network to cell: whole datagrams that fit.
                    loop {
                        let space = rings.rx.space().unwrap_or(0) as usize;
                        let Ok((data, meta)) = udp.peek() else { break };
                        let n = data.len().min(layout::MAX_DATAGRAM);
                        if space < layout::DGRAM_HEADER + n {
                            let _ = rings.rx.try_idle((layout::DGRAM_HEADER + n) as u32);
                            break;
                        }
                        let IpAddress::Ipv4(ip) = meta.endpoint.addr;
                        let h = Dgram {
                            len: n as u16,
                            port: meta.endpoint.port,
                            ip: ip.octets(),
                        };
                        buf[..layout::DGRAM_HEADER].copy_from_slice(&h.encode());
                        buf[layout::DGRAM_HEADER..layout::DGRAM_HEADER + n]
                            .copy_from_slice(&data[..n]);
                        let _ = rings.rx.write_all(&buf[..layout::DGRAM_HEADER + n]);
                        self.count.rx_bytes += n as u64;
                        if !peers.iter().any(|x| *x == (ip, h.port)) {
                            if peers.is_full() {
                                peers.pop_front();
                            }
                            let _ = peers.push_back((ip, h.port));
                        }
                        let _ = udp.recv();
                        self.dirty = true;
                    }
                    // Cell to network: a datagram is sent when whole.
                    let mut moved = false;
                    loop {
                        let mut hdr = [0u8; layout::DGRAM_HEADER];
                        if rings.tx.peek(0, &mut hdr).unwrap_or(0) < layout::DGRAM_HEADER {
                            break;
                        }
                        let h = Dgram::decode(&hdr);
                        let n = h.len as usize;
                        if n > layout::MAX_DATAGRAM {
                            // Garbage from the cell: its ring is unusable.
                            let _ = rings.tx.skip(u32::MAX);
                            break;
                        }
                        let waiting = rings.tx.len().unwrap_or(0) as usize;
                        if waiting < layout::DGRAM_HEADER + n {
                            break;
                        }
                        if !udp.can_send() {
                            break;
                        }
                        let _ = rings.tx.skip(layout::DGRAM_HEADER as u32);
                        let got = rings.tx.take_slice(&mut buf[..n]).unwrap_or(0);
                        rings.tx.commit();
                        moved = true;
                        let ip = Ipv4Address::from(h.ip);
                        let allowed = self.policy.may_connect(Proto::Udp, h.port)
                            || peers.iter().any(|x| *x == (ip, h.port));
                        if !allowed {
                            *refused += 1;
                            self.refusals += 1;
                            self.count.refused += 1;
                            if logged(self.refusals) {
                                println!(
                                    "net_stack: refused: cell `{}` may not send to udp/{} (not in the system description){}",
                                    self.policy.name.as_str(),
                                    h.port,
                                    Thinned(self.refusals)
                                );
                            }
                            continue;
                        }
                        let to = IpEndpoint::new(ip.into(), h.port);
                        if udp.send_slice(&buf[..got], to).is_ok() {
                            more = true;
                            self.count.tx_bytes += got as u64;
                        }
                    }
                    if moved && rings.tx.take_signal_request() {
                        self.dirty = true;
                    }
                }
                _ => {}
            }
        }
        // Sockets closing on their own: free once done.
        for p in &mut self.tcp {
            if p.used == Use::Closing {
                let sock = set.get_mut::<tcp::Socket>(p.handle);
                match sock.state() {
                    tcp::State::Closed => p.used = Use::Idle,
                    // Nothing left to say: the slot can be used again.
                    tcp::State::TimeWait => {
                        sock.abort();
                        p.used = Use::Idle;
                    }
                    _ => {}
                }
            }
        }
        more
    }
}

/// A TCP socket's state as a cell sees it.
fn tcp_state(s: &tcp::Socket) -> State {
    use tcp::State as T;
    match s.state() {
        T::Listen => State::Listening,
        T::SynSent | T::SynReceived => State::Connecting,
        T::Established | T::FinWait1 | T::FinWait2 => State::Established,
        T::CloseWait | T::LastAck | T::Closing | T::TimeWait if !s.can_recv() => State::PeerClosed,
        T::CloseWait | T::LastAck | T::Closing | T::TimeWait => State::Established,
        T::Closed => State::Closed,
    }
}

/// The words of an `INFO` reply.
pub fn info(iface: &Interface, mac: [u8; 6], gateway: [u8; 4]) -> [u64; 4] {
    let (ip, prefix) = iface
        .ip_addrs()
        .iter()
        .map(|c| match c {
            smoltcp::wire::IpCidr::Ipv4(v4) => (v4.address().octets(), v4.prefix_len()),
        })
        .next()
        .unwrap_or(([0; 4], 0));
    let mut m = [0u8; 8];
    m[..6].copy_from_slice(&mac);
    [
        calls::ip_to_word(ip),
        u64::from(prefix),
        calls::ip_to_word(gateway),
        u64::from_le_bytes(m),
    ]
}
