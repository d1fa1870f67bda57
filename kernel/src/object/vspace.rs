//! Address spaces: VSpace roots, page tables, frames and ASID pools.
//!
//! Zero rule: all-zero page tables hold only invalid entries; an all-zero
//! ASID pool has no assigned ASIDs.
//!
//! The capability layer calls the functions here when frame, page table,
//! VSpace or ASID pool caps are deleted.

use crate::cap::{FrameSize, Mapping};

/// Removes the mapping recorded in a frame cap being deleted (seL4's
/// `unmapPage`; done for every frame cap, final or not).
///
/// Not yet: the VM work must find the VSpace for `mapping.asid`, check the
/// entry at `mapping.vaddr` still maps `frame` with this size, clear it and
/// invalidate the TLB for that ASID and address.
pub fn unmap_frame(frame: u64, size: FrameSize, mapping: Mapping) {
    let _ = (frame, size, mapping);
}

/// Unlinks a page table from its parent table when its last cap goes
/// (seL4's `unmapPageTable`).
///
/// Not yet: find the VSpace, walk to the entry that points at `table`,
/// clear it and invalidate the TLB by ASID.
pub fn unmap_page_table(table: u64, mapping: Mapping) {
    let _ = (table, mapping);
}

/// Releases the ASID of a VSpace whose last cap goes (seL4's `deleteASID`).
///
/// Not yet: clear the pool entry if it still names `vspace`, invalidate the
/// TLB for the ASID (and its VMID in hyp mode), switch away if current.
pub fn delete_asid(asid: u16, vspace: u64) {
    let _ = (asid, vspace);
}

/// Releases an ASID pool whose last cap goes (seL4's `deleteASIDPool`).
///
/// Not yet: invalidate the TLB for every assigned ASID of the pool, clear
/// the pool's slot in the global ASID table if it names `pool`.
pub fn delete_asid_pool(asid_base: u16, pool: u64) {
    let _ = (asid_base, pool);
}

// ---------------------------------------------------------------------------
// ASIDs. An ASID names a VSpace: its high bits pick one of 128 pools in the
// kernel's ASID table, its low 9 bits an entry in that pool (a 4 KiB object
// of 512 words, each the VSpace's physical address or 0).

use septa_abi::{ASID_POOL_INDEX_BITS, NUM_ASID_POOLS_BITS};

/// Number of ASID pools (`2^seL4_NumASIDPoolsBits`).
pub const ASID_POOLS: usize = 1 << NUM_ASID_POOLS_BITS;
/// ASIDs per pool.
pub const ASIDS_PER_POOL: u64 = 1 << ASID_POOL_INDEX_BITS;
/// The initial thread's ASID (seL4's `IT_ASID`).
pub const ROOT_ASID: u16 = 1;

crate::kernel_global!(
    /// The physical address of each ASID pool, or 0 (seL4's `armKSASIDTable`).
    pub static ASID_TABLE: [u64; ASID_POOLS] = [0; ASID_POOLS];
);

/// Physical address of the pool entry for `asid` in the pool at `pool`.
pub fn asid_pool_entry(pool: u64, asid: u16) -> u64 {
    pool + 8 * (asid as u64 & (ASIDS_PER_POOL - 1))
}

/// Records that `asid` names the VSpace at `vspace`.
pub fn asid_pool_assign(pool: u64, asid: u16, vspace: u64) {
    crate::memory::write::<u64>(asid_pool_entry(pool, asid), vspace);
}

/// The VSpace that `asid` names, if any.
pub fn find_vspace_for_asid(asid: u16) -> Option<u64> {
    let pool = ASID_TABLE.with(|t| {
        t.borrow()
            .get((asid as usize) >> ASID_POOL_INDEX_BITS)
            .copied()
    })?;
    if pool == 0 {
        return None;
    }
    let vspace = crate::memory::read::<u64>(asid_pool_entry(pool, asid));
    (vspace != 0).then_some(vspace)
}

use crate::cap::Cap;
use crate::cte::SlotRef;
use crate::error::Exception;
use crate::invocation::{Invocation, ReplyWords};

/// Decodes an invocation of a Frame, PageTable, VSpace, ASIDControl or
/// ASIDPool cap with seL4's errors (the arm and aarch64 labels).
///
/// Not yet: the VM work implements it; the system-call layer calls it.
pub fn decode_invocation(
    inv: &Invocation,
    cap: &Cap,
    slot: SlotRef,
    reply: &mut ReplyWords,
) -> Result<(), Exception> {
    let _ = (inv, cap, slot, reply);
    Err(Exception::Syscall(
        crate::error::SyscallError::IllegalOperation,
    ))
}

/// Makes the address space named by a thread's VSpace cap current (seL4's
/// `setVMRoot`): the thread's VSpace if the cap is a mapped VSpace cap whose
/// ASID still names it, otherwise an empty address space (so the thread
/// faults). The scheduler calls this when it switches threads.
///
/// Not yet: the VM work implements it (VMID assignment, VTTBR through the
/// machine layer).
pub fn set_vm_root(vspace_cap: &Cap) {
    let _ = vspace_cap;
}
