//! The guest's disk: a virtio-blk device (virtio 1.2, 5.2) on the block
//! virtualiser's queues, the VMM being the client of one partition.
//!
//! Offered: VIRTIO_F_VERSION_1, SIZE_MAX (4 KiB segments), SEG_MAX
//! ([`Blk::seg_max`]: as many as the data region holds, at most
//! [`SEG_MAX`]),
//! BLK_SIZE (4 KiB: the virtualiser's block, so Linux sends only whole,
//! aligned blocks) and FLUSH. Requests: IN, OUT, FLUSH; GET_ID and
//! anything else is answered UNSUPP.
//!
//! Up to [`SLOTS`] requests at the virtualiser at once, each with its own
//! run of 4 KiB blocks of the VMM's data region ([`Space`]). A chain the
//! guest made available is checked (header, data, status byte; sectors and
//! length whole 4 KiB blocks inside the partition; data no larger than the
//! data region); written data is copied from guest RAM into its blocks a
//! segment at a time, and the request goes to the virtualiser; when its
//! response comes, read data is copied back the same way, the status
//! written, the chain given back. A chain that must wait for a slot or
//! for blocks waits, and the ones behind it in the ring with it. A chain
//! that fails its checks is answered IOERR (or given back with nothing
//! written when it has no status byte) and counted. The requests of a
//! guest that reset the device meanwhile are forgotten as they complete
//! (their blocks are the VMM's again only then: the device may still be
//! writing them).

use septa_block_protocol::{Connection, RequestCode, Status, TRANSFER_SIZE};

use super::mem::GuestMem;
use super::mmio::{self, Device, Identity, Transport, F_VERSION_1};
use super::queue::{gather, gather_into, scatter_from, Chain, Queue, QueueError};

/// Virtio device id of a block device.
pub const DEVICE_ID: u32 = 2;
pub const F_SIZE_MAX: u64 = 1 << 1;
pub const F_SEG_MAX: u64 = 1 << 2;
pub const F_BLK_SIZE: u64 = 1 << 6;
pub const F_FLUSH: u64 = 1 << 9;
/// Data segments per request at most (a chain is these, the header and
/// the status: within [`super::queue::MAX_CHAIN`]).
pub const SEG_MAX: u32 = 60;
/// Requests at the virtualiser at once, at most: a request's id at the
/// virtualiser carries its slot in the low [`SLOT_BITS`].
pub const SLOTS: usize = 1 << SLOT_BITS;
const SLOT_BITS: u32 = 3;
/// Bytes of each segment at most: one block.
pub const SIZE_MAX: u32 = TRANSFER_SIZE;
const BLOCK: u64 = TRANSFER_SIZE as u64;
const SECTOR: u64 = 512;

/// Request types (`virtio_blk_outhdr.type`).
pub mod kind {
    pub const IN: u32 = 0;
    pub const OUT: u32 = 1;
    pub const FLUSH: u32 = 4;
    pub const GET_ID: u32 = 8;
}
/// Status bytes.
pub const S_OK: u8 = 0;
pub const S_IOERR: u8 = 1;
pub const S_UNSUPP: u8 = 2;

/// What the guest got wrong, or what failed below.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BlkError {
    #[error("request queue: {0}")]
    Queue(QueueError),
    #[error("a request chain without a header or a status byte")]
    Shape,
    #[error("{len} bytes at sector {sector}: not whole 4 KiB blocks inside the {blocks}-block partition and the VMM's {data}-byte buffer")]
    Range {
        sector: u64,
        len: u64,
        blocks: u64,
        data: u64,
    },
    #[error("the block virtualiser answered {0:?}")]
    Server(Status),
    #[error("the block virtualiser broke the queue protocol")]
    Peer,
}

/// What the device did in one round.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Work {
    pub interrupt: bool,
    pub error: Option<BlkError>,
}

/// Counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub reads: u64,
    pub writes: u64,
    pub flushes: u64,
    pub refused: u64,
    /// Most requests at the virtualiser at once.
    pub most_in_flight: u64,
}

/// The data region as runs of 4 KiB blocks lent to requests in flight
/// (its first 256 blocks: more would not be used at once).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Space {
    lent: [u64; 4],
    blocks: usize,
}

impl Space {
    /// The blocks of a data region of `bytes`.
    pub fn new(bytes: u64) -> Space {
        Space {
            lent: [0; 4],
            blocks: (bytes / BLOCK).min(256) as usize,
        }
    }

    /// Bytes in all.
    pub fn bytes(&self) -> u64 {
        self.blocks as u64 * BLOCK
    }

