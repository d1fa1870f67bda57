//! Boot-time physical memory bookkeeping: which RAM is free once the kernel,
//! the root task's image and the device tree are placed, a bump allocator for
//! the root task's own objects, and the cut of what remains into untyped
//! blocks as seL4 cuts it (each block naturally aligned and as large as the
//! alignment and the remaining length allow).
//!
//! Pure arithmetic, tested on the host.

/// A physical range, end exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Region {
    pub start: u64,
    pub end: u64,
}

impl Region {
    pub const fn new(start: u64, end: u64) -> Self {
        Region { start, end }
    }
    pub const fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

/// At most this many disjoint free regions are tracked.
pub const MAX_REGIONS: usize = 16;

/// A set of disjoint free regions, kept sorted.
#[derive(Clone, Copy, Debug, Default)]
pub struct FreeList {
    regions: [Region; MAX_REGIONS],
    len: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootMemError {
    TooManyRegions,
    OutOfMemory { bytes: u64, align: u64 },
}

impl FreeList {
    pub fn regions(&self) -> &[Region] {
        &self.regions[..self.len]
    }

    /// Adds free memory (must not overlap what is already free).
    pub fn add(&mut self, r: Region) -> Result<(), BootMemError> {
        if r.is_empty() {
            return Ok(());
        }
        if self.len == MAX_REGIONS {
            return Err(BootMemError::TooManyRegions);
        }
        let at = self.regions[..self.len]
            .iter()
            .position(|x| x.start > r.start)
            .unwrap_or(self.len);
        self.regions.copy_within(at..self.len, at + 1);
        self.regions[at] = r;
        self.len += 1;
        Ok(())
    }

    /// Removes `r` from the free memory, splitting regions where needed.
    pub fn remove(&mut self, r: Region) -> Result<(), BootMemError> {
        let mut out = FreeList::default();
        for x in self.regions() {
            let below = Region::new(x.start, x.end.min(r.start));
            let above = Region::new(x.start.max(r.end), x.end);
            out.add(below)?;
            out.add(above)?;
        }
        *self = out;
        Ok(())
    }

    /// Takes `bytes` aligned to `align` (a power of two), choosing the
    /// highest fit so that low memory stays in large untyped blocks.
    pub fn alloc(&mut self, bytes: u64, align: u64) -> Result<u64, BootMemError> {
        for i in (0..self.len).rev() {
            let r = self.regions[i];
            if r.end < bytes {
                continue;
            }
            let start = (r.end - bytes) & !(align - 1);
            if start >= r.start {
                self.remove(Region::new(start, start + bytes))?;
                return Ok(start);
            }
        }
        Err(BootMemError::OutOfMemory { bytes, align })
    }
}

/// Cuts `r` into naturally aligned blocks of at most 2^`max_bits` bytes and
/// at least 2^`min_bits`, calling `f(paddr, size_bits)` for each in order.
pub fn untyped_blocks(r: Region, min_bits: u32, max_bits: u32, mut f: impl FnMut(u64, u32)) {
    let mut at = r.start;
    while at < r.end {
        let align_bits = if at == 0 { 63 } else { at.trailing_zeros() };
        let len_bits = 63 - (r.end - at).leading_zeros();
        let bits = align_bits.min(len_bits).min(max_bits);
        if bits < min_bits {
            // Too small to be useful: skip to the next boundary.
            at = (at | ((1 << min_bits) - 1)) + 1;
            continue;
        }
        f(at, bits);
        at += 1 << bits;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remove_splits_and_alloc_takes_from_the_top() {
        let mut f = FreeList::default();
        f.add(Region::new(0x4000_0000, 0xc000_0000)).unwrap();
        f.remove(Region::new(0x4000_0000, 0x4010_0000)).unwrap();
        f.remove(Region::new(0x5000_0000, 0x5000_1000)).unwrap();
        assert_eq!(
            f.regions(),
            &[
                Region::new(0x4010_0000, 0x5000_0000),
                Region::new(0x5000_1000, 0xc000_0000)
            ]
        );
        let a = f.alloc(0x2000, 0x2000).unwrap();
        assert_eq!(a, 0xc000_0000 - 0x2000);
        assert_eq!(f.regions()[1].end, a);
        assert_eq!(
            f.alloc(1 << 40, 4096),
            Err(BootMemError::OutOfMemory {
                bytes: 1 << 40,
                align: 4096
            })
        );
    }

    #[test]
    fn untyped_blocks_are_aligned_cover_the_region_and_grow() {
        let r = Region::new(0x4010_3000, 0x8000_0000);
        let mut blocks = std::vec::Vec::new();
        untyped_blocks(r, 4, 47, |p, b| blocks.push((p, b)));
        let mut at = r.start;
        for &(p, b) in &blocks {
            assert_eq!(p, at, "blocks are contiguous");
            assert_eq!(p % (1 << b), 0, "block {p:#x} of 2^{b} is aligned");
            at += 1 << b;
        }
        assert_eq!(at, r.end);
        assert_eq!(blocks.first(), Some(&(0x4010_3000, 12)));
        assert_eq!(blocks.last(), Some(&(0x6000_0000, 29)));
    }

    #[test]
    fn untyped_blocks_respect_the_maximum_and_skip_slivers() {
        let mut blocks = std::vec::Vec::new();
        untyped_blocks(Region::new(0, 1 << 50), 4, 47, |p, b| blocks.push((p, b)));
        assert_eq!(blocks.len(), 8);
        assert!(blocks.iter().all(|&(_, b)| b == 47));
        let mut blocks = std::vec::Vec::new();
        untyped_blocks(Region::new(0x1001, 0x1020), 4, 47, |p, b| {
            blocks.push((p, b))
        });
        assert_eq!(blocks, [(0x1010, 4)]);
    }
}
