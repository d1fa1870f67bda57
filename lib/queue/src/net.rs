//! Network queues: rings of buffer descriptors, in free/active pairs, with
//! sDDF 0.7's `net_queue_t` layout.
//!
//! ```text
//! net_queue_t (alignment 8)            net_buff_desc_t (16 bytes, alignment 8)
//!   0  u16 tail   (producer writes)       0  u64 io_or_offset
//!   2  u16 head   (consumer writes)       8  u16 len
//!   4  u32 consumer_signalled             10 u8  oid (low 6 bits; a C bit-field)
//!   8  net_buff_desc_t buffers[capacity]  11..16 padding
//! ```
//!
//! A pair of queues joins two neighbours, and buffers go round it: the
//! [`Source`] takes empty buffers from the *free* queue, fills them and
//! passes them on in the *active* queue; the [`Sink`] takes them from the
//! active queue, uses them and gives them back in the free queue. On the
//! receive path the driver is the source of its pair with the receive
//! virtualiser; on the transmit path the client is the source of its pair.
//! Each buffer is [`BUFFER_SIZE`] bytes; a descriptor names it by its offset
//! in the data region, or by its I/O address on the queues a driver shares
//! (see [`Buffers`]).
//!
//! Signalling: each queue's consumer may ask its producer for a signal
//! (`Consumer::try_idle`); the producer signals only if asked
//! (`Producer::take_signal_request`).
use crate::ring::{sealed, AttachError, ConsumerSignals, Entry, PeerFault, QueueError, Ring, Slot};
use crate::ring::{Consumer, Producer, U16};
use crate::Shared;

/// Bytes per buffer (sDDF `NET_BUFFER_SIZE`): the Ethernet MTU rounded up
/// to a power of two.
pub const BUFFER_SIZE: u32 = 2048;

/// One buffer descriptor (sDDF `net_buff_desc_t`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BuffDesc {
    /// The buffer's offset in its data region, or its I/O address.
    pub io_or_offset: u64,
    /// Bytes of data in the buffer.
    pub len: u16,
    /// Which region the buffer belongs to, where a queue carries buffers of
    /// several (sDDF's vswitch); 0 otherwise. Six bits: higher bits are
    /// dropped on store and ignored on load.
    pub oid: u8,
}

/// Field offsets, as the C compiler lays `net_queue_t` and
/// `net_buff_desc_t` out for aarch64 (and x86-64): the tests pin them.
pub mod layout {
    /// `net_queue_t.tail`.
    pub const TAIL: usize = 0;
    /// `net_queue_t.head`.
    pub const HEAD: usize = 2;
    /// `net_queue_t.consumer_signalled`.
    pub const CONSUMER_SIGNALLED: usize = 4;
    /// `net_queue_t.buffers`.
    pub const BUFFERS: usize = 8;
    /// `sizeof(net_buff_desc_t)`.
    pub const DESC_SIZE: usize = 16;
    /// `net_buff_desc_t.io_or_offset`.
    pub const DESC_IO_OR_OFFSET: usize = 0;
    /// `net_buff_desc_t.len`.
    pub const DESC_LEN: usize = 8;
    /// The byte holding `net_buff_desc_t.oid` (bits 0..6).
    pub const DESC_OID: usize = 10;
    /// `oid`'s bit-field mask.
    pub const OID_MASK: u8 = 0x3f;
    /// `_Alignof(net_queue_t)`.
    pub const ALIGN: usize = 8;
}

impl sealed::Sealed for BuffDesc {}

impl Entry for BuffDesc {
    const SIZE: usize = layout::DESC_SIZE;

    #[inline]
    fn load(slot: &Slot<'_>) -> Self {
        use core::sync::atomic::Ordering::Relaxed;
        BuffDesc {
            io_or_offset: slot.u64(layout::DESC_IO_OR_OFFSET).load(Relaxed),
            len: slot.u16(layout::DESC_LEN).load(Relaxed),
            oid: slot.u8(layout::DESC_OID).load(Relaxed) & layout::OID_MASK,
        }
    }

