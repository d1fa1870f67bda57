//! The arm64 Linux `Image` header (the kernel's
//! Documentation/arch/arm64/booting.rst, "Call the kernel image"):
//!
//! ```text
//! offset  field
//!  0      code0, code1   u32 x 2   executable code ("MZ" when the EFI stub is in)
//!  8      text_offset    u64 LE    load offset from a 2 MiB-aligned base
//! 16      image_size     u64 LE    bytes the kernel occupies from there, bss included
//! 24      flags          u64 LE    bit 0 big-endian, bits 1-2 page size, bit 3 placement
//! 32      res2..res4     u64 x 3
//! 56      magic          u32 LE    "ARM\x64"
//! 60      res5           u32       PE/COFF header offset
//! ```
//!
//! A kernel older than 3.17 has `image_size` 0 and its text offset is
//! unreliable; it is refused, as are big-endian kernels (the VMM starts the
//! guest little-endian). Distributions ship the Image compressed at times
//! (a gzip file, or an EFI "zboot" executable whose payload is the
//! compressed Image): [`sniff`] tells these apart so the host tool can
//! unpack them and a loader can say what it was given.

use core::fmt;

/// Bytes of the header.
pub const HEADER_LEN: usize = 64;
/// "ARM\x64", little-endian, at offset 56.
pub const MAGIC: [u8; 4] = *b"ARM\x64";
pub const MAGIC_OFFSET: usize = 56;
/// The base the Image is placed at must be aligned to this; the kernel then
/// starts `text_offset` bytes above it.
pub const BASE_ALIGN: u64 = 2 << 20;

const FLAG_BIG_ENDIAN: u64 = 1 << 0;
const FLAG_PAGE_SHIFT: u64 = 1;
const FLAG_PAGE_MASK: u64 = 0b11 << FLAG_PAGE_SHIFT;
const FLAG_ANYWHERE: u64 = 1 << 3;

/// The kernel's page size, as the header states it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageSize {
    Unspecified,
    K4,
    K16,
    K64,
}

impl fmt::Display for PageSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PageSize::Unspecified => "unspecified",
            PageSize::K4 => "4 KiB",
            PageSize::K16 => "16 KiB",
            PageSize::K64 => "64 KiB",
        })
    }
}

/// A checked Image header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageHeader {
    pub text_offset: u64,
    /// Bytes from the load address the kernel may use, its bss included:
    /// at least the file's length.
    pub image_size: u64,
    /// The raw flags word.
    pub flags: u64,
    pub page_size: PageSize,
    /// Flags bit 3: the 2 MiB-aligned base may be anywhere in RAM (else it
    /// should be as low as possible).
    pub anywhere: bool,
    /// The Image carries the EFI stub (code0 starts with "MZ").
    pub efi_stub: bool,
}

/// What a byte string that should be an Image is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// An Image (its header is not checked yet: see [`ImageHeader::parse`]).
    Image,
    /// A gzip file (RFC 1952), as `vmlinuz` often is.
    Gzip,
    /// An EFI zboot executable: the compressed Image is `size` bytes at
    /// `offset`, compressed with `compression` (NUL-padded, e.g. "gzip").
    ZBoot {
        offset: u32,
        size: u32,
        compression: [u8; 8],
    },
    Unknown,
}

/// Tells an Image from the compressed forms kernels ship in.
pub fn sniff(bytes: &[u8]) -> Format {
    if bytes.len() >= HEADER_LEN && bytes[MAGIC_OFFSET..MAGIC_OFFSET + 4] == MAGIC {
        return Format::Image;
    }
    if bytes.starts_with(&[0x1f, 0x8b]) {
        return Format::Gzip;
    }
    // Linux drivers/firmware/efi/libstub/zboot-header.S: "MZ", pad, "zimg",
    // payload offset and size (u32 LE), two reserved words, the
    // compression type at 24.
    if bytes.len() >= 32 && bytes.starts_with(b"MZ") && &bytes[4..8] == b"zimg" {
        let word = |at: usize| {
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let mut compression = [0; 8];
        compression.copy_from_slice(&bytes[24..32]);
        return Format::ZBoot {
            offset: word(8),
            size: word(12),
            compression,
        };
    }
    Format::Unknown
}

/// Why bytes are not a usable arm64 Image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error(
        "{len} bytes is too short for an arm64 Image (its header alone is {HEADER_LEN} bytes)"
    )]
    TooShort { len: usize },
    #[error("this is a gzip file, not an arm64 Image: decompress it first")]
    Gzip,
    #[error("this is an EFI zboot executable (a compressed Image inside), not an arm64 Image: extract its payload first")]
    ZBoot,
    #[error("no arm64 Image magic (\"ARM\\x64\" at offset 56; found {found:02x?}): not a Linux arm64 kernel Image")]
    BadMagic { found: [u8; 4] },
    #[error("the Image header's image_size is 0: a kernel older than Linux 3.17, whose load offset cannot be trusted")]
    NoImageSize,
    #[error("the Image is big-endian (flags bit 0); the guest runs little-endian")]
    BigEndian,
    #[error("the Image's text_offset {text_offset:#x} is not a multiple of 4 KiB below 2 MiB")]
    TextOffset { text_offset: u64 },
    #[error("the Image's image_size {image_size:#x} is smaller than the file ({len:#x} bytes): a truncated or corrupt header")]
    ImageSizeTooSmall { image_size: u64, len: u64 },
}

