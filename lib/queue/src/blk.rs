//! Block queues: a request ring and a response ring, with sDDF 0.7's
//! `blk_req_queue_t` and `blk_resp_queue_t` layouts, and the storage-info
//! region (`blk_storage_info_t`).
//!
//! ```text
//! blk_req_queue_t (alignment 8)      blk_req_t (32 bytes, alignment 8)
//!   0  u32 head  (consumer writes)     0  u32 code (enum blk_req_code)
//!   4  u32 tail  (producer writes)     8  u64 io_or_offset
//!   8  bool plugged                    16 u64 block_number
//!   16 blk_req_t buffers[capacity]     24 u16 count
//!                                      28 u32 id
//! blk_resp_queue_t (alignment 4)     blk_resp_t (12 bytes, alignment 4)
//!   0  u32 head                        0  u32 status (enum blk_resp_status)
//!   4  u32 tail                        4  u16 success_count
//!   8  blk_resp_t buffers[capacity]    8  u32 id
//! ```
//!
//! Note that `head` comes first here, unlike the net and serial queues.
//! The [`Client`] produces requests and consumes responses; the [`Server`]
//! (a virtualiser towards its clients, a driver towards the virtualiser)
//! does the opposite. sDDF 0.7's block queues carry no signal flag: each
//! side notifies the other after every batch it publishes.
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use crate::ring::{sealed, AttachError, Consumer, Entry, PeerFault, Producer, Ring, Slot, U32};
use crate::Shared;

/// Bytes per block transfer unit (sDDF `BLK_TRANSFER_SIZE`): `count` and
/// `block_number` are in these units.
pub const TRANSFER_SIZE: u32 = 4096;

/// A C enum of sDDF's as it travels in shared memory (a `u32`): the named
/// values, and any other kept as `Other`, so a reader can answer it rather
/// than fail.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $value:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
            /// Any other value.
            Other(u32),
        }

        impl From<u32> for $name {
            #[inline]
            fn from(v: u32) -> Self {
                match v {
                    $($value => $name::$variant,)+
                    v => $name::Other(v),
                }
            }
        }

        impl From<$name> for u32 {
            #[inline]
            fn from(e: $name) -> u32 {
                match e {
                    $($name::$variant => $value,)+
                    $name::Other(v) => v,
                }
            }
        }
    };
}

wire_enum! {
    /// What a request asks for (sDDF `blk_req_code_t`). A server answers
    /// [`RequestCode::Other`] with [`Status::InvalidParam`].
    RequestCode {
        /// `BLK_REQ_READ`.
        Read = 0,
        /// `BLK_REQ_WRITE`.
        Write = 1,
        /// `BLK_REQ_FLUSH`.
        Flush = 2,
        /// `BLK_REQ_BARRIER`.
        Barrier = 3,
    }
}

wire_enum! {
    /// How a request ended (sDDF `blk_resp_status_t`).
    Status {
        /// `BLK_RESP_OK`.
        Ok = 0,
        /// `BLK_RESP_ERR_UNSPEC`.
        Unspecified = 1,
        /// `BLK_RESP_ERR_INVALID_PARAM`.
        InvalidParam = 2,
        /// `BLK_RESP_ERR_IO`.
        Io = 3,
        /// `BLK_RESP_ERR_NO_DEVICE`.
        NoDevice = 4,
    }
}

/// A block request (sDDF `blk_req_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// What to do.
    pub code: RequestCode,
    /// The buffer's offset in the data region, or its I/O address.
    pub io_or_offset: u64,
    /// First block, in [`TRANSFER_SIZE`] units.
    pub block_number: u64,
    /// Blocks to transfer.
    pub count: u16,
    /// The requester's tag, echoed in the response.
    pub id: u32,
}

/// A block response (sDDF `blk_resp_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response {
    /// How the request ended.
    pub status: Status,
    /// Blocks transferred.
    pub success_count: u16,
    /// The request's `id`.
    pub id: u32,
}

