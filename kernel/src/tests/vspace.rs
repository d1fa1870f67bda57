//! Address spaces: ASID pools, page tables, frames of every size, the
//! cache invocations, unmapping and deletion with their TLB flushes, and
//! VMID assignment and recycling.
//!
//! [`Vs`] extends the capability fixture with an ASIDControl cap, an ASID
//! pool, a VSpace with an ASID, two page tables and frames, all made by the
//! real invocations. The machine double records every TLB flush, cache
//! operation and address-space switch, which the tests compare exactly.

use super::*;
use crate::cap::{FrameSize, Mapping, VmRights};
use crate::error::LookupFault;
use crate::invocation::ReplyWords;
use crate::machine::{self, Op};
use crate::object::vspace::{
    self, asid_entry, asid_pool_assign, current_asid, decode_invocation, find_vspace_for_asid,
    set_vm_root, vmid, ASID_POOLS, ASID_TABLE,
};
use crate::pagetable::{self, Attrs, Pte};
use septa_abi::{vm_attributes, USER_TOP};

const ASID_CONTROL: u64 = 4;
/// A device untyped of 1 GiB beyond the arena, for huge frames (the
/// kernel never touches a frame's memory when mapping it).
const HUGE_UT: u64 = 5;
const HUGE_UT_PADDR: u64 = 1 << 39;
const POOL_UT: u64 = 10;
const POOL: u64 = 11;
const VSPACE: u64 = 12;
const PT_A: u64 = 13;
const PT_B: u64 = 14;
const FRAME: u64 = 20;
const FRAME2: u64 = 21;
const LARGE: u64 = 22;
const HUGE: u64 = 23;
const SPARE: u64 = 30;
/// A user address whose level-1 entry covers [V, V + 1 GiB).
const V: u64 = 0x40_0000_0000;

const RW: u64 = CapRights::ALL.0;

struct Vs {
    fx: Fixture,
}

impl Vs {
    /// The capability fixture with ASIDControl in slot 4, a 1 GiB device
    /// untyped in slot 5, an ASID pool (slot 11, made from the 4 KiB
    /// untyped in slot 10), and a VSpace (slot 12) assigned ASID 1. Page
    /// tables (13, 14) and frames (20: small, 21: small, 22: large) exist
    /// but are not mapped. The machine log is empty.
    fn new() -> Vs {
        machine::reset();
        vspace::reset_for_test();
        let fx = Fixture::new(24);
        write_boot_slot(fx.slot(ASID_CONTROL), &Cap::AsidControl);
        write_boot_slot(fx.slot(HUGE_UT), &boot_untyped_cap(HUGE_UT_PADDR, 30, true));
        let vs = Vs { fx };
        vs.fx
            .retype(UT, ObjectType::Untyped, 12, POOL_UT, 1)
            .unwrap();
        vs.make_pool(POOL_UT, POOL).unwrap();
        vs.fx.retype(UT, ObjectType::VSpace, 0, VSPACE, 1).unwrap();
        vs.call(POOL, Label::ArmAsidPoolAssign, &[], &[VSPACE])
            .unwrap();
        vs.fx.retype(UT, ObjectType::PageTable, 0, PT_A, 2).unwrap();
        vs.fx
            .retype(UT, ObjectType::SmallPage, 0, FRAME, 2)
            .unwrap();
        vs.fx
            .retype(UT, ObjectType::LargePage, 0, LARGE, 1)
            .unwrap();
        machine::take_log();
        vs
    }

    fn slot(&self, i: u64) -> SlotRef {
        self.fx.slot(i)
    }

    fn cap(&self, i: u64) -> Cap {
        self.fx.cap(i)
    }

    fn paddr(&self, i: u64) -> u64 {
        self.cap(i).object_paddr().expect("a cap to memory")
    }

    fn vspace(&self) -> u64 {
        self.paddr(VSPACE)
    }

    /// Invokes the cap in root slot `target` with extra caps from root
    /// slots `extra`; returns the reply words.
    fn invoke(
        &self,
        target: u64,
        label: Label,
        args: &[u64],
        extra: &[u64],
    ) -> Result<Vec<u64>, Exception> {
        let slots: Vec<SlotRef> = extra.iter().map(|&i| self.slot(i)).collect();
        self.invoke_slots(target, label, args, &slots)
    }

    fn invoke_slots(
        &self,
        target: u64,
        label: Label,
        args: &[u64],
        extra: &[SlotRef],
    ) -> Result<Vec<u64>, Exception> {
        let slot = self.slot(target);
        let mut reply = ReplyWords::default();
        decode_invocation(
            &Invocation::new(label.number(), args, extra),
            &slot.cap(),
            slot,
            &mut reply,
        )?;
        Ok(reply.words().to_vec())
    }

    fn call(
        &self,
        target: u64,
        label: Label,
        args: &[u64],
        extra: &[u64],
    ) -> Result<(), Exception> {
        self.invoke(target, label, args, extra).map(|_| ())
    }

    /// ASIDControl MakePool from the untyped in `ut` into root slot `dest`.
    fn make_pool(&self, ut: u64, dest: u64) -> Result<(), Exception> {
        let extra = [self.slot(ut), self.fx.root_slot];
        self.invoke_slots(
            ASID_CONTROL,
            Label::ArmAsidControlMakePool,
            &[dest, D],
            &extra,
        )
        .map(|_| ())
    }

    fn map_pt(&self, pt: u64, vaddr: u64) -> Result<(), Exception> {
        self.call(pt, Label::ArmPageTableMap, &[vaddr, 0], &[VSPACE])
    }

    fn map(&self, frame: u64, vaddr: u64, rights: u64, attr: u64) -> Result<(), Exception> {
        self.call(frame, Label::ArmPageMap, &[vaddr, rights, attr], &[VSPACE])
    }

    /// Maps both page tables so that 4 KiB pages can go at `V`.
    fn map_tables(&self) {
        self.map_pt(PT_A, V).unwrap();
        self.map_pt(PT_B, V).unwrap();
    }

    /// The leaf entry for `vaddr` and its level.
    fn leaf(&self, vaddr: u64) -> (u32, Pte) {
        let (level, e, _) = pagetable::lookup_slot(self.vspace(), vaddr);
        (level, pagetable::read(e))
    }

    /// Makes the VSpace current, which gives its ASID a VMID; returns it.
    fn activate(&self) -> u16 {
        set_vm_root(&self.cap(VSPACE));
        match machine::take_log().as_slice() {
            [Op::VSpaceRoot(root, v)] => {
                assert_eq!(*root, self.vspace());
                *v
            }
            log => panic!("set_vm_root did {log:?}"),
        }
    }
}

fn syscall_err<T: std::fmt::Debug>(r: Result<T, Exception>) -> SyscallError {
    match r {
        Err(Exception::Syscall(e)) => e,
        other => panic!("expected an error, got {other:?}"),
    }
}

const INVALID_ROOT: SyscallError = SyscallError::FailedLookup {
    source: false,
    fault: LookupFault::InvalidRoot,
};

const fn missing(bits_left: u64) -> SyscallError {
    SyscallError::FailedLookup {
        source: false,
        fault: LookupFault::MissingCapability { bits_left },
    }
}

fn rw(cacheable: bool, execute: bool) -> Attrs {
    Attrs {
        read: true,
        write: true,
        execute,
        cacheable,
    }
}

// ---------------------------------------------------------------------------
// ASID control and pools

#[test]
fn make_pool_uses_the_whole_untyped_and_installs_the_pool() {
    let vs = Vs::new();
    let pool = vs.paddr(POOL_UT);
    assert_eq!(
        vs.cap(POOL),
        Cap::AsidPool {
            paddr: pool,
            asid_base: 0
        }
    );
    assert_eq!(vs.fx.free_index(POOL_UT), 4096, "the untyped is used up");
    assert!(crate::cte::is_mdb_parent_of(
        vs.slot(POOL_UT),
        vs.slot(POOL)
    ));
    assert_eq!(ASID_TABLE.with(|t| t[0].get()), pool);
    check_links(&vs.fx);

    // The next pool gets the next range of ASIDs.
    vs.fx.retype(UT, ObjectType::Untyped, 12, SPARE, 1).unwrap();
    vs.make_pool(SPARE, SPARE + 1).unwrap();
    assert!(matches!(
        vs.cap(SPARE + 1),
        Cap::AsidPool { asid_base: 512, .. }
    ));
}

