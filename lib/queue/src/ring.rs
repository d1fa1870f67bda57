//! The ring: index arithmetic, validation and memory ordering shared by
//! every queue kind, and the descriptor-ring handles [`Producer`] and
//! [`Consumer`].
//!
//! ## Indices
//!
//! A ring has a `tail` (next slot to fill, written only by the producer)
//! and a `head` (next slot to empty, written only by the consumer), both
//! free-running unsigned counters of the queue kind's width (16 bits for
//! net, 32 for serial and block) that wrap at 2^width. The queue holds
//! `(tail - head) mod 2^width` entries; entry `i` lives in slot
//! `i mod capacity`. Capacity is a power of two no larger than 2^(width-1),
//! so the slot sequence stays continuous across the wrap and a full queue
//! (`capacity` entries) is never confused with an empty one. This is
//! sDDF's arithmetic exactly; sDDF leaves the power-of-two rule implicit,
//! Septa checks it when a handle is attached.
//!
//! ## Never trusting the peer
//!
//! Each handle keeps its own index privately and writes it to shared
//! memory only to publish it; it never reads it back, so a peer that
//! scribbles over it changes nothing here. The peer's index is read fresh
//! (or from a copy validated when it was read), and a value that puts the
//! queue's length outside `0..=capacity` is a [`PeerFault`]: the operation
//! fails, the handle counts the fault, and nothing is read or written.
//! Slot numbers come from this side's own index, masked, and the window was
//! checked at attach time to hold every slot, so no value in shared memory
//! can move an access outside it. Every operation does a bounded amount of
//! work (batch helpers stop after one capacity's worth).
//!
//! ## Memory ordering
//!
//! - Publishing an index is a `Release` store: the entries written (or
//!   read) before it are visible (or finished) before the peer sees it.
//!   This is sDDF's `THREAD_MEMORY_RELEASE` before `tail++`/`head++`, or
//!   its `store_release_32`.
//! - Reading the peer's index is an `Acquire` load, pairing with that
//!   store: the entries it covers are read after it (sDDF's
//!   `load_acquire_32`).
//! - The signal handshake is a store followed by a load on each side (the
//!   waiter stores its request then re-reads the peer's index; the
//!   notifier stores its index then reads the request), the Dekker
//!   pattern: each side has a `SeqCst` fence between its store and its
//!   load, so at least one of them sees the other's store, which is what
//!   rules out a lost wake-up (sDDF's serial queue does the same with
//!   `fence_seq_cst`; its 0.7 net queue has only a release fence, enough
//!   on one core, see the crate docs).
use core::fmt;
use core::marker::PhantomData;
use core::sync::atomic::{fence, Ordering};

use crate::Shared;

pub(crate) mod sealed {
    pub trait Sealed {}
}

/// How wide a ring's indices are in shared memory.
pub trait Width: sealed::Sealed {
    /// `2^width - 1`: indices are kept reduced by this mask.
    const MASK: u32;
    /// The largest capacity: `2^(width-1)`.
    const MAX_CAPACITY: u32 = (Self::MASK >> 1) + 1;
    #[doc(hidden)]
    fn load_relaxed(mem: &Shared, offset: usize) -> u32;
    #[doc(hidden)]
    fn load_acquire(mem: &Shared, offset: usize) -> u32;
    #[doc(hidden)]
    fn store_release(mem: &Shared, offset: usize, value: u32);
}

/// 16-bit indices (sDDF's net queues).
#[derive(Debug)]
pub enum U16 {}
/// 32-bit indices (sDDF's serial and block queues).
#[derive(Debug)]
pub enum U32 {}

impl sealed::Sealed for U16 {}
impl sealed::Sealed for U32 {}

impl Width for U16 {
    const MASK: u32 = 0xffff;
    #[inline]
    fn load_relaxed(mem: &Shared, offset: usize) -> u32 {
        mem.u16_at(offset).load(Ordering::Relaxed) as u32
    }
    #[inline]
    fn load_acquire(mem: &Shared, offset: usize) -> u32 {
        mem.u16_at(offset).load(Ordering::Acquire) as u32
    }
    #[inline]
    fn store_release(mem: &Shared, offset: usize, value: u32) {
        mem.u16_at(offset).store(value as u16, Ordering::Release)
    }
}

