//! CNode invocations (src/object/cnode.c, decodeCNodeInvocation) and
//! capability addressing (src/kernel/cspace.c, resolveAddressBits):
//! copy, mint, move, mutate, rotate, delete, revoke, cancel badged sends,
//! with every lookup failure and its details.

use septa_abi::kernel_config::cap_tag;
use septa_abi::{CNodeCapData, Label, MessageInfo, WORD_BITS};
use septa_sel4::cap::cap_type::*;
use septa_sel4::invocation::Invocation;
use septa_sel4::{CPtr, Cap, Error, LookupFailure};

use crate::cases::untyped::root_guard_bits;
use crate::cases::util::{raw, settle, ALL, READ, RW};
use crate::env::{Cx, ROOT_DEPTH};
use crate::report::{Failure, Outcome};
use crate::thread::{self, mail, post, Spawn};
use crate::{check, check_eq, check_err, ok, Case};

pub const LABELS: &[Label] = &[
    Label::CNodeRevoke,
    Label::CNodeDelete,
    Label::CNodeCancelBadgedSends,
    Label::CNodeCopy,
    Label::CNodeMint,
    Label::CNodeMove,
    Label::CNodeMutate,
    Label::CNodeRotate,
];

pub const CASES: &[Case] = &[
    Case {
        name: "cnode/copy",
        run: copy,
    },
    Case {
        name: "cnode/copy-masks-rights",
        run: copy_masks_rights,
    },
    Case {
        name: "cnode/copy-cannot-add-rights",
        run: copy_no_gain,
    },
    Case {
        name: "cnode/copy-keeps-badge",
        run: copy_keeps_badge,
    },
    Case {
        name: "cnode/copy-destination-occupied",
        run: copy_dest_occupied,
    },
    Case {
        name: "cnode/copy-source-empty",
        run: copy_src_empty,
    },
    Case {
        name: "cnode/copy-source-root-invalid",
        run: copy_src_root_invalid,
    },
    Case {
        name: "cnode/copy-truncated",
        run: copy_truncated,
    },
    Case {
        name: "cnode/copy-irq-control-is-invalid",
        run: copy_irq_control,
    },
    Case {
        name: "cnode/copy-untyped-with-children",
        run: copy_untyped_children,
    },
    Case {
        name: "cnode/copy-unassigned-vspace",
        run: copy_unassigned_vspace,
    },
    Case {
        name: "cnode/mint-badge",
        run: mint_badge,
    },
    Case {
        name: "cnode/mint-rebadge-is-invalid",
        run: mint_rebadge,
    },
    Case {
        name: "cnode/mint-truncated",
        run: mint_truncated,
    },
    Case {
        name: "cnode/mint-cnode-guard",
        run: mint_cnode_guard,
    },
    Case {
        name: "cnode/mint-cnode-guard-too-large",
        run: mint_guard_too_large,
    },
    Case {
        name: "cnode/move",
        run: move_cap,
    },
    Case {
        name: "cnode/move-source-empty",
        run: move_src_empty,
    },
    Case {
        name: "cnode/mutate-keeps-other-caps",
        run: mutate_tcb,
    },
    Case {
        name: "cnode/mutate-badge-is-invalid",
        run: mutate_badge,
    },
    Case {
        name: "cnode/mutate-cnode-guard",
        run: mutate_guard,
    },
    Case {
        name: "cnode/mutate-truncated",
        run: mutate_truncated,
    },
    Case {
        name: "cnode/rotate",
        run: rotate,
    },
    Case {
        name: "cnode/rotate-swap",
        run: rotate_swap,
    },
    Case {
        name: "cnode/rotate-pivot-is-source",
        run: rotate_pivot_same,
    },
    Case {
        name: "cnode/rotate-destination-occupied",
        run: rotate_dest_occupied,
    },
    Case {
        name: "cnode/rotate-source-empty",
        run: rotate_src_empty,
    },
    Case {
        name: "cnode/rotate-pivot-empty",
        run: rotate_pivot_empty,
    },
    Case {
        name: "cnode/rotate-truncated",
        run: rotate_truncated,
    },
    Case {
        name: "cnode/delete",
        run: delete,
    },
    Case {
        name: "cnode/delete-empty-slot",
        run: delete_empty,
    },
    Case {
        name: "cnode/delete-keeps-copies",
        run: delete_keeps_copies,
    },
    Case {
        name: "cnode/deleting-a-cnode-deletes-its-caps",
        run: delete_cnode,
    },
    Case {
        name: "cnode/revoke-deletes-derived",
        run: revoke_derived,
    },
    Case {
        name: "cnode/revoke-badged-only-its-copies",
        run: revoke_badged,
    },
    Case {
        name: "cnode/revoke-deletes-a-waiting-thread",
        run: revoke_thread,
    },
    Case {
        name: "cnode/illegal-operation",
        run: illegal,
    },
    Case {
        name: "cnode/truncated",
        run: truncated,
    },
    Case {
        name: "cnode/depth-out-of-range",
        run: depth_range,
    },
    Case {
        name: "cnode/guard-mismatch",
        run: guard_mismatch,
    },
    Case {
        name: "cnode/depth-mismatch-short",
        run: depth_short,
    },
    Case {
        name: "cnode/two-level-cspace",
        run: two_level,
    },
    Case {
        name: "cnode/depth-mismatch-bits-remaining",
        run: depth_remaining,
    },
    Case {
        name: "cnode/guard-value-mismatch",
        run: guard_value,
    },
    Case {
        name: "cnode/cancel-badged-sends",
        run: cancel_badged,
    },
    Case {
        name: "cnode/cancel-badged-sends-needs-rights",
        run: cancel_rights,
    },
];