#[test]
fn make_pool_reports_sel4s_errors_in_sel4s_order() {
    let vs = Vs::new();
    let ctl = |args: &[u64], extra: &[SlotRef]| {
        syscall_err(vs.invoke_slots(ASID_CONTROL, Label::ArmAsidControlMakePool, args, extra))
    };
    let root = vs.fx.root_slot;
    vs.fx.retype(UT, ObjectType::Untyped, 12, SPARE, 1).unwrap();
    let ut = vs.slot(SPARE);

    assert_eq!(
        syscall_err(vs.invoke(ASID_CONTROL, Label::ArmAsidPoolAssign, &[], &[])),
        SyscallError::IllegalOperation
    );
    assert_eq!(ctl(&[40, D], &[ut]), SyscallError::TruncatedMessage);
    assert_eq!(ctl(&[40], &[ut, root]), SyscallError::TruncatedMessage);
    // Wrong size, device memory, or not an untyped: cap 1.
    vs.fx
        .retype(UT, ObjectType::Untyped, 13, SPARE + 2, 1)
        .unwrap();
    assert_eq!(
        ctl(&[40, D], &[vs.slot(SPARE + 2), root]),
        SyscallError::InvalidCapability { index: 1 }
    );
    vs.fx
        .retype(DEV_UT, ObjectType::Untyped, 12, SPARE + 3, 1)
        .unwrap();
    assert_eq!(
        ctl(&[40, D], &[vs.slot(SPARE + 3), root]),
        SyscallError::InvalidCapability { index: 1 }
    );
    assert_eq!(
        ctl(&[40, D], &[vs.slot(FRAME), root]),
        SyscallError::InvalidCapability { index: 1 }
    );
    // An untyped with children.
    vs.fx
        .retype(SPARE, ObjectType::Endpoint, 0, SPARE + 4, 1)
        .unwrap();
    assert_eq!(ctl(&[40, D], &[ut, root]), SyscallError::RevokeFirst);
    vs.fx.delete(SPARE + 4).unwrap();
    // The destination lookup, then an occupied destination.
    assert_eq!(
        ctl(&[40, 65], &[ut, root]),
        SyscallError::RangeError { min: 1, max: 64 }
    );
    assert_eq!(ctl(&[FRAME, D], &[ut, root]), SyscallError::DeleteFirst);
    // With every pool in use, DeleteFirst comes before the untyped checks.
    ASID_TABLE.with(|t| t.iter().for_each(|p| p.set(p.get().max(1))));
    assert_eq!(
        ctl(&[40, D], &[vs.slot(FRAME), root]),
        SyscallError::DeleteFirst
    );
    ASID_TABLE.with(|t| t[1..].iter().for_each(|p| p.set(0)));
    // Nothing changed along the way.
    assert!(vs.slot(40).is_empty());
    assert_eq!(ASID_TABLE.with(|t| t[1].get()), 0);
    vs.make_pool(SPARE, 40).unwrap();
    assert_eq!(vs.fx.free_index(SPARE), 4096);
}

#[test]
fn assign_gives_the_first_free_asid_and_never_asid_0() {
    let vs = Vs::new();
    let pool = vs.paddr(POOL);
    assert_eq!(
        vs.cap(VSPACE),
        Cap::VSpace {
            paddr: vs.vspace(),
            mapped_asid: Some(1)
        }
    );
    assert_eq!(find_vspace_for_asid(1), Some(vs.vspace()));
    assert_eq!(find_vspace_for_asid(0), None);
    // Occupy ASIDs 2..=510 by hand, free 7 again: the next VSpace gets 7,
    // then 511, then the pool is full.
    for asid in 2..=510 {
        asid_pool_assign(pool, asid, 0x7000_0000);
    }
    memory::write::<u64>(vspace::asid_pool_entry(pool, 7), 0);
    vs.fx.retype(UT, ObjectType::VSpace, 0, SPARE, 3).unwrap();
    for (slot, asid) in [(SPARE, 7), (SPARE + 1, 511)] {
        vs.call(POOL, Label::ArmAsidPoolAssign, &[], &[slot])
            .unwrap();
        assert!(matches!(vs.cap(slot), Cap::VSpace { mapped_asid: Some(a), .. } if a == asid));
        assert_eq!(find_vspace_for_asid(asid), Some(vs.paddr(slot)));
    }
    assert_eq!(
        syscall_err(vs.call(POOL, Label::ArmAsidPoolAssign, &[], &[SPARE + 2])),
        SyscallError::DeleteFirst
    );
    assert!(matches!(
        vs.cap(SPARE + 2),
        Cap::VSpace {
            mapped_asid: None,
            ..
        }
    ));
}

#[test]
fn assign_reports_sel4s_errors() {
    let vs = Vs::new();
    vs.fx.retype(UT, ObjectType::VSpace, 0, SPARE, 1).unwrap();
    let assign =
        |pool: u64, extra: &[u64]| syscall_err(vs.call(pool, Label::ArmAsidPoolAssign, &[], extra));
    assert_eq!(
        syscall_err(vs.call(POOL, Label::ArmPageMap, &[], &[SPARE])),
        SyscallError::IllegalOperation
    );
    assert_eq!(assign(POOL, &[]), SyscallError::TruncatedMessage);
    assert_eq!(
        assign(POOL, &[FRAME]),
        SyscallError::InvalidCapability { index: 1 }
    );
    assert_eq!(
        assign(POOL, &[VSPACE]),
        SyscallError::InvalidCapability { index: 1 },
        "a VSpace that already has an ASID"
    );
    // A pool cap whose ASID range has no pool installed.
    write_boot_slot(
        vs.slot(SPARE + 1),
        &Cap::AsidPool {
            paddr: vs.paddr(POOL),
            asid_base: 512,
        },
    );
    assert_eq!(assign(SPARE + 1, &[SPARE]), INVALID_ROOT);
    assert_eq!(INVALID_ROOT.reply().words(), &[0, 1]);
    // A pool cap for the range, but not the pool installed there.
    write_boot_slot(
        vs.slot(SPARE + 2),
        &Cap::AsidPool {
            paddr: vs.paddr(FRAME),
            asid_base: 0,
        },
    );
    assert_eq!(
        assign(SPARE + 2, &[SPARE]),
        SyscallError::InvalidCapability { index: 0 }
    );
}

// ---------------------------------------------------------------------------
// Page tables

#[test]
fn page_tables_map_at_the_first_level_without_a_table() {
    let vs = Vs::new();
    let v = V + 0x1234_5000;
    vs.map_pt(PT_A, v).unwrap();
    assert_eq!(
        vs.cap(PT_A),
        Cap::PageTable {
            paddr: vs.paddr(PT_A),
            mapped: Some(Mapping { asid: 1, vaddr: V })
        },
        "a level-2 table covers the 1 GiB around vaddr"
    );
    vs.map_pt(PT_B, v).unwrap();
    assert_eq!(
        vs.cap(PT_B),
        Cap::PageTable {
            paddr: vs.paddr(PT_B),
            mapped: Some(Mapping {
                asid: 1,
                vaddr: v & !((1 << 21) - 1)
            })
        }
    );
    let (level, e) = pagetable::walk(vs.vspace(), v, 3);
    assert_eq!(level, 3);
    assert_eq!(e & !0xfff, vs.paddr(PT_B));
    // Both levels exist: a third table has nowhere to go.
    vs.fx
        .retype(UT, ObjectType::PageTable, 0, SPARE, 1)
        .unwrap();
    assert_eq!(syscall_err(vs.map_pt(SPARE, v)), SyscallError::DeleteFirst);
    // Elsewhere it maps at level 2 again... into PT_A.
    vs.map_pt(SPARE, v + (1 << 21)).unwrap();
    assert_eq!(
        pagetable::read(pagetable::entry_at(vs.paddr(PT_A), 2, v + (1 << 21))),
        Pte::table(vs.paddr(SPARE))
    );
    assert!(
        machine::take_log().is_empty(),
        "mapping into empty slots flushes nothing"
    );
}