impl Width for U32 {
    const MASK: u32 = 0xffff_ffff;
    #[inline]
    fn load_relaxed(mem: &Shared, offset: usize) -> u32 {
        mem.u32_at(offset).load(Ordering::Relaxed)
    }
    #[inline]
    fn load_acquire(mem: &Shared, offset: usize) -> u32 {
        mem.u32_at(offset).load(Ordering::Acquire)
    }
    #[inline]
    fn store_release(mem: &Shared, offset: usize, value: u32) {
        mem.u32_at(offset).store(value, Ordering::Release)
    }
}

/// A peer broke the queue protocol. The operation that found it did
/// nothing; the handle counts it (`faults()`) so the PD can
/// report the peer, and works again as soon as the peer's state is sane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerFault {
    /// The peer's index puts the queue's length outside `0..=capacity`.
    Index {
        /// The index the peer wrote.
        peer: u32,
        /// This side's own index.
        own: u32,
        /// The queue's capacity.
        capacity: u32,
    },
    /// A descriptor names memory outside its data region, or is
    /// misaligned, or longer than a buffer.
    Descriptor {
        /// The descriptor's address or offset.
        offset: u64,
        /// Its length in bytes.
        len: u64,
    },
    /// A descriptor names a buffer the peer does not hold (a duplicate, or
    /// one that was never lent to it).
    NotLent {
        /// The buffer's index in its region.
        buffer: u32,
    },
}

impl fmt::Display for PeerFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PeerFault::Index {
                peer,
                own,
                capacity,
            } => write!(
                f,
                "peer index {peer:#x} is more than {capacity} from ours ({own:#x})"
            ),
            PeerFault::Descriptor { offset, len } => {
                write!(f, "descriptor {offset:#x}+{len:#x} is outside its region")
            }
            PeerFault::NotLent { buffer } => {
                write!(f, "buffer {buffer} handed back but not lent")
            }
        }
    }
}

/// Why an enqueue did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueError {
    /// The queue holds `capacity` entries.
    Full,
    /// The peer broke the protocol (see [`PeerFault`]).
    Peer(PeerFault),
}

impl From<PeerFault> for QueueError {
    #[inline]
    fn from(f: PeerFault) -> Self {
        QueueError::Peer(f)
    }
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueueError::Full => f.write_str("queue full"),
            QueueError::Peer(p) => p.fmt(f),
        }
    }
}

/// Why a handle could not be attached to its memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachError {
    /// Capacity zero, not a power of two, or too large for the index width.
    Capacity(u32),
    /// The window is smaller than the queue's layout needs.
    TooSmall {
        /// Bytes the layout needs.
        need: usize,
        /// Bytes the window has.
        have: usize,
    },
    /// The window is not aligned for the queue's fields.
    Misaligned {
        /// The window's address.
        addr: usize,
        /// The alignment its fields need.
        align: usize,
    },
}

impl fmt::Display for AttachError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            AttachError::Capacity(c) => write!(
                f,
                "capacity {c} is not a power of two within the index width"
            ),
            AttachError::TooSmall { need, have } => {
                write!(f, "queue needs {need} bytes, window has {have}")
            }
            AttachError::Misaligned { addr, align } => {
                write!(f, "queue at {addr:#x} is not {align}-byte aligned")
            }
        }
    }
}

/// What `Consumer::try_idle` (and the serial producer's) found after
/// asking for a signal and looking again.
#[must_use = "blocking on `Reprocess` would miss work that is already there"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Idle {
    /// Nothing to do and the request stands: the peer will signal when
    /// there is. Return to the event loop.
    Block,
    /// Work arrived between the last look and the request: the request was
    /// withdrawn; process again.
    Reprocess,
}

/// The protocol faults a handle has seen: how many, and the last.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerFaults {
    count: u32,
    last: Option<PeerFault>,
}

impl PeerFaults {
    /// How many faults (saturating).
    #[inline]
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The last fault, if any.
    #[inline]
    pub fn last(&self) -> Option<PeerFault> {
        self.last
    }

    #[inline]
    pub(crate) fn record(&mut self, f: PeerFault) -> PeerFault {
        self.count = self.count.saturating_add(1);
        self.last = Some(f);
        f
    }
}

