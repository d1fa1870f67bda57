//! What a client may ask: the virtualiser's checks, apart from the queues
//! so that the host tests can try every edge.
#![forbid(unsafe_code)]

use core::fmt;

use septa_block_protocol::{Request, RequestCode, Status, TRANSFER_SIZE};
use septa_partition::{Partition, SECTOR};

/// Sectors in a 4 KiB block.
pub const SECTORS_PER_BLOCK: u64 = TRANSFER_SIZE as u64 / SECTOR;

/// A client's partition, in 4 KiB blocks of the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    pub first: u64,
    pub blocks: u64,
}

/// Why a partition cannot be given out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExtentError {
    /// It does not start or end on a 4 KiB block of the disk.
    Unaligned { first: u64, sectors: u64 },
}

impl fmt::Display for ExtentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ExtentError::Unaligned { first, sectors } => write!(
                f,
                "sectors {first}+{sectors} are not whole 4 KiB blocks of the disk"
            ),
        }
    }
}

impl Extent {
    /// The blocks of `p`, which must be whole 4 KiB blocks of the disk.
    pub fn of(p: &Partition) -> Result<Extent, ExtentError> {
        if !p.first.is_multiple_of(SECTORS_PER_BLOCK)
            || !p.sectors.is_multiple_of(SECTORS_PER_BLOCK)
        {
            return Err(ExtentError::Unaligned {
                first: p.first,
                sectors: p.sectors,
            });
        }
        Ok(Extent {
            first: p.first / SECTORS_PER_BLOCK,
            blocks: p.sectors / SECTORS_PER_BLOCK,
        })
    }
}

/// What the virtualiser sends the driver for a client's request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forward {
    /// A transfer: the disk's block and the buffer's device address.
    Transfer { block: u64, io: u64 },
    /// A flush or barrier, as it is.
    Order,
}

/// Why a request is refused: the status it gets, and what to log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    NoBlocks,
    /// Blocks `block..block+count` leave the partition of `blocks`.
    OutsidePartition {
        block: u64,
        count: u16,
        blocks: u64,
    },
    /// The buffer at `offset` (for `len` bytes) leaves the data region of
    /// `size`, or is not on a 4 KiB boundary.
    OutsideData {
        offset: u64,
        len: u64,
        size: u64,
    },
    /// A write to a read-only disk.
    ReadOnly,
    /// An unknown request code.
    Code(u32),
}

impl Refusal {
    pub fn status(&self) -> Status {
        match self {
            Refusal::ReadOnly => Status::Io,
            _ => Status::InvalidParam,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Refusal::NoBlocks => f.write_str("a transfer of no blocks"),
            Refusal::OutsidePartition { block, count, blocks } => write!(
                f,
                "blocks {block}..{} leave its partition of {blocks} blocks",
                block as u128 + u128::from(count)
            ),
            Refusal::OutsideData { offset, len, size } => write!(
                f,
                "a buffer at {offset:#x}+{len:#x} leaves its data region of {size:#x} bytes or is not 4 KiB-aligned"
            ),
            Refusal::ReadOnly => f.write_str("a write to a read-only disk"),
            Refusal::Code(c) => write!(f, "unknown request code {c}"),
        }
    }
}