#[test]
fn page_table_map_reports_sel4s_errors_in_sel4s_order() {
    let vs = Vs::new();
    let map = |pt: u64, args: &[u64], extra: &[u64]| {
        syscall_err(vs.call(pt, Label::ArmPageTableMap, args, extra))
    };
    assert_eq!(
        syscall_err(vs.call(PT_A, Label::ArmPageMap, &[V, 0], &[VSPACE])),
        SyscallError::IllegalOperation
    );
    assert_eq!(map(PT_A, &[V], &[VSPACE]), SyscallError::TruncatedMessage);
    assert_eq!(map(PT_A, &[V, 0], &[]), SyscallError::TruncatedMessage);
    // Not a VSpace, or one without an ASID: cap 1.
    assert_eq!(
        map(PT_A, &[V, 0], &[FRAME]),
        SyscallError::InvalidCapability { index: 1 }
    );
    vs.fx.retype(UT, ObjectType::VSpace, 0, SPARE, 1).unwrap();
    assert_eq!(
        map(PT_A, &[V, 0], &[SPARE]),
        SyscallError::InvalidCapability { index: 1 }
    );
    assert_eq!(
        map(PT_A, &[USER_TOP + 1, 0], &[VSPACE]),
        SyscallError::InvalidArgument { index: 0 }
    );
    // A VSpace cap whose ASID names another VSpace; then no VSpace at all.
    write_boot_slot(
        vs.slot(SPARE + 1),
        &Cap::VSpace {
            paddr: vs.paddr(SPARE),
            mapped_asid: Some(1),
        },
    );
    assert_eq!(
        map(PT_A, &[V, 0], &[SPARE + 1]),
        SyscallError::InvalidCapability { index: 1 }
    );
    write_boot_slot(
        vs.slot(SPARE + 2),
        &Cap::VSpace {
            paddr: vs.vspace(),
            mapped_asid: Some(2),
        },
    );
    assert_eq!(map(PT_A, &[V, 0], &[SPARE + 2]), INVALID_ROOT);
    // A mapped table cannot be mapped again.
    vs.map_pt(PT_A, V).unwrap();
    assert_eq!(
        map(PT_A, &[V + (1 << 30), 0], &[VSPACE]),
        SyscallError::InvalidCapability { index: 0 }
    );
}

#[test]
fn a_block_in_the_way_of_a_page_table_needs_deleting_first() {
    let vs = Vs::new();
    vs.fx
        .retype(HUGE_UT, ObjectType::HugePage, 0, HUGE, 1)
        .unwrap();
    vs.map(HUGE, V, RW, vm_attributes::DEFAULT).unwrap();
    assert_eq!(
        syscall_err(vs.map_pt(PT_A, V + 0x5000)),
        SyscallError::DeleteFirst
    );
    vs.map_pt(PT_A, V + (1 << 30)).unwrap();
    vs.fx
        .retype(UT, ObjectType::LargePage, 0, SPARE, 1)
        .unwrap();
    vs.map(SPARE, V + (1 << 30), RW, 0).unwrap();
    assert_eq!(
        syscall_err(vs.map_pt(PT_B, V + (1 << 30))),
        SyscallError::DeleteFirst
    );
}

#[test]
fn page_table_unmap_unlinks_clears_and_flushes() {
    let vs = Vs::new();
    let vmid = vs.activate();
    vs.map_tables();
    vs.map(FRAME, V, RW, vm_attributes::DEFAULT).unwrap();
    machine::take_log();
    // A copy makes the cap not final: RevokeFirst.
    vs.fx.copy(SPARE, PT_B, CapRights::ALL).unwrap();
    assert_eq!(
        syscall_err(vs.call(PT_B, Label::ArmPageTableUnmap, &[], &[])),
        SyscallError::RevokeFirst
    );
    vs.fx.delete(SPARE).unwrap();
    assert!(
        machine::take_log().is_empty(),
        "deleting a copy unmaps nothing"
    );

    vs.call(PT_B, Label::ArmPageTableUnmap, &[], &[]).unwrap();
    assert_eq!(machine::take_log(), [Op::FlushVmid(vmid)]);
    assert_eq!(
        vs.cap(PT_B),
        Cap::PageTable {
            paddr: vs.paddr(PT_B),
            mapped: None
        }
    );
    assert!(
        memory::is_zero(vs.paddr(PT_B), 4096),
        "the table is cleared"
    );
    assert_eq!(vs.leaf(V).0, 2, "the walk now ends in PT_A");
    // The frame cap's record is stale now: unmapping it does nothing.
    vs.call(FRAME, Label::ArmPageUnmap, &[], &[]).unwrap();
    assert!(machine::take_log().is_empty());
    // An unmapped table unmaps again without effect, and maps again.
    vs.call(PT_B, Label::ArmPageTableUnmap, &[], &[]).unwrap();
    assert!(machine::take_log().is_empty());
    vs.map_pt(PT_B, V).unwrap();
}

#[test]
fn deleting_the_last_page_table_cap_unlinks_it() {
    let vs = Vs::new();
    let vmid = vs.activate();
    vs.map_tables();
    vs.fx.delete(PT_B).unwrap();
    assert_eq!(machine::take_log(), [Op::FlushVmid(vmid)]);
    assert_eq!(vs.leaf(V).0, 2);
    assert!(!vs.leaf(V).1.is_valid());
    vs.fx.delete(PT_A).unwrap();
    assert_eq!(machine::take_log(), [Op::FlushVmid(vmid)]);
    assert!(!pagetable::read(pagetable::entry_at(vs.vspace(), 1, V)).is_valid());
}

// ---------------------------------------------------------------------------
// Frames

#[test]
fn frames_map_with_masked_rights_and_their_attributes() {
    let vs = Vs::new();
    vs.map_tables();
    let frame = vs.paddr(FRAME);
    vs.map(FRAME, V, RW, vm_attributes::DEFAULT).unwrap();
    assert_eq!(vs.leaf(V), (3, Pte::leaf(3, frame, rw(true, true))));
    let mapped = Cap::Frame {
        paddr: frame,
        size: FrameSize::Small,
        rights: VmRights::ReadWrite,
        is_device: false,
        mapped: Some(Mapping { asid: 1, vaddr: V }),
    };
    assert_eq!(vs.cap(FRAME), mapped);

    // Remapping in place: read-only, uncached, execute-never. The cap
    // keeps its own rights; the mapping has the masked ones.
    let read_only = CapRights::new(false, false, true, false).0;
    vs.map(FRAME, V, read_only, vm_attributes::EXECUTE_NEVER)
        .unwrap();
    let ro = Attrs {
        read: true,
        write: false,
        execute: false,
        cacheable: false,
    };
    assert_eq!(vs.leaf(V).1, Pte::leaf(3, frame, ro));
    assert_eq!(vs.cap(FRAME), mapped);
    // Write without read is no access at all, as in seL4.
    let write_only = CapRights::new(false, false, false, true).0;
    vs.map(FRAME, V, write_only, 0).unwrap();
    let none = Attrs {
        read: false,
        write: false,
        execute: true,
        cacheable: false,
    };
    assert_eq!(vs.leaf(V).1, Pte::leaf(3, frame, none));

    // A read-only cap never maps writable.
    vs.fx
        .copy(SPARE, FRAME2, CapRights::new(false, true, true, false))
        .unwrap();
    assert!(matches!(
        vs.cap(SPARE),
        Cap::Frame {
            rights: VmRights::ReadOnly,
            ..
        }
    ));
    vs.map(SPARE, V + 0x1000, RW, vm_attributes::DEFAULT)
        .unwrap();
    let ro_x = Attrs {
        read: true,
        write: false,
        execute: true,
        cacheable: true,
    };
    assert_eq!(vs.leaf(V + 0x1000).1, Pte::leaf(3, vs.paddr(FRAME2), ro_x));
}