/// One side's view of a ring's indices: the shared arithmetic of every
/// queue kind (descriptor rings and the serial byte ring). `PRODUCER` says
/// which index this side owns (the tail if true, the head if false); as a
/// constant it costs no branch.
#[derive(Debug)]
pub(crate) struct Indices<W: Width, const PRODUCER: bool> {
    pub(crate) mem: Shared,
    own_at: usize,
    peer_at: usize,
    /// This side's index as last published.
    own: u32,
    /// This side's index including unpublished work (staged entries for a
    /// producer, taken entries for a consumer).
    local: u32,
    /// The peer's index as last read and validated.
    peer: u32,
    capacity: u32,
    pub(crate) faults: PeerFaults,
    _w: PhantomData<W>,
}

impl<W: Width, const PRODUCER: bool> Indices<W, PRODUCER> {
    /// Checks the capacity and adopts the indices in memory (zero in a
    /// fresh region; where they were in one a restarted PD finds). Only
    /// configuration errors fail: if the peer has already scribbled over
    /// the indices, the first operation reports it, and the queue works as
    /// soon as the peer's index is consistent with this side's again.
    #[inline]
    pub(crate) fn attach(
        mem: Shared,
        tail_at: usize,
        head_at: usize,
        capacity: u32,
    ) -> Result<Self, AttachError> {
        check_capacity::<W>(capacity)?;
        let (own_at, peer_at) = if PRODUCER {
            (tail_at, head_at)
        } else {
            (head_at, tail_at)
        };
        let own = W::load_relaxed(&mem, own_at);
        let mut ix = Indices {
            mem,
            own_at,
            peer_at,
            own,
            local: own,
            peer: own,
            capacity,
            faults: PeerFaults::default(),
            _w: PhantomData,
        };
        // A bad peer index is recorded as a fault and the last good value
        // (this side's own: an empty queue) kept.
        let _ = ix.refresh();
        Ok(ix)
    }

    #[inline]
    pub(crate) fn capacity(&self) -> u32 {
        self.capacity
    }

    /// The slot of the next entry this side touches.
    #[inline]
    pub(crate) fn slot(&self) -> u32 {
        self.local & (self.capacity - 1)
    }

    /// Entries between `tail` and `head` as this side sees them, from its
    /// local index and the last validated peer index.
    #[inline]
    fn used(&self) -> u32 {
        if PRODUCER {
            self.local.wrapping_sub(self.peer) & W::MASK
        } else {
            self.peer.wrapping_sub(self.local) & W::MASK
        }
    }

    /// Reads the peer's index (`Acquire`, pairing with its publishing
    /// `Release`) and validates it; on a fault keeps the last good value.
    ///
    /// The peer's index must lie within `capacity` of this side's
    /// *published* index, on the right side of it, and must not fall inside
    /// this side's unpublished work: a producer's head may not claim staged
    /// entries were read (they were never published), a consumer's tail may
    /// not withdraw entries already taken. Then `used()` lies in
    /// `0..=capacity` and every slot touched is one this side may touch.
    #[inline]
    pub(crate) fn refresh(&mut self) -> Result<(), PeerFault> {
        let peer = W::load_acquire(&self.mem, self.peer_at);
        let pending = self.pending();
        let valid = if PRODUCER {
            // head in [own - capacity + pending, own]
            let published = self.own.wrapping_sub(peer) & W::MASK;
            published <= self.capacity - pending
        } else {
            // tail in [local, own + capacity]
            let published = peer.wrapping_sub(self.own) & W::MASK;
            published <= self.capacity && published >= pending
        };
        if !valid {
            return Err(self.faults.record(PeerFault::Index {
                peer,
                own: self.own,
                capacity: self.capacity,
            }));
        }
        self.peer = peer;
        Ok(())
    }

    /// Entries a consumer may take (reading the producer's tail afresh).
    #[inline]
    pub(crate) fn available(&mut self) -> Result<u32, PeerFault> {
        debug_assert!(!PRODUCER);
        self.refresh()?;
        Ok(self.used())
    }

    /// Slots a producer may fill (reading the consumer's head afresh).
    #[inline]
    pub(crate) fn space(&mut self) -> Result<u32, PeerFault> {
        debug_assert!(PRODUCER);
        self.refresh()?;
        Ok(self.capacity - self.used())
    }

    /// Whether one more entry can be taken (consumer) or staged (producer),
    /// reading the peer's index only when the last value read says no: a
    /// batch reads it once, not once per entry.
    #[inline]
    pub(crate) fn ready(&mut self) -> Result<bool, PeerFault> {
        let room = |ix: &Self| {
            if PRODUCER {
                ix.used() < ix.capacity
            } else {
                ix.used() > 0
            }
        };
        if room(self) {
            return Ok(true);
        }
        self.refresh()?;
        Ok(room(self))
    }

