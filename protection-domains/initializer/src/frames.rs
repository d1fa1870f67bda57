//! Access to the bytes of frames the initializer created: each frame is
//! mapped for a moment into a window of the initializer's own address
//! space, written, and unmapped again. The trait lets host tests replace
//! the window with plain memory.

use septa_sel4::invocation::build;
use septa_sel4::{cap_type, CPtr, Cap, CapRights, Error};

/// Where the window lies in the initializer's address space: 512 GiB, far
/// above its image (at 4 MiB) and below the top of the user space.
pub const WINDOW_BASE: u64 = 0x80_0000_0000;

/// Reads and writes frames.
pub trait FrameAccess {
    /// Runs `f` on the bytes of `frame` (2^`size_bits` bytes).
    fn with_frame(
        &mut self,
        frame: CPtr,
        size_bits: u8,
        f: &mut dyn FnMut(&mut [u8]),
    ) -> Result<(), Error>;
}

/// Where a frame of `size_bits` is mapped in the window: 4 KiB frames at
/// the base (under the window's own two page tables), 2 MiB frames in the
/// next 2 MiB slot of the same second-level table, 1 GiB frames in the next
/// GiB of the top level.
pub fn window_slot(size_bits: u8) -> Option<u64> {
    match u32::from(size_bits) {
        septa_abi::PAGE_BITS => Some(WINDOW_BASE),
        septa_abi::LARGE_PAGE_BITS => Some(WINDOW_BASE + (1 << septa_abi::LARGE_PAGE_BITS)),
        septa_abi::HUGE_PAGE_BITS => Some(WINDOW_BASE + (1 << septa_abi::HUGE_PAGE_BITS)),
        _ => None,
    }
}

/// Installs the window's page tables (second level, then third) in the
/// initializer's VSpace.
pub fn install_window(vspace: Cap<cap_type::VSpace>, l2: CPtr, l3: CPtr) -> Result<(), Error> {
    let attrs = septa_sel4::VmAttributes::DEFAULT;
    l2.cast::<cap_type::PageTable>()
        .map(vspace, WINDOW_BASE, attrs)?;
    l3.cast::<cap_type::PageTable>()
        .map(vspace, WINDOW_BASE, attrs)
}

/// Maps `frame` at `vaddr` of the initializer, read-write, cached, not
/// executable.
pub fn map_in_window(vspace: Cap<cap_type::VSpace>, frame: CPtr, vaddr: u64) -> Result<(), Error> {
    let attrs = septa_sel4::VmAttributes::CACHEABLE.union(septa_sel4::VmAttributes::EXECUTE_NEVER);
    let rw = CapRights::new(false, false, true, true);
    frame
        .cast::<cap_type::Unspecified>()
        .invoke(&build::page_map(vspace.cptr(), vaddr, rw, attrs.0))
        .map(drop)
}

/// After writing through the window: make the bytes visible to instruction
/// fetch (clean to the point of unification, invalidate the I-cache), then
/// unmap. Frames of 2 MiB and more (a guest's RAM and files, which a guest
/// reads with its caches off) are first cleaned to the point of coherency;
/// the small frames of PD images are not, which keeps the boot short.
pub fn leave_window(frame: CPtr, size: u64) -> Result<(), Error> {
    let f = frame.cast::<cap_type::Unspecified>();
    if size >= 1 << septa_abi::LARGE_PAGE_BITS {
        f.invoke(&build::page_clean_data(0, size))?;
    }
    f.invoke(&build::page_unify_instruction(0, size))?;
    f.invoke(&build::page_unmap()).map(drop)
}

/// The window on the target: real mappings, real memory.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub struct Window {
    pub vspace: Cap<cap_type::VSpace>,
}

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
impl FrameAccess for Window {
    fn with_frame(
        &mut self,
        frame: CPtr,
        size_bits: u8,
        f: &mut dyn FnMut(&mut [u8]),
    ) -> Result<(), Error> {
        let vaddr = window_slot(size_bits).ok_or(Error::InvalidArgument { index: 0 })?;
        let size = 1u64 << size_bits;
        map_in_window(self.vspace, frame, vaddr)?;
        // SAFETY: the frame was just mapped read-write at `vaddr` for `size`
        // bytes, in a window nothing else in the initializer uses; the
        // slice lives only during `f` and the mapping is removed after it.
        // The frame is not mapped executable anywhere else while this runs
        // (PDs are suspended or not yet started).
        let bytes = unsafe { core::slice::from_raw_parts_mut(vaddr as *mut u8, size as usize) };
        f(bytes);
        leave_window(frame, size)
    }
}
