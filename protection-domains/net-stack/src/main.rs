//! # net-stack: the network stack PD
//!
//! smoltcp (Ethernet, ARP, IPv4, ICMP echo, UDP, TCP with window scaling,
//! DHCP) over the network virtualisers' queues, and a socket service for
//! the cells of `[net]`: each cell calls it (listen, accept, connect,
//! close, UDP bind, info, stats: `septa-net-protocol`'s [`calls`]) and
//! moves bytes through the rings of its socket region; cells never see a
//! frame. Time and timeouts come from the timer subsystem. The address
//! comes by DHCP, or is the description's static one.
//!
//! Policy: the description says which ports each cell may listen on (bind)
//! and connect (send) to; every call is checked against it, a refusal is
//! an error the cell sees and a line on the console.
//!
//! Owns: the IP address, every socket, the stack's ends of the queues and
//! rings. Must not: touch a cell's region beyond its slots' headers and
//! rings, or trust anything a cell or a virtualiser writes.
#![cfg_attr(target_os = "none", no_std, no_main)]

extern crate alloc;

mod device;
mod service;

use device::{QueueDevice, RxSide, TxSide};
use septa_cells::counters::Counters;
use septa_net_protocol::calls::{self, Error, Stats};
use septa_net_protocol::config::{self, Address, Proto};
use septa_net_protocol::wiring::{self, stack as w, MAX_CELLS};
use septa_net_protocol::{region, sockets};
use septa_queue::Shared;
use septa_runtime::{
    mr_get, mr_set, msginfo_new, patched, println, protection_domain, timer, Channel, ChannelSet,
    Handler, MessageInfo,
};
use service::Cell;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::dhcpv4;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address, Ipv4Cidr};

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
#[global_allocator]
static HEAP: septa_runtime::heap::Bump<{ 6 << 20 }> = septa_runtime::heap::Bump::new();

septa_runtime::setvar! {
    static COUNTERS = "septa_counters";
    static COUNTERS_SIZE = "septa_counters_size";
}

patched! {
    static CONFIG: [u8; config::Stack::SIZE] = "net_stack_config", [0; config::Stack::SIZE];
}

const VIRT_RX: Channel = Channel::new(w::VIRT_RX);
const VIRT_TX: Channel = Channel::new(w::VIRT_TX);

/// Rounds of one `run` before the stack yields to the timer: a flood
/// cannot keep it from its timeouts and its cells for ever.
const ROUNDS: usize = 64;

/// The first of the ports the stack picks for outgoing connections and
/// unbound UDP sockets (IANA's dynamic range).
const EPHEMERAL: u16 = 49152;

/// The region of `size` bytes mapped at `base`.
fn mapped(base: u64, size: u64) -> Shared {
    // SAFETY: the tool maps the stack's queue pairs and data regions,
    // its counters page (`[stats]`) and every cell's socket region read-write at their `wiring::stack`
    // addresses with their `wiring` sizes for the PD's whole life; this PD
    // touches them only through `Shared`.
    unsafe { Shared::new(base as *mut u8, size as usize) }.expect("a region's address is not null")
}

struct Stack {
    iface: Interface,
    dev: QueueDevice,
    set: SocketSet<'static>,
    dhcp: Option<SocketHandle>,
    gateway: [u8; 4],
    cells: heapless::Vec<Cell, MAX_CELLS>,
    mac: [u8; 6],
    next_port: u16,
    start_ns: u64,
    /// Drops and faults when last reported.
    reported: u64,
    /// Each cell's counters, and the page `[stats]` exports them in (if
    /// it does).
    counters: Counters<MAX_CELLS>,
    page: Option<Shared>,
}

fn now_ns() -> u64 {
    timer::now().unwrap_or(0)
}

impl Stack {
    fn instant(&self) -> Instant {
        Instant::from_micros((now_ns().saturating_sub(self.start_ns) / 1000) as i64)
    }

    fn ephemeral(&mut self) -> u16 {
        let p = self.next_port;
        self.next_port = if p == u16::MAX { EPHEMERAL } else { p + 1 };
        p
    }

