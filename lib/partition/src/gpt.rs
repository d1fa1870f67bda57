//! The GUID Partition Table (UEFI 2.10, 5.3).
//!
//! ```text
//! header (LBA 1, backup at the last LBA)     entry (128 bytes)
//!   0  "EFI PART"                               0  partition type GUID (all zero: unused)
//!   8  revision 0x0001_0000                     16 unique partition GUID
//!   12 header size (92)                         32 first LBA
//!   16 header CRC-32 (over the header size,     40 last LBA (inclusive)
//!      this field zero)                         48 attributes
//!   20 reserved (0)                             56 name, 36 UTF-16LE units
//!   24 my LBA          32 alternate LBA
//!   40 first usable    48 last usable LBA
//!   56 disk GUID
//!   72 entry array LBA 80 entry count  84 entry size
//!   88 entry array CRC-32
//! ```
use core::fmt;

use septa_crc32::crc32;

use crate::{
    check_placement, le_u32, le_u64, put_u32, put_u64, Name, NewPartition, Notes, PartitionError,
    TableError, Window, WriteError, SECTOR,
};

/// The header's first eight bytes.
pub const SIGNATURE: [u8; 8] = *b"EFI PART";
/// Revision 1.0.
pub const REVISION: u32 = 0x0001_0000;
/// Bytes of the header this crate writes and checks (UEFI's minimum).
pub const HEADER_SIZE: u32 = 92;
/// Entries the writer makes room for (UEFI's minimum array: 16 KiB).
pub const ENTRIES: u32 = 128;
/// Bytes of an entry the writer uses.
pub const ENTRY_SIZE: u32 = 128;
/// The most entries the reader accepts (an array of 512 KiB at most).
pub const MAX_ENTRIES: u32 = 4096;
/// Sectors of the writer's entry array.
pub const ARRAY_SECTORS: u64 = (ENTRIES * ENTRY_SIZE) as u64 / SECTOR;
/// "Linux filesystem data", the type the writer gives partitions (as
/// stored: the first three fields little-endian).
pub const LINUX_DATA: [u8; 16] = [
    0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47, 0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4,
];

/// A header, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub my_lba: u64,
    pub alternate_lba: u64,
    pub first_usable: u64,
    pub last_usable: u64,
    pub disk_guid: [u8; 16],
    pub array_lba: u64,
    pub entries: u32,
    pub entry_size: u32,
    pub array_crc: u32,
}

/// Why a header (with its entry array) is unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Its sector is outside the bytes the reader was given.
    OutOfReach {
        lba: u64,
    },
    Signature,
    Revision(u32),
    HeaderSize(u32),
    HeaderCrc {
        stored: u32,
        computed: u32,
    },
    /// It says it lives elsewhere.
    MyLba {
        stored: u64,
        read_at: u64,
    },
    /// First usable after last usable, or either outside the disk.
    Usable {
        first: u64,
        last: u64,
    },
    EntrySize(u32),
    EntryCount(u32),
    /// The entry array is outside the bytes the reader was given.
    ArrayOutOfReach {
        lba: u64,
    },
    ArrayCrc {
        stored: u32,
        computed: u32,
    },
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            HeaderError::OutOfReach { lba } => write!(f, "LBA {lba} is out of reach"),
            HeaderError::Signature => f.write_str("no \"EFI PART\" signature"),
            HeaderError::Revision(r) => write!(f, "revision {r:#x} is not 1.0"),
            HeaderError::HeaderSize(s) => write!(f, "header size {s} is impossible"),
            HeaderError::HeaderCrc { stored, computed } => write!(
                f,
                "header checksum {stored:#010x} does not match its bytes ({computed:#010x})"
            ),
            HeaderError::MyLba { stored, read_at } => {
                write!(f, "it says it is at LBA {stored} but was read at {read_at}")
            }
            HeaderError::Usable { first, last } => {
                write!(f, "usable sectors {first}..={last} do not fit the disk")
            }
            HeaderError::EntrySize(s) => write!(f, "entry size {s} is not 128 times a power of 2"),
            HeaderError::EntryCount(n) => write!(f, "{n} entries is too many"),
            HeaderError::ArrayOutOfReach { lba } => {
                write!(f, "its entry array at LBA {lba} is out of reach")
            }
            HeaderError::ArrayCrc { stored, computed } => write!(
                f,
                "entry array checksum {stored:#010x} does not match its bytes ({computed:#010x})"
            ),
        }
    }
}

