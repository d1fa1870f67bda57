//! # septa-image: the boot image's payload header
//!
//! A Septa image is the loader's flat binary followed, at the next page
//! boundary, by a payload: this header, then the kernel ELF, the user (root
//! task) ELF and the user extra blob, each at a page-aligned offset from the
//! start of the payload. The tool writes it; the loader reads it. Nothing
//! here touches memory: the loader gives us a byte slice.
//!
//! The loader knows nothing of Septa's kernel: it loads any kernel ELF that
//! follows the seL4 boot contract. The "extra blob" is placed directly after
//! the user image's last segment and counted as part of the user image, so
//! the root task finds it at the first page past its own end.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod elf;

/// "SEPTAIMG" in little-endian bytes.
pub const MAGIC: u64 = u64::from_le_bytes(*b"SEPTAIMG");
/// Bumped whenever the header layout changes.
pub const VERSION: u32 = 1;
/// Alignment of the payload and of each part in it.
pub const ALIGN: u64 = 4096;

/// A part of the payload: `offset` from the start of the payload, `len` bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Part {
    pub offset: u64,
    pub len: u64,
}

/// The payload header. Serialised as little-endian u64 words in field order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub version: u32,
    /// Physical address of a PL011 the loader may print on (0 = silent).
    pub uart_base: u64,
    /// Where the board's firmware or QEMU leaves the device tree when it does
    /// not pass it in x0 (0 = none).
    pub dtb_hint: u64,
    /// First physical address of RAM, and its size when there is no DTB.
    pub ram_base: u64,
    pub ram_size: u64,
    pub kernel: Part,
    pub user: Part,
    pub extra: Part,
    /// Bytes in the whole payload, header included.
    pub total_len: u64,
}

/// Bytes the header occupies.
pub const HEADER_LEN: usize = 8 * 13;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    TooShort,
    BadMagic,
    BadVersion(u32),
    PartOutOfRange(&'static str),
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::TooShort => write!(f, "payload shorter than its header"),
            Error::BadMagic => write!(f, "no Septa payload after the loader (bad magic)"),
            Error::BadVersion(v) => write!(f, "payload version {v}, loader expects {VERSION}"),
            Error::PartOutOfRange(p) => write!(f, "payload part `{p}` lies outside the payload"),
        }
    }
}

