//! A cell's socket region: [`SLOTS`] sockets, each a header the stack
//! writes and two byte rings (`septa-queue` serial rings, sDDF's
//! `serial_queue_t`): received bytes from the stack to the cell, bytes to
//! send from the cell to the stack.
//!
//! ```text
//! slot i at i * SLOT_SIZE:
//!   0x000  header (stack writes, cell reads)
//!            0 u32 state (State)      4 u32 error (calls::Error, when Closed)
//!            8 u16 local port        10 u16 remote port
//!           12 [u8; 4] remote IPv4   16 u32 connections waiting (listeners)
//!   0x100  receive ring header       (stack produces, cell consumes)
//!   0x200  send ring header          (cell produces, stack consumes)
//!   0x1000 receive ring data, RING bytes
//!   0x1000 + RING  send ring data, RING bytes
//! ```
//!
//! A TCP socket's rings carry its byte stream. A UDP socket's carry
//! datagrams, each a [`DGRAM_HEADER`]-byte header (payload length, port,
//! IPv4 address: the source on receive, the destination on send) and its
//! payload, written whole or not at all.
//!
//! The header is the stack's word to the cell; a cell that writes it only
//! misleads itself. The stack reads nothing of a cell's region but its
//! send rings, through `septa-queue`'s checked handles.

/// Sockets per cell.
pub const SLOTS: usize = 8;
/// Bytes of each ring.
pub const RING: u32 = 32 * 1024;
/// Bytes of a slot.
pub const SLOT_SIZE: u64 = 0x1000 + 2 * RING as u64;
/// Bytes of a cell's socket region.
pub const REGION_SIZE: u64 = SLOTS as u64 * SLOT_SIZE;

/// Offsets in a slot.
pub const STATE: usize = 0;
pub const ERROR: usize = 4;
pub const LOCAL_PORT: usize = 8;
pub const REMOTE_PORT: usize = 10;
pub const REMOTE_IP: usize = 12;
pub const WAITING: usize = 16;
pub const HEADER_SIZE: usize = 20;
pub const RX_QUEUE: usize = 0x100;
pub const TX_QUEUE: usize = 0x200;
pub const RX_DATA: usize = 0x1000;
pub const TX_DATA: usize = 0x1000 + RING as usize;

/// Bytes of a datagram's header in a UDP socket's rings.
pub const DGRAM_HEADER: usize = 8;
/// The largest datagram payload a cell may send or receive.
pub const MAX_DATAGRAM: usize = 1472;

// The slot's parts fit and do not overlap; the region is whole pages.
const _: () = {
    assert!(HEADER_SIZE <= RX_QUEUE && RX_QUEUE + 12 <= TX_QUEUE && TX_QUEUE + 12 <= RX_DATA);
    assert!(TX_DATA + RING as usize == SLOT_SIZE as usize);
    assert!(REGION_SIZE.is_multiple_of(0x1000));
    assert!(RING.is_power_of_two());
    assert!(DGRAM_HEADER + MAX_DATAGRAM <= RING as usize);
};

/// Where slot `i` starts in the region.
pub const fn slot(i: usize) -> usize {
    i * SLOT_SIZE as usize
}

/// A socket's state, as the stack publishes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Not in use.
    Free = 0,
    /// A TCP listener: `WAITING` connections wait for `accept`.
    Listening = 1,
    /// A TCP connection being set up.
    Connecting = 2,
    /// A TCP connection: bytes flow both ways.
    Established = 3,
    /// The peer has closed its side and every byte it sent is in the
    /// receive ring: once the ring is empty, that is the end of the stream.
    PeerClosed = 4,
    /// The connection is over (reset, refused, timed out, or closed and
    /// done); `ERROR` says why if it failed. The cell closes the slot.
    Closed = 5,
    /// A bound UDP socket.
    Udp = 6,
}

impl State {
    pub fn from_u32(v: u32) -> State {
        match v {
            1 => State::Listening,
            2 => State::Connecting,
            3 => State::Established,
            4 => State::PeerClosed,
            5 => State::Closed,
            6 => State::Udp,
            _ => State::Free,
        }
    }
}

/// A datagram's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dgram {
    pub len: u16,
    pub port: u16,
    pub ip: [u8; 4],
}

impl Dgram {
    pub fn encode(&self) -> [u8; DGRAM_HEADER] {
        let l = self.len.to_le_bytes();
        let p = self.port.to_le_bytes();
        [
            l[0], l[1], p[0], p[1], self.ip[0], self.ip[1], self.ip[2], self.ip[3],
        ]
    }

    pub fn decode(b: &[u8; DGRAM_HEADER]) -> Dgram {
        Dgram {
            len: u16::from_le_bytes([b[0], b[1]]),
            port: u16::from_le_bytes([b[2], b[3]]),
            ip: [b[4], b[5], b[6], b[7]],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagram_headers_and_states_round_trip() {
        let d = Dgram {
            len: 1472,
            port: 7,
            ip: [10, 0, 2, 2],
        };
        assert_eq!(Dgram::decode(&d.encode()), d);
        for s in 0..8 {
            assert_eq!(
                State::from_u32(State::from_u32(s) as u32),
                State::from_u32(s)
            );
        }
    }
}