#[test]
fn get_address_replies_with_the_physical_address() {
    let vs = Vs::new();
    assert_eq!(
        vs.invoke(LARGE, Label::ArmPageGetAddress, &[], &[])
            .unwrap(),
        vec![vs.paddr(LARGE)]
    );
    vs.fx
        .retype(DEV_UT, ObjectType::SmallPage, 0, SPARE, 1)
        .unwrap();
    assert_eq!(
        vs.invoke(SPARE, Label::ArmPageGetAddress, &[], &[])
            .unwrap(),
        vec![vs.fx.dev_base]
    );
    assert_eq!(
        syscall_err(vs.invoke(FRAME, Label::ArmPageTableUnmap, &[], &[])),
        SyscallError::IllegalOperation
    );
}

#[test]
fn frame_map_reports_sel4s_errors_in_sel4s_order() {
    let vs = Vs::new();
    vs.map_tables();
    let map = |frame: u64, args: &[u64], extra: &[u64]| {
        syscall_err(vs.call(frame, Label::ArmPageMap, args, extra))
    };
    assert_eq!(
        map(FRAME, &[V, RW], &[VSPACE]),
        SyscallError::TruncatedMessage
    );
    assert_eq!(map(FRAME, &[V, RW, 3], &[]), SyscallError::TruncatedMessage);
    assert_eq!(
        map(FRAME, &[V, RW, 3], &[PT_A]),
        SyscallError::InvalidCapability { index: 1 }
    );
    vs.fx.retype(UT, ObjectType::VSpace, 0, SPARE, 1).unwrap();
    assert_eq!(
        map(FRAME, &[V, RW, 3], &[SPARE]),
        SyscallError::InvalidCapability { index: 1 },
        "a VSpace without an ASID"
    );
    write_boot_slot(
        vs.slot(SPARE + 1),
        &Cap::VSpace {
            paddr: vs.vspace(),
            mapped_asid: Some(9),
        },
    );
    assert_eq!(map(FRAME, &[V, RW, 3], &[SPARE + 1]), INVALID_ROOT);
    write_boot_slot(
        vs.slot(SPARE + 2),
        &Cap::VSpace {
            paddr: vs.paddr(SPARE),
            mapped_asid: Some(1),
        },
    );
    assert_eq!(
        map(FRAME, &[V, RW, 3], &[SPARE + 2]),
        SyscallError::InvalidCapability { index: 1 }
    );
    assert_eq!(
        map(FRAME, &[V + 0x800, RW, 3], &[VSPACE]),
        SyscallError::AlignmentError
    );
    assert_eq!(
        map(LARGE, &[V + 0x1000, RW, 3], &[VSPACE]),
        SyscallError::AlignmentError
    );
    assert_eq!(
        map(FRAME, &[USER_TOP + 1, RW, 3], &[VSPACE]),
        SyscallError::InvalidArgument { index: 0 }
    );
    // No table for the address: the walk stops with 30 or 21 bits left.
    assert_eq!(map(FRAME, &[V + (1 << 30), RW, 3], &[VSPACE]), missing(30));
    assert_eq!(map(FRAME, &[V + (1 << 21), RW, 3], &[VSPACE]), missing(21));
    // A table where a 2 MiB block would go: 12 bits left.
    assert_eq!(map(LARGE, &[V, RW, 3], &[VSPACE]), missing(12));
    assert_eq!(missing(12).reply().words(), &[0, 2, 12]);
    assert!(vs.cap(FRAME).eq(&Cap::Frame {
        paddr: vs.paddr(FRAME),
        size: FrameSize::Small,
        rights: VmRights::ReadWrite,
        is_device: false,
        mapped: None
    }));

    // Remapping: only where the frame already is.
    vs.map(FRAME, V, RW, 3).unwrap();
    assert_eq!(
        map(FRAME, &[V + 0x1000, RW, 3], &[VSPACE]),
        SyscallError::InvalidArgument { index: 0 }
    );
    vs.call(POOL, Label::ArmAsidPoolAssign, &[], &[SPARE])
        .unwrap();
    assert_eq!(
        map(FRAME, &[V, RW, 3], &[SPARE]),
        SyscallError::InvalidCapability { index: 1 },
        "a mapped frame in another VSpace"
    );
}

#[test]
fn mapping_over_a_mapping_replaces_it_and_flushes_the_page() {
    let vs = Vs::new();
    let vmid = vs.activate();
    vs.map_tables();
    vs.map(FRAME, V, RW, 3).unwrap();
    assert!(machine::take_log().is_empty(), "the slot was empty");
    // Remap in place: the old translation may be cached.
    vs.map(FRAME, V, RW, 3).unwrap();
    assert_eq!(machine::take_log(), [Op::FlushPage(vmid, V)]);
    // Another frame over it, as seL4 allows; the first cap's record is
    // stale and its unmap leaves the new mapping alone.
    vs.map(FRAME2, V, RW, 3).unwrap();
    assert_eq!(machine::take_log(), [Op::FlushPage(vmid, V)]);
    vs.call(FRAME, Label::ArmPageUnmap, &[], &[]).unwrap();
    assert!(machine::take_log().is_empty());
    assert_eq!(vs.leaf(V).1.addr(), vs.paddr(FRAME2));
    assert!(matches!(vs.cap(FRAME), Cap::Frame { mapped: None, .. }));
}

#[test]
fn unmap_removes_the_mapping_and_flushes_only_what_can_be_cached() {
    let vs = Vs::new();
    vs.map_tables();
    vs.map(FRAME, V, RW, 3).unwrap();
    vs.map(FRAME2, V + 0x1000, RW, 3).unwrap();
    // No VMID yet: nothing of this address space can be in the TLB.
    vs.call(FRAME, Label::ArmPageUnmap, &[], &[]).unwrap();
    assert!(machine::take_log().is_empty());
    assert!(!vs.leaf(V).1.is_valid());
    assert!(matches!(vs.cap(FRAME), Cap::Frame { mapped: None, .. }));
    // With a VMID, the page is flushed.
    let vmid = vs.activate();
    vs.call(FRAME2, Label::ArmPageUnmap, &[], &[]).unwrap();
    assert_eq!(machine::take_log(), [Op::FlushPage(vmid, V + 0x1000)]);
    assert!(!vs.leaf(V + 0x1000).1.is_valid());
    // Unmapping an unmapped frame is fine and does nothing.
    vs.call(FRAME2, Label::ArmPageUnmap, &[], &[]).unwrap();
    assert!(machine::take_log().is_empty());
}

#[test]
fn deleting_a_mapped_frame_cap_unmaps_it_but_deleting_a_copy_does_not_touch_it() {
    let vs = Vs::new();
    let vmid = vs.activate();
    vs.map_tables();
    vs.map(FRAME, V, RW, 3).unwrap();
    // A copy starts unmapped; deleting it leaves the original's mapping.
    vs.fx.copy(SPARE, FRAME, CapRights::ALL).unwrap();
    assert!(matches!(vs.cap(SPARE), Cap::Frame { mapped: None, .. }));
    vs.fx.delete(SPARE).unwrap();
    assert!(machine::take_log().is_empty());
    assert!(vs.leaf(V).1.is_valid());
    // The copy maps elsewhere; deleting the original removes only its own.
    vs.fx.copy(SPARE, FRAME, CapRights::ALL).unwrap();
    vs.map(SPARE, V + 0x1000, RW, 3).unwrap();
    vs.fx.delete(FRAME).unwrap();
    assert_eq!(machine::take_log(), [Op::FlushPage(vmid, V)]);
    assert!(!vs.leaf(V).1.is_valid());
    assert!(vs.leaf(V + 0x1000).1.is_valid());
    // Revoking the untyped removes every remaining mapping of its frames.
    vs.fx.revoke(UT).unwrap();
    let log = machine::take_log();
    assert!(log.contains(&Op::FlushPage(vmid, V + 0x1000)), "{log:?}");
}

