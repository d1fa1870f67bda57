//! Address spaces (src/arch/arm/64/kernel/vspace.c, decodeARMMMUInvocation):
//! page tables, frame map/unmap/remap and rights, cache maintenance on
//! frames and VSpaces, ASID control and pools, and the one property users
//! rely on most: after an unmap (or a delete) no stale mapping remains.

use septa_abi::kernel_config::cap_tag;
use septa_abi::{CapRights, Label, ObjectType, USER_TOP};
use septa_sel4::cap::cap_type::*;
use septa_sel4::fault::Fault;
use septa_sel4::invocation::Invocation;
use septa_sel4::{Cap, Error, LookupFailure, VmAttributes};

use crate::cases::fault::{data_abort, esr, expect_vm, fault_ep};
use crate::cases::instr;
use crate::cases::util::{raw, settle, ALL, READ, RW};
use crate::env::{Cx, ROOT_DEPTH};
use crate::report::{Failure, Outcome};
use crate::space::{self, map_frame, rw, PAGE};
use crate::thread::{self, mail, post, Spawn};
use crate::{check_eq, check_err, fail, ok, Case};

pub const LABELS: &[Label] = &[
    Label::ArmVSpaceCleanData,
    Label::ArmVSpaceInvalidateData,
    Label::ArmVSpaceCleanInvalidateData,
    Label::ArmVSpaceUnifyInstruction,
    Label::ArmPageTableMap,
    Label::ArmPageTableUnmap,
    Label::ArmPageMap,
    Label::ArmPageUnmap,
    Label::ArmPageCleanData,
    Label::ArmPageInvalidateData,
    Label::ArmPageCleanInvalidateData,
    Label::ArmPageUnifyInstruction,
    Label::ArmPageGetAddress,
    Label::ArmAsidControlMakePool,
    Label::ArmAsidPoolAssign,
];

pub const CASES: &[Case] = &[
    Case {
        name: "vspace/map-needs-page-tables",
        run: needs_tables,
    },
    Case {
        name: "vspace/page-table-slot-occupied",
        run: pt_occupied,
    },
    Case {
        name: "vspace/page-table-already-mapped",
        run: pt_mapped,
    },
    Case {
        name: "vspace/page-table-map-errors",
        run: pt_errors,
    },
    Case {
        name: "vspace/page-table-unmap",
        run: pt_unmap,
    },
    Case {
        name: "vspace/page-table-unmap-needs-final-cap",
        run: pt_unmap_final,
    },
    Case {
        name: "vspace/map-unaligned",
        run: unaligned,
    },
    Case {
        name: "vspace/map-above-user-top",
        run: above_top,
    },
    Case {
        name: "vspace/map-invalid-vspace",
        run: invalid_vspace,
    },
    Case {
        name: "vspace/remap-into-other-vspace",
        run: remap_other_vspace,
    },
    Case {
        name: "vspace/remap-at-other-address",
        run: remap_other_address,
    },
    Case {
        name: "vspace/remap-same-address",
        run: remap_same,
    },
    Case {
        name: "vspace/map-truncated",
        run: map_truncated,
    },
    Case {
        name: "vspace/frame-illegal-operation",
        run: frame_illegal,
    },
    Case {
        name: "vspace/unmap-unmapped-frame",
        run: unmap_unmapped,
    },
    Case {
        name: "vspace/read-and-write-through-mappings",
        run: read_write,
    },
    Case {
        name: "vspace/unmap-leaves-no-stale-mapping",
        run: unmap_faults,
    },
    Case {
        name: "vspace/delete-frame-unmaps",
        run: delete_frame_faults,
    },
    Case {
        name: "vspace/delete-page-table-unmaps",
        run: delete_pt_faults,
    },
    Case {
        name: "vspace/read-only-mapping-faults-on-write",
        run: read_only,
    },
    Case {
        name: "vspace/cap-rights-limit-mapping",
        run: cap_rights,
    },
    Case {
        name: "vspace/execute-never",
        run: execute_never,
    },
    Case {
        name: "vspace/executable-mapping-runs",
        run: executable,
    },
    Case {
        name: "vspace/large-page",
        run: large_page,
    },
    Case {
        name: "vspace/map-device-frame",
        run: device_frame,
    },
    Case {
        name: "vspace/frame-zeroed-on-reuse",
        run: zeroed,
    },
    Case {
        name: "vspace/page-flush",
        run: page_flush,
    },
    Case {
        name: "vspace/page-flush-errors",
        run: page_flush_errors,
    },
    Case {
        name: "vspace/vspace-flush",
        run: vspace_flush,
    },
    Case {
        name: "vspace/vspace-flush-errors",
        run: vspace_flush_errors,
    },
    Case {
        name: "vspace/asid-pool-assign-errors",
        run: assign_errors,
    },
    Case {
        name: "vspace/asid-control-make-pool",
        run: make_pool,
    },
    Case {
        name: "vspace/asid-control-errors",
        run: make_pool_errors,
    },
];