fn root(cx: &Cx) -> Cap<CNode> {
    cx.root_cnode()
}

/// FailedLookup with a missing capability after `bits` bits.
fn missing(was_source: bool, bits: u64) -> Error {
    Error::FailedLookup {
        was_source,
        failure: LookupFailure::MissingCapability { bits_left: bits },
    }
}

fn copy(cx: &mut Cx) -> Outcome {
    let ep = cx.endpoint()?;
    let c = cx.copy(ep, ALL)?;
    check_eq!(cx.identify(c), cap_tag::ENDPOINT);
    check_eq!(cx.identify(ep), cap_tag::ENDPOINT, "the source");
    Ok(())
}

fn copy_masks_rights(cx: &mut Cx) -> Outcome {
    let n = cx.notification()?;
    let badged = cx.mint(n, ALL, 1)?;
    // Without Write, invoking the notification is refused
    // (decodeInvocation: read-only notification, InvalidCapability 0).
    let ro = cx.copy(badged, READ)?;
    check_err!(
        ro.invoke(&Invocation::new(Label::InvalidInvocation)),
        Error::InvalidCapability { index: 0 }
    );
    // With Write it signals.
    ok!(badged.invoke(&Invocation::new(Label::InvalidInvocation)));
    check_eq!(
        n.poll(),
        1,
        "badge after signalling with the write-capable copy"
    );
    Ok(())
}

fn copy_no_gain(cx: &mut Cx) -> Outcome {
    let ep = cx.endpoint()?;
    let ro = cx.copy(ep, READ)?;
    // Rights only ever shrink: a copy of a read-only cap with all rights
    // is still read-only.
    let again = cx.copy(ro, ALL)?;
    check_err!(
        again.invoke(&Invocation::new(Label::InvalidInvocation)),
        Error::InvalidCapability { index: 0 }
    );
    Ok(())
}

fn copy_keeps_badge(cx: &mut Cx) -> Outcome {
    let n = cx.notification()?;
    let badged = cx.mint(n, ALL, 0x40)?;
    let c = cx.copy(badged, ALL)?;
    c.signal();
    check_eq!(n.poll(), 0x40);
    Ok(())
}

fn copy_dest_occupied(cx: &mut Cx) -> Outcome {
    let a = cx.endpoint()?;
    let b = cx.endpoint()?;
    check_err!(
        root(cx).copy(b.cptr(), ROOT_DEPTH, root(cx), a.cptr(), ROOT_DEPTH, ALL),
        Error::DeleteFirst
    );
    Ok(())
}

