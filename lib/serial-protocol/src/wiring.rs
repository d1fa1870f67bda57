//! How the serial subsystem is wired: the symbols the system tool patches
//! into each program, and which channel is which.
//!
//! `[serial]` in a system description makes the tool write exactly these;
//! a system wired by hand follows the same conventions (maps with
//! `setvar_vaddr`/`setvar_size` naming these symbols, channels with these
//! ids). A symbol left at zero means "not wired": a PD whose
//! [`client::TX`] is zero prints through the kernel's debug output.
//!
//! ```text
//!  client 0 ──tx──▶ ┌────────────────┐ ──tx──▶ ┌────────┐
//!  client 1 ──tx──▶ │ serial_virt_tx │         │ driver │ ◀──▶ UART
//!  serial_virt_rx ─▶└────────────────┘         │        │
//!  client 0 ◀──rx── ┌────────────────┐ ◀──rx── │        │
//!  client 1 ◀──rx── │ serial_virt_rx │         └────────┘
//!                   └────────────────┘
//! ```
//!
//! The receive virtualiser is itself a client of the transmit one (it
//! prints which client has the keyboard), so every line on the console
//! goes through one multiplexer.

/// The most clients a virtualiser serves (its channels 1 to 32).
pub const MAX_CLIENTS: usize = 32;

/// What a client (any PD linking `septa-runtime`) is patched with.
pub mod client {
    /// Address of its output queue's region; zero: it is not a client and
    /// prints through the kernel's debug output.
    pub const TX: &str = "septa_serial_tx";
    /// Size of that region (the capacity is derived from it:
    /// [`crate::region::capacity`]).
    pub const TX_SIZE: &str = "septa_serial_tx_size";
    /// Its channel to the transmit virtualiser.
    pub const TX_CHANNEL: &str = "septa_serial_tx_channel";
    /// Address of its input queue's region; zero: it gets no input.
    pub const RX: &str = "septa_serial_rx";
    /// Size of that region.
    pub const RX_SIZE: &str = "septa_serial_rx_size";
    /// Its channel to the receive virtualiser.
    pub const RX_CHANNEL: &str = "septa_serial_rx_channel";
}

/// What the UART driver is patched with, and its channels.
pub mod driver {
    /// Address of the UART's registers in the driver (a map's
    /// `setvar_device`).
    pub const REGS: &str = "uart_regs";
    /// Address of the region of the queue from the transmit virtualiser.
    pub const TX: &str = "tx_queue";
    /// Its size.
    pub const TX_SIZE: &str = "tx_queue_size";
    /// Address of the region of the queue to the receive virtualiser; zero:
    /// the driver only transmits.
    pub const RX: &str = "rx_queue";
    /// Its size.
    pub const RX_SIZE: &str = "rx_queue_size";

    /// The UART's interrupt.
    pub const IRQ: u8 = 0;
    /// The channel to the transmit virtualiser.
    pub const TX_VIRT: u8 = 1;
    /// The channel to the receive virtualiser.
    pub const RX_VIRT: u8 = 2;
}

/// What each virtualiser is patched with, and its channels.
pub mod virt {
    use super::MAX_CLIENTS;

    /// Address of the region of its queue with the driver.
    pub const DRIVER_QUEUE: &str = "driver_queue";
    /// Its size.
    pub const DRIVER_QUEUE_SIZE: &str = "driver_queue_size";
    /// Address of client 0's queue region; client i's is at
    /// `CLIENT_QUEUES + i * CLIENT_QUEUE_SIZE` (every client's queue has
    /// the same size; a client without a queue leaves its slot unmapped).
    pub const CLIENT_QUEUES: &str = "client_queues";
    /// The size of each client's queue region.
    pub const CLIENT_QUEUE_SIZE: &str = "client_queue_size";
    /// The labels ([`crate::config`]), a byte array of
    /// [`crate::config::SIZE`] bytes; all zero when wired by hand.
    pub const CONFIG: &str = "serial_virt_config";

    /// The channel to the driver.
    pub const DRIVER: u8 = 0;

    /// The receive virtualiser's channel to the transmit virtualiser, whose
    /// client it is: past the client channels, so it is never taken for one.
    pub const OUTPUT: u8 = 1 + MAX_CLIENTS as u8;

    /// The channel to client `i`: `1 + i`.
    pub const fn client_channel(i: usize) -> Option<u8> {
        if i < MAX_CLIENTS {
            Some(1 + i as u8)
        } else {
            None
        }
    }

    /// The client on channel `ch`, if it is a client channel.
    pub const fn client_of(ch: u8) -> Option<usize> {
        if ch >= 1 && (ch as usize) <= MAX_CLIENTS {
            Some(ch as usize - 1)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_channels_follow_the_driver_and_round_trip() {
        assert_eq!(virt::client_channel(0), Some(1));
        assert_eq!(virt::client_channel(MAX_CLIENTS - 1), Some(32));
        assert_eq!(virt::client_channel(MAX_CLIENTS), None);
        for i in 0..MAX_CLIENTS {
            assert_eq!(virt::client_of(virt::client_channel(i).unwrap()), Some(i));
        }
        assert_eq!(virt::client_of(virt::DRIVER), None);
        assert_eq!(virt::client_of(33), None);
        assert_eq!(virt::client_of(virt::OUTPUT), None);
    }
}
