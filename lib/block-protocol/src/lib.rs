//! # septa-block-protocol: what a block client and a block server say
//!
//! A client depends on this crate, not on a driver: the block virtualiser
//! (`drivers/blk-virt`) and the virtio-blk driver (`drivers/virtio-blk`)
//! both serve it, so a client works against a partition the virtualiser
//! gives it or, wired by hand, against a whole disk.
//!
//! ## The connection
//!
//! | what | shared as | written by |
//! |---|---|---|
//! | requests | a [`RequestRing`] at offset 0 of the queue region | client |
//! | responses | a [`ResponseRing`] at [`responses_at`]`(capacity)` | server |
//! | data | the client's data region: buffers of whole 4 KiB blocks | client (writes), device (reads) |
//! | storage info | sDDF's `blk_storage_info_t` ([`StorageRegion`]) | server; the client only reads |
//! | signals | a notification channel each way, after every batch (sDDF's block queues carry no signal flag) | both |
//!
//! A request names its buffer by `io_or_offset`: an offset into the
//! client's data region when the server is a virtualiser, the buffer's
//! physical address when it is the driver (the connection adds the base
//! the description gives, [`symbols::DATA_IO`], so client code is the same
//! for both). Block numbers and counts are in 4 KiB units
//! ([`TRANSFER_SIZE`]); `id` is the client's, echoed in the response.
//!
//! The rules a client relies on (sDDF's, made exact):
//!
//! - requests may complete in any order; a response's `id` says which;
//! - a **flush** makes durable every write whose response arrived *before
//!   the flush was sent* (virtio-blk's rule): to make a write durable, wait
//!   for its response, then flush, then wait for the flush's;
//! - a **barrier** completes once every request sent before it has, and no
//!   request sent after it starts before that;
//! - a bad request (outside the partition or the data region, misaligned,
//!   zero blocks, unknown code) gets an error response, never silence, and
//!   harms no one else.
//!
//! ## Wiring
//!
//! The tool wires a client of a `[blk.DEVICE]` partition with the setvars
//! named in [`symbols`]; [`Connection::from_setvars`] attaches to them.
//!
//! Owns: the queue region's layout and the client's handle. Must not: know
//! a server's internals. `unsafe`: only to turn the patched addresses of
//! mapped regions into [`Shared`] windows.
#![no_std]
#![deny(unsafe_code)]

use core::fmt;

pub use septa_queue::blk::{
    Request, RequestCode, RequestRing, Response, ResponseRing, Status, StorageInfo, StorageRegion,
    TRANSFER_SIZE,
};
use septa_queue::{blk, AttachError, PeerFault, QueueError, Ring, Shared};
use septa_runtime::{setvar, Channel};

/// The setvars that wire a client (the tool sets them for a `[blk]`
/// partition's client; a hand-wired client sets them itself).
pub mod symbols {
    /// Where the queue region is mapped, and its size.
    pub const QUEUES: &str = "blk_queues";
    pub const QUEUES_SIZE: &str = "blk_queues_size";
    /// The queues' capacity (a power of two): a `value` setvar.
    pub const CAPACITY: &str = "blk_capacity";
    /// Where the data region is mapped, and its size.
    pub const DATA: &str = "blk_data";
    pub const DATA_SIZE: &str = "blk_data_size";
    /// What `io_or_offset` counts from: 0 (unset) for a virtualiser; the
    /// data region's physical address (a `region` setvar) for a driver.
    pub const DATA_IO: &str = "blk_data_io";
    /// Where the storage-info region is mapped (read-only).
    pub const INFO: &str = "blk_info";
    /// The channel to the server (a channel end's `setvar_id`).
    pub const CHANNEL: &str = "blk_channel";
}

setvar! {
    static QUEUES = "blk_queues";
    static QUEUES_SIZE = "blk_queues_size";
    static CAPACITY = "blk_capacity";
    static DATA = "blk_data";
    static DATA_SIZE = "blk_data_size";
    static DATA_IO = "blk_data_io";
    static INFO = "blk_info";
    static CHANNEL = "blk_channel";
}