fn copy_src_empty(cx: &mut Cx) -> Outcome {
    let src = cx.slot()?;
    let dst = cx.slot()?;
    check_err!(
        root(cx).copy(dst, ROOT_DEPTH, root(cx), src, ROOT_DEPTH, ALL),
        missing(true, u64::from(ROOT_DEPTH))
    );
    Ok(())
}

fn copy_src_root_invalid(cx: &mut Cx) -> Outcome {
    let ep = cx.endpoint()?;
    let dst = cx.slot()?;
    check_err!(
        root(cx).copy(dst, ROOT_DEPTH, ep.cast(), ep.cptr(), ROOT_DEPTH, ALL),
        Error::FailedLookup {
            was_source: true,
            failure: LookupFailure::InvalidRoot
        }
    );
    Ok(())
}

fn copy_truncated(cx: &mut Cx) -> Outcome {
    let ep = cx.endpoint()?;
    let dst = cx.slot()?;
    let words = [
        dst.bits(),
        u64::from(ROOT_DEPTH),
        ep.bits(),
        u64::from(ROOT_DEPTH),
    ];
    let inv = raw(Label::CNodeCopy, &words).cap(root(cx).cptr());
    check_err!(root(cx).invoke(&inv), Error::TruncatedMessage);
    // Enough words, no source root capability.
    let inv = raw(Label::CNodeCopy, &[dst.bits(), 64, ep.bits(), 64, ALL.0]);
    check_err!(root(cx).invoke(&inv), Error::TruncatedMessage);
    Ok(())
}

fn copy_irq_control(cx: &mut Cx) -> Outcome {
    // deriveCap of IRQControl yields the null cap: IllegalOperation.
    let dst = cx.slot()?;
    let src = cx.irq_control().cptr();
    check_err!(
        root(cx).copy(dst, ROOT_DEPTH, root(cx), src, ROOT_DEPTH, ALL),
        Error::IllegalOperation
    );
    Ok(())
}

fn copy_untyped_children(cx: &mut Cx) -> Outcome {
    let ut = cx.untyped(12)?;
    let _ep: Cap<Endpoint> = cx.retype_from(ut, septa_abi::ObjectType::Endpoint, 0)?;
    let dst = cx.slot()?;
    check_err!(
        root(cx).copy(dst, ROOT_DEPTH, root(cx), ut.cptr(), ROOT_DEPTH, ALL),
        Error::RevokeFirst
    );
    Ok(())
}

fn copy_unassigned_vspace(cx: &mut Cx) -> Outcome {
    // Arch_deriveCap refuses VSpace and page table caps that are not mapped.
    let vs: Cap<VSpace> = cx.obj(septa_abi::ObjectType::VSpace, 0)?;
    let pt = cx.page_table()?;
    let dst = cx.slot()?;
    check_err!(
        root(cx).copy(dst, ROOT_DEPTH, root(cx), vs.cptr(), ROOT_DEPTH, ALL),
        Error::IllegalOperation
    );
    check_err!(
        root(cx).copy(dst, ROOT_DEPTH, root(cx), pt.cptr(), ROOT_DEPTH, ALL),
        Error::IllegalOperation
    );
    Ok(())
}

fn mint_badge(cx: &mut Cx) -> Outcome {
    let n = cx.notification()?;
    let a = cx.mint(n, ALL, 0x1)?;
    let b = cx.mint(n, ALL, 0x100)?;
    a.signal();
    b.signal();
    // Signals of different badges accumulate by OR.
    check_eq!(n.poll(), 0x101);
    check_eq!(n.poll(), 0, "after the badge was taken");
    Ok(())
}

fn mint_rebadge(cx: &mut Cx) -> Outcome {
    let n = cx.notification()?;
    let a = cx.mint(n, ALL, 0x1)?;
    let dst = cx.slot()?;
    // updateCapData: a badged capability cannot be given another badge.
    check_err!(
        root(cx).mint(dst, ROOT_DEPTH, root(cx), a.cptr(), ROOT_DEPTH, ALL, 0x2),
        Error::IllegalOperation
    );
    let ep = cx.endpoint()?;
    let e = cx.mint(ep, ALL, 0x1)?;
    check_err!(
        root(cx).mint(dst, ROOT_DEPTH, root(cx), e.cptr(), ROOT_DEPTH, ALL, 0x2),
        Error::IllegalOperation
    );
    Ok(())
}