/// Where cases map in fresh VSpaces: the second GiB.
const FRESH_VA: u64 = 0x4000_0000;
/// Where cases map in the root's VSpace: far from the image.
const ROOT_SCRATCH: u64 = 0x10_0000_0000;
/// Where cases map in a worker's VSpace: in the image's GiB, away from it.
const WORKER_SCRATCH: u64 = 0x1020_0000;
/// Bits a frame lookup has left when the level-1 entry is missing (one GiB)
/// or the level-2 entry is (two MiB): lookupPTSlot's ptBitsLeft.
const BITS_LEFT_L1: u64 = 30;
const BITS_LEFT_L2: u64 = 21;

fn attrs() -> VmAttributes {
    VmAttributes::DEFAULT
}

fn missing(bits: u64) -> Error {
    Error::FailedLookup {
        was_source: false,
        failure: LookupFailure::MissingCapability { bits_left: bits },
    }
}

fn needs_tables(cx: &mut Cx) -> Outcome {
    let vs = cx.vspace()?;
    let f = cx.frame()?;
    check_err!(f.map(vs, FRESH_VA, RW, attrs()), missing(BITS_LEFT_L1));
    let l2 = cx.page_table()?;
    ok!(l2.map(vs, FRESH_VA, attrs()));
    check_err!(f.map(vs, FRESH_VA, RW, attrs()), missing(BITS_LEFT_L2));
    let l3 = cx.page_table()?;
    ok!(l3.map(vs, FRESH_VA, attrs()));
    ok!(f.map(vs, FRESH_VA, RW, attrs()));
    Ok(())
}

/// A VSpace and its level-2 and level-3 tables.
type Tables = (Cap<VSpace>, Cap<PageTable>, Cap<PageTable>);

/// A fresh VSpace with both table levels at FRESH_VA.
fn tabled(cx: &mut Cx) -> Result<Tables, Failure> {
    let vs = cx.vspace()?;
    let l2 = cx.page_table()?;
    ok!(l2.map(vs, FRESH_VA, attrs()));
    let l3 = cx.page_table()?;
    ok!(l3.map(vs, FRESH_VA, attrs()));
    Ok((vs, l2, l3))
}

fn pt_occupied(cx: &mut Cx) -> Outcome {
    let (vs, _, _) = tabled(cx)?;
    let pt = cx.page_table()?;
    // Every level already has a table: nothing left to map a table into.
    check_err!(pt.map(vs, FRESH_VA, attrs()), Error::DeleteFirst);
    Ok(())
}

fn pt_mapped(cx: &mut Cx) -> Outcome {
    let (vs, l2, _) = tabled(cx)?;
    check_err!(
        l2.map(vs, FRESH_VA + (1 << BITS_LEFT_L1), attrs()),
        Error::InvalidCapability { index: 0 }
    );
    Ok(())
}

