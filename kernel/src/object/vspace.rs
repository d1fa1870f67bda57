//! # Address spaces: VSpace roots, page tables, frames and ASID pools
//!
//! With hypervisor support every thread runs in a stage-2 address space
//! (see [`crate::pagetable`] for the table format). This module owns what
//! seL4 keeps around those tables:
//!
//! - **ASIDs.** A VSpace is usable only once an ASID pool has assigned it
//!   an ASID (16 bits: the high 7 pick one of 128 pools in the kernel's
//!   [`ASID_TABLE`], the low 9 an entry of that pool). Frame and page table
//!   caps record the ASID and address they are mapped at; every operation
//!   on a mapping first checks that the ASID still names the VSpace, so
//!   deleting a VSpace or a pool leaves caps that are merely stale, never
//!   dangerous.
//! - **VMIDs** ([`vmid`]). The TLB tags entries with an 8-bit VMID, far
//!   fewer than ASIDs, so VMIDs are handed to ASIDs when their VSpace is
//!   first made current and taken back (with a TLB flush) when they run
//!   out, as seL4's hyp code does. The pool entry of an ASID stores its
//!   VMID, if it has one.
//! - **The current address space** ([`set_vm_root`]), and the clean-up
//!   when mappings, page tables, VSpaces and pools go away
//!   ([`unmap_frame`], [`unmap_page_table`], [`delete_asid`],
//!   [`delete_asid_pool`]): every removed mapping is followed by a TLB
//!   flush through [`crate::machine`], so no stale translation survives.
//! - **The invocations** of Frame, PageTable, VSpace, ASIDControl and
//!   ASIDPool caps ([`decode_invocation`], in [`decode`]).
//!
//! Zero rule: all-zero page tables hold only invalid entries; an all-zero
//! ASID pool has no assigned ASIDs.
//!
//! ## Pool entries
//!
//! An entry is one word: 0 for a free ASID; otherwise the VSpace's
//! physical address (8 KiB aligned) with the ASID's VMID in bits 1..9 and
//! bit 0 set when that VMID is valid (seL4's `asid_map_vspace` with
//! `stored_hw_vmid` and `stored_vmid_valid`).

mod decode;
pub mod vmid;

pub use decode::decode_invocation;

use crate::cap::{Cap, FrameSize, Mapping, RawCap};
use crate::machine;
use crate::memory;
use crate::pagetable::{self, Pte};
use core::cell::Cell;
use septa_abi::{ASID_POOL_INDEX_BITS, NUM_ASID_POOLS_BITS, VSPACE_SIZE_BITS};

/// Number of ASID pools (`2^seL4_NumASIDPoolsBits`).
pub const ASID_POOLS: usize = 1 << NUM_ASID_POOLS_BITS;
/// ASIDs per pool.
pub const ASIDS_PER_POOL: u64 = 1 << ASID_POOL_INDEX_BITS;
/// The initial thread's ASID (seL4's `IT_ASID`).
pub const ROOT_ASID: u16 = 1;

crate::kernel_cells!(
    /// The physical address of each ASID pool, or 0 (seL4's `armKSASIDTable`).
    pub static ASID_TABLE: [Cell<u64>; ASID_POOLS] = [const { Cell::new(0) }; ASID_POOLS];
);

crate::kernel_cells!(
    /// The ASID whose VSpace is installed, or `None` for the empty one.
    /// Deleting that ASID or its pool switches to the empty address space,
    /// which is what seL4 gets by calling `setVMRoot` on the current thread.
    static CURRENT_ASID: Cell<Option<u16>> = Cell::new(None);
);

const ENTRY_VMID_VALID: u64 = 1;
const ENTRY_VMID_SHIFT: u32 = 1;
const ENTRY_VMID_MASK: u64 = 0xff << ENTRY_VMID_SHIFT;
const ENTRY_VSPACE_MASK: u64 = !((1 << VSPACE_SIZE_BITS) - 1);

/// A used pool entry, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AsidEntry {
    pub vspace: u64,
    pub vmid: Option<u16>,
}

impl AsidEntry {
    fn encode(self) -> u64 {
        debug_assert!(self.vspace & !ENTRY_VSPACE_MASK == 0);
        let vmid = match self.vmid {
            Some(v) => ((v as u64) << ENTRY_VMID_SHIFT) & ENTRY_VMID_MASK | ENTRY_VMID_VALID,
            None => 0,
        };
        self.vspace | vmid
    }

    #[inline(always)]
    fn decode(w: u64) -> Option<AsidEntry> {
        let vspace = w & ENTRY_VSPACE_MASK;
        (vspace != 0).then(|| AsidEntry {
            vspace,
            vmid: (w & ENTRY_VMID_VALID != 0)
                .then_some(((w & ENTRY_VMID_MASK) >> ENTRY_VMID_SHIFT) as u16),
        })
    }
}

