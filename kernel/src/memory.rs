//! # The kernel's window onto physical memory
//!
//! Every kernel object is named by its *physical* address: caps, derivation
//! links and object-to-object pointers all hold physical addresses. The
//! kernel reaches an object through a linear window, `kptr = paddr + offset`,
//! where `offset` is [`septa_abi::KERNEL_WINDOW_BASE`] on the target (the
//! boot code calls [`set_window`]) and, in host tests, the distance between a
//! host-allocated arena and the physical address the test pretends it has.
//!
//! Why physical addresses rather than kernel pointers: they are what seL4
//! user level sees (BootInfo, `Page_GetAddress`), they do not change when the
//! window moves, and they let the whole portable core run unmodified on the
//! host against an arena.
//!
//! All access goes through [`read`], [`write`] and [`zero`], by value, never
//! by Rust reference. The kernel's objects are a graph of mutual pointers
//! (derivation lists, queues); handing out `&mut` to any of them would make
//! aliasing rules impossible to uphold, whereas copying plain words in and
//! out is always sound. Each access checks that the bytes lie inside the
//! registered window and are aligned for the type, so a kernel bug becomes a
//! clean panic instead of a wild write; user input can never reach these
//! checks, because every address the kernel dereferences comes from a cap or
//! a link the kernel itself wrote. Object handles (`Tcb`, `Ep`, ...) check
//! their whole object once, with [`check_object`], and then reach its
//! fields with [`read_object_field`] and [`write_object_field`], which
//! check nothing more on the target.
//!
//! The cost of the checks matters: the IPC paths make hundreds of accesses.
//! On the target the window is fixed (physical memory from 0 at
//! `KERNEL_WINDOW_BASE`, a power of two long), so the offset is a constant
//! and, for an object or access no larger than its alignment, range and
//! alignment are one test of the address against a mask. The constant is
//! 0 (the kernel's EL2 address space maps physical memory at the identity),
//! so a physical address is the kernel's pointer with nothing added.
//!
//! This module owns the window registration and the only `unsafe` pointer
//! accesses of the portable core. It must not know about any object type.
//!
//! In host tests the window is per test thread (tests run in parallel, each
//! with its own arena); on the target it is fixed, and registered once at
//! boot.

use core::mem::{align_of, size_of};

/// Plain old data: any bit pattern is a valid value, there is no padding
/// that reads could expose and no drop glue. Only such types may be moved
/// in and out of kernel memory with [`read`] and [`write`].
///
/// # Safety
/// Implementors must be `Copy`, contain no references, pointers or padding,
/// and accept every bit pattern of their size.
pub unsafe trait Pod: Copy {}

// SAFETY: primitive unsigned integers accept every bit pattern and have no padding.
unsafe impl Pod for u8 {}
// SAFETY: as above.
unsafe impl Pod for u16 {}
// SAFETY: as above.
unsafe impl Pod for u32 {}
// SAFETY: as above.
unsafe impl Pod for u64 {}
// SAFETY: an array of `Pod` elements has no padding between them and every
// bit pattern of the array is a sequence of valid elements.
unsafe impl<T: Pod, const N: usize> Pod for [T; N] {}

/// The registered window: physical range `[phys_start, phys_end)` reached at
/// `phys + offset` (wrapping arithmetic, so a host arena below the pretended
/// physical base works too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub offset: u64,
    pub phys_start: u64,
    pub phys_end: u64,
}

impl Window {
    /// No window: every access panics.
    pub const EMPTY: Window = Window {
        offset: 0,
        phys_start: 0,
        phys_end: 0,
    };

    fn contains(&self, paddr: u64, len: u64) -> bool {
        paddr >= self.phys_start
            && paddr
                .checked_add(len)
                .is_some_and(|end| end <= self.phys_end)
    }
}