/// Field offsets of the block structures; the tests pin them.
pub mod layout {
    /// `blk_req_queue_t.head` (and `blk_resp_queue_t.head`).
    pub const HEAD: usize = 0;
    /// `blk_req_queue_t.tail` (and `blk_resp_queue_t.tail`).
    pub const TAIL: usize = 4;
    /// `blk_req_queue_t.plugged` (a C `bool`, one byte).
    pub const PLUGGED: usize = 8;
    /// `blk_req_queue_t.buffers`.
    pub const REQ_BUFFERS: usize = 16;
    /// `blk_resp_queue_t.buffers`.
    pub const RESP_BUFFERS: usize = 8;
    /// `sizeof(blk_req_t)`.
    pub const REQ_SIZE: usize = 32;
    /// `sizeof(blk_resp_t)`.
    pub const RESP_SIZE: usize = 12;
    /// `blk_req_t` fields: code, io_or_offset, block_number, count, id.
    pub const REQ_FIELDS: [usize; 5] = [0, 8, 16, 24, 28];
    /// `blk_resp_t` fields: status, success_count, id.
    pub const RESP_FIELDS: [usize; 3] = [0, 4, 8];
}

impl sealed::Sealed for Request {}
impl sealed::Sealed for Response {}

impl Entry for Request {
    const SIZE: usize = layout::REQ_SIZE;

    #[inline]
    fn load(slot: &Slot<'_>) -> Self {
        let [code, io, block, count, id] = layout::REQ_FIELDS;
        Request {
            code: slot.u32(code).load(Relaxed).into(),
            io_or_offset: slot.u64(io).load(Relaxed),
            block_number: slot.u64(block).load(Relaxed),
            count: slot.u16(count).load(Relaxed),
            id: slot.u32(id).load(Relaxed),
        }
    }

    #[inline]
    fn store(&self, slot: &Slot<'_>) {
        let [code, io, block, count, id] = layout::REQ_FIELDS;
        slot.u32(code).store(self.code.into(), Relaxed);
        slot.u64(io).store(self.io_or_offset, Relaxed);
        slot.u64(block).store(self.block_number, Relaxed);
        slot.u16(count).store(self.count, Relaxed);
        slot.u32(id).store(self.id, Relaxed);
    }
}

impl Entry for Response {
    const SIZE: usize = layout::RESP_SIZE;

    #[inline]
    fn load(slot: &Slot<'_>) -> Self {
        let [status, success, id] = layout::RESP_FIELDS;
        Response {
            status: slot.u32(status).load(Relaxed).into(),
            success_count: slot.u16(success).load(Relaxed),
            id: slot.u32(id).load(Relaxed),
        }
    }

    #[inline]
    fn store(&self, slot: &Slot<'_>) {
        let [status, success, id] = layout::RESP_FIELDS;
        slot.u32(status).store(self.status.into(), Relaxed);
        slot.u16(success).store(self.success_count, Relaxed);
        slot.u32(id).store(self.id, Relaxed);
    }
}

/// The layout of a request queue (`blk_req_queue_t`).
#[derive(Debug)]
pub enum RequestRing {}
/// The layout of a response queue (`blk_resp_queue_t`).
#[derive(Debug)]
pub enum ResponseRing {}

impl sealed::Sealed for RequestRing {}
impl sealed::Sealed for ResponseRing {}

impl Ring for RequestRing {
    type Entry = Request;
    type Width = U32;
    const TAIL: usize = layout::TAIL;
    const HEAD: usize = layout::HEAD;
    const ENTRIES: usize = layout::REQ_BUFFERS;
    const ALIGN: usize = 8;
    const FLAG: Option<usize> = None;
}

impl Ring for ResponseRing {
    type Entry = Response;
    type Width = U32;
    const TAIL: usize = layout::TAIL;
    const HEAD: usize = layout::HEAD;
    const ENTRIES: usize = layout::RESP_BUFFERS;
    const ALIGN: usize = 4;
    const FLAG: Option<usize> = None;
}

/// The requesting side: a client towards its virtualiser, a virtualiser
/// towards the driver.
#[derive(Debug)]
pub struct Client {
    /// Requests sent.
    pub requests: Producer<RequestRing>,
    /// Responses received.
    pub responses: Consumer<ResponseRing>,
}

