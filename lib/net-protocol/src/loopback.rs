//! The loopback between the virtualisers: how a frame from one client to
//! another stays off the wire (the switching rule is [`crate::switch`]).
//!
//! The transmit virtualiser owns a data region of its own, the loopback's,
//! and a queue pair to the receive virtualiser, of which it is the source:
//! it copies a client's frame into one of its buffers ([`Sender::send`])
//! and passes the buffer on in the active queue; the receive virtualiser
//! ([`Receiver`]) serves that queue as it serves the driver's, copying each
//! frame into the buffers of the clients it goes to, and gives the buffer
//! back in the free queue. The receive virtualiser maps the data region
//! read-only; neither trusts what the other writes in the queues: every
//! descriptor is checked against the region, the sender takes back only
//! buffers it lent and not yet got back, the receiver only frames of a
//! length an Ethernet frame can have. When every buffer is lent (the
//! receive virtualiser has not run yet, or keeps them), a frame is dropped
//! and counted, as a switch drops what its port's queue cannot hold.

use septa_queue::net::{BuffDesc, Buffers, Loans, Sink, Source, BUFFER_SIZE};
use septa_queue::{AttachError, Idle, PeerFault, Shared};

use crate::region;
use crate::wiring::{BUFFERS, MAX_FRAME};

/// The shortest frame: an Ethernet header.
pub const MIN_FRAME: usize = 14;

/// Words of the sender's record of lent buffers (one bit per buffer).
const LOAN_WORDS: usize = BUFFERS as usize / 64;

/// Why a frame did not go over the loopback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lost {
    /// Every buffer is with the receive virtualiser.
    Full,
    /// The frame is shorter than a header or longer than a buffer holds,
    /// or lies outside the region it is copied from (the caller's
    /// mistake).
    Frame,
    /// The receive virtualiser handed back a descriptor that names no
    /// buffer, or one it does not hold, or broke the queue's indices.
    Peer,
}

/// The transmit virtualiser's end.
pub struct Sender {
    q: Source,
    data: Shared,
    bufs: Buffers,
    lent: Loans<LOAN_WORDS>,
    /// Frames dropped because every buffer was lent.
    pub full: u64,
    /// Descriptors and indices of the receive virtualiser refused.
    pub faults: u64,
    /// Frames passed on.
    pub sent: u64,
}

impl Sender {
    /// Attaches to the queue pair in `queues` and the data region `data`
    /// (its buffers, up to [`BUFFERS`], all this side's to start with:
    /// nothing is put in the free queue, so the two virtualisers may start
    /// in either order).
    pub fn new(queues: Shared, data: Shared) -> Result<Sender, AttachError> {
        let q = region::source(queues)?;
        let len = data.len().min(BUFFERS as usize * BUFFER_SIZE as usize);
        Ok(Sender {
            q,
            data,
            bufs: Buffers::new(0, len),
            lent: Loans::default(),
            full: 0,
            faults: 0,
            sent: 0,
        })
    }

    /// A buffer of this side's: one given back if there is one, else one
    /// never lent or back since.
    fn take(&mut self) -> Result<u32, Lost> {
        match self.q.free.dequeue() {
            Ok(Some(d)) => {
                let back = self
                    .bufs
                    .check(&d)
                    .and_then(|i| self.lent.reclaim(i).map(|()| i));
                return back.map_err(|f| {
                    self.q.free.report(f);
                    self.faults += 1;
                    Lost::Peer
                });
            }
            Ok(None) => {}
            Err(_) => {
                self.faults += 1;
                return Err(Lost::Peer);
            }
        }
        match (0..self.bufs.count()).find(|i| !self.lent.is_lent(*i)) {
            Some(i) => Ok(i),
            None => {
                self.full += 1;
                Err(Lost::Full)
            }
        }
    }

    /// Copies the `len`-byte frame at `offset` of `from` into a buffer and
    /// passes it to the receive virtualiser.
    pub fn send(&mut self, from: &Shared, offset: usize, len: usize) -> Result<(), Lost> {
        if !(MIN_FRAME..=MAX_FRAME).contains(&len) {
            return Err(Lost::Frame);
        }
        let index = self.take()?;
        let to = self.bufs.offset(index);
        if from.copy_to(offset, &self.data, to, len).is_err() {
            // The buffer stays this side's (not lent).
            return Err(Lost::Frame);
        }
        let d = BuffDesc {
            len: len as u16,
            ..self.bufs.desc(index).expect("a buffer of the region")
        };
        if self.q.active.enqueue(d).is_err() {
            // The queue holds every buffer, so only a peer that moved its
            // head makes it full.
            self.faults += 1;
            return Err(Lost::Peer);
        }
        self.lent.lend(index);
        self.sent += 1;
        Ok(())
    }

    /// Whether the receive virtualiser asked to be signalled (it waits for
    /// frames); the request is taken.
    pub fn take_signal_request(&mut self) -> bool {
        self.q.active.take_signal_request()
    }