fn mint_truncated(cx: &mut Cx) -> Outcome {
    let ep = cx.endpoint()?;
    let dst = cx.slot()?;
    let words = [dst.bits(), 64, ep.bits(), 64, ALL.0];
    let inv = raw(Label::CNodeMint, &words).cap(root(cx).cptr());
    check_err!(root(cx).invoke(&inv), Error::TruncatedMessage);
    Ok(())
}

/// The root CNode capability minted with a smaller guard, so that the last
/// `child_radix` bits of a 64-bit address pick a slot in a CNode found in
/// the root at the address's upper bits.
fn narrowed_root(cx: &mut Cx, guard: u64, child_radix: u64) -> Result<Cap<CNode>, Failure> {
    let guard_bits = root_guard_bits() - child_radix;
    cx.mint(root(cx), ALL, CNodeCapData::new(guard, guard_bits).0)
}

fn mint_cnode_guard(cx: &mut Cx) -> Outcome {
    let radix = 4;
    let child = cx.cnode(radix)?;
    let wide = narrowed_root(cx, 0, radix)?;
    check_eq!(cx.identify(wide), cap_tag::CNODE);
    let ep = cx.endpoint()?;
    // Through the narrowed root, child's slot 3 is (child << radix) | 3.
    let addr = CPtr::from_bits(child.bits() << radix | 3);
    ok!(wide.copy(addr, ROOT_DEPTH, root(cx), ep.cptr(), ROOT_DEPTH, ALL));
    let back = cx.slot()?;
    ok!(root(cx).move_(back, ROOT_DEPTH, wide, addr, ROOT_DEPTH));
    check_eq!(
        cx.identify(Cap::<Endpoint>::from_cptr(back)),
        cap_tag::ENDPOINT
    );
    Ok(())
}

fn mint_guard_too_large(cx: &mut Cx) -> Outcome {
    let dst = cx.slot()?;
    // guard size + radix > word size makes the minted cap null.
    let data = CNodeCapData::new(0, root_guard_bits() + 1);
    check_err!(
        root(cx).mint(
            dst,
            ROOT_DEPTH,
            root(cx),
            root(cx).cptr(),
            ROOT_DEPTH,
            ALL,
            data.0
        ),
        Error::IllegalOperation
    );
    Ok(())
}

fn move_cap(cx: &mut Cx) -> Outcome {
    let ep = cx.endpoint()?;
    let dst = cx.slot()?;
    ok!(root(cx).move_(dst, ROOT_DEPTH, root(cx), ep.cptr(), ROOT_DEPTH));
    check_eq!(cx.identify(ep), cap_tag::NULL, "the source after the move");
    check_eq!(
        cx.identify(Cap::<Endpoint>::from_cptr(dst)),
        cap_tag::ENDPOINT
    );
    Ok(())
}

fn move_src_empty(cx: &mut Cx) -> Outcome {
    let src = cx.slot()?;
    let dst = cx.slot()?;
    check_err!(
        root(cx).move_(dst, ROOT_DEPTH, root(cx), src, ROOT_DEPTH),
        missing(true, 64)
    );
    Ok(())
}

fn mutate_tcb(cx: &mut Cx) -> Outcome {
    // updateCapData leaves most caps as they are: Mutate is a Move.
    let t = cx.tcb()?;
    let dst = cx.slot()?;
    ok!(root(cx).mutate(dst, ROOT_DEPTH, root(cx), t.cptr(), ROOT_DEPTH, 0x1234));
    check_eq!(cx.identify(t), cap_tag::NULL);
    check_eq!(cx.identify(Cap::<Tcb>::from_cptr(dst)), cap_tag::THREAD);
    Ok(())
}

fn mutate_badge(cx: &mut Cx) -> Outcome {
    // Mutate preserves badges: an endpoint or notification cap becomes null,
    // so the invocation is refused, with any data.
    let n = cx.notification()?;
    let e = cx.endpoint()?;
    let dst = cx.slot()?;
    for (src, data) in [(n.cptr(), 5), (e.cptr(), 5), (e.cptr(), 0)] {
        check_err!(
            root(cx).mutate(dst, ROOT_DEPTH, root(cx), src, ROOT_DEPTH, data),
            Error::IllegalOperation
        );
    }
    check_eq!(cx.identify(e), cap_tag::ENDPOINT, "the source stays");
    Ok(())
}