/// Where the response ring starts in a queue region of `capacity`: after
/// the request ring, 64-byte aligned.
pub fn responses_at(capacity: u32) -> usize {
    RequestRing::bytes(capacity).next_multiple_of(64)
}

/// Bytes a queue region of `capacity` needs.
pub fn queue_region_bytes(capacity: u32) -> usize {
    responses_at(capacity) + ResponseRing::bytes(capacity)
}

/// The two rings of a queue region, as windows.
pub fn rings(region: &Shared, capacity: u32) -> Option<(Shared, Shared)> {
    let requests = region.window(0, RequestRing::bytes(capacity))?;
    let responses = region.window(responses_at(capacity), ResponseRing::bytes(capacity))?;
    Some((requests, responses))
}

/// Why a client could not attach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetupError {
    /// A setvar is zero: the description does not wire this PD as a block
    /// client (the symbol is named).
    NotWired(&'static str),
    /// The capacity is no power of two, or the region cannot hold it.
    Queues(AttachError),
    /// The storage-info region is too small or misaligned.
    Info(AttachError),
    /// The queue region is smaller than its two rings.
    QueueRegion { need: usize, have: usize },
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::NotWired(s) => {
                write!(
                    f,
                    "setvar `{s}` is not set: the PD is not wired as a block client"
                )
            }
            SetupError::Queues(e) => write!(f, "the queues: {e:?}"),
            SetupError::Info(e) => write!(f, "the storage-info region: {e:?}"),
            SetupError::QueueRegion { need, have } => {
                write!(
                    f,
                    "the queue region holds {have} bytes, its rings need {need}"
                )
            }
        }
    }
}

/// A client's connection to its block server.
#[derive(Debug)]
pub struct Connection {
    rings: blk::Client,
    data: Shared,
    io_base: u64,
    info: StorageRegion,
    channel: Channel,
}

/// A window of `len` bytes at the patched address `vaddr`.
fn window(vaddr: u64, len: u64, name: &'static str) -> Result<Shared, SetupError> {
    if vaddr == 0 || len == 0 {
        return Err(SetupError::NotWired(name));
    }
    #[allow(unsafe_code)]
    // SAFETY: the tool patched `vaddr` and `len` with a mapping of this PD
    // (`setvar_vaddr`/`setvar_size` of a map in the system description),
    // which stays mapped, read-write unless the description says read-only
    // (the info region, only read here), for the PD's whole life; the
    // client touches it only through `Shared`.
    let w = unsafe { Shared::new(vaddr as *mut u8, len as usize) };
    w.ok_or(SetupError::NotWired(name))
}

impl Connection {
    /// Attaches to the regions the description wired this PD with.
    pub fn from_setvars() -> Result<Connection, SetupError> {
        let queues = window(QUEUES.get(), QUEUES_SIZE.get(), symbols::QUEUES)?;
        let data = window(DATA.get(), DATA_SIZE.get(), symbols::DATA)?;
        let info = window(
            INFO.get(),
            blk::info_layout::REGION_SIZE as u64,
            symbols::INFO,
        )?;
        let capacity = u32::try_from(CAPACITY.get()).unwrap_or(0);
        let channel = Channel::new(CHANNEL.get() as u8);
        Connection::attach(queues, capacity, data, DATA_IO.get(), info, channel)
    }

    /// Attaches to explicit windows (host tests, or a PD wired otherwise).
    pub fn attach(
        queues: Shared,
        capacity: u32,
        data: Shared,
        io_base: u64,
        info: Shared,
        channel: Channel,
    ) -> Result<Connection, SetupError> {
        let need = queue_region_bytes(capacity.max(1));
        if !capacity.is_power_of_two() {
            return Err(SetupError::Queues(AttachError::Capacity(capacity)));
        }
        let (rq, rs) = rings(&queues, capacity).ok_or(SetupError::QueueRegion {
            need,
            have: queues.len(),
        })?;
        Ok(Connection {
            rings: blk::Client::attach(rq, rs, capacity).map_err(SetupError::Queues)?,
            data,
            io_base,
            info: StorageRegion::attach(info).map_err(SetupError::Info)?,
            channel,
        })
    }

