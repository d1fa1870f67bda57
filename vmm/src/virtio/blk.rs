//! The guest's disk: a virtio-blk device (virtio 1.2, 5.2) on the block
//! virtualiser's queues, the VMM being the client of one partition.
//!
//! Offered: VIRTIO_F_VERSION_1, SIZE_MAX (4 KiB segments), SEG_MAX
//! ([`SEG_MAX`] of them), BLK_SIZE (4 KiB: the virtualiser's block, so
//! Linux sends only whole, aligned blocks) and FLUSH. Requests: IN, OUT,
//! FLUSH; GET_ID and anything else is answered UNSUPP.
//!
//! One request at a time: a chain the guest made available is checked
//! (header, data, status byte; sectors and length whole 4 KiB blocks
//! inside the partition; data no larger than the VMM's data region),
//! written data is copied from guest RAM into the data region, the
//! request goes to the virtualiser, and when its response comes read data
//! is copied back, the status written, the chain given back. A chain that
//! fails its checks is answered IOERR (or given back with nothing written
//! when it has no status byte) and counted.

use septa_block_protocol::{Connection, RequestCode, Status, TRANSFER_SIZE};

use super::mem::GuestMem;
use super::mmio::{self, Device, Identity, Transport, F_VERSION_1};
use super::queue::{gather, scatter, Chain, Queue, QueueError};

/// Virtio device id of a block device.
pub const DEVICE_ID: u32 = 2;
pub const F_SIZE_MAX: u64 = 1 << 1;
pub const F_SEG_MAX: u64 = 1 << 2;
pub const F_BLK_SIZE: u64 = 1 << 6;
pub const F_FLUSH: u64 = 1 << 9;
/// Data segments per request (a chain is these, the header and the
/// status: within [`super::queue::MAX_CHAIN`]).
pub const SEG_MAX: u32 = 60;
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
}

/// The request at the virtualiser.
#[derive(Clone, Copy)]
struct InFlight {
    chain: Chain,
    kind: u32,
    len: u64,
    /// The status byte's guest-physical address.
    status: u64,
}

