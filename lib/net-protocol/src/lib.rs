//! # septa-net-protocol: what the network subsystem's PDs say to each other
//!
//! The network path, sDDF's way, with a TCP/IP stack and its cells above:
//!
//! ```text
//!            ┌──────────────┐ ─rx─▶ ┌────────────┐ ─rx─▶ ┌───────────┐ ◀─sockets─▶ cell 0
//!  device ◀─▶│ net_driver   │       │ net_virt_rx│       │ net_stack │ ◀─sockets─▶ cell 1
//!  (virtio)  │ (virtio-net) │ ◀tx── │ net_virt_tx│ ◀tx── │ (smoltcp) │
//!            └──────────────┘       └────────────┘       └───────────┘
//! ```
//!
//! - the driver and each virtualiser share a free/active pair of
//!   `septa-queue` net queues and a data region of [`wiring::BUFFERS`]
//!   buffers, which the device reaches (DMA); frames sit at
//!   [`wiring::DRIVER_FRAME_OFFSET`] in them, after the device's header;
//! - each virtualiser and each of its clients (the stack, each Linux
//!   guest's card) share one more pair and a data region of the client's
//!   own, frames at offset 0; the virtualisers copy between the driver's
//!   buffers and the clients', so a client sees its own frames and buffers
//!   and nothing else;
//! - with several clients, the virtualisers share a loopback ([`loopback`]):
//!   the transmit virtualiser switches a frame for other clients
//!   ([`switch`]) into it, the receive virtualiser delivers it
//!   ([`route_local`]);
//! - each cell and the stack share one region of socket slots
//!   ([`sockets`]): byte rings each way per socket, and a header the
//!   stack writes; control is a protected procedure call ([`calls`]).
//!
//! Owns: the wiring conventions ([`wiring`]: channels, addresses, sizes,
//! symbols), the configuration the tool writes into the virtualisers and
//! the stack ([`config`], host-tested encodings), the socket slot layout and
//! the call protocol. Must not: make system calls or touch shared memory
//! (the PDs do, through `septa-queue`).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod calls;
pub mod config;
pub mod loopback;
pub mod region;
pub mod sockets;
pub mod wiring;

use config::Clients;

/// Where a received frame goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// To client i alone.
    One(usize),
    /// To every client (broadcast, multicast).
    All,
    /// To every client but client i, who sent it (a group frame on the
    /// loopback).
    AllBut(usize),
    /// To no one (unicast to an address no client has).
    Drop,
}

/// Where a frame whose destination address is `dest` goes (sDDF's receive
/// virtualiser's rule: by destination MAC, group addresses to all).
pub fn route(dest: &Mac, clients: &Clients) -> Route {
    if is_group(dest) {
        return Route::All;
    }
    clients.by_mac(dest).map_or(Route::Drop, Route::One)
}

/// Where a client's frame goes, the transmit virtualiser's switching rule
/// (an L2 switch's): to another client's MAC, to that client alone over
/// the loopback; a group address (broadcast, multicast) to the wire and
/// over the loopback to every other client; any other unicast (the
/// gateway's, an unknown MAC, the sender's own) to the wire, as before.
/// Without a loopback ([`Clients::loopback`] 0) everything goes to the
/// wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Switch {
    /// To the driver.
    pub wire: bool,
    /// Over the loopback, to the receive virtualiser.
    pub local: bool,
}

/// The switching decision for a frame from client `sender` to `dest`.
pub fn switch(sender: usize, dest: &Mac, clients: &Clients) -> Switch {
    const WIRE: Switch = Switch {
        wire: true,
        local: false,
    };
    if clients.loopback == 0 {
        return WIRE;
    }
    if is_group(dest) {
        return Switch {
            wire: true,
            local: clients.count > 1,
        };
    }
    match clients.by_mac(dest) {
        Some(c) if c != sender => Switch {
            wire: false,
            local: true,
        },
        _ => WIRE,
    }
}

/// Where a frame from the loopback goes: `src` must be a client's MAC
/// (the transmit virtualiser checked it; the receive virtualiser does not
/// take its word), which it never goes back to; a group frame goes to
/// every other client, a unicast one to the client whose MAC it is
/// sent to. Anything else goes nowhere (the transmit virtualiser sends
/// no such frame).
pub fn route_local(src: &Mac, dest: &Mac, clients: &Clients) -> Route {
    let Some(sender) = clients.by_mac(src) else {
        return Route::Drop;
    };
    if is_group(dest) {
        return Route::AllBut(sender);
    }
    match clients.by_mac(dest) {
        Some(c) if c != sender => Route::One(c),
        _ => Route::Drop,
    }
}

/// An Ethernet address.
pub type Mac = [u8; 6];

/// Whether `mac` is a group (broadcast or multicast) address.
pub fn is_group(mac: &Mac) -> bool {
    mac[0] & 1 == 1
}