/// The serving side: a virtualiser towards a client, a driver towards the
/// virtualiser.
#[derive(Debug)]
pub struct Server {
    /// Requests received.
    pub requests: Consumer<RequestRing>,
    /// Responses sent.
    pub responses: Producer<ResponseRing>,
}

impl Client {
    /// Attaches to a request and a response queue of the same capacity.
    #[inline]
    pub fn attach(requests: Shared, responses: Shared, capacity: u32) -> Result<Self, AttachError> {
        Ok(Client {
            requests: Producer::attach(requests, capacity)?,
            responses: Consumer::attach(responses, capacity)?,
        })
    }
}

impl Server {
    /// Attaches to a request and a response queue of the same capacity.
    #[inline]
    pub fn attach(requests: Shared, responses: Shared, capacity: u32) -> Result<Self, AttachError> {
        Ok(Server {
            requests: Consumer::attach(requests, capacity)?,
            responses: Producer::attach(responses, capacity)?,
        })
    }
}

/// The `plugged` byte of a request queue, readable from either side: sDDF
/// defines it ("prevent requests from being dequeued when plugged") but no
/// 0.7 component reads it; it is here so that both sides can agree on it.
pub trait Plug {
    /// Whether the queue is plugged (any non-zero byte).
    fn plugged(&self) -> bool;
    /// Sets or clears the plug.
    fn set_plugged(&mut self, plugged: bool);
}

fn plug_byte(mem: &Shared) -> &core::sync::atomic::AtomicU8 {
    // Offset 8 lies inside the 16-byte header, which the window holds.
    mem.u8_at(layout::PLUGGED)
}

impl Plug for Producer<RequestRing> {
    #[inline]
    fn plugged(&self) -> bool {
        plug_byte(self.window()).load(Acquire) != 0
    }
    #[inline]
    fn set_plugged(&mut self, plugged: bool) {
        plug_byte(self.window()).store(plugged as u8, Release)
    }
}

impl Plug for Consumer<RequestRing> {
    #[inline]
    fn plugged(&self) -> bool {
        plug_byte(self.window()).load(Acquire) != 0
    }
    #[inline]
    fn set_plugged(&mut self, plugged: bool) {
        plug_byte(self.window()).store(plugged as u8, Release)
    }
}

impl Request {
    /// Checks the buffer a read or write names against a data region of
    /// `region_len` bytes named from `base` (0 for offsets): aligned to
    /// [`TRANSFER_SIZE`], `count` blocks long, inside the region. Flushes
    /// and barriers name no buffer and always pass.
    #[inline]
    pub fn check(&self, base: u64, region_len: u64) -> Result<(), PeerFault> {
        if !matches!(self.code, RequestCode::Read | RequestCode::Write) {
            return Ok(());
        }
        let len = self.count as u64 * TRANSFER_SIZE as u64;
        let fault = PeerFault::Descriptor {
            offset: self.io_or_offset,
            len,
        };
        let rel = self.io_or_offset.checked_sub(base).ok_or(fault)?;
        if rel % TRANSFER_SIZE as u64 != 0
            || rel.checked_add(len).is_none_or(|end| end > region_len)
        {
            return Err(fault);
        }
        Ok(())
    }
}

/// What a block device is (sDDF `blk_storage_info_t`), as the driver
/// publishes it in the storage-info region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StorageInfo {
    /// The device's serial number, NUL-padded.
    pub serial_number: [u8; 64],
    /// The device refuses writes.
    pub read_only: bool,
    /// Bytes per sector.
    pub sector_size: u16,
    /// Optimal block size, in [`TRANSFER_SIZE`] units.
    pub block_size: u16,
    /// How many requests the device takes at once.
    pub queue_depth: u16,
    /// Geometry: cylinders.
    pub cylinders: u16,
    /// Geometry: heads.
    pub heads: u16,
    /// Geometry: blocks.
    pub blocks: u16,
    /// The device's size, in [`TRANSFER_SIZE`] units.
    pub capacity: u64,
}