    /// One round: cells' rings into sockets, smoltcp, sockets into rings,
    /// until nothing moves; then the notifications owed and the next
    /// timeout.
    fn run(&mut self) {
        let mut refused = 0;
        let mut settled = false;
        for _ in 0..ROUNDS {
            let mut more = false;
            for c in self.cells.iter_mut() {
                more |= c.pump(&mut self.set, &mut refused);
            }
            let now = self.instant();
            let changed = self.iface.poll(now, &mut self.dev, &mut self.set);
            self.dhcp(now);
            for c in self.cells.iter_mut() {
                more |= c.pump(&mut self.set, &mut refused);
            }
            let busy = matches!(changed, smoltcp::iface::PollResult::SocketStateChanged);
            if !more && !busy && self.dev.idle() {
                settled = true;
                break;
            }
        }
        if !settled {
            // Out of rounds with work left (frames kept coming, smoltcp has
            // more to send): ask for the virtualiser's signal all the same,
            // so no frame arrives unseen, and come back at once for what
            // waits (below), instead of sleeping on it.
            let _ = self.dev.idle();
        }
        self.dev.stats.refused += refused;
        if core::mem::take(&mut self.dev.tx.sent) && self.dev.tx.q.active.take_signal_request() {
            let _ = VIRT_TX.notify();
        }
        if core::mem::take(&mut self.dev.rx.freed) && self.dev.rx.q.free.take_signal_request() {
            let _ = VIRT_RX.notify();
        }
        for c in self.cells.iter_mut() {
            if core::mem::take(&mut c.dirty) {
                let _ = c.chan.notify();
            }
        }
        let now = self.instant();
        let delay = self
            .iface
            .poll_delay(now, &self.set)
            .map(|d| d.total_micros());
        let delay = if settled { delay } else { Some(0) };
        if let Some(us) = delay {
            let _ = timer::set_timeout(us.max(1) * 1000);
        }
        self.report();
        self.publish();
    }

    /// Each cell's counters into the exported page, if they changed.
    fn publish(&mut self) {
        let Some(page) = &self.page else { return };
        for (i, c) in self.cells.iter().enumerate() {
            let n = c.count;
            for (f, v) in [
                n.opened, n.refused, c.refusals, n.tx_bytes, n.rx_bytes, n.accepted,
            ]
            .into_iter()
            .enumerate()
            {
                self.counters.set(i, f, v);
            }
        }
        self.counters.publish("net_stack", |at, bytes| {
            let _ = page.write(at, bytes);
        });
    }

    /// DHCP's news.
    fn dhcp(&mut self, _now: Instant) {
        let Some(h) = self.dhcp else { return };
        let event = self.set.get_mut::<dhcpv4::Socket>(h).poll();
        match event {
            Some(dhcpv4::Event::Configured(cfg)) => {
                self.iface.update_ip_addrs(|a| {
                    a.clear();
                    let _ = a.push(IpCidr::Ipv4(cfg.address));
                });
                self.gateway = [0; 4];
                if let Some(gw) = cfg.router {
                    let _ = self.iface.routes_mut().add_default_ipv4_route(gw);
                    self.gateway = gw.octets();
                } else {
                    self.iface.routes_mut().remove_default_ipv4_route();
                }
                println!(
                    "net_stack: address {} by DHCP, gateway {}",
                    cfg.address,
                    Ipv4Address::from(self.gateway)
                );
                for c in self.cells.iter_mut() {
                    c.dirty = true;
                }
            }
            Some(dhcpv4::Event::Deconfigured) => {
                if self.iface.ipv4_addr().is_some() {
                    println!("net_stack: DHCP lease lost");
                }
                self.iface.update_ip_addrs(|a| a.clear());
                self.iface.routes_mut().remove_default_ipv4_route();
            }
            None => {}
        }
    }