#[test]
fn large_frames_are_blocks_at_level_2() {
    let vs = Vs::new();
    let vmid = vs.activate();
    vs.map_pt(PT_A, V).unwrap();
    let v = V + (3 << 21);
    vs.map(LARGE, v, RW, vm_attributes::DEFAULT).unwrap();
    assert_eq!(
        vs.leaf(v),
        (2, Pte::leaf(2, vs.paddr(LARGE), rw(true, true)))
    );
    assert_eq!(vs.leaf(v + 0x12_3000).1.addr(), vs.paddr(LARGE));
    // No level-3 table fits under it now.
    assert_eq!(syscall_err(vs.map_pt(PT_B, v)), SyscallError::DeleteFirst);
    vs.call(LARGE, Label::ArmPageUnmap, &[], &[]).unwrap();
    assert_eq!(machine::take_log(), [Op::FlushPage(vmid, v)]);
    // Beyond the top of user memory.
    assert_eq!(
        syscall_err(vs.map(LARGE, USER_TOP + 1 - (1 << 21), RW, 3)),
        missing(30),
        "the last 2 MiB is user memory; it has no table yet"
    );
}

#[test]
fn huge_frames_are_blocks_at_level_1() {
    let vs = Vs::new();
    let vmid = vs.activate();
    vs.fx
        .retype(HUGE_UT, ObjectType::HugePage, 0, HUGE, 1)
        .unwrap();
    assert_eq!(
        syscall_err(vs.map(HUGE, V + (1 << 21), RW, 3)),
        SyscallError::AlignmentError
    );
    vs.map(HUGE, V, RW, 0).unwrap();
    assert_eq!(
        vs.leaf(V),
        (1, Pte::leaf(1, HUGE_UT_PADDR, rw(false, true)))
    );
    // The last GiB of user memory is fine, past it is not.
    vs.fx.copy(SPARE, HUGE, CapRights::ALL).unwrap();
    let last = USER_TOP + 1 - (1 << 30);
    vs.map(SPARE, last, RW, 3).unwrap();
    vs.fx.copy(SPARE + 1, HUGE, CapRights::ALL).unwrap();
    assert_eq!(
        syscall_err(vs.map(SPARE + 1, last + (1 << 30), RW, 3)),
        SyscallError::InvalidArgument { index: 0 }
    );
    // Its memory is beyond the kernel window: no cache maintenance by address.
    assert_eq!(
        syscall_err(vs.call(HUGE, Label::ArmPageCleanData, &[0, 64], &[])),
        SyscallError::IllegalOperation
    );
    vs.fx.delete(HUGE).unwrap();
    assert_eq!(machine::take_log(), [Op::FlushPage(vmid, V)]);
}

// ---------------------------------------------------------------------------
// Cache maintenance

#[test]
fn page_cache_operations_work_on_offsets_inside_the_frame() {
    let vs = Vs::new();
    vs.map_tables();
    vs.map(FRAME, V, RW, 3).unwrap();
    let p = vs.paddr(FRAME);
    let cases = [
        (Label::ArmPageCleanData, Op::Clean(p + 0x10, 0x30)),
        (Label::ArmPageInvalidateData, Op::Invalidate(p + 0x10, 0x30)),
        (
            Label::ArmPageCleanInvalidateData,
            Op::CleanInvalidate(p + 0x10, 0x30),
        ),
        (Label::ArmPageUnifyInstruction, Op::Unify(p + 0x10, 0x30)),
    ];
    for (label, op) in cases {
        vs.call(FRAME, label, &[0x10, 0x40], &[]).unwrap();
        assert_eq!(machine::take_log(), [op]);
    }
    vs.call(FRAME, Label::ArmPageCleanData, &[0, 0x1000], &[])
        .unwrap();
    assert_eq!(machine::take_log(), [Op::Clean(p, 0x1000)]);
}

#[test]
fn page_cache_operations_report_sel4s_errors_in_sel4s_order() {
    let vs = Vs::new();
    let flush =
        |frame: u64, args: &[u64]| syscall_err(vs.call(frame, Label::ArmPageCleanData, args, &[]));
    assert_eq!(flush(FRAME, &[0]), SyscallError::TruncatedMessage);
    assert_eq!(
        flush(FRAME, &[0, 64]),
        SyscallError::IllegalOperation,
        "unmapped"
    );
    vs.map_tables();
    vs.map(FRAME, V, RW, 3).unwrap();
    assert_eq!(
        flush(FRAME, &[64, 64]),
        SyscallError::InvalidArgument { index: 1 }
    );
    assert_eq!(
        flush(FRAME, &[65, 64]),
        SyscallError::InvalidArgument { index: 1 }
    );
    assert_eq!(
        flush(FRAME, &[0x1000, 0x1001]),
        SyscallError::InvalidArgument { index: 0 }
    );
    assert_eq!(
        flush(FRAME, &[0, 0x1001]),
        SyscallError::InvalidArgument { index: 0 }
    );
    // A frame cap whose ASID is gone.
    write_boot_slot(
        vs.slot(SPARE),
        &Cap::Frame {
            paddr: vs.paddr(FRAME2),
            size: FrameSize::Small,
            rights: VmRights::ReadWrite,
            is_device: false,
            mapped: Some(Mapping { asid: 5, vaddr: V }),
        },
    );
    assert_eq!(flush(SPARE, &[0, 64]), INVALID_ROOT);
    assert!(machine::take_log().is_empty());
}

#[test]
fn vspace_cache_operations_stay_within_one_mapped_page() {
    let vs = Vs::new();
    vs.map_tables();
    vs.map(FRAME, V + 0x3000, RW, 3).unwrap();
    let flush = |label: Label, args: &[u64]| vs.call(VSPACE, label, args, &[]);
    let p = vs.paddr(FRAME);
    flush(Label::ArmVSpaceCleanData, &[V + 0x3100, V + 0x3200]).unwrap();
    assert_eq!(machine::take_log(), [Op::Clean(p + 0x100, 0x100)]);
    flush(Label::ArmVSpaceUnifyInstruction, &[V + 0x3000, V + 0x4000]).unwrap();
    assert_eq!(machine::take_log(), [Op::Unify(p, 0x1000)]);
    // Nothing mapped at start: success, nothing done.
    flush(Label::ArmVSpaceInvalidateData, &[V, V + 0x10]).unwrap();
    flush(
        Label::ArmVSpaceInvalidateData,
        &[V + (5 << 30), V + (5 << 30) + 1],
    )
    .unwrap();
    assert!(machine::take_log().is_empty());
    // Crossing the end of the page: the range that would have been fine.
    assert_eq!(
        syscall_err(flush(
            Label::ArmVSpaceCleanInvalidateData,
            &[V + 0x3800, V + 0x4001]
        )),
        SyscallError::RangeError {
            min: V + 0x3800,
            max: V + 0x3fff
        }
    );
    // A 2 MiB block: the range may span it.
    vs.fx
        .retype(UT, ObjectType::PageTable, 0, SPARE, 1)
        .unwrap();
    vs.map(LARGE, V + (4 << 21), RW, 3).unwrap();
    flush(
        Label::ArmVSpaceCleanData,
        &[V + (4 << 21) + 0x1000, V + (5 << 21)],
    )
    .unwrap();
    assert_eq!(
        machine::take_log(),
        [Op::Clean(vs.paddr(LARGE) + 0x1000, (1 << 21) - 0x1000)]
    );
}

