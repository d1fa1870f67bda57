//! # septa-partition: the partition table of a disk
//!
//! The block virtualiser gives each client one partition of a shared disk,
//! so it must know where the partitions are; the tool writes the table of
//! every disk image it creates. This crate is both sides: [`read`] finds
//! the table in the first and last bytes of a disk, [`gpt::write`] and
//! [`mbr::write`] make one.
//!
//! ## What is read
//!
//! - **GPT** (UEFI 2.10, chapter 5): a protective MBR at LBA 0, the primary
//!   header at LBA 1 and its entry array, and the backup header at the
//!   disk's last LBA (or where the primary says) with its own array. Each
//!   header is checked in full: signature, revision 1.0, header size,
//!   header CRC-32, its own LBA, the usable range, entry size and count,
//!   and the CRC-32 of its entry array. The primary wins when it is sound;
//!   a damaged primary with a sound backup is read from the backup, and
//!   either damage is reported in [`Table::notes`], as is a backup that
//!   disagrees with the primary. Both damaged is an error naming both
//!   reasons. Partition N is entry N (from 1) of the array, as Linux
//!   numbers them.
//! - **MBR**: the four primary entries; partition N is entry N. Extended
//!   partitions are not followed (their entry reads as unsupported).
//!
//! Nothing read is trusted: every offset and count is checked against the
//! bytes the caller has, and each partition is checked when asked for
//! ([`Table::partition`]): inside the usable area and the disk, its first
//! sector before its last, overlapping no other. A table that is garbage
//! is an error, never a panic (property-tested on random bytes).
//!
//! Sectors are 512 bytes (the logical block of a virtio disk unless told
//! otherwise); the caller passes the first [`HEAD_BYTES`] and last
//! [`TAIL_BYTES`] of the disk, enough for a GPT laid out as every tool lays
//! it out (entries right after each header). An entry array elsewhere is
//! reported as out of reach.
//!
//! Owns: the on-disk formats. Must not: do I/O, allocate, or decide policy
//! (which partition a client gets is the virtualiser's business).
#![no_std]
#![forbid(unsafe_code)]

use core::fmt;

pub mod gpt;
pub mod mbr;

/// Bytes of a logical sector.
pub const SECTOR: u64 = 512;
/// Bytes from the start of the disk a reader should pass: LBA 0..=127
/// (the protective MBR, the primary header and up to 126 sectors of
/// entries).
pub const HEAD_BYTES: usize = 64 << 10;
/// Bytes from the end of the disk a reader should pass: the backup header
/// and its entries.
pub const TAIL_BYTES: usize = 64 << 10;

/// Which kind of table a disk has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Gpt,
    Mbr,
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scheme::Gpt => "GPT",
            Scheme::Mbr => "MBR",
        })
    }
}

/// The bytes of a disk the reader has: its first and its last, and how
/// many sectors it holds.
#[derive(Clone, Copy, Debug)]
pub struct Window<'a> {
    /// Bytes from LBA 0.
    pub head: &'a [u8],
    /// Bytes ending at the disk's end.
    pub tail: &'a [u8],
    /// The disk's size in sectors.
    pub sectors: u64,
}

impl<'a> Window<'a> {
    /// `count` sectors from `lba`, if they lie in the head or the tail.
    pub fn sectors_at(&self, lba: u64, count: u64) -> Option<&'a [u8]> {
        let end = lba.checked_add(count)?;
        if end > self.sectors {
            return None;
        }
        let (start, len) = (lba.checked_mul(SECTOR)?, count.checked_mul(SECTOR)?);
        let len = usize::try_from(len).ok()?;
        if let Some(b) = usize::try_from(start)
            .ok()
            .and_then(|s| self.head.get(s..s.checked_add(len)?))
        {
            return Some(b);
        }
        let tail_start = (self.sectors * SECTOR).checked_sub(self.tail.len() as u64)?;
        let rel = usize::try_from(start.checked_sub(tail_start)?).ok()?;
        self.tail.get(rel..rel.checked_add(len)?)
    }
}

/// A partition's name: GPT's 36 UTF-16 code units, or none (MBR).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Name {
    units: [u16; 36],
}

impl Name {
    pub const EMPTY: Name = Name { units: [0; 36] };

    /// The name from its UTF-16 code units (up to the first NUL).
    pub fn from_units(units: [u16; 36]) -> Name {
        Name { units }
    }

    /// `text` as a name, if it fits 36 UTF-16 code units.
    pub fn new(text: &str) -> Option<Name> {
        let mut units = [0u16; 36];
        for (n, u) in text.encode_utf16().enumerate() {
            *units.get_mut(n)? = u;
        }
        Some(Name { units })
    }