fn pt_errors(cx: &mut Cx) -> Outcome {
    let pt = cx.page_table()?;
    let ep = cx.endpoint()?;
    check_err!(
        pt.map(ep.cast(), FRESH_VA, attrs()),
        Error::InvalidCapability { index: 1 }
    );
    let unassigned: Cap<VSpace> = cx.obj(ObjectType::VSpace, 0)?;
    check_err!(
        pt.map(unassigned, FRESH_VA, attrs()),
        Error::InvalidCapability { index: 1 }
    );
    let vs = cx.vspace()?;
    check_err!(
        pt.map(vs, USER_TOP + 1, attrs()),
        Error::InvalidArgument { index: 0 }
    );
    let one_word = raw(Label::ArmPageTableMap, &[FRESH_VA]).cap(vs.cptr());
    check_err!(pt.invoke(&one_word), Error::TruncatedMessage);
    check_err!(
        pt.invoke(&raw(Label::ArmPageTableMap, &[FRESH_VA, 0])),
        Error::TruncatedMessage
    );
    check_err!(
        pt.invoke(&Invocation::new(Label::ArmPageMap)),
        Error::IllegalOperation
    );
    Ok(())
}

fn pt_unmap(cx: &mut Cx) -> Outcome {
    let (vs, _, l3) = tabled(cx)?;
    let f = cx.frame()?;
    ok!(f.map(vs, FRESH_VA, RW, attrs()));
    ok!(l3.unmap());
    // The frame under it went with it; its cap still says mapped, so a new
    // map at the same address needs a new table first.
    let g = cx.frame()?;
    check_err!(g.map(vs, FRESH_VA, RW, attrs()), missing(BITS_LEFT_L2));
    ok!(l3.unmap());
    ok!(l3.map(vs, FRESH_VA, attrs()));
    ok!(g.map(vs, FRESH_VA, RW, attrs()));
    Ok(())
}

fn pt_unmap_final(cx: &mut Cx) -> Outcome {
    let (_, _, l3) = tabled(cx)?;
    let copy = cx.copy(l3, ALL)?;
    check_err!(l3.unmap(), Error::RevokeFirst);
    ok!(cx.delete(copy));
    ok!(l3.unmap());
    Ok(())
}

fn unaligned(cx: &mut Cx) -> Outcome {
    let (vs, l2, _) = tabled(cx)?;
    let f = cx.frame()?;
    check_err!(
        f.map(vs, FRESH_VA + PAGE / 2, RW, attrs()),
        Error::AlignmentError
    );
    let big: Cap<LargePage> = cx.obj(ObjectType::LargePage, 0)?;
    check_err!(
        big.map(vs, FRESH_VA + PAGE, RW, attrs()),
        Error::AlignmentError
    );
    check_eq!(cx.identify(l2), cap_tag::PAGE_TABLE);
    Ok(())
}

fn above_top(cx: &mut Cx) -> Outcome {
    let vs = cx.vspace()?;
    let f = cx.frame()?;
    check_err!(
        f.map(vs, USER_TOP + 1, RW, attrs()),
        Error::InvalidArgument { index: 0 }
    );
    Ok(())
}

fn invalid_vspace(cx: &mut Cx) -> Outcome {
    let f = cx.frame()?;
    let ep = cx.endpoint()?;
    check_err!(
        f.map(ep.cast(), FRESH_VA, RW, attrs()),
        Error::InvalidCapability { index: 1 }
    );
    let unassigned: Cap<VSpace> = cx.obj(ObjectType::VSpace, 0)?;
    check_err!(
        f.map(unassigned, FRESH_VA, RW, attrs()),
        Error::InvalidCapability { index: 1 }
    );
    Ok(())
}

fn remap_other_vspace(cx: &mut Cx) -> Outcome {
    let (a, _, _) = tabled(cx)?;
    let (b, _, _) = tabled(cx)?;
    let f = cx.frame()?;
    ok!(f.map(a, FRESH_VA, RW, attrs()));
    check_err!(
        f.map(b, FRESH_VA, RW, attrs()),
        Error::InvalidCapability { index: 1 }
    );
    Ok(())
}