#[test]
fn vspace_cache_operations_report_sel4s_errors_in_sel4s_order() {
    let vs = Vs::new();
    let flush =
        |slot: u64, args: &[u64]| syscall_err(vs.call(slot, Label::ArmVSpaceCleanData, args, &[]));
    assert_eq!(
        syscall_err(vs.call(VSPACE, Label::ArmPageMap, &[V, V + 1], &[])),
        SyscallError::IllegalOperation
    );
    assert_eq!(flush(VSPACE, &[V]), SyscallError::TruncatedMessage);
    assert_eq!(
        flush(VSPACE, &[V, V]),
        SyscallError::InvalidArgument { index: 1 }
    );
    assert_eq!(
        flush(VSPACE, &[V, USER_TOP + 1]),
        SyscallError::IllegalOperation
    );
    vs.fx.retype(UT, ObjectType::VSpace, 0, SPARE, 1).unwrap();
    assert_eq!(
        flush(SPARE, &[V, V + 1]),
        SyscallError::InvalidCapability { index: 0 }
    );
    write_boot_slot(
        vs.slot(SPARE + 1),
        &Cap::VSpace {
            paddr: vs.vspace(),
            mapped_asid: Some(3),
        },
    );
    assert_eq!(flush(SPARE + 1, &[V, V + 1]), INVALID_ROOT);
    write_boot_slot(
        vs.slot(SPARE + 2),
        &Cap::VSpace {
            paddr: vs.paddr(SPARE),
            mapped_asid: Some(1),
        },
    );
    assert_eq!(
        flush(SPARE + 2, &[V, V + 1]),
        SyscallError::InvalidCapability { index: 0 }
    );
}

// ---------------------------------------------------------------------------
// Address spaces, ASID and pool deletion, VMIDs

#[test]
fn set_vm_root_installs_only_a_vspace_its_asid_still_names() {
    let vs = Vs::new();
    for cap in [
        Cap::Null,
        vs.cap(FRAME),
        Cap::VSpace {
            paddr: vs.vspace(),
            mapped_asid: None,
        },
        Cap::VSpace {
            paddr: vs.paddr(FRAME),
            mapped_asid: Some(1),
        },
        Cap::VSpace {
            paddr: vs.vspace(),
            mapped_asid: Some(2),
        },
    ] {
        set_vm_root(&cap);
        assert_eq!(machine::take_log(), [Op::EmptyVSpaceRoot], "{cap:?}");
        assert_eq!(current_asid(), None);
    }
    set_vm_root(&vs.cap(VSPACE));
    assert_eq!(machine::take_log(), [Op::VSpaceRoot(vs.vspace(), 1)]);
    assert_eq!(current_asid(), Some(1));
    assert_eq!(asid_entry(1).unwrap().vmid, Some(1));
    // Switching back keeps the VMID and flushes nothing.
    set_vm_root(&Cap::Null);
    set_vm_root(&vs.cap(VSPACE));
    assert_eq!(
        machine::take_log(),
        [Op::EmptyVSpaceRoot, Op::VSpaceRoot(vs.vspace(), 1)]
    );
}

#[test]
fn deleting_a_vspace_releases_its_asid_vmid_and_current_root() {
    let vs = Vs::new();
    let vmid = vs.activate();
    vs.map_tables();
    vs.map(FRAME, V, RW, 3).unwrap();
    vs.fx.copy(SPARE, VSPACE, CapRights::ALL).unwrap();
    vs.fx.delete(SPARE).unwrap();
    assert!(machine::take_log().is_empty(), "not the last cap");

    vs.fx.delete(VSPACE).unwrap();
    assert_eq!(
        machine::take_log(),
        [Op::FlushVmid(vmid), Op::EmptyVSpaceRoot]
    );
    assert_eq!(find_vspace_for_asid(1), None);
    assert_eq!(vmid::owner(vmid), None);
    assert_eq!(current_asid(), None);
    // The caps that pointed into it are stale and harmless.
    vs.call(FRAME, Label::ArmPageUnmap, &[], &[]).unwrap();
    vs.fx.delete(PT_B).unwrap();
    assert!(machine::take_log().is_empty());
    // The ASID is free again.
    vs.fx.retype(UT, ObjectType::VSpace, 0, SPARE, 1).unwrap();
    vs.call(POOL, Label::ArmAsidPoolAssign, &[], &[SPARE])
        .unwrap();
    assert!(matches!(
        vs.cap(SPARE),
        Cap::VSpace {
            mapped_asid: Some(1),
            ..
        }
    ));
}

#[test]
fn deleting_a_vspace_that_is_not_current_keeps_the_current_one() {
    let vs = Vs::new();
    vs.fx.retype(UT, ObjectType::VSpace, 0, SPARE, 1).unwrap();
    vs.call(POOL, Label::ArmAsidPoolAssign, &[], &[SPARE])
        .unwrap();
    set_vm_root(&vs.cap(SPARE));
    machine::take_log();
    let other = vs.activate();
    vs.fx.delete(SPARE).unwrap();
    assert_eq!(machine::take_log(), [Op::FlushVmid(1)]);
    assert_eq!((other, current_asid()), (2, Some(1)));
}

#[test]
fn deleting_a_pool_releases_every_asid_in_it() {
    let vs = Vs::new();
    vs.fx.retype(UT, ObjectType::VSpace, 0, SPARE, 2).unwrap();
    for s in [SPARE, SPARE + 1] {
        vs.call(POOL, Label::ArmAsidPoolAssign, &[], &[s]).unwrap();
    }
    set_vm_root(&vs.cap(SPARE + 1));
    machine::take_log();
    let vmid = vs.activate();
    // ASID 3 has VMID 1, ASID 1 VMID 2; ASID 2 never ran, so it has no
    // VMID and nothing to flush.
    assert_eq!(vmid, 2);
    let pool = vs.paddr(POOL);

    // Revoking the pool's untyped deletes the pool cap.
    vs.fx.revoke(POOL_UT).unwrap();
    assert!(vs.slot(POOL).is_empty());
    assert_eq!(
        machine::take_log(),
        [Op::FlushVmid(2), Op::FlushVmid(1), Op::EmptyVSpaceRoot]
    );
    assert_eq!(ASID_TABLE.with(|t| t[0].get()), 0);
    assert_eq!((vmid::owner(1), vmid::owner(2)), (None, None));
    for asid in 1..=3 {
        assert_eq!(find_vspace_for_asid(asid), None);
    }
    // The VSpace caps still claim ASIDs, but they name nothing now.
    set_vm_root(&vs.cap(VSPACE));
    assert_eq!(machine::take_log(), [Op::EmptyVSpaceRoot]);
    assert_eq!(syscall_err(vs.map_pt(PT_A, V)), INVALID_ROOT);
    vs.fx.delete(VSPACE).unwrap();
    assert!(machine::take_log().is_empty());
    // A stale pool cap for the same range deletes without effect.
    write_boot_slot(
        vs.slot(40),
        &Cap::AsidPool {
            paddr: pool,
            asid_base: 0,
        },
    );
    vs.fx.delete(40).unwrap();
    // The range is free for a new pool.
    vs.fx.retype(UT, ObjectType::Untyped, 12, 40, 1).unwrap();
    vs.make_pool(40, 41).unwrap();
    assert!(matches!(vs.cap(41), Cap::AsidPool { asid_base: 0, .. }));
}

