//! Memory shared with another protection domain.
//!
//! [`Shared`] is the only place in the crate that touches memory through a
//! raw pointer. Everything else reaches the shared bytes through its
//! bounds-checked copies ([`Shared::read`], [`Shared::write`]) or through
//! the crate-private atomic accessors, whose every caller computes its
//! offset from a masked ring index and a layout checked when the queue was
//! attached (see `ring.rs`).
//!
//! ## Why atomics for every access
//!
//! The peer is another address space, outside the Rust abstract machine: it
//! may write any byte at any moment, honest or not. Plain loads and stores
//! would let the compiler assume the memory is ours alone (merge, tear,
//! re-read or invent accesses), so a value checked once could change before
//! it is used. Atomic accesses of the natural width are single loads and
//! stores on aarch64 (`ldr`/`str`, or `ldar`/`stlr` where ordering is
//! asked for), never elided or split, and what they read is a value the
//! hardware actually held. Relaxed atomics cost what plain accesses cost;
//! the orderings that matter are chosen in `ring.rs`.
#![allow(unsafe_code)]

use core::fmt;
use core::mem::{align_of, size_of};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};

/// A window of memory mapped into this PD and shared with another one: a
/// queue region, or a data region holding buffers or bytes.
///
/// Copying a `Shared` copies the window, not the memory. It hands out no
/// references to plain data: bytes go in and out by copy, and every copy
/// is bounds-checked against the window.
#[derive(Clone, Copy)]
pub struct Shared {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: a `Shared` is an address and a length; every access through it
// is atomic (see the module header), so using it from several threads at
// once is free of data races by construction. The memory's owner promised
// in `Shared::new` that it stays mapped.
unsafe impl Send for Shared {}
// SAFETY: as for `Send`: `&Shared` allows only atomic accesses.
unsafe impl Sync for Shared {}

/// A copy into or out of a [`Shared`] window that would leave it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfBounds {
    /// Where the copy would start, from the window's base.
    pub offset: usize,
    /// How many bytes it would copy.
    pub len: usize,
    /// The window's length.
    pub window: usize,
}

impl fmt::Display for OutOfBounds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} bytes at offset {:#x} do not fit a {}-byte window",
            self.len, self.offset, self.window
        )
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Shared({:#x}, {} bytes)", self.addr(), self.len)
    }
}

impl Shared {
    /// The window of `len` bytes at `base`. `None` if `base` is null or the
    /// window would wrap the address space.
    ///
    /// # Safety
    ///
    /// For as long as this value or any copy of it (or of a window cut from
    /// it) is used, `base..base + len` must stay mapped, readable and, if
    /// any method that writes is called, writable. This program must touch
    /// that memory only through `Shared` values (or other atomic or
    /// volatile accesses); other PDs and devices may do as they please.
    /// In a PD, a region mapped by the system description (its `setvar`
    /// address and size) meets this for the PD's whole life.
    pub unsafe fn new(base: *mut u8, len: usize) -> Option<Self> {
        (base as usize).checked_add(len)?;
        Some(Shared {
            base: NonNull::new(base)?,
            len,
        })
    }

    /// The window's length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the window has no bytes.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The window's address in this PD.
    #[inline]
    pub fn addr(&self) -> usize {
        self.base.as_ptr() as usize
    }

