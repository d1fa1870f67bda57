//! # serial-virt-rx: the serial subsystem's receive virtualiser
//!
//! It takes the bytes the UART driver received and gives them to one
//! client at a time, the one that has the keyboard; the key sequence of
//! `septa_serial_protocol::keys` (sDDF 0.7's: Ctrl-\\, a client's number,
//! Enter) gives the keyboard to another ([`demux`] has the rules). At start
//! it prints who has the keyboard and how to move it; after each switch,
//! who has it now. It is a client of the transmit virtualiser for those
//! lines (its `println!` goes through the serial subsystem like any
//! client's), so they never tear another client's line.
//!
//! As sDDF's, it drops input for a client whose queue is full rather than
//! wait for it. Unlike sDDF's, it never trusts a client: a client that
//! scribbles over its queue loses its own input and is named, the others
//! are served on.
//!
//! Owns: its ends of the queues and the keyboard's owner. Must not: look
//! into what clients do with their input, or touch the UART.
//! Dependencies: `septa-runtime` (entry, channels, setvars, patched
//! labels, printing), `septa-queue` (the queues), `septa-serial-protocol`
//! (wiring, labels, the key sequence).
//!
//! ## Wiring
//!
//! As the transmit virtualiser's: channel 0 to the driver, `1 + i` to
//! client `i`, client `i`'s queue region at `client_queues + i *
//! client_queue_size`. Client numbers are those the person types.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

mod demux;

use demux::{Demux, Note};
use septa_queue::serial::{Consumer, Producer};
use septa_queue::Shared;
use septa_runtime::symbols::microkit_notifications;
use septa_runtime::{
    patched, println, protection_domain, setvar, Channel, ChannelSet, Handler, PdRefCell,
};
use septa_serial_protocol::config::{self, Config};
use septa_serial_protocol::keys;
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

/// The virtualiser's state, in a static: built in place at start-up (it
/// is a few KiB, too much to move about on an 8 KiB stack).
struct Virt {
    driver: Option<Consumer>,
    clients: [Option<Producer>; MAX_CLIENTS],
    faults: [u32; MAX_CLIENTS],
    demux: Demux,
    config: Config,
    /// Drops already reported.
    dropped_told: u64,
}

static VIRT: PdRefCell<Virt> = PdRefCell::new(Virt {
    driver: None,
    clients: [const { None }; MAX_CLIENTS],
    faults: [0; MAX_CLIENTS],
    demux: Demux::new(0),
    config: Config::EMPTY,
    dropped_told: 0,
});

/// A client's name for messages: its label, or its number.
struct Name<'a>(&'a Config, usize);

impl core::fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match core::str::from_utf8(self.0.labels[self.1].name()) {
            Ok(n) if !n.is_empty() => write!(f, "{} ({n})", self.1),
            _ => write!(f, "{}", self.1),
        }
    }
}

/// Every client, numbered, for the banner.
struct Clients<'a>(&'a Config, &'a [Option<Producer>; MAX_CLIENTS]);

impl core::fmt::Display for Clients<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, _) in self.1.iter().enumerate().filter(|(_, c)| c.is_some()) {
            write!(f, " {}", Name(self.0, i))?;
        }
        Ok(())
    }
}

impl Virt {
    fn rx_return(&mut self) {
        let Some(driver) = self.driver.as_mut() else {
            return;
        };
        let mut buf = [0u8; 64];
        let mut got = 0u64;
        // At most one queue's worth per notification: the driver (above
        // this PD) cannot refill it meanwhile, so this is all there is.
        let mut budget = driver.capacity() as usize;
        while budget > 0 {
            let n = match driver.read(&mut buf[..budget.min(64)]) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            budget -= n;
            let (config, faults) = (&self.config, &mut self.faults);
            got |= self.demux.route(&buf[..n], &mut self.clients, &mut |note| {
                tell(config, faults, note)
            });
        }
        if driver.take_signal_request() {
            let _ = DRIVER.notify();
        }
        for i in 0..MAX_CLIENTS {
            if got & (1 << i) != 0 {
                if let Some(ch) = virt::client_channel(i) {
                    let _ = Channel::new(ch).notify();
                }
            }
        }
        if self.demux.dropped > self.dropped_told {
            println!(
                "serial: client {}'s input queue is full: {} bytes dropped so far",
                Name(&self.config, self.demux.current()),
                self.demux.dropped
            );
            self.dropped_told = self.demux.dropped;
        }
    }
}

fn tell(config: &Config, faults: &mut [u32; MAX_CLIENTS], note: Note) {
    match note {
        Note::SwitchedTo(c) => println!("serial: input goes to client {}", Name(config, c)),
        Note::NoSuchClient(n) => println!("serial: there is no client {n} to type to"),
        Note::NotADigit(b) => println!(
            "serial: Ctrl-\\ takes a client's number then Enter (got {:?}); Ctrl-\\ twice sends Ctrl-\\",
            b as char
        ),
        Note::BadNumber => println!("serial: a client's number is at most {} digits, then Enter", keys::MAX_DIGITS),
        Note::ClientFault(c, f) => {
            faults[c] = faults[c].saturating_add(1);
            if faults[c].is_power_of_two() {
                println!(
                    "serial_virt_rx: client {} broke its input queue: {f} ({} faults so far); its input is dropped",
                    Name(config, c),
                    faults[c]
                );
            }
        }
    }
}

impl Virt {
    // Not inlined into the runtime's start-up, whose frame lasts as long
    // as the PD.
    #[inline(never)]
    fn start(&mut self) {
        let driver = region::consumer(&region(DRIVER_QUEUE.get(), DRIVER_QUEUE_SIZE.get()))
            .unwrap_or_else(|e| panic!("serial_virt_rx: the driver's queue: {e}"));
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
            self.clients[i] = Some(
                region::producer(&r)
                    .unwrap_or_else(|e| panic!("serial_virt_rx: client {i}'s queue: {e}")),
            );
        }
        self.config.decode_from(|i| CONFIG.byte(i));
        let first = usize::from(self.config.first).min(MAX_CLIENTS - 1);
        self.demux = Demux::new(first);
        // The banner, one line: who has the keyboard, and how to move it.
        println!(
            "serial: input goes to client {}; to type to another, press {}:{}",
            Name(&self.config, first),
            keys::HOW,
            Clients(&self.config, &self.clients)
        );
        // Anything typed before this PD ran.
        self.rx_return();
    }
}

/// The handler: the state lives in [`VIRT`].
struct Handle;

impl Handler for Handle {
    fn notified(&mut self, channels: ChannelSet) {
        // Clients notify only when they freed space they were asked to
        // (never: input is dropped, not held); the driver, when bytes came.
        if channels.contains(DRIVER) {
            VIRT.with(Virt::rx_return);
        }
    }
}

fn init() -> Handle {
    VIRT.with(Virt::start);
    Handle
}

protection_domain!(init);
