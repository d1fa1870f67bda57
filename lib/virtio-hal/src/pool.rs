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

    /// This PD's address of `len` bytes at device address `paddr`, if
    /// they lie inside (the reverse of [`translate`](Self::translate)).
    pub fn translate_back(&self, paddr: u64, len: usize) -> Option<usize> {
        let offset = usize::try_from(paddr.checked_sub(self.paddr)?).ok()?;
        let end = offset.checked_add(len)?;
        (end <= self.size).then(|| self.vaddr + offset)
    }
}

/// Further windows a device may reach besides the DMA region: the data
/// regions of a driver's clients, which the device reads and writes in
/// place. At most `N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Windows<const N: usize> {
    regions: [Option<Region>; N],
}

impl<const N: usize> Default for Windows<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Windows<N> {
    pub const fn new() -> Self {
        Windows { regions: [None; N] }
    }

    /// Adds `r`; `false` when all `N` are taken or `r` is empty.
    pub fn add(&mut self, r: Region) -> bool {
        if r.size == 0 {
            return false;
        }
        match self.regions.iter_mut().find(|w| w.is_none()) {
            Some(slot) => {
                *slot = Some(r);
                true
            }
            None => false,
        }
    }

    /// The device's address of `len` bytes at `vaddr`, if one window holds
    /// them all.
    pub fn translate(&self, vaddr: usize, len: usize) -> Option<u64> {
        self.regions
            .iter()
            .flatten()
            .find_map(|r| r.translate(vaddr, len))
    }

    /// This PD's address of `len` bytes at device address `paddr`, if one
    /// window holds them all.
    pub fn translate_back(&self, paddr: u64, len: usize) -> Option<usize> {
        self.regions
            .iter()
            .flatten()
            .find_map(|r| r.translate_back(paddr, len))
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
    fn windows_translate_both_ways_and_only_whole_spans() {
        let mut w = Windows::<2>::new();
        assert!(w.add(R));
        assert!(!w.add(Region { size: 0, ..R }));
        let other = Region {
            vaddr: 0x3000_0000,
            paddr: 0x9000_0000,
            size: 0x2000,
        };
        assert!(w.add(other));
        assert!(!w.add(other), "full");
        assert_eq!(w.translate(0x3000_1000, 0x1000), Some(0x9000_1000));
        assert_eq!(w.translate_back(0x9000_1000, 0x1000), Some(0x3000_1000));
        assert_eq!(w.translate_back(0x7ff0_3000, 0x1000), Some(0x2100_3000));
        // A span across two windows, or past one, is no span.
        assert_eq!(w.translate_back(0x9000_1800, 0x1000), None);
        assert_eq!(w.translate_back(0x8fff_ffff, 2), None);
        assert_eq!(w.translate_back(u64::MAX, 2), None);
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