fn mutate_guard(cx: &mut Cx) -> Outcome {
    let radix = 4;
    let child = cx.cnode(radix)?;
    let dst = cx.slot()?;
    // A guard that fills the word: the child's slots are then reachable with
    // a 64-bit address whose upper 60 bits are zero.
    let data = CNodeCapData::new(0, u64::from(WORD_BITS) - radix);
    ok!(root(cx).mutate(dst, ROOT_DEPTH, root(cx), child.cptr(), ROOT_DEPTH, data.0));
    let guarded: Cap<CNode> = dst.cast();
    let ep = cx.endpoint()?;
    ok!(guarded.copy(
        CPtr::from_bits(2),
        ROOT_DEPTH,
        root(cx),
        ep.cptr(),
        ROOT_DEPTH,
        ALL
    ));
    ok!(guarded.delete(CPtr::from_bits(2), ROOT_DEPTH));
    let too_big = CNodeCapData::new(0, u64::from(WORD_BITS) - radix + 1);
    let dst2 = cx.slot()?;
    check_err!(
        root(cx).mutate(dst2, ROOT_DEPTH, root(cx), dst, ROOT_DEPTH, too_big.0),
        Error::IllegalOperation
    );
    Ok(())
}

fn mutate_truncated(cx: &mut Cx) -> Outcome {
    let t = cx.tcb()?;
    let dst = cx.slot()?;
    let inv = raw(Label::CNodeMutate, &[dst.bits(), 64, t.bits(), 64]).cap(root(cx).cptr());
    check_err!(root(cx).invoke(&inv), Error::TruncatedMessage);
    Ok(())
}

/// Rotate `src` to `pivot` and `pivot` to `dest`, badges 0.
fn rotate3(cx: &Cx, dest: CPtr, pivot: CPtr, src: CPtr) -> Result<(), Error> {
    let r = root(cx);
    r.rotate(
        dest, ROOT_DEPTH, 0, r, pivot, ROOT_DEPTH, 0, r, src, ROOT_DEPTH,
    )
}

fn rotate(cx: &mut Cx) -> Outcome {
    // Caps that updateCapData leaves alone (endpoint and notification caps
    // would become null under Rotate's preserving update).
    let src = cx.tcb()?;
    let pivot = cx.reply()?;
    let dest = cx.slot()?;
    ok!(rotate3(cx, dest, pivot.cptr(), src.cptr()));
    check_eq!(cx.identify(src), cap_tag::NULL, "source slot");
    check_eq!(cx.identify(pivot), cap_tag::THREAD, "pivot slot");
    check_eq!(
        cx.identify(Cap::<Reply>::from_cptr(dest)),
        cap_tag::REPLY,
        "destination slot"
    );
    Ok(())
}

fn rotate_swap(cx: &mut Cx) -> Outcome {
    let a = cx.tcb()?;
    let b = cx.reply()?;
    // Destination = source: the two caps swap.
    ok!(rotate3(cx, a.cptr(), b.cptr(), a.cptr()));
    check_eq!(cx.identify(a), cap_tag::REPLY);
    check_eq!(cx.identify(b), cap_tag::THREAD);
    Ok(())
}

fn rotate_pivot_same(cx: &mut Cx) -> Outcome {
    let a = cx.tcb()?;
    let dest = cx.slot()?;
    check_err!(
        rotate3(cx, dest, a.cptr(), a.cptr()),
        Error::IllegalOperation
    );
    let b = cx.reply()?;
    check_err!(
        rotate3(cx, b.cptr(), b.cptr(), a.cptr()),
        Error::IllegalOperation
    );
    Ok(())
}

fn rotate_dest_occupied(cx: &mut Cx) -> Outcome {
    let a = cx.tcb()?;
    let b = cx.reply()?;
    let c = cx.tcb()?;
    check_err!(
        rotate3(cx, c.cptr(), b.cptr(), a.cptr()),
        Error::DeleteFirst
    );
    Ok(())
}