    /// Counts one entry taken or staged (after `ready` said yes).
    #[inline]
    pub(crate) fn advance(&mut self, n: u32) {
        self.local = self.local.wrapping_add(n) & W::MASK;
    }

    /// Entries taken or staged but not yet published.
    #[inline]
    pub(crate) fn pending(&self) -> u32 {
        self.local.wrapping_sub(self.own) & W::MASK
    }

    /// Publishes the local index (`Release`: the entries written, or read,
    /// before it are complete before the peer can see it).
    #[inline]
    pub(crate) fn publish(&mut self) {
        if self.local != self.own {
            W::store_release(&self.mem, self.own_at, self.local);
            self.own = self.local;
        }
    }

    /// Gives back the last `n` entries taken or staged and not published.
    #[inline]
    pub(crate) fn retreat(&mut self, n: u32) {
        debug_assert!(n <= self.pending());
        self.local = self.local.wrapping_sub(n.min(self.pending())) & W::MASK;
    }

    /// Drops staged or taken entries that were not published.
    #[inline]
    pub(crate) fn unstage(&mut self) {
        self.local = self.own;
    }
}

/// The signal flag of one ring: a `u32` in the queue header, written by
/// both sides. Zero means the waiting side wants a signal (a fresh zeroed
/// region asks for one); any other value means it does not. sDDF writes 1;
/// Septa reads any non-zero value as 1, so garbage costs at most a signal.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Flag {
    pub(crate) at: usize,
}

impl Flag {
    /// Waiter: asks for a signal. The `SeqCst` fence orders this store
    /// before the re-check that follows (the store-load order a release
    /// store alone does not give).
    #[inline]
    pub(crate) fn request(&self, mem: &Shared) {
        mem.u32_at(self.at).store(0, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    /// Either side: withdraws the request (the waiter found work on its
    /// re-check, or the notifier is about to signal). No fence: a
    /// cancellation is always followed by processing and a new request.
    #[inline]
    pub(crate) fn cancel(&self, mem: &Shared) {
        mem.u32_at(self.at).store(1, Ordering::Relaxed);
    }

    /// Notifier: whether the waiter asked. The `SeqCst` fence orders the
    /// index the notifier just published before this load; paired with the
    /// waiter's fence, at least one side sees the other's store.
    #[inline]
    pub(crate) fn requested(&self, mem: &Shared) -> bool {
        fence(Ordering::SeqCst);
        mem.u32_at(self.at).load(Ordering::Relaxed) == 0
    }

    /// Notifier, after publishing: takes the waiter's request if there is
    /// one; `true` means the caller owes it a signal.
    #[inline]
    pub(crate) fn take_request(&self, mem: &Shared) -> bool {
        let requested = self.requested(mem);
        if requested {
            self.cancel(mem);
        }
        requested
    }

    /// Waiter, out of work: asks for a signal, then looks again with
    /// `has_work` (which must read the peer's index afresh); withdraws the
    /// request if the look finds work.
    #[inline]
    pub(crate) fn try_idle(
        &self,
        mem: &Shared,
        has_work: impl FnOnce() -> Result<bool, PeerFault>,
    ) -> Result<Idle, PeerFault> {
        self.request(mem);
        if has_work()? {
            self.cancel(mem);
            Ok(Idle::Reprocess)
        } else {
            Ok(Idle::Block)
        }
    }
}

/// A cursor on one ring slot, for [`Entry`] implementations: the slot's
/// window and its offset in it. Made only by the ring, for a slot index
/// masked by the capacity, in a window checked to hold every slot.
pub struct Slot<'a> {
    pub(crate) mem: &'a Shared,
    pub(crate) at: usize,
}

impl Slot<'_> {
    // Each accessor takes a field offset within the entry: `Entry` impls
    // pass constants below `Entry::SIZE`, aligned for the field, and the
    // ring placed the slot at an `Entry::ALIGN`-aligned offset in a window
    // long enough for it, so the access stays inside the window.
    #[inline]
    pub(crate) fn u8(&self, field: usize) -> &core::sync::atomic::AtomicU8 {
        self.mem.u8_at(self.at + field)
    }
    #[inline]
    pub(crate) fn u16(&self, field: usize) -> &core::sync::atomic::AtomicU16 {
        self.mem.u16_at(self.at + field)
    }
    #[inline]
    pub(crate) fn u32(&self, field: usize) -> &core::sync::atomic::AtomicU32 {
        self.mem.u32_at(self.at + field)
    }
    #[inline]
    pub(crate) fn u64(&self, field: usize) -> &core::sync::atomic::AtomicU64 {
        self.mem.u64_at(self.at + field)
    }
}