    #[inline]
    fn store(&self, slot: &Slot<'_>) {
        use core::sync::atomic::Ordering::Relaxed;
        slot.u64(layout::DESC_IO_OR_OFFSET)
            .store(self.io_or_offset, Relaxed);
        slot.u16(layout::DESC_LEN).store(self.len, Relaxed);
        slot.u8(layout::DESC_OID)
            .store(self.oid & layout::OID_MASK, Relaxed);
    }
}

/// The layout of one network queue (`net_queue_t`).
#[derive(Debug)]
pub enum NetRing {}

impl sealed::Sealed for NetRing {}

impl Ring for NetRing {
    type Entry = BuffDesc;
    type Width = U16;
    const TAIL: usize = layout::TAIL;
    const HEAD: usize = layout::HEAD;
    const ENTRIES: usize = layout::BUFFERS;
    const ALIGN: usize = layout::ALIGN;
    const FLAG: Option<usize> = Some(layout::CONSUMER_SIGNALLED);
}

impl ConsumerSignals for NetRing {}

/// The side that fills buffers: consumes the free queue, produces the
/// active one (a transmitting client; a NIC driver's receive side).
#[derive(Debug)]
pub struct Source {
    /// Empty buffers handed to this side.
    pub free: Consumer<NetRing>,
    /// Filled buffers passed on.
    pub active: Producer<NetRing>,
}

/// The side that uses filled buffers: consumes the active queue, produces
/// the free one (a receiving client; a NIC driver's transmit side).
#[derive(Debug)]
pub struct Sink {
    /// Filled buffers handed to this side.
    pub active: Consumer<NetRing>,
    /// Used buffers given back.
    pub free: Producer<NetRing>,
}

impl Source {
    /// Attaches to a pair of queues of the same capacity (sDDF's rule).
    #[inline]
    pub fn attach(free: Shared, active: Shared, capacity: u32) -> Result<Self, AttachError> {
        Ok(Source {
            free: Consumer::attach(free, capacity)?,
            active: Producer::attach(active, capacity)?,
        })
    }
}

impl Sink {
    /// Attaches to a pair of queues of the same capacity (sDDF's rule).
    #[inline]
    pub fn attach(free: Shared, active: Shared, capacity: u32) -> Result<Self, AttachError> {
        Ok(Sink {
            active: Consumer::attach(active, capacity)?,
            free: Producer::attach(free, capacity)?,
        })
    }
}

/// The buffers of one data region: `count` buffers of [`BUFFER_SIZE`]
/// bytes, named in descriptors as `base + i * BUFFER_SIZE`, where `base` is
/// 0 on queues that carry offsets and the region's I/O address on the
/// queues a driver shares.
///
/// [`Buffers::check`] is how a reader validates a descriptor from its peer
/// before touching the buffer it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buffers {
    base: u64,
    count: u32,
}

impl Buffers {
    /// The buffers of a `region_len`-byte data region named from `base`.
    #[inline]
    pub fn new(base: u64, region_len: usize) -> Self {
        let count = (region_len / BUFFER_SIZE as usize).min(u32::MAX as usize) as u32;
        Buffers { base, count }
    }

    /// How many buffers the region holds.
    #[inline]
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The descriptor of empty buffer `index` (`len` 0, `oid` 0).
    #[inline]
    pub fn desc(&self, index: u32) -> Option<BuffDesc> {
        (index < self.count).then(|| BuffDesc {
            io_or_offset: self.base + index as u64 * BUFFER_SIZE as u64,
            len: 0,
            oid: 0,
        })
    }

    /// The offset of buffer `index` in the data region.
    #[inline]
    pub fn offset(&self, index: u32) -> usize {
        index as usize * BUFFER_SIZE as usize
    }

