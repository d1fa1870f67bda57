//! Serial queues: a ring of bytes over a data region, with sDDF 0.7's
//! `serial_queue_t` layout.
//!
//! ```text
//! serial_queue_t (12 bytes, alignment 4)    data region (capacity bytes)
//!   0  u32 tail  (producer writes)            byte i of the stream at
//!   4  u32 head  (consumer writes)            data[i mod capacity]
//!   8  u32 producer_signalled
//! ```
//!
//! The queue header and the bytes live in two regions. The capacity is the
//! data region's size in sDDF (a power of two); here it is passed
//! explicitly and checked against the data window.
//!
//! Signalling runs the other way from the net queues: the *producer* is
//! the one that may wait (for space), so the flag is `producer_signalled`
//! and the producer asks ([`Producer::try_idle`]) while the consumer
//! signals only if asked ([`Consumer::take_signal_request`]). The consumer
//! is always signalled after the producer publishes bytes (sDDF's serial
//! rule); there is no flag for that direction.
use crate::ring::{check_capacity, AttachError, Flag, Idle, PeerFault, PeerFaults, QueueError};
use crate::ring::{Indices, U32};
use crate::Shared;

/// Field offsets of `serial_queue_t`; the tests pin them.
pub mod layout {
    /// `serial_queue_t.tail`.
    pub const TAIL: usize = 0;
    /// `serial_queue_t.head`.
    pub const HEAD: usize = 4;
    /// `serial_queue_t.producer_signalled`.
    pub const PRODUCER_SIGNALLED: usize = 8;
    /// `sizeof(serial_queue_t)`.
    pub const SIZE: usize = 12;
    /// `_Alignof(serial_queue_t)`.
    pub const ALIGN: usize = 4;
}

const FLAG: Flag = Flag {
    at: layout::PRODUCER_SIGNALLED,
};

fn check(queue: &Shared, data: &Shared, capacity: u32) -> Result<(), AttachError> {
    check_capacity::<U32>(capacity)?;
    if !queue.addr().is_multiple_of(layout::ALIGN) {
        return Err(AttachError::Misaligned {
            addr: queue.addr(),
            align: layout::ALIGN,
        });
    }
    if queue.len() < layout::SIZE {
        return Err(AttachError::TooSmall {
            need: layout::SIZE,
            have: queue.len(),
        });
    }
    if data.len() < capacity as usize {
        return Err(AttachError::TooSmall {
            need: capacity as usize,
            have: data.len(),
        });
    }
    Ok(())
}

/// One end of a serial queue: the producer's (`PRODUCER`: writes bytes at
/// `tail`) or the consumer's (reads them at `head`). Named through
/// [`Producer`] and [`Consumer`].
#[derive(Debug)]
pub struct End<const PRODUCER: bool> {
    ix: Indices<U32, PRODUCER>,
    data: Shared,
}

/// The writing end of a serial queue.
pub type Producer = End<true>;

/// The reading end of a serial queue.
pub type Consumer = End<false>;

impl<const PRODUCER: bool> End<PRODUCER> {
    /// Attaches to the header in `queue` and `capacity` bytes of `data`.
    /// `capacity` comes from this PD's configuration (sDDF: the data
    /// region's size), never from shared memory.
    #[inline]
    pub fn attach(queue: Shared, data: Shared, capacity: u32) -> Result<Self, AttachError> {
        check(&queue, &data, capacity)?;
        Ok(End {
            ix: Indices::attach(queue, layout::TAIL, layout::HEAD, capacity)?,
            data,
        })
    }

    /// The queue's capacity in bytes.
    #[inline]
    pub fn capacity(&self) -> u32 {
        self.ix.capacity()
    }

    /// Publishes this end's index past the bytes staged (producer: sDDF
    /// `serial_update_shared_tail`) or taken (consumer: sDDF
    /// `serial_update_shared_head`).
    #[inline]
    pub fn commit(&mut self) {
        self.ix.publish();
    }

    /// The protocol faults this end has seen (to report the peer).
    #[inline]
    pub fn faults(&self) -> PeerFaults {
        self.ix.faults
    }

    /// Records a fault found above the queue, so that
    /// [`faults`](Self::faults) covers everything the peer did wrong.
    #[inline]
    pub fn report(&mut self, fault: PeerFault) -> PeerFault {
        self.ix.faults.record(fault)
    }
}

/// A transfer between two serial queues failed on one of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferError {
    /// The queue read from broke the protocol.
    From(PeerFault),
    /// The queue written to broke the protocol.
    To(PeerFault),
}

impl Producer {
    /// Bytes that can be written now (reads the consumer's head), staged
    /// bytes counted as written.
    #[inline]
    pub fn space(&mut self) -> Result<u32, PeerFault> {
        self.ix.space()
    }