impl ImageHeader {
    /// Reads and checks the header of the whole Image `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<ImageHeader, ImageError> {
        if bytes.len() < HEADER_LEN {
            return Err(match sniff(bytes) {
                Format::Gzip => ImageError::Gzip,
                _ => ImageError::TooShort { len: bytes.len() },
            });
        }
        match sniff(bytes) {
            Format::Image => {}
            Format::Gzip => return Err(ImageError::Gzip),
            Format::ZBoot { .. } => return Err(ImageError::ZBoot),
            Format::Unknown => {
                let mut found = [0; 4];
                found.copy_from_slice(&bytes[MAGIC_OFFSET..MAGIC_OFFSET + 4]);
                return Err(ImageError::BadMagic { found });
            }
        }
        let u64_at = |at: usize| {
            let mut b = [0; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let text_offset = u64_at(8);
        let image_size = u64_at(16);
        let flags = u64_at(24);
        if image_size == 0 {
            return Err(ImageError::NoImageSize);
        }
        if flags & FLAG_BIG_ENDIAN != 0 {
            return Err(ImageError::BigEndian);
        }
        if text_offset % 4096 != 0 || text_offset >= BASE_ALIGN {
            return Err(ImageError::TextOffset { text_offset });
        }
        let len = bytes.len() as u64;
        if image_size < len {
            return Err(ImageError::ImageSizeTooSmall { image_size, len });
        }
        let page_size = match (flags & FLAG_PAGE_MASK) >> FLAG_PAGE_SHIFT {
            0 => PageSize::Unspecified,
            1 => PageSize::K4,
            2 => PageSize::K16,
            _ => PageSize::K64,
        };
        Ok(ImageHeader {
            text_offset,
            image_size,
            flags,
            page_size,
            anywhere: flags & FLAG_ANYWHERE != 0,
            efi_stub: bytes.starts_with(b"MZ"),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A header as Debian's 6.1 cloud kernel has it (EFI stub, text offset
    /// 0, 4 KiB pages, placement anywhere), then `len` bytes in all.
    pub(crate) fn image(len: usize, image_size: u64) -> Vec<u8> {
        let mut b = vec![0u8; len];
        b[0..4].copy_from_slice(b"MZ@\xfa");
        b[16..24].copy_from_slice(&image_size.to_le_bytes());
        b[24..32].copy_from_slice(&0xau64.to_le_bytes());
        b[56..60].copy_from_slice(&MAGIC);
        b[60..64].copy_from_slice(&0x40u32.to_le_bytes());
        b
    }

    #[test]
    fn a_good_header_is_read() {
        let h = ImageHeader::parse(&image(4096, 0x1ab_0000)).unwrap();
        assert_eq!(
            h,
            ImageHeader {
                text_offset: 0,
                image_size: 0x1ab_0000,
                flags: 0xa,
                page_size: PageSize::K4,
                anywhere: true,
                efi_stub: true,
            }
        );
    }

    #[test]
    fn each_corruption_has_its_error() {
        assert_eq!(
            ImageHeader::parse(&[0; 63]),
            Err(ImageError::TooShort { len: 63 })
        );
        let mut b = image(4096, 1 << 20);
        b[56] = b'X';
        assert_eq!(
            ImageHeader::parse(&b),
            Err(ImageError::BadMagic { found: *b"XRM\x64" })
        );
        let b = image(4096, 0);
        assert_eq!(ImageHeader::parse(&b), Err(ImageError::NoImageSize));
        let mut b = image(4096, 1 << 20);
        b[24] |= 1;
        assert_eq!(ImageHeader::parse(&b), Err(ImageError::BigEndian));
        let mut b = image(4096, 1 << 20);
        b[8..16].copy_from_slice(&0x80010u64.to_le_bytes());
        assert_eq!(
            ImageHeader::parse(&b),
            Err(ImageError::TextOffset {
                text_offset: 0x80010
            })
        );
        b[8..16].copy_from_slice(&(2u64 << 20).to_le_bytes());
        assert!(matches!(
            ImageHeader::parse(&b),
            Err(ImageError::TextOffset { .. })
        ));
        let b = image(8192, 4096);
        assert_eq!(
            ImageHeader::parse(&b),
            Err(ImageError::ImageSizeTooSmall {
                image_size: 4096,
                len: 8192
            })
        );
    }

    #[test]
    fn compressed_kernels_are_named() {
        let mut gz = vec![0x1f, 0x8b, 8, 0];
        gz.resize(100, 0);
        assert_eq!(sniff(&gz), Format::Gzip);
        assert_eq!(ImageHeader::parse(&gz), Err(ImageError::Gzip));
        assert_eq!(ImageHeader::parse(&gz[..10]), Err(ImageError::Gzip));
        let mut z = vec![0u8; 128];
        z[0..2].copy_from_slice(b"MZ");
        z[4..8].copy_from_slice(b"zimg");
        z[8..12].copy_from_slice(&0x1000u32.to_le_bytes());
        z[12..16].copy_from_slice(&0x2345u32.to_le_bytes());
        z[24..28].copy_from_slice(b"gzip");
        assert_eq!(
            sniff(&z),
            Format::ZBoot {
                offset: 0x1000,
                size: 0x2345,
                compression: *b"gzip\0\0\0\0"
            }
        );
        assert_eq!(ImageHeader::parse(&z), Err(ImageError::ZBoot));
        assert_eq!(sniff(b"hello"), Format::Unknown);
    }

    #[test]
    fn page_sizes_follow_flags_bits_1_and_2() {
        for (bits, want) in [
            (0u64, PageSize::Unspecified),
            (1, PageSize::K4),
            (2, PageSize::K16),
            (3, PageSize::K64),
        ] {
            let mut b = image(4096, 1 << 20);
            b[24..32].copy_from_slice(&(bits << 1).to_le_bytes());
            let h = ImageHeader::parse(&b).unwrap();
            assert_eq!(h.page_size, want);
            assert!(!h.anywhere);
        }
    }
}
