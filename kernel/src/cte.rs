//! # Capability slots and the derivation tree
//!
//! A slot (seL4's `cte`) is 32 bytes: a 16-byte [`RawCap`] and a 16-byte
//! derivation-tree node ([`MdbNode`]). Slots live in CNodes and in the first
//! part of every TCB, both made from untyped memory; a slot is named by its
//! physical address ([`SlotRef`]).
//!
//! ## Why the derivation tree is a list
//!
//! seL4 must know, for every cap, which caps were derived from it, so that
//! Revoke can find them and so that deleting the last cap to an object can
//! be recognised. A tree with child pointers would need a variable number
//! of links per slot, which no-heap, fixed-size slots cannot hold. seL4's
//! answer, kept here, is to store the tree *flattened in depth-first order*
//! as a doubly-linked list (two links per slot, fixed size) plus two bits:
//!
//! - every cap is followed in the list by its descendants, then by its
//!   later siblings; a new copy is always inserted right after its source,
//!   and a newly retyped object right after its untyped;
//! - the parent/child relation between neighbours is not stored but
//!   recomputed by [`is_mdb_parent_of`] from the caps themselves: a cap is a
//!   parent of a later cap if it is *revocable* (an original: retyped,
//!   untyped, newly badged, or issued by IRQ control), covers the same
//!   object or memory ([`same_region_as`]), and, for a badged endpoint or
//!   notification, has the same badge and the later cap does not start a
//!   new badged subtree (`first_badged`);
//! - so the descendants of a cap are exactly the run of caps that follow
//!   it while `is_mdb_parent_of` holds, which makes Revoke a walk forward,
//!   and all caps to one object are neighbours, which makes "is this the
//!   last cap?" ([`is_final_capability`]) a look at the two neighbours.
//!
//! Links hold physical slot addresses; 0 means none (physical page 0 is
//! never kernel memory on this platform). Slots are 32-byte aligned, so the
//! two flag bits share the low bits of the `next` link.
//!
//! An all-zero slot is an empty slot with no links: fresh CNode memory needs
//! no initialisation.

use crate::cap::{is_cap_revocable, same_object_as, same_region_as, Cap, CapType, RawCap};
use crate::error::SyscallError;
use crate::memory;
use septa_abi::SLOT_SIZE_BITS;

/// Bytes in one slot.
pub const SLOT_BYTES: u64 = 1 << SLOT_SIZE_BITS;

/// The stored form of a whole slot: cap, then derivation node. Code goes
/// through [`SlotRef`]'s accessors; this type fixes the layout and size.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Cte {
    pub cap: RawCap,
    pub mdb: [u64; 2],
}

// SAFETY: `repr(C)` of a `Pod` cap and two words: no padding, any bits valid.
unsafe impl memory::Pod for Cte {}

const _: () = assert!(core::mem::size_of::<Cte>() as u64 == SLOT_BYTES);

/// The physical address of a slot. Copyable and comparable; every access
/// reads or writes through the memory window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SlotRef(u64);

/// A derivation-tree node, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MdbNode {
    pub prev: Option<SlotRef>,
    pub next: Option<SlotRef>,
    /// The cap is an original that can have children.
    pub revocable: bool,
    /// The cap starts a new badged subtree: no earlier cap with the same
    /// badge is its parent.
    pub first_badged: bool,
}

const REVOCABLE_BIT: u64 = 1 << 0;
const FIRST_BADGED_BIT: u64 = 1 << 1;
const LINK_MASK: u64 = !(SLOT_BYTES - 1);

impl MdbNode {
    pub const EMPTY: MdbNode = MdbNode {
        prev: None,
        next: None,
        revocable: false,
        first_badged: false,
    };

    /// Word 0: next link with the two flags in its low bits; word 1: prev.
    pub fn encode(&self) -> [u64; 2] {
        let link = |s: Option<SlotRef>| s.map_or(0, |s| s.0);
        [
            link(self.next)
                | if self.revocable { REVOCABLE_BIT } else { 0 }
                | if self.first_badged {
                    FIRST_BADGED_BIT
                } else {
                    0
                },
            link(self.prev),
        ]
    }