fn remap_other_address(cx: &mut Cx) -> Outcome {
    let (vs, _, _) = tabled(cx)?;
    let f = cx.frame()?;
    ok!(f.map(vs, FRESH_VA, RW, attrs()));
    check_err!(
        f.map(vs, FRESH_VA + PAGE, RW, attrs()),
        Error::InvalidArgument { index: 0 }
    );
    Ok(())
}

fn remap_same(cx: &mut Cx) -> Outcome {
    let (vs, _, _) = tabled(cx)?;
    let f = cx.frame()?;
    ok!(f.map(vs, FRESH_VA, RW, attrs()));
    // Same address space and address: new rights and attributes.
    ok!(f.map(vs, FRESH_VA, READ, VmAttributes::EXECUTE_NEVER));
    ok!(f.unmap());
    ok!(f.map(vs, FRESH_VA + PAGE, RW, attrs()));
    Ok(())
}

fn map_truncated(cx: &mut Cx) -> Outcome {
    let vs = cx.vspace()?;
    let f = cx.frame()?;
    let two = raw(Label::ArmPageMap, &[FRESH_VA, RW.0]).cap(vs.cptr());
    check_err!(f.invoke(&two), Error::TruncatedMessage);
    check_err!(
        f.invoke(&raw(Label::ArmPageMap, &[FRESH_VA, RW.0, 3])),
        Error::TruncatedMessage
    );
    Ok(())
}

fn frame_illegal(cx: &mut Cx) -> Outcome {
    let f = cx.frame()?;
    check_err!(
        f.invoke(&Invocation::new(Label::ArmPageTableMap)),
        Error::IllegalOperation
    );
    Ok(())
}

fn unmap_unmapped(cx: &mut Cx) -> Outcome {
    let f = cx.frame()?;
    ok!(f.unmap());
    let (vs, _, _) = tabled(cx)?;
    ok!(f.map(vs, FRESH_VA, RW, attrs()));
    ok!(f.unmap());
    ok!(f.unmap());
    Ok(())
}

/// Maps `frame` at `va` in the root's VSpace with `rights`.
fn map_root(cx: &mut Cx, frame: Cap<SmallPage>, va: u64, rights: CapRights) -> Outcome {
    let pool = cx.pool();
    let vs = cx.root_vspace();
    map_frame(cx, pool, vs, frame, va, rights, attrs())
}

fn peek(va: u64) -> u64 {
    // SAFETY: callers pass an address they have just mapped readable in the
    // root's VSpace; no Rust reference to that memory exists.
    unsafe { core::ptr::read_volatile(va as *const u64) }
}

fn poke(va: u64, v: u64) {
    // SAFETY: callers pass an address they have just mapped writable in the
    // root's VSpace; no Rust reference to that memory exists.
    unsafe { core::ptr::write_volatile(va as *mut u64, v) }
}

fn read_write(cx: &mut Cx) -> Outcome {
    let f = cx.frame()?;
    map_root(cx, f, ROOT_SCRATCH, RW)?;
    check_eq!(peek(ROOT_SCRATCH + 8), 0, "a fresh frame reads zero");
    poke(ROOT_SCRATCH + 8, 0xfeed);
    // A second mapping of the same frame (through a copy) sees the write.
    let alias = cx.copy(f, ALL)?;
    map_root(cx, alias, ROOT_SCRATCH + PAGE, RW)?;
    check_eq!(peek(ROOT_SCRATCH + PAGE + 8), 0xfeed, "through the alias");
    Ok(())
}

/// In a worker: reads WORKER_SCRATCH, waits on the notification in mail 0,
/// then reads it again.
fn read_twice(_: u64) {
    let (_, v) = instr::load(WORKER_SCRATCH);
    post(1, v);
    Cap::<Notification>::from_bits(mail(0)).wait();
    let (pc, v) = instr::load(WORKER_SCRATCH);
    post(2, pc);
    post(3, v);
}