    /// Which buffer `desc` names, if it names one of this region's exactly
    /// (at a buffer boundary) with a length that fits the buffer.
    #[inline]
    pub fn check(&self, desc: &BuffDesc) -> Result<u32, PeerFault> {
        let fault = PeerFault::Descriptor {
            offset: desc.io_or_offset,
            len: desc.len as u64,
        };
        let rel = desc.io_or_offset.checked_sub(self.base).ok_or(fault)?;
        if rel % BUFFER_SIZE as u64 != 0 || desc.len as u32 > BUFFER_SIZE {
            return Err(fault);
        }
        let index = rel / BUFFER_SIZE as u64;
        if index >= self.count as u64 {
            return Err(fault);
        }
        Ok(index as u32)
    }

    /// Hands every buffer to the peer through `free` (sDDF
    /// `net_buffers_init`), as many as fit; returns how many.
    #[inline]
    pub fn fill(&self, free: &mut Producer<NetRing>) -> Result<u32, QueueError> {
        Ok(free.enqueue_batch((0..self.count).filter_map(|i| self.desc(i)))?)
    }
}

/// Which of a region's buffers are lent to a peer, so a virtualiser can
/// refuse one handed back twice or never lent (the "buffer gain" a hostile
/// client could otherwise cause, which sDDF 0.7 documents as open).
/// `WORDS` 64-bit words track up to `64 * WORDS` buffers.
#[derive(Clone, Debug)]
pub struct Loans<const WORDS: usize> {
    bits: [u64; WORDS],
}

impl<const WORDS: usize> Default for Loans<WORDS> {
    fn default() -> Self {
        Loans { bits: [0; WORDS] }
    }
}

impl<const WORDS: usize> Loans<WORDS> {
    /// Records buffer `index` as lent. `false` if it already was, or is out
    /// of range (a bug on this side, not the peer's).
    #[inline]
    pub fn lend(&mut self, index: u32) -> bool {
        let (w, b) = (index as usize / 64, index % 64);
        match self.bits.get_mut(w) {
            Some(word) if *word & (1 << b) == 0 => {
                *word |= 1 << b;
                true
            }
            _ => false,
        }
    }

    /// Takes buffer `index` back from the peer: a fault if it was not lent.
    #[inline]
    pub fn reclaim(&mut self, index: u32) -> Result<(), PeerFault> {
        let (w, b) = (index as usize / 64, index % 64);
        match self.bits.get_mut(w) {
            Some(word) if *word & (1 << b) != 0 => {
                *word &= !(1 << b);
                Ok(())
            }
            _ => Err(PeerFault::NotLent { buffer: index }),
        }
    }

    /// Whether buffer `index` is lent.
    #[inline]
    pub fn is_lent(&self, index: u32) -> bool {
        self.bits
            .get(index as usize / 64)
            .is_some_and(|w| w & (1 << (index % 64)) != 0)
    }

