//! What the driver does with one request, and what a virtio status means
//! to the client: the driver's decisions, apart from the device so that
//! the host tests can check them.
#![forbid(unsafe_code)]

use septa_block_protocol::{Request, RequestCode, Status, TRANSFER_SIZE};

/// Bytes of a virtio-blk sector: offsets on the device count these,
/// whatever its logical block size.
pub const SECTOR: u64 = 512;
/// Sectors in a transfer unit of the block protocol.
pub const SECTORS_PER_BLOCK: u64 = TRANSFER_SIZE as u64 / SECTOR;

/// virtio-blk request types (virtio 1.2, 5.2.6).
pub const T_IN: u32 = 0;
pub const T_OUT: u32 = 1;
pub const T_FLUSH: u32 = 4;
pub const T_GET_ID: u32 = 8;

/// virtio-blk statuses.
pub const S_OK: u8 = 0;
pub const S_IOERR: u8 = 1;
pub const S_UNSUPP: u8 = 2;

/// Bytes of the device id `T_GET_ID` returns.
pub const ID_BYTES: usize = 20;

/// The client's status for the status byte the device wrote: an I/O
/// error is `Io`; a request the device does not support is the client's
/// invalid parameter; anything else (no status at all included) is
/// unspecified.
pub fn status(device: u8) -> Status {
    match device {
        S_OK => Status::Ok,
        S_IOERR => Status::Io,
        S_UNSUPP => Status::InvalidParam,
        _ => Status::Unspecified,
    }
}

/// What to do with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Move `len` bytes between the device's `sector` and the buffer at
    /// device address `io`.
    Transfer {
        write: bool,
        sector: u64,
        io: u64,
        len: usize,
    },
    /// A virtio flush.
    Flush,
    /// Wait for everything in flight, then answer.
    Barrier,
    /// Answer at once with this status.
    Refuse(Status),
}

/// The plan for `r`. The device, not the driver, knows its own size: a
/// transfer past its end goes to it and comes back as an I/O error, which
/// is the device's answer to give. What the driver refuses is what cannot
/// be put to the device at all: no blocks, sector numbers that overflow,
/// codes it does not know.
pub fn plan(r: &Request) -> Plan {
    let write = match r.code {
        RequestCode::Read => false,
        RequestCode::Write => true,
        RequestCode::Flush => return Plan::Flush,
        RequestCode::Barrier => return Plan::Barrier,
        RequestCode::Other(_) => return Plan::Refuse(Status::InvalidParam),
    };
    let count = u64::from(r.count);
    let sector = r.block_number.checked_mul(SECTORS_PER_BLOCK);
    let end = sector.and_then(|s| s.checked_add(count * SECTORS_PER_BLOCK));
    match (count, sector, end) {
        (1.., Some(sector), Some(_)) => Plan::Transfer {
            write,
            sector,
            io: r.io_or_offset,
            len: (count * TRANSFER_SIZE as u64) as usize,
        },
        _ => Plan::Refuse(Status::InvalidParam),
    }
}

/// A virtio-blk request header (16 bytes: type, reserved, sector).
pub fn header(kind: u32, sector: u64) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[..4].copy_from_slice(&kind.to_le_bytes());
    h[8..].copy_from_slice(&sector.to_le_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(code: RequestCode, block: u64, count: u16) -> Request {
        Request {
            code,
            io_or_offset: 0x4000_0000,
            block_number: block,
            count,
            id: 1,
        }
    }

    #[test]
    fn statuses_map_to_the_protocols() {
        assert_eq!(status(S_OK), Status::Ok);
        assert_eq!(status(S_IOERR), Status::Io);
        assert_eq!(status(S_UNSUPP), Status::InvalidParam);
        assert_eq!(status(0xff), Status::Unspecified);
    }

    #[test]
    fn transfers_count_sectors_of_512_bytes() {
        assert_eq!(
            plan(&req(RequestCode::Write, 3, 2)),
            Plan::Transfer {
                write: true,
                sector: 24,
                io: 0x4000_0000,
                len: 8192
            }
        );
        assert!(matches!(
            plan(&req(RequestCode::Read, 0, 1)),
            Plan::Transfer { write: false, .. }
        ));
    }

    #[test]
    fn what_cannot_reach_the_device_is_refused() {
        let bad = Plan::Refuse(Status::InvalidParam);
        assert_eq!(plan(&req(RequestCode::Read, 0, 0)), bad);
        assert_eq!(plan(&req(RequestCode::Read, u64::MAX / 4, 1)), bad);
        assert_eq!(plan(&req(RequestCode::Write, u64::MAX / 8, 1)), bad);
        assert_eq!(plan(&req(RequestCode::Other(9), 0, 1)), bad);
        assert_eq!(plan(&req(RequestCode::Flush, 0, 0)), Plan::Flush);
        assert_eq!(plan(&req(RequestCode::Barrier, 0, 0)), Plan::Barrier);
    }

    #[test]
    fn headers_are_little_endian() {
        assert_eq!(
            header(T_FLUSH, 0x0102),
            [4, 0, 0, 0, 0, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0, 0]
        );
    }
}