/// Checks `r` of a client whose partition is `p`, whose data region is
/// `data_size` bytes at device address `data_io`.
pub fn check(
    r: &Request,
    p: Extent,
    data_io: u64,
    data_size: u64,
    read_only: bool,
) -> Result<Forward, Refusal> {
    match r.code {
        RequestCode::Read | RequestCode::Write => {}
        RequestCode::Flush | RequestCode::Barrier => return Ok(Forward::Order),
        RequestCode::Other(c) => return Err(Refusal::Code(c)),
    }
    if r.count == 0 {
        return Err(Refusal::NoBlocks);
    }
    let count = u64::from(r.count);
    if r.block_number
        .checked_add(count)
        .is_none_or(|end| end > p.blocks)
    {
        return Err(Refusal::OutsidePartition {
            block: r.block_number,
            count: r.count,
            blocks: p.blocks,
        });
    }
    let len = count * TRANSFER_SIZE as u64;
    let offset = r.io_or_offset;
    if !offset.is_multiple_of(TRANSFER_SIZE as u64)
        || offset.checked_add(len).is_none_or(|end| end > data_size)
    {
        return Err(Refusal::OutsideData {
            offset,
            len,
            size: data_size,
        });
    }
    if read_only && r.code == RequestCode::Write {
        return Err(Refusal::ReadOnly);
    }
    Ok(Forward::Transfer {
        block: p.first + r.block_number,
        io: data_io + offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use septa_partition::Name;

    const P: Extent = Extent {
        first: 256,
        blocks: 100,
    };
    const IO: u64 = 0x4000_0000;
    const DATA: u64 = 64 << 10;

    fn req(code: RequestCode, offset: u64, block: u64, count: u16) -> Request {
        Request {
            code,
            io_or_offset: offset,
            block_number: block,
            count,
            id: 5,
        }
    }

    #[test]
    fn transfers_inside_are_moved_to_the_partition() {
        let r = req(RequestCode::Write, 0x3000, 98, 2);
        assert_eq!(
            check(&r, P, IO, DATA, false),
            Ok(Forward::Transfer {
                block: 354,
                io: IO + 0x3000
            })
        );
        let r = req(RequestCode::Read, 0, 0, 16);
        assert!(check(&r, P, IO, DATA, true).is_ok());
    }

    #[test]
    fn everything_outside_is_refused() {
        let c = |r: Request| check(&r, P, IO, DATA, false).unwrap_err();
        assert!(matches!(
            c(req(RequestCode::Read, 0, 99, 2)),
            Refusal::OutsidePartition { .. }
        ));
        assert!(matches!(
            c(req(RequestCode::Read, 0, 100, 1)),
            Refusal::OutsidePartition { .. }
        ));
        assert!(matches!(
            c(req(RequestCode::Write, 0, u64::MAX, 1)),
            Refusal::OutsidePartition { .. }
        ));
        assert!(matches!(
            c(req(RequestCode::Write, 0xf000, 0, 2)),
            Refusal::OutsideData { .. }
        ));
        assert!(matches!(
            c(req(RequestCode::Write, 0x800, 0, 1)),
            Refusal::OutsideData { .. }
        ));
        assert!(matches!(
            c(req(RequestCode::Write, u64::MAX - 0xfff, 0, 1)),
            Refusal::OutsideData { .. }
        ));
        assert_eq!(c(req(RequestCode::Read, 0, 0, 0)), Refusal::NoBlocks);
        assert_eq!(c(req(RequestCode::Other(7), 0, 0, 1)), Refusal::Code(7));
        assert_eq!(
            check(&req(RequestCode::Write, 0, 0, 1), P, IO, DATA, true),
            Err(Refusal::ReadOnly)
        );
        assert_eq!(Refusal::ReadOnly.status(), Status::Io);
        assert_eq!(Refusal::NoBlocks.status(), Status::InvalidParam);
    }

    #[test]
    fn flushes_and_barriers_pass() {
        for code in [RequestCode::Flush, RequestCode::Barrier] {
            assert_eq!(
                check(&req(code, 7, 9999, 0), P, IO, DATA, true),
                Ok(Forward::Order)
            );
        }
    }

    #[test]
    fn partitions_must_be_whole_blocks() {
        let p = |first, sectors| Partition {
            index: 1,
            first,
            sectors,
            name: Name::EMPTY,
        };
        assert_eq!(
            Extent::of(&p(2048, 8192)),
            Ok(Extent {
                first: 256,
                blocks: 1024
            })
        );
        assert!(Extent::of(&p(34, 8192)).is_err());
        assert!(Extent::of(&p(2048, 8191)).is_err());
    }
}