    /// Writes one byte without publishing it (sDDF `serial_enqueue_local`).
    #[inline]
    pub fn stage(&mut self, byte: u8) -> Result<(), QueueError> {
        if !self.ix.ready()? {
            return Err(QueueError::Full);
        }
        // `slot() < capacity <= data.len()` (checked at attach).
        self.data
            .u8_at(self.ix.slot() as usize)
            .store(byte, core::sync::atomic::Ordering::Relaxed);
        self.ix.advance(1);
        Ok(())
    }

    /// Bytes staged and not yet published.
    #[inline]
    pub fn staged(&self) -> u32 {
        self.ix.pending()
    }

    /// Forgets the staged bytes.
    #[inline]
    pub fn unstage(&mut self) {
        self.ix.unstage();
    }

    /// Writes one byte and publishes it (sDDF `serial_enqueue`).
    #[inline]
    pub fn enqueue(&mut self, byte: u8) -> Result<(), QueueError> {
        self.stage(byte)?;
        self.commit();
        Ok(())
    }

    /// Stages as much of `bytes` as fits, in at most two copies (before and
    /// after the wrap); returns how many. Does not publish.
    #[inline]
    pub fn stage_slice(&mut self, bytes: &[u8]) -> Result<usize, PeerFault> {
        let n = (self.ix.space()? as usize).min(bytes.len());
        let cap = self.capacity() as usize;
        let at = self.ix.slot() as usize;
        let first = n.min(cap - at);
        // Both ranges lie in `0..capacity`, inside the data window.
        let copied = self
            .data
            .write(at, &bytes[..first])
            .and_then(|()| self.data.write(0, &bytes[first..n]));
        debug_assert!(copied.is_ok());
        self.ix.advance(n as u32);
        Ok(n)
    }

    /// Writes as much of `bytes` as fits and publishes it (sDDF
    /// `serial_enqueue_batch`); returns how many.
    #[inline]
    pub fn write(&mut self, bytes: &[u8]) -> Result<usize, PeerFault> {
        let n = self.stage_slice(bytes)?;
        self.commit();
        Ok(n)
    }

    /// Writes all of `bytes` and publishes them, or nothing if they do not
    /// fit ([`QueueError::Full`]): a line is never split by a full queue.
    #[inline]
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<(), QueueError> {
        if (self.ix.space()? as usize) < bytes.len() {
            return Err(QueueError::Full);
        }
        self.write(bytes)?;
        Ok(())
    }

    /// Asks the consumer to signal once it frees space (sDDF
    /// `serial_request_consumer_signal`). Prefer [`try_idle`](Self::try_idle).
    #[inline]
    pub fn request_signal(&mut self) {
        FLAG.request(&self.ix.mem);
    }

    /// Withdraws the request (sDDF `serial_cancel_consumer_signal`).
    #[inline]
    pub fn cancel_signal(&mut self) {
        FLAG.cancel(&self.ix.mem);
    }

    /// The end of a round that ran out of space: asks for a signal, then
    /// looks again. [`Idle::Block`]: fewer than `want` bytes are free (at
    /// most the capacity is waited for), the request stands. [`Idle::Reprocess`]:
    /// space appeared meanwhile; the request is withdrawn.
    #[inline]
    pub fn try_idle(&mut self, want: u32) -> Result<Idle, PeerFault> {
        let (mem, want) = (self.ix.mem, want.clamp(1, self.capacity()));
        FLAG.try_idle(&mem, || Ok(self.space()? >= want))
    }
}

impl Consumer {
    /// Bytes waiting now (reads the producer's tail), taken bytes not
    /// counted.
    #[inline]
    pub fn len(&mut self) -> Result<u32, PeerFault> {
        self.ix.available()
    }

    /// Whether no byte is waiting.
    #[inline]
    pub fn is_empty(&mut self) -> Result<bool, PeerFault> {
        Ok(self.len()? == 0)
    }

    /// Reads the next byte without publishing the new head (sDDF
    /// `serial_dequeue_local`).
    #[inline]
    pub fn take(&mut self) -> Result<Option<u8>, PeerFault> {
        if !self.ix.ready()? {
            return Ok(None);
        }
        // `slot() < capacity <= data.len()` (checked at attach).
        let b = self
            .data
            .u8_at(self.ix.slot() as usize)
            .load(core::sync::atomic::Ordering::Relaxed);
        self.ix.advance(1);
        Ok(Some(b))
    }

    /// Reads one byte and publishes the new head (sDDF `serial_dequeue`).
    #[inline]
    pub fn dequeue(&mut self) -> Result<Option<u8>, PeerFault> {
        let b = self.take()?;
        self.commit();
        Ok(b)
    }