    /// The window's base pointer, for code that must hand the memory to
    /// something else (a device, another library). Using it is that code's
    /// responsibility; nothing in this crate dereferences it.
    #[inline]
    pub fn as_ptr(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    /// The `len` bytes at `offset` of this window, as a window of their own,
    /// or `None` if they do not lie inside it.
    #[inline]
    pub fn window(&self, offset: usize, len: usize) -> Option<Shared> {
        if offset.checked_add(len)? > self.len {
            return None;
        }
        // The new window lies inside this one, which meets `new`'s
        // contract, so it does too; `add` stays inside the allocation.
        Some(Shared {
            // SAFETY: `offset <= self.len`, so the pointer stays inside (or
            // one past) the window, which does not wrap (checked in `new`);
            // the result is non-null because the base is and it does not
            // wrap.
            base: unsafe { NonNull::new_unchecked(self.base.as_ptr().add(offset)) },
            len,
        })
    }

    #[inline]
    fn check(&self, offset: usize, len: usize) -> Result<(), OutOfBounds> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(OutOfBounds {
                offset,
                len,
                window: self.len,
            }),
        }
    }

    /// Copies `dst.len()` bytes starting at `offset` out of the window.
    /// The peer may be writing them meanwhile: each byte read is one the
    /// memory held, but the copy as a whole is not a snapshot.
    #[inline]
    pub fn read(&self, offset: usize, dst: &mut [u8]) -> Result<(), OutOfBounds> {
        self.check(offset, dst.len())?;
        let mut i = 0;
        // Bytes up to an 8-byte boundary, then words, then the tail.
        while i < dst.len() && !(self.addr() + offset + i).is_multiple_of(8) {
            dst[i] = self.u8_at(offset + i).load(Relaxed);
            i += 1;
        }
        while i + 8 <= dst.len() {
            let word = self.u64_at(offset + i).load(Relaxed);
            dst[i..i + 8].copy_from_slice(&word.to_ne_bytes());
            i += 8;
        }
        while i < dst.len() {
            dst[i] = self.u8_at(offset + i).load(Relaxed);
            i += 1;
        }
        Ok(())
    }

    /// Copies `src` into the window at `offset`.
    #[inline]
    pub fn write(&self, offset: usize, src: &[u8]) -> Result<(), OutOfBounds> {
        self.check(offset, src.len())?;
        let mut i = 0;
        while i < src.len() && !(self.addr() + offset + i).is_multiple_of(8) {
            self.u8_at(offset + i).store(src[i], Relaxed);
            i += 1;
        }
        while i + 8 <= src.len() {
            let word = u64::from_ne_bytes(src[i..i + 8].try_into().unwrap());
            self.u64_at(offset + i).store(word, Relaxed);
            i += 8;
        }
        while i < src.len() {
            self.u8_at(offset + i).store(src[i], Relaxed);
            i += 1;
        }
        Ok(())
    }

    /// Copies `len` bytes from `self` at `from` to `dst` at `to` (the
    /// windows may belong to different PDs, and either side may be
    /// changing meanwhile, as for [`read`](Self::read)). Where the two
    /// addresses are equally far from an 8-byte boundary, bytes go word
    /// by word straight from one window to the other; otherwise through a
    /// small bounce buffer.
    #[inline]
    pub fn copy_to(
        &self,
        from: usize,
        dst: &Shared,
        to: usize,
        len: usize,
    ) -> Result<(), OutOfBounds> {
        self.check(from, len)?;
        dst.check(to, len)?;
        let (src_at, dst_at) = (self.addr() + from, dst.addr() + to);
        if src_at % 8 == dst_at % 8 {
            let mut i = 0;
            while i < len && !(src_at + i).is_multiple_of(8) {
                let b = self.u8_at(from + i).load(Relaxed);
                dst.u8_at(to + i).store(b, Relaxed);
                i += 1;
            }
            while i + 8 <= len {
                let word = self.u64_at(from + i).load(Relaxed);
                dst.u64_at(to + i).store(word, Relaxed);
                i += 8;
            }
            while i < len {
                let b = self.u8_at(from + i).load(Relaxed);
                dst.u8_at(to + i).store(b, Relaxed);
                i += 1;
            }
            return Ok(());
        }
        let mut buf = [0u8; 256];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(buf.len());
            self.read(from + done, &mut buf[..n])?;
            dst.write(to + done, &buf[..n])?;
            done += n;
        }
        Ok(())
    }

    /// The atomic `T` at `offset`.
    ///
    /// Crate-private: every caller passes an offset that lies inside the
    /// window and is aligned for `T`, by construction (a header field at a
    /// fixed offset, or a ring slot whose index is masked by a capacity
    /// checked against the window's length and alignment at attach time).
    /// The debug assertions restate that argument, and the test suite runs
    /// with them on, hostile inputs included.
    #[inline]
    fn atomic<T>(&self, offset: usize) -> &T {
        debug_assert!(
            offset
                .checked_add(size_of::<T>())
                .is_some_and(|end| end <= self.len),
            "atomic access at {offset:#x} outside a {}-byte window",
            self.len
        );
        debug_assert!(
            (self.addr() + offset).is_multiple_of(align_of::<T>()),
            "misaligned atomic access at {offset:#x}"
        );
        // SAFETY: the caller's offset lies inside the window and is aligned
        // for `T` (argued at each call site, checked above in debug
        // builds); `new`'s contract keeps the memory mapped for the
        // lifetime of `&self`. `T` is one of the `Atomic*` types, valid for
        // any bit pattern and with interior mutability, so a shared
        // reference to it is sound even while other threads or PDs write
        // the same bytes: the only accesses made through it are atomic.
        unsafe { &*(self.base.as_ptr().add(offset) as *const T) }
    }

    #[inline]
    pub(crate) fn u8_at(&self, offset: usize) -> &AtomicU8 {
        self.atomic(offset)
    }

    #[inline]
    pub(crate) fn u16_at(&self, offset: usize) -> &AtomicU16 {
        self.atomic(offset)
    }

    #[inline]
    pub(crate) fn u32_at(&self, offset: usize) -> &AtomicU32 {
        self.atomic(offset)
    }

    #[inline]
    pub(crate) fn u64_at(&self, offset: usize) -> &AtomicU64 {
        self.atomic(offset)
    }
}