#[test]
fn vmids_are_recycled_round_robin_with_a_flush() {
    let vs = Vs::new();
    machine::set_vmid_count(4); // VMIDs 1..=3; 0 is the empty root's.
    vs.fx.retype(UT, ObjectType::VSpace, 0, SPARE, 3).unwrap();
    let spaces = [VSPACE, SPARE, SPARE + 1, SPARE + 2];
    for s in &spaces[1..] {
        vs.call(POOL, Label::ArmAsidPoolAssign, &[], &[*s]).unwrap();
    }
    let run = |s: u64| {
        set_vm_root(&vs.cap(s));
        machine::take_log()
    };
    let root = |s: u64| vs.paddr(s);
    assert_eq!(run(VSPACE), [Op::VSpaceRoot(root(VSPACE), 1)]);
    assert_eq!(run(SPARE), [Op::VSpaceRoot(root(SPARE), 2)]);
    assert_eq!(run(SPARE + 1), [Op::VSpaceRoot(root(SPARE + 1), 3)]);
    // All taken: VMID 1 is taken back from ASID 1 and flushed.
    assert_eq!(
        run(SPARE + 2),
        [Op::FlushVmid(1), Op::VSpaceRoot(root(SPARE + 2), 1)]
    );
    assert_eq!(asid_entry(1).unwrap().vmid, None);
    assert_eq!(vmid::owner(1), Some(4));
    // ASID 1 runs again: the cursor has moved on to VMID 2.
    assert_eq!(
        run(VSPACE),
        [Op::FlushVmid(2), Op::VSpaceRoot(root(VSPACE), 2)]
    );
    assert_eq!(asid_entry(2).unwrap().vmid, None);
    // Threads of ASIDs that keep their VMID switch without flushing.
    assert_eq!(run(SPARE + 1), [Op::VSpaceRoot(root(SPARE + 1), 3)]);
    // A deleted VSpace gives its VMID back; the next one takes it unflushed.
    vs.fx.delete(SPARE + 1).unwrap();
    assert_eq!(machine::take_log(), [Op::FlushVmid(3), Op::EmptyVSpaceRoot]);
    assert_eq!(run(SPARE), [Op::VSpaceRoot(root(SPARE), 3)]);
    // Unmaps use the VMID the ASID has now.
    vs.map_tables();
    vs.map(FRAME, V, RW, 3).unwrap();
    vs.map(FRAME, V, RW, 3).unwrap();
    assert_eq!(machine::take_log(), [Op::FlushPage(2, V)]);
}

#[test]
fn pools_run_out_at_128_and_a_deleted_pool_frees_its_range() {
    let vs = Vs::new();
    let ut = SPARE;
    let pool_slot = |i: u64| 100 + i;
    for i in 1..ASID_POOLS as u64 {
        vs.fx.retype(UT, ObjectType::Untyped, 12, ut, 1).unwrap();
        vs.make_pool(ut, pool_slot(i)).unwrap();
        assert!(
            matches!(vs.cap(pool_slot(i)), Cap::AsidPool { asid_base, .. } if asid_base as u64 == i << 9)
        );
        // The untyped cap may go; the pool lives on in its own cap.
        vs.fx.delete(ut).unwrap();
    }
    vs.fx.retype(UT, ObjectType::Untyped, 12, ut, 1).unwrap();
    assert_eq!(
        syscall_err(vs.make_pool(ut, SPARE + 1)),
        SyscallError::DeleteFirst
    );
    vs.fx.delete(pool_slot(5)).unwrap();
    assert_eq!(ASID_TABLE.with(|t| t[5].get()), 0);
    vs.make_pool(ut, SPARE + 1).unwrap();
    assert!(matches!(vs.cap(SPARE + 1), Cap::AsidPool { asid_base, .. } if asid_base == 5 << 9));
    check_links(&vs.fx);
}

// ---------------------------------------------------------------------------
// A property test against a model of the TLB

mod model {
    //! Random sequences of map, unmap, delete, copy, assign, revoke and
    //! address-space switches, with few VMIDs so they are recycled often.
    //! The model TLB pessimistically caches every translation of every
    //! address space that has a VMID, before each step; the flushes the
    //! kernel asks for are the only thing that removes entries. After each
    //! step, every entry still cached must be exactly the translation the
    //! VMID's owner has now: anything else is a stale TLB entry a thread
    //! could use. Also checked: every mapping in a live VSpace is recorded
    //! by a frame cap, and the derivation list stays well formed.

    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    const VS2: u64 = 15;
    const PT_C: u64 = 16;
    const FRAME3: u64 = 24;
    const COPIES: u64 = 50;
    const VSPACES: [u64; 2] = [VSPACE, VS2];
    const FRAMES: [u64; 4] = [FRAME, FRAME2, LARGE, FRAME3];
    const TABLES: [u64; 3] = [PT_A, PT_B, PT_C];
    const VADDRS: [u64; 6] = [
        V,
        V + 0x1000,
        V + (1 << 21),
        V + (1 << 21) + 0x1000,
        V + (1 << 30),
        V + (1 << 30) + (1 << 21),
    ];

    #[derive(Clone, Debug)]
    enum Step {
        Map {
            frame: usize,
            vspace: usize,
            vaddr: usize,
            rights: u64,
            attr: u64,
        },
        MapTable {
            table: usize,
            vspace: usize,
            vaddr: usize,
        },
        UnmapFrame(usize),
        UnmapTable(usize),
        /// Copy a frame or table cap into copy slot `n`.
        Copy(usize, u64),
        /// Delete one of the object or copy slots.
        Delete(u64),
        Activate(usize),
        Assign(usize),
        RevokePoolUntyped,
    }

    fn step() -> impl Strategy<Value = Step> {
        let vs = 0..VSPACES.len();
        let va = 0..VADDRS.len();
        prop_oneof![
            4 => (0..FRAMES.len(), vs.clone(), va.clone(), 0u64..16, 0u64..8).prop_map(
                |(frame, vspace, vaddr, rights, attr)| Step::Map { frame, vspace, vaddr, rights, attr }),
            3 => (0..TABLES.len(), vs.clone(), va).prop_map(
                |(table, vspace, vaddr)| Step::MapTable { table, vspace, vaddr }),
            2 => (0..FRAMES.len()).prop_map(Step::UnmapFrame),
            1 => (0..TABLES.len()).prop_map(Step::UnmapTable),
            1 => (0..FRAMES.len() + TABLES.len(), 0u64..4).prop_map(|(s, n)| Step::Copy(s, n)),
            2 => prop_oneof![
                proptest::sample::select(vec![VSPACE, VS2, PT_A, PT_B, PT_C, FRAME, FRAME2, LARGE, FRAME3]),
                (COPIES..COPIES + 4),
            ].prop_map(Step::Delete),
            3 => vs.clone().prop_map(Step::Activate),
            1 => vs.prop_map(Step::Assign),
            1 => Just(Step::RevokePoolUntyped),
        ]
    }

    /// Every valid leaf of the VSpace at `root`: (vaddr, level, entry).
    fn leaves(root: u64) -> Vec<(u64, u32, Pte)> {
        fn walk(table: u64, level: u32, base: u64, out: &mut Vec<(u64, u32, Pte)>) {
            let entries = if level == 1 {
                pagetable::ROOT_ENTRIES
            } else {
                pagetable::ENTRIES
            };
            for i in 0..entries {
                let pte = pagetable::read(table + 8 * i);
                let va = base + (i << pagetable::entry_bits(level));
                if pte.is_table(level) {
                    walk(pte.addr(), level + 1, va, out);
                } else if pte.is_page(level) {
                    out.push((va, level, pte));
                }
            }
        }
        let mut out = Vec::new();
        walk(root, 1, 0, &mut out);
        out
    }

    /// The live VSpaces: (ASID, root) for every assigned ASID.
    fn live() -> Vec<(u16, u64)> {
        let pools: Vec<u64> = ASID_TABLE.with(|t| t.iter().map(|p| p.get()).collect());
        let per_pool = vspace::ASIDS_PER_POOL as u16;
        (0..ASID_POOLS as u16)
            .filter(|&i| pools[i as usize] != 0)
            .flat_map(|i| (i * per_pool..(i + 1) * per_pool).filter(|&a| a != 0))
            .filter_map(|a| find_vspace_for_asid(a).map(|r| (a, r)))
            .collect()
    }

    type Entry = (u16, u64, u32, Pte);

    fn cache_everything(tlb: &mut BTreeSet<(u16, u64, u32, u64)>) {
        for (asid, root) in live() {
            if let Some(v) = asid_entry(asid).and_then(|e| e.vmid) {
                for (va, level, pte) in leaves(root) {
                    tlb.insert((v, va, level, pte.0));
                }
            }
        }
    }

