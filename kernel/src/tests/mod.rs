//! Host tests of the capability layer, over an arena that stands in for
//! physical memory.
//!
//! [`Fixture`] plays the boot code: a root CNode of 2^[`ROOT_RADIX`] slots
//! whose cap (guard making up the rest of the word, as for seL4's initial
//! thread) sits in a kernel slot outside it, a RAM untyped and a device
//! untyped in root slots [`UT`] and [`DEV_UT`], and IRQ control in [`IRQ`].
//! Invocations go through the real decoders with 64-bit addresses, as a
//! user thread's would.

mod derivation;
mod irq;
mod lookup;
mod model;
mod thread;
mod untyped;
mod vspace;
mod zombie;

use crate::cap::Cap;
use crate::cnode::decode_cnode_invocation;
use crate::cte::{write_boot_slot, MdbNode, SlotRef, SLOT_BYTES};
use crate::error::{Exception, SyscallError};
use crate::invocation::Invocation;
use crate::memory;
use crate::memory::arena::Arena;
use crate::untyped::{boot_untyped_cap, decode_untyped_invocation, NewObjects};
use septa_abi::{CapRights, Label, ObjectType};
use std::collections::BTreeSet;

pub const ROOT_RADIX: u8 = 8;
pub const UT: u64 = 1;
pub const DEV_UT: u64 = 2;
pub const IRQ: u64 = 3;
/// Depth of a full address in the root CSpace.
pub const D: u64 = 64;

/// Where the arena's kernel area (boot slots) and root CNode sit.
const BOOT_SLOTS_OFFSET: u64 = 0x100;
const ROOT_CNODE_OFFSET: u64 = 0x1_0000;

pub struct Fixture {
    pub arena: Arena,
    /// The kernel slot holding the root CNode cap (like a TCB's CTable slot).
    pub root_slot: SlotRef,
    pub ut_base: u64,
    pub ut_bits: u8,
    pub dev_base: u64,
    pub dev_bits: u8,
}

impl Fixture {
    /// An arena of 2^`bits` bytes filled with 0xAA: the upper half is the RAM
    /// untyped, the quarter below it the device untyped.
    pub fn new(bits: u8) -> Fixture {
        let arena = Arena::new(1 << bits, 0xaa);
        let base = arena.phys_base;
        let root_paddr = base + ROOT_CNODE_OFFSET;
        memory::zero(root_paddr, SLOT_BYTES << ROOT_RADIX);
        memory::zero(base, ROOT_CNODE_OFFSET);
        let root_slot = SlotRef::new(base + BOOT_SLOTS_OFFSET);
        let root_cap = Cap::CNode {
            paddr: root_paddr,
            radix: ROOT_RADIX,
            guard_size: 64 - ROOT_RADIX,
            guard: 0,
        };
        write_boot_slot(root_slot, &root_cap);
        let fx = Fixture {
            root_slot,
            ut_base: base + (1 << (bits - 1)),
            ut_bits: bits - 1,
            dev_base: base + (1 << (bits - 2)),
            dev_bits: bits - 2,
            arena,
        };
        write_boot_slot(
            fx.slot(UT),
            &boot_untyped_cap(fx.ut_base, fx.ut_bits, false),
        );
        write_boot_slot(
            fx.slot(DEV_UT),
            &boot_untyped_cap(fx.dev_base, fx.dev_bits, true),
        );
        write_boot_slot(fx.slot(IRQ), &Cap::IrqControl);
        fx
    }

    pub fn root_cap(&self) -> Cap {
        self.root_slot.cap()
    }

    pub fn root_cnode(&self) -> u64 {
        self.arena.phys_base + ROOT_CNODE_OFFSET
    }

    pub fn slot(&self, i: u64) -> SlotRef {
        SlotRef::nth(self.root_cnode(), i)
    }

    pub fn cap(&self, i: u64) -> Cap {
        self.slot(i).cap()
    }

    /// Invokes the root CNode with `label`, `args`, and the root CNode cap as
    /// each of `n_extra` extra caps.
    pub fn cnode(&self, label: Label, args: &[u64], n_extra: usize) -> Result<(), Exception> {
        let extra = [self.root_slot; 3];
        decode_cnode_invocation(
            &Invocation::new(label.number(), args, &extra[..n_extra]),
            &self.root_cap(),
        )
    }

    pub fn copy(&self, dest: u64, src: u64, rights: CapRights) -> Result<(), Exception> {
        self.cnode(Label::CNodeCopy, &[dest, D, src, D, rights.0], 1)
    }

    pub fn mint(&self, dest: u64, src: u64, rights: CapRights, data: u64) -> Result<(), Exception> {
        self.cnode(Label::CNodeMint, &[dest, D, src, D, rights.0, data], 1)
    }

