//! # septa-kv-store: a key-value store that survives a power cut
//!
//! The engine of the key-value cell (`protection-domains/kv`): keys of up
//! to [`MAX_KEY`] bytes, values of up to [`MAX_VALUE`], on a block device
//! ([`Disk`]: 4 KiB blocks, reads, writes, and a flush that makes
//! completed writes durable). `put` and `delete` return only once their
//! record is durable; `open` recovers whatever the disk holds.
//!
//! ## Crash consistency, by design
//!
//! The store is a **log**: every change is a new record appended after the
//! last, never an overwrite in place. A record is written, then flushed,
//! and only then acknowledged; the next is written only after that flush.
//! So at any instant at most one record is not yet durable, and a power
//! cut can only tear that one. Every record carries a CRC-32 over its
//! header and over its payload, a sequence number one above its
//! predecessor's, and the block it was written at; recovery follows the
//! chain from the log's head and stops at the first record that is not
//! the next one, whole and checked. Hence, after a cut at any moment:
//!
//! - every acknowledged put and delete is found (it was durable, and so
//!   was every record before it);
//! - an unacknowledged one is found whole or not at all (a torn record
//!   fails its checksum, and nothing after it is read);
//! - a record from an earlier lap of the log, another store or a client's
//!   value bytes is never taken for the next record (sequence number,
//!   store id, position and the block tags below rule each out).
//!
//! Compaction (cleaning) never breaks this: it copies live records from
//! the head to the tail (each copy a record like any other, written and
//! flushed), and only then moves the head, by rewriting the superblock.
//! Space the head leaves behind is reused only after that superblock is
//! durable.
//!
//! Recovery reports every checksum failure it meets (a torn header or
//! record at the end of the log is the normal trace of a cut), and a log
//! that ends at a block that is neither blank nor part of an earlier
//! record (a record's first block overwritten: no checksum can fail on a
//! header whose tag is gone, but a cut never leaves such a block where the
//! next record goes). If intact
//! records follow the damaged one, the damage is not a cut's (a cut leaves
//! nothing after): the store reports those records as lost and recovers to
//! the last consistent state before the damage. A disk whose superblocks
//! are both unusable, and not blank, is **refused** ([`OpenError::Foreign`]):
//! the store writes nothing to it.
//!
//! ## On-disk format (all integers little-endian, blocks of 4 KiB)
//!
//! ```text
//! block 0, 1: superblock copies (written alternately; the valid one with
//!             the higher sequence wins; both all zero = a blank disk)
//!   0  "SEPTA-KV"      8  version (1)    12 block size (4096)
//!   16 superblock seq  24 store id       32 mount count
//!   40 log blocks      48 head (log block of the oldest record)
//!   56 head seq (the sequence number of the record at the head)
//!   64 CRC-32 of bytes 0..64
//! block 2..: the log, a circular sequence of records from the head
//!
//! every log block starts with an 8-byte tag: (seq << 8) | 0xa5 for a
//! record's first block, | 0x5a for each later one. Payload bytes never
//! sit in a tag, so a value can never pass for a record's first block.
//!
//! record header (after the tag of its first block, 48 bytes)
//!   0  "SKVR"   4 version (1)   5 kind (1 put, 2 delete, 3 pad)
//!   6  key length (u16)          8 value length (u32)
//!   12 blocks (u32)              16 sequence number
//!   24 mount count (non-decreasing along the log)
//!   32 store id                  40 CRC-32 of the payload (key, value)
//!   44 CRC-32 of the tag, header bytes 0..44 and the record's log block
//! payload: the key, then the value, in the rest of the first block and
//! the blocks after it (after their tags); zero padding to a whole block.
//! ```
//!
//! A pad fills the log's end when a record would not fit before it; the
//! next record starts at log block 0. The mount count rises at every open
//! (the superblock is rewritten first): a record left over from before a
//! recovery cut the log short carries an older count than what now
//! precedes it, and so ends the chain. The store id is made when a blank
//! disk is formatted, from the caller's seed and what the disk held, so
//! that records of an earlier store on the same blocks are not this
//! store's.
//!
//! The index (key → the record holding its value) lives in memory
//! ([`MAX_KEYS`] keys), rebuilt by recovery; values are read from the disk,
//! and their checksums checked again, on every `get`.
//!
//! ## Why not a crate
//!
//! The well-kept embedded stores (`ekv`, `sequential-storage`) are for NOR
//! flash: their crash safety rests on erase-before-write pages whose bits
//! only fall from 1 to 0, which a torn 4 KiB write to a disk does not
//! obey (any mix of old and new 512-byte sectors may survive); they are
//! async, sized at compile time by environment variables, and not among
//! the crates Septa builds into PDs. This engine is small enough to test
//! against every cut (see the tests).
//!
//! Owns: the on-disk format and the index. Must not: do I/O other than
//! through [`Disk`], allocate, or use `unsafe`.
#![no_std]
#![forbid(unsafe_code)]