    /// Takes up to `buf.len()` bytes in at most two copies; returns how
    /// many. Does not publish.
    #[inline]
    pub fn take_slice(&mut self, buf: &mut [u8]) -> Result<usize, PeerFault> {
        let n = (self.ix.available()? as usize).min(buf.len());
        let cap = self.capacity() as usize;
        let at = self.ix.slot() as usize;
        let first = n.min(cap - at);
        let (a, b) = buf[..n].split_at_mut(first);
        // Both ranges lie in `0..capacity`, inside the data window.
        let copied = self.data.read(at, a).and_then(|()| self.data.read(0, b));
        debug_assert!(copied.is_ok());
        self.ix.advance(n as u32);
        Ok(n)
    }

    /// Copies up to `buf.len()` waiting bytes, starting `skip` bytes past
    /// the next one, without taking them; returns how many (0 when no more
    /// than `skip` wait). A multiplexer looks ahead this way (for the end
    /// of a line) before it decides what to take.
    #[inline]
    pub fn peek(&mut self, skip: u32, buf: &mut [u8]) -> Result<usize, PeerFault> {
        let waiting = self.ix.available()?;
        let n = (waiting.saturating_sub(skip) as usize).min(buf.len());
        let cap = self.capacity() as usize;
        // `skip < waiting <= capacity` whenever `n > 0`; masked, the slot
        // stays in `0..capacity`.
        let at = (self.ix.slot() as usize + skip as usize) & (cap - 1);
        let first = n.min(cap - at);
        let (a, b) = buf[..n].split_at_mut(first);
        // Both ranges lie in `0..capacity`, inside the data window.
        let copied = self.data.read(at, a).and_then(|()| self.data.read(0, b));
        debug_assert!(copied.is_ok());
        Ok(n)
    }

    /// Takes up to `n` waiting bytes without copying them (after a
    /// [`peek`](Self::peek) that already read them); returns how many. Does
    /// not publish.
    #[inline]
    pub fn skip(&mut self, n: u32) -> Result<u32, PeerFault> {
        let n = n.min(self.ix.available()?);
        self.ix.advance(n);
        Ok(n)
    }

    /// Reads up to `buf.len()` bytes and publishes the new head; returns how
    /// many.
    #[inline]
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, PeerFault> {
        let n = self.take_slice(buf)?;
        self.commit();
        Ok(n)
    }

    /// Moves up to `max` bytes from this queue into `to` (as many as are
    /// waiting and fit, at most one capacity's worth), publishing both
    /// indices; returns how many (sDDF `serial_transfer_all`, without its
    /// assumption that all fit). On a fault, what moved before it is
    /// published and the error says which queue broke the protocol.
    #[inline]
    pub fn transfer(&mut self, to: &mut Producer, max: u32) -> Result<u32, TransferError> {
        // At most one capacity's worth, whatever either peer does meanwhile.
        let limit = max.min(self.capacity()).min(to.capacity());
        let mut moved = 0;
        let mut buf = [0u8; 64];
        let result = loop {
            let n = ((limit - moved) as usize).min(buf.len());
            if n == 0 {
                break Ok(moved);
            }
            let got = match self.take_slice(&mut buf[..n]) {
                Ok(0) => break Ok(moved),
                Ok(got) => got,
                Err(f) => break Err(TransferError::From(f)),
            };
            // A peer may have changed its index since the last look: give
            // back whatever the destination did not take.
            let put = match to.stage_slice(&buf[..got]) {
                Ok(put) => put,
                Err(f) => {
                    self.ix.retreat(got as u32);
                    break Err(TransferError::To(f));
                }
            };
            moved += put as u32;
            if put < got {
                self.ix.retreat((got - put) as u32);
                break Ok(moved);
            }
        };
        to.commit();
        self.commit();
        result
    }

    /// Whether the producer asked for a signal (sDDF
    /// `serial_require_consumer_signal`), ordered after the head just
    /// published.
    #[inline]
    pub fn require_signal(&self) -> bool {
        FLAG.requested(&self.ix.mem)
    }

    /// Marks the producer as signalled (sDDF `serial_cancel_consumer_signal`).
    #[inline]
    pub fn cancel_signal(&mut self) {
        FLAG.cancel(&self.ix.mem);
    }

