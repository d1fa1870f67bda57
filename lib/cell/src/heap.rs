//! A cell's heap: a first-fit free list over the one region the tool gave
//! the cell (`septa_cells::heap`), so `alloc`'s `Vec`, `Box` and `String`
//! work within the cell's quota and nothing is ever allocated beyond it:
//! when the region is full, allocation fails (and a program that does not
//! handle it panics, which the monitor sees as a fault of the cell).
//!
//! Free blocks are kept in address order, each starting with a node (its
//! size and the next free block); freeing merges a block with its free
//! neighbours. Every block is a multiple of [`UNIT`] bytes and aligned to
//! it, so a node always fits.

use core::ptr::null_mut;

/// Granule of every block: room for a node, and the smallest alignment.
pub const UNIT: usize = 16;

#[repr(C)]
struct Node {
    size: usize,
    next: *mut Node,
}

/// A free list over one span of memory.
pub struct FreeList {
    head: *mut Node,
    /// Bytes handed out and not yet freed.
    used: usize,
    size: usize,
}

// SAFETY: a FreeList only points into the memory it was given, which its
// owner (a `PdRefCell`, one thread) alone uses.
unsafe impl Send for FreeList {}

impl FreeList {
    pub const EMPTY: FreeList = FreeList {
        head: null_mut(),
        used: 0,
        size: 0,
    };

    /// A free list over `size` bytes at `base`.
    ///
    /// # Safety
    /// `base..base + size` must be writable memory that nothing else uses
    /// for as long as the list (or anything it hands out) lives.
    pub unsafe fn new(base: usize, size: usize) -> FreeList {
        let start = base.next_multiple_of(UNIT);
        let end = (base + size) / UNIT * UNIT;
        if end <= start {
            return FreeList::EMPTY;
        }
        let head = start as *mut Node;
        // SAFETY: `start..end` lies in the caller's memory and is aligned
        // and large enough for a node.
        unsafe {
            head.write(Node {
                size: end - start,
                next: null_mut(),
            })
        };
        FreeList {
            head,
            used: 0,
            size: end - start,
        }
    }

    /// Bytes in use and in all.
    pub fn usage(&self) -> (usize, usize) {
        (self.used, self.size)
    }

    fn block_size(size: usize) -> usize {
        size.max(1).next_multiple_of(UNIT)
    }

    /// A block of `size` bytes aligned to `align`, or null.
    pub fn alloc(&mut self, size: usize, align: usize) -> *mut u8 {
        let size = FreeList::block_size(size);
        let align = align.max(UNIT);
        let mut prev: *mut Node = null_mut();
        let mut cur = self.head;
        while !cur.is_null() {
            // SAFETY: every node on the list is a free block of ours,
            // written by `new`, `alloc` or `free`.
            let Node { size: csize, next } = unsafe { cur.read() };
            let start = cur as usize;
            let end = start + csize;
            let at = start.next_multiple_of(align);
            if at + size <= end {
                // Cut [start, at) and [at + size, end) off as free blocks
                // (each a multiple of UNIT, possibly empty).
                let mut after = next;
                if at + size < end {
                    let tail = (at + size) as *mut Node;
                    // SAFETY: inside the free block, aligned to UNIT.
                    unsafe {
                        tail.write(Node {
                            size: end - at - size,
                            next,
                        })
                    };
                    after = tail;
                }
                if at > start {
                    // SAFETY: `cur` stays a free block, now shorter.
                    unsafe {
                        cur.write(Node {
                            size: at - start,
                            next: after,
                        })
                    };
                } else if prev.is_null() {
                    self.head = after;
                } else {
                    // SAFETY: `prev` is a free block of ours.
                    unsafe { (*prev).next = after };
                }
                self.used += size;
                return at as *mut u8;
            }
            prev = cur;
            cur = next;
        }
        null_mut()
    }

