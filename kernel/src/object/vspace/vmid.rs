//! # VMIDs: the hardware's tags for address spaces
//!
//! The TLB tags each stage-2 translation with the VMID that was in
//! VTTBR_EL2 when it was cached, so switching address spaces needs no
//! flush as long as each live address space has a VMID of its own. ASIDs
//! are 16 bits, VMIDs 8 (see `machine::vmid_count`), so VMIDs are a cache:
//!
//! - an ASID gets a VMID when its VSpace is first made current
//!   ([`get`]), and keeps it in its pool entry;
//! - when every VMID is taken, the one at the round-robin cursor is taken
//!   back from its ASID: the ASID's entry forgets it, the TLB entries
//!   tagged with it are flushed, and the cursor moves on (seL4's
//!   `findFreeHWASID`; the cursor only moves when a VMID is taken back);
//! - deleting an ASID or its pool gives its VMID back ([`release`]).
//!
//! VMID 0 is never handed out: it belongs to the empty address space that
//! threads without a valid VSpace run in, so no TLB entry of a real address
//! space can ever be used under the empty root. (seL4 installs its empty
//! root with VMID 0 and may also give VMID 0 to an ASID; keeping them apart
//! costs one VMID and is invisible to user level.)
//!
//! The table of owners is a kernel global; on the host each test thread
//! has its own, with the VMID count the machine double reports.

use super::{asid_entry_cold, update_entry};
use crate::machine;

/// Most VMIDs the table tracks: 8-bit VMIDs (seL4's `hw_asid_t`).
pub const MAX_VMIDS: usize = 256;
/// The VMID of the empty address space, never given to an ASID.
pub const EMPTY_VMID: u16 = 0;
/// The first VMID handed to ASIDs.
const FIRST_VMID: u16 = EMPTY_VMID + 1;

struct Vmids {
    /// The ASID each VMID belongs to, 0 for none (ASID 0 is never
    /// assigned, as in seL4).
    owner: [u16; MAX_VMIDS],
    /// Where the search for a VMID starts, and the next one taken back.
    next: u16,
}

crate::kernel_global!(
    static VMIDS: Vmids = Vmids {
        owner: [0; MAX_VMIDS],
        next: FIRST_VMID,
    };
);

/// VMIDs in use on this machine: what the hardware offers, at most
/// [`MAX_VMIDS`], and at least one besides the empty address space's.
fn limit() -> u16 {
    machine::vmid_count().clamp(FIRST_VMID as u32 + 1, MAX_VMIDS as u32) as u16
}

/// The VMID after `v` in `FIRST_VMID..limit`, wrapping around.
fn after(v: u16, limit: u16) -> u16 {
    if v + 1 >= limit {
        FIRST_VMID
    } else {
        v + 1
    }
}

/// The VMID of `asid`, giving it one if it has none (seL4's `getHWASID`).
/// `asid` must be assigned (its pool entry names a VSpace).
///
/// Out of line (see the crate header): rarely taken, and inlined it made
/// every address-space switch dearer.
#[inline(never)]
pub fn get(asid: u16) -> u16 {
    if let Some(v) = asid_entry_cold(asid).and_then(|e| e.vmid) {
        return v;
    }
    let v = find_free();
    update_entry(asid, |e| e.vmid = Some(v));
    VMIDS.with(|t| t.borrow_mut().owner[v as usize] = asid);
    v
}

/// A VMID nobody owns, searching from the cursor; if there is none, the
/// one at the cursor is taken back from its owner and flushed.
fn find_free() -> u16 {
    let limit = limit();
    let (v, victim) = VMIDS.with(|t| {
        let mut t = t.borrow_mut();
        if !(FIRST_VMID..limit).contains(&t.next) {
            t.next = FIRST_VMID;
        }
        let mut v = t.next;
        for _ in FIRST_VMID..limit {
            if t.owner[v as usize] == 0 {
                return (v, None);
            }
            v = after(v, limit);
        }
        let v = t.next;
        let victim = t.owner[v as usize];
        t.owner[v as usize] = 0;
        t.next = after(v, limit);
        (v, Some(victim))
    });
    if let Some(old) = victim {
        update_entry(old, |e| e.vmid = None);
        machine::tlb_flush_vmid(v);
    }
    v
}

/// Takes the VMID of `asid` back, if it has one (seL4's
/// `invalidateASIDEntry`). The caller has flushed its TLB entries.
pub fn release(asid: u16) {
    let Some(v) = asid_entry_cold(asid).and_then(|e| e.vmid) else {
        return;
    };
    VMIDS.with(|t| {
        let mut t = t.borrow_mut();
        if t.owner[v as usize] == asid {
            t.owner[v as usize] = 0;
        }
    });
    update_entry(asid, |e| e.vmid = None);
}

#[cfg(test)]
pub(super) fn reset_for_test() {
    VMIDS.with(|t| {
        let mut t = t.borrow_mut();
        t.owner = [0; MAX_VMIDS];
        t.next = FIRST_VMID;
    });
}

/// The ASID that owns VMID `v`, if any (tests).
#[cfg(test)]
pub fn owner(v: u16) -> Option<u16> {
    VMIDS.with(|t| {
        t.borrow()
            .owner
            .get(v as usize)
            .copied()
            .filter(|&a| a != 0)
    })
}