    pub fn decode(w: [u64; 2]) -> MdbNode {
        let link = |a: u64| (a != 0).then_some(SlotRef(a));
        MdbNode {
            next: link(w[0] & LINK_MASK),
            prev: link(w[1] & LINK_MASK),
            revocable: w[0] & REVOCABLE_BIT != 0,
            first_badged: w[0] & FIRST_BADGED_BIT != 0,
        }
    }
}

impl SlotRef {
    /// A slot at a physical address (32-byte aligned, non-zero).
    #[inline(always)]
    pub fn new(paddr: u64) -> SlotRef {
        debug_assert!(
            paddr != 0 && paddr.is_multiple_of(SLOT_BYTES),
            "bad slot address {paddr:#x}"
        );
        SlotRef(paddr)
    }

    /// Slot `index` of a CNode (or TCB) whose first slot is at `base`.
    #[inline(always)]
    pub fn nth(base: u64, index: u64) -> SlotRef {
        SlotRef::new(base + index * SLOT_BYTES)
    }

    #[inline(always)]
    pub fn paddr(self) -> u64 {
        self.0
    }

    /// The cap as stored. The slot is checked as an object (range and
    /// alignment in one test) and the cap read without further checks,
    /// from the slot's kernel address in one register
    /// (`memory::read_object_field`: both words at small offsets from it,
    /// not each from the window's offset built again).
    #[inline(always)]
    pub fn raw_cap(self) -> RawCap {
        memory::check_object(self.0, SLOT_BYTES, SLOT_BYTES);
        // SAFETY: the cap is the first 16 bytes of the slot just checked,
        // aligned as the slot is.
        unsafe { memory::read_object_field(self.0, 0) }
    }

    /// The cap, decoded. Out of line: only slow paths decode (the fast
    /// paths read [`SlotRef::raw_cap`]), from ~20 places.
    #[inline(never)]
    pub fn cap(self) -> Cap {
        self.raw_cap().decode()
    }

    /// [`SlotRef::cap`] when the caller expects type `ty`: that type
    /// decodes at the call site, any other through [`SlotRef::cap`].
    #[inline(always)]
    pub fn cap_expecting(self, ty: CapType) -> Cap {
        self.raw_cap().decode_as(ty).unwrap_or_else(|| self.cap())
    }

    pub fn is_empty(self) -> bool {
        self.raw_cap().type_number() == 0
    }

    /// Overwrites the cap, leaving the derivation links alone. Every cap
    /// written into a slot comes through here or [`write_boot_slot_raw`],
    /// which both mark the change for the fast paths' look-up memo
    /// ([`crate::cspace::caps_changed`]).
    pub fn set_cap(self, cap: &Cap) {
        crate::cspace::caps_changed();
        memory::write(self.0, cap.encode())
    }

    pub fn mdb(self) -> MdbNode {
        MdbNode::decode(memory::read(self.0 + 16))
    }

    pub fn set_mdb(self, node: MdbNode) {
        memory::write(self.0 + 16, node.encode())
    }

    fn set_next(self, next: Option<SlotRef>) {
        let mut m = self.mdb();
        m.next = next;
        self.set_mdb(m);
    }

    fn set_prev(self, prev: Option<SlotRef>) {
        let mut m = self.mdb();
        m.prev = prev;
        self.set_mdb(m);
    }
}

/// Puts a cap the kernel creates at boot into an empty slot, as an original
/// with no place in any tree yet (seL4's `write_slot` in the boot code).
pub fn write_boot_slot(slot: SlotRef, cap: &Cap) {
    write_boot_slot_raw(slot, cap.encode());
}

