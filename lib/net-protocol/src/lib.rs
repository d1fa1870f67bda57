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
//! - each virtualiser and each of its clients (the stack today) share one
//!   more pair and a data region of the client's own, frames at offset 0;
//!   the virtualisers copy between the driver's buffers and the clients',
//!   so a client sees its own frames and buffers and nothing else;
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