    /// The data region.
    pub fn data(&self) -> &Shared {
        &self.data
    }

    /// The queues' capacity: at most this many requests in flight.
    pub fn capacity(&self) -> u32 {
        self.rings.requests.capacity()
    }

    /// What the server says the storage is, once it is ready: its
    /// capacity (in 4 KiB blocks) is this client's whole partition.
    pub fn info(&self) -> Option<StorageInfo> {
        self.info.read()
    }

    /// Stages a request (sent by [`send`](Self::send)). `offset` is where
    /// its buffer starts in the data region.
    pub fn stage(
        &mut self,
        code: RequestCode,
        offset: u64,
        block: u64,
        count: u16,
        id: u32,
    ) -> Result<(), QueueError> {
        self.rings.requests.stage(Request {
            code,
            io_or_offset: self.io_base.wrapping_add(offset),
            block_number: block,
            count,
            id,
        })
    }

    /// Publishes the staged requests and notifies the server.
    pub fn send(&mut self) {
        self.rings.requests.commit();
        let _ = self.channel.notify();
    }

    /// The next response, if one has arrived.
    pub fn response(&mut self) -> Result<Option<Response>, PeerFault> {
        self.rings.responses.dequeue()
    }

    /// Sends what is staged, then takes responses until `n` have arrived,
    /// handing each to `f`; between looks it calls `wait`, which must
    /// block until the server notifies (a PD that may wait inside a
    /// handler passes `OwnNotification::wait`). For a client that works
    /// one batch at a time.
    pub fn complete(
        &mut self,
        n: usize,
        mut wait: impl FnMut(),
        mut f: impl FnMut(Response),
    ) -> Result<(), PeerFault> {
        self.send();
        let mut got = 0;
        while got < n {
            match self.response()? {
                Some(r) => {
                    f(r);
                    got += 1;
                }
                None => wait(),
            }
        }
        Ok(())
    }

    /// The channel to the server (a notification on it means responses).
    pub fn channel(&self) -> Channel {
        self.channel
    }

    /// Protocol faults the server committed (a server is trusted, but a
    /// client still checks).
    pub fn faults(&self) -> u32 {
        self.rings.requests.faults().count() + self.rings.responses.faults().count()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use septa_queue::host::leak;

    #[test]
    fn the_queue_region_layout() {
        // 16 + 32 * 32 = 1040 bytes of requests, rounded up to 64.
        assert_eq!(responses_at(32), 1088);
        assert_eq!(responses_at(1), 64);
        assert_eq!(queue_region_bytes(128), 4160 + 8 + 128 * 12);
        assert!(queue_region_bytes(128) <= 8192);
    }

    #[test]
    fn a_client_and_a_server_round_trip() {
        let q = leak(queue_region_bytes(8));
        let info = leak(4096);
        let data = leak(8 * 4096);
        let mut c = Connection::attach(q, 8, data, 0x4000_0000, info, Channel::new(3)).unwrap();
        let (rq, rs) = rings(&q, 8).unwrap();
        let mut server = blk::Server::attach(rq, rs, 8).unwrap();
        c.stage(RequestCode::Read, 0x2000, 5, 2, 77).unwrap();
        assert_eq!(server.requests.dequeue().unwrap(), None, "not sent yet");
        c.rings.requests.commit();
        let r = server.requests.dequeue().unwrap().unwrap();
        assert_eq!(
            (r.io_or_offset, r.block_number, r.count, r.id),
            (0x4000_2000, 5, 2, 77)
        );
        server
            .responses
            .enqueue(Response {
                status: Status::Ok,
                success_count: 2,
                id: 77,
            })
            .unwrap();
        assert_eq!(c.response().unwrap().unwrap().id, 77);
        assert_eq!(c.info(), None, "the server has not published");
        assert!(matches!(
            Connection::attach(q, 6, data, 0, info, Channel::new(0)),
            Err(SetupError::Queues(AttachError::Capacity(6)))
        ));
        assert!(matches!(
            Connection::attach(q, 64, data, 0, info, Channel::new(0)),
            Err(SetupError::QueueRegion { .. })
        ));
    }
}
