//! # net-virt-rx: the network subsystem's receive virtualiser
//!
//! Frames the driver received go to the clients whose MAC they are sent
//! to, group addresses (broadcast, multicast) to every client, each copied
//! from the driver's buffer into a buffer of the client's own data region:
//! a client sees its own frames in its own buffers, nothing else. A frame
//! for no client, or for a client with no free buffer, is dropped and
//! counted. The driver's buffer goes back to it at once.
//!
//! With several clients, frames one client sends another come from the
//! transmit virtualiser on the loopback queue
//! ([`septa_net_protocol::loopback`]), served the same way: to the client
//! whose MAC they are sent to, group frames to every client but their
//! sender ([`septa_net_protocol::route_local`]); the loopback's buffer
//! goes back at once. The loopback's data region is mapped read-only.
//!
//! Wiring (`septa-net-protocol`'s [`wiring::virt`]): the driver on channel
//! 0, client i on `1 + i`, the transmit virtualiser on
//! [`wiring::virt::LOOPBACK`]; the clients' names and MACs in the patched
//! [`wiring::virt::CONFIG`]. Neither the driver's descriptors nor a
//! client's nor the transmit virtualiser's are trusted: each is checked
//! before a buffer is touched.
//!
//! Owns: its ends of the queues, the copies. Must not: look past the
//! destination address (policy is the stack's).
#![cfg_attr(target_os = "none", no_std, no_main)]

use septa_net_protocol::config::Clients;
use septa_net_protocol::loopback::Receiver;
use septa_net_protocol::wiring::{self, virt, MAX_CLIENTS};
use septa_net_protocol::{region, route, route_local, Route};
use septa_queue::net::{Buffers, Sink, Source};
use septa_queue::{Idle, Shared};
use septa_runtime::{patched, println, protection_domain, Channel, ChannelSet, Handler};

patched! {
    static CONFIG: [u8; Clients::SIZE] = "net_virt_config", [0; Clients::SIZE];
}

const DRIVER: Channel = Channel::new(virt::DRIVER);

/// The region of `size` bytes mapped at `base`.
fn mapped(base: u64, size: u64) -> Shared {
    // SAFETY: the tool maps the driver's queue pair and data region,
    // client i's, and the loopback's queue pair (when the configuration
    // gives the loopback buffers), read-write, and the loopback's data
    // region read-only (which this PD only reads: `Shared::read` and
    // `copy_to` from it), at their `wiring::virt` addresses with their
    // `wiring` sizes for the PD's whole life (for every client the
    // configuration names); this PD touches them only through `Shared`.
    unsafe { Shared::new(base as *mut u8, size as usize) }.expect("a region's address is not null")
}

struct Client {
    q: Source,
    data: Shared,
    dropped: u64,
    faults: u64,
}

struct Virt {
    driver: Sink,
    driver_data: Shared,
    buffers: Buffers,
    clients: heapless::Vec<Client, MAX_CLIENTS>,
    /// Drops and faults when last reported.
    reported: u64,
    /// Frames no client wanted.
    unclaimed: u64,
    faults: u64,
    config: Clients,
    /// Frames from one client to others, from the transmit virtualiser.
    loopback: Option<Receiver>,
}

impl Virt {
    /// Copies the frame at `offset` (`len` bytes) of `from` (the driver's
    /// region, or the loopback's) into a free buffer of client `c`.
    fn deliver(&mut self, c: usize, from: Shared, offset: usize, len: u16) -> bool {
        let Some(client) = self.clients.get_mut(c) else {
            return false;
        };
        let desc = match client.q.free.dequeue() {
            Ok(Some(d)) => d,
            Ok(None) => {
                client.dropped += 1;
                return false;
            }
            Err(_) => {
                client.faults += 1;
                return false;
            }
        };
        let own = Buffers::new(0, self.config.data_size(c));
        let Ok(index) = own.check(&desc) else {
            client.q.free.report(septa_queue::PeerFault::Descriptor {
                offset: desc.io_or_offset,
                len: desc.len as u64,
            });
            client.faults += 1;
            return false;
        };
        let to = own.offset(index);
        if from
            .copy_to(offset, &client.data, to, len as usize)
            .is_err()
        {
            client.faults += 1;
            return false;
        }
        let mut out = own.desc(index).expect("checked");
        out.len = len;
        if client.q.active.enqueue(out).is_err() {
            client.faults += 1;
            return false;
        }
        true
    }

    fn process(&mut self) {
        loop {
            while let Ok(Some(desc)) = self.driver.active.dequeue() {
                let Ok(index) = self.buffers.check(&desc) else {
                    self.faults += 1;
                    continue;
                };
                let at = self.buffers.offset(index) + wiring::DRIVER_FRAME_OFFSET;
                let len = desc.len;
                let mut dest = [0u8; 6];
                if len >= 14 && self.driver_data.read(at, &mut dest).is_ok() {
                    let to = route(&dest, &self.config);
                    self.send(to, self.driver_data, at, len);
                }
                let back = self.buffers.desc(index).expect("checked");
                if self.driver.free.enqueue(back).is_err() {
                    self.faults += 1;
                }
            }
            self.process_loopback();
            let again = matches!(self.driver.active.try_idle(), Ok(Idle::Reprocess));
            if again | self.loopback.as_mut().is_some_and(Receiver::try_idle) {
                continue;
            }
            break;
        }
        if self.driver.free.take_signal_request() {
            let _ = DRIVER.notify();
        }
        for (i, c) in self.clients.iter_mut().enumerate() {
            if c.q.active.take_signal_request() {
                let _ = client_channel(i).notify();
            }
        }
        self.report();
    }

