//! A heap for PDs that allocate only while they start: a bump allocator
//! over a static array, which never gives memory back.
//!
//! A PD that sets up its buffers once (a network stack's socket buffers)
//! and keeps them for its life needs no more; nothing can fragment and an
//! allocation costs a few instructions. A PD makes it its global allocator
//! on the target only (on the host, std's stays):
//!
//! ```ignore
//! #[cfg(all(target_arch = "aarch64", target_os = "none"))]
//! #[global_allocator]
//! static HEAP: septa_runtime::heap::Bump<{ 4 << 20 }> = septa_runtime::heap::Bump::new();
//! ```
//!
//! The array is zero, so it costs the image nothing: it lies in `.bss`.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::{Cell, UnsafeCell};

/// `N` bytes handed out from the bottom up.
pub struct Bump<const N: usize> {
    heap: UnsafeCell<[u8; N]>,
    next: Cell<usize>,
}

impl<const N: usize> Bump<N> {
    pub const fn new() -> Self {
        Bump {
            heap: UnsafeCell::new([0; N]),
            next: Cell::new(0),
        }
    }

    /// Bytes handed out so far.
    pub fn used(&self) -> usize {
        self.next.get()
    }
}

impl<const N: usize> Default for Bump<N> {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: a PD has one thread and user level gets no interrupts (see
// `PdCell`), so the cursor is never used by two threads at once.
unsafe impl<const N: usize> Sync for Bump<N> {}

// SAFETY: `alloc` hands out disjoint, suitably aligned ranges of the static
// array (the cursor only moves forward, and every range ends inside the
// array) or null when it is full; `dealloc` does nothing, which is always
// sound.
unsafe impl<const N: usize> GlobalAlloc for Bump<N> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let base = self.heap.get() as usize;
        let Some(start) = (base + self.next.get()).checked_next_multiple_of(layout.align()) else {
            return core::ptr::null_mut();
        };
        match start.checked_add(layout.size()) {
            Some(end) if end <= base + N => {
                self.next.set(end - base);
                start as *mut u8
            }
            _ => core::ptr::null_mut(),
        }
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_are_aligned_disjoint_and_bounded() {
        let b: Bump<256> = Bump::new();
        let l = |size, align| Layout::from_size_align(size, align).unwrap();
        // SAFETY: layouts of non-zero size.
        let (p, q, r) = unsafe { (b.alloc(l(3, 1)), b.alloc(l(8, 8)), b.alloc(l(300, 1))) };
        assert!(!p.is_null() && !q.is_null());
        assert_eq!(q as usize % 8, 0);
        assert!(q as usize >= p as usize + 3);
        assert!(r.is_null(), "more than the heap holds");
        assert_eq!(b.used(), q as usize + 8 - b.heap.get() as usize);
    }
}
