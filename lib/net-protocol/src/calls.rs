//! The socket service's calls: a cell makes a protected procedure call on
//! its channel to the stack with a label below and arguments in the
//! message registers; the reply's label is [`OK`] or an [`Error`], its MR0
//! the result. Data does not go through calls but through the socket
//! rings ([`crate::sockets`]); after writing to a send ring, or reading
//! from a receive ring, a cell notifies the stack, and the stack notifies
//! a cell whenever something changed in its region.
//!
//! | label | arguments | result |
//! |---|---|---|
//! | [`LISTEN`] | MR0 TCP port | MR0 the listener's slot |
//! | [`ACCEPT`] | MR0 a listener's slot | MR0 the connection's slot, or [`Error::WouldBlock`] |
//! | [`CONNECT`] | MR0 IPv4 address (big-endian in the low 32 bits), MR1 port | MR0 the slot (state Connecting) |
//! | [`CLOSE`] | MR0 a slot | the slot is free again; a connection sends what is left, then FIN |
//! | [`UDP_BIND`] | MR0 UDP port | MR0 the slot |
//! | [`INFO`] | | MR0 IPv4 address (0: none yet), MR1 prefix length, MR2 gateway, MR3 MAC |
//! | [`STATS`] | | MR0.. the stack's [`Stats`] |

/// Labels.
pub const LISTEN: u64 = 1;
pub const ACCEPT: u64 = 2;
pub const CONNECT: u64 = 3;
pub const CLOSE: u64 = 4;
pub const UDP_BIND: u64 = 5;
pub const INFO: u64 = 6;
pub const STATS: u64 = 7;

/// The reply label of success.
pub const OK: u64 = 0;

/// Why a call failed (the reply's label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The description does not allow this cell that port.
    Denied = 1,
    /// Another socket is bound to the port.
    InUse = 2,
    /// The cell's sockets (slots, or the stack's sockets kept for it) are
    /// all in use.
    NoSockets = 3,
    /// Nothing to accept yet.
    WouldBlock = 4,
    /// A bad argument: no such slot, a slot of another kind, port 0.
    Invalid = 5,
    /// The stack has no address yet (DHCP has not answered).
    NotReady = 6,
    /// A connection failed (refused, reset, timed out).
    Failed = 7,
    /// An unknown label.
    Unknown = 8,
}

impl Error {
    pub fn from_label(l: u64) -> Error {
        match l {
            1 => Error::Denied,
            2 => Error::InUse,
            3 => Error::NoSockets,
            4 => Error::WouldBlock,
            5 => Error::Invalid,
            6 => Error::NotReady,
            7 => Error::Failed,
            _ => Error::Unknown,
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            Error::Denied => "not allowed by the system description",
            Error::InUse => "the port is in use",
            Error::NoSockets => "no socket left for this cell",
            Error::WouldBlock => "nothing yet",
            Error::Invalid => "invalid argument",
            Error::NotReady => "the stack has no address yet",
            Error::Failed => "the connection failed",
            Error::Unknown => "unknown call",
        }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.text())
    }
}

/// The stack's counters (the reply to [`STATS`], MR0 onwards in this
/// order).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    /// Frames smoltcp did not take up: not for this host, malformed, bad
    /// checksum, unknown protocol, no socket.
    pub rx_dropped: u64,
    /// Frames the virtualiser's queue did not hold (the stack lost them).
    pub tx_dropped: u64,
    /// Descriptors from the virtualisers that were not valid.
    pub faults: u64,
    /// Calls refused by policy.
    pub refused: u64,
    /// Nanoseconds since the stack started.
    pub uptime_ns: u64,
    /// Cycles the stack's thread has been scheduled for (the kernel's
    /// utilisation tracking, benchmark configuration; 0 elsewhere).
    pub cycles: u64,
}

impl Stats {
    pub const WORDS: usize = 10;

    pub fn to_words(&self) -> [u64; Self::WORDS] {
        [
            self.rx_frames,
            self.rx_bytes,
            self.tx_frames,
            self.tx_bytes,
            self.rx_dropped,
            self.tx_dropped,
            self.faults,
            self.refused,
            self.uptime_ns,
            self.cycles,
        ]
    }

    pub fn from_words(w: [u64; Self::WORDS]) -> Stats {
        Stats {
            rx_frames: w[0],
            rx_bytes: w[1],
            tx_frames: w[2],
            tx_bytes: w[3],
            rx_dropped: w[4],
            tx_dropped: w[5],
            faults: w[6],
            refused: w[7],
            uptime_ns: w[8],
            cycles: w[9],
        }
    }
}

/// An IPv4 address in a message register.
pub fn ip_to_word(ip: [u8; 4]) -> u64 {
    u64::from(u32::from_be_bytes(ip))
}

pub fn word_to_ip(w: u64) -> [u8; 4] {
    (w as u32).to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_and_words_round_trip() {
        for e in 1..=8 {
            assert_eq!(Error::from_label(e) as u64, e);
        }
        assert_eq!(word_to_ip(ip_to_word([10, 0, 2, 15])), [10, 0, 2, 15]);
        let s = Stats {
            rx_frames: 1,
            uptime_ns: 9,
            ..Stats::default()
        };
        assert_eq!(Stats::from_words(s.to_words()), s);
    }
}