/// The fault endpoint and reply of a reader, the notification that lets it
/// read again, and the table its scratch page is in.
type Reader = (Cap<Endpoint>, Cap<Reply>, Cap<Notification>, Cap<PageTable>);

/// Starts `read_twice` with `frame` (holding 0x77) mapped at the scratch
/// address of its worker; returns after the first read.
fn mapped_reader(cx: &mut Cx, frame: Cap<SmallPage>) -> Result<Reader, Failure> {
    let n = cx.notification()?;
    post(0, n.bits());
    let (ep, handler, r) = fault_ep(cx, 0x70)?;
    let t = thread::spawn(cx, Spawn::new(read_twice, 0).fault(handler).suspended())?;
    // The worker's table for the scratch address, made here so the case can
    // delete it.
    let pt = cx.page_table()?;
    ok!(pt.map(space::vspace(t.worker), WORKER_SCRATCH, attrs()));
    ok!(frame.map(space::vspace(t.worker), WORKER_SCRATCH, rw(), attrs()));
    let alias = cx.copy(frame, ALL)?;
    map_root(cx, alias, ROOT_SCRATCH, RW)?;
    poke(ROOT_SCRATCH, 0x77);
    ok!(t.tcb.resume());
    settle(cx)?;
    Ok((ep, r, n, pt))
}

fn expect_gone(ep: Cap<Endpoint>, r: Cap<Reply>, n: Cap<Notification>, fsc: u64) -> Outcome {
    check_eq!(mail(1), 0x77, "the first read");
    n.signal();
    let (f, _) = crate::cases::util::recv_fault(ep, r);
    let (_, addr, prefetch, fsr) = expect_vm(f)?;
    check_eq!(
        (addr, prefetch, fsr),
        (WORKER_SCRATCH, false, data_abort(false, fsc)),
        "the second read faults"
    );
    check_eq!(mail(3), 0, "the second read returned");
    Ok(())
}

fn unmap_faults(cx: &mut Cx) -> Outcome {
    let f = cx.frame()?;
    let (ep, r, n, _) = mapped_reader(cx, f)?;
    ok!(f.unmap());
    expect_gone(ep, r, n, esr::FSC_TRANSLATION_L3)
}

fn delete_frame_faults(cx: &mut Cx) -> Outcome {
    let f = cx.frame()?;
    let (ep, r, n, _) = mapped_reader(cx, f)?;
    ok!(cx.delete(f));
    expect_gone(ep, r, n, esr::FSC_TRANSLATION_L3)
}

fn delete_pt_faults(cx: &mut Cx) -> Outcome {
    let f = cx.frame()?;
    let (ep, r, n, pt) = mapped_reader(cx, f)?;
    ok!(cx.delete(pt));
    expect_gone(ep, r, n, esr::FSC_TRANSLATION_L2)
}

/// In a worker: writes to WORKER_SCRATCH.
fn write_scratch(_: u64) {
    let pc = instr::store(WORKER_SCRATCH, 0x99);
    post(1, pc);
}

/// Maps `frame` at the scratch address of a new thread's worker with
/// `rights`, starts `body` there with a fault handler, and returns the
/// fault it takes.
fn fault_in_worker(
    cx: &mut Cx,
    frame: Cap<SmallPage>,
    rights: CapRights,
    a: VmAttributes,
    body: fn(u64),
) -> Result<Fault, Failure> {
    let (ep, handler, r) = fault_ep(cx, 0x71)?;
    let t = thread::spawn(cx, Spawn::new(body, 0).fault(handler).suspended())?;
    let pool = cx.pool();
    map_frame(
        cx,
        pool,
        space::vspace(t.worker),
        frame,
        WORKER_SCRATCH,
        rights,
        a,
    )?;
    ok!(t.tcb.resume());
    Ok(crate::cases::util::recv_fault(ep, r).0)
}