    /// What was dropped, each time the total doubles.
    fn report(&mut self) {
        let s = &self.dev.stats;
        let lost = s.rx_dropped + s.tx_dropped + s.faults;
        if septa_net_protocol::report_due(lost, &mut self.reported, 64) {
            let d = &self.dev.drops;
            let n = device::DROP_NAMES;
            println!(
                "net_stack: {} frames received, {} dropped ({} {}, {} {}, {} {}, {} {}, {} {}), {} not sent, {} faults",
                s.rx_frames, s.rx_dropped, d[0], n[0], d[1], n[1], d[2], n[2], d[3], n[3], d[4], n[4],
                s.tx_dropped, s.faults
            );
        }
    }

    fn call(&mut self, c: usize, label: u64) -> Result<u64, Error> {
        let a0 = mr_get(0);
        let port = u16::try_from(a0).unwrap_or(0);
        let (cells, set) = (&mut self.cells, &mut self.set);
        match label {
            calls::LISTEN => {
                let taken = service::port_taken(cells, set, Proto::Tcp, port);
                cells[c].listen(taken, port, set)
            }
            calls::ACCEPT => cells[c].accept(a0 as usize, set),
            calls::CONNECT => {
                let port = u16::try_from(mr_get(1)).unwrap_or(0);
                let local = self.ephemeral();
                self.cells[c].connect(
                    calls::word_to_ip(a0),
                    port,
                    local,
                    &mut self.iface,
                    &mut self.set,
                )
            }
            calls::CLOSE => cells[c].close(a0 as usize, set),
            calls::UDP_BIND => {
                let taken = port != 0 && service::port_taken(cells, set, Proto::Udp, port);
                let eph = self.ephemeral();
                self.cells[c].udp_bind(port, taken, eph, &mut self.set)
            }
            calls::INFO => {
                let words = service::info(&self.iface, self.mac, self.gateway);
                for (i, w) in words.iter().enumerate() {
                    mr_set(i, *w);
                }
                Ok(words[0])
            }
            calls::STATS => {
                let mut s = self.dev.stats;
                s.uptime_ns = now_ns().saturating_sub(self.start_ns);
                s.cycles = septa_runtime::own_cycles().unwrap_or(0);
                let words = s.to_words();
                for (i, w) in words.iter().enumerate() {
                    mr_set(i, *w);
                }
                Ok(words[0])
            }
            _ => Err(Error::Unknown),
        }
    }
}

impl Handler for Stack {
    fn notified(&mut self, _channels: ChannelSet) {
        // Frames, buffers back, a timeout, a cell's rings: one round
        // serves them all.
        self.run();
    }

    fn protected(&mut self, channel: Channel, _msg: MessageInfo) -> MessageInfo {
        let label = _msg.label();
        let Some(c) = self.cells.iter().position(|c| c.chan == channel) else {
            return msginfo_new(Error::Invalid as u64, 0);
        };
        let r = self.call(c, label);
        if let Err(Error::Denied) = r {
            self.dev.stats.refused += 1;
        }
        let count = &mut self.cells[c].count;
        match (&r, label) {
            (Err(Error::WouldBlock), _) => {}
            (Err(_), _) => count.refused += 1,
            (Ok(_), calls::ACCEPT) => {
                count.opened += 1;
                count.accepted += 1;
            }
            (Ok(_), calls::LISTEN | calls::CONNECT | calls::UDP_BIND) => count.opened += 1,
            (Ok(_), _) => {}
        }
        // A call may have changed what is owed (a new listener, a close).
        self.run();
        match r {
            Ok(v) => {
                let words = match label {
                    calls::INFO => 4,
                    calls::STATS => Stats::WORDS as u64,
                    _ => {
                        mr_set(0, v);
                        1
                    }
                };
                if label == calls::INFO || label == calls::STATS {
                    // `run` may have used the registers: write them again.
                    let _ = self.call(c, label);
                }
                msginfo_new(calls::OK, words)
            }
            Err(e) => msginfo_new(e as u64, 0),
        }
    }
}

