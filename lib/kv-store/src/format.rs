//! The bytes on the disk: superblocks, block tags, record headers.
#![forbid(unsafe_code)]

use septa_crc32::{crc32, Crc32};

/// Bytes of a block.
pub const BLOCK: usize = 4096;
/// Bytes of the tag at the start of every log block.
pub const TAG: usize = 8;
/// Bytes of a record header (after the tag of its first block).
pub const HEADER: usize = 48;
/// Payload bytes in a record's first block and in each later one.
pub const FIRST_PAYLOAD: usize = BLOCK - TAG - HEADER;
pub const NEXT_PAYLOAD: usize = BLOCK - TAG;
/// The longest key and value.
pub const MAX_KEY: usize = 64;
pub const MAX_VALUE: usize = 64 << 10;
/// Blocks of the largest record.
pub const MAX_RECORD_BLOCKS: u64 = blocks_for(MAX_KEY + MAX_VALUE);
/// Blocks before the log: the two superblock copies.
pub const SUPER_BLOCKS: u64 = 2;

/// Tag kinds: the first block of a record, and every later block.
pub const TAG_HEAD: u8 = 0xa5;
pub const TAG_DATA: u8 = 0x5a;

const RECORD_MAGIC: u32 = u32::from_le_bytes(*b"SKVR");
const SUPER_MAGIC: [u8; 8] = *b"SEPTA-KV";
pub const VERSION: u8 = 1;

/// Blocks a record with `payload` bytes of key and value takes.
pub const fn blocks_for(payload: usize) -> u64 {
    if payload <= FIRST_PAYLOAD {
        1
    } else {
        1 + (payload - FIRST_PAYLOAD).div_ceil(NEXT_PAYLOAD) as u64
    }
}

/// Where payload byte `j` lies in a record's bytes.
pub const fn payload_at(j: usize) -> usize {
    if j < FIRST_PAYLOAD {
        TAG + HEADER + j
    } else {
        let k = j - FIRST_PAYLOAD;
        BLOCK * (1 + k / NEXT_PAYLOAD) + TAG + k % NEXT_PAYLOAD
    }
}

/// The record's payload as (offset in its bytes, length) pieces, in order.
pub fn payload_pieces(len: usize) -> impl Iterator<Item = (usize, usize)> {
    let mut j = 0;
    core::iter::from_fn(move || {
        if j >= len {
            return None;
        }
        let room = if j < FIRST_PAYLOAD {
            FIRST_PAYLOAD - j
        } else {
            NEXT_PAYLOAD - (j - FIRST_PAYLOAD) % NEXT_PAYLOAD
        };
        let n = room.min(len - j);
        let piece = (payload_at(j), n);
        j += n;
        Some(piece)
    })
}

/// What a record says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Put,
    Delete,
    /// Fills the log's end, so that the next record starts at its start.
    Pad,
}

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Kind::Put => 1,
            Kind::Delete => 2,
            Kind::Pad => 3,
        }
    }
    fn from_byte(b: u8) -> Option<Kind> {
        match b {
            1 => Some(Kind::Put),
            2 => Some(Kind::Delete),
            3 => Some(Kind::Pad),
            _ => None,
        }
    }
}

/// A record header, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub kind: Kind,
    pub key_len: usize,
    pub value_len: usize,
    pub blocks: u64,
    pub seq: u64,
    pub mount: u64,
    pub store: u64,
    pub payload_crc: u32,
}

/// Why a block does not hold a record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Not a first block, or not a record (zeros, data, another format):
    /// an ordinary end of the log.
    NotHeader,
    /// Its tag and magic say header, but the checksum does not match: a
    /// header torn or damaged.
    Checksum,
    /// A checksummed header whose fields make no sense (damage the
    /// checksum missed, or another version).
    Invalid,
}

fn tag(kind: u8, seq: u64) -> [u8; TAG] {
    ((seq << 8) | u64::from(kind)).to_le_bytes()
}

