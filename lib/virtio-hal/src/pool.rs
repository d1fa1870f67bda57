//! The DMA pool: a driver's one region of memory the device may reach,
//! handed out from the bottom up.
//!
//! The region is physically contiguous (the tool chooses its address and
//! patches it in with a `setvar`), mapped at a known virtual address, so an
//! address inside it translates to the device's view by an offset. The
//! virtqueues and the buffers are taken from it at start-up by a bump
//! pointer, which cannot fragment. A driver that resets its device gives
//! the old virtqueues back and takes new ones of the same sizes: a block
//! given back is kept (up to [`FREED`] of them) and handed out again for a
//! take of exactly its size and alignment, so resets, however many, use
//! no more of the region than the first start did.
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

/// How many blocks given back a pool keeps for reuse; more are leaked.
pub const FREED: usize = 8;

/// How much of the region is handed out, and the blocks given back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pool {
    used: usize,
    /// Blocks given back: (virtual address, size).
    freed: [Option<(usize, usize)>; FREED],
}

impl Pool {
    pub const fn new() -> Pool {
        Pool {
            used: 0,
            freed: [None; FREED],
        }
    }

    /// Takes `size` bytes aligned to `align` (a power of two) from
    /// `region`: a block given back of exactly that size and suitably
    /// aligned if there is one, else fresh memory; returns their virtual
    /// address, or `None` when the region is full.
    pub fn take(&mut self, region: &Region, size: usize, align: usize) -> Option<usize> {
        let reuse = self
            .freed
            .iter_mut()
            .find(|b| matches!(b, Some((at, len)) if *len == size && at % align == 0));
        if let Some(slot) = reuse {
            return slot.take().map(|(at, _)| at);
        }
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

    /// Gives back `size` bytes at `vaddr`, which an earlier
    /// [`take`](Self::take) of `size` bytes returned; `false` if there was
    /// no room to keep the block (it is then never handed out again, which
    /// is always safe).
    pub fn give_back(&mut self, vaddr: usize, size: usize) -> bool {
        match self.freed.iter_mut().find(|b| b.is_none()) {
            Some(slot) => {
                *slot = Some((vaddr, size));
                true
            }
            None => false,
        }
    }

    /// Bytes handed out so far, alignment gaps included (a block given
    /// back still counts: the pool's high-water mark).
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
    fn a_block_given_back_is_taken_again_for_the_same_size_only() {
        let mut p = Pool::new();
        let a = p.take(&R, 0x1000, 0x1000).unwrap();
        let b = p.take(&R, 0x2000, 0x1000).unwrap();
        assert!(p.give_back(a, 0x1000));
        assert!(p.give_back(b, 0x2000));
        // Another size, or an alignment the block lacks, takes fresh memory.
        assert_eq!(p.take(&R, 0x800, 0x800), Some(0x2100_3000));
        // b is not 8 KiB-aligned, and the region has no fresh 8 KiB left.
        assert_eq!(p.take(&R, 0x2000, 0x2000), None);
        // The same sizes get the same blocks back, however often.
        for _ in 0..100 {
            assert_eq!(p.take(&R, 0x2000, 0x1000), Some(b));
            assert_eq!(p.take(&R, 0x1000, 0x1000), Some(a));
            assert!(p.give_back(a, 0x1000) && p.give_back(b, 0x2000));
        }
        assert_eq!(p.used(), 0x3800);
    }

    #[test]
    fn blocks_beyond_what_the_pool_keeps_are_leaked_not_lost_track_of() {
        let mut p = Pool::new();
        for i in 0..FREED {
            assert!(p.give_back(0x2100_0000 + i * 16, 16));
        }
        assert!(!p.give_back(0x2100_1000, 16));
        for i in 0..FREED {
            assert_eq!(p.take(&R, 16, 16), Some(0x2100_0000 + i * 16));
        }
        assert_eq!(p.take(&R, 16, 16), Some(0x2100_0000), "then fresh memory");
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
