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
