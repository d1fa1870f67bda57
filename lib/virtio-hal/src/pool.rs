//! The DMA pool: a driver's one region of memory the device may reach,
//! handed out from the bottom up and never given back.
//!
//! The region is physically contiguous (the tool chooses its address and
//! patches it in with a `setvar`), mapped at a known virtual address, so an
//! address inside it translates to the device's view by an offset. The
//! virtqueues and the buffers are all taken from it once, at start-up;
//! nothing is freed, so a bump pointer suffices and cannot fragment.
#![forbid(unsafe_code)]

/// Where the region is, in the PD and for the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub vaddr: usize,
    pub paddr: u64,
    pub size: usize,
}

impl Region {
    /// The device's address of `len` bytes at `vaddr`, if they lie inside.
    pub fn translate(&self, vaddr: usize, len: usize) -> Option<u64> {
        let offset = vaddr.checked_sub(self.vaddr)?;
        let end = offset.checked_add(len)?;
        (end <= self.size).then(|| self.paddr + offset as u64)
    }
}

/// How much of the region is handed out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pool {
    used: usize,
}

impl Pool {
    pub const fn new() -> Pool {
        Pool { used: 0 }
    }

    /// Takes `size` bytes aligned to `align` (a power of two) from
    /// `region`; returns their virtual address, or `None` when the region
    /// is full.
    pub fn take(&mut self, region: &Region, size: usize, align: usize) -> Option<usize> {
        let start = region
            .vaddr
            .checked_add(self.used)?
            .checked_next_multiple_of(align)?;
        let end = start.checked_add(size)?;
        if end > region.vaddr.checked_add(region.size)? {
            return None;
        }
        self.used = end - region.vaddr;
        Some(start)
    }

    /// Bytes handed out so far, alignment gaps included.
    pub fn used(&self) -> usize {
        self.used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: Region = Region {
        vaddr: 0x2100_0000,
        paddr: 0x7ff0_0000,
        size: 0x4000,
    };

    #[test]
    fn takes_are_aligned_disjoint_and_bounded() {
        let mut p = Pool::new();
        assert_eq!(p.take(&R, 10, 8), Some(0x2100_0000));
        assert_eq!(p.take(&R, 0x1000, 0x1000), Some(0x2100_1000));
        assert_eq!(p.take(&R, 3, 1), Some(0x2100_2000));
        assert_eq!(p.take(&R, 0x1000, 0x1000), Some(0x2100_3000));
        assert_eq!(p.used(), 0x4000);
        assert_eq!(p.take(&R, 1, 1), None);
        // A failed take changes nothing.
        assert_eq!(p.used(), 0x4000);
    }

    #[test]
    fn only_addresses_inside_translate() {
        assert_eq!(R.translate(0x2100_0000, 0x4000), Some(0x7ff0_0000));
        assert_eq!(R.translate(0x2100_1234, 4), Some(0x7ff0_1234));
        assert_eq!(R.translate(0x2100_3fff, 2), None);
        assert_eq!(R.translate(0x20ff_ffff, 1), None);
        assert_eq!(R.translate(usize::MAX, 2), None);
    }
}