/// Whether a count of losses is due to be reported: the first time it
/// reaches `floor`, then each time it has doubled since the last report
/// (`last`, updated). A storm costs a few lines, whatever its size.
pub fn report_due(count: u64, last: &mut u64, floor: u64) -> bool {
    if count >= floor.max(1) && count >= last.saturating_mul(2) && count > *last {
        *last = count;
        true
    } else {
        false
    }
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<Mac> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Parses a dotted IPv4 address.
pub fn parse_ipv4(s: &str) -> Option<[u8; 4]> {
    let mut ip = [0u8; 4];
    let mut parts = s.split('.');
    for b in &mut ip {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        *b = p.parse().ok()?;
    }
    parts.next().is_none().then_some(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_go_by_destination_and_groups_to_all() {
        let mut c = Clients::EMPTY;
        c.count = 2;
        c.macs[0] = [0x52, 0x54, 0, 0, 0, 1];
        c.macs[1] = [0x52, 0x54, 0, 0, 0, 2];
        assert_eq!(route(&[0x52, 0x54, 0, 0, 0, 2], &c), Route::One(1));
        assert_eq!(route(&[0x52, 0x54, 0, 0, 0, 3], &c), Route::Drop);
        assert_eq!(route(&[0xff; 6], &c), Route::All);
        assert_eq!(route(&[0x33, 0x33, 0, 0, 0, 1], &c), Route::All);
        assert_eq!(
            route(&[0; 6], &c),
            Route::Drop,
            "unused slots match nothing"
        );
    }

    fn three_clients(loopback: u16) -> Clients {
        let mut c = Clients::EMPTY;
        c.count = 3;
        for i in 0..3 {
            c.macs[i] = [0x52, 0x54, 0, 0x12, 0x34, 0x56 + i as u8];
        }
        c.loopback = loopback;
        c
    }

    #[test]
    fn the_switch_keeps_frames_between_clients_off_the_wire() {
        let c = three_clients(256);
        let mac = |i: u8| [0x52, 0x54, 0, 0x12, 0x34, 0x56 + i];
        let (wire, local, both) = (
            Switch {
                wire: true,
                local: false,
            },
            Switch {
                wire: false,
                local: true,
            },
            Switch {
                wire: true,
                local: true,
            },
        );
        // To another client: that client alone, whoever sends.
        assert_eq!(switch(1, &mac(0), &c), local);
        assert_eq!(switch(0, &mac(2), &c), local);
        // Broadcast and multicast: the wire and the other clients.
        assert_eq!(switch(1, &[0xff; 6], &c), both);
        assert_eq!(switch(0, &[0x01, 0, 0x5e, 0, 0, 0xfb], &c), both);
        assert_eq!(switch(2, &[0x33, 0x33, 0, 0, 0, 1], &c), both);
        // Unknown unicast (QEMU's gateway), and the sender's own MAC: the
        // wire only.
        assert_eq!(switch(1, &[0x52, 0x55, 10, 0, 2, 2], &c), wire);
        assert_eq!(switch(1, &mac(1), &c), wire);
        // An unused slot's MAC (all zero) is no client's.
        assert_eq!(switch(1, &[0; 6], &c), wire);
        // No loopback (one client, or a system without it): the wire.
        let none = three_clients(0);
        assert_eq!(switch(1, &mac(0), &none), wire);
        assert_eq!(switch(1, &[0xff; 6], &none), wire);
        let mut one = three_clients(256);
        one.count = 1;
        assert_eq!(switch(0, &[0xff; 6], &one), wire);
        assert_eq!(switch(0, &mac(1), &one), wire, "slot 1 is unused");
    }

    #[test]
    fn looped_frames_never_go_back_to_their_sender() {
        let c = three_clients(256);
        let mac = |i: u8| [0x52, 0x54, 0, 0x12, 0x34, 0x56 + i];
        assert_eq!(route_local(&mac(1), &mac(0), &c), Route::One(0));
        assert_eq!(route_local(&mac(0), &mac(2), &c), Route::One(2));
        assert_eq!(route_local(&mac(1), &[0xff; 6], &c), Route::AllBut(1));
        assert_eq!(
            route_local(&mac(2), &[0x33, 0x33, 0, 0, 0, 1], &c),
            Route::AllBut(2)
        );
        // What the transmit virtualiser never sends: to the sender itself,
        // to no client, from no client.
        assert_eq!(route_local(&mac(1), &mac(1), &c), Route::Drop);
        assert_eq!(
            route_local(&mac(1), &[0x52, 0x55, 10, 0, 2, 2], &c),
            Route::Drop
        );
        assert_eq!(
            route_local(&[0x52, 0x55, 10, 0, 2, 2], &mac(0), &c),
            Route::Drop
        );
        assert_eq!(route_local(&[0; 6], &[0xff; 6], &c), Route::Drop);
    }

    #[test]
    fn losses_are_reported_as_they_double() {
        let mut last = 0;
        let due: Vec<u64> = (0..100)
            .map(|i| i * 7)
            .filter(|c| report_due(*c, &mut last, 10))
            .collect();
        assert_eq!(due, [14, 28, 56, 112, 224, 448]);
    }

    #[test]
    fn addresses_parse_strictly() {
        assert_eq!(
            parse_mac("52:54:00:12:34:5f"),
            Some([0x52, 0x54, 0, 0x12, 0x34, 0x5f])
        );
        assert_eq!(parse_mac("52:54:00:12:34"), None);
        assert_eq!(parse_mac("52:54:00:12:34:56:78"), None);
        assert_eq!(parse_mac("5:54:00:12:34:56"), None);
        assert_eq!(parse_ipv4("10.0.2.15"), Some([10, 0, 2, 15]));
        assert_eq!(parse_ipv4("10.0.2"), None);
        assert_eq!(parse_ipv4("10.0.2.256"), None);
        assert_eq!(parse_ipv4("10.0.2.+1"), None);
        assert!(is_group(&[0xff; 6]) && is_group(&[0x01, 0, 0x5e, 0, 0, 1]));
        assert!(!is_group(&[0x52, 0x54, 0, 0, 0, 1]));
    }
}