    fn is_lent(&self, b: usize) -> bool {
        self.lent[b / 64] & (1 << (b % 64)) != 0
    }

    fn mark(&mut self, at: usize, n: usize, lent: bool) {
        for b in at..at + n {
            if lent {
                self.lent[b / 64] |= 1 << (b % 64);
            } else {
                self.lent[b / 64] &= !(1 << (b % 64));
            }
        }
    }

    /// Lends the first run of `n` free blocks (`n` > 0): its first block.
    pub fn take(&mut self, n: usize) -> Option<usize> {
        let mut run = 0;
        for b in 0..self.blocks {
            if self.is_lent(b) {
                run = 0;
                continue;
            }
            run += 1;
            if run == n {
                let at = b + 1 - n;
                self.mark(at, n, true);
                return Some(at);
            }
        }
        None
    }

    /// Takes back the run of `n` blocks from `at`.
    pub fn give(&mut self, at: usize, n: usize) {
        self.mark(at, n, false);
    }

    /// Whether no block is lent.
    pub fn is_free(&self) -> bool {
        self.lent == [0; 4]
    }
}

/// A request at the virtualiser. Its chain is walked again from the head
/// when it completes (the guest may not change a chain the device holds;
/// one that does finds its own buffers elsewhere in its own RAM, checked
/// again), so that the VMM keeps a few words a request, not a chain.
#[derive(Clone, Copy)]
struct InFlight {
    head: u16,
    /// Its id at the virtualiser: a sequence number above the slot's
    /// index.
    id: u32,
    kind: u32,
    len: u64,
    /// Its blocks of the data region.
    at: usize,
    blocks: usize,
    /// The device's life it belongs to ([`Blk::reset`] starts a new one).
    life: u32,
}

/// The guest-physical address of a request's status byte: the last byte
/// of its last segment, which the device writes.
fn status_byte(c: &Chain) -> Option<u64> {
    match c.segments().last() {
        Some(s) if s.write && s.len >= 1 => Some(s.addr + u64::from(s.len) - 1),
        _ => None,
    }
}

/// What became of a chain the device tried to start.
enum Start {
    Sent,
    /// No slot or no blocks free: it waits for a response.
    Waits,
    /// Answered at once (UNSUPP).
    Answered,
}

pub struct Blk {
    pub transport: Transport,
    conn: Option<Connection>,
    slots: [Option<InFlight>; SLOTS],
    /// The head of the chain at the front of the line, taken from the
    /// ring but waiting for a slot or blocks.
    waiting: Option<u16>,
    space: Space,
    life: u32,
    sequence: u32,
    pub stats: Stats,
}

impl Device for Blk {
    type Work = Work;
    const CONFIG_READ_ONLY: &'static str = "the disk's configuration is read-only";

    fn transport(&mut self) -> &mut Transport {
        &mut self.transport
    }

    fn config(&self, c: &mut [u8; mmio::CONFIG_MAX]) {
        c[0..8].copy_from_slice(&(self.blocks() * (BLOCK / SECTOR)).to_le_bytes());
        c[8..12].copy_from_slice(&SIZE_MAX.to_le_bytes());
        c[12..16].copy_from_slice(&self.seg_max().to_le_bytes());
        c[20..24].copy_from_slice(&(BLOCK as u32).to_le_bytes());
    }

    fn bad_queue(e: QueueError) -> Work {
        Work {
            interrupt: true,
            error: Some(BlkError::Queue(e)),
        }
    }

    /// Requests in flight are forgotten as they complete (their chains
    /// belong to the guest's old queue), and a chain waiting for room.
    fn forget(&mut self) {
        self.life = self.life.wrapping_add(1);
        self.waiting = None;
    }

    /// Takes the virtualiser's responses and sends what the guest asks.
    fn poll(&mut self, mem: &GuestMem) -> Work {
        let mut w = Work::default();
        let mut q = self.transport.queues[0];
        if let Err(e) = self.step(mem, &mut q, &mut w) {
            if !matches!(e, QueueError::NotReady) {
                w.error.get_or_insert(BlkError::Queue(e));
                self.transport.needs_reset();
                w.interrupt = true;
            }
        }
        self.transport.queues[0] = q;
        if w.interrupt {
            self.transport.interrupt |= mmio::INT_USED;
        }
        w
    }
}

impl Blk {
    pub fn new(conn: Option<Connection>) -> Self {
        let space = Space::new(conn.as_ref().map_or(0, |c| c.data().len() as u64));
        Blk {
            transport: Transport::new(Identity {
                id: DEVICE_ID,
                features: F_VERSION_1 | F_SIZE_MAX | F_SEG_MAX | F_BLK_SIZE | F_FLUSH,
                queues: 1,
            }),
            conn,
            slots: [None; SLOTS],
            waiting: None,
            space,
            life: 0,
            sequence: 0,
            stats: Stats::default(),
        }
    }