/// An entry of a descriptor ring, read and written field by field with
/// relaxed atomics (the ring's index orders them). Implemented in this
/// crate only, once per sDDF entry type.
pub trait Entry: Copy + sealed::Sealed {
    /// The entry's size in shared memory (the C `sizeof`, the array stride).
    const SIZE: usize;
    #[doc(hidden)]
    fn load(slot: &Slot<'_>) -> Self;
    #[doc(hidden)]
    fn store(&self, slot: &Slot<'_>);
}

/// A descriptor ring's layout in shared memory (one per sDDF queue type).
pub trait Ring: sealed::Sealed {
    /// What the ring carries.
    type Entry: Entry;
    /// Its index width.
    type Width: Width;
    /// Offset of `tail` in the header.
    const TAIL: usize;
    /// Offset of `head` in the header.
    const HEAD: usize;
    /// Offset of the entry array (the C flexible array member).
    const ENTRIES: usize;
    /// Alignment the window needs (the C struct's alignment).
    const ALIGN: usize;
    /// Offset of the consumer's signal flag, if the ring has one.
    const FLAG: Option<usize>;

    /// Bytes a queue of `capacity` entries occupies.
    #[inline]
    fn bytes(capacity: u32) -> usize {
        Self::ENTRIES + capacity as usize * Self::Entry::SIZE
    }
}

/// A capacity is a power of two no larger than half the index space.
pub(crate) fn check_capacity<W: Width>(capacity: u32) -> Result<(), AttachError> {
    if capacity == 0 || !capacity.is_power_of_two() || capacity > W::MAX_CAPACITY {
        return Err(AttachError::Capacity(capacity));
    }
    Ok(())
}

/// Checked before anything in the window is read.
fn check_window<R: Ring>(mem: &Shared, capacity: u32) -> Result<(), AttachError> {
    check_capacity::<R::Width>(capacity)?;
    if !mem.addr().is_multiple_of(R::ALIGN) {
        return Err(AttachError::Misaligned {
            addr: mem.addr(),
            align: R::ALIGN,
        });
    }
    let need = R::bytes(capacity);
    if mem.len() < need {
        return Err(AttachError::TooSmall {
            need,
            have: mem.len(),
        });
    }
    Ok(())
}

fn slot<'a, R: Ring>(mem: &'a Shared, slot: u32) -> Slot<'a> {
    // `slot < capacity` (masked) and the window holds `capacity` entries
    // past `ENTRIES` (checked at attach), so the entry lies inside it.
    Slot {
        mem,
        at: R::ENTRIES + slot as usize * R::Entry::SIZE,
    }
}

/// One end of a descriptor ring: the producer's (`PRODUCER`: fills slots
/// at `tail`) or the consumer's (empties them at `head`). Named through
/// [`Producer`] and [`Consumer`].
#[derive(Debug)]
pub struct End<R: Ring, const PRODUCER: bool> {
    ix: Indices<R::Width, PRODUCER>,
    _r: PhantomData<R>,
}

/// The producing end of a descriptor ring: fills slots at `tail`.
pub type Producer<R> = End<R, true>;

/// The consuming end of a descriptor ring: empties slots at `head`.
pub type Consumer<R> = End<R, false>;

impl<R: Ring, const PRODUCER: bool> End<R, PRODUCER> {
    /// Attaches to the queue in `mem` (a window at least
    /// [`Ring::bytes`]`(capacity)` long). `capacity` comes from this PD's
    /// own configuration, never from shared memory.
    #[inline]
    pub fn attach(mem: Shared, capacity: u32) -> Result<Self, AttachError> {
        check_window::<R>(&mem, capacity)?;
        Ok(End {
            ix: Indices::attach(mem, R::TAIL, R::HEAD, capacity)?,
            _r: PhantomData,
        })
    }

    /// The queue's capacity.
    #[inline]
    pub fn capacity(&self) -> u32 {
        self.ix.capacity()
    }

    /// Publishes this end's index past every entry staged (producer) or
    /// taken (consumer): one `Release` store.
    #[inline]
    pub fn commit(&mut self) {
        self.ix.publish();
    }