use core::fmt;

pub mod format;

use format::{
    blocks_for, decode, encode, payload_sound, read_payload, value_pieces, HeaderError, Kind,
    Super, SuperError, BLOCK, SUPER_BLOCKS,
};
pub use format::{MAX_KEY, MAX_RECORD_BLOCKS, MAX_VALUE};

/// Keys the index holds.
pub const MAX_KEYS: usize = 1024;
/// Bytes of the store's record buffer: one largest record.
pub const RECORD_BUF: usize = MAX_RECORD_BLOCKS as usize * BLOCK;
/// Log blocks kept free beyond the live data, so that compaction can
/// always copy the head's record (and pad the log's end) to make room.
pub const RESERVE: u64 = 2 * MAX_RECORD_BLOCKS;
/// The smallest disk the store takes.
pub const MIN_BLOCKS: u64 = SUPER_BLOCKS + 4 * MAX_RECORD_BLOCKS;

/// A block device of 4 KiB blocks.
pub trait Disk {
    type Error: fmt::Display;
    /// Its size in blocks.
    fn blocks(&self) -> u64;
    /// Reads `buf.len() / 4096` blocks from `block`.
    fn read(&mut self, block: u64, buf: &mut [u8]) -> Result<(), Self::Error>;
    /// Writes `buf.len() / 4096` blocks at `block`; returns once the disk
    /// has them (not yet durably).
    fn write(&mut self, block: u64, buf: &[u8]) -> Result<(), Self::Error>;
    /// Returns once every write that returned before it is durable.
    fn flush(&mut self) -> Result<(), Self::Error>;
}

#[derive(Clone, Copy)]
struct Entry {
    key: [u8; MAX_KEY],
    key_len: u8,
    /// The log block of the record holding the value.
    pos: u64,
    blocks: u64,
    seq: u64,
    value_len: u32,
}

const EMPTY: Entry = Entry {
    key: [0; MAX_KEY],
    key_len: 0,
    pos: 0,
    blocks: 0,
    seq: 0,
    value_len: 0,
};

impl Entry {
    fn key(&self) -> &[u8] {
        &self.key[..self.key_len as usize]
    }
}

/// Where the log is.
#[derive(Clone, Copy, Debug, Default)]
struct Meta {
    store: u64,
    mount: u64,
    super_seq: u64,
    log_blocks: u64,
    head: u64,
    head_seq: u64,
    tail: u64,
    next_seq: u64,
    /// Log blocks from head to tail.
    used: u64,
    /// Blocks of the records the index points at.
    live: u64,
    /// Blocks the head has passed since the superblock last recorded it:
    /// not free until it does.
    pending: u64,
}

/// The store's memory: the index and a record buffer (about 170 KiB, so a
/// PD keeps it in a static, not on its stack).
pub struct State {
    entries: [Entry; MAX_KEYS],
    len: usize,
    buf: [u8; RECORD_BUF],
    meta: Meta,
}

impl Default for State {
    fn default() -> Self {
        Self::new()
    }
}

impl State {
    pub const fn new() -> State {
        State {
            entries: [EMPTY; MAX_KEYS],
            len: 0,
            buf: [0; RECORD_BUF],
            meta: Meta {
                store: 0,
                mount: 0,
                super_seq: 0,
                log_blocks: 0,
                head: 0,
                head_seq: 0,
                tail: 0,
                next_seq: 0,
                used: 0,
                live: 0,
                pending: 0,
            },
        }
    }

    fn find(&self, key: &[u8]) -> Result<usize, usize> {
        self.entries[..self.len].binary_search_by(|e| e.key().cmp(key))
    }
}