    fn apply_flushes(tlb: &mut BTreeSet<(u16, u64, u32, u64)>, log: &[Op]) {
        for op in log {
            match *op {
                Op::FlushVmid(v) => tlb.retain(|e| e.0 != v),
                Op::FlushPage(v, va) => tlb.retain(|&(w, base, level, _)| {
                    w != v
                        || va >> pagetable::entry_bits(level)
                            != base >> pagetable::entry_bits(level)
                }),
                _ => {}
            }
        }
    }

    fn check_tlb(tlb: &BTreeSet<(u16, u64, u32, u64)>) -> Result<(), TestCaseError> {
        for &(v, va, level, pte) in tlb {
            let now: Option<Entry> = vmid::owner(v).and_then(|asid| {
                let root = find_vspace_for_asid(asid)?;
                (asid_entry(asid)?.vmid == Some(v)).then_some(())?;
                let (l, e, _) = pagetable::lookup_slot(root, va);
                Some((asid, va, l, pagetable::read(e)))
            });
            prop_assert!(
                now.is_some_and(|(_, _, l, p)| l == level && p.0 == pte && p.is_page(l)),
                "stale TLB entry: VMID {v} maps {va:#x} (level {level}) as {pte:#x}, now {now:?}"
            );
        }
        Ok(())
    }

    fn check_recorded(vs: &Vs) -> Result<(), TestCaseError> {
        let recorded: BTreeSet<(u16, u64, u64)> = (0..1u64 << ROOT_RADIX)
            .filter_map(|i| match vs.cap(i) {
                Cap::Frame {
                    paddr,
                    mapped: Some(m),
                    ..
                } => Some((m.asid, m.vaddr, paddr)),
                _ => None,
            })
            .collect();
        for (asid, root) in live() {
            for (va, _, pte) in leaves(root) {
                prop_assert!(
                    recorded.contains(&(asid, va, pte.addr())),
                    "ASID {asid} maps {va:#x} to {:#x} but no frame cap says so",
                    pte.addr()
                );
            }
        }
        Ok(())
    }

    fn run(vs: &Vs, s: &Step) {
        // The system-call layer only invokes caps that are there.
        let target = match *s {
            Step::Map { frame, .. } | Step::UnmapFrame(frame) => FRAMES[frame],
            Step::MapTable { table, .. } | Step::UnmapTable(table) => TABLES[table],
            Step::Assign(_) => POOL,
            _ => UT,
        };
        if vs.slot(target).is_empty() {
            return;
        }
        let _ = match *s {
            Step::Map {
                frame,
                vspace,
                vaddr,
                rights,
                attr,
            } => vs.call(
                FRAMES[frame],
                Label::ArmPageMap,
                &[VADDRS[vaddr], rights, attr],
                &[VSPACES[vspace]],
            ),
            Step::MapTable {
                table,
                vspace,
                vaddr,
            } => vs.call(
                TABLES[table],
                Label::ArmPageTableMap,
                &[VADDRS[vaddr], 0],
                &[VSPACES[vspace]],
            ),
            Step::UnmapFrame(f) => vs.call(FRAMES[f], Label::ArmPageUnmap, &[], &[]),
            Step::UnmapTable(t) => vs.call(TABLES[t], Label::ArmPageTableUnmap, &[], &[]),
            Step::Copy(src, n) => {
                let src = FRAMES
                    .iter()
                    .chain(TABLES.iter())
                    .nth(src)
                    .copied()
                    .unwrap();
                vs.fx.copy(COPIES + n, src, CapRights::ALL)
            }
            Step::Delete(slot) => vs.fx.delete(slot),
            Step::Activate(i) => {
                set_vm_root(&vs.cap(VSPACES[i]));
                Ok(())
            }
            Step::Assign(i) => vs.call(POOL, Label::ArmAsidPoolAssign, &[], &[VSPACES[i]]),
            Step::RevokePoolUntyped => vs.fx.revoke(POOL_UT),
        };
    }

    /// A word that is often meaningful here and sometimes anything.
    fn word() -> impl Strategy<Value = u64> {
        prop_oneof![
            3 => 0u64..64,
            2 => proptest::sample::select(VADDRS.to_vec()),
            1 => Just(D),
            1 => Just(USER_TOP),
            1 => any::<u64>(),
        ]
    }

    const TARGETS: [u64; 13] = [
        FRAME,
        FRAME2,
        LARGE,
        FRAME3,
        PT_A,
        PT_B,
        PT_C,
        VSPACE,
        VS2,
        POOL,
        ASID_CONTROL,
        IRQ,
        COPIES,
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        #[test]
        fn no_stale_translation_survives_any_sequence(
            vmids in 2u32..4,
            steps in proptest::collection::vec(step(), 1..40),
        ) {
            let vs = Vs::new();
            // One or two VMIDs, so that switching recycles them.
            machine::set_vmid_count(vmids);
            vs.fx.retype(UT, ObjectType::VSpace, 0, VS2, 1).unwrap();
            vs.fx.retype(UT, ObjectType::PageTable, 0, PT_C, 1).unwrap();
            vs.fx.retype(UT, ObjectType::SmallPage, 0, FRAME3, 1).unwrap();
            // A running start: the first VSpace is current and has a
            // level-2 table at V, so that mappings succeed often.
            set_vm_root(&vs.cap(VSPACE));
            vs.map_pt(PT_A, V).unwrap();
            machine::take_log();
            let mut tlb = BTreeSet::new();
            for s in &steps {
                cache_everything(&mut tlb);
                run(&vs, s);
                apply_flushes(&mut tlb, &machine::take_log());
                check_tlb(&tlb)?;
                check_recorded(&vs)?;
                check_links(&vs.fx);
            }
        }

        /// Whatever a thread sends to these caps, the decoders answer with
        /// success or an error and leave the derivation list well formed.
        #[test]
        fn arbitrary_invocations_never_panic(
            calls in proptest::collection::vec(
                (0usize..TARGETS.len(), prop_oneof![4 => 39u64..62, 1 => 0u64..80, 1 => any::<u64>()],
                 proptest::collection::vec(word(), 0..6),
                 proptest::collection::vec(0usize..TARGETS.len() + 1, 0..3)),
                1..30)
        ) {
            let vs = Vs::new();
            vs.fx.retype(UT, ObjectType::VSpace, 0, VS2, 1).unwrap();
            vs.fx.retype(UT, ObjectType::PageTable, 0, PT_C, 1).unwrap();
            vs.fx.retype(UT, ObjectType::SmallPage, 0, FRAME3, 1).unwrap();
            vs.fx.retype(UT, ObjectType::Untyped, 12, COPIES, 1).unwrap();
            let node = vs.fx.arena.phys_base + 0x2_0000;
            memory::zero(node, crate::object::irq::IRQ_COUNT as u64 * crate::cte::SLOT_BYTES);
            machine::set_irq_node(node);
            crate::object::irq::reset_for_test();
            for (target, label, args, extra) in calls {
                let slot = vs.slot(TARGETS[target]);
                let extra: Vec<SlotRef> = extra
                    .iter()
                    .map(|&i| TARGETS.get(i).map_or(vs.fx.root_slot, |&t| vs.slot(t)))
                    .collect();
                let inv = Invocation::new(label, &args, &extra);
                let mut reply = ReplyWords::default();
                let _ = match slot.cap() {
                    Cap::Null => Ok(()),
                    Cap::IrqControl => {
                        crate::object::irq::decode_irq_control_invocation(&inv, slot, &mut reply)
                    }
                    c @ Cap::IrqHandler { .. } => {
                        crate::object::irq::decode_irq_handler_invocation(&inv, &c, slot, &mut reply)
                    }
                    c @ (Cap::Frame { .. } | Cap::PageTable { .. } | Cap::VSpace { .. }
                    | Cap::AsidControl | Cap::AsidPool { .. }) => {
                        decode_invocation(&inv, &c, slot, &mut reply)
                    }
                    _ => Ok(()),
                };
                check_links(&vs.fx);
            }
        }
    }
}