fn header_crc(block: &[u8], pos: u64) -> u32 {
    let mut c = Crc32::new();
    c.update(&block[..TAG + 44]);
    c.update(&pos.to_le_bytes());
    c.finish()
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Writes a record into `buf` (at least its blocks long) to be stored at
/// log block `pos`; returns its blocks. Its payload is `key` then
/// `value_len` bytes of value, which `value` writes piece by piece
/// (offset in the value, the piece) straight into `buf`: the checksum is
/// taken over what `buf` then holds, so a caller copying from memory
/// another PD may change meanwhile still gets a record that checks. A pad
/// has no payload: `pad_blocks` says how long it is.
#[allow(clippy::too_many_arguments)]
pub fn encode(
    buf: &mut [u8],
    kind: Kind,
    seq: u64,
    mount: u64,
    store: u64,
    pos: u64,
    key: &[u8],
    value_len: usize,
    mut value: impl FnMut(usize, &mut [u8]),
    pad_blocks: u64,
) -> u64 {
    let payload = key.len() + value_len;
    let blocks = if kind == Kind::Pad {
        pad_blocks
    } else {
        blocks_for(payload)
    };
    let written = if kind == Kind::Pad { 1 } else { blocks } as usize;
    buf[..written * BLOCK].fill(0);
    for i in 0..written {
        let t = if i == 0 { TAG_HEAD } else { TAG_DATA };
        buf[i * BLOCK..i * BLOCK + TAG].copy_from_slice(&tag(t, seq));
    }
    let mut crc = Crc32::new();
    let mut j = 0;
    for (at, n) in payload_pieces(payload) {
        let piece = &mut buf[at..at + n];
        // The key's bytes, then the value's.
        let from_key = key.len().saturating_sub(j).min(n);
        if from_key > 0 {
            piece[..from_key].copy_from_slice(&key[j..j + from_key]);
        }
        if from_key < n {
            value(j + from_key - key.len(), &mut piece[from_key..]);
        }
        crc.update(piece);
        j += n;
    }
    let h = &mut buf[TAG..TAG + HEADER];
    h[0..4].copy_from_slice(&RECORD_MAGIC.to_le_bytes());
    h[4] = VERSION;
    h[5] = kind.byte();
    h[6..8].copy_from_slice(&(key.len() as u16).to_le_bytes());
    h[8..12].copy_from_slice(&(value_len as u32).to_le_bytes());
    h[12..16].copy_from_slice(&(blocks as u32).to_le_bytes());
    h[16..24].copy_from_slice(&seq.to_le_bytes());
    h[24..32].copy_from_slice(&mount.to_le_bytes());
    h[32..40].copy_from_slice(&store.to_le_bytes());
    h[40..44].copy_from_slice(&crc.finish().to_le_bytes());
    let hc = header_crc(&buf[..BLOCK], pos);
    buf[TAG + 44..TAG + 48].copy_from_slice(&hc.to_le_bytes());
    blocks
}

/// Moves the record in `buf` (header `h`) to sequence number `seq`, mount
/// `mount` and log block `pos`, as compaction's copy of it: its tags and
/// header change, its payload (and payload checksum) stay.
pub fn rebase(buf: &mut [u8], h: &Header, seq: u64, mount: u64, pos: u64) {
    for i in 0..h.blocks as usize {
        let t = if i == 0 { TAG_HEAD } else { TAG_DATA };
        buf[i * BLOCK..i * BLOCK + TAG].copy_from_slice(&tag(t, seq));
    }
    let hd = &mut buf[TAG..TAG + HEADER];
    hd[16..24].copy_from_slice(&seq.to_le_bytes());
    hd[24..32].copy_from_slice(&mount.to_le_bytes());
    let hc = header_crc(&buf[..BLOCK], pos);
    buf[TAG + 44..TAG + 48].copy_from_slice(&hc.to_le_bytes());
}

/// Hands the value of the record in `buf` (whose header is `h`) to `f`
/// piece by piece: (offset in the value, the piece).
pub fn value_pieces(h: &Header, buf: &[u8], mut f: impl FnMut(usize, &[u8])) {
    let mut j = 0;
    for (at, n) in payload_pieces(h.key_len + h.value_len) {
        let skip = h.key_len.saturating_sub(j).min(n);
        if skip < n {
            f(j + skip - h.key_len, &buf[at + skip..at + n]);
        }
        j += n;
    }
}

/// Reads the header in `block`, the first block of a record stored at
/// log block `pos`.
pub fn decode(block: &[u8], pos: u64) -> Result<Header, HeaderError> {
    if block[0] != TAG_HEAD || le32(block, TAG) != RECORD_MAGIC {
        return Err(HeaderError::NotHeader);
    }
    if le32(block, TAG + 44) != header_crc(block, pos) {
        return Err(HeaderError::Checksum);
    }
    let h = &block[TAG..TAG + HEADER];
    let kind = Kind::from_byte(h[5]).ok_or(HeaderError::Invalid)?;
    let key_len = u16::from_le_bytes([h[6], h[7]]) as usize;
    let value_len = le32(h, 8) as usize;
    let blocks = u64::from(le32(h, 12));
    let seq = le64(h, 16);
    let tag_seq = le64(block, 0) >> 8;
    let sound = h[4] == VERSION
        && tag_seq == seq & (u64::MAX >> 8)
        && match kind {
            Kind::Pad => key_len == 0 && value_len == 0 && blocks >= 1,
            Kind::Delete => (1..=MAX_KEY).contains(&key_len) && value_len == 0 && blocks == 1,
            Kind::Put => {
                (1..=MAX_KEY).contains(&key_len)
                    && value_len <= MAX_VALUE
                    && blocks == blocks_for(key_len + value_len)
            }
        };
    if !sound {
        return Err(HeaderError::Invalid);
    }
    Ok(Header {
        kind,
        key_len,
        value_len,
        blocks,
        seq,
        mount: le64(h, 24),
        store: le64(h, 32),
        payload_crc: le32(h, 40),
    })
}

/// Whether `block`, where the chain of records ends, holds what a log
/// leaves past its end: a block never written (zeros), or a block of an
/// earlier record (its tag carries a sequence number below `next_seq`).
/// Anything else there (the tag of a record's first block destroyed, say)
/// is damage or foreign data, and is reported.
pub fn ends_cleanly(block: &[u8], next_seq: u64) -> bool {
    if block.iter().all(|&b| b == 0) {
        return true;
    }
    let tag_seq = le64(block, 0) >> 8;
    matches!(block[0], TAG_HEAD | TAG_DATA) && tag_seq < next_seq & (u64::MAX >> 8)
}

/// Whether the record `h` in `buf` (its blocks) is whole: every later
/// block tagged with its sequence number, and its payload's checksum.
pub fn payload_sound(h: &Header, buf: &[u8]) -> bool {
    if h.kind == Kind::Pad {
        return true;
    }
    let want = tag(TAG_DATA, h.seq);
    let tags = (1..h.blocks as usize).all(|i| buf[i * BLOCK..i * BLOCK + TAG] == want);
    let mut crc = Crc32::new();
    for (at, n) in payload_pieces(h.key_len + h.value_len) {
        crc.update(&buf[at..at + n]);
    }
    tags && crc.finish() == h.payload_crc
}

/// Copies the payload bytes `from..from+out.len()` of a record in `buf`.
pub fn read_payload(buf: &[u8], from: usize, out: &mut [u8]) {
    let (mut j, mut done) = (0, 0);
    for (at, n) in payload_pieces(from + out.len()) {
        // This piece holds payload bytes j..j+n; take those at or after `from`.
        let lo = j.max(from);
        let hi = j + n;
        if lo < hi {
            let src = at + (lo - j);
            out[done..done + hi - lo].copy_from_slice(&buf[src..src + hi - lo]);
            done += hi - lo;
        }
        j = hi;
    }
}

/// A superblock, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Super {
    pub seq: u64,
    pub store: u64,
    pub mount: u64,
    pub log_blocks: u64,
    pub head: u64,
    pub head_seq: u64,
}

