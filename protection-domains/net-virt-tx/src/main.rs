//! # net-virt-tx: the network subsystem's transmit virtualiser
//!
//! Every client's frames, copied from the client's own buffers into the
//! driver's (after the room the device's header takes), clients served in
//! turn so one that floods the link cannot keep the others out; the
//! client's buffer goes back to it at once. A frame whose source address
//! is not the client's MAC (from the description) is dropped: a client
//! cannot speak as another. When the driver has no free buffer, client
//! frames wait in their queues and the virtualiser asks the driver for a
//! signal.
//!
//! With several clients it is their switch too ([`septa_net_protocol::switch`]):
//! a frame to another client's MAC is copied into a buffer of the
//! loopback region instead and passed to the receive virtualiser, which
//! delivers it as it delivers the driver's; a group frame goes both ways
//! (the receive virtualiser leaves out its sender); a full loopback drops
//! the frame and counts it ([`septa_net_protocol::loopback`]).
//!
//! Wiring (`septa-net-protocol`'s [`wiring::virt`]): the driver on channel
//! 0, client i on `1 + i`, the receive virtualiser on
//! [`wiring::virt::LOOPBACK`]; the clients' names and MACs and the
//! loopback's size in the patched [`wiring::virt::CONFIG`]. Every
//! descriptor is checked before a buffer is touched.
//!
//! Owns: its ends of the queues, the copies, the loopback's buffers. Must
//! not: look past the source and destination addresses.
#![cfg_attr(target_os = "none", no_std, no_main)]

use septa_net_protocol::config::Clients;
use septa_net_protocol::loopback::Sender;
use septa_net_protocol::region;
use septa_net_protocol::switch;
use septa_net_protocol::wiring::{self, virt, MAX_CLIENTS};
use septa_queue::net::{Buffers, Sink, Source};
use septa_queue::{Idle, PeerFault, Shared};
use septa_runtime::{patched, println, protection_domain, Channel, ChannelSet, Handler};

patched! {
    static CONFIG: [u8; Clients::SIZE] = "net_virt_config", [0; Clients::SIZE];
}

const DRIVER: Channel = Channel::new(virt::DRIVER);
const LOOPBACK: Channel = Channel::new(virt::LOOPBACK);

/// Frames taken from one client before the next gets its turn.
const BATCH: usize = 16;

/// The region of `size` bytes mapped at `base`.
fn mapped(base: u64, size: u64) -> Shared {
    // SAFETY: the tool maps the driver's queue pair and data region,
    // client i's, and the loopback's (when the configuration gives it
    // buffers), read-write at their `wiring::virt` addresses with their
    // `wiring` sizes for the PD's whole life (for every client the
    // configuration names); this PD touches them only through `Shared`.
    unsafe { Shared::new(base as *mut u8, size as usize) }.expect("a region's address is not null")
}

struct Client {
    q: Sink,
    data: Shared,
    spoofed: u64,
    faults: u64,
}

struct Virt {
    driver: Source,
    driver_data: Shared,
    clients: heapless::Vec<Client, MAX_CLIENTS>,
    config: Clients,
    /// To the receive virtualiser, for frames to other clients.
    loopback: Option<Sender>,
    faults: u64,
    reported: u64,
}

fn client_channel(i: usize) -> Channel {
    Channel::new(virt::client_channel(i).expect("at most MAX_CLIENTS clients"))
}

impl Virt {
    /// Moves up to [`BATCH`] frames of client `c`; `None` when the driver
    /// has no free buffer left, else how many moved.
    fn serve(&mut self, c: usize) -> Option<usize> {
        let own = Buffers::new(0, self.config.data_size(c));
        let drv = Buffers::new(0, wiring::DATA_SIZE as usize);
        let mac = self.config.macs[c];
        let client = &mut self.clients[c];
        let mut moved = 0;
        while moved < BATCH {
            // A driver buffer first, so a client frame is taken only when
            // it can go.
            if self.driver.free.is_empty().unwrap_or(true) {
                return None;
            }
            let desc = match client.q.active.dequeue() {
                Ok(Some(d)) => d,
                Ok(None) => break,
                Err(_) => {
                    client.faults += 1;
                    break;
                }
            };
            moved += 1;
            let index = match own.check(&desc) {
                Ok(i) => i,
                Err(f) => {
                    client.q.active.report(f);
                    client.faults += 1;
                    continue;
                }
            };
            let from = own.offset(index);
            let len = desc.len as usize;
            let mut addrs = [0u8; 12];
            let good = (14..=wiring::MAX_FRAME).contains(&len)
                && client.data.read(from, &mut addrs).is_ok()
                && addrs[6..] == mac;
            let mut dest = [0u8; 6];
            dest.copy_from_slice(&addrs[..6]);
            let to = switch(c, &dest, &self.config);
            if good && to.local {
                if let Some(lb) = &mut self.loopback {
                    // Dropped and counted when full.
                    let _ = lb.send(&client.data, from, len);
                }
            }
            if good && to.wire {
                let out = match self.driver.free.dequeue() {
                    Ok(Some(d)) => d,
                    _ => {
                        self.faults += 1;
                        break;
                    }
                };
                match drv.check(&out) {
                    Ok(di) => {
                        let to = drv.offset(di) + wiring::DRIVER_FRAME_OFFSET;
                        let _ = client.data.copy_to(from, &self.driver_data, to, len);
                        let mut d = drv.desc(di).expect("checked");
                        d.len = len as u16;
                        if self.driver.active.enqueue(d).is_err() {
                            self.faults += 1;
                        }
                    }
                    Err(_) => self.faults += 1,
                }
            } else if good {
                // Switched locally alone.
            } else if len >= 14 {
                client.spoofed += 1;
            } else {
                client.q.active.report(PeerFault::Descriptor {
                    offset: desc.io_or_offset,
                    len: len as u64,
                });
                client.faults += 1;
            }
            let back = own.desc(index).expect("checked");
            if client.q.free.enqueue(back).is_err() {
                client.faults += 1;
            }
        }
        Some(moved)
    }