    /// The code units, NUL-padded.
    pub fn units(&self) -> &[u16; 36] {
        &self.units
    }

    fn chars(&self) -> impl Iterator<Item = char> + '_ {
        let len = self.units.iter().position(|&u| u == 0).unwrap_or(36);
        char::decode_utf16(self.units[..len].iter().copied())
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
    }

    /// Whether the name reads `text`.
    pub fn is(&self, text: &str) -> bool {
        self.chars().eq(text.chars())
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        for c in self.chars() {
            f.write_char(c)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// One partition, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partition {
    /// Its number, from 1 (the entry's place in the table).
    pub index: u32,
    /// Its first sector.
    pub first: u64,
    /// Its length in sectors.
    pub sectors: u64,
    /// Its name (GPT), else empty.
    pub name: Name,
}

/// Why partition N cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartitionError {
    /// The table has no entry N.
    NoEntry { count: u32 },
    /// Entry N is unused.
    Empty,
    /// An MBR extended partition (not followed).
    Extended,
    /// The last sector is before the first.
    Reversed { first: u64, last: u64 },
    /// It leaves the usable area (GPT) or the disk.
    OutOfBounds {
        first: u64,
        last: u64,
        low: u64,
        high: u64,
    },
    /// It overlaps partition `other`.
    Overlap { other: u32 },
}

impl fmt::Display for PartitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PartitionError::NoEntry { count } => write!(f, "the table has {count} entries"),
            PartitionError::Empty => f.write_str("the entry is unused"),
            PartitionError::Extended => {
                f.write_str("it is an MBR extended partition, which is not supported")
            }
            PartitionError::Reversed { first, last } => {
                write!(f, "its last sector {last} is before its first {first}")
            }
            PartitionError::OutOfBounds {
                first,
                last,
                low,
                high,
            } => write!(
                f,
                "sectors {first}..={last} leave the usable area {low}..={high}"
            ),
            PartitionError::Overlap { other } => write!(f, "it overlaps partition {other}"),
        }
    }
}

/// Why a disk has no usable table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableError {
    /// The window is smaller than a table needs.
    Window,
    /// No MBR signature and no GPT header: a blank or foreign disk.
    NoTable,
    /// A GPT (its protective MBR or a header signature says so) whose two
    /// headers are both unusable.
    Gpt {
        primary: gpt::HeaderError,
        backup: gpt::HeaderError,
    },
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TableError::Window => f.write_str("too few bytes of the disk to read a table"),
            TableError::NoTable => {
                f.write_str("no partition table (no MBR signature, no GPT header)")
            }
            TableError::Gpt { primary, backup } => write!(
                f,
                "both GPT headers are unusable: primary: {primary}; backup: {backup}"
            ),
        }
    }
}

/// What the reader found wrong but could read around.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Notes {
    /// The primary GPT header (or its array) is damaged: the backup was read.
    pub primary: Option<gpt::HeaderError>,
    /// The backup GPT header (or its array) is damaged or out of reach.
    pub backup: Option<gpt::HeaderError>,
    /// Both are sound but do not describe the same partitions.
    pub mismatch: bool,
}

impl Notes {
    /// Whether anything was found wrong.
    pub fn any(&self) -> bool {
        self.primary.is_some() || self.backup.is_some() || self.mismatch
    }
}

/// A partition table, read.
#[derive(Clone, Copy, Debug)]
pub struct Table<'a> {
    pub scheme: Scheme,
    entries: Entries<'a>,
    pub notes: Notes,
    sectors: u64,
}

#[derive(Clone, Copy, Debug)]
enum Entries<'a> {
    Gpt {
        header: gpt::Header,
        array: &'a [u8],
    },
    Mbr([mbr::Entry; 4]),
}

/// Reads the table of the disk `window` shows.
pub fn read<'a>(window: &Window<'a>) -> Result<Table<'a>, TableError> {
    let lba0 = window.sectors_at(0, 1).ok_or(TableError::Window)?;
    let mbr = mbr::parse(lba0);
    let gpt_signed = window
        .sectors_at(1, 1)
        .is_some_and(|s| s.starts_with(&gpt::SIGNATURE));
    let protective = mbr.is_some_and(|e| e.iter().any(|e| e.kind == mbr::PROTECTIVE));
    if protective || gpt_signed {
        let (header, array, notes) = gpt::read(window)?;
        return Ok(Table {
            scheme: Scheme::Gpt,
            entries: Entries::Gpt { header, array },
            notes,
            sectors: window.sectors,
        });
    }
    match mbr {
        Some(entries) => Ok(Table {
            scheme: Scheme::Mbr,
            entries: Entries::Mbr(entries),
            notes: Notes::default(),
            sectors: window.sectors,
        }),
        None => Err(TableError::NoTable),
    }
}

