//! # pl011: a driver PD for an Arm PL011 UART
//!
//! It owns the UART (QEMU virt's at 0x0900_0000, INTID 33) and nothing
//! else. It takes bytes from the transmit virtualiser's queue and puts
//! received bytes on the receive virtualiser's queue, both sDDF 0.7 serial
//! queues (`septa-queue`), laid out and wired as `septa-serial-protocol`
//! says, so an sDDF virtualiser could sit on the other side.
//!
//! - **Transmit**: when the virtualiser notifies, it writes bytes to the
//!   data register while the transmit FIFO has room. If bytes remain (the
//!   FIFO filled), it enables the transmit interrupt and goes on when the
//!   FIFO drains. Having freed queue space, it notifies the virtualiser
//!   only if the virtualiser asked (sDDF's signalling rule).
//! - **Receive**: the receive and receive-timeout interrupts (FIFO at 1/8,
//!   or bytes waiting) move bytes from the FIFO to the queue, and it
//!   notifies the virtualiser. If the queue is full it masks the receive
//!   interrupts (the line is level-triggered: left unmasked it would fire
//!   for ever), asks the virtualiser for a signal, and unmasks when it
//!   comes; the bytes wait in the FIFO meanwhile (QEMU holds further input
//!   back, a real UART drops it past 32 bytes).
//!
//! ## Sharing the UART with the kernel's debug output
//!
//! A kernel built with printing (Septa's, seL4's debug configuration)
//! writes its own messages and every PD's `DebugPutChar` to the same
//! UART's data register, polling the FIFO flag, without interrupts. The
//! two writers never disturb each other's bytes (each write is one byte to
//! the FIFO); lines can interleave, as with sDDF on Microkit. So this
//! driver leaves the UART as the boot firmware and the kernel set it up: it
//! waits (boundedly) for the kernel's last byte to leave, never turns the
//! UART or its transmitter off, keeps the line settings and the baud rate,
//! and only adds what it needs (FIFOs on, 8 data bits, its interrupts, the
//! receiver). It reads no input the kernel might want: the kernels here
//! read none.
//!
//! Owns: the UART's registers and interrupt, the driver's ends of the two
//! queues. Must not: interpret bytes (what input means is the receive
//! virtualiser's business, what output looks like the clients').
//! Dependencies: `septa-runtime` (entry, channels, setvars),
//! `septa-queue` (the queues), `septa-serial-protocol` (the wiring).
//!
//! ## Wiring (what `[serial]` generates; by hand, the same)
//!
//! ```toml
//! [pd.serial_driver]
//! program = "pl011"
//! priority = 254
//! maps = [
//!     { region = "serial_uart", vaddr = 0x2000_0000, cached = false, setvar_device = "uart_regs" },
//!     { region = "serial_driver_tx", vaddr = 0x2100_0000, setvar_vaddr = "tx_queue", setvar_size = "tx_queue_size" },
//!     { region = "serial_driver_rx", vaddr = 0x2200_0000, setvar_vaddr = "rx_queue", setvar_size = "rx_queue_size" },
//! ]
//! irqs = [{ device = "uart", id = 0 }]
//! ```
//!
//! Channel 1 goes to the transmit virtualiser, channel 2 to the receive
//! one (which may be absent: no `rx_queue`, no input).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

mod regs;

use regs::*;
use septa_queue::serial::{Consumer, Producer};
use septa_queue::{Idle, Shared};
use septa_runtime::{println, protection_domain, setvar, Channel, ChannelSet, Handler, Setvar};
use septa_serial_protocol::region;
use septa_serial_protocol::wiring::driver as wiring;

setvar! {
    static UART_REGS = "uart_regs";
    static TX_QUEUE = "tx_queue";
    static TX_QUEUE_SIZE = "tx_queue_size";
    static RX_QUEUE = "rx_queue";
    static RX_QUEUE_SIZE = "rx_queue_size";
}

const IRQ: Channel = Channel::new(wiring::IRQ);
const TX_VIRT: Channel = Channel::new(wiring::TX_VIRT);
const RX_VIRT: Channel = Channel::new(wiring::RX_VIRT);