/// [`write_boot_slot`] for a cap already in its stored form. Boot only,
/// and out of line (it was inlined in six boot functions).
#[inline(never)]
pub fn write_boot_slot_raw(slot: SlotRef, cap: RawCap) {
    let original = MdbNode {
        prev: None,
        next: None,
        revocable: true,
        first_badged: true,
    }
    .encode();
    crate::cspace::caps_changed();
    memory::write(slot.0, cap);
    memory::write(slot.0 + 16, original);
}

/// Fails with DeleteFirst unless the slot is empty.
pub fn ensure_empty_slot(slot: SlotRef) -> Result<(), SyscallError> {
    if slot.is_empty() {
        Ok(())
    } else {
        Err(SyscallError::DeleteFirst)
    }
}

/// Whether the cap in `b` is a child of the cap in `a` (see the module
/// header); meaningful when `b` follows `a` in the list.
pub fn is_mdb_parent_of(a: SlotRef, b: SlotRef) -> bool {
    let (ma, mb) = (a.mdb(), b.mdb());
    if !ma.revocable {
        return false;
    }
    let (ca, cb) = (a.cap(), b.cap());
    if !same_region_as(&ca, &cb) {
        return false;
    }
    match ca {
        // Badged originals only parent copies with their own badge that do
        // not themselves begin a new badged subtree; unbadged originals
        // parent everything to their object.
        Cap::Endpoint { badge, .. } | Cap::Notification { badge, .. } | Cap::Smc { badge } => {
            badge == 0 || (Some(badge) == cb.badge() && !mb.first_badged)
        }
        Cap::SgiSignal { .. } => !mb.first_badged,
        _ => true,
    }
}

/// Fails with RevokeFirst if the cap in `slot` has any children.
pub fn ensure_no_children(slot: SlotRef) -> Result<(), SyscallError> {
    match slot.mdb().next {
        Some(next) if is_mdb_parent_of(slot, next) => Err(SyscallError::RevokeFirst),
        _ => Ok(()),
    }
}

/// Whether the cap in `slot` is the last one to its object: all caps to one
/// object are neighbours in the list, so only the neighbours are looked at.
pub fn is_final_capability(slot: SlotRef) -> bool {
    let m = slot.mdb();
    let cap = slot.cap();
    if let Some(prev) = m.prev {
        if same_object_as(&prev.cap(), &cap) {
            return false;
        }
    }
    match m.next {
        None => true,
        Some(next) => !same_object_as(&cap, &next.cap()),
    }
}

/// Whether deleting the cap in `slot` may take long (the last cap to a CNode
/// or TCB, or a zombie): callers that must not be preempted check this.
/// Out of line: Configure and SetSpace check both roots (54 bytes a copy
/// inlined).
#[inline(never)]
pub fn slot_cap_long_running_delete(slot: SlotRef) -> bool {
    let cap = slot.cap();
    match cap {
        Cap::Null => false,
        Cap::Tcb { .. } | Cap::Zombie { .. } | Cap::CNode { .. } => is_final_capability(slot),
        _ => false,
    }
}

/// When a full-range untyped is copied, the source must not hand out the
/// same memory again: its watermark goes to the end.
fn set_untyped_cap_as_full(src_cap: &Cap, new_cap: &Cap, src: SlotRef) {
    if let (
        Cap::Untyped {
            paddr: p,
            size_bits: s,
            is_device,
            ..
        },
        Cap::Untyped {
            paddr: q,
            size_bits: t,
            ..
        },
    ) = (*src_cap, *new_cap)
    {
        if p == q && s == t {
            src.set_cap(&Cap::Untyped {
                paddr: p,
                size_bits: s,
                free_index: 1 << s,
                is_device,
            });
        }
    }
}