    /// The partition's size in 4 KiB blocks (0 until the virtualiser has
    /// read the partition table).
    pub fn blocks(&self) -> u64 {
        self.conn
            .as_ref()
            .and_then(|c| c.info())
            .map_or(0, |i| i.capacity)
    }

    /// Segments a request may have (SEG_MAX offered): as many blocks as
    /// the data region holds, up to [`SEG_MAX`]. Fewer, larger requests
    /// cost less than more in flight at once: each request is a trap for
    /// the guest's notification, a trip through the virtualiser and the
    /// driver, and a virtual interrupt (measured in `docs/performance.md`,
    /// issue 16), so the guest's largest request takes most of the region,
    /// and small ones go beside it.
    pub fn seg_max(&self) -> u32 {
        (self.space.blocks as u32).clamp(1, SEG_MAX)
    }

    /// Requests at the virtualiser now.
    pub fn in_flight(&self) -> usize {
        self.slots.iter().flatten().count()
    }

    /// The guest's machine is reset: as when the guest resets the device
    /// ([`Device::forget`]).
    pub fn reset(&mut self) {
        self.transport.reset();
        self.forget();
    }

    fn step(&mut self, mem: &GuestMem, q: &mut Queue, w: &mut Work) -> Result<(), QueueError> {
        if self.conn.is_none() {
            return Ok(());
        }
        self.complete(mem, q, w)?;
        if !self.transport.running() {
            return Ok(());
        }
        let mut sent = false;
        let r = self.start_all(mem, q, w, &mut sent);
        if sent {
            if let Some(conn) = self.conn.as_mut() {
                conn.send();
            }
        }
        r
    }