/// Polls of the busy flag before the driver takes the UART over: far more
/// than a FIFO's worth of bytes at any baud rate on the boards here, and a
/// bound, so a UART that never says idle cannot stop the driver.
const BUSY_POLLS: u32 = 1_000_000;

/// The queue region at the patched address, or `None` if not wired.
fn region(vaddr: &Setvar, size: &Setvar) -> Option<Shared> {
    if vaddr.get() == 0 {
        return None;
    }
    #[allow(unsafe_code)]
    // SAFETY: the system description maps this region read-write at the
    // patched address with the patched size for the PD's whole life (the
    // tool writes both from the same map), and this PD touches it only
    // through `Shared`.
    unsafe {
        Shared::new(vaddr.as_ptr(), size.get() as usize)
    }
}

struct Driver {
    uart: Pl011,
    tx: Consumer,
    rx: Option<Producer>,
    /// Receive interrupts are masked until the virtualiser frees space.
    rx_blocked: bool,
    /// Whether a queue fault was already reported (once per queue).
    tx_fault_told: bool,
    rx_fault_told: bool,
}

impl Driver {
    /// Sends what fits in the FIFO; keeps the transmit interrupt on while
    /// bytes remain.
    fn tx_provide(&mut self) {
        let mut sent = false;
        let mut buf = [0u8; 64];
        loop {
            let fifo_full = self.uart.flags() & FR_TXFF != 0;
            if fifo_full {
                break;
            }
            // Look, then take only what the FIFO took: a byte stays queued
            // until it is in the UART.
            let n = match self.tx.peek(0, &mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    if !self.tx_fault_told {
                        self.tx_fault_told = true;
                        println!(
                            "pl011: the transmit queue is broken ({e}); waiting for it to recover"
                        );
                    }
                    break;
                }
            };
            // An empty FIFO takes a FIFO's worth without asking again;
            // otherwise each byte waits for room.
            let mut put = 0;
            while put < n {
                let flags = self.uart.flags();
                if flags & FR_TXFF != 0 {
                    break;
                }
                let room = if flags & FR_TXFE != 0 {
                    TX_FIFO_DEPTH
                } else {
                    1
                };
                for &b in &buf[put..n.min(put + room)] {
                    self.uart.send(b);
                }
                put = n.min(put + room);
            }
            let _ = self.tx.skip(put as u32);
            sent = true;
        }
        self.tx.commit();
        let more = !matches!(self.tx.is_empty(), Ok(true));
        let mask = self.uart.mask();
        if more {
            self.uart.set_mask(mask | INT_TX);
        } else {
            self.uart.set_mask(mask & !INT_TX);
        }
        self.uart.clear(INT_TX);
        if sent && self.tx.take_signal_request() {
            let _ = TX_VIRT.notify();
        }
    }

    /// Moves received bytes to the queue; masks reception while it is full.
    fn rx_return(&mut self) {
        // Clear the receive interrupts before draining, not after: QEMU's
        // PL011 raises its receive interrupt only when the FIFO goes from
        // empty to one byte, so a byte that came between the last look at
        // the FIFO and a clear made afterwards would be left with no
        // interrupt, and every byte after it too (the FIFO is no longer
        // empty): input would stall for good. Cleared first, a byte that
        // comes while this drains is read here, and one that comes after
        // the FIFO is seen empty raises the interrupt again.
        self.uart.clear(INT_RX_ANY);
        let Some(rx) = &mut self.rx else {
            // Reception is off: drop whatever came.
            while self.uart.flags() & FR_RXFE == 0 {
                let _ = self.uart.receive();
            }
            return;
        };
        let mut moved = false;
        loop {
            let room = match rx.space() {
                Ok(room) => room,
                Err(e) => {
                    if !self.rx_fault_told {
                        self.rx_fault_told = true;
                        println!("pl011: the receive queue is broken ({e}); input waits");
                    }
                    self.rx_blocked = true;
                    break;
                }
            };
            let mut staged = 0;
            while staged < room && self.uart.flags() & FR_RXFE == 0 {
                // `room` was free: staging cannot fail.
                let _ = rx.stage(self.uart.receive());
                staged += 1;
            }
            rx.commit();
            moved |= staged > 0;
            if self.uart.flags() & FR_RXFE != 0 {
                break;
            }
            // Bytes wait and the queue is full: ask for space, look again.
            match rx.try_idle(1) {
                Ok(Idle::Reprocess) => continue,
                Ok(Idle::Block) | Err(_) => {
                    self.rx_blocked = true;
                    break;
                }
            }
        }
        let mask = self.uart.mask();
        if self.rx_blocked {
            self.uart.set_mask(mask & !INT_RX_ANY);
        } else {
            self.uart.set_mask(mask | INT_RX_ANY);
        }
        if moved {
            let _ = RX_VIRT.notify();
        }
    }

    fn interrupt(&mut self) {
        // Bounded: each round empties the FIFO it was called for (or masks
        // its interrupt), so a source stays pending only if the device
        // refilled it meanwhile.
        for _ in 0..16 {
            let pending = self.uart.pending();
            if pending & (INT_RX_ANY | INT_TX) == 0 {
                break;
            }
            if pending & INT_RX_ANY != 0 {
                self.rx_return();
            }
            if pending & INT_TX != 0 {
                self.tx_provide();
            }
        }
        // Anything else (modem lines, errors) is of no interest.
        self.uart.clear(INT_ALL & !(INT_RX_ANY | INT_TX));
    }
}