fn rotate_src_empty(cx: &mut Cx) -> Outcome {
    let src = cx.slot()?;
    let b = cx.reply()?;
    let dest = cx.slot()?;
    check_err!(rotate3(cx, dest, b.cptr(), src), missing(true, 64));
    Ok(())
}

fn rotate_pivot_empty(cx: &mut Cx) -> Outcome {
    let a = cx.tcb()?;
    let pivot = cx.slot()?;
    let dest = cx.slot()?;
    check_err!(rotate3(cx, dest, pivot, a.cptr()), missing(false, 64));
    Ok(())
}

fn rotate_truncated(cx: &mut Cx) -> Outcome {
    let r = root(cx).cptr();
    let words = [1, 64, 0, 2, 64, 0, 3];
    let inv = raw(Label::CNodeRotate, &words).cap(r).cap(r);
    check_err!(root(cx).invoke(&inv), Error::TruncatedMessage);
    let inv = raw(Label::CNodeRotate, &[1, 64, 0, 2, 64, 0, 3, 64]).cap(r);
    check_err!(root(cx).invoke(&inv), Error::TruncatedMessage);
    Ok(())
}

fn delete(cx: &mut Cx) -> Outcome {
    let ep = cx.endpoint()?;
    ok!(cx.delete(ep));
    check_eq!(cx.identify(ep), cap_tag::NULL);
    Ok(())
}

fn delete_empty(cx: &mut Cx) -> Outcome {
    let s = cx.slot()?;
    ok!(root(cx).delete(s, ROOT_DEPTH));
    Ok(())
}

fn delete_keeps_copies(cx: &mut Cx) -> Outcome {
    let n = cx.notification()?;
    let badged = cx.mint(n, ALL, 2)?;
    ok!(cx.delete(n));
    // The object lives on while a capability to it does.
    badged.signal();
    check_eq!(badged.poll(), 2);
    Ok(())
}

fn delete_cnode(cx: &mut Cx) -> Outcome {
    // An IRQ handler whose only capability lives in another CNode: the IRQ
    // stays taken until that CNode goes, and with it the handler.
    let irq = 142;
    let radix = 2;
    let node = cx.cnode(radix)?;
    ok!(cx
        .irq_control()
        .get(irq, node, CPtr::from_bits(1), radix as u8));
    let s = cx.slot()?;
    check_err!(
        cx.irq_control().get(irq, root(cx), s, ROOT_DEPTH),
        Error::RevokeFirst
    );
    ok!(cx.delete(node));
    ok!(cx.irq_control().get(irq, root(cx), s, ROOT_DEPTH));
    Ok(())
}

fn revoke_derived(cx: &mut Cx) -> Outcome {
    let ep = cx.endpoint()?;
    let c = cx.copy(ep, ALL)?;
    let m = cx.mint(ep, ALL, 3)?;
    let m2 = cx.copy(m, ALL)?;
    ok!(root(cx).revoke(ep.cptr(), ROOT_DEPTH));
    check_eq!(cx.identify(ep), cap_tag::ENDPOINT, "the revoked cap itself");
    for (what, x) in [("copy", c), ("mint", m), ("copy of the mint", m2)] {
        check_eq!(cx.identify(x), cap_tag::NULL, what);
    }
    Ok(())
}

fn revoke_badged(cx: &mut Cx) -> Outcome {
    let ep = cx.endpoint()?;
    let c = cx.copy(ep, ALL)?;
    let m = cx.mint(ep, ALL, 3)?;
    let m2 = cx.copy(m, ALL)?;
    let other = cx.mint(ep, ALL, 4)?;
    ok!(root(cx).revoke(m.cptr(), ROOT_DEPTH));
    check_eq!(cx.identify(m2), cap_tag::NULL, "copy of the revoked mint");
    for (what, x) in [
        ("original", ep),
        ("copy", c),
        ("revoked mint", m),
        ("other mint", other),
    ] {
        check_eq!(cx.identify(x), cap_tag::ENDPOINT, what);
    }
    Ok(())
}