/// Physical address of the pool entry for `asid` in the pool at `pool`.
#[inline(always)]
pub fn asid_pool_entry(pool: u64, asid: u16) -> u64 {
    pool + 8 * (asid as u64 & (ASIDS_PER_POOL - 1))
}

/// Records that `asid` names the VSpace at `vspace` (with no VMID yet).
pub fn asid_pool_assign(pool: u64, asid: u16, vspace: u64) {
    write_entry(pool, asid, Some(AsidEntry { vspace, vmid: None }));
}

fn write_entry(pool: u64, asid: u16, e: Option<AsidEntry>) {
    memory::write::<u64>(asid_pool_entry(pool, asid), e.map_or(0, AsidEntry::encode));
}

#[inline(always)]
fn read_entry(pool: u64, asid: u16) -> Option<AsidEntry> {
    AsidEntry::decode(memory::read::<u64>(asid_pool_entry(pool, asid)))
}

/// The pool `asid` belongs to, if one is installed.
#[inline(always)]
fn pool_of(asid: u16) -> Option<u64> {
    let pool = ASID_TABLE.with(|t| {
        t.get((asid as usize) >> ASID_POOL_INDEX_BITS)
            .map(Cell::get)
    })?;
    (pool != 0).then_some(pool)
}

/// The entry of `asid`, if its pool exists and the ASID is assigned
/// (seL4's `findMapForASID`).
#[inline(always)]
pub fn asid_entry(asid: u16) -> Option<AsidEntry> {
    read_entry(pool_of(asid)?, asid)
}

/// [`asid_entry`] out of line, for the paths that are not the context
/// switch's (flushes, VMID handling, ASID lookups of invocations).
#[inline(never)]
pub fn asid_entry_cold(asid: u16) -> Option<AsidEntry> {
    asid_entry(asid)
}

/// Updates the entry of an assigned `asid` (no-op if it is not assigned).
fn update_entry(asid: u16, f: impl FnOnce(&mut AsidEntry)) {
    if let Some(pool) = pool_of(asid) {
        if let Some(mut e) = read_entry(pool, asid) {
            f(&mut e);
            write_entry(pool, asid, Some(e));
        }
    }
}

/// The VSpace that `asid` names, if any (seL4's `findVSpaceForASID`).
pub fn find_vspace_for_asid(asid: u16) -> Option<u64> {
    asid_entry_cold(asid).map(|e| e.vspace)
}

/// Discards every TLB entry of `asid`'s address space. An ASID without a
/// VMID has none: its entries went when its VMID was taken away.
#[inline(never)]
fn flush_asid(asid: u16) {
    if let Some(v) = asid_entry_cold(asid).and_then(|e| e.vmid) {
        machine::tlb_flush_vmid(v);
    }
}

/// Discards the TLB entries for the page at `vaddr` in `asid`'s space.
fn flush_asid_page(asid: u16, vaddr: u64) {
    if let Some(v) = asid_entry_cold(asid).and_then(|e| e.vmid) {
        machine::tlb_flush_page(v, vaddr);
    }
}

/// Writes a translation table entry and makes it visible to the walker.
fn write_pte(entry: u64, pte: Pte) {
    pagetable::write(entry, pte);
    machine::sync_table_entry(entry);
}

/// Makes the address space named by a thread's VSpace cap current (seL4's
/// `setVMRoot`): the thread's VSpace if the cap is a mapped VSpace cap
/// whose ASID still names it, with the ASID's VMID (assigned now if it has
/// none); otherwise the empty address space, so the thread faults on its
/// first access. The scheduler calls this on every switch to a thread,
/// with the cap in the thread's VTable slot.
pub fn set_vm_root(vspace_cap: &Cap) {
    set_vm_root_raw(vspace_cap.encode())
}

/// [`set_vm_root`] for the cap as stored in a VTable slot (the scheduler's
/// form: no decoded cap, one look at the ASID's pool entry).
pub fn set_vm_root_raw(vtable: RawCap) {
    if let Some((vspace, asid)) = vtable.as_mapped_vspace() {
        if let Some(e) = asid_entry(asid) {
            if e.vspace == vspace {
                let v = match e.vmid {
                    Some(v) => v,
                    None => vmid::get(asid),
                };
                machine::set_vspace_root(vspace, v);
                CURRENT_ASID.with(|c| c.set(Some(asid)));
                return;
            }
        }
    }
    set_empty_root();
}

/// An address space the fast paths can switch to without the slow path's
/// work: the VSpace cap in a thread's VTable slot, its ASID, and the VMID
/// that ASID already has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadyRoot {
    asid: u16,
    vspace: u64,
    vmid: u16,
}