fn read_only(cx: &mut Cx) -> Outcome {
    let f = cx.frame()?;
    let fault = fault_in_worker(cx, f, READ, attrs(), write_scratch)?;
    let (_, addr, prefetch, fsr) = expect_vm(fault)?;
    check_eq!(
        (addr, prefetch, fsr),
        (
            WORKER_SCRATCH,
            false,
            data_abort(true, esr::FSC_PERMISSION_L3)
        )
    );
    Ok(())
}

fn cap_rights(cx: &mut Cx) -> Outcome {
    let f = cx.frame()?;
    // The cap allows reading only: asking for read-write maps read-only.
    let ro = cx.copy(f, READ)?;
    let fault = fault_in_worker(cx, ro, RW, attrs(), write_scratch)?;
    let (_, addr, _, fsr) = expect_vm(fault)?;
    check_eq!(
        (addr, fsr),
        (WORKER_SCRATCH, data_abort(true, esr::FSC_PERMISSION_L3))
    );
    Ok(())
}

fn jump_scratch(_: u64) {
    instr::jump(WORKER_SCRATCH);
}

fn execute_never(cx: &mut Cx) -> Outcome {
    let f = cx.frame()?;
    let fault = fault_in_worker(
        cx,
        f,
        RW,
        VmAttributes::DEFAULT.union(VmAttributes::EXECUTE_NEVER),
        jump_scratch,
    )?;
    let (ip, addr, prefetch, fsr) = expect_vm(fault)?;
    let expected = esr::EC_IABT_LOWER << esr::EC_SHIFT | esr::IL | esr::FSC_PERMISSION_L3;
    check_eq!(
        (ip, addr, prefetch, fsr),
        (WORKER_SCRATCH, WORKER_SCRATCH, true, expected)
    );
    Ok(())
}

fn executable(cx: &mut Cx) -> Outcome {
    let f = cx.frame()?;
    // A zeroed page is executable code: 0x00000000 is an undefined
    // instruction, so the thread gets as far as a user exception there.
    let fault = fault_in_worker(cx, f, RW, attrs(), jump_scratch)?;
    match fault {
        Fault::UserException {
            fault_ip, esr: e, ..
        } => {
            check_eq!((fault_ip, e), (WORKER_SCRATCH, esr::UNKNOWN));
        }
        other => fail!("expected a user exception at the page got {other:?}"),
    }
    Ok(())
}

fn large_page(cx: &mut Cx) -> Outcome {
    let vs = cx.vspace()?;
    let l2 = cx.page_table()?;
    ok!(l2.map(vs, FRESH_VA, attrs()));
    let big: Cap<LargePage> = cx.obj(ObjectType::LargePage, 0)?;
    // One table level suffices for a 2 MiB page.
    ok!(big.map(vs, FRESH_VA, RW, attrs()));
    let addr = ok!(big.get_address());
    check_eq!(
        addr % (1 << septa_abi::LARGE_PAGE_BITS),
        0,
        "alignment of the physical address"
    );
    check_eq!(cx.identify(big), cap_tag::FRAME);
    // A page table where the large page is: the slot holds a page.
    let pt = cx.page_table()?;
    check_err!(pt.map(vs, FRESH_VA, attrs()), Error::DeleteFirst);
    Ok(())
}

fn device_frame(cx: &mut Cx) -> Outcome {
    let Some((dev, _, paddr)) = crate::env::device_untyped() else {
        fail!("BootInfo lists no device untyped of a page or more");
    };
    let (vs, _, _) = tabled(cx)?;
    let f: Cap<SmallPage> = cx.retype_from(dev, ObjectType::SmallPage, 0)?;
    // Device memory maps like RAM (uncached here); nothing reads it.
    ok!(f.map(vs, FRESH_VA, RW, VmAttributes::NONE));
    check_eq!(ok!(f.get_address()), paddr);
    Ok(())
}