    /// Buffers with the receive virtualiser now.
    pub fn lent(&self) -> u32 {
        self.lent.count()
    }
}

/// A frame the receive virtualiser took from the loopback: `len` bytes at
/// `offset` of the data region, in buffer `index` (to give back).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    pub index: u32,
    pub offset: usize,
    pub len: usize,
}

/// The receive virtualiser's end.
pub struct Receiver {
    q: Sink,
    data: Shared,
    bufs: Buffers,
    /// Descriptors of the transmit virtualiser refused.
    pub faults: u64,
}

impl Receiver {
    /// Attaches to the queue pair in `queues` and the (read-only) data
    /// region `data`, and asks to be signalled when a frame comes.
    pub fn new(queues: Shared, data: Shared) -> Result<Receiver, AttachError> {
        let mut q = region::sink(queues)?;
        q.active.request_signal();
        let len = data.len().min(BUFFERS as usize * BUFFER_SIZE as usize);
        Ok(Receiver {
            q,
            data,
            bufs: Buffers::new(0, len),
            faults: 0,
        })
    }

    /// The data region (to copy frames out of).
    pub fn data(&self) -> Shared {
        self.data
    }

    /// The next frame, if the transmit virtualiser passed one. A
    /// descriptor that names no buffer of the region is counted and
    /// skipped; one whose length is no frame's is counted and its buffer
    /// given back.
    pub fn take(&mut self) -> Option<Frame> {
        loop {
            let d = match self.q.active.dequeue() {
                Ok(Some(d)) => d,
                Ok(None) => return None,
                Err(_) => {
                    self.faults += 1;
                    return None;
                }
            };
            let Ok(index) = self.bufs.check(&d) else {
                self.q.active.report(PeerFault::Descriptor {
                    offset: d.io_or_offset,
                    len: d.len as u64,
                });
                self.faults += 1;
                continue;
            };
            let len = d.len as usize;
            if (MIN_FRAME..=MAX_FRAME).contains(&len) {
                return Some(Frame {
                    index,
                    offset: self.bufs.offset(index),
                    len,
                });
            }
            self.faults += 1;
            self.give_back(index);
        }
    }

    /// Gives buffer `index` back to the transmit virtualiser.
    pub fn give_back(&mut self, index: u32) {
        let Some(d) = self.bufs.desc(index) else {
            return;
        };
        if self.q.free.enqueue(d).is_err() {
            self.faults += 1;
        }
    }