/// The [`ReadyRoot`] of a VTable cap, if [`set_vm_root`] would install it
/// without assigning a VMID: a mapped VSpace cap whose ASID still names it
/// and has a VMID. `None` sends the caller to the slow path.
#[inline(always)]
pub fn ready_root(vtable: RawCap) -> Option<ReadyRoot> {
    let (vspace, asid) = vtable.as_mapped_vspace()?;
    let e = asid_entry(asid)?;
    if e.vspace != vspace {
        return None;
    }
    Some(ReadyRoot {
        asid,
        vspace,
        vmid: e.vmid?,
    })
}

/// Installs a [`ReadyRoot`]: what [`set_vm_root`] does for it.
#[inline(always)]
pub fn set_ready_root(r: ReadyRoot) {
    machine::set_vspace_root(r.vspace, r.vmid);
    CURRENT_ASID.with(|c| c.set(Some(r.asid)));
}

fn set_empty_root() {
    machine::set_empty_vspace_root();
    CURRENT_ASID.with(|c| c.set(None));
}

/// Host tests: forgets every pool, VMID and the current address space, as
/// at boot (kernel globals outlive one test case on its thread).
#[cfg(test)]
pub fn reset_for_test() {
    ASID_TABLE.with(|t| t.iter().for_each(|p| p.set(0)));
    CURRENT_ASID.with(|c| c.set(None));
    vmid::reset_for_test();
}

/// The ASID whose VSpace is current, if any.
pub fn current_asid() -> Option<u16> {
    CURRENT_ASID.with(|c| c.get())
}

/// Removes the mapping recorded in a frame cap (seL4's `unmapPage`): done
/// when a frame cap is deleted (final or not, as each cap records its own
/// mapping) and by Frame Unmap. Does nothing when the record is stale: the
/// ASID no longer names a VSpace, or the entry at the address is not a
/// leaf of this frame's size and address.
pub fn unmap_frame(frame: u64, size: FrameSize, mapping: Mapping) {
    let Some(root) = find_vspace_for_asid(mapping.asid) else {
        return;
    };
    let (level, entry, bits) = pagetable::lookup_slot(root, mapping.vaddr);
    if bits != size.size_bits() {
        return;
    }
    let pte = pagetable::read(entry);
    if !pte.is_page(level) || pte.addr() != frame {
        return;
    }
    write_pte(entry, Pte::INVALID);
    flush_asid_page(mapping.asid, mapping.vaddr);
}

/// Unlinks a page table from its parent table (seL4's `unmapPageTable`):
/// when its last cap goes, and by PageTable Unmap. The walk from the root
/// must reach the table itself through table entries, else the record is
/// stale and nothing happens. Everything mapped through the table goes
/// with it, so the whole address space's TLB entries are flushed.
pub fn unmap_page_table(table: u64, mapping: Mapping) {
    let Some(root) = find_vspace_for_asid(mapping.asid) else {
        return;
    };
    let mut pt = root;
    let mut parent_entry = None;
    for level in 1..3 {
        if pt == table {
            break;
        }
        let e = pagetable::entry_at(pt, level, mapping.vaddr);
        let pte = pagetable::read(e);
        if !pte.is_table(level) {
            return;
        }
        parent_entry = Some(e);
        pt = pte.addr();
    }
    let (true, Some(e)) = (pt == table, parent_entry) else {
        return;
    };
    write_pte(e, Pte::INVALID);
    flush_asid(mapping.asid);
}

/// Releases the ASID of a VSpace whose last cap goes (seL4's `deleteASID`):
/// if the pool entry still names `vspace`, flush the address space's TLB
/// entries, take back its VMID, free the entry, and leave the address
/// space if it is the current one.
pub fn delete_asid(asid: u16, vspace: u64) {
    let Some(pool) = pool_of(asid) else {
        return;
    };
    if read_entry(pool, asid).map(|e| e.vspace) != Some(vspace) {
        return;
    }
    flush_asid(asid);
    vmid::release(asid);
    write_entry(pool, asid, None);
    if current_asid() == Some(asid) {
        set_empty_root();
    }
}

/// Releases an ASID pool whose last cap goes (seL4's `deleteASIDPool`): if
/// the ASID table still holds `pool` at `asid_base`, flush and take back
/// the VMID of every ASID assigned in it, remove the pool from the table,
/// and leave the current address space if it was one of them.
pub fn delete_asid_pool(asid_base: u16, pool: u64) {
    debug_assert!(
        (asid_base as u64).is_multiple_of(ASIDS_PER_POOL),
        "unaligned ASID base"
    );
    let index = asid_base as usize >> ASID_POOL_INDEX_BITS;
    if pool_of(asid_base) != Some(pool) {
        return;
    }
    for offset in 0..ASIDS_PER_POOL as u16 {
        let asid = asid_base | offset;
        if read_entry(pool, asid).is_some() {
            flush_asid(asid);
            vmid::release(asid);
        }
    }
    ASID_TABLE.with(|t| t[index].set(0));
    if current_asid().is_some_and(|a| a as usize >> ASID_POOL_INDEX_BITS == index) {
        set_empty_root();
    }
}