fn revoke_thread(cx: &mut Cx) -> Outcome {
    fn waiter(_: u64) {
        let n: Cap<Notification> = Cap::from_bits(mail(0));
        n.wait();
        post(1, 1);
    }
    let n = cx.notification()?;
    let badged = cx.mint(n, ALL, 0x8)?;
    post(0, n.bits());
    // The thread's TCB comes from its own untyped.
    let ut = cx.untyped(16)?;
    let t = thread::spawn(cx, Spawn::new(waiter, 0).pool(ut))?;
    settle(cx)?;
    ok!(root(cx).revoke(ut.cptr(), ROOT_DEPTH));
    check_eq!(cx.identify(t.tcb), cap_tag::NULL, "the TCB cap");
    // Nobody waits any more: the signal stays pending.
    badged.signal();
    settle(cx)?;
    check_eq!(mail(1), 0, "the deleted thread ran");
    check_eq!(n.poll(), 0x8, "the pending signal");
    Ok(())
}

fn illegal(cx: &mut Cx) -> Outcome {
    // Labels outside CNodeRevoke..CNodeRotate.
    let inv = raw(Label::UntypedRetype, &[1, 64]);
    check_err!(root(cx).invoke(&inv), Error::IllegalOperation);
    let inv = raw(Label::IrqIssueIrqHandler, &[1, 64]);
    check_err!(root(cx).invoke(&inv), Error::IllegalOperation);
    Ok(())
}

fn truncated(cx: &mut Cx) -> Outcome {
    let s = cx.slot()?;
    check_err!(
        root(cx).invoke(&raw(Label::CNodeDelete, &[s.bits()])),
        Error::TruncatedMessage
    );
    Ok(())
}

fn depth_range(cx: &mut Cx) -> Outcome {
    let s = cx.slot()?;
    let range = Error::RangeError {
        min: 1,
        max: u64::from(WORD_BITS),
    };
    let inv = raw(Label::CNodeDelete, &[s.bits(), 0]);
    check_err!(root(cx).invoke(&inv), range);
    let inv = raw(Label::CNodeDelete, &[s.bits(), u64::from(WORD_BITS) + 1]);
    check_err!(root(cx).invoke(&inv), range);
    Ok(())
}

fn guard_mismatch(cx: &mut Cx) -> Outcome {
    // Any bit set in the 47-bit guard of the root CNode fails the guard.
    let bad = CPtr::from_bits(1 << 63 | 5);
    check_err!(
        root(cx).delete(bad, ROOT_DEPTH),
        Error::FailedLookup {
            was_source: false,
            failure: LookupFailure::GuardMismatch {
                bits_left: 64,
                guard_found: 0,
                bits_found: root_guard_bits()
            }
        }
    );
    Ok(())
}

fn depth_short(cx: &mut Cx) -> Outcome {
    // 50 bits cover the guard but not the 17 radix bits.
    let depth = 50;
    check_err!(
        root(cx).delete(CPtr::from_bits(5), depth),
        Error::FailedLookup {
            was_source: false,
            failure: LookupFailure::DepthMismatch {
                bits_left: 50,
                bits_found: 64
            }
        }
    );
    Ok(())
}

fn two_level(cx: &mut Cx) -> Outcome {
    let radix = 4;
    let child = cx.cnode(radix)?;
    let wide = narrowed_root(cx, 0, radix)?;
    let ep = cx.endpoint()?;
    let addr = CPtr::from_bits(child.bits() << radix | 7);
    ok!(wide.copy(addr, ROOT_DEPTH, root(cx), ep.cptr(), ROOT_DEPTH, ALL));
    // A lookup that stops after the first level finds the child CNode cap.
    let levels_one = (root_guard_bits() - radix) as u8 + septa_abi::ROOT_CNODE_SIZE_BITS as u8;
    let s = cx.slot()?;
    ok!(root(cx).copy(s, ROOT_DEPTH, wide, child.cptr(), levels_one, ALL));
    check_eq!(cx.identify(Cap::<CNode>::from_cptr(s)), cap_tag::CNODE);
    // The endpoint is in the child's slot 7, not in the root.
    let e2 = cx.slot()?;
    ok!(root(cx).copy(e2, ROOT_DEPTH, wide, addr, ROOT_DEPTH, ALL));
    check_eq!(
        cx.identify(Cap::<Endpoint>::from_cptr(e2)),
        cap_tag::ENDPOINT
    );
    Ok(())
}

