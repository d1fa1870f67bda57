//! Worker address spaces: where the suite's other threads run.
//!
//! `septa-sel4` keeps one IPC buffer address per address space (a protection
//! domain has one thread), so a second thread in the root task's VSpace would
//! read and write the root's IPC buffer, and a test of long messages or cap
//! transfer between the two would prove nothing. Instead every thread the
//! suite starts runs in a *worker* VSpace of its own: the root task's image
//! frames mapped again at the same addresses (so code, data and stacks are
//! shared memory), plus a private frame at the root's IPC buffer address. The
//! library's one IPC buffer pointer is then right in every worker, and each
//! worker's buffer is its own memory.
//!
//! Worker 0 belongs to the watchdog; cases use the others, one live thread
//! per worker, each with its own stack in the shared image.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use septa_abi::{CapRights, ObjectType};
use septa_sel4::cap::cap_type::*;
use septa_sel4::{Cap, Error, FrameType, VmAttributes};

use crate::env::{self, Cx};
use crate::report::Failure;
use crate::{fail, ok};

/// Worker address spaces (0 is the watchdog's).
pub const WORKERS: usize = 6;
/// The watchdog's worker.
pub const WATCHDOG_WORKER: usize = 0;
/// Stack of each worker thread.
pub const STACK_BYTES: usize = 32 * 1024;
/// Page size.
pub const PAGE: u64 = 1 << septa_abi::PAGE_BITS;

#[repr(C, align(4096))]
struct Stacks(UnsafeCell<[[u8; STACK_BYTES]; WORKERS]>);

// SAFETY: the suite never reads or writes the stacks through this static;
// it only takes their addresses, and each stack is used by the one thread
// running in its worker.
unsafe impl Sync for Stacks {}

static STACKS: Stacks = Stacks(UnsafeCell::new([[0; STACK_BYTES]; WORKERS]));

static VSPACE: [AtomicU64; WORKERS] = [const { AtomicU64::new(0) }; WORKERS];
static READY: AtomicBool = AtomicBool::new(false);
static IPC_FRAME: [AtomicU64; WORKERS] = [const { AtomicU64::new(0) }; WORKERS];

/// The top (initial SP) of worker `w`'s stack.
pub fn stack_top(w: usize) -> u64 {
    STACKS.0.get() as u64 + ((w + 1) * STACK_BYTES) as u64
}

/// Worker `w`'s stack as an address range.
pub fn stack_range(w: usize) -> core::ops::Range<u64> {
    stack_top(w) - STACK_BYTES as u64..stack_top(w)
}

/// Worker `w`'s VSpace.
pub fn vspace(w: usize) -> Cap<VSpace> {
    Cap::from_bits(VSPACE[w].load(Relaxed))
}

/// Worker `w`'s private IPC buffer frame.
pub fn ipc_frame(w: usize) -> Cap<SmallPage> {
    Cap::from_bits(IPC_FRAME[w].load(Relaxed))
}

/// The IPC buffer address, the same in every address space.
pub fn ipc_buffer_vaddr() -> u64 {
    env::bootinfo().ipc_buffer()
}

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
fn image_bounds() -> (u64, u64) {
    extern "C" {
        static __image_start: u8;
        static __image_end: u8;
    }
    // Only the addresses of the linker-script symbols are taken.
    (
        core::ptr::addr_of!(__image_start) as u64,
        core::ptr::addr_of!(__image_end) as u64,
    )
}

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
fn image_bounds() -> (u64, u64) {
    (0, 0)
}

/// Maps `frame` at `vaddr` in `vs`, creating the missing page tables from
/// `ut` on the way (each failed map names the level that is missing).
pub fn map_frame<F: FrameType>(
    cx: &mut Cx,
    ut: Cap<Untyped>,
    vs: Cap<VSpace>,
    frame: Cap<F>,
    vaddr: u64,
    rights: CapRights,
    attr: VmAttributes,
) -> Result<(), Failure> {
    // The VSpace root plus at most two table levels below it.
    for _ in 0..3 {
        match frame.map(vs, vaddr, rights, attr) {
            Ok(()) => return Ok(()),
            Err(Error::FailedLookup { .. }) => {
                let pt: Cap<PageTable> = cx.retype_from(ut, ObjectType::PageTable, 0)?;
                ok!(pt.map(vs, vaddr, VmAttributes::DEFAULT));
            }
            Err(e) => fail!("mapping a frame at {vaddr:#x}: {e:?}"),
        }
    }
    fail!("mapping a frame at {vaddr:#x}: still no page table after three levels")
}

/// Read and write: the rights of every data mapping the suite makes.
pub fn rw() -> CapRights {
    CapRights::new(false, false, true, true)
}

/// Builds the worker address spaces from the infrastructure pool.
pub fn setup(cx: &mut Cx) -> Result<(), Failure> {
    let bi = env::bootinfo();
    let (start, end) = image_bounds();
    let frames = bi.user_image_frames().count() as u64;
    let pages = end.div_ceil(PAGE) - start / PAGE;
    check_image(frames, pages)?;
    let infra = env::infra_pool();
    for w in 0..WORKERS {
        let vs: Cap<VSpace> = cx.retype_from(infra, ObjectType::VSpace, 0)?;
        ok!(cx.asid_pool().assign(vs));
        for (i, frame) in bi.user_image_frames().enumerate() {
            let copy = cx.copy(frame, CapRights::ALL)?;
            let va = start / PAGE * PAGE + i as u64 * PAGE;
            map_frame(cx, infra, vs, copy, va, rw(), VmAttributes::DEFAULT)?;
        }
        let ipc: Cap<SmallPage> = cx.retype_from(infra, ObjectType::SmallPage, 0)?;
        let ipc_va = ipc_buffer_vaddr();
        map_frame(cx, infra, vs, ipc, ipc_va, rw(), VmAttributes::DEFAULT)?;
        VSPACE[w].store(vs.bits(), Relaxed);
        IPC_FRAME[w].store(ipc.bits(), Relaxed);
    }
    READY.store(true, Relaxed);
    Ok(())
}

/// Whether the worker address spaces exist (setup succeeded).
pub fn ready() -> bool {
    READY.load(Relaxed)
}

/// The kernel maps the image it was given page by page; the suite's linker
/// script bounds the same image. On the target they must agree.
fn check_image(frames: u64, pages: u64) -> Result<(), Failure> {
    if cfg!(all(target_arch = "aarch64", target_os = "none")) && frames < pages {
        fail!("BootInfo names {frames} image frames, the linked image has {pages} pages");
    }
    Ok(())
}