    /// The protocol faults this end has seen (to report the peer).
    #[inline]
    pub fn faults(&self) -> PeerFaults {
        self.ix.faults
    }

    /// Records a fault found above the ring (a bad descriptor, a buffer
    /// handed back that was not lent), so that [`faults`](Self::faults)
    /// covers everything the peer did wrong.
    #[inline]
    pub fn report(&mut self, fault: PeerFault) -> PeerFault {
        self.ix.faults.record(fault)
    }

    /// The queue's window (for layout-specific fields such as block's plug).
    #[inline]
    pub(crate) fn window(&self) -> &Shared {
        &self.ix.mem
    }
}

impl<R: Ring> Producer<R> {
    /// Free slots now (reads the consumer's head).
    #[inline]
    pub fn space(&mut self) -> Result<u32, PeerFault> {
        self.ix.space()
    }

    /// Whether no slot is free (reads the consumer's head).
    #[inline]
    pub fn is_full(&mut self) -> Result<bool, PeerFault> {
        Ok(self.space()? == 0)
    }

    /// Writes `entry` into the next slot without publishing it: the
    /// consumer sees staged entries only after [`commit`](Self::commit).
    #[inline]
    pub fn stage(&mut self, entry: R::Entry) -> Result<(), QueueError> {
        if !self.ix.ready()? {
            return Err(QueueError::Full);
        }
        entry.store(&slot::<R>(&self.ix.mem, self.ix.slot()));
        self.ix.advance(1);
        Ok(())
    }

    /// Entries staged and not yet committed.
    #[inline]
    pub fn staged(&self) -> u32 {
        self.ix.pending()
    }

    /// Forgets the staged entries (their slots stay free).
    #[inline]
    pub fn unstage(&mut self) {
        self.ix.unstage();
    }

    /// Enqueues one entry and publishes it.
    #[inline]
    pub fn enqueue(&mut self, entry: R::Entry) -> Result<(), QueueError> {
        self.stage(entry)?;
        self.commit();
        Ok(())
    }

    /// Enqueues entries from `entries` while there is room, publishing once
    /// at the end; returns how many went in. Takes at most `capacity`
    /// entries from the iterator. A fault found after some entries went in
    /// is counted on the handle and those entries are published; the next
    /// call reports it if it persists.
    #[inline]
    pub fn enqueue_batch(
        &mut self,
        entries: impl IntoIterator<Item = R::Entry>,
    ) -> Result<u32, PeerFault> {
        let mut n = 0;
        let mut it = entries.into_iter();
        let result = loop {
            match self.ix.ready() {
                Ok(true) => {}
                Ok(false) => break Ok(n),
                // What was staged fit the last good head: publish it.
                Err(_) if n > 0 => break Ok(n),
                Err(f) => break Err(f),
            }
            let Some(e) = it.next() else { break Ok(n) };
            e.store(&slot::<R>(&self.ix.mem, self.ix.slot()));
            self.ix.advance(1);
            n += 1;
        };
        self.commit();
        result
    }
}

impl<R: Ring> Consumer<R> {
    /// Entries waiting now (reads the producer's tail).
    #[inline]
    pub fn len(&mut self) -> Result<u32, PeerFault> {
        self.ix.available()
    }

    /// Whether nothing is waiting (reads the producer's tail).
    #[inline]
    pub fn is_empty(&mut self) -> Result<bool, PeerFault> {
        Ok(self.len()? == 0)
    }

    /// Reads the next entry without publishing the new head: the producer
    /// may reuse the slot only after [`commit`](Self::commit).
    #[inline]
    pub fn take(&mut self) -> Result<Option<R::Entry>, PeerFault> {
        if !self.ix.ready()? {
            return Ok(None);
        }
        let e = R::Entry::load(&slot::<R>(&self.ix.mem, self.ix.slot()));
        self.ix.advance(1);
        Ok(Some(e))
    }

    /// Entries taken and not yet committed.
    #[inline]
    pub fn taken(&self) -> u32 {
        self.ix.pending()
    }

    /// Dequeues one entry and publishes the new head.
    #[inline]
    pub fn dequeue(&mut self) -> Result<Option<R::Entry>, PeerFault> {
        let e = self.take()?;
        self.commit();
        Ok(e)
    }