#[cfg(test)]
mod tests {
    use crate::host::leak;

    #[test]
    fn copies_round_trip_at_every_alignment() {
        let w = leak(64);
        let src: [u8; 29] = core::array::from_fn(|i| i as u8 + 1);
        for off in 0..(64 - src.len()) {
            w.write(off, &src).unwrap();
            let mut back = [0u8; 29];
            w.read(off, &mut back).unwrap();
            assert_eq!(back, src, "offset {off}");
        }
    }

    #[test]
    fn copy_to_moves_bytes_between_windows() {
        let (a, b) = (leak(1024), leak(1024));
        let src: [u8; 700] = core::array::from_fn(|i| (i * 7) as u8);
        a.write(3, &src).unwrap();
        a.copy_to(3, &b, 300, 700).unwrap();
        let mut back = [0u8; 700];
        b.read(300, &mut back).unwrap();
        assert_eq!(back, src);
        assert!(a.copy_to(400, &b, 0, 700).is_err());
        assert!(a.copy_to(0, &b, 400, 700).is_err());
    }

    #[test]
    fn copy_to_word_by_word_and_bounced_agree_at_every_alignment() {
        let (a, b) = (leak(256), leak(256));
        let src: [u8; 256] = core::array::from_fn(|i| (i * 31 + 5) as u8);
        a.write(0, &src).unwrap();
        for from in 0..16 {
            for to in 0..16 {
                for len in [0, 1, 7, 8, 9, 63, 200] {
                    b.write(0, &[0xee; 256]).unwrap();
                    a.copy_to(from, &b, to, len).unwrap();
                    let mut back = [0u8; 256];
                    b.read(0, &mut back).unwrap();
                    assert_eq!(
                        &back[to..to + len],
                        &src[from..from + len],
                        "{from} {to} {len}"
                    );
                    assert!(back[..to].iter().all(|&x| x == 0xee), "{from} {to} {len}");
                    assert!(
                        back[to + len..].iter().all(|&x| x == 0xee),
                        "{from} {to} {len}"
                    );
                }
            }
        }
    }

    #[test]
    fn copies_that_leave_the_window_are_refused() {
        let w = leak(32);
        assert!(w.write(30, &[0; 3]).is_err());
        assert!(w.read(usize::MAX, &mut [0; 2]).is_err());
        assert!(w.write(32, &[]).is_ok());
        assert!(w.window(16, 17).is_none());
        let inner = w.window(8, 8).unwrap();
        inner.write(0, b"abcdefgh").unwrap();
        let mut out = [0; 8];
        w.read(8, &mut out).unwrap();
        assert_eq!(&out, b"abcdefgh");
        assert!(inner.write(1, b"abcdefgh").is_err());
    }
}
