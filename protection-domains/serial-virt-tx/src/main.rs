//! # serial-virt-tx: the serial subsystem's transmit virtualiser
//!
//! It multiplexes every client's output onto the UART driver's queue,
//! whole lines at a time, each line with its client's prefix and colour if
//! the description gives them (the rules are [`mux`]'s). It follows sDDF
//! 0.7's transmit virtualiser (`serial/components/virt_tx.c`): a client
//! notifies after publishing bytes; the virtualiser copies what fits and
//! notifies the driver; a client whose bytes do not fit waits, in order,
//! until the driver says it made room; a client that asked for room is
//! notified once its queue has some. Unlike sDDF's, it never trusts a
//! client: a client that writes garbage into its queue is reported by name
//! (on the console, after its 1st, 2nd, 4th, 8th, ... fault) and ignored
//! until its queue is consistent again, and the others go on.
//!
//! Its own messages go onto the driver's queue as whole lines, so they
//! never tear a client's line either.
//!
//! Owns: its ends of the queues. Must not: change a client's bytes (beyond
//! the prefix and colour around its lines), or touch the UART.
//! Dependencies: `septa-runtime` (entry, channels, setvars, patched
//! labels), `septa-queue` (the queues), `septa-serial-protocol` (wiring,
//! labels), `heapless` (formatting a report without a heap).
//!
//! ## Wiring
//!
//! Channel 0 goes to the driver, channel `1 + i` to client `i`; client
//! `i`'s queue region is mapped at `client_queues + i * client_queue_size`
//! (`septa_serial_protocol::wiring`). `[serial]` in a description
//! generates all of it; the labels (`serial_virt_config`) only that way.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

mod mux;

use core::fmt::Write as _;

use mux::{Mux, MuxError, Served};
use septa_queue::serial::{Consumer, Producer};
use septa_queue::{Idle, PeerFault, Shared};
use septa_runtime::symbols::microkit_notifications;
use septa_runtime::{
    patched, println, protection_domain, setvar, Channel, ChannelSet, Handler, PdRefCell,
};
use septa_serial_protocol::config::{self, Config};
use septa_serial_protocol::region;
use septa_serial_protocol::wiring::{virt, MAX_CLIENTS};

setvar! {
    static DRIVER_QUEUE = "driver_queue";
    static DRIVER_QUEUE_SIZE = "driver_queue_size";
    static CLIENT_QUEUES = "client_queues";
    static CLIENT_QUEUE_SIZE = "client_queue_size";
}

patched! {
    static CONFIG: [u8; config::SIZE] = "serial_virt_config", [0; config::SIZE];
}

const DRIVER: Channel = Channel::new(virt::DRIVER);

/// The region of `size` bytes at `vaddr`.
fn region(vaddr: u64, size: u64) -> Shared {
    #[allow(unsafe_code)]
    // SAFETY: the system description maps every queue region of this PD
    // read-write at the patched address (the driver's, and client i's at
    // `client_queues + i * client_queue_size` for every client whose
    // channel it wires) with the patched size, for the PD's whole life;
    // this PD touches them only through `Shared`.
    let r = unsafe { Shared::new(vaddr as *mut u8, size as usize) };
    r.expect("a queue region is mapped")
}

struct Client {
    q: Consumer,
    /// Protocol faults seen.
    faults: u32,
}

/// Clients waiting for their turn, in order, each at most once.
struct Pending {
    ring: [u8; MAX_CLIENTS],
    head: usize,
    len: usize,
    queued: [bool; MAX_CLIENTS],
}

impl Pending {
    const fn new() -> Pending {
        Pending {
            ring: [0; MAX_CLIENTS],
            head: 0,
            len: 0,
            queued: [false; MAX_CLIENTS],
        }
    }

    fn push(&mut self, c: usize) {
        if self.queued[c] {
            return;
        }
        self.queued[c] = true;
        self.ring[(self.head + self.len) % MAX_CLIENTS] = c as u8;
        self.len += 1;
    }