impl Header {
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let words = [
            MAGIC,
            self.version as u64,
            self.uart_base,
            self.dtb_hint,
            self.ram_base,
            self.ram_size,
            self.kernel.offset,
            self.kernel.len,
            self.user.offset,
            self.user.len,
            self.extra.offset,
            self.extra.len,
            self.total_len,
        ];
        let mut out = [0u8; HEADER_LEN];
        for (chunk, w) in out.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// Reads and checks a header at the start of `payload` (which must
    /// cover every part the header names).
    pub fn parse(payload: &[u8]) -> Result<Header, Error> {
        if payload.len() < HEADER_LEN {
            return Err(Error::TooShort);
        }
        let word = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&payload[i * 8..i * 8 + 8]);
            u64::from_le_bytes(b)
        };
        if word(0) != MAGIC {
            return Err(Error::BadMagic);
        }
        let version = word(1) as u32;
        if version != VERSION {
            return Err(Error::BadVersion(version));
        }
        let h = Header {
            version,
            uart_base: word(2),
            dtb_hint: word(3),
            ram_base: word(4),
            ram_size: word(5),
            kernel: Part {
                offset: word(6),
                len: word(7),
            },
            user: Part {
                offset: word(8),
                len: word(9),
            },
            extra: Part {
                offset: word(10),
                len: word(11),
            },
            total_len: word(12),
        };
        if h.total_len > payload.len() as u64 {
            return Err(Error::TooShort);
        }
        for (name, p) in [("kernel", h.kernel), ("user", h.user), ("extra", h.extra)] {
            let end = p.offset.checked_add(p.len);
            let outside =
                p.offset < HEADER_LEN as u64 || end.is_none_or(|e| e > payload.len() as u64);
            if outside && !(name == "extra" && p.len == 0) {
                return Err(Error::PartOutOfRange(name));
            }
        }
        Ok(h)
    }

    /// The payload's total length as its header states it, read from the
    /// header bytes alone, so a reader can size its view before `parse`.
    pub fn peek_total_len(header: &[u8]) -> Result<u64, Error> {
        if header.len() < HEADER_LEN {
            return Err(Error::TooShort);
        }
        let mut b = [0u8; 8];
        b.copy_from_slice(&header[..8]);
        if u64::from_le_bytes(b) != MAGIC {
            return Err(Error::BadMagic);
        }
        b.copy_from_slice(&header[96..104]);
        Ok(u64::from_le_bytes(b))
    }

    /// The bytes of one part (the header has been checked by `parse`).
    pub fn slice(payload: &[u8], part: Part) -> &[u8] {
        &payload[part.offset as usize..(part.offset + part.len) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Header {
        Header {
            version: VERSION,
            uart_base: 0x0900_0000,
            dtb_hint: 0x4000_0000,
            ram_base: 0x4000_0000,
            ram_size: 1 << 31,
            kernel: Part {
                offset: 4096,
                len: 100,
            },
            user: Part {
                offset: 8192,
                len: 50,
            },
            extra: Part { offset: 0, len: 0 },
            total_len: 3 * 4096,
        }
    }

    #[test]
    fn header_round_trips() {
        let h = sample();
        let mut buf = [0u8; 3 * 4096];
        buf[..HEADER_LEN].copy_from_slice(&h.to_bytes());
        assert_eq!(Header::parse(&buf), Ok(h));
        assert_eq!(Header::peek_total_len(&buf), Ok(3 * 4096));
    }

    #[test]
    fn rejects_bad_magic_version_and_ranges() {
        let mut buf = [0u8; 3 * 4096];
        assert_eq!(Header::parse(&buf), Err(Error::BadMagic));
        let mut h = sample();
        h.version = 7;
        buf[..HEADER_LEN].copy_from_slice(&h.to_bytes());
        assert_eq!(Header::parse(&buf), Err(Error::BadVersion(7)));
        let mut h = sample();
        h.user.len = 9000;
        buf[..HEADER_LEN].copy_from_slice(&h.to_bytes());
        assert_eq!(Header::parse(&buf), Err(Error::PartOutOfRange("user")));
        assert_eq!(Header::parse(&buf[..10]), Err(Error::TooShort));
    }
}

/// The EL2 translation settings of the boot contract. The loader turns the
/// MMU on with them and the kernel keeps them: real seL4 refuses any other
/// TCR_EL2 (`checkTCR_EL2`) and never writes MAIR_EL2 itself, mapping
/// normal memory with attribute index 4 and devices with index 0.
pub mod el2 {
    /// MAIR_EL2 indices 0..5: Device-nGnRnE, Device-nGnRE, Device-GRE,
    /// Normal non-cacheable, Normal write-back, Normal write-through.
    pub const MAIR: u64 = u64::from_le_bytes([0x00, 0x04, 0x0c, 0x44, 0xff, 0xaa, 0, 0]);
    /// Descriptor AttrIndx field for Device-nGnRnE memory.
    pub const ATTR_DEVICE: u64 = 0 << 2;
    /// Descriptor AttrIndx field for Normal write-back memory.
    pub const ATTR_NORMAL: u64 = 4 << 2;
    /// T0SZ 16 (48-bit VA, walks start at level 0), inner and outer
    /// write-back write-allocate walks, inner shareable, 4 KiB granule,
    /// 40-bit PA, and the two RES1 bits (31 and 23).
    pub const TCR: u64 =
        (1 << 31) | (1 << 23) | (0b010 << 16) | (0b11 << 12) | (0b01 << 10) | (0b01 << 8) | 16;
}