    /// Dequeues up to `max` entries (and at most one capacity's worth: the
    /// call is bounded whatever the peer does), handing each to `f`, and
    /// publishes the head once at the end. Returns how many.
    #[inline]
    pub fn drain(&mut self, max: u32, mut f: impl FnMut(R::Entry)) -> Result<u32, PeerFault> {
        let limit = max.min(self.capacity());
        let mut n = 0;
        let result = loop {
            if n == limit {
                break Ok(n);
            }
            match self.take() {
                Ok(Some(e)) => {
                    f(e);
                    n += 1;
                }
                Ok(None) => break Ok(n),
                Err(fault) => break Err(fault),
            }
        };
        self.commit();
        result
    }
}

/// A ring whose consumer may ask its producer for a signal (sDDF's net
/// queues: `consumer_signalled`).
pub trait ConsumerSignals: Ring {}

impl<R: ConsumerSignals> Consumer<R> {
    #[inline]
    fn flag(&self) -> Flag {
        Flag {
            at: R::FLAG.expect("a ConsumerSignals ring has a flag"),
        }
    }

    /// Asks the producer to signal after its next enqueue (sDDF
    /// `net_request_signal_*`). Prefer [`try_idle`](Self::try_idle), which
    /// also does the re-check the protocol needs.
    #[inline]
    pub fn request_signal(&mut self) {
        self.flag().request(&self.ix.mem);
    }

    /// Withdraws the request (sDDF `net_cancel_signal_*`).
    #[inline]
    pub fn cancel_signal(&mut self) {
        self.flag().cancel(&self.ix.mem);
    }

    /// The end of a processing round: asks for a signal, then looks at the
    /// queue again. [`Idle::Block`]: nothing arrived, the request stands,
    /// return to the event loop. [`Idle::Reprocess`]: something arrived
    /// meanwhile; the request is withdrawn and the caller processes again.
    /// This is the step whose omission loses wake-ups (see the Promela
    /// model in `model/signal.pml`).
    #[inline]
    pub fn try_idle(&mut self) -> Result<Idle, PeerFault> {
        let mem = self.ix.mem;
        self.flag().try_idle(&mem, || Ok(!self.is_empty()?))
    }
}

impl<R: ConsumerSignals> Producer<R> {
    #[inline]
    fn flag(&self) -> Flag {
        Flag {
            at: R::FLAG.expect("a ConsumerSignals ring has a flag"),
        }
    }

    /// Whether the consumer asked for a signal (sDDF
    /// `net_require_signal_*`), ordered after the entries just published.
    #[inline]
    pub fn require_signal(&self) -> bool {
        self.flag().requested(&self.ix.mem)
    }

    /// Marks the consumer as signalled (sDDF `net_cancel_signal_*`).
    #[inline]
    pub fn cancel_signal(&mut self) {
        self.flag().cancel(&self.ix.mem);
    }