// On the target the window is fixed: the boot code maps physical memory
// from 0 at `KERNEL_WINDOW_BASE` (see `arch::aarch64::mmu`) and registers
// exactly that. Constants let every access check its range against one
// immediate and fold the offset into the address, where loading three
// words first cost more than the access itself.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod current {
    use super::Window;
    use core::sync::atomic::{AtomicBool, Ordering};

    pub const FIXED: Window = Window {
        offset: septa_abi::KERNEL_WINDOW_BASE,
        phys_start: 0,
        phys_end: crate::arch::aarch64::mmu::WINDOW_GIB << 30,
    };
    /// Whether the boot code registered the window yet (nothing reads
    /// through it before, so the accesses do not look at this).
    static SET: AtomicBool = AtomicBool::new(false);

    #[inline(always)]
    pub fn get() -> Window {
        FIXED
    }

    pub fn set(w: Window) {
        assert!(
            w == FIXED || w == Window::EMPTY,
            "the target's memory window is fixed"
        );
        SET.store(w == FIXED, Ordering::Relaxed);
    }
}

// Host builds other than the tests (clippy, docs): a window set at run time.
#[cfg(all(not(test), not(all(target_arch = "aarch64", target_os = "none"))))]
mod current {
    use super::Window;
    use core::sync::atomic::{AtomicU64, Ordering};

    static WINDOW: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

    pub fn get() -> Window {
        Window {
            offset: WINDOW[0].load(Ordering::Relaxed),
            phys_start: WINDOW[1].load(Ordering::Relaxed),
            phys_end: WINDOW[2].load(Ordering::Relaxed),
        }
    }