/// Checks the header in the sector read at `lba` of a disk of `sectors`.
pub fn parse_header(sector: &[u8], lba: u64, sectors: u64) -> Result<Header, HeaderError> {
    if sector.len() < SECTOR as usize || !sector.starts_with(&SIGNATURE) {
        return Err(HeaderError::Signature);
    }
    let revision = le_u32(sector, 8);
    if revision != REVISION {
        return Err(HeaderError::Revision(revision));
    }
    let size = le_u32(sector, 12);
    if !(HEADER_SIZE..=SECTOR as u32).contains(&size) {
        return Err(HeaderError::HeaderSize(size));
    }
    let stored = le_u32(sector, 16);
    let mut copy = [0u8; SECTOR as usize];
    copy[..size as usize].copy_from_slice(&sector[..size as usize]);
    put_u32(&mut copy, 16, 0);
    let computed = crc32(&copy[..size as usize]);
    if stored != computed {
        return Err(HeaderError::HeaderCrc { stored, computed });
    }
    let h = Header {
        my_lba: le_u64(sector, 24),
        alternate_lba: le_u64(sector, 32),
        first_usable: le_u64(sector, 40),
        last_usable: le_u64(sector, 48),
        disk_guid: sector[56..72].try_into().expect("16 bytes"),
        array_lba: le_u64(sector, 72),
        entries: le_u32(sector, 80),
        entry_size: le_u32(sector, 84),
        array_crc: le_u32(sector, 88),
    };
    if h.my_lba != lba {
        return Err(HeaderError::MyLba {
            stored: h.my_lba,
            read_at: lba,
        });
    }
    if h.first_usable > h.last_usable || h.last_usable >= sectors || h.first_usable < 2 {
        return Err(HeaderError::Usable {
            first: h.first_usable,
            last: h.last_usable,
        });
    }
    let es = h.entry_size;
    if es < 128 || !es.is_power_of_two() {
        return Err(HeaderError::EntrySize(es));
    }
    if h.entries > MAX_ENTRIES {
        return Err(HeaderError::EntryCount(h.entries));
    }
    Ok(h)
}

/// The sectors an array of `h` takes.
fn array_sectors(h: &Header) -> u64 {
    (u64::from(h.entries) * u64::from(h.entry_size)).div_ceil(SECTOR)
}

/// The header at `lba` and its entry array, checked.
fn header_at<'a>(w: &Window<'a>, lba: u64) -> Result<(Header, &'a [u8]), HeaderError> {
    let sector = w
        .sectors_at(lba, 1)
        .ok_or(HeaderError::OutOfReach { lba })?;
    let h = parse_header(sector, lba, w.sectors)?;
    let len = (u64::from(h.entries) * u64::from(h.entry_size)) as usize;
    let array = w
        .sectors_at(h.array_lba, array_sectors(&h))
        .ok_or(HeaderError::ArrayOutOfReach { lba: h.array_lba })?;
    let array = &array[..len];
    let computed = crc32(array);
    if computed != h.array_crc {
        return Err(HeaderError::ArrayCrc {
            stored: h.array_crc,
            computed,
        });
    }
    Ok((h, array))
}

/// Reads the primary and the backup; returns the one to use.
pub(crate) fn read<'a>(w: &Window<'a>) -> Result<(Header, &'a [u8], Notes), TableError> {
    let primary = header_at(w, 1);
    // The backup is where a sound primary says, else at the disk's end.
    let backup_lba = match &primary {
        Ok((h, _)) => h.alternate_lba,
        Err(_) => w.sectors.saturating_sub(1),
    };
    let backup = header_at(w, backup_lba);
    let mut notes = Notes::default();
    match (primary, backup) {
        (Ok((p, pa)), Ok((b, ba))) => {
            notes.mismatch = pa != ba
                || (p.first_usable, p.last_usable, p.disk_guid)
                    != (b.first_usable, b.last_usable, b.disk_guid);
            Ok((p, pa, notes))
        }
        (Ok((p, pa)), Err(e)) => {
            notes.backup = Some(e);
            Ok((p, pa, notes))
        }
        (Err(e), Ok((b, ba))) => {
            notes.primary = Some(e);
            Ok((b, ba, notes))
        }
        (Err(primary), Err(backup)) => Err(TableError::Gpt { primary, backup }),
    }
}