    /// Gives back a block `alloc` returned for `size` bytes.
    ///
    /// # Safety
    /// `ptr` must come from `alloc` on this list with the same `size`, and
    /// not have been freed since.
    pub unsafe fn free(&mut self, ptr: *mut u8, size: usize) {
        let size = FreeList::block_size(size);
        let start = ptr as usize;
        let mut prev: *mut Node = null_mut();
        let mut cur = self.head;
        while !cur.is_null() && (cur as usize) < start {
            prev = cur;
            // SAFETY: a free block of ours.
            cur = unsafe { (*cur).next };
        }
        let node = ptr as *mut Node;
        // SAFETY: the block is ours again (the caller's promise), aligned
        // and at least a node long.
        unsafe { node.write(Node { size, next: cur }) };
        // Merge with the next block if they touch.
        if !cur.is_null() && start + size == cur as usize {
            // SAFETY: both are free blocks of ours.
            unsafe {
                (*node).size += (*cur).size;
                (*node).next = (*cur).next;
            }
        }
        if prev.is_null() {
            self.head = node;
        } else {
            // SAFETY: `prev` is a free block of ours, just before `node`.
            unsafe {
                if prev as usize + (*prev).size == start {
                    (*prev).size += (*node).size;
                    (*prev).next = (*node).next;
                } else {
                    (*prev).next = node;
                }
            }
        }
        self.used -= size;
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    fn arena(units: usize) -> (Vec<u128>, FreeList) {
        let mut mem = std::vec![0u128; units];
        // SAFETY: the vector outlives the list in each test and nothing
        // else touches it.
        let list = unsafe { FreeList::new(mem.as_mut_ptr() as usize, units * 16) };
        (mem, list)
    }

    #[test]
    fn allocations_are_aligned_disjoint_and_bounded() {
        let (_mem, mut h) = arena(64); // 1 KiB
        let a = h.alloc(10, 8);
        let b = h.alloc(100, 64);
        let c = h.alloc(16, 16);
        for (p, align) in [(a, 16), (b, 64), (c, 16)] {
            assert!(!p.is_null());
            assert_eq!(p as usize % align, 0);
        }
        let mut spans = [(a as usize, 16), (b as usize, 112), (c as usize, 16)];
        spans.sort();
        assert!(spans.windows(2).all(|w| w[0].0 + w[0].1 <= w[1].0));
        // Nothing beyond the span: 2 KiB cannot come out of 1 KiB.
        assert!(h.alloc(2048, 16).is_null());
    }

    #[test]
    fn freeing_merges_so_the_whole_heap_comes_back() {
        let (_mem, mut h) = arena(64);
        let mut ps: Vec<*mut u8> = (0..64).map(|_| h.alloc(16, 16)).collect();
        assert!(ps.iter().all(|p| !p.is_null()));
        assert!(h.alloc(16, 16).is_null(), "full");
        // Free in a scrambled order.
        let n = ps.len();
        for i in 0..n {
            let p = ps[(i * 37) % n];
            // SAFETY: each pointer came from alloc(16) and is freed once.
            unsafe { h.free(p, 16) };
        }
        ps.clear();
        assert_eq!(h.usage().0, 0);
        assert!(!h.alloc(1024, 16).is_null(), "one block again");
    }

    #[test]
    fn random_alloc_free_never_overlaps() {
        let (_mem, mut h) = arena(4096); // 64 KiB
        let mut live: Vec<(usize, usize)> = Vec::new();
        let mut x: u64 = 0x1234_5678;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if !x.is_multiple_of(3) || live.is_empty() {
                let size = (x >> 8) as usize % 700 + 1;
                let align = 1 << ((x >> 20) % 7);
                let p = h.alloc(size, align);
                if !p.is_null() {
                    let p = p as usize;
                    assert_eq!(p % align.max(16), 0);
                    let sz = size.next_multiple_of(16);
                    assert!(live.iter().all(|&(q, qs)| p + sz <= q || q + qs <= p));
                    live.push((p, sz));
                }
            } else {
                let (p, sz) = live.swap_remove((x >> 32) as usize % live.len());
                // SAFETY: allocated above with this size, freed once.
                unsafe { h.free(p as *mut u8, sz) };
            }
        }
        for (p, sz) in live.drain(..) {
            // SAFETY: as above.
            unsafe { h.free(p as *mut u8, sz) };
        }
        assert_eq!(h.usage().0, 0);
        assert!(!h.alloc(64 * 1024, 16).is_null());
    }
}