    pub fn set(w: Window) {
        WINDOW[0].store(w.offset, Ordering::Relaxed);
        WINDOW[1].store(w.phys_start, Ordering::Relaxed);
        WINDOW[2].store(w.phys_end, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod current {
    use super::Window;
    use std::cell::Cell;

    std::thread_local! {
        static WINDOW: Cell<Window> = const { Cell::new(Window::EMPTY) };
    }

    pub fn get() -> Window {
        WINDOW.with(|w| w.get())
    }

    pub fn set(w: Window) {
        WINDOW.with(|c| c.set(w));
    }
}

/// Registers the window through which the kernel reaches physical memory.
///
/// # Safety
/// For every physical address `p` in `[phys_start, phys_end)`, the address
/// `p + offset` (wrapping) must be valid for reads and writes for as long as
/// the window stays registered, must not be used by anything else than the
/// kernel's accesses through this module, on the target must be called only
/// once, before any access, with the fixed window of the target's memory
/// map (anything else panics), and on hosts must carry exposed provenance
/// (see [`core::ptr::with_exposed_provenance_mut`]).
pub unsafe fn set_window(offset: u64, phys_start: u64, phys_end: u64) {
    current::set(Window {
        offset,
        phys_start,
        phys_end,
    });
}

/// Unregisters the window (host tests call this before freeing an arena).
#[cfg(test)]
pub fn clear_window() {
    current::set(Window::EMPTY);
}

/// Whether `[paddr, paddr + len)` lies inside the window.
pub fn in_window(paddr: u64, len: u64) -> bool {
    current::get().contains(paddr, len)
}

/// The one-mask-test object check's failure (a kernel bug: the kernel
/// halts). With printing (the debug configuration) through `$panic`, a
/// message naming the address and length; on the target in the
/// configurations without printing, through [`check_failed_at`], which
/// names the address only: the check is inlined at some 300 sites, where
/// the length was an instruction of its own (1,780 bytes of code in the
/// benchmark configuration).
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
macro_rules! check_failed {
    ($paddr:expr, $panic:expr) => {{
        if !septa_abi::CONFIG.printing() {
            check_failed_at($paddr);
        }
        $panic
    }};
}

/// A failed access check in a configuration without printing
/// (`check_failed!`): reports the address.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
#[cold]
#[inline(never)]
fn check_failed_at(paddr: u64) -> ! {
    crate::print::raw::str(
        "KERNEL PANIC: a kernel access outside the physical window or misaligned: ",
    );
    crate::print::raw::hex(paddr);
    crate::print::raw::str("\n");
    crate::arch::aarch64::trap::halt()
}

#[inline(always)]
fn checked_ptr<T>(paddr: u64, len: u64) -> *mut T {
    // On the target, an access no larger than its alignment: one mask test
    // (see `check_object`).
    #[cfg(all(target_arch = "aarch64", target_os = "none"))]
    {
        const END: u64 = current::FIXED.phys_end;
        let align = align_of::<T>() as u64;
        if len <= align && align <= END {
            if paddr & (!(END - 1) | (align - 1)) != 0 {
                check_failed!(paddr, object_outside_or_misaligned(paddr, len));
            }
            return core::ptr::with_exposed_provenance_mut::<T>(
                paddr.wrapping_add(current::FIXED.offset) as usize,
            );
        }
    }
    let w = current::get();
    // One subtraction and compare for the range (an address below the
    // window wraps to a huge offset), one mask for the alignment; the
    // messages are built out of line, as this runs on every access.
    let off = paddr.wrapping_sub(w.phys_start);
    let size = w.phys_end.wrapping_sub(w.phys_start);
    if off > size || len > size - off {
        outside_window(paddr, len);
    }
    let k = paddr.wrapping_add(w.offset);
    if k & (align_of::<T>() as u64 - 1) != 0 {
        misaligned(paddr);
    }
    core::ptr::with_exposed_provenance_mut::<T>(k as usize)
}

#[cold]
#[inline(never)]
fn outside_window(paddr: u64, len: u64) -> ! {
    #[cfg(all(target_arch = "aarch64", target_os = "none"))]
    if !septa_abi::CONFIG.printing() {
        check_failed_at(paddr);
    }
    panic!("kernel access outside the physical window: {paddr:#x}+{len:#x}")
}

#[cold]
#[inline(never)]
fn misaligned(paddr: u64) -> ! {
    #[cfg(all(target_arch = "aarch64", target_os = "none"))]
    if !septa_abi::CONFIG.printing() {
        check_failed_at(paddr);
    }
    panic!("misaligned kernel access at {paddr:#x}")
}

/// Checks once that a whole object `[paddr, paddr + len)` lies inside the
/// window and that `paddr` is a multiple of `align` (a power of two), so
/// that its fields can then be reached with [`read_object_field`] and
/// [`write_object_field`] without checking again on each access. Panics (a kernel
/// bug) if not, as every checked access does.
#[inline(always)]
pub fn check_object(paddr: u64, len: u64, align: u64) {
    // On the target the window is [0, 2^k): an object no larger than its
    // alignment, starting inside the window at a multiple of that
    // alignment, ends inside it too, so one mask test covers range and
    // alignment.
    #[cfg(all(target_arch = "aarch64", target_os = "none"))]
    {
        const END: u64 = current::FIXED.phys_end;
        const _: () = assert!(current::FIXED.phys_start == 0 && END.is_power_of_two());
        if len <= align && align <= END {
            if paddr & (!(END - 1) | (align - 1)) != 0 {
                check_failed!(paddr, object_outside_or_misaligned(paddr, len));
            }
            return;
        }
    }
    let _ = checked_ptr::<u8>(paddr, len);
    if paddr & (align - 1) != 0 {
        misaligned(paddr);
    }
}

/// [`check_object`]'s failure: which of its checks failed.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
#[cold]
#[inline(never)]
fn object_outside_or_misaligned(paddr: u64, len: u64) -> ! {
    let w = current::get();
    if paddr < w.phys_start || paddr.saturating_add(len) > w.phys_end {
        outside_window(paddr, len);
    }
    misaligned(paddr)
}

/// The kernel address of the object at `base`: the address itself, since
/// the window is the identity. (With a window elsewhere, the sum with its
/// offset, which no `add` immediate holds, was best computed once per
/// object and kept in a register, behind an empty `asm!` that stopped the
/// compiler from folding the offset into every field's displacement; the
/// identity window made that, and the 622 instructions that built or added
/// the offset, unnecessary.)
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
#[inline(always)]
fn object_base(base: u64) -> u64 {
    const _: () = assert!(current::FIXED.offset == 0);
    base
}

/// The kernel pointer for the field at `off` of the object at `base`, which
/// passed [`check_object`]. On the target the window never changes, so the
/// object's check still holds and the field is reached from the object's
/// kernel address ([`object_base`]) at a small offset; on the host (where
/// test arenas come and go) every access is checked in full.
#[inline(always)]
fn object_field_ptr<T>(base: u64, off: u64) -> *mut T {
    #[cfg(all(target_arch = "aarch64", target_os = "none"))]
    {
        core::ptr::with_exposed_provenance_mut::<T>(object_base(base).wrapping_add(off) as usize)
    }
    #[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
    {
        checked_ptr::<T>(base + off, size_of::<T>() as u64)
    }
}

/// Reads the field at `off` of the object at `base`, checked with
/// [`check_object`], reached from the object's kernel address (see
/// [`object_base`]).
///
/// # Safety
/// `[base + off, base + off + size_of::<T>())` must lie inside an object
/// that passed [`check_object`] under the window registered now, and
/// `base + off` must be aligned for `T` (the object's alignment and the
/// field's offset make it so).
#[inline(always)]
pub unsafe fn read_object_field<T: Pod>(base: u64, off: u64) -> T {
    let p = object_field_ptr::<T>(base, off);
    // SAFETY: the caller guarantees the bytes lie inside an object checked
    // against the current window, and their alignment; the target never
    // changes its window after boot and the host re-checks everything;
    // `set_window`'s contract makes the bytes valid for reads; `T: Pod`.
    unsafe { p.read() }
}

/// Writes the field at `off` of the object at `base` (see
/// [`read_object_field`]).
///
/// # Safety
/// As for [`read_object_field`].
#[inline(always)]
pub unsafe fn write_object_field<T: Pod>(base: u64, off: u64, value: T) {
    let p = object_field_ptr::<T>(base, off);
    // SAFETY: as in `read_object_field`, and valid for writes by
    // `set_window`'s contract; this module hands out no Rust reference to
    // these bytes.
    unsafe { p.write(value) }
}

/// Reads a value of plain data at a physical address.
#[inline(always)]
pub fn read<T: Pod>(paddr: u64) -> T {
    let p = checked_ptr::<T>(paddr, size_of::<T>() as u64);
    // SAFETY: `checked_ptr` proved the bytes lie inside the registered window
    // and are aligned for `T`; `set_window`'s contract makes them valid for
    // reads; `T: Pod` accepts whatever bits are there.
    unsafe { p.read() }
}

/// Writes a value of plain data at a physical address.
#[inline(always)]
pub fn write<T: Pod>(paddr: u64, value: T) {
    let p = checked_ptr::<T>(paddr, size_of::<T>() as u64);
    // SAFETY: in the window and aligned (checked above), valid for writes by
    // `set_window`'s contract; no Rust reference to these bytes exists, as
    // this module never hands one out.
    unsafe { p.write(value) }
}

/// Fills `len` bytes at a physical address with zero.
pub fn zero(paddr: u64, len: u64) {
    if len == 0 {
        return;
    }
    let p = checked_ptr::<u8>(paddr, len);
    // SAFETY: the whole range is inside the window (checked above), valid
    // for writes by `set_window`'s contract and mapped as Normal memory (the
    // window maps RAM; the kernel never zeroes device memory).
    unsafe { septa_zva::zero(p, len as usize) }
}

/// Copies `len` bytes between physical addresses (the ranges may overlap).
pub fn copy(src: u64, dst: u64, len: u64) {
    if len == 0 {
        return;
    }
    let from = checked_ptr::<u8>(src, len);
    let to = checked_ptr::<u8>(dst, len);
    // SAFETY: both ranges lie inside the window (checked above) and are valid
    // for reads and writes by `set_window`'s contract; `copy` allows overlap.
    unsafe { core::ptr::copy(from, to, len as usize) }
}

/// Whether `len` bytes at a physical address are all zero (tests and
/// assertions of the zero-initialisation rule).
pub fn is_zero(paddr: u64, len: u64) -> bool {
    let mut off = 0;
    while off + 8 <= len {
        if read::<u64>(paddr + off) != 0 {
            return false;
        }
        off += 8;
    }
    while off < len {
        if read::<u8>(paddr + off) != 0 {
            return false;
        }
        off += 1;
    }
    true
}

/// A host-allocated arena that stands in for physical memory in tests.
#[cfg(test)]
pub mod arena {
    use std::alloc::{alloc, dealloc, Layout};

    /// Where tests pretend RAM starts (QEMU `virt`'s RAM base).
    pub const PHYS_BASE: u64 = 0x4000_0000;

    /// Owns the host memory and registers it as this thread's window; the
    /// window is cleared again on drop.
    pub struct Arena {
        ptr: *mut u8,
        layout: Layout,
        pub phys_base: u64,
        pub size: u64,
    }

    impl Arena {
        /// An arena of `size` bytes filled with `fill`, so tests notice
        /// when the kernel hands out memory it did not clear.
        pub fn new(size: u64, fill: u8) -> Arena {
            let layout = Layout::from_size_align(size as usize, 1 << 16).expect("arena layout");
            // SAFETY: the layout has non-zero size.
            let ptr = unsafe { alloc(layout) };
            assert!(!ptr.is_null(), "arena allocation failed");
            // SAFETY: `ptr` is valid for `size` bytes, just allocated.
            unsafe { core::ptr::write_bytes(ptr, fill, size as usize) };
            let host = ptr.expose_provenance() as u64;
            // SAFETY: the arena is valid for reads and writes over the whole
            // registered range until `drop` clears the window first, and its
            // provenance was exposed just above.
            unsafe { super::set_window(host.wrapping_sub(PHYS_BASE), PHYS_BASE, PHYS_BASE + size) };
            Arena {
                ptr,
                layout,
                phys_base: PHYS_BASE,
                size,
            }
        }
    }

    impl Drop for Arena {
        fn drop(&mut self) {
            super::clear_window();
            // SAFETY: allocated in `new` with this layout; the window no
            // longer refers to it.
            unsafe { dealloc(self.ptr, self.layout) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::arena::Arena;
    use super::*;

    #[test]
    fn reads_back_what_was_written_through_the_window() {
        let a = Arena::new(1 << 16, 0xaa);
        write::<u64>(a.phys_base + 8, 0x1234_5678_9abc_def0);
        assert_eq!(read::<u64>(a.phys_base + 8), 0x1234_5678_9abc_def0);
        assert_eq!(read::<u8>(a.phys_base + 7), 0xaa);
        zero(a.phys_base, 64);
        assert!(is_zero(a.phys_base, 64));
        assert!(!is_zero(a.phys_base, 65));
    }

    #[test]
    #[should_panic(expected = "outside the physical window")]
    fn an_access_past_the_window_panics() {
        let a = Arena::new(1 << 16, 0);
        let _ = read::<u64>(a.phys_base + a.size);
    }

    #[test]
    #[should_panic(expected = "outside the physical window")]
    fn an_object_reaching_past_the_window_is_refused_at_its_check() {
        let a = Arena::new(1 << 16, 0);
        check_object(a.phys_base + a.size - 8, 16, 8);
    }

    #[test]
    fn fields_of_a_checked_object_read_back() {
        let a = Arena::new(1 << 16, 0);
        check_object(a.phys_base, 64, 64);
        // SAFETY: inside the 64 bytes just checked, under the live arena.
        unsafe { write_object_field::<u64>(a.phys_base, 8, 42) };
        // SAFETY: as above.
        assert_eq!(unsafe { read_object_field::<u64>(a.phys_base, 8) }, 42);
    }

    #[test]
    #[should_panic(expected = "misaligned")]
    fn a_misaligned_object_is_refused_at_its_check() {
        let a = Arena::new(1 << 16, 0);
        check_object(a.phys_base + 32, 64, 64);
    }

    #[test]
    #[should_panic(expected = "misaligned")]
    fn a_misaligned_access_panics() {
        let a = Arena::new(1 << 16, 0);
        let _ = read::<u64>(a.phys_base + 4);
    }
}