impl Handler for Driver {
    fn notified(&mut self, channels: ChannelSet) {
        if channels.contains(IRQ) {
            self.interrupt();
            let _ = IRQ.deferred_irq_ack();
        }
        if channels.contains(TX_VIRT) {
            self.tx_provide();
        }
        if channels.contains(RX_VIRT) && self.rx_blocked {
            self.rx_blocked = false;
            self.rx_return();
        }
    }
}

fn init() -> Driver {
    assert!(UART_REGS.get() != 0, "pl011: uart_regs is not patched");
    #[allow(unsafe_code)]
    // SAFETY: `Pl011::new`'s contract holds: the description maps the
    // UART's page uncached at this address for the PD's life (the map's
    // `setvar_device`), and nothing else in this PD touches it.
    let uart = unsafe { Pl011::new(UART_REGS.addr()) };
    let tx = region(&TX_QUEUE, &TX_QUEUE_SIZE)
        .map(|r| region::consumer(&r))
        .expect("pl011: tx_queue is not patched")
        .unwrap_or_else(|e| panic!("pl011: the transmit queue: {e}"));
    let rx = region(&RX_QUEUE, &RX_QUEUE_SIZE)
        .map(|r| region::producer(&r).unwrap_or_else(|e| panic!("pl011: the receive queue: {e}")));

    // Let the kernel's last message leave before touching the settings.
    for _ in 0..BUSY_POLLS {
        if uart.flags() & FR_BUSY == 0 {
            break;
        }
    }
    let lcr = uart.line_control();
    if lcr & (LCR_H_FEN | LCR_H_WLEN_8) != LCR_H_FEN | LCR_H_WLEN_8 {
        uart.set_line_control(lcr | LCR_H_FEN | LCR_H_WLEN_8);
    }
    uart.set_fifo_levels(IFLS_EIGHTH);
    uart.clear(INT_ALL);
    let receive = rx.is_some();
    uart.set_mask(if receive { INT_RX_ANY } else { 0 });
    let cr = uart.control() | CR_UARTEN | CR_TXE;
    uart.set_control(if receive { cr | CR_RXE } else { cr });

    let mut d = Driver {
        uart,
        tx,
        rx,
        rx_blocked: false,
        tx_fault_told: false,
        rx_fault_told: false,
    };
    // Whatever was queued before this PD ran, and whatever already came in.
    d.tx_provide();
    d.rx_return();
    d
}

protection_domain!(init);