    /// The notification phase: if the consumer asked for a signal, clears
    /// the request and returns `true`; the caller then notifies the
    /// consumer's channel. Returns `false` otherwise: no signal is owed.
    #[inline]
    pub fn take_signal_request(&mut self) -> bool {
        self.flag().take_request(&self.ix.mem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::leak;
    use crate::net::{BuffDesc, NetRing};

    fn desc(n: u64) -> BuffDesc {
        BuffDesc {
            io_or_offset: n,
            len: 0,
            oid: 0,
        }
    }

    #[test]
    fn capacities_must_be_powers_of_two_within_the_index_width() {
        let q = leak(NetRing::bytes(1 << 15));
        for bad in [0, 3, 12, 1 << 16, u32::MAX] {
            assert_eq!(
                Producer::<NetRing>::attach(q, bad).unwrap_err(),
                AttachError::Capacity(bad)
            );
        }
        assert!(Producer::<NetRing>::attach(q, 1 << 15).is_ok());
        assert!(matches!(
            Consumer::<NetRing>::attach(leak(128).window(0, NetRing::bytes(4) - 1).unwrap(), 4),
            Err(AttachError::TooSmall { .. })
        ));
        let unaligned = q.window(4, 64).unwrap();
        assert!(matches!(
            Consumer::<NetRing>::attach(unaligned, 2),
            Err(AttachError::Misaligned { .. })
        ));
    }

    #[test]
    fn a_tail_beyond_capacity_is_a_fault_and_nothing_is_read() {
        let q = leak(NetRing::bytes(4));
        let mut c = Consumer::<NetRing>::attach(q, 4).unwrap();
        q.write(NetRing::TAIL, &5u16.to_le_bytes()).unwrap();
        assert_eq!(
            c.dequeue(),
            Err(PeerFault::Index {
                peer: 5,
                own: 0,
                capacity: 4
            })
        );
        // Behind the head is as bad (it reads as 65535 entries).
        q.write(NetRing::TAIL, &0xffffu16.to_le_bytes()).unwrap();
        assert!(c.len().is_err());
        assert_eq!(c.faults().count(), 2);
        // The peer mends its ways: the queue works again.
        q.write(NetRing::TAIL, &1u16.to_le_bytes()).unwrap();
        assert_eq!(c.dequeue().unwrap(), Some(BuffDesc::default()));
        assert_eq!(c.dequeue().unwrap(), None);
    }

    #[test]
    fn a_head_beyond_the_tail_is_a_fault_for_the_producer() {
        let q = leak(NetRing::bytes(4));
        let mut p = Producer::<NetRing>::attach(q, 4).unwrap();
        p.enqueue(desc(1)).unwrap();
        q.write(NetRing::HEAD, &0x100u16.to_le_bytes()).unwrap();
        assert!(p.space().is_err());
        // Enqueues use the last good head (0) while it leaves room...
        for n in 2..5 {
            p.enqueue(desc(n)).unwrap();
        }
        // ...then read the head again, and refuse.
        assert!(matches!(p.enqueue(desc(5)), Err(QueueError::Peer(_))));
        assert_eq!(p.faults().count(), 2);
        q.write(NetRing::HEAD, &1u16.to_le_bytes()).unwrap();
        assert_eq!(p.space().unwrap(), 1, "4 enqueued, 1 consumed");
    }

    #[test]
    fn a_peer_rewriting_our_own_index_changes_nothing_here() {
        let q = leak(NetRing::bytes(4));
        let mut p = Producer::<NetRing>::attach(q, 4).unwrap();
        let mut c = Consumer::<NetRing>::attach(q, 4).unwrap();
        p.enqueue(desc(7)).unwrap();
        // The "consumer" scribbles over the tail: the producer neither
        // reads it back nor loses its place.
        q.write(NetRing::TAIL, &0x1234u16.to_le_bytes()).unwrap();
        p.enqueue(desc(8)).unwrap();
        assert_eq!(c.dequeue().unwrap(), Some(desc(7)));
        assert_eq!(c.dequeue().unwrap(), Some(desc(8)));
        assert_eq!(c.dequeue().unwrap(), None);
    }

    #[test]
    fn indices_wrap_at_the_index_width() {
        // Start near the 16-bit wrap, as a long-running queue would be.
        let q = leak(NetRing::bytes(8));
        q.write(NetRing::TAIL, &0xfffcu16.to_le_bytes()).unwrap();
        q.write(NetRing::HEAD, &0xfffcu16.to_le_bytes()).unwrap();
        let mut p = Producer::<NetRing>::attach(q, 8).unwrap();
        let mut c = Consumer::<NetRing>::attach(q, 8).unwrap();
        for n in 0..8 {
            p.enqueue(desc(n)).unwrap();
        }
        assert_eq!(p.enqueue(desc(9)), Err(QueueError::Full));
        assert_eq!(c.len().unwrap(), 8);
        let mut got = std::vec::Vec::new();
        assert_eq!(c.drain(u32::MAX, |d| got.push(d.io_or_offset)).unwrap(), 8);
        assert_eq!(got, (0..8).collect::<std::vec::Vec<_>>());
        let mut tail = [0u8; 2];
        q.read(NetRing::TAIL, &mut tail).unwrap();
        assert_eq!(u16::from_le_bytes(tail), 4, "wrapped past 0xffff");
    }

    #[test]
    fn staged_entries_are_published_by_commit_only() {
        let q = leak(NetRing::bytes(4));
        let mut p = Producer::<NetRing>::attach(q, 4).unwrap();
        let mut c = Consumer::<NetRing>::attach(q, 4).unwrap();
        p.stage(desc(1)).unwrap();
        p.stage(desc(2)).unwrap();
        assert_eq!((p.staged(), c.len().unwrap()), (2, 0));
        p.unstage();
        p.stage(desc(3)).unwrap();
        p.commit();
        assert_eq!(c.take().unwrap(), Some(desc(3)));
        assert_eq!(p.space().unwrap(), 3, "taken, not yet committed");
        c.commit();
        assert_eq!(p.space().unwrap(), 4);
        assert_eq!(p.enqueue_batch((10..20).map(desc)).unwrap(), 4);
    }
}
