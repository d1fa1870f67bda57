//! The receive demultiplexer: each input byte goes to the client that has
//! the keyboard, unless it is part of the key sequence that moves the
//! keyboard (`septa_serial_protocol::keys`). No system calls here, so the
//! host tests run it on real queues.
//!
//! As sDDF's receive virtualiser does, a byte for a client whose queue is
//! full is dropped (input must not wait on a client that does not read),
//! and counted; a client whose queue is broken loses the byte too, and is
//! named in a [`Note`].

use septa_queue::serial::Producer;
use septa_queue::{PeerFault, QueueError};
use septa_serial_protocol::keys::{Event, Reader};

/// Something the person at the keyboard should hear about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Note {
    /// The keyboard went to this client.
    SwitchedTo(usize),
    /// The sequence named a number that is no client's.
    NoSuchClient(u32),
    /// Something other than a digit followed the switch key.
    NotADigit(u8),
    /// The number was too long or not ended by Enter.
    BadNumber,
    /// A client's queue is broken: its input is dropped.
    ClientFault(usize, PeerFault),
}

/// Who has the keyboard, and where a switch sequence stands.
#[derive(Debug)]
pub struct Demux {
    reader: Reader,
    current: usize,
    /// Bytes dropped because the current client's queue was full.
    pub dropped: u64,
}

impl Demux {
    /// The keyboard starts with client `first`.
    pub const fn new(first: usize) -> Demux {
        Demux {
            reader: Reader::new(),
            current: first,
            dropped: 0,
        }
    }

    /// The client that has the keyboard.
    pub fn current(&self) -> usize {
        self.current
    }

    /// Routes `input` to the clients' queues (`clients[i]` is client i's,
    /// `None` where there is no client i) and publishes what it staged;
    /// returns the set of clients that got bytes (bit i: client i), to be
    /// notified.
    pub fn route(
        &mut self,
        input: &[u8],
        clients: &mut [Option<Producer>],
        note: &mut impl FnMut(Note),
    ) -> u64 {
        let mut got = 0u64;
        for &b in input {
            match self.reader.feed(b) {
                Event::Deliver(b) => {
                    let c = self.current;
                    let Some(q) = clients.get_mut(c).and_then(Option::as_mut) else {
                        self.dropped += 1;
                        continue;
                    };
                    match q.stage(b) {
                        Ok(()) => got |= 1 << c,
                        Err(QueueError::Full) => self.dropped += 1,
                        Err(QueueError::Peer(f)) => note(Note::ClientFault(c, f)),
                    }
                }
                Event::Swallowed => {}
                Event::SwitchTo(n) => {
                    let exists = usize::try_from(n)
                        .ok()
                        .and_then(|n| clients.get(n))
                        .is_some_and(Option::is_some);
                    if exists {
                        // What the old client got goes out before the switch.
                        if let Some(q) = clients[self.current].as_mut() {
                            q.commit();
                        }
                        self.current = n as usize;
                        note(Note::SwitchedTo(self.current));
                    } else {
                        note(Note::NoSuchClient(n));
                    }
                }
                Event::NotADigit(b) => note(Note::NotADigit(b)),
                Event::BadNumber => note(Note::BadNumber),
            }
        }
        if let Some(q) = clients.get_mut(self.current).and_then(Option::as_mut) {
            q.commit();
        }
        got
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use septa_queue::host::leak;
    use septa_queue::serial::Consumer;
    use septa_serial_protocol::region;
    use std::vec::Vec;

    fn clients(
        n: usize,
        cap: u32,
    ) -> (
        Vec<Option<Producer>>,
        Vec<Consumer>,
        Vec<septa_queue::Shared>,
    ) {
        let regions: Vec<_> = (0..n).map(|_| leak(region::size(cap) as usize)).collect();
        (
            regions
                .iter()
                .map(|r| Some(region::producer(r).unwrap()))
                .collect(),
            regions
                .iter()
                .map(|r| region::consumer(r).unwrap())
                .collect(),
            regions,
        )
    }

    fn take(c: &mut Consumer) -> Vec<u8> {
        let mut buf = [0u8; 64];
        let n = c.read(&mut buf).unwrap();
        buf[..n].to_vec()
    }

    #[test]
    fn input_follows_the_keyboard() {
        let (mut p, mut c, _r) = clients(2, 64);
        let mut d = Demux::new(0);
        let mut notes = Vec::new();
        let got = d.route(b"ab\x1c1\rcd", &mut p, &mut |n| notes.push(n));
        assert_eq!(got, 0b11);
        assert_eq!(take(&mut c[0]), b"ab");
        assert_eq!(take(&mut c[1]), b"cd");
        assert_eq!(notes, [Note::SwitchedTo(1)]);
        assert_eq!(d.current(), 1);
    }

    #[test]
    fn a_switch_split_across_interrupts_still_switches() {
        let (mut p, mut c, _r) = clients(2, 64);
        let mut d = Demux::new(1);
        let mut notes = Vec::new();
        d.route(b"x\x1c", &mut p, &mut |n| notes.push(n));
        d.route(b"0", &mut p, &mut |n| notes.push(n));
        d.route(b"\ry", &mut p, &mut |n| notes.push(n));
        assert_eq!(
            (take(&mut c[1]), take(&mut c[0])),
            (b"x".to_vec(), b"y".to_vec())
        );
        assert_eq!(notes, [Note::SwitchedTo(0)]);
    }

    #[test]
    fn mistakes_and_missing_clients_keep_the_keyboard() {
        let (mut p, mut c, _r) = clients(3, 64);
        p[1] = None; // client 1 takes no input
        let mut d = Demux::new(0);
        let mut notes = Vec::new();
        d.route(b"\x1c1\r\x1c9\r\x1cz\x1c12345a", &mut p, &mut |n| {
            notes.push(n)
        });
        assert_eq!(
            notes,
            [
                Note::NoSuchClient(1),
                Note::NoSuchClient(9),
                Note::NotADigit(b'z'),
                Note::BadNumber
            ]
        );
        assert_eq!(take(&mut c[0]), b"a");
        assert_eq!(d.current(), 0);
    }

    #[test]
    fn a_full_client_loses_bytes_and_a_broken_one_is_named() {
        let (mut p, mut c, r) = clients(2, 8);
        let mut d = Demux::new(0);
        d.route(b"abcdefghij", &mut p, &mut |_| {});
        assert_eq!((take(&mut c[0]), d.dropped), (b"abcdefgh".to_vec(), 2));
        // Client 1's queue fills; then it claims to have read 1000 bytes
        // it was never given.
        let mut notes = Vec::new();
        d.route(b"\x1c1\rqqqqqqqq", &mut p, &mut |n| notes.push(n));
        r[1].write(4, &1000u32.to_le_bytes()).unwrap();
        d.route(b"z", &mut p, &mut |n| notes.push(n));
        assert!(
            matches!(notes[..], [Note::SwitchedTo(1), Note::ClientFault(1, _)]),
            "{notes:?}"
        );
        assert_eq!(take(&mut c[1]), b"qqqqqqqq");
    }
}