    /// How many buffers are lent.
    #[inline]
    pub fn count(&self) -> u32 {
        self.bits.iter().map(|w| w.count_ones()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::leak;
    use crate::Idle;

    #[test]
    fn layout_matches_sddf() {
        // net_queue_t { uint16_t tail; uint16_t head; uint32_t
        // consumer_signalled; net_buff_desc_t buffers[]; } and
        // net_buff_desc_t { uint64_t io_or_offset; uint16_t len; uint8_t
        // oid : 6; }: natural alignment, 8-byte struct alignment.
        assert_eq!(
            (
                layout::TAIL,
                layout::HEAD,
                layout::CONSUMER_SIGNALLED,
                layout::BUFFERS
            ),
            (0, 2, 4, 8)
        );
        assert_eq!(
            (layout::DESC_SIZE, layout::DESC_LEN, layout::DESC_OID),
            (16, 8, 10)
        );
        assert_eq!(NetRing::bytes(512), 8 + 512 * 16);
    }

    #[test]
    fn bytes_land_where_sddf_puts_them() {
        let q = leak(NetRing::bytes(4));
        let mut p = Producer::<NetRing>::attach(q, 4).unwrap();
        let d = BuffDesc {
            io_or_offset: 0x1122_3344_5566_7788,
            len: 0x99aa,
            oid: 0xff,
        };
        p.enqueue(d).unwrap();
        p.enqueue(d).unwrap();
        let mut raw = [0u8; 8 + 2 * 16];
        q.read(0, &mut raw).unwrap();
        assert_eq!(&raw[0..2], &2u16.to_le_bytes(), "tail");
        assert_eq!(&raw[2..4], &0u16.to_le_bytes(), "head");
        assert_eq!(&raw[24..32], &0x1122_3344_5566_7788u64.to_le_bytes());
        assert_eq!(&raw[32..34], &0x99aau16.to_le_bytes());
        assert_eq!(raw[34], 0x3f, "oid keeps its six bits");
    }

    #[test]
    fn a_pair_passes_buffers_round() {
        let (free, active) = (leak(NetRing::bytes(8)), leak(NetRing::bytes(8)));
        let mut src = Source::attach(free, active, 8).unwrap();
        let mut sink = Sink::attach(free, active, 8).unwrap();
        let bufs = Buffers::new(0, 8 * BUFFER_SIZE as usize);
        assert_eq!(bufs.fill(&mut sink.free).unwrap(), 8);
        for round in 0..100u16 {
            let mut d = src.free.dequeue().unwrap().unwrap();
            d.len = round;
            src.active.enqueue(d).unwrap();
            let got = sink.active.dequeue().unwrap().unwrap();
            assert_eq!(got.len, round);
            assert!(bufs.check(&got).is_ok());
            sink.free.enqueue(got).unwrap();
        }
    }

    #[test]
    fn the_consumer_is_signalled_once_per_request() {
        let q = leak(NetRing::bytes(4));
        let mut p = Producer::<NetRing>::attach(q, 4).unwrap();
        let mut c = Consumer::<NetRing>::attach(q, 4).unwrap();
        // A zeroed queue asks for a signal.
        assert!(p.require_signal());
        c.cancel_signal();
        p.enqueue(BuffDesc::default()).unwrap();
        assert!(!p.take_signal_request(), "not asked");
        // Idle with work waiting: reprocess, no request left behind.
        assert_eq!(c.try_idle().unwrap(), Idle::Reprocess);
        assert!(!p.require_signal());
        assert!(c.dequeue().unwrap().is_some());
        assert_eq!(c.try_idle().unwrap(), Idle::Block);
        p.enqueue(BuffDesc::default()).unwrap();
        assert!(p.take_signal_request(), "asked once");
        p.enqueue(BuffDesc::default()).unwrap();
        assert!(!p.take_signal_request(), "and only once");
    }

    #[test]
    fn descriptors_outside_the_region_are_refused() {
        let bufs = Buffers::new(0x4000_0000, 4 * BUFFER_SIZE as usize);
        let d = |io, len| BuffDesc {
            io_or_offset: io,
            len,
            oid: 0,
        };
        assert_eq!(bufs.check(&d(0x4000_0000 + 3 * 2048, 2048)), Ok(3));
        for bad in [
            d(0x4000_0000 + 4 * 2048, 0),
            d(0x3fff_f800, 0),
            d(0x4000_0001, 0),
            d(0x4000_0000, 2049),
            d(u64::MAX, 0),
        ] {
            assert!(bufs.check(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn loans_refuse_what_was_not_lent() {
        let mut loans = Loans::<2>::default();
        assert!(loans.lend(70));
        assert!(!loans.lend(70));
        assert!(!loans.lend(128));
        assert_eq!(loans.count(), 1);
        assert!(loans.reclaim(70).is_ok());
        assert_eq!(loans.reclaim(70), Err(PeerFault::NotLent { buffer: 70 }));
        assert!(loans.reclaim(5000).is_err());
    }
}