/// An entry as stored: (first, last) inclusive, or why it is no partition.
type Raw = Result<(u64, u64, Name), PartitionError>;

impl<'a> Table<'a> {
    /// How many entries the table has (used or not).
    pub fn count(&self) -> u32 {
        match &self.entries {
            Entries::Gpt { header, .. } => header.entries,
            Entries::Mbr(_) => 4,
        }
    }

    /// The sectors partitions may use: (first, last) inclusive.
    pub fn usable(&self) -> (u64, u64) {
        match &self.entries {
            Entries::Gpt { header, .. } => (header.first_usable, header.last_usable),
            Entries::Mbr(_) => (1, self.sectors.saturating_sub(1)),
        }
    }

    fn raw(&self, index: u32) -> Raw {
        if index == 0 || index > self.count() {
            return Err(PartitionError::NoEntry {
                count: self.count(),
            });
        }
        let i = (index - 1) as usize;
        match &self.entries {
            Entries::Gpt { header, array } => {
                let size = header.entry_size as usize;
                let e = array
                    .get(i * size..(i + 1) * size)
                    .ok_or(PartitionError::NoEntry {
                        count: self.count(),
                    })?;
                gpt::entry(e)
            }
            Entries::Mbr(entries) => mbr::entry(&entries[i]),
        }
    }

    /// Partition `index` (from 1), checked against the usable area and
    /// every other partition.
    pub fn partition(&self, index: u32) -> Result<Partition, PartitionError> {
        let (first, last, name) = self.raw(index)?;
        if last < first {
            return Err(PartitionError::Reversed { first, last });
        }
        let (low, high) = self.usable();
        let high = high.min(self.sectors.saturating_sub(1));
        if first < low || last > high {
            return Err(PartitionError::OutOfBounds {
                first,
                last,
                low,
                high,
            });
        }
        for other in 1..=self.count() {
            if other == index {
                continue;
            }
            if let Ok((f, l, _)) = self.raw(other) {
                if f <= l && f <= last && first <= l {
                    return Err(PartitionError::Overlap { other });
                }
            }
        }
        Ok(Partition {
            index,
            first,
            sectors: last - first + 1,
            name,
        })
    }

    /// Every entry that is in use, with its check.
    pub fn partitions(&self) -> impl Iterator<Item = Result<Partition, PartitionError>> + '_ {
        (1..=self.count())
            .filter(|&i| !matches!(self.raw(i), Err(PartitionError::Empty)))
            .map(|i| self.partition(i))
    }
}

/// Little-endian fields at fixed offsets of a byte slice whose length the
/// caller has checked.
pub(crate) fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub(crate) fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from(le_u32(b, at)) | u64::from(le_u32(b, at + 4)) << 32
}

pub(crate) fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// A partition to write into a new table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewPartition<'a> {
    pub name: &'a str,
    /// First sector.
    pub first: u64,
    /// Length in sectors.
    pub sectors: u64,
}

/// Why a table could not be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteError {
    /// The head or tail buffer is smaller than the table.
    Buffer,
    /// More partitions than the table holds.
    TooMany { max: usize },
    /// A partition leaves the usable area or overlaps another.
    Placement { index: u32 },
    /// A name longer than 36 UTF-16 code units.
    Name { index: u32 },
    /// The disk is too small or (MBR) too large for the table.
    DiskSize,
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::Buffer => f.write_str("the buffer is smaller than the table"),
            WriteError::TooMany { max } => write!(f, "the table holds at most {max} partitions"),
            WriteError::Placement { index } => {
                write!(
                    f,
                    "partition {index} leaves the usable area or overlaps another"
                )
            }
            WriteError::Name { index } => {
                write!(
                    f,
                    "the name of partition {index} is longer than 36 UTF-16 units"
                )
            }
            WriteError::DiskSize => f.write_str("the disk's size does not suit the table"),
        }
    }
}

/// Checks that `parts` lie in `low..=high` and do not overlap.
pub(crate) fn check_placement(
    parts: &[NewPartition<'_>],
    low: u64,
    high: u64,
) -> Result<(), WriteError> {
    for (i, p) in parts.iter().enumerate() {
        let index = i as u32 + 1;
        let last = p
            .first
            .checked_add(p.sectors)
            .and_then(|e| e.checked_sub(1));
        let ok = p.sectors > 0 && p.first >= low && last.is_some_and(|l| l <= high);
        let overlaps = parts[..i]
            .iter()
            .any(|q| p.first < q.first + q.sectors && q.first < p.first + p.sectors);
        if !ok || overlaps {
            return Err(WriteError::Placement { index });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