    /// Asks for a signal before sleeping: `true` if a frame came meanwhile
    /// (process again).
    pub fn try_idle(&mut self) -> bool {
        matches!(self.q.active.try_idle(), Ok(Idle::Reprocess))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wiring::{ACTIVE_OFFSET, QUEUES_SIZE};
    use septa_queue::host::leak;
    use septa_queue::net::NetRing;
    use septa_queue::{Consumer, Producer};

    const COUNT: usize = 8;

    /// Both ends on one pair and region, and a client's region with a
    /// frame at 0 whose bytes are `seed` counted up.
    fn rig() -> (Sender, Receiver, Shared, Shared) {
        let queues = leak(QUEUES_SIZE as usize);
        let data = leak(COUNT * BUFFER_SIZE as usize);
        let tx = Sender::new(queues, data).unwrap();
        let rx = Receiver::new(queues, data).unwrap();
        (tx, rx, leak(4 * BUFFER_SIZE as usize), queues)
    }

    fn frame(client: &Shared, at: usize, seed: u8, len: usize) {
        let bytes: Vec<u8> = (0..len).map(|i| seed.wrapping_add(i as u8)).collect();
        client.write(at, &bytes).unwrap();
    }

    fn bytes(rx: &Receiver, f: &Frame) -> Vec<u8> {
        let mut out = vec![0; f.len];
        rx.data().read(f.offset, &mut out).unwrap();
        out
    }

    #[test]
    fn frames_go_round_and_buffers_come_back() {
        let (mut tx, mut rx, client, _) = rig();
        for round in 0..3 * COUNT {
            let len = 60 + round * 50;
            frame(&client, 2048, round as u8, len);
            tx.send(&client, 2048, len).unwrap();
            let f = rx.take().unwrap();
            assert_eq!(f.len, len);
            let want: Vec<u8> = (0..len)
                .map(|i| (round as u8).wrapping_add(i as u8))
                .collect();
            assert_eq!(bytes(&rx, &f), want);
            assert_eq!(rx.take(), None);
            rx.give_back(f.index);
        }
        assert_eq!(
            (tx.sent, tx.full, tx.faults, rx.faults),
            (3 * COUNT as u64, 0, 0, 0)
        );
        // The sender asked the receiver's request once it idled.
        assert!(!rx.try_idle());
        frame(&client, 0, 1, 64);
        tx.send(&client, 0, 64).unwrap();
        assert!(tx.take_signal_request(), "the receiver waits: signal it");
        assert!(!tx.take_signal_request(), "once");
    }

    #[test]
    fn a_full_loopback_drops_and_counts_then_recovers() {
        let (mut tx, mut rx, client, _) = rig();
        frame(&client, 0, 7, 100);
        for _ in 0..COUNT {
            tx.send(&client, 0, 100).unwrap();
        }
        assert_eq!(tx.lent(), COUNT as u32);
        assert_eq!(tx.send(&client, 0, 100), Err(Lost::Full));
        assert_eq!(tx.send(&client, 0, 100), Err(Lost::Full));
        assert_eq!(tx.full, 2);
        // The receiver drains: each buffer once, then they are usable again.
        let mut seen = Vec::new();
        while let Some(f) = rx.take() {
            seen.push(f.index);
            rx.give_back(f.index);
        }
        seen.sort();
        assert_eq!(seen, (0..COUNT as u32).collect::<Vec<_>>());
        for _ in 0..COUNT {
            tx.send(&client, 0, 100).unwrap();
        }
        assert_eq!((tx.sent, tx.full, tx.faults), (2 * COUNT as u64, 2, 0));
    }

    #[test]
    fn the_sender_refuses_what_it_did_not_lend() {
        let (mut tx, _rx, client, queues) = rig();
        // A hostile receive virtualiser writes the free queue itself.
        let mut free =
            Producer::<NetRing>::attach(queues.window(0, ACTIVE_OFFSET).unwrap(), BUFFERS).unwrap();
        frame(&client, 0, 3, 64);
        tx.send(&client, 0, 64).unwrap(); // buffer 0 lent
        let d = |off: u64| BuffDesc {
            io_or_offset: off,
            len: 0,
            oid: 0,
        };
        // Never lent, outside the region, not at a buffer's start, and a
        // lent buffer handed back twice.
        for bad in [d(2048), d(COUNT as u64 * 2048), d(100), d(u64::MAX)] {
            free.enqueue(bad).unwrap();
            assert_eq!(tx.send(&client, 0, 64), Err(Lost::Peer), "{bad:?}");
        }
        // Buffer 0 back twice: the first time taken back (and kept, as the
        // frame to copy lies outside its region), the second refused.
        free.enqueue(d(0)).unwrap();
        free.enqueue(d(0)).unwrap();
        assert_eq!(tx.send(&client, 4 * 2048 - 100, 200), Err(Lost::Frame));
        assert_eq!(tx.lent(), 0);
        assert_eq!(tx.send(&client, 0, 64), Err(Lost::Peer), "twice");
        assert_eq!(tx.faults, 5);
        // Whatever the peer did, no buffer is lent twice.
        assert!(tx.lent() <= COUNT as u32);
        // A frame no Ethernet frame can be, or outside its region.
        assert_eq!(tx.send(&client, 0, 13), Err(Lost::Frame));
        assert_eq!(tx.send(&client, 0, MAX_FRAME + 1), Err(Lost::Frame));
        // And the loopback still works.
        assert_eq!(tx.send(&client, 0, 64), Ok(()));
    }

    #[test]
    fn the_receiver_refuses_descriptors_outside_its_region() {
        let (_tx, mut rx, _client, queues) = rig();
        // A hostile transmit virtualiser writes the active queue itself;
        // the free queue shows what comes back.
        let mut active = Producer::<NetRing>::attach(
            queues.window(ACTIVE_OFFSET, ACTIVE_OFFSET).unwrap(),
            BUFFERS,
        )
        .unwrap();
        let mut free =
            Consumer::<NetRing>::attach(queues.window(0, ACTIVE_OFFSET).unwrap(), BUFFERS).unwrap();
        let d = |off: u64, len: u16| BuffDesc {
            io_or_offset: off,
            len,
            oid: 0,
        };
        for bad in [
            d(COUNT as u64 * 2048, 60),
            d(2048 + 1, 60),
            d(u64::MAX, 60),
            d(2048, 2049),
        ] {
            active.enqueue(bad).unwrap();
        }
        // In the region but no frame's length: given back, not delivered.
        active.enqueue(d(4096, 0)).unwrap();
        active
            .enqueue(d(4096 + 2048, MAX_FRAME as u16 + 1))
            .unwrap();
        active.enqueue(d(2048, 60)).unwrap();
        assert_eq!(
            rx.take(),
            Some(Frame {
                index: 1,
                offset: 2048,
                len: 60
            })
        );
        assert_eq!(rx.take(), None);
        assert_eq!(rx.faults, 6);
        let back: Vec<u64> = std::iter::from_fn(|| free.dequeue().unwrap())
            .map(|d| d.io_or_offset)
            .collect();
        assert_eq!(back, [4096, 4096 + 2048]);
        // Indices that jump past the ring: nothing delivered.
        queues
            .write(ACTIVE_OFFSET, &0x7fffu16.to_le_bytes())
            .unwrap();
        assert_eq!(rx.take(), None);
    }
}