    /// Delivers a frame as `to` says.
    fn send(&mut self, to: Route, from: Shared, at: usize, len: u16) {
        match to {
            Route::One(c) => {
                self.deliver(c, from, at, len);
            }
            Route::All => {
                for c in 0..self.clients.len() {
                    self.deliver(c, from, at, len);
                }
            }
            Route::AllBut(sender) => {
                for c in (0..self.clients.len()).filter(|c| *c != sender) {
                    self.deliver(c, from, at, len);
                }
            }
            Route::Drop => self.unclaimed += 1,
        }
    }

    /// Delivers what the transmit virtualiser switched to clients.
    fn process_loopback(&mut self) {
        let Some(data) = self.loopback.as_ref().map(Receiver::data) else {
            return;
        };
        while let Some(f) = self.loopback.as_mut().and_then(Receiver::take) {
            let (mut dest, mut src) = ([0u8; 6], [0u8; 6]);
            if data.read(f.offset, &mut dest).is_ok() && data.read(f.offset + 6, &mut src).is_ok() {
                let to = route_local(&src, &dest, &self.config);
                self.send(to, data, f.offset, f.len as u16);
            }
            if let Some(lb) = &mut self.loopback {
                lb.give_back(f.index);
            }
        }
    }

    /// Says what was lost, each time the total doubles (a storm costs a
    /// few lines).
    fn report(&mut self) {
        let looped = self.loopback.as_ref().map_or(0, |l| l.faults);
        let lost: u64 = self.faults
            + looped
            + self
                .clients
                .iter()
                .map(|c| c.dropped + c.faults)
                .sum::<u64>();
        if septa_net_protocol::report_due(lost, &mut self.reported, 1) {
            println!(
                "net-virt-rx: {lost} frames lost ({} driver faults, {} loopback faults{}), {} for no client",
                self.faults,
                looped,
                ClientLosses(&self.clients, &self.config),
                self.unclaimed
            );
        }
    }
}

/// Each client's losses, by name.
struct ClientLosses<'a>(&'a [Client], &'a Clients);

impl core::fmt::Display for ClientLosses<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, c) in self.0.iter().enumerate() {
            write!(
                f,
                "; {}: {} without a free buffer, {} faults",
                self.1.names[i].as_str(),
                c.dropped,
                c.faults
            )?;
        }
        Ok(())
    }
}

fn client_channel(i: usize) -> Channel {
    Channel::new(virt::client_channel(i).expect("at most MAX_CLIENTS clients"))
}

impl Handler for Virt {
    fn notified(&mut self, _channels: ChannelSet) {
        // Whoever it was (the driver with frames, a client with buffers
        // back), the work is the same: move what the driver has.
        self.process();
    }
}

fn init() -> Virt {
    let config = match Clients::decode(&CONFIG.get()) {
        Ok(c) => c,
        Err(e) => panic!("net-virt-rx: {e}"),
    };
    let mut driver = region::sink(mapped(virt::DRIVER_QUEUES, wiring::QUEUES_SIZE))
        .expect("the driver's queues");
    let buffers = Buffers::new(0, wiring::DATA_SIZE as usize);
    // Every receive buffer starts with the driver.
    if let Err(e) = buffers.fill(&mut driver.free) {
        panic!("net-virt-rx: the driver's free queue: {e:?}");
    }
    let _ = DRIVER.notify();
    driver.active.request_signal();
    let mut clients = heapless::Vec::new();
    for i in 0..config.count.min(MAX_CLIENTS) {
        let q = region::source(mapped(virt::client_queues(i), wiring::QUEUES_SIZE))
            .expect("a client's queues");
        let _ = clients.push(Client {
            q,
            data: mapped(virt::client_data(i), config.data_size(i) as u64),
            dropped: 0,
            faults: 0,
        });
    }
    let loopback = (config.loopback > 0).then(|| {
        let size = u64::from(config.loopback) * u64::from(wiring::BUFFER_SIZE);
        Receiver::new(
            mapped(virt::LOOPBACK_QUEUES, wiring::QUEUES_SIZE),
            mapped(virt::LOOPBACK_DATA, size),
        )
        .expect("the loopback's queues")
    });
    println!(
        "net-virt-rx: {} clients{}",
        clients.len(),
        if loopback.is_some() {
            ", frames between them switched locally"
        } else {
            ""
        }
    );
    Virt {
        loopback,
        driver,
        driver_data: mapped(virt::DRIVER_DATA, wiring::DATA_SIZE),
        buffers,
        clients,
        unclaimed: 0,
        faults: 0,
        reported: 0,
        config,
    }
}

protection_domain!(init);