    /// Puts `c` first (moving it if it already waits).
    fn push_front(&mut self, c: usize) {
        if self.queued[c] {
            let mut rest = [0u8; MAX_CLIENTS];
            let mut n = 0;
            while let Some(x) = self.pop() {
                if x != c {
                    rest[n] = x as u8;
                    n += 1;
                }
            }
            for &x in &rest[..n] {
                self.push(usize::from(x));
            }
        }
        self.queued[c] = true;
        self.head = (self.head + MAX_CLIENTS - 1) % MAX_CLIENTS;
        self.ring[self.head] = c as u8;
        self.len += 1;
    }

    fn front(&self) -> Option<usize> {
        (self.len > 0).then(|| usize::from(self.ring[self.head]))
    }

    fn pop(&mut self) -> Option<usize> {
        let c = self.front()?;
        self.head = (self.head + 1) % MAX_CLIENTS;
        self.len -= 1;
        self.queued[c] = false;
        Some(c)
    }
}

/// The virtualiser's state, in a static: built in place at start-up (it
/// is a few KiB, too much to move about on an 8 KiB stack).
struct Virt {
    mux: Mux,
    driver: Option<Producer>,
    clients: [Option<Client>; MAX_CLIENTS],
    config: Config,
    pending: Pending,
    driver_faults: u32,
}

static VIRT: PdRefCell<Virt> = PdRefCell::new(Virt {
    mux: Mux::new(),
    driver: None,
    clients: [const { None }; MAX_CLIENTS],
    config: Config::EMPTY,
    pending: Pending::new(),
    driver_faults: 0,
});

/// Whether the `n`th fault is one to report: the 1st, 2nd, 4th, 8th, ...
fn worth_telling(n: u32) -> bool {
    n.is_power_of_two()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_clients_keep_their_order_and_the_line_owner_jumps_it() {
        let mut p = Pending::new();
        for c in [3, 1, 3, 7] {
            p.push(c);
        }
        p.push_front(7);
        p.push_front(9);
        let mut order = std::vec::Vec::new();
        while let Some(c) = p.pop() {
            order.push(c);
        }
        assert_eq!(order, [9, 7, 3, 1]);
        for c in 0..MAX_CLIENTS {
            p.push(c);
        }
        p.push_front(5);
        assert_eq!(
            (p.pop(), p.pop(), p.len),
            (Some(5), Some(0), MAX_CLIENTS - 2)
        );
    }
}

/// Names a client that broke its queue, on the console.
fn tell_client_fault(
    mux: &mut Mux,
    driver: &mut Producer,
    config: &Config,
    c: usize,
    n: u32,
    f: PeerFault,
) {
    let mut line: heapless::String<256> = heapless::String::new();
    let name = core::str::from_utf8(config.labels[c].name()).unwrap_or("?");
    let _ = write!(
        line,
        "serial_virt_tx: client {c} ({name}) broke its queue: {f} ({n} fault{} so far); \
         its output is ignored while its queue is inconsistent\r\n",
        if n == 1 { "" } else { "s" }
    );
    if !mux.say(line.as_bytes(), driver) {
        // No room on the UART's queue: the kernel's output, if any.
        println!("{}", line.trim_end());
    }
}