/// One entry's bytes (at least 128) as (first, last, name).
pub(crate) fn entry(e: &[u8]) -> Result<(u64, u64, Name), PartitionError> {
    if e[..16].iter().all(|&b| b == 0) {
        return Err(PartitionError::Empty);
    }
    let mut units = [0u16; 36];
    for (i, u) in units.iter_mut().enumerate() {
        *u = u16::from_le_bytes([e[56 + 2 * i], e[57 + 2 * i]]);
    }
    Ok((le_u64(e, 32), le_u64(e, 40), Name::from_units(units)))
}

/// Sectors a GPT of this crate's layout keeps at the start of a disk
/// (protective MBR, header, array): partitions start at or after it.
pub const HEAD_SECTORS: u64 = 2 + ARRAY_SECTORS;
/// Sectors it keeps at the end (array, backup header).
pub const TAIL_SECTORS: u64 = 1 + ARRAY_SECTORS;

/// Writes a GPT for a disk of `sectors` holding `parts` (in entry order,
/// from entry 1): the protective MBR, primary header and array into
/// `head` (at least [`HEAD_SECTORS`] sectors, from LBA 0), the backup array
/// and header into `tail` (at least [`TAIL_SECTORS`] sectors, ending at the
/// disk's end; only its last `TAIL_SECTORS` sectors are written).
/// `guid` is the disk's GUID; partition `i`'s unique GUID is derived from
/// it.
pub fn write(
    sectors: u64,
    guid: [u8; 16],
    parts: &[NewPartition<'_>],
    head: &mut [u8],
    tail: &mut [u8],
) -> Result<(), WriteError> {
    let head_len = (HEAD_SECTORS * SECTOR) as usize;
    let tail_len = (TAIL_SECTORS * SECTOR) as usize;
    if head.len() < head_len || tail.len() < tail_len {
        return Err(WriteError::Buffer);
    }
    if sectors < HEAD_SECTORS + TAIL_SECTORS + 1 {
        return Err(WriteError::DiskSize);
    }
    if parts.len() > ENTRIES as usize {
        return Err(WriteError::TooMany {
            max: ENTRIES as usize,
        });
    }
    let (first_usable, last_usable) = (HEAD_SECTORS, sectors - TAIL_SECTORS - 1);
    check_placement(parts, first_usable, last_usable)?;
    let mut array = [0u8; (ENTRIES * ENTRY_SIZE) as usize];
    for (i, p) in parts.iter().enumerate() {
        let name = Name::new(p.name).ok_or(WriteError::Name {
            index: i as u32 + 1,
        })?;
        let e = &mut array[i * ENTRY_SIZE as usize..(i + 1) * ENTRY_SIZE as usize];
        e[..16].copy_from_slice(&LINUX_DATA);
        let mut unique = guid;
        unique[15] ^= i as u8 + 1;
        unique[14] ^= 0x5e;
        e[16..32].copy_from_slice(&unique);
        put_u64(e, 32, p.first);
        put_u64(e, 40, p.first + p.sectors - 1);
        for (j, u) in name.units().iter().enumerate() {
            e[56 + 2 * j..58 + 2 * j].copy_from_slice(&u.to_le_bytes());
        }
    }
    let array_crc = crc32(&array);
    let header = |my: u64, alternate: u64, array_lba: u64| {
        let mut s = [0u8; SECTOR as usize];
        s[..8].copy_from_slice(&SIGNATURE);
        put_u32(&mut s, 8, REVISION);
        put_u32(&mut s, 12, HEADER_SIZE);
        put_u64(&mut s, 24, my);
        put_u64(&mut s, 32, alternate);
        put_u64(&mut s, 40, first_usable);
        put_u64(&mut s, 48, last_usable);
        s[56..72].copy_from_slice(&guid);
        put_u64(&mut s, 72, array_lba);
        put_u32(&mut s, 80, ENTRIES);
        put_u32(&mut s, 84, ENTRY_SIZE);
        put_u32(&mut s, 88, array_crc);
        let crc = crc32(&s[..HEADER_SIZE as usize]);
        put_u32(&mut s, 16, crc);
        s
    };
    let last = sectors - 1;
    let sector = SECTOR as usize;
    head[..head_len].fill(0);
    crate::mbr::protective(&mut head[..sector], sectors);
    head[sector..2 * sector].copy_from_slice(&header(1, last, 2));
    head[2 * sector..head_len].copy_from_slice(&array);
    let tail_at = tail.len() - tail_len;
    let tail = &mut tail[tail_at..];
    tail[..tail_len - sector].copy_from_slice(&array);
    tail[tail_len - sector..].copy_from_slice(&header(last, 1, last - ARRAY_SECTORS));
    Ok(())
}