/// How the log ended when it was recovered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// At a block that is no next record: an older one, zeros, a pad's
    /// tail. The ordinary end.
    Clean,
    /// A record header whose checksum fails: torn (or damaged).
    TornHeader { block: u64 },
    /// A whole header whose payload or block tags fail their checks.
    TornRecord { block: u64, seq: u64 },
    /// A block that is neither the next record, nor blank, nor part of an
    /// earlier one (a header whose tag was destroyed, a checksummed header
    /// that makes no sense, foreign data): the record that was there may
    /// be lost, and it is reported as a checksum failure would be.
    Unrecognised { block: u64 },
}

/// What recovery found (log it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// The disk was blank and has been formatted.
    pub formatted: bool,
    /// A superblock copy that was neither usable nor blank.
    pub super_damaged: Option<(usize, SuperError)>,
    /// Records read, keys found.
    pub records: u64,
    pub keys: usize,
    /// The log's sequence numbers: the head's, and the next to write.
    pub head_seq: u64,
    pub next_seq: u64,
    pub end: End,
    /// Intact records after a damaged one: data lost to damage, not to a
    /// cut (zero after any cut).
    pub lost: u64,
    /// This open's mount count.
    pub mount: u64,
}

impl Recovery {
    /// Whether recovery met a checksum failure (to be reported).
    pub fn checksum_failures(&self) -> u32 {
        u32::from(!matches!(self.end, End::Clean))
            + u32::from(matches!(
                self.super_damaged,
                Some((_, SuperError::Checksum))
            ))
    }
}

/// Why a disk was not opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenError<E> {
    Disk(E),
    /// Smaller than [`MIN_BLOCKS`].
    TooSmall {
        blocks: u64,
    },
    /// Neither superblock is usable and the disk is not blank: another
    /// format, or a store damaged past recovery. Nothing was written.
    Foreign {
        first: SuperError,
        second: SuperError,
    },
    /// A store made for a disk of another size.
    Geometry {
        made_for: u64,
        have: u64,
    },
    /// The store holds more keys than the index: not this store's doing.
    TooManyKeys,
}

impl<E: fmt::Display> fmt::Display for OpenError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Disk(e) => write!(f, "the disk failed: {e}"),
            OpenError::TooSmall { blocks } => {
                write!(f, "{blocks} blocks is too small a disk (at least {MIN_BLOCKS})")
            }
            OpenError::Foreign { first, second } => write!(
                f,
                "no usable superblock (copy 0: {first:?}, copy 1: {second:?}): a foreign or ruined disk"
            ),
            OpenError::Geometry { made_for, have } => write!(
                f,
                "the store was made for a log of {made_for} blocks, the disk gives {have}"
            ),
            OpenError::TooManyKeys => write!(f, "the log holds more than {MAX_KEYS} keys"),
        }
    }
}

/// Why an operation failed. Nothing was acknowledged; the store stays
/// usable (a disk error may have left a record that was written but not
/// flushed: the next record takes its place).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error<E> {
    Disk(E),
    /// An empty key, or one longer than [`MAX_KEY`].
    Key,
    /// A value longer than [`MAX_VALUE`].
    Value,
    NotFound,
    /// No room in the log for the live data and this record.
    Full,
    /// The index holds [`MAX_KEYS`] keys.
    TooManyKeys,
    /// The value's record failed its checks when read back: damage since
    /// it was written. Reported, never returned as data.
    Corrupt {
        block: u64,
        seq: u64,
    },
}

impl<E: fmt::Display> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Disk(e) => write!(f, "the disk failed: {e}"),
            Error::Key => write!(f, "a key must be 1..={MAX_KEY} bytes"),
            Error::Value => write!(f, "a value must be at most {MAX_VALUE} bytes"),
            Error::NotFound => f.write_str("no such key"),
            Error::Full => f.write_str("the store is full"),
            Error::TooManyKeys => write!(f, "the store holds {MAX_KEYS} keys"),
            Error::Corrupt { block, seq } => write!(
                f,
                "the record at log block {block} (seq {seq}) fails its checksum"
            ),
        }
    }
}