impl Default for StorageInfo {
    fn default() -> Self {
        StorageInfo {
            serial_number: [0; 64],
            read_only: false,
            sector_size: 0,
            block_size: 0,
            queue_depth: 0,
            cylinders: 0,
            heads: 0,
            blocks: 0,
            capacity: 0,
        }
    }
}

/// Offsets in `blk_storage_info_t`.
pub mod info_layout {
    /// `serial_number[64]`.
    pub const SERIAL_NUMBER: usize = 0;
    /// `read_only` (bool).
    pub const READ_ONLY: usize = 64;
    /// `ready` (bool, release/acquire).
    pub const READY: usize = 65;
    /// `sector_size`, `block_size`, `queue_depth`, `cylinders`, `heads`,
    /// `blocks` (u16 each).
    pub const U16_FIELDS: [usize; 6] = [66, 68, 70, 72, 74, 76];
    /// `capacity` (u64).
    pub const CAPACITY: usize = 80;
    /// `sizeof(blk_storage_info_t)`.
    pub const SIZE: usize = 88;
    /// `BLK_STORAGE_INFO_REGION_SIZE`.
    pub const REGION_SIZE: usize = 0x1000;
}

/// The storage-info region: written by the driver, read by everyone else.
/// `ready` is stored with `Release` after the other fields and read with
/// `Acquire` before them, as sDDF does.
#[derive(Clone, Copy, Debug)]
pub struct StorageRegion {
    mem: Shared,
}

impl StorageRegion {
    /// Attaches to a storage-info window (at least 88 bytes, 8-aligned).
    #[inline]
    pub fn attach(mem: Shared) -> Result<Self, AttachError> {
        if !mem.addr().is_multiple_of(8) {
            return Err(AttachError::Misaligned {
                addr: mem.addr(),
                align: 8,
            });
        }
        if mem.len() < info_layout::SIZE {
            return Err(AttachError::TooSmall {
                need: info_layout::SIZE,
                have: mem.len(),
            });
        }
        Ok(StorageRegion { mem })
    }

    /// Whether the driver has published the device.
    #[inline]
    pub fn is_ready(&self) -> bool {
        self.mem.u8_at(info_layout::READY).load(Acquire) != 0
    }

    /// Driver: marks the device ready (after [`publish`](Self::publish)) or
    /// gone.
    #[inline]
    pub fn set_ready(&self, ready: bool) {
        self.mem
            .u8_at(info_layout::READY)
            .store(ready as u8, Release)
    }

    /// Reads the information, if the driver has marked it ready.
    #[inline]
    pub fn read(&self) -> Option<StorageInfo> {
        if !self.is_ready() {
            return None;
        }
        let mut info = StorageInfo::default();
        // Inside the window (88 bytes checked at attach).
        let _ = self
            .mem
            .read(info_layout::SERIAL_NUMBER, &mut info.serial_number);
        info.read_only = self.mem.u8_at(info_layout::READ_ONLY).load(Relaxed) != 0;
        let u16s = info_layout::U16_FIELDS.map(|at| self.mem.u16_at(at).load(Relaxed));
        [
            info.sector_size,
            info.block_size,
            info.queue_depth,
            info.cylinders,
            info.heads,
            info.blocks,
        ] = u16s;
        info.capacity = self.mem.u64_at(info_layout::CAPACITY).load(Relaxed);
        Some(info)
    }