fn zeroed(cx: &mut Cx) -> Outcome {
    let ut = cx.untyped(u64::from(septa_abi::PAGE_BITS))?;
    let slot = cx.slot()?;
    let root = cx.root_cnode();
    ok!(ut.retype(
        ObjectType::SmallPage,
        0,
        root,
        septa_sel4::CPtr::NULL,
        0,
        slot.bits(),
        1
    ));
    let f: Cap<SmallPage> = slot.cast();
    map_root(cx, f, ROOT_SCRATCH, RW)?;
    poke(ROOT_SCRATCH + 64, 0xdead_beef);
    ok!(root.revoke(ut.cptr(), ROOT_DEPTH));
    ok!(ut.retype(
        ObjectType::SmallPage,
        0,
        root,
        septa_sel4::CPtr::NULL,
        0,
        slot.bits(),
        1
    ));
    ok!(f.map(cx.root_vspace(), ROOT_SCRATCH, RW, attrs()));
    check_eq!(peek(ROOT_SCRATCH + 64), 0, "memory of a retyped frame");
    Ok(())
}

fn page_flush(cx: &mut Cx) -> Outcome {
    let f = cx.frame()?;
    map_root(cx, f, ROOT_SCRATCH, RW)?;
    poke(ROOT_SCRATCH, 1);
    ok!(f.clean_data(0, PAGE));
    ok!(f.invalidate_data(0, 64));
    ok!(f.clean_invalidate_data(64, 128));
    ok!(f.unify_instruction(0, PAGE));
    check_eq!(
        peek(ROOT_SCRATCH),
        1,
        "contents after clean and invalidate of other lines"
    );
    Ok(())
}

fn page_flush_errors(cx: &mut Cx) -> Outcome {
    let f = cx.frame()?;
    check_err!(f.clean_data(0, PAGE), Error::IllegalOperation);
    map_root(cx, f, ROOT_SCRATCH, RW)?;
    check_err!(f.clean_data(64, 64), Error::InvalidArgument { index: 1 });
    check_err!(
        f.clean_data(PAGE, PAGE + 1),
        Error::InvalidArgument { index: 0 }
    );
    check_err!(
        f.clean_data(0, PAGE + 1),
        Error::InvalidArgument { index: 0 }
    );
    check_err!(
        f.invoke(&raw(Label::ArmPageCleanData, &[0])),
        Error::TruncatedMessage
    );
    Ok(())
}

fn vspace_flush(cx: &mut Cx) -> Outcome {
    let (vs, _, _) = tabled(cx)?;
    let f = cx.frame()?;
    ok!(f.map(vs, FRESH_VA, RW, attrs()));
    ok!(vs.clean_data(FRESH_VA, FRESH_VA + PAGE));
    ok!(vs.invalidate_data(FRESH_VA, FRESH_VA + 64));
    ok!(vs.clean_invalidate_data(FRESH_VA + 64, FRESH_VA + 128));
    ok!(vs.unify_instruction(FRESH_VA, FRESH_VA + PAGE));
    // Nothing mapped there: nothing to do, no error.
    ok!(vs.clean_data(FRESH_VA + 16 * PAGE, FRESH_VA + 17 * PAGE));
    Ok(())
}

fn vspace_flush_errors(cx: &mut Cx) -> Outcome {
    let (vs, _, _) = tabled(cx)?;
    let f = cx.frame()?;
    ok!(f.map(vs, FRESH_VA, RW, attrs()));
    check_err!(
        vs.clean_data(FRESH_VA + 64, FRESH_VA + 64),
        Error::InvalidArgument { index: 1 }
    );
    check_err!(
        vs.clean_data(USER_TOP - 64, USER_TOP + 1),
        Error::IllegalOperation
    );
    // The range may not leave the page that holds its start.
    check_err!(
        vs.clean_data(FRESH_VA + 64, FRESH_VA + PAGE + 1),
        Error::RangeError {
            min: FRESH_VA + 64,
            max: FRESH_VA + PAGE - 1
        }
    );
    let unassigned: Cap<VSpace> = cx.obj(ObjectType::VSpace, 0)?;
    check_err!(
        unassigned.clean_data(FRESH_VA, FRESH_VA + 64),
        Error::InvalidCapability { index: 0 }
    );
    check_err!(
        vs.invoke(&raw(Label::ArmVSpaceCleanData, &[FRESH_VA])),
        Error::TruncatedMessage
    );
    check_err!(
        vs.invoke(&raw(Label::ArmPageMap, &[0, 0, 0])),
        Error::IllegalOperation
    );
    Ok(())
}