/// Inserts `new_cap`, derived from the cap in `src`, into the empty slot
/// `dest`, right after `src` in the derivation list (seL4's `cteInsert`).
pub fn cte_insert(new_cap: &Cap, src: SlotRef, dest: SlotRef) {
    let src_mdb = src.mdb();
    let src_cap = src.cap();
    let revocable = is_cap_revocable(new_cap, &src_cap);
    debug_assert!(dest.is_empty(), "cte_insert into an occupied slot");
    debug_assert!(
        dest.mdb() == MdbNode::EMPTY,
        "cte_insert: destination still linked"
    );

    set_untyped_cap_as_full(&src_cap, new_cap, src);

    let new_mdb = MdbNode {
        prev: Some(src),
        next: src_mdb.next,
        revocable,
        first_badged: revocable,
    };
    dest.set_cap(new_cap);
    dest.set_mdb(new_mdb);
    src.set_next(Some(dest));
    if let Some(next) = new_mdb.next {
        next.set_prev(Some(dest));
    }
}

/// Moves the cap in `src` (replaced by `new_cap`, which may differ in its
/// data) to the empty slot `dest`, keeping its place in the tree (seL4's
/// `cteMove`).
pub fn cte_move(new_cap: &Cap, src: SlotRef, dest: SlotRef) {
    debug_assert!(dest.is_empty(), "cte_move into an occupied slot");
    debug_assert!(
        dest.mdb() == MdbNode::EMPTY,
        "cte_move: destination still linked"
    );
    let m = src.mdb();
    dest.set_cap(new_cap);
    src.set_cap(&Cap::Null);
    dest.set_mdb(m);
    src.set_mdb(MdbNode::EMPTY);
    if let Some(prev) = m.prev {
        prev.set_next(Some(dest));
    }
    if let Some(next) = m.next {
        next.set_prev(Some(dest));
    }
}

/// Exchanges two caps and their places in the tree, storing `cap1` (from
/// `slot1`) into `slot2` and `cap2` into `slot1` (seL4's `cteSwap`).
pub fn cte_swap(cap1: &Cap, slot1: SlotRef, cap2: &Cap, slot2: SlotRef) {
    slot1.set_cap(cap2);
    slot2.set_cap(cap1);

    let m1 = slot1.mdb();
    if let Some(prev) = m1.prev {
        prev.set_next(Some(slot2));
    }
    if let Some(next) = m1.next {
        next.set_prev(Some(slot2));
    }

    let m2 = slot2.mdb();
    slot1.set_mdb(m2);
    slot2.set_mdb(m1);

    if let Some(prev) = m2.prev {
        prev.set_next(Some(slot1));
    }
    if let Some(next) = m2.next {
        next.set_prev(Some(slot1));
    }
}

/// Swaps the contents of two slots (no-op for one slot); used while tearing
/// down zombies.
pub fn cap_swap_for_delete(slot1: SlotRef, slot2: SlotRef) {
    if slot1 == slot2 {
        return;
    }
    let (c1, c2) = (slot1.cap(), slot2.cap());
    cte_swap(&c1, slot1, &c2, slot2);
}

/// Places the cap to a newly created object into `slot` as a revocable
/// original, right after its untyped `parent` (seL4's `insertNewCap`).
pub fn insert_new_cap(parent: SlotRef, slot: SlotRef, cap: &Cap) {
    let next = parent.mdb().next;
    slot.set_cap(cap);
    slot.set_mdb(MdbNode {
        prev: Some(parent),
        next,
        revocable: true,
        first_badged: true,
    });
    if let Some(next) = next {
        next.set_prev(Some(slot));
    }
    parent.set_next(Some(slot));
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn mdb_nodes_round_trip(prev in proptest::option::of(1u64..(1 << 43)),
                                next in proptest::option::of(1u64..(1 << 43)),
                                revocable in any::<bool>(), first_badged in any::<bool>()) {
            let node = MdbNode {
                prev: prev.map(|p| SlotRef(p << 5)),
                next: next.map(|n| SlotRef(n << 5)),
                revocable,
                first_badged,
            };
            prop_assert_eq!(MdbNode::decode(node.encode()), node);
        }
    }

    #[test]
    fn an_all_zero_slot_is_empty_and_unlinked() {
        assert_eq!(MdbNode::decode([0, 0]), MdbNode::EMPTY);
        assert_eq!(MdbNode::EMPTY.encode(), [0, 0]);
    }
}