    fn process(&mut self) {
        let n = self.clients.len();
        'rounds: loop {
            let mut progress = false;
            for c in 0..n {
                match self.serve(c) {
                    None => {
                        // The driver is out of buffers: it signals when it
                        // gives some back.
                        self.driver.free.request_signal();
                        if self.driver.free.is_empty().unwrap_or(true) {
                            break 'rounds;
                        }
                        self.driver.free.cancel_signal();
                        progress = true;
                    }
                    Some(m) => progress |= m > 0,
                }
            }
            if progress {
                continue;
            }
            // Idle the safe way: ask every client for a signal, then look
            // again.
            let mut again = false;
            for c in self.clients.iter_mut() {
                if let Ok(Idle::Reprocess) = c.q.active.try_idle() {
                    again = true;
                }
            }
            if !again {
                break;
            }
        }
        if self.driver.active.take_signal_request() {
            let _ = DRIVER.notify();
        }
        if self
            .loopback
            .as_mut()
            .is_some_and(Sender::take_signal_request)
        {
            let _ = LOOPBACK.notify();
        }
        for (i, c) in self.clients.iter_mut().enumerate() {
            if c.q.free.take_signal_request() {
                let _ = client_channel(i).notify();
            }
        }
        self.report();
    }

    /// Says what was refused, each time the total doubles.
    fn report(&mut self) {
        let looped = self.loopback.as_ref().map_or(0, |l| l.full + l.faults);
        let lost: u64 = self.faults
            + looped
            + self
                .clients
                .iter()
                .map(|c| c.spoofed + c.faults)
                .sum::<u64>();
        if septa_net_protocol::report_due(lost, &mut self.reported, 1) {
            if let Some(l) = &self.loopback {
                println!(
                    "net-virt-tx: loopback: {} frames to clients dropped (full), {} faults of the receive virtualiser",
                    l.full, l.faults
                );
            }
            for (i, c) in self.clients.iter().enumerate() {
                println!(
                    "net-virt-tx: client {}: {} frames not from its MAC, {} faults",
                    self.config.names[i].as_str(),
                    c.spoofed,
                    c.faults
                );
            }
        }
    }
}

impl Handler for Virt {
    fn notified(&mut self, _channels: ChannelSet) {
        self.process();
    }
}

fn init() -> Virt {
    let config = match Clients::decode(&CONFIG.get()) {
        Ok(c) => c,
        Err(e) => panic!("net-virt-tx: {e}"),
    };
    let driver = region::source(mapped(virt::DRIVER_QUEUES, wiring::QUEUES_SIZE))
        .expect("the driver's queues");
    let mut clients = heapless::Vec::new();
    for i in 0..config.count.min(MAX_CLIENTS) {
        let mut q = region::sink(mapped(virt::client_queues(i), wiring::QUEUES_SIZE))
            .expect("a client's queues");
        // Every transmit buffer of a client starts with the client.
        let size = config.data_size(i);
        if let Err(e) = Buffers::new(0, size).fill(&mut q.free) {
            panic!("net-virt-tx: client {i}'s free queue: {e:?}");
        }
        q.active.request_signal();
        let _ = clients.push(Client {
            q,
            data: mapped(virt::client_data(i), size as u64),
            spoofed: 0,
            faults: 0,
        });
    }
    for i in 0..clients.len() {
        let _ = client_channel(i).notify();
    }
    let loopback = (config.loopback > 0).then(|| {
        let size = u64::from(config.loopback) * u64::from(wiring::BUFFER_SIZE);
        Sender::new(
            mapped(virt::LOOPBACK_QUEUES, wiring::QUEUES_SIZE),
            mapped(virt::LOOPBACK_DATA, size),
        )
        .expect("the loopback's queues")
    });
    Virt {
        loopback,
        driver,
        driver_data: mapped(virt::DRIVER_DATA, wiring::DATA_SIZE),
        clients,
        config,
        faults: 0,
        reported: 0,
    }
}

protection_domain!(init);