    /// Takes every response there is: copies read data to the guest,
    /// writes the status, gives the chain back.
    fn complete(&mut self, mem: &GuestMem, q: &mut Queue, w: &mut Work) -> Result<(), QueueError> {
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Ok(());
            };
            let r = match conn.response() {
                Ok(Some(r)) => r,
                Ok(None) => return Ok(()),
                Err(_) => {
                    w.error.get_or_insert(BlkError::Peer);
                    return Ok(());
                }
            };
            let slot = r.id as usize % SLOTS;
            let Some(f) = self.slots[slot].filter(|f| f.id == r.id) else {
                w.error.get_or_insert(BlkError::Peer);
                continue;
            };
            self.slots[slot] = None;
            let answer = f.life == self.life && self.transport.running() && q.ready;
            if !answer {
                self.space.give(f.at, f.blocks);
                continue;
            }
            if r.status != Status::Ok {
                w.error.get_or_insert(BlkError::Server(r.status));
            }
            let chain = q.walk(mem, f.head);
            let mut st = if r.status == Status::Ok {
                S_OK
            } else {
                S_IOERR
            };
            let mut written = 0u32;
            if let (Ok(c), S_OK, kind::IN) = (&chain, st, f.kind) {
                let len = f.len as usize;
                let from = f.at * BLOCK as usize;
                match scatter_from(mem, c, 0, conn.data(), from, len) {
                    Ok(n) if n == len => written = len as u32,
                    _ => st = S_IOERR,
                }
            }
            // The blocks are free once their data is where it goes.
            self.space.give(f.at, f.blocks);
            let status = chain.as_ref().ok().and_then(status_byte);
            let used = match status {
                Some(at) => {
                    mem.write(at, &[st]).map_err(QueueError::Buffer)?;
                    written + 1
                }
                None => {
                    // The guest changed the chain under the device.
                    w.error.get_or_insert(BlkError::Shape);
                    0
                }
            };
            q.push_used(mem, f.head, used)?;
            w.interrupt = true;
        }
    }

    /// Starts what the guest made available, the waiting chain first,
    /// until the ring is empty or a chain must wait.
    fn start_all(
        &mut self,
        mem: &GuestMem,
        q: &mut Queue,
        w: &mut Work,
        sent: &mut bool,
    ) -> Result<(), QueueError> {
        loop {
            let chain = match self.waiting.take() {
                Some(head) => match q.walk(mem, head) {
                    Ok(c) => c,
                    Err(e) => {
                        self.stats.refused += 1;
                        w.error.get_or_insert(BlkError::Queue(e));
                        q.push_used(mem, head, 0)?;
                        w.interrupt = true;
                        continue;
                    }
                },
                None => {
                    let stats = &mut self.stats;
                    let refused = |e| {
                        stats.refused += 1;
                        w.error.get_or_insert(BlkError::Queue(e));
                        w.interrupt = true;
                    };
                    match q.pop_valid(mem, refused)? {
                        Some(c) => c,
                        None => return Ok(()),
                    }
                }
            };
            match self.start(mem, &chain) {
                Ok(Start::Sent) => *sent = true,
                Ok(Start::Waits) => {
                    self.waiting = Some(chain.head);
                    return Ok(());
                }
                Ok(Start::Answered) => {
                    q.push_used(mem, chain.head, 1)?;
                    w.interrupt = true;
                }
                Err((e, status)) => {
                    self.stats.refused += 1;
                    w.error.get_or_insert(e);
                    let used = match status {
                        Some(at) => mem.write(at, &[S_IOERR]).map_or(0, |()| 1),
                        None => 0,
                    };
                    q.push_used(mem, chain.head, used)?;
                    w.interrupt = true;
                }
            }
        }
    }

    /// Checks a chain and stages its request, or says it must wait (no
    /// slot or blocks free), or answers it at once (UNSUPP); `Err` refused
    /// (with where its status byte is, if it has one).
    fn start(&mut self, mem: &GuestMem, c: &Chain) -> Result<Start, (BlkError, Option<u64>)> {
        let Some(status) = status_byte(c) else {
            return Err((BlkError::Shape, None));
        };
        let mut hdr = [0u8; 16];
        if gather(mem, c, 0, &mut hdr) != Ok(16) {
            return Err((BlkError::Shape, Some(status)));
        }
        let kind = u32::from_le_bytes(hdr[0..4].try_into().unwrap_or_default());
        let sector = u64::from_le_bytes(hdr[8..16].try_into().unwrap_or_default());
        // Data: for OUT the readable bytes after the header; for IN the
        // writable bytes before the status byte.
        let len = match kind {
            kind::OUT => c.bytes(false) - 16,
            kind::IN => c.bytes(true) - 1,
            _ => 0,
        };
        let code = match kind {
            kind::IN => RequestCode::Read,
            kind::OUT => RequestCode::Write,
            kind::FLUSH => RequestCode::Flush,
            _ => {
                mem.write(status, &[S_UNSUPP])
                    .map_err(|e| (BlkError::Queue(QueueError::Buffer(e)), None))?;
                return Ok(Start::Answered);
            }
        };
        let blocks = self.blocks();
        let data = self.space.bytes();
        let range = BlkError::Range {
            sector,
            len,
            blocks,
            data,
        };
        let (block, count) = if code == RequestCode::Flush {
            (0, 0)
        } else {
            let ok = len > 0
                && len % BLOCK == 0
                && len <= data
                && sector % (BLOCK / SECTOR) == 0
                && (sector / (BLOCK / SECTOR))
                    .checked_add(len / BLOCK)
                    .is_some_and(|end| end <= blocks);
            if !ok {
                return Err((range, Some(status)));
            }
            (sector / (BLOCK / SECTOR), (len / BLOCK) as u16)
        };
        let Some(conn) = self.conn.as_mut() else {
            return Err((BlkError::Peer, Some(status)));
        };
        let room = SLOTS.min(conn.capacity() as usize);
        let Some(slot) = self.slots[..room].iter().position(Option::is_none) else {
            return Ok(Start::Waits);
        };
        let n = usize::from(count);
        let at = if n == 0 {
            0
        } else {
            match self.space.take(n) {
                Some(at) => at,
                None => return Ok(Start::Waits),
            }
        };
        let offset = at * BLOCK as usize;
        if code == RequestCode::Write {
            let got = gather_into(mem, c, 16, conn.data(), offset, len as usize);
            if got != Ok(len as usize) {
                self.space.give(at, n);
                return Err((range, Some(status)));
            }
        }
        let id = (self.sequence << SLOT_BITS) | slot as u32;
        if conn.stage(code, offset as u64, block, count, id).is_err() {
            self.space.give(at, n);
            return Err((BlkError::Peer, Some(status)));
        }
        self.sequence = self.sequence.wrapping_add(1) & (u32::MAX >> SLOT_BITS);
        self.slots[slot] = Some(InFlight {
            head: c.head,
            id,
            kind,
            len,
            at,
            blocks: n,
            life: self.life,
        });
        match code {
            RequestCode::Read => self.stats.reads += 1,
            RequestCode::Write => self.stats.writes += 1,
            _ => self.stats.flushes += 1,
        }
        self.stats.most_in_flight = self.stats.most_in_flight.max(self.in_flight() as u64);
        Ok(Start::Sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtio::mmio::{reg, status};
    use crate::virtio::queue::flags;
    use septa_block_protocol::{queue_region_bytes, rings, Response, StorageInfo, StorageRegion};
    use septa_queue::blk::{info_layout, Server};
    use septa_queue::host::leak;
    use septa_queue::Shared;
    use septa_runtime::Channel;
    use std::vec;
    use std::vec::Vec;

    const BASE: u64 = 0x4000_0000;
    const DESC: u64 = BASE + 0x1000;
    const AVAIL: u64 = BASE + 0x2000;
    const USED: u64 = BASE + 0x3000;
    const HDR: u64 = BASE + 0x4000;
    const STATUS: u64 = BASE + 0x4100;
    const BUF: u64 = BASE + 0x10000;
    const SIZE: u16 = 16;
    /// The partition: 64 blocks.
    const BLOCKS: u64 = 64;

    struct Rig {
        mem: GuestMem,
        blk: Blk,
        server: Server,
        data: Shared,
        disk: Vec<u8>,
        avail: u16,
    }

    fn w(r: &mut Rig, off: u64, v: u32) -> Work {
        let mem = r.mem;
        r.blk.write(&mem, off, 4, v).unwrap().1
    }

    fn rig() -> Rig {
        let cap = 8;
        let queues = leak(queue_region_bytes(cap));
        let data = leak(64 << 10);
        let info = leak(info_layout::REGION_SIZE);
        let region = StorageRegion::attach(info).unwrap();
        region.publish(&StorageInfo {
            capacity: BLOCKS,
            ..StorageInfo::default()
        });
        region.set_ready(true);
        let conn = Connection::attach(queues, cap, data, 0, info, Channel::new(3)).unwrap();
        let (rq, rs) = rings(&queues, cap).unwrap();
        let mut r = Rig {
            mem: GuestMem::new(BASE, leak(1 << 20)),
            blk: Blk::new(Some(conn)),
            server: Server::attach(rq, rs, cap).unwrap(),
            data,
            disk: vec![0; (BLOCKS * BLOCK) as usize],
            avail: 0,
        };
        assert_eq!(r.blk.read(reg::DEVICE_ID, 4), Ok(DEVICE_ID));
        assert_eq!(r.blk.read(reg::CONFIG, 4), Ok((BLOCKS * 8) as u32));
        assert_eq!(r.blk.read(reg::CONFIG + 20, 4), Ok(4096));
        w(&mut r, reg::STATUS, 3);
        w(&mut r, reg::DRIVER_FEATURES_SEL, 1);
        w(&mut r, reg::DRIVER_FEATURES, 1);
        w(&mut r, reg::DRIVER_FEATURES_SEL, 0);
        w(
            &mut r,
            reg::DRIVER_FEATURES,
            (F_BLK_SIZE | F_FLUSH | F_SEG_MAX) as u32,
        );
        w(&mut r, reg::STATUS, 0xb);
        assert_eq!(r.blk.read(reg::STATUS, 4), Ok(0xb));
        start_queue(&mut r);
        r
    }

    /// The request queue's rings, then DRIVER_OK: the end of the
    /// driver's set-up.
    fn start_queue(r: &mut Rig) {
        w(r, reg::QUEUE_NUM, u32::from(SIZE));
        w(r, reg::QUEUE_DESC_LOW, DESC as u32);
        w(r, reg::QUEUE_DRIVER_LOW, AVAIL as u32);
        w(r, reg::QUEUE_DEVICE_LOW, USED as u32);
        w(r, reg::QUEUE_READY, 1);
        w(r, reg::STATUS, 0xf);
    }

    fn desc(r: &Rig, i: u16, addr: u64, len: u32, fl: u16, next: u16) {
        let mut d = [0u8; 16];
        d[0..8].copy_from_slice(&addr.to_le_bytes());
        d[8..12].copy_from_slice(&len.to_le_bytes());
        d[12..14].copy_from_slice(&fl.to_le_bytes());
        d[14..16].copy_from_slice(&next.to_le_bytes());
        r.mem.write(DESC + 16 * u64::from(i), &d).unwrap();
    }

    /// A request: header, one data buffer of `len` (unless 0), status.
    fn request(r: &mut Rig, kind: u32, sector: u64, len: u32) -> Work {
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&kind.to_le_bytes());
        h[8..16].copy_from_slice(&sector.to_le_bytes());
        r.mem.write(HDR, &h).unwrap();
        r.mem.write(STATUS, &[0xff]).unwrap();
        desc(r, 0, HDR, 16, flags::NEXT, 1);
        if len > 0 {
            let fl = if kind == kind::IN { flags::WRITE } else { 0 };
            desc(r, 1, BUF, len, fl | flags::NEXT, 2);
            desc(r, 2, STATUS, 1, flags::WRITE, 0);
        } else {
            desc(r, 1, STATUS, 1, flags::WRITE, 0);
        }
        r.mem
            .write_u16(AVAIL + 4 + 2 * u64::from(r.avail % SIZE), 0)
            .unwrap();
        r.avail = r.avail.wrapping_add(1);
        r.mem.write_u16(AVAIL + 2, r.avail).unwrap();
        let mut work = w(r, reg::QUEUE_NOTIFY, 0);
        // The virtualiser serves what came, from its RAM disk, until
        // nothing more comes.
        loop {
            let served = take_requests(r);
            if served.is_empty() {
                break;
            }
            for resp in served {
                let more = answer(r, resp);
                work.interrupt |= more.interrupt;
                work.error = work.error.or(more.error);
            }
        }
        work
    }

    fn status(r: &Rig) -> u8 {
        let mut s = [0u8];
        r.mem.read(STATUS, &mut s).unwrap();
        s[0]
    }

    #[test]
    fn blocks_are_written_flushed_and_read_back() {
        let mut r = rig();
        let pattern: Vec<u8> = (0..8192u32).map(|i| (i * 13 + 1) as u8).collect();
        r.mem.write(BUF, &pattern).unwrap();
        assert_eq!(request(&mut r, kind::OUT, 16, 8192).error, None);
        assert_eq!(status(&r), S_OK);
        assert_eq!(&r.disk[2 * 4096..4 * 4096], &pattern[..]);
        assert_eq!(request(&mut r, kind::FLUSH, 0, 0).error, None);
        assert_eq!(status(&r), S_OK);
        r.mem.write(BUF, &[0u8; 8192]).unwrap();
        let work = request(&mut r, kind::IN, 16, 8192);
        assert_eq!(work.error, None);
        assert!(work.interrupt);
        assert_eq!(status(&r), S_OK);
        let mut got = vec![0u8; 8192];
        r.mem.read(BUF, &mut got).unwrap();
        assert_eq!(got, pattern);
        assert_eq!(request(&mut r, kind::GET_ID, 0, 20).error, None);
        assert_eq!(status(&r), S_UNSUPP);
        assert_eq!(
            (r.blk.stats.writes, r.blk.stats.reads, r.blk.stats.flushes),
            (1, 1, 1)
        );
    }

    #[test]
    fn requests_outside_the_partition_or_misaligned_are_refused() {
        let mut r = rig();
        for (kind, sector, len) in [
            (kind::OUT, BLOCKS * 8, 4096),    // past the end
            (kind::IN, BLOCKS * 8 - 8, 8192), // across the end
            (kind::OUT, u64::MAX - 7, 4096),  // wraps
            (kind::IN, 1, 4096),              // not a whole block
            (kind::OUT, 0, 1000),             // not whole blocks
            (kind::IN, 0, 128 << 10),         // larger than the data region
        ] {
            let work = request(&mut r, kind, sector, len);
            assert!(
                matches!(work.error, Some(BlkError::Range { .. })),
                "{sector} {len}"
            );
            assert_eq!(status(&r), S_IOERR);
        }
        // A buffer outside guest RAM is refused by the queue.
        desc(&r, 0, 0x10, 16, 0, 0);
        r.mem
            .write_u16(AVAIL + 4 + 2 * u64::from(r.avail % SIZE), 0)
            .unwrap();
        r.avail += 1;
        r.mem.write_u16(AVAIL + 2, r.avail).unwrap();
        assert!(w(&mut r, reg::QUEUE_NOTIFY, 0).error.is_some());
        assert_eq!(r.blk.stats.refused, 7);
        assert!(r.disk.iter().all(|b| *b == 0));
        // The disk still works.
        assert_eq!(request(&mut r, kind::OUT, 0, 4096).error, None);
        assert_eq!(status(&r), S_OK);
        assert_eq!(r.blk.transport.status & status::NEEDS_RESET, 0);
    }

    /// Chain `k` (descriptors 3k..3k+2, its own header, buffer and status
    /// byte) made available without a notification.
    fn post(r: &mut Rig, k: u16, kind: u32, sector: u64, len: u32) {
        let (hdr, st, buf) = (
            HDR + 32 * u64::from(k),
            STATUS + u64::from(k),
            BUF + 0x10000 * u64::from(k),
        );
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&kind.to_le_bytes());
        h[8..16].copy_from_slice(&sector.to_le_bytes());
        r.mem.write(hdr, &h).unwrap();
        r.mem.write(st, &[0xff]).unwrap();
        let fl = if kind == kind::IN { flags::WRITE } else { 0 };
        desc(r, 3 * k, hdr, 16, flags::NEXT, 3 * k + 1);
        desc(r, 3 * k + 1, buf, len, fl | flags::NEXT, 3 * k + 2);
        desc(r, 3 * k + 2, st, 1, flags::WRITE, 0);
        r.mem
            .write_u16(AVAIL + 4 + 2 * u64::from(r.avail % SIZE), 3 * k)
            .unwrap();
        r.avail = r.avail.wrapping_add(1);
        r.mem.write_u16(AVAIL + 2, r.avail).unwrap();
    }

    fn status_of(r: &Rig, k: u16) -> u8 {
        let mut s = [0u8];
        r.mem.read(STATUS + u64::from(k), &mut s).unwrap();
        s[0]
    }

    /// The requests the virtualiser has now, served from its RAM disk but
    /// not yet answered.
    fn take_requests(r: &mut Rig) -> Vec<Response> {
        let mut out = vec![];
        while let Some(q) = r.server.requests.dequeue().unwrap() {
            let at = (q.block_number * BLOCK) as usize;
            let n = usize::from(q.count) * BLOCK as usize;
            let off = q.io_or_offset as usize;
            match q.code {
                RequestCode::Read => r.data.write(off, &r.disk[at..at + n]).unwrap(),
                RequestCode::Write => r.data.read(off, &mut r.disk[at..at + n]).unwrap(),
                _ => {}
            }
            out.push(Response {
                status: Status::Ok,
                success_count: q.count,
                id: q.id,
            });
        }
        out
    }

    fn answer(r: &mut Rig, resp: Response) -> Work {
        r.server.responses.enqueue(resp).unwrap();
        let mem = r.mem;
        r.blk.poll(&mem)
    }

    fn used_idx(r: &Rig) -> u16 {
        r.mem.read_u16(USED + 2).unwrap()
    }

    #[test]
    fn requests_go_out_together_and_complete_in_any_order() {
        let mut r = rig();
        // 64 KiB of data region: a request has at most 16 segments, and
        // four of 16 KiB are at the virtualiser at once.
        assert_eq!(r.blk.read(reg::CONFIG + 12, 4), Ok(16));
        for k in 0..4u16 {
            let pattern: Vec<u8> = (0..16384u32)
                .map(|i| (i * 7 + u32::from(k) * 11) as u8)
                .collect();
            r.mem.write(BUF + 0x10000 * u64::from(k), &pattern).unwrap();
            post(&mut r, k, kind::OUT, 32 * u64::from(k), 16384);
        }
        assert_eq!(w(&mut r, reg::QUEUE_NOTIFY, 0).error, None);
        let mut resp = take_requests(&mut r);
        assert_eq!((resp.len(), r.blk.in_flight()), (4, 4));
        assert_eq!(r.blk.stats.most_in_flight, 4);
        resp.reverse();
        for (n, x) in resp.into_iter().enumerate() {
            assert_eq!(answer(&mut r, x).error, None);
            assert_eq!(used_idx(&r), n as u16 + 1);
        }
        assert!(r.blk.space.is_free());
        for k in 0..4u16 {
            assert_eq!(status_of(&r, k), S_OK);
            r.mem
                .write(BUF + 0x10000 * u64::from(k), &[0u8; 16384])
                .unwrap();
            post(&mut r, k, kind::IN, 32 * u64::from(k), 16384);
        }
        w(&mut r, reg::QUEUE_NOTIFY, 0);
        let resp = take_requests(&mut r);
        for i in [2, 0, 3, 1] {
            assert!(answer(&mut r, resp[i]).interrupt);
        }
        for k in 0..4u16 {
            let want: Vec<u8> = (0..16384u32)
                .map(|i| (i * 7 + u32::from(k) * 11) as u8)
                .collect();
            let mut got = vec![0u8; 16384];
            r.mem.read(BUF + 0x10000 * u64::from(k), &mut got).unwrap();
            assert_eq!(got, want, "chain {k}");
            assert_eq!(status_of(&r, k), S_OK);
        }
    }

    #[test]
    fn a_request_without_room_waits_for_a_response() {
        let mut r = rig();
        for k in 0..5u16 {
            r.mem
                .write(BUF + 0x10000 * u64::from(k), &[k as u8 + 1; 16384])
                .unwrap();
            post(&mut r, k, kind::OUT, 32 * u64::from(k), 16384);
        }
        w(&mut r, reg::QUEUE_NOTIFY, 0);
        let resp = take_requests(&mut r);
        assert_eq!(resp.len(), 4, "the data region holds four");
        assert_eq!(status_of(&r, 4), 0xff);
        answer(&mut r, resp[1]);
        let more = take_requests(&mut r);
        assert_eq!(more.len(), 1, "the fifth goes once blocks are free");
        for x in resp.iter().filter(|x| x.id != resp[1].id).chain(&more) {
            answer(&mut r, *x);
        }
        for k in 0..5u16 {
            assert_eq!(status_of(&r, k), S_OK);
            let at = (32 * u64::from(k) * SECTOR) as usize;
            assert!(
                r.disk[at..at + 16384].iter().all(|&b| b == k as u8 + 1),
                "chain {k}"
            );
        }
        assert_eq!(used_idx(&r), 5);
        assert!(r.blk.space.is_free());
    }

    #[test]
    fn a_reset_forgets_the_requests_in_flight() {
        let mut r = rig();
        post(&mut r, 0, kind::IN, 0, 16384);
        post(&mut r, 1, kind::IN, 32, 16384);
        post(&mut r, 2, kind::IN, 64, 16384);
        w(&mut r, reg::QUEUE_NOTIFY, 0);
        let resp = take_requests(&mut r);
        assert_eq!(resp.len(), 3);
        // The guest resets the device and sets it up again.
        w(&mut r, reg::STATUS, 0);
        r.avail = 0;
        r.mem.write_u16(AVAIL + 2, 0).unwrap();
        r.mem.write_u16(USED + 2, 0).unwrap();
        w(&mut r, reg::STATUS, 3);
        w(&mut r, reg::DRIVER_FEATURES_SEL, 1);
        w(&mut r, reg::DRIVER_FEATURES, 1);
        w(&mut r, reg::STATUS, 0xb);
        start_queue(&mut r);
        // One answer comes before the new guest asks anything.
        answer(&mut r, resp[0]);
        r.disk[..4096].fill(0x5a);
        post(&mut r, 3, kind::IN, 0, 4096);
        w(&mut r, reg::QUEUE_NOTIFY, 0);
        let new = take_requests(&mut r);
        assert_eq!(new.len(), 1);
        // The old guest's requests complete after the new one's, and
        // nothing of theirs reaches the new guest's rings.
        answer(&mut r, new[0]);
        answer(&mut r, resp[2]);
        answer(&mut r, resp[1]);
        assert_eq!(used_idx(&r), 1);
        assert_eq!(r.mem.read_u32(USED + 4).unwrap(), 9);
        assert_eq!(status_of(&r, 3), S_OK);
        for k in 0..3 {
            assert_eq!(status_of(&r, k), 0xff, "chain {k} of the old guest");
        }
        assert!(r.blk.space.is_free());
        assert_eq!(r.blk.in_flight(), 0);
    }

    #[test]
    fn an_answer_to_no_request_is_the_virtualisers_fault() {
        let mut r = rig();
        post(&mut r, 0, kind::IN, 0, 4096);
        w(&mut r, reg::QUEUE_NOTIFY, 0);
        let resp = take_requests(&mut r);
        let mut wrong = resp[0];
        wrong.id ^= 1 << 8;
        assert_eq!(answer(&mut r, wrong).error, Some(BlkError::Peer));
        assert_eq!(status_of(&r, 0), 0xff);
        answer(&mut r, resp[0]);
        assert_eq!(status_of(&r, 0), S_OK);
        assert_eq!(
            answer(&mut r, resp[0]).error,
            Some(BlkError::Peer),
            "answered twice"
        );
    }

    #[test]
    fn the_data_region_is_lent_first_fit() {
        let mut s = Space::new(16 * BLOCK);
        assert_eq!(s.take(4), Some(0));
        assert_eq!(s.take(8), Some(4));
        assert_eq!(s.take(5), None);
        assert_eq!(s.take(4), Some(12));
        s.give(4, 8);
        assert_eq!(s.take(9), None);
        assert_eq!(s.take(3), Some(4));
        assert_eq!(s.take(5), Some(7));
        s.give(0, 4);
        s.give(4, 3);
        s.give(7, 5);
        s.give(12, 4);
        assert!(s.is_free());
        assert_eq!(s.take(16), Some(0));
        // Past 256 blocks nothing is used.
        let mut big = Space::new(1 << 30);
        assert_eq!(big.bytes(), 256 * BLOCK);
        assert_eq!(big.take(200), Some(0));
        assert_eq!(big.take(56), Some(200));
        assert_eq!(big.take(1), None);
    }
}