    pub fn mv(&self, dest: u64, src: u64) -> Result<(), Exception> {
        self.cnode(Label::CNodeMove, &[dest, D, src, D], 1)
    }

    pub fn mutate(&self, dest: u64, src: u64, data: u64) -> Result<(), Exception> {
        self.cnode(Label::CNodeMutate, &[dest, D, src, D, data], 1)
    }

    /// Rotate: src's cap to pivot, pivot's cap to dest.
    pub fn rotate(&self, dest: u64, pivot: u64, src: u64) -> Result<(), Exception> {
        self.cnode(Label::CNodeRotate, &[dest, D, 0, pivot, D, 0, src, D], 2)
    }

    pub fn delete(&self, i: u64) -> Result<(), Exception> {
        self.cnode(Label::CNodeDelete, &[i, D], 0)
    }

    pub fn revoke(&self, i: u64) -> Result<(), Exception> {
        self.cnode(Label::CNodeRevoke, &[i, D], 0)
    }

    /// Retypes from the untyped in root slot `ut` into root slots
    /// `offset..offset + count`.
    pub fn retype(
        &self,
        ut: u64,
        ty: ObjectType,
        size: u64,
        offset: u64,
        count: u64,
    ) -> Result<NewObjects, Exception> {
        self.retype_args(ut, &[ty as u64, size, 0, 0, offset, count])
    }

    pub fn retype_args(&self, ut: u64, args: &[u64]) -> Result<NewObjects, Exception> {
        let slot = self.slot(ut);
        let extra = [self.root_slot];
        decode_untyped_invocation(
            &Invocation::new(Label::UntypedRetype.number(), args, &extra),
            slot,
            &slot.cap(),
        )
    }

    /// The watermark of the untyped in root slot `i`.
    pub fn free_index(&self, i: u64) -> u64 {
        match self.cap(i) {
            Cap::Untyped { free_index, .. } => free_index,
            c => panic!("slot {i} holds {c:?}, not an untyped"),
        }
    }

    /// Root slots that hold a cap.
    pub fn occupied(&self) -> BTreeSet<u64> {
        (0..1 << ROOT_RADIX)
            .filter(|&i| !self.slot(i).is_empty())
            .collect()
    }
}

/// Runs an operation to completion, re-invoking it after each preemption
/// like a thread left in Restart; returns the result and how many times it
/// was preempted.
pub fn until_done<T>(
    mut op: impl FnMut() -> Result<T, Exception>,
) -> (Result<T, Exception>, usize) {
    let mut preemptions = 0;
    loop {
        match op() {
            Err(Exception::Preempted) => {
                preemptions += 1;
                assert!(preemptions < 1_000_000, "operation never completes");
            }
            r => return (r, preemptions),
        }
    }
}

pub fn err(e: SyscallError) -> Result<(), Exception> {
    Err(Exception::Syscall(e))
}

/// Checks the derivation list is well formed around every slot reachable
/// from the root CNode (and the kernel root slot): links are mutual, empty
/// slots are unlinked, and the list has no cycle. Returns every linked slot.
pub fn check_links(fx: &Fixture) -> BTreeSet<SlotRef> {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<SlotRef> = (0..1 << ROOT_RADIX).map(|i| fx.slot(i)).collect();
    todo.push(fx.root_slot);
    while let Some(s) = todo.pop() {
        if !seen.insert(s) {
            continue;
        }
        assert!(
            memory::in_window(s.paddr(), SLOT_BYTES),
            "link out of memory"
        );
        let m = s.mdb();
        if s.is_empty() {
            assert_eq!(m, MdbNode::EMPTY, "empty slot {s:?} still linked");
            continue;
        }
        if let Some(n) = m.next {
            assert_eq!(n.mdb().prev, Some(s), "next of {s:?} does not point back");
            assert!(!n.is_empty(), "{s:?} links to an empty slot");
            todo.push(n);
        }
        if let Some(p) = m.prev {
            assert_eq!(
                p.mdb().next,
                Some(s),
                "prev of {s:?} does not point forward"
            );
            assert!(!p.is_empty(), "{s:?} links to an empty slot");
            todo.push(p);
        }
    }
    // No cycles: walking forward from every list head visits each node once.
    let linked: BTreeSet<SlotRef> = seen.iter().copied().filter(|s| !s.is_empty()).collect();
    let mut visited = BTreeSet::new();
    for &head in linked.iter().filter(|s| s.mdb().prev.is_none()) {
        let mut cur = Some(head);
        while let Some(c) = cur {
            assert!(visited.insert(c), "derivation list has a cycle at {c:?}");
            cur = c.mdb().next;
        }
    }
    assert_eq!(
        visited, linked,
        "some linked slots are not reachable from a list head"
    );
    linked
}