fn init() -> Stack {
    let cfg = match config::Stack::decode(&CONFIG.get()) {
        Ok(c) => c,
        Err(e) => panic!("net_stack: {e}"),
    };
    let start_ns = now_ns();
    let rx = region::sink(mapped(w::RX_QUEUES, wiring::QUEUES_SIZE)).expect("receive queues");
    let mut tx =
        region::source(mapped(w::TX_QUEUES, wiring::QUEUES_SIZE)).expect("transmit queues");
    let mut rx = RxSide {
        q: rx,
        data: mapped(w::RX_DATA, wiring::DATA_SIZE),
        frame: [0; wiring::MAX_FRAME],
        len: 0,
        freed: false,
    };
    // Every receive buffer starts with the virtualiser.
    let bufs = septa_queue::net::Buffers::new(0, wiring::DATA_SIZE as usize);
    if let Err(e) = bufs.fill(&mut rx.q.free) {
        panic!("net_stack: the receive free queue: {e:?}");
    }
    rx.q.active.request_signal();
    tx.free.request_signal();
    let _ = VIRT_RX.notify();
    let mac = EthernetAddress(cfg.mac);
    let mut dev = QueueDevice {
        rx,
        tx: TxSide {
            q: tx,
            data: mapped(w::TX_DATA, wiring::DATA_SIZE),
            sent: false,
        },
        mac,
        stats: Stats::default(),
        drops: [0; 5],
    };
    let mut ic = Config::new(HardwareAddress::Ethernet(mac));
    ic.random_seed = septa_pmu::system_counter().wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ start_ns;
    let mut iface = Interface::new(ic, &mut dev, Instant::from_micros(0));
    let mut set = SocketSet::new(alloc::vec::Vec::with_capacity(
        cfg.cells * (service::TCP_PER_CELL + service::UDP_PER_CELL) + 1,
    ));
    let mut gateway = [0; 4];
    let dhcp = match cfg.address {
        Address::Dhcp => Some(set.add(dhcpv4::Socket::new())),
        Address::Static {
            ip,
            prefix,
            gateway: gw,
        } => {
            iface.update_ip_addrs(|a| {
                let _ = a.push(IpCidr::Ipv4(Ipv4Cidr::new(Ipv4Address::from(ip), prefix)));
            });
            if gw != [0; 4] {
                let _ = iface
                    .routes_mut()
                    .add_default_ipv4_route(Ipv4Address::from(gw));
            }
            gateway = gw;
            None
        }
    };
    let mut cells = heapless::Vec::new();
    for i in 0..cfg.cells.min(MAX_CELLS) {
        let chan = Channel::new(w::cell_channel(i).expect("at most MAX_CELLS"));
        let mem = mapped(w::cell_region(i), sockets::REGION_SIZE);
        let _ = cells.push(service::new_cell(chan, cfg.cell[i], mem, &mut set));
    }
    let m = cfg.mac;
    match cfg.address {
        Address::Dhcp => println!(
            "net_stack: MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, asking DHCP for an address, {} cells",
            m[0], m[1], m[2], m[3], m[4], m[5], cells.len()
        ),
        Address::Static { ip, prefix, .. } => println!(
            "net_stack: MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, address {}/{prefix}, {} cells",
            m[0], m[1], m[2], m[3], m[4], m[5], Ipv4Address::from(ip), cells.len()
        ),
    }
    let mut counters = Counters::new(septa_cells::counters::Kind::Net);
    for c in cells.iter() {
        let _ = counters.add(c.name());
    }
    let page = (COUNTERS.get() != 0 && COUNTERS_SIZE.get() as usize >= septa_cells::counters::PAGE)
        .then(|| mapped(COUNTERS.get(), COUNTERS_SIZE.get()));
    let mut s = Stack {
        iface,
        dev,
        set,
        dhcp,
        gateway,
        cells,
        mac: cfg.mac,
        next_port: EPHEMERAL + (start_ns % 1000) as u16,
        start_ns,
        reported: 0,
        counters,
        page,
    };
    s.run();
    s
}

protection_domain!(init);
