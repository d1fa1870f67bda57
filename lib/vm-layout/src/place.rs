//! Where kernel, device tree and initrd go in guest RAM.
//!
//! The VMM loads them exactly here and the tool writes the initrd's
//! addresses into the guest's device tree (`/chosen/linux,initrd-start` and
//! `-end`), so both call [`place`] with the same inputs. From the bottom of
//! RAM:
//!
//! ```text
//! RAM_BASE (rounded up to 2 MiB) + text_offset   kernel Image, image_size bytes (bss included)
//! next 2 MiB boundary                            device tree, at most DTB_MAX bytes
//! + DTB_MAX                                      initrd
//! ...                                            at least FREE_MIN bytes left to the kernel
//! ```
//!
//! booting.rst asks for the Image at `text_offset` above a 2 MiB-aligned
//! base with `image_size` bytes free there, a device tree of at most 2 MiB
//! on an 8-byte boundary, and an initrd anywhere in RAM that overlaps
//! neither: low and packed keeps all three inside the smallest RAM.

use crate::image::{ImageHeader, BASE_ALIGN};

/// The most bytes of device tree booting.rst allows.
pub const DTB_MAX: u64 = 2 << 20;
/// Guest RAM that must stay free above the initrd: the kernel's early page
/// tables, memblock allocations and the unpacked initramfs come from it.
pub const FREE_MIN: u64 = 16 << 20;

/// Guest-physical addresses of one boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The Image's first byte, and its entry point.
    pub kernel: u64,
    /// `kernel + image_size`.
    pub kernel_end: u64,
    pub dtb: u64,
    pub initrd: u64,
    /// One past the initrd's last byte (`initrd` when there is none).
    pub initrd_end: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlaceError {
    #[error("guest RAM of {have:#x} bytes at {base:#x} is too small: kernel, device tree and initrd take {need:#x} bytes from its start, plus {FREE_MIN:#x} bytes the kernel needs free")]
    TooSmall { base: u64, have: u64, need: u64 },
}

const fn align_up(x: u64, a: u64) -> Option<u64> {
    match x.checked_add(a - 1) {
        Some(v) => Some(v & !(a - 1)),
        None => None,
    }
}

/// Places a kernel with header `image` and an initrd of `initrd_len` bytes
/// (0: none) in the guest RAM `[ram_base, ram_base + ram_size)`.
pub fn place(
    ram_base: u64,
    ram_size: u64,
    image: &ImageHeader,
    initrd_len: u64,
) -> Result<Placement, PlaceError> {
    let too_small = |need: u64| PlaceError::TooSmall {
        base: ram_base,
        have: ram_size,
        need,
    };
    let layout = || -> Option<Placement> {
        let kernel = align_up(ram_base, BASE_ALIGN)?.checked_add(image.text_offset)?;
        let kernel_end = kernel.checked_add(image.image_size)?;
        let dtb = align_up(kernel_end, BASE_ALIGN)?;
        let initrd = dtb.checked_add(DTB_MAX)?;
        let initrd_end = initrd.checked_add(initrd_len)?;
        Some(Placement {
            kernel,
            kernel_end,
            dtb,
            initrd,
            initrd_end,
        })
    };
    let p = layout().ok_or(too_small(u64::MAX))?;
    let need = p.initrd_end - ram_base;
    if need.checked_add(FREE_MIN).is_none_or(|n| n > ram_size) {
        return Err(too_small(need));
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::tests::image;
    use crate::map::RAM_BASE;

    fn header(image_size: u64, text_offset: u64) -> ImageHeader {
        let mut b = image(4096, image_size);
        b[8..16].copy_from_slice(&text_offset.to_le_bytes());
        ImageHeader::parse(&b).unwrap()
    }

    #[test]
    fn kernel_dtb_and_initrd_are_packed_from_the_bottom() {
        let h = header(0x1ab_0000, 0);
        let p = place(RAM_BASE, 256 << 20, &h, 3 << 20).unwrap();
        assert_eq!(
            p,
            Placement {
                kernel: 0x4000_0000,
                kernel_end: 0x41ab_0000,
                dtb: 0x41c0_0000,
                initrd: 0x41e0_0000,
                initrd_end: 0x4210_0000,
            }
        );
    }

    #[test]
    fn text_offset_and_an_unaligned_base_are_honoured() {
        let h = header(0x20_0000, 0x8_0000);
        let p = place(RAM_BASE + 0x1000, 64 << 20, &h, 0).unwrap();
        assert_eq!(p.kernel, RAM_BASE + BASE_ALIGN + 0x8_0000);
        assert_eq!(p.dtb, RAM_BASE + 3 * BASE_ALIGN);
        assert_eq!(p.initrd, p.initrd_end);
    }

    #[test]
    fn ram_too_small_is_refused_with_what_is_needed() {
        let h = header(0x1ab_0000, 0);
        // kernel, 2 MiB of DTB slot, the initrd: 0x2100000 bytes, + 16 MiB.
        let need = 0x210_0000;
        assert!(place(RAM_BASE, need + FREE_MIN, &h, 3 << 20).is_ok());
        assert_eq!(
            place(RAM_BASE, need + FREE_MIN - 1, &h, 3 << 20),
            Err(PlaceError::TooSmall {
                base: RAM_BASE,
                have: need + FREE_MIN - 1,
                need
            })
        );
        assert!(place(u64::MAX - 0x1000, 1 << 30, &h, 0).is_err());
    }
}