    /// The notification phase after freeing space: if the producer asked,
    /// clears the request and returns `true` (the caller then notifies it).
    #[inline]
    pub fn take_signal_request(&mut self) -> bool {
        FLAG.take_request(&self.ix.mem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::leak;

    fn pair(cap: u32) -> (Producer, Consumer, Shared) {
        let (q, d) = (leak(layout::SIZE), leak(cap as usize));
        (
            Producer::attach(q, d, cap).unwrap(),
            Consumer::attach(q, d, cap).unwrap(),
            q,
        )
    }

    #[test]
    fn layout_matches_sddf() {
        // serial_queue_t { uint32_t tail; uint32_t head; uint32_t
        // producer_signalled; }
        assert_eq!(
            (
                layout::TAIL,
                layout::HEAD,
                layout::PRODUCER_SIGNALLED,
                layout::SIZE
            ),
            (0, 4, 8, 12)
        );
    }

    #[test]
    fn bytes_wrap_round_the_data_region() {
        let (mut p, mut c, q) = pair(8);
        let mut out = [0u8; 8];
        for round in 0..50u8 {
            let line = [round, round + 1, round + 2, b'\n', round];
            assert_eq!(p.write(&line).unwrap(), 5);
            assert_eq!(c.read(&mut out).unwrap(), 5);
            assert_eq!(&out[..5], &line);
        }
        let mut tail = [0u8; 4];
        q.read(0, &mut tail).unwrap();
        assert_eq!(
            u32::from_le_bytes(tail),
            250,
            "the shared tail counts bytes"
        );
    }

    #[test]
    fn a_full_queue_takes_what_fits_or_nothing() {
        let (mut p, mut c, _) = pair(4);
        assert_eq!(p.write(b"abcdef").unwrap(), 4);
        assert_eq!(p.enqueue(b'x'), Err(QueueError::Full));
        assert_eq!(c.dequeue().unwrap(), Some(b'a'));
        assert_eq!(p.write_all(b"yz"), Err(QueueError::Full));
        assert_eq!(p.write_all(b"y"), Ok(()));
        let mut out = [0u8; 8];
        assert_eq!(c.read(&mut out).unwrap(), 4);
        assert_eq!(&out[..4], b"bcdy");
    }

    #[test]
    fn staged_bytes_stay_invisible_until_committed() {
        let (mut p, mut c, _) = pair(16);
        for b in b"hello" {
            p.stage(*b).unwrap();
        }
        assert_eq!(c.len().unwrap(), 0);
        p.commit();
        assert_eq!(c.len().unwrap(), 5);
    }

    #[test]
    fn peeking_looks_ahead_without_taking() {
        let (mut p, mut c, _) = pair(8);
        let mut out = [0u8; 8];
        // Wrap the ring so that a peek spans its end.
        p.write(b"xxxxxx").unwrap();
        c.read(&mut out).unwrap();
        p.write(b"abcdefg").unwrap();
        assert_eq!(c.peek(0, &mut out).unwrap(), 7);
        assert_eq!(&out[..7], b"abcdefg");
        assert_eq!(c.peek(3, &mut out[..2]).unwrap(), 2);
        assert_eq!(&out[..2], b"de");
        assert_eq!(c.peek(7, &mut out).unwrap(), 0);
        assert_eq!(c.peek(100, &mut out).unwrap(), 0);
        assert_eq!(c.len().unwrap(), 7, "nothing was taken");
        assert_eq!(c.skip(2).unwrap(), 2);
        assert_eq!(c.len().unwrap(), 5);
        assert_eq!(c.read(&mut out).unwrap(), 5);
        assert_eq!(&out[..5], b"cdefg");
        assert_eq!(c.skip(9).unwrap(), 0);
    }

    #[test]
    fn transfer_moves_what_fits() {
        let (mut p1, mut c1, _) = pair(16);
        let (mut p2, mut c2, _) = pair(8);
        p1.write(b"0123456789").unwrap();
        p2.write(b"ab").unwrap();
        assert_eq!(c1.transfer(&mut p2, u32::MAX).unwrap(), 6);
        let mut out = [0u8; 8];
        assert_eq!(c2.read(&mut out).unwrap(), 8);
        assert_eq!(&out, b"ab012345");
        assert_eq!(c1.transfer(&mut p2, 3).unwrap(), 3);
        assert_eq!(c2.read(&mut out).unwrap(), 3);
        assert_eq!(&out[..3], b"678");
    }

    #[test]
    fn the_producer_waits_for_space_and_is_signalled_once() {
        let (mut p, mut c, _) = pair(4);
        c.cancel_signal();
        p.write(b"abcd").unwrap();
        assert_eq!(p.try_idle(1).unwrap(), Idle::Block);
        assert_eq!(c.dequeue().unwrap(), Some(b'a'));
        assert!(c.take_signal_request());
        assert_eq!(c.dequeue().unwrap(), Some(b'b'));
        assert!(!c.take_signal_request());
        assert_eq!(p.try_idle(2).unwrap(), Idle::Reprocess);
        assert!(!c.require_signal());
    }
}