pub struct Blk {
    pub transport: Transport,
    conn: Option<Connection>,
    inflight: Option<InFlight>,
    next_id: u32,
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
        c[12..16].copy_from_slice(&SEG_MAX.to_le_bytes());
        c[20..24].copy_from_slice(&(BLOCK as u32).to_le_bytes());
    }

    fn bad_queue(e: QueueError) -> Work {
        Work {
            interrupt: true,
            error: Some(BlkError::Queue(e)),
        }
    }

    /// Takes the virtualiser's responses and sends the next request.
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
        Blk {
            transport: Transport::new(Identity {
                id: DEVICE_ID,
                features: F_VERSION_1 | F_SIZE_MAX | F_SEG_MAX | F_BLK_SIZE | F_FLUSH,
                queues: 1,
            }),
            conn,
            inflight: None,
            next_id: 1,
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

    fn data_len(&self) -> u64 {
        self.conn.as_ref().map_or(0, |c| c.data().len() as u64)
    }

    /// The guest's machine is reset: a request in flight is forgotten
    /// when it completes (its chain belongs to the old guest).
    pub fn reset(&mut self) {
        self.transport.reset();
    }

    fn step(&mut self, mem: &GuestMem, q: &mut Queue, w: &mut Work) -> Result<(), QueueError> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        // A response for the request in flight?
        if let Some(f) = self.inflight {
            let r = match conn.response() {
                Ok(Some(r)) => r,
                Ok(None) => return Ok(()),
                Err(_) => {
                    w.error.get_or_insert(BlkError::Peer);
                    return Ok(());
                }
            };
            self.inflight = None;
            if !self.transport.running() || !q.ready {
                // The guest reset the device meanwhile: nothing to answer.
            } else {
                let mut st = if r.status == Status::Ok {
                    S_OK
                } else {
                    S_IOERR
                };
                if r.status != Status::Ok {
                    w.error.get_or_insert(BlkError::Server(r.status));
                }
                let mut written = 0u32;
                if st == S_OK && f.kind == kind::IN {
                    let mut buf = [0u8; 512];
                    let mut done = 0u64;
                    while done < f.len {
                        let n = (f.len - done).min(buf.len() as u64) as usize;
                        if conn.data().read(done as usize, &mut buf[..n]).is_err()
                            || scatter(mem, &f.chain, done, &buf[..n]).is_err()
                        {
                            st = S_IOERR;
                            break;
                        }
                        done += n as u64;
                    }
                    written = done as u32;
                }
                mem.write(f.status, &[st]).map_err(QueueError::Buffer)?;
                q.push_used(mem, f.chain.head, written + 1)?;
                w.interrupt = true;
            }
        }
        if !self.transport.running() {
            return Ok(());
        }
        // The next request.
        loop {
            let stats = &mut self.stats;
            let refused = |e| {
                stats.refused += 1;
                w.error.get_or_insert(BlkError::Queue(e));
                w.interrupt = true;
            };
            let Some(chain) = q.pop_valid(mem, refused)? else {
                return Ok(());
            };
            match self.start(mem, &chain) {
                Ok(Some(f)) => {
                    self.inflight = Some(f);
                    return Ok(());
                }
                Ok(None) => {
                    // Answered at once (UNSUPP).
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

    /// Checks a chain and sends its request: `Ok(Some)` in flight,
    /// `Ok(None)` answered UNSUPP already, `Err` refused (with where its
    /// status byte is, if it has one).
    fn start(
        &mut self,
        mem: &GuestMem,
        c: &Chain,
    ) -> Result<Option<InFlight>, (BlkError, Option<u64>)> {
        let segs = c.segments();
        let last = segs.last().copied();
        let status = match last {
            Some(s) if s.write && s.len >= 1 => s.addr + u64::from(s.len) - 1,
            _ => return Err((BlkError::Shape, None)),
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
                return Ok(None);
            }
        };
        let blocks = self.blocks();
        let data = self.data_len();
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
        if code == RequestCode::Write {
            let mut buf = [0u8; 512];
            let mut done = 0u64;
            while done < len {
                let n = (len - done).min(buf.len() as u64) as usize;
                let got = gather(mem, c, 16 + done, &mut buf[..n]);
                if got != Ok(n) || conn.data().write(done as usize, &buf[..n]).is_err() {
                    return Err((range, Some(status)));
                }
                done += n as u64;
            }
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        if conn.stage(code, 0, block, count, id).is_err() {
            return Err((BlkError::Peer, Some(status)));
        }
        conn.send();
        match code {
            RequestCode::Read => self.stats.reads += 1,
            RequestCode::Write => self.stats.writes += 1,
            _ => self.stats.flushes += 1,
        }
        Ok(Some(InFlight {
            chain: *c,
            kind,
            len,
            status,
        }))
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
        w(&mut r, reg::QUEUE_NUM, u32::from(SIZE));
        w(&mut r, reg::QUEUE_DESC_LOW, DESC as u32);
        w(&mut r, reg::QUEUE_DRIVER_LOW, AVAIL as u32);
        w(&mut r, reg::QUEUE_DEVICE_LOW, USED as u32);
        w(&mut r, reg::QUEUE_READY, 1);
        w(&mut r, reg::STATUS, 0xf);
        r
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
        // The virtualiser serves what came, from its RAM disk.
        while let Some(q) = r.server.requests.dequeue().unwrap() {
            let at = (q.block_number * BLOCK) as usize;
            let n = usize::from(q.count) * BLOCK as usize;
            let off = q.io_or_offset as usize;
            match q.code {
                RequestCode::Read => r.data.write(off, &r.disk[at..at + n]).unwrap(),
                RequestCode::Write => r.data.read(off, &mut r.disk[at..at + n]).unwrap(),
                _ => {}
            }
            r.server
                .responses
                .enqueue(Response {
                    status: Status::Ok,
                    success_count: q.count,
                    id: q.id,
                })
                .unwrap();
            let mem = r.mem;
            let more = r.blk.poll(&mem);
            work.interrupt |= more.interrupt;
            work.error = work.error.or(more.error);
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
}
