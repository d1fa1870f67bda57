//! The master boot record: four primary entries at byte 446 of LBA 0, the
//! signature 0x55 0xAA at byte 510.
//!
//! ```text
//! entry (16 bytes)
//!   0 status   1 CHS of the first sector (3)   4 type   5 CHS of the last (3)
//!   8 first LBA (u32)   12 sectors (u32)
//! ```
//! CHS values are ignored when read and written as "past the CHS range"
//! (0xfe 0xff 0xff), as every tool of this century does.

use crate::{
    check_placement, le_u32, put_u32, Name, NewPartition, PartitionError, WriteError, SECTOR,
};

/// The type of GPT's protective entry.
pub const PROTECTIVE: u8 = 0xee;
/// "Linux", the type the writer gives partitions.
pub const LINUX: u8 = 0x83;
/// Extended partition types (CHS, LBA, Linux), not followed.
pub const EXTENDED: [u8; 3] = [0x05, 0x0f, 0x85];

const ENTRIES_AT: usize = 446;
const SIGNATURE_AT: usize = 510;

/// One primary entry, as stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    pub kind: u8,
    pub first: u32,
    pub sectors: u32,
}

/// The four entries of the MBR in `lba0`, or `None` without the signature.
pub fn parse(lba0: &[u8]) -> Option<[Entry; 4]> {
    if lba0.len() < SECTOR as usize || lba0[SIGNATURE_AT..SIGNATURE_AT + 2] != [0x55, 0xaa] {
        return None;
    }
    Some(core::array::from_fn(|i| {
        let e = &lba0[ENTRIES_AT + 16 * i..ENTRIES_AT + 16 * (i + 1)];
        Entry {
            kind: e[4],
            first: le_u32(e, 8),
            sectors: le_u32(e, 12),
        }
    }))
}

/// An entry as (first, last, name).
pub(crate) fn entry(e: &Entry) -> Result<(u64, u64, Name), PartitionError> {
    if e.kind == 0 {
        return Err(PartitionError::Empty);
    }
    if EXTENDED.contains(&e.kind) {
        return Err(PartitionError::Extended);
    }
    let first = u64::from(e.first);
    let last = (first + u64::from(e.sectors)).wrapping_sub(1);
    if e.sectors == 0 {
        return Err(PartitionError::Reversed {
            first,
            last: first.wrapping_sub(1),
        });
    }
    Ok((first, last, Name::EMPTY))
}

fn put_entry(sector: &mut [u8], i: usize, kind: u8, first: u32, sectors: u32) {
    let e = &mut sector[ENTRIES_AT + 16 * i..ENTRIES_AT + 16 * (i + 1)];
    e.fill(0);
    e[1..4].copy_from_slice(&[0xfe, 0xff, 0xff]);
    e[4] = kind;
    e[5..8].copy_from_slice(&[0xfe, 0xff, 0xff]);
    put_u32(e, 8, first);
    put_u32(e, 12, sectors);
}

fn sign(sector: &mut [u8]) {
    sector[SIGNATURE_AT] = 0x55;
    sector[SIGNATURE_AT + 1] = 0xaa;
}

/// Writes GPT's protective MBR into `lba0` (one sector) for a disk of
/// `sectors`.
pub(crate) fn protective(lba0: &mut [u8], sectors: u64) {
    lba0.fill(0);
    let size = (sectors - 1).min(u64::from(u32::MAX)) as u32;
    put_entry(lba0, 0, PROTECTIVE, 1, size);
    sign(lba0);
}

/// Writes an MBR with `parts` (at most four, type Linux) into `lba0` (the
/// first sector of the disk) for a disk of `sectors`.
pub fn write(sectors: u64, parts: &[NewPartition<'_>], lba0: &mut [u8]) -> Result<(), WriteError> {
    if lba0.len() < SECTOR as usize {
        return Err(WriteError::Buffer);
    }
    if parts.len() > 4 {
        return Err(WriteError::TooMany { max: 4 });
    }
    if sectors < 2 || sectors > u64::from(u32::MAX) {
        return Err(WriteError::DiskSize);
    }
    check_placement(parts, 1, sectors - 1)?;
    let lba0 = &mut lba0[..SECTOR as usize];
    lba0.fill(0);
    for (i, p) in parts.iter().enumerate() {
        put_entry(lba0, i, LINUX, p.first as u32, p.sectors as u32);
    }
    sign(lba0);
    Ok(())
}