/// Why a superblock copy is unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SuperError {
    /// All zeros: never written.
    Blank,
    /// Not a superblock of this format.
    Foreign,
    /// Ours, but its checksum does not match (torn or damaged).
    Checksum,
}

impl Super {
    pub fn encode(&self, block: &mut [u8]) {
        block[..BLOCK].fill(0);
        block[0..8].copy_from_slice(&SUPER_MAGIC);
        block[8..12].copy_from_slice(&u32::from(VERSION).to_le_bytes());
        block[12..16].copy_from_slice(&(BLOCK as u32).to_le_bytes());
        block[16..24].copy_from_slice(&self.seq.to_le_bytes());
        block[24..32].copy_from_slice(&self.store.to_le_bytes());
        block[32..40].copy_from_slice(&self.mount.to_le_bytes());
        block[40..48].copy_from_slice(&self.log_blocks.to_le_bytes());
        block[48..56].copy_from_slice(&self.head.to_le_bytes());
        block[56..64].copy_from_slice(&self.head_seq.to_le_bytes());
        let c = crc32(&block[..64]);
        block[64..68].copy_from_slice(&c.to_le_bytes());
    }

    pub fn decode(block: &[u8]) -> Result<Super, SuperError> {
        if block[..BLOCK].iter().all(|&b| b == 0) {
            return Err(SuperError::Blank);
        }
        if block[0..8] != SUPER_MAGIC
            || le32(block, 8) != u32::from(VERSION)
            || le32(block, 12) != BLOCK as u32
        {
            return Err(SuperError::Foreign);
        }
        if le32(block, 64) != crc32(&block[..64]) {
            return Err(SuperError::Checksum);
        }
        Ok(Super {
            seq: le64(block, 16),
            store: le64(block, 24),
            mount: le64(block, 32),
            log_blocks: le64(block, 40),
            head: le64(block, 48),
            head_seq: le64(block, 56),
        })
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;

    #[test]
    fn the_largest_record_takes_17_blocks() {
        assert_eq!(MAX_RECORD_BLOCKS, 17);
        assert_eq!(blocks_for(0), 1);
        assert_eq!(blocks_for(FIRST_PAYLOAD), 1);
        assert_eq!(blocks_for(FIRST_PAYLOAD + 1), 2);
        assert_eq!(blocks_for(FIRST_PAYLOAD + NEXT_PAYLOAD), 2);
    }

    #[test]
    fn payload_never_touches_a_block_start() {
        let len = MAX_KEY + MAX_VALUE;
        let mut covered = vec![false; MAX_RECORD_BLOCKS as usize * BLOCK];
        let mut total = 0;
        for (at, n) in payload_pieces(len) {
            assert!(at % BLOCK >= TAG, "a piece at {at} overlaps a tag");
            assert!(
                at / BLOCK == (at + n - 1) / BLOCK,
                "a piece crosses a block"
            );
            for c in &mut covered[at..at + n] {
                assert!(!*c);
                *c = true;
            }
            total += n;
        }
        assert_eq!(total, len);
    }

    #[test]
    fn records_round_trip_and_bind_their_place() {
        let mut buf = vec![0u8; MAX_RECORD_BLOCKS as usize * BLOCK];
        let value: std::vec::Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        let n = encode(
            &mut buf,
            Kind::Put,
            42,
            3,
            0xfeed,
            100,
            b"key",
            value.len(),
            |at, piece| piece.copy_from_slice(&value[at..at + piece.len()]),
            0,
        );
        assert_eq!(n, 3);
        let h = decode(&buf[..BLOCK], 100).unwrap();
        assert_eq!(
            (h.kind, h.key_len, h.value_len, h.seq, h.mount, h.store),
            (Kind::Put, 3, 10_000, 42, 3, 0xfeed)
        );
        assert!(payload_sound(&h, &buf));
        let mut out = vec![0u8; 10_000];
        read_payload(&buf, 3, &mut out);
        assert_eq!(out, value);
        let mut again = vec![0u8; 10_000];
        value_pieces(&h, &buf, |at, piece| {
            again[at..at + piece.len()].copy_from_slice(piece)
        });
        assert_eq!(again, value);
        let mut k = [0u8; 3];
        read_payload(&buf, 0, &mut k);
        assert_eq!(&k, b"key");
        // Elsewhere on the disk it is no record.
        assert_eq!(decode(&buf[..BLOCK], 101), Err(HeaderError::Checksum));
        // One flipped payload byte is caught, and so is a block of another record.
        buf[BLOCK + 100] ^= 1;
        assert!(!payload_sound(&h, &buf));
        buf[BLOCK + 100] ^= 1;
        buf[2 * BLOCK..2 * BLOCK + TAG].copy_from_slice(&tag(TAG_DATA, 41));
        assert!(!payload_sound(&h, &buf));
        // Zeros and data blocks are no headers.
        assert_eq!(decode(&[0u8; BLOCK], 0), Err(HeaderError::NotHeader));
        assert_eq!(
            decode(&buf[BLOCK..2 * BLOCK], 101),
            Err(HeaderError::NotHeader)
        );
    }

    #[test]
    fn superblocks_round_trip_and_tell_blank_foreign_and_torn_apart() {
        let s = Super {
            seq: 9,
            store: 77,
            mount: 4,
            log_blocks: 1000,
            head: 12,
            head_seq: 345,
        };
        let mut b = [0u8; BLOCK];
        assert_eq!(Super::decode(&b), Err(SuperError::Blank));
        s.encode(&mut b);
        assert_eq!(Super::decode(&b), Ok(s));
        b[50] ^= 1;
        assert_eq!(Super::decode(&b), Err(SuperError::Checksum));
        b[0] = b'X';
        assert_eq!(Super::decode(&b), Err(SuperError::Foreign));
    }
}