    /// Driver: writes the information (then call `set_ready(true)`).
    #[inline]
    pub fn publish(&self, info: &StorageInfo) {
        let _ = self
            .mem
            .write(info_layout::SERIAL_NUMBER, &info.serial_number);
        self.mem
            .u8_at(info_layout::READ_ONLY)
            .store(info.read_only as u8, Relaxed);
        let u16s = [
            info.sector_size,
            info.block_size,
            info.queue_depth,
            info.cylinders,
            info.heads,
            info.blocks,
        ];
        for (at, v) in info_layout::U16_FIELDS.into_iter().zip(u16s) {
            self.mem.u16_at(at).store(v, Relaxed);
        }
        self.mem
            .u64_at(info_layout::CAPACITY)
            .store(info.capacity, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::leak;

    #[test]
    fn layout_matches_sddf() {
        // blk_req_t { enum code; uint64_t io_or_offset; uint64_t
        // block_number; uint16_t count; uint32_t id; }: the enum is an int
        // (4 bytes), then padding to 8; count at 24, id at 28: 32 bytes.
        assert_eq!(layout::REQ_FIELDS, [0, 8, 16, 24, 28]);
        assert_eq!(layout::REQ_SIZE, 32);
        // blk_resp_t { enum status; uint16_t success_count; uint32_t id; }
        assert_eq!((layout::RESP_FIELDS, layout::RESP_SIZE), ([0, 4, 8], 12));
        // Queue headers: head, tail, then (requests) a bool; the array is
        // aligned for its element.
        assert_eq!((layout::HEAD, layout::TAIL, layout::PLUGGED), (0, 4, 8));
        assert_eq!((layout::REQ_BUFFERS, layout::RESP_BUFFERS), (16, 8));
        assert_eq!(RequestRing::bytes(128), 16 + 128 * 32);
        assert_eq!(ResponseRing::bytes(128), 8 + 128 * 12);
        assert_eq!(info_layout::U16_FIELDS, [66, 68, 70, 72, 74, 76]);
        assert_eq!((info_layout::CAPACITY, info_layout::SIZE), (80, 88));
    }

    #[test]
    fn a_request_and_its_response_round_trip() {
        let (rq, rs) = (leak(RequestRing::bytes(4)), leak(ResponseRing::bytes(4)));
        let mut client = Client::attach(rq, rs, 4).unwrap();
        let mut server = Server::attach(rq, rs, 4).unwrap();
        let req = Request {
            code: RequestCode::Write,
            io_or_offset: 0x3000,
            block_number: 77,
            count: 2,
            id: 9,
        };
        client.requests.enqueue(req).unwrap();
        let mut raw = [0u8; 8];
        rq.read(0, &mut raw).unwrap();
        assert_eq!(raw, [0, 0, 0, 0, 1, 0, 0, 0], "head 0, tail 1");
        let got = server.requests.dequeue().unwrap().unwrap();
        assert_eq!(got, req);
        assert!(got.check(0, 0x5000).is_ok());
        assert!(got.check(0, 0x4fff).is_err());
        server
            .responses
            .enqueue(Response {
                status: Status::Ok,
                success_count: 2,
                id: 9,
            })
            .unwrap();
        let resp = client.responses.dequeue().unwrap().unwrap();
        assert_eq!((resp.status, resp.id), (Status::Ok, 9));
    }

    #[test]
    fn unknown_codes_survive_as_values() {
        let q = leak(RequestRing::bytes(2));
        q.write(16, &7u32.to_le_bytes()).unwrap();
        q.write(4, &1u32.to_le_bytes()).unwrap();
        let mut c = Consumer::<RequestRing>::attach(q, 2).unwrap();
        let r = c.dequeue().unwrap().unwrap();
        assert_eq!(r.code, RequestCode::Other(7));
        assert!(r.check(0, 0).is_ok(), "names no buffer");
    }

    #[test]
    fn the_plug_is_shared() {
        let q = leak(RequestRing::bytes(2));
        let mut p = Producer::<RequestRing>::attach(q, 2).unwrap();
        let c = Consumer::<RequestRing>::attach(q, 2).unwrap();
        assert!(!c.plugged());
        p.set_plugged(true);
        assert!(c.plugged());
    }

    #[test]
    fn storage_info_is_read_only_once_ready() {
        let region = StorageRegion::attach(leak(info_layout::REGION_SIZE)).unwrap();
        assert_eq!(region.read(), None);
        let info = StorageInfo {
            sector_size: 512,
            capacity: 1 << 20,
            queue_depth: 64,
            ..Default::default()
        };
        region.publish(&info);
        region.set_ready(true);
        assert_eq!(region.read(), Some(info));
    }
}