fn assign_errors(cx: &mut Cx) -> Outcome {
    let vs = cx.vspace()?;
    let pool = cx.asid_pool();
    check_err!(pool.assign(vs), Error::InvalidCapability { index: 1 });
    let ep = cx.endpoint()?;
    check_err!(
        pool.assign(ep.cast()),
        Error::InvalidCapability { index: 1 }
    );
    check_err!(
        pool.invoke(&Invocation::new(Label::ArmAsidPoolAssign)),
        Error::TruncatedMessage
    );
    check_err!(
        pool.invoke(&Invocation::new(Label::ArmAsidControlMakePool)),
        Error::IllegalOperation
    );
    Ok(())
}

fn make_pool(cx: &mut Cx) -> Outcome {
    let ut = cx.untyped(u64::from(septa_abi::ASID_POOL_SIZE_BITS))?;
    let slot = cx.slot()?;
    ok!(cx
        .asid_control()
        .make_pool(ut, cx.root_cnode(), slot, ROOT_DEPTH));
    let pool: Cap<AsidPool> = slot.cast();
    check_eq!(cx.identify(pool), cap_tag::ASID_POOL);
    let vs: Cap<VSpace> = cx.obj(ObjectType::VSpace, 0)?;
    ok!(pool.assign(vs));
    let l2 = cx.page_table()?;
    ok!(l2.map(vs, FRESH_VA, attrs()));
    // The untyped is used up by the pool.
    let s2 = cx.slot()?;
    check_err!(
        ut.retype(
            ObjectType::Endpoint,
            0,
            cx.root_cnode(),
            septa_sel4::CPtr::NULL,
            0,
            s2.bits(),
            1
        ),
        Error::NotEnoughMemory { available: 0 }
    );
    Ok(())
}

fn make_pool_errors(cx: &mut Cx) -> Outcome {
    let control = cx.asid_control();
    let root = cx.root_cnode();
    let slot = cx.slot()?;
    let big = cx.untyped(u64::from(septa_abi::ASID_POOL_SIZE_BITS) + 1)?;
    check_err!(
        control.make_pool(big, root, slot, ROOT_DEPTH),
        Error::InvalidCapability { index: 1 }
    );
    let ep = cx.endpoint()?;
    check_err!(
        control.make_pool(ep.cast(), root, slot, ROOT_DEPTH),
        Error::InvalidCapability { index: 1 }
    );
    let used = cx.untyped(u64::from(septa_abi::ASID_POOL_SIZE_BITS))?;
    let _child: Cap<Endpoint> = cx.retype_from(used, ObjectType::Endpoint, 0)?;
    check_err!(
        control.make_pool(used, root, slot, ROOT_DEPTH),
        Error::RevokeFirst
    );
    let fresh = cx.untyped(u64::from(septa_abi::ASID_POOL_SIZE_BITS))?;
    check_err!(
        control.make_pool(fresh, root, ep.cptr(), ROOT_DEPTH),
        Error::DeleteFirst
    );
    let one_cap = raw(Label::ArmAsidControlMakePool, &[slot.bits(), 64]).cap(fresh.cptr());
    check_err!(control.invoke(&one_cap), Error::TruncatedMessage);
    let one_word = raw(Label::ArmAsidControlMakePool, &[slot.bits()])
        .cap(fresh.cptr())
        .cap(root.cptr());
    check_err!(control.invoke(&one_word), Error::TruncatedMessage);
    check_err!(
        control.invoke(&Invocation::new(Label::ArmAsidPoolAssign)),
        Error::IllegalOperation
    );
    Ok(())
}