impl Virt {
    /// Serves waiting clients in order until none waits or the driver's
    /// queue is full; then the notifications owed.
    fn run(&mut self) {
        let Some(driver) = self.driver.as_mut() else {
            return;
        };
        let mut moved_any = false;
        // The clients whose bytes were taken (bit i: client i).
        let mut consumed = 0u64;
        let mut driver_fault = None;
        while let Some(c) = self.pending.front() {
            let Some(client) = self.clients[c].as_mut() else {
                self.pending.pop();
                continue;
            };
            let label = &self.config.labels[c];
            match self.mux.serve(c, label, &mut client.q, driver) {
                Ok((served, moved)) => {
                    if moved > 0 {
                        moved_any = true;
                        consumed |= 1 << c;
                    }
                    match served {
                        Served::Done => {
                            self.pending.pop();
                        }
                        Served::Later => {
                            self.pending.pop();
                            self.pending.push(c);
                        }
                        Served::Blocked { want } => match driver.try_idle(want) {
                            Ok(Idle::Reprocess) => continue,
                            Ok(Idle::Block) => break,
                            Err(f) => {
                                driver_fault = Some(f);
                                break;
                            }
                        },
                    }
                }
                Err(MuxError::Client(f)) => {
                    self.pending.pop();
                    client.faults = client.faults.saturating_add(1);
                    if worth_telling(client.faults) {
                        let n = client.faults;
                        tell_client_fault(&mut self.mux, driver, &self.config, c, n, f);
                        moved_any = true;
                    }
                }
                Err(MuxError::Driver(f)) => {
                    driver_fault = Some(f);
                    break;
                }
            }
        }
        if let Some(f) = driver_fault {
            self.driver_fault(f);
        }
        if moved_any {
            let _ = DRIVER.notify();
        }
        while consumed != 0 {
            let i = consumed.trailing_zeros() as usize;
            consumed &= consumed - 1;
            let Some(client) = self.clients[i].as_mut() else {
                continue;
            };
            if client.q.take_signal_request() {
                if let Some(ch) = virt::client_channel(i) {
                    let _ = Channel::new(ch).notify();
                }
            }
        }
    }

    fn driver_fault(&mut self, f: PeerFault) {
        self.driver_faults = self.driver_faults.saturating_add(1);
        if worth_telling(self.driver_faults) {
            println!(
                "serial_virt_tx: the driver broke the transmit queue: {f} ({} faults so far)",
                self.driver_faults
            );
        }
    }
}

impl Virt {
    fn notified(&mut self, channels: ChannelSet) {
        for ch in channels {
            if let Some(c) = virt::client_of(ch.id()) {
                if self.clients[c].is_none() {
                    continue;
                }
                // The client whose unfinished line the console shows goes
                // first, so that its line is finished before another
                // client's has to break it.
                if self.mux.owns_line(c) {
                    self.pending.push_front(c);
                } else {
                    self.pending.push(c);
                }
            }
        }
        // The driver made room, a client wrote, or both: serve in order.
        self.run();
    }

    // Not inlined into the runtime's start-up, whose frame lasts as long
    // as the PD.
    #[inline(never)]
    fn start(&mut self) {
        let driver = region::producer(&region(DRIVER_QUEUE.get(), DRIVER_QUEUE_SIZE.get()))
            .unwrap_or_else(|e| panic!("serial_virt_tx: the driver's queue: {e}"));
        self.driver = Some(driver);
        let wired = microkit_notifications.get();
        let size = CLIENT_QUEUE_SIZE.get();
        for i in 0..MAX_CLIENTS {
            let Some(ch) = virt::client_channel(i) else {
                break;
            };
            if wired & (1 << ch) == 0 {
                continue;
            }
            let r = region(CLIENT_QUEUES.get() + i as u64 * size, size);
            let q = region::consumer(&r)
                .unwrap_or_else(|e| panic!("serial_virt_tx: client {i}'s queue: {e}"));
            self.clients[i] = Some(Client { q, faults: 0 });
            // Anything a client wrote before this PD ran.
            self.pending.push(i);
        }
        self.config.decode_from(|i| CONFIG.byte(i));
        self.run();
    }
}

/// The handler: the state lives in [`VIRT`].
struct Handle;

impl Handler for Handle {
    fn notified(&mut self, channels: ChannelSet) {
        VIRT.with(|v| v.notified(channels));
    }
}

fn init() -> Handle {
    VIRT.with(Virt::start);
    Handle
}

protection_domain!(init);