/// Counts of the store's space, for a status call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    pub keys: usize,
    pub log_blocks: u64,
    pub used_blocks: u64,
    pub live_blocks: u64,
    /// This open's mount count: it rises at every open, even one cut short
    /// by a power cut, so (mount, a counter) names a write uniquely.
    pub mount: u64,
    /// The log blocks of the oldest record and of the next one to write:
    /// the log is the blocks from one to the other, circularly.
    pub head: u64,
    pub tail: u64,
}

/// An open store.
pub struct Store<'s, D: Disk> {
    s: &'s mut State,
    disk: D,
}

/// A 64-bit mix (splitmix64's finaliser).
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl<'s, D: Disk> Store<'s, D> {
    /// Opens the store on `disk`, recovering what it holds, or formatting
    /// it if it is blank (`seed` goes into the new store's id). Writes the
    /// superblock with a new mount count before returning.
    pub fn open(
        state: &'s mut State,
        disk: D,
        seed: u64,
    ) -> Result<(Self, Recovery), OpenError<D::Error>> {
        let blocks = disk.blocks();
        if blocks < MIN_BLOCKS {
            return Err(OpenError::TooSmall { blocks });
        }
        let mut st = Store { s: state, disk };
        st.s.len = 0;
        let log_blocks = blocks - SUPER_BLOCKS;
        let supers = {
            let buf = &mut st.s.buf[..2 * BLOCK];
            st.disk.read(0, buf).map_err(OpenError::Disk)?;
            [Super::decode(&buf[..BLOCK]), Super::decode(&buf[BLOCK..])]
        };
        let mut rec = Recovery {
            formatted: false,
            super_damaged: None,
            records: 0,
            keys: 0,
            head_seq: 0,
            next_seq: 0,
            end: End::Clean,
            lost: 0,
            mount: 0,
        };
        let sb = match supers {
            [Err(SuperError::Blank), Err(SuperError::Blank)] => {
                rec.formatted = true;
                st.format(log_blocks, seed)?
            }
            [Ok(a), Ok(b)] => {
                if a.seq >= b.seq {
                    a
                } else {
                    b
                }
            }
            [Ok(a), Err(e)] | [Err(e), Ok(a)] => {
                if e != SuperError::Blank {
                    let which = usize::from(supers[0].is_ok());
                    rec.super_damaged = Some((which, e));
                }
                a
            }
            [Err(first), Err(second)] => return Err(OpenError::Foreign { first, second }),
        };
        if sb.log_blocks != log_blocks || sb.head >= log_blocks {
            return Err(OpenError::Geometry {
                made_for: sb.log_blocks,
                have: log_blocks,
            });
        }
        st.s.meta = Meta {
            store: sb.store,
            mount: sb.mount,
            super_seq: sb.seq,
            log_blocks,
            head: sb.head,
            head_seq: sb.head_seq,
            tail: sb.head,
            next_seq: sb.head_seq,
            used: 0,
            live: 0,
            pending: 0,
        };
        st.recover(&mut rec)?;
        // From here on this open's records carry a new mount count.
        st.s.meta.mount += 1;
        st.commit().map_err(|e| match e {
            Error::Disk(e) => OpenError::Disk(e),
            _ => unreachable!("commit fails only on the disk"),
        })?;
        rec.mount = st.s.meta.mount;
        rec.keys = st.s.len;
        rec.head_seq = st.s.meta.head_seq;
        rec.next_seq = st.s.meta.next_seq;
        Ok((st, rec))
    }

    /// Writes a new store on a blank disk: the superblocks, and a zero
    /// first log block (no earlier chain can start at the head).
    fn format(&mut self, log_blocks: u64, seed: u64) -> Result<Super, OpenError<D::Error>> {
        // The id: the seed, mixed with what the log's first blocks held.
        let n = 16.min(log_blocks) as usize;
        let buf = &mut self.s.buf[..n * BLOCK];
        self.disk.read(SUPER_BLOCKS, buf).map_err(OpenError::Disk)?;
        let id = mix(seed ^ (u64::from(septa_crc32::crc32(buf)) << 17) ^ 0x5e97_a4b5);
        buf[..BLOCK].fill(0);
        self.disk
            .write(SUPER_BLOCKS, &buf[..BLOCK])
            .map_err(OpenError::Disk)?;
        let sb = Super {
            seq: 1,
            store: id,
            mount: 0,
            log_blocks,
            head: 0,
            head_seq: 1,
        };
        let buf = &mut self.s.buf[..2 * BLOCK];
        Super { seq: 0, ..sb }.encode(&mut buf[..BLOCK]);
        sb.encode(&mut buf[BLOCK..]);
        self.disk.write(0, buf).map_err(OpenError::Disk)?;
        self.disk.flush().map_err(OpenError::Disk)?;
        Ok(sb)
    }

    /// Reads `n` log blocks at `pos` into the record buffer.
    fn read_log(&mut self, pos: u64, n: u64) -> Result<(), D::Error> {
        let buf = &mut self.s.buf[..n as usize * BLOCK];
        self.disk.read(SUPER_BLOCKS + pos, buf)
    }

    /// Follows the chain from the head; builds the index.
    fn recover(&mut self, rec: &mut Recovery) -> Result<(), OpenError<D::Error>> {
        let m = self.s.meta;
        let (mut pos, mut expect, mut prev_mount) = (m.head, m.head_seq, 0u64);
        // Blocks [cache_at, cache_at + cached) are in the buffer.
        let (mut cache_at, mut cached) = (0u64, 0u64);
        let end = loop {
            if self.s.meta.used >= m.log_blocks {
                break End::Clean;
            }
            if pos < cache_at || pos >= cache_at + cached {
                let n = MAX_RECORD_BLOCKS.min(m.log_blocks - pos);
                self.read_log(pos, n).map_err(OpenError::Disk)?;
                (cache_at, cached) = (pos, n);
            }
            let off = ((pos - cache_at) as usize) * BLOCK;
            let h = match decode(&self.s.buf[off..off + BLOCK], pos) {
                Ok(h) => h,
                Err(HeaderError::Checksum) => break End::TornHeader { block: pos },
                Err(HeaderError::NotHeader)
                    if format::ends_cleanly(&self.s.buf[off..off + BLOCK], expect) =>
                {
                    break End::Clean
                }
                Err(HeaderError::NotHeader) | Err(HeaderError::Invalid) => {
                    break End::Unrecognised { block: pos }
                }
            };
            if h.store != m.store
                || h.seq != expect
                || h.mount < prev_mount
                || pos + h.blocks > m.log_blocks
                || self.s.meta.used + h.blocks > m.log_blocks
            {
                break End::Clean;
            }
            if pos + h.blocks > cache_at + cached {
                let n = MAX_RECORD_BLOCKS.min(m.log_blocks - pos);
                self.read_log(pos, n).map_err(OpenError::Disk)?;
                (cache_at, cached) = (pos, n);
            }
            let off = ((pos - cache_at) as usize) * BLOCK;
            let len = h.blocks.min(MAX_RECORD_BLOCKS) as usize * BLOCK;
            if !payload_sound(&h, &self.s.buf[off..off + len]) {
                break End::TornRecord {
                    block: pos,
                    seq: h.seq,
                };
            }
            match h.kind {
                Kind::Put | Kind::Delete => {
                    let mut key = [0u8; MAX_KEY];
                    read_payload(&self.s.buf[off..off + len], 0, &mut key[..h.key_len]);
                    let key = &key[..h.key_len];
                    if h.kind == Kind::Put {
                        let e = Entry {
                            key: [0; MAX_KEY],
                            key_len: 0,
                            pos,
                            blocks: h.blocks,
                            seq: h.seq,
                            value_len: h.value_len as u32,
                        };
                        if !self.upsert(key, e) {
                            return Err(OpenError::TooManyKeys);
                        }
                    } else {
                        self.remove(key);
                    }
                }
                Kind::Pad => {}
            }
            rec.records += 1;
            self.s.meta.used += h.blocks;
            pos = (pos + h.blocks) % m.log_blocks;
            expect += 1;
            prev_mount = h.mount;
        };
        self.s.meta.tail = pos;
        self.s.meta.next_seq = expect;
        // A superblock copy lost to damage may be older than the records:
        // the next mount count is above both.
        self.s.meta.mount = self.s.meta.mount.max(prev_mount);
        rec.end = end;
        if end != End::Clean {
            rec.lost = self.stranded(expect).map_err(OpenError::Disk)?;
        }
        Ok(())
    }

    /// Intact records with sequence numbers above `seq` anywhere in the
    /// log: they can only be there if the damage at `seq` is not a cut's.
    fn stranded(&mut self, seq: u64) -> Result<u64, D::Error> {
        let m = self.s.meta;
        let mut found = 0;
        let mut pos = 0;
        while pos < m.log_blocks {
            let n = MAX_RECORD_BLOCKS.min(m.log_blocks - pos);
            self.read_log(pos, n)?;
            for i in 0..n {
                let off = i as usize * BLOCK;
                if let Ok(h) = decode(&self.s.buf[off..off + BLOCK], pos + i) {
                    if h.store == m.store && h.seq > seq {
                        found += 1;
                    }
                }
            }
            pos += n;
        }
        Ok(found)
    }

    /// Points `key` at `e`, keeping the live count; `false` when the
    /// index is full.
    fn upsert(&mut self, key: &[u8], mut e: Entry) -> bool {
        e.key[..key.len()].copy_from_slice(key);
        e.key_len = key.len() as u8;
        match self.s.find(key) {
            Ok(i) => {
                self.s.meta.live = self.s.meta.live - self.s.entries[i].blocks + e.blocks;
                self.s.entries[i] = e;
            }
            Err(i) => {
                if self.s.len == MAX_KEYS {
                    return false;
                }
                self.s.entries.copy_within(i..self.s.len, i + 1);
                self.s.entries[i] = e;
                self.s.len += 1;
                self.s.meta.live += e.blocks;
            }
        }
        true
    }

    fn remove(&mut self, key: &[u8]) {
        if let Ok(i) = self.s.find(key) {
            self.s.meta.live -= self.s.entries[i].blocks;
            self.s.entries.copy_within(i + 1..self.s.len, i);
            self.s.len -= 1;
        }
    }

    /// Records the head in the superblock (the copy not holding the last
    /// one) and flushes it.
    fn commit(&mut self) -> Result<(), Error<D::Error>> {
        let m = &mut self.s.meta;
        m.super_seq += 1;
        let sb = Super {
            seq: m.super_seq,
            store: m.store,
            mount: m.mount,
            log_blocks: m.log_blocks,
            head: m.head,
            head_seq: m.head_seq,
        };
        let slot = m.super_seq % 2;
        // Not in the record buffer: compaction commits while it holds the
        // record it is about to copy.
        let mut block = [0u8; BLOCK];
        sb.encode(&mut block);
        self.disk.write(slot, &block).map_err(Error::Disk)?;
        self.disk.flush().map_err(Error::Disk)?;
        self.s.meta.pending = 0;
        Ok(())
    }

    /// Blocks a record of `n` blocks takes at the tail, its pad included.
    fn need(&self, n: u64) -> u64 {
        let m = &self.s.meta;
        if m.tail + n > m.log_blocks {
            n + (m.log_blocks - m.tail)
        } else {
            n
        }
    }

    /// Blocks free now: not in the log, nor passed by the head since the
    /// superblock last recorded it.
    fn free(&self) -> u64 {
        let m = &self.s.meta;
        m.log_blocks - m.used - m.pending
    }

    /// Appends a record durably at the tail: `prepare` writes it into the
    /// buffer for a (sequence number, log block) and returns its blocks. If
    /// it does not fit before the log's end, a pad fills the end first (and
    /// is flushed: one record at a time is ever not durable) and the record
    /// is prepared again for log block 0. Returns (its log block, its
    /// blocks, its seq).
    fn append(
        &mut self,
        mut prepare: impl FnMut(&mut [u8], u64, u64) -> u64,
    ) -> Result<(u64, u64, u64), Error<D::Error>> {
        loop {
            let m = self.s.meta;
            let n = prepare(&mut self.s.buf, m.next_seq, m.tail);
            if m.tail + n > m.log_blocks {
                let pad = m.log_blocks - m.tail;
                let mut block = [0u8; BLOCK];
                encode(
                    &mut block,
                    Kind::Pad,
                    m.next_seq,
                    m.mount,
                    m.store,
                    m.tail,
                    &[],
                    0,
                    |_, _| {},
                    pad,
                );
                self.disk
                    .write(SUPER_BLOCKS + m.tail, &block)
                    .map_err(Error::Disk)?;
                self.disk.flush().map_err(Error::Disk)?;
                let m = &mut self.s.meta;
                m.used += pad;
                m.tail = 0;
                m.next_seq += 1;
                continue;
            }
            self.disk
                .write(SUPER_BLOCKS + m.tail, &self.s.buf[..n as usize * BLOCK])
                .map_err(Error::Disk)?;
            self.disk.flush().map_err(Error::Disk)?;
            let mm = &mut self.s.meta;
            mm.used += n;
            mm.tail = (m.tail + n) % mm.log_blocks;
            mm.next_seq += 1;
            return Ok((m.tail, n, m.next_seq));
        }
    }

    /// Makes room for a record of `n` blocks: moves the head past dead
    /// records, copying live ones to the tail, and records the new head.
    fn make_room(&mut self, n: u64) -> Result<(), Error<D::Error>> {
        // Bounded: one lap of the log moves every live record once.
        let mut budget = 2 * self.s.meta.log_blocks + MAX_RECORD_BLOCKS;
        while self.free() < self.need(n) {
            let m = self.s.meta;
            if m.log_blocks - m.used >= self.need(n) {
                // Enough once the superblock says so.
                self.commit()?;
                continue;
            }
            if m.used == 0 || budget == 0 {
                return Err(Error::Full);
            }
            self.read_log(m.head, MAX_RECORD_BLOCKS.min(m.log_blocks - m.head))
                .map_err(Error::Disk)?;
            let corrupt = || Error::Corrupt {
                block: m.head,
                seq: m.head_seq,
            };
            let h = decode(&self.s.buf[..BLOCK], m.head).map_err(|_| corrupt())?;
            let mut key = [0u8; MAX_KEY];
            let live = h.kind == Kind::Put && {
                read_payload(&self.s.buf, 0, &mut key[..h.key_len]);
                self.s
                    .find(&key[..h.key_len])
                    .is_ok_and(|i| self.s.entries[i].seq == h.seq)
            };
            if live {
                if !payload_sound(&h, &self.s.buf[..h.blocks as usize * BLOCK]) {
                    return Err(corrupt());
                }
                self.copy_head(&key[..h.key_len], h)?;
            }
            let m = &mut self.s.meta;
            m.head = (m.head + h.blocks) % m.log_blocks;
            m.head_seq = h.seq + 1;
            m.used -= h.blocks;
            m.pending += h.blocks;
            budget = budget.saturating_sub(h.blocks);
        }
        if self.s.meta.pending > 0 {
            self.commit()?;
        }
        Ok(())
    }

    /// Appends a copy of the live record at the head (in the buffer, header
    /// `h`) under a new sequence number, and points its key at the copy.
    fn copy_head(&mut self, key: &[u8], h: format::Header) -> Result<(), Error<D::Error>> {
        // The copy must fit where the superblock's head allows.
        while self.free() < self.need(h.blocks) {
            if self.s.meta.pending == 0 {
                return Err(Error::Full);
            }
            self.commit()?;
        }
        let mount = self.s.meta.mount;
        let (at, blocks, seq) = self.append(|buf, seq, pos| {
            format::rebase(buf, &h, seq, mount, pos);
            h.blocks
        })?;
        let e = Entry {
            pos: at,
            blocks,
            seq,
            value_len: h.value_len as u32,
            ..EMPTY
        };
        self.upsert(key, e);
        Ok(())
    }

    /// Stores `value_len` bytes under `key`, which `value` writes piece by
    /// piece (offset, piece) into the record. Returns once durable.
    pub fn put_with(
        &mut self,
        key: &[u8],
        value_len: usize,
        value: impl FnMut(usize, &mut [u8]),
    ) -> Result<(), Error<D::Error>> {
        if key.is_empty() || key.len() > MAX_KEY {
            return Err(Error::Key);
        }
        if value_len > MAX_VALUE {
            return Err(Error::Value);
        }
        let n = blocks_for(key.len() + value_len);
        let existing = self.s.find(key).ok().map(|i| self.s.entries[i].blocks);
        if existing.is_none() && self.s.len == MAX_KEYS {
            return Err(Error::TooManyKeys);
        }
        let m = self.s.meta;
        if m.live - existing.unwrap_or(0) + n + RESERVE > m.log_blocks {
            return Err(Error::Full);
        }
        self.make_room(n)?;
        let (mount, store) = (m.mount, m.store);
        let mut value = value;
        let (at, blocks, seq) = self.append(|buf, seq, pos| {
            encode(
                buf,
                Kind::Put,
                seq,
                mount,
                store,
                pos,
                key,
                value_len,
                &mut value,
                0,
            )
        })?;
        let e = Entry {
            pos: at,
            blocks,
            seq,
            value_len: value_len as u32,
            ..EMPTY
        };
        self.upsert(key, e);
        Ok(())
    }

    /// Stores `value` under `key`; returns once durable.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), Error<D::Error>> {
        self.put_with(key, value.len(), |at, piece| {
            piece.copy_from_slice(&value[at..at + piece.len()])
        })
    }

    /// Hands the value of `key` to `f` piece by piece (offset, piece), once
    /// its record has passed its checks; returns its length.
    pub fn get_with(
        &mut self,
        key: &[u8],
        f: impl FnMut(usize, &[u8]),
    ) -> Result<usize, Error<D::Error>> {
        let i = self.s.find(key).map_err(|_| Error::NotFound)?;
        let e = self.s.entries[i];
        self.read_log(e.pos, e.blocks).map_err(Error::Disk)?;
        let len = e.blocks as usize * BLOCK;
        let corrupt = || Error::Corrupt {
            block: e.pos,
            seq: e.seq,
        };
        let h = decode(&self.s.buf[..BLOCK], e.pos).map_err(|_| corrupt())?;
        let mut stored = [0u8; MAX_KEY];
        read_payload(&self.s.buf[..len], 0, &mut stored[..h.key_len.min(MAX_KEY)]);
        if h.kind != Kind::Put
            || h.seq != e.seq
            || &stored[..h.key_len.min(MAX_KEY)] != key
            || !payload_sound(&h, &self.s.buf[..len])
        {
            return Err(corrupt());
        }
        value_pieces(&h, &self.s.buf[..len], f);
        Ok(h.value_len)
    }

    /// Copies the value of `key` into `out` (which must hold it); returns
    /// its length.
    pub fn get(&mut self, key: &[u8], out: &mut [u8]) -> Result<usize, Error<D::Error>> {
        let len = self.len_of(key).ok_or(Error::NotFound)?;
        if out.len() < len {
            return Err(Error::Value);
        }
        self.get_with(key, |at, piece| {
            out[at..at + piece.len()].copy_from_slice(piece)
        })
    }

    /// The length of `key`'s value, if it is stored.
    pub fn len_of(&self, key: &[u8]) -> Option<usize> {
        self.s
            .find(key)
            .ok()
            .map(|i| self.s.entries[i].value_len as usize)
    }

    /// Removes `key`; returns once durable.
    pub fn delete(&mut self, key: &[u8]) -> Result<(), Error<D::Error>> {
        if key.is_empty() || key.len() > MAX_KEY {
            return Err(Error::Key);
        }
        if self.s.find(key).is_err() {
            return Err(Error::NotFound);
        }
        self.make_room(1)?;
        let (mount, store) = (self.s.meta.mount, self.s.meta.store);
        self.append(|buf, seq, pos| {
            encode(
                buf,
                Kind::Delete,
                seq,
                mount,
                store,
                pos,
                key,
                0,
                |_, _| {},
                0,
            )
        })?;
        self.remove(key);
        Ok(())
    }

    /// The keys after `after` (all keys if empty), in order, until `f`
    /// returns false.
    pub fn list(&self, after: &[u8], mut f: impl FnMut(&[u8]) -> bool) {
        let from = match self.s.find(after) {
            Ok(i) => i + 1,
            Err(i) => i,
        };
        for e in &self.s.entries[from..self.s.len] {
            if !f(e.key()) {
                break;
            }
        }
    }

    pub fn usage(&self) -> Usage {
        let m = &self.s.meta;
        Usage {
            keys: self.s.len,
            log_blocks: m.log_blocks,
            used_blocks: m.used,
            live_blocks: m.live,
            mount: m.mount,
            head: m.head,
            tail: m.tail,
        }
    }

    /// The disk, to inspect (tests, statistics).
    pub fn disk(&mut self) -> &mut D {
        &mut self.disk
    }
}

#[cfg(test)]
mod tests;