fn depth_remaining(cx: &mut Cx) -> Outcome {
    let radix = 4;
    let wide = narrowed_root(cx, 0, radix)?;
    let ep = cx.endpoint()?;
    // The first level lands on an endpoint with 4 bits still to resolve:
    // depth mismatch, bitsFound 0, bitsLeft 4 (lookupSlotForCNodeOp).
    let addr = CPtr::from_bits(ep.bits() << radix | 1);
    check_err!(
        wide.delete(addr, ROOT_DEPTH),
        Error::FailedLookup {
            was_source: false,
            failure: LookupFailure::DepthMismatch {
                bits_left: radix,
                bits_found: 0
            }
        }
    );
    Ok(())
}

fn guard_value(cx: &mut Cx) -> Outcome {
    let radix = 4;
    let guard = 5;
    let child = cx.cnode(radix)?;
    let guarded = narrowed_root(cx, guard, radix)?;
    let guard_bits = root_guard_bits() - radix;
    let slot_bits = u64::from(septa_abi::ROOT_CNODE_SIZE_BITS) + radix;
    let addr = |g: u64| CPtr::from_bits(g << slot_bits | child.bits() << radix | 1);
    let ep = cx.endpoint()?;
    ok!(guarded.copy(
        addr(guard),
        ROOT_DEPTH,
        root(cx),
        ep.cptr(),
        ROOT_DEPTH,
        ALL
    ));
    check_err!(
        guarded.delete(addr(0), ROOT_DEPTH),
        Error::FailedLookup {
            was_source: false,
            failure: LookupFailure::GuardMismatch {
                bits_left: 64,
                guard_found: guard,
                bits_found: guard_bits
            }
        }
    );
    ok!(guarded.delete(addr(guard), ROOT_DEPTH));
    Ok(())
}

/// Sends on the endpoint in mail 0 (blocking), then marks mail 1.
fn send_then_mark(_: u64) {
    let ep: Cap<Endpoint> = Cap::from_bits(mail(0));
    ep.send(MessageInfo::new(0, 0, 0, 0));
    post(1, 1);
}

/// Like `send_then_mark` with mail 2 and 3.
fn send_then_mark_b(_: u64) {
    let ep: Cap<Endpoint> = Cap::from_bits(mail(2));
    ep.send(MessageInfo::new(0, 0, 0, 0));
    post(3, 1);
}

fn cancel_badged(cx: &mut Cx) -> Outcome {
    let ep = cx.endpoint()?;
    let m5 = cx.mint(ep, ALL, 5)?;
    let c5 = cx.copy(m5, ALL)?;
    let m6 = cx.mint(ep, ALL, 6)?;
    post(0, c5.bits());
    post(2, m6.bits());
    let a = thread::spawn(cx, Spawn::new(send_then_mark, 0))?;
    let _b = thread::spawn(cx, Spawn::new(send_then_mark_b, 0))?;
    settle(cx)?;
    check!(
        mail(1) == 0 && mail(3) == 0,
        "the senders did not block (no receiver)"
    );
    // The badge-5 sender restarts; its capability is gone, so its retried
    // Send does nothing and it runs on. The badge-6 sender stays queued.
    ok!(cx.delete(c5));
    ok!(root(cx).cancel_badged_sends(m5.cptr(), ROOT_DEPTH));
    a.join()?;
    check_eq!(mail(1), 1, "badge-5 sender after the cancel");
    settle(cx)?;
    check_eq!(mail(3), 0, "badge-6 sender after cancelling badge 5");
    Ok(())
}

fn cancel_rights(cx: &mut Cx) -> Outcome {
    let ep = cx.endpoint()?;
    let weak = cx.mint(ep, RW, 9)?;
    check_err!(
        root(cx).cancel_badged_sends(weak.cptr(), ROOT_DEPTH),
        Error::IllegalOperation
    );
    let n = cx.notification()?;
    check_err!(
        root(cx).cancel_badged_sends(n.cptr(), ROOT_DEPTH),
        Error::IllegalOperation
    );
    // Unbadged with all rights: nothing to cancel, success.
    ok!(root(cx).cancel_badged_sends(ep.cptr(), ROOT_DEPTH));
    Ok(())
}
