//! Untyped_Retype: every object type, every error of
//! `decodeUntypedInvocation` (src/object/untyped.c), memory accounting and
//! reuse after revoke or delete.

use septa_abi::kernel_config::{cap_tag, RETYPE_FAN_OUT_LIMIT};
use septa_abi::{Label, ObjectType, MAX_UNTYPED_BITS, ROOT_CNODE_SIZE_BITS, WORD_BITS};
use septa_sel4::cap::cap_type::*;
use septa_sel4::invocation::Invocation;
use septa_sel4::{CPtr, Cap, Error, LookupFailure};

use crate::cases::util::{raw, ALL};
use crate::env::{self, Cx, ROOT_DEPTH};
use crate::report::Outcome;
use crate::{check_eq, check_err, ok, Case};

pub const LABELS: &[Label] = &[Label::UntypedRetype];

pub const CASES: &[Case] = &[
    Case {
        name: "untyped/retype-every-type",
        run: every_type,
    },
    Case {
        name: "untyped/retype-several-at-once",
        run: several,
    },
    Case {
        name: "untyped/retype-fan-out-limit",
        run: fan_out_limit,
    },
    Case {
        name: "untyped/retype-into-a-cnode-by-path",
        run: into_cnode,
    },
    Case {
        name: "untyped/illegal-operation",
        run: illegal,
    },
    Case {
        name: "untyped/truncated-message",
        run: truncated,
    },
    Case {
        name: "untyped/truncated-without-root",
        run: truncated_no_root,
    },
    Case {
        name: "untyped/invalid-object-type",
        run: invalid_type,
    },
    Case {
        name: "untyped/object-size-out-of-range",
        run: size_range,
    },
    Case {
        name: "untyped/cnode-of-size-zero",
        run: cnode_zero,
    },
    Case {
        name: "untyped/untyped-below-minimum",
        run: untyped_small,
    },
    Case {
        name: "untyped/sched-context-below-minimum",
        run: sc_small,
    },
    Case {
        name: "untyped/destination-not-a-cnode",
        run: dest_not_cnode,
    },
    Case {
        name: "untyped/destination-root-not-a-cnode",
        run: dest_root_not_cnode,
    },
    Case {
        name: "untyped/destination-depth-out-of-range",
        run: dest_depth,
    },
    Case {
        name: "untyped/destination-guard-mismatch",
        run: dest_guard,
    },
    Case {
        name: "untyped/offset-out-of-range",
        run: offset_range,
    },
    Case {
        name: "untyped/window-out-of-range",
        run: window_range,
    },
    Case {
        name: "untyped/window-overruns-cnode",
        run: window_overrun,
    },
    Case {
        name: "untyped/destination-occupied",
        run: dest_occupied,
    },
    Case {
        name: "untyped/not-enough-memory",
        run: not_enough,
    },
    Case {
        name: "untyped/not-enough-memory-after-use",
        run: not_enough_after_use,
    },
    Case {
        name: "untyped/device-memory-kernel-object",
        run: device_kernel_object,
    },
    Case {
        name: "untyped/device-memory-frame",
        run: device_frame,
    },
    Case {
        name: "untyped/reuse-after-revoke",
        run: reuse_after_revoke,
    },
    Case {
        name: "untyped/reuse-after-delete",
        run: reuse_after_delete,
    },
    Case {
        name: "untyped/objects-are-aligned",
        run: aligned,
    },
    Case {
        name: "untyped/copy-marks-parent-full",
        run: copy_full,
    },
    Case {
        name: "untyped/first-object-at-pool-base",
        run: pool_base,
    },
];

/// A Retype message by hand: `words` and the root CNode as the extra cap.
fn retype_raw(cx: &Cx, ut: Cap<Untyped>, words: &[u64]) -> Result<(), Error> {
    ut.invoke(&raw(Label::UntypedRetype, words).cap(cx.root_cnode().cptr()))
        .map(drop)
}

fn retype1(cx: &Cx, ut: Cap<Untyped>, ty: ObjectType, bits: u64, slot: CPtr) -> Result<(), Error> {
    ut.retype(ty, bits, cx.root_cnode(), CPtr::NULL, 0, slot.bits(), 1)
}

fn every_type(cx: &mut Cx) -> Outcome {
    use ObjectType::*;
    let table = [
        (Tcb, 0, cap_tag::THREAD),
        (Endpoint, 0, cap_tag::ENDPOINT),
        (Notification, 0, cap_tag::NOTIFICATION),
        (CNode, 4, cap_tag::CNODE),
        (
            SchedContext,
            u64::from(septa_abi::MIN_SCHED_CONTEXT_BITS),
            cap_tag::SCHED_CONTEXT,
        ),
        (SchedContext, 10, cap_tag::SCHED_CONTEXT),
        (Reply, 0, cap_tag::REPLY),
        (SmallPage, 0, cap_tag::FRAME),
        (LargePage, 0, cap_tag::FRAME),
        (PageTable, 0, cap_tag::PAGE_TABLE),
        (VSpace, 0, cap_tag::VSPACE),
        (Vcpu, 0, cap_tag::VCPU),
        (Untyped, 12, cap_tag::UNTYPED),
    ];
    for (ty, bits, tag) in table {
        let c: Cap<Unspecified> = cx.obj(ty, bits)?;
        check_eq!(cx.identify(c), tag, ty);
    }
    Ok(())
}

fn several(cx: &mut Cx) -> Outcome {
    let n = 8;
    let first = cx.slots(n + 1)?;
    ok!(cx.pool().retype(
        ObjectType::Endpoint,
        0,
        cx.root_cnode(),
        CPtr::NULL,
        0,
        first.bits(),
        n
    ));
    for i in 0..n {
        let c: Cap<Endpoint> = Cap::from_bits(first.bits() + i);
        check_eq!(cx.identify(c), cap_tag::ENDPOINT, i);
    }
    let past: Cap<Endpoint> = Cap::from_bits(first.bits() + n);
    check_eq!(cx.identify(past), cap_tag::NULL, "slot past the window");
    Ok(())
}

fn fan_out_limit(cx: &mut Cx) -> Outcome {
    let first = cx.slots(RETYPE_FAN_OUT_LIMIT)?;
    ok!(cx.pool().retype(
        ObjectType::Endpoint,
        0,
        cx.root_cnode(),
        CPtr::NULL,
        0,
        first.bits(),
        RETYPE_FAN_OUT_LIMIT
    ));
    let last: Cap<Endpoint> = Cap::from_bits(first.bits() + RETYPE_FAN_OUT_LIMIT - 1);
    check_eq!(cx.identify(last), cap_tag::ENDPOINT);
    Ok(())
}

fn into_cnode(cx: &mut Cx) -> Outcome {
    let radix = 4;
    let node = cx.cnode(radix)?;
    // nodeIndex/nodeDepth name the CNode cap in the root; objects land in
    // its slots 2..5.
    ok!(cx.pool().retype(
        ObjectType::Notification,
        0,
        cx.root_cnode(),
        node.cptr(),
        u64::from(ROOT_DEPTH),
        2,
        3
    ));
    for i in 0..6u64 {
        let out = cx.slot()?;
        let r = cx
            .root_cnode()
            .copy(out, ROOT_DEPTH, node, CPtr::from_bits(i), radix as u8, ALL);
        let expected = if (2..5).contains(&i) {
            cap_tag::NOTIFICATION
        } else {
            cap_tag::NULL
        };
        match r {
            Ok(()) => check_eq!(
                cx.identify(Cap::<Notification>::from_cptr(out)),
                expected,
                i
            ),
            Err(e) => check_eq!(
                (expected, e),
                (
                    cap_tag::NULL,
                    Error::FailedLookup {
                        was_source: true,
                        failure: LookupFailure::MissingCapability { bits_left: radix }
                    }
                ),
                i
            ),
        }
    }
    Ok(())
}

fn illegal(cx: &mut Cx) -> Outcome {
    check_err!(
        cx.pool().invoke(&Invocation::new(Label::TcbSuspend)),
        Error::IllegalOperation
    );
    Ok(())
}

fn truncated(cx: &mut Cx) -> Outcome {
    let slot = cx.slot()?;
    let words = [ObjectType::Endpoint as u64, 0, 0, 0, slot.bits()];
    check_err!(retype_raw(cx, cx.pool(), &words), Error::TruncatedMessage);
    Ok(())
}

fn truncated_no_root(cx: &mut Cx) -> Outcome {
    let slot = cx.slot()?;
    let words = [ObjectType::Endpoint as u64, 0, 0, 0, slot.bits(), 1];
    check_err!(
        cx.pool().invoke(&raw(Label::UntypedRetype, &words)),
        Error::TruncatedMessage
    );
    Ok(())
}

fn invalid_type(cx: &mut Cx) -> Outcome {
    let slot = cx.slot()?;
    let words = [ObjectType::COUNT, 0, 0, 0, slot.bits(), 1];
    check_err!(
        retype_raw(cx, cx.pool(), &words),
        Error::InvalidArgument { index: 0 }
    );
    Ok(())
}

fn size_range(cx: &mut Cx) -> Outcome {
    let slot = cx.slot()?;
    let range = Error::RangeError {
        min: 0,
        max: u64::from(MAX_UNTYPED_BITS),
    };
    let pool = cx.pool();
    // objectSize > seL4_MaxUntypedBits
    check_err!(
        retype1(
            cx,
            pool,
            ObjectType::Untyped,
            u64::from(MAX_UNTYPED_BITS) + 1,
            slot
        ),
        range
    );
    // A CNode's size is slot bits plus the radix.
    let too_many_slots = u64::from(MAX_UNTYPED_BITS - septa_abi::SLOT_SIZE_BITS) + 1;
    check_err!(
        retype1(cx, pool, ObjectType::CNode, too_many_slots, slot),
        range
    );
    // userObjSize >= wordBits, whatever the type.
    check_err!(
        retype1(cx, pool, ObjectType::Endpoint, u64::from(WORD_BITS), slot),
        range
    );
    Ok(())
}

fn cnode_zero(cx: &mut Cx) -> Outcome {
    let slot = cx.slot()?;
    check_err!(
        retype1(cx, cx.pool(), ObjectType::CNode, 0, slot),
        Error::InvalidArgument { index: 1 }
    );
    Ok(())
}

fn untyped_small(cx: &mut Cx) -> Outcome {
    let slot = cx.slot()?;
    let bits = u64::from(septa_abi::MIN_UNTYPED_BITS) - 1;
    check_err!(
        retype1(cx, cx.pool(), ObjectType::Untyped, bits, slot),
        Error::InvalidArgument { index: 1 }
    );
    Ok(())
}

fn sc_small(cx: &mut Cx) -> Outcome {
    let slot = cx.slot()?;
    let bits = u64::from(septa_abi::MIN_SCHED_CONTEXT_BITS) - 1;
    check_err!(
        retype1(cx, cx.pool(), ObjectType::SchedContext, bits, slot),
        Error::InvalidArgument { index: 1 }
    );
    Ok(())
}

fn dest_not_cnode(cx: &mut Cx) -> Outcome {
    let ep = cx.endpoint()?;
    let slot = cx.slot()?;
    // The node index/depth name an endpoint: FailedLookup, missing capability
    // with bitsLeft = nodeDepth.
    let r = cx.pool().retype(
        ObjectType::Endpoint,
        0,
        cx.root_cnode(),
        ep.cptr(),
        u64::from(ROOT_DEPTH),
        slot.bits(),
        1,
    );
    check_err!(
        r,
        Error::FailedLookup {
            was_source: false,
            failure: LookupFailure::MissingCapability {
                bits_left: u64::from(ROOT_DEPTH)
            }
        }
    );
    Ok(())
}

fn dest_root_not_cnode(cx: &mut Cx) -> Outcome {
    let ep = cx.endpoint()?;
    let slot = cx.slot()?;
    // Depth 0 takes the root capability itself as the destination node.
    let r = cx.pool().retype(
        ObjectType::Endpoint,
        0,
        ep.cast(),
        CPtr::NULL,
        0,
        slot.bits(),
        1,
    );
    check_err!(
        r,
        Error::FailedLookup {
            was_source: false,
            failure: LookupFailure::MissingCapability { bits_left: 0 }
        }
    );
    Ok(())
}

fn dest_depth(cx: &mut Cx) -> Outcome {
    let slot = cx.slot()?;
    // lookupSlotForCNodeOp: depth outside 1..=wordBits.
    let r = cx.pool().retype(
        ObjectType::Endpoint,
        0,
        cx.root_cnode(),
        cx.root_cnode().cptr(),
        u64::from(WORD_BITS) + 1,
        slot.bits(),
        1,
    );
    check_err!(
        r,
        Error::RangeError {
            min: 1,
            max: u64::from(WORD_BITS)
        }
    );
    Ok(())
}

fn dest_guard(cx: &mut Cx) -> Outcome {
    let slot = cx.slot()?;
    // The root CNode's guard is 47 bits: a 10-bit lookup cannot even match
    // it (resolveAddressBits: guardBits > n_bits).
    let depth = 10;
    let r = cx.pool().retype(
        ObjectType::Endpoint,
        0,
        cx.root_cnode(),
        CPtr::from_bits(5),
        depth,
        slot.bits(),
        1,
    );
    check_err!(
        r,
        Error::FailedLookup {
            was_source: false,
            failure: LookupFailure::GuardMismatch {
                bits_left: depth,
                guard_found: 0,
                bits_found: root_guard_bits()
            }
        }
    );
    Ok(())
}

/// The guard of the initial thread's CNode capability: what the radix
/// leaves of a word.
pub fn root_guard_bits() -> u64 {
    u64::from(WORD_BITS - ROOT_CNODE_SIZE_BITS)
}

fn offset_range(cx: &mut Cx) -> Outcome {
    let slots = 1u64 << ROOT_CNODE_SIZE_BITS;
    let r = cx.pool().retype(
        ObjectType::Endpoint,
        0,
        cx.root_cnode(),
        CPtr::NULL,
        0,
        slots,
        1,
    );
    check_err!(
        r,
        Error::RangeError {
            min: 0,
            max: slots - 1
        }
    );
    Ok(())
}

fn window_range(cx: &mut Cx) -> Outcome {
    let slot = cx.slot()?;
    let range = Error::RangeError {
        min: 1,
        max: RETYPE_FAN_OUT_LIMIT,
    };
    for n in [0, RETYPE_FAN_OUT_LIMIT + 1] {
        let r = cx.pool().retype(
            ObjectType::Endpoint,
            0,
            cx.root_cnode(),
            CPtr::NULL,
            0,
            slot.bits(),
            n,
        );
        check_err!(r, range);
    }
    Ok(())
}

fn window_overrun(cx: &mut Cx) -> Outcome {
    let slots = 1u64 << ROOT_CNODE_SIZE_BITS;
    let r = cx.pool().retype(
        ObjectType::Endpoint,
        0,
        cx.root_cnode(),
        CPtr::NULL,
        0,
        slots - 2,
        3,
    );
    check_err!(r, Error::RangeError { min: 1, max: 2 });
    Ok(())
}

fn dest_occupied(cx: &mut Cx) -> Outcome {
    let ep = cx.endpoint()?;
    check_err!(
        retype1(cx, cx.pool(), ObjectType::Endpoint, 0, ep.cptr()),
        Error::DeleteFirst
    );
    Ok(())
}

fn not_enough(cx: &mut Cx) -> Outcome {
    let page = 1u64 << septa_abi::PAGE_BITS;
    let ut = cx.untyped(u64::from(septa_abi::PAGE_BITS))?;
    let first = cx.slots(2)?;
    let r = ut.retype(
        ObjectType::SmallPage,
        0,
        cx.root_cnode(),
        CPtr::NULL,
        0,
        first.bits(),
        2,
    );
    check_err!(r, Error::NotEnoughMemory { available: page });
    Ok(())
}

fn not_enough_after_use(cx: &mut Cx) -> Outcome {
    let page = 1u64 << septa_abi::PAGE_BITS;
    let ut = cx.untyped(u64::from(septa_abi::PAGE_BITS))?;
    let _ep: Cap<Endpoint> = cx.retype_from(ut, ObjectType::Endpoint, 0)?;
    let slot = cx.slot()?;
    let left = page - (1 << septa_abi::ENDPOINT_SIZE_BITS);
    check_err!(
        retype1(cx, ut, ObjectType::SmallPage, 0, slot),
        Error::NotEnoughMemory { available: left }
    );
    Ok(())
}

fn device_kernel_object(cx: &mut Cx) -> Outcome {
    let Some((dev, _, _)) = env::device_untyped() else {
        crate::fail!("BootInfo lists no device untyped of a page or more");
    };
    let slot = cx.slot()?;
    check_err!(
        retype1(cx, dev, ObjectType::Tcb, 0, slot),
        Error::InvalidArgument { index: 1 }
    );
    check_err!(
        retype1(cx, dev, ObjectType::Endpoint, 0, slot),
        Error::InvalidArgument { index: 1 }
    );
    Ok(())
}

fn device_frame(cx: &mut Cx) -> Outcome {
    let Some((dev, _, paddr)) = env::device_untyped() else {
        crate::fail!("BootInfo lists no device untyped of a page or more");
    };
    let frame: Cap<SmallPage> = cx.retype_from(dev, ObjectType::SmallPage, 0)?;
    check_eq!(cx.identify(frame), cap_tag::FRAME);
    check_eq!(ok!(frame.get_address()), paddr);
    Ok(())
}

/// A one-page untyped with a frame in it; the frame's address.
fn full_page(cx: &mut Cx) -> Result<(Cap<Untyped>, Cap<SmallPage>, u64), crate::report::Failure> {
    let ut = cx.untyped(u64::from(septa_abi::PAGE_BITS))?;
    let frame: Cap<SmallPage> = cx.retype_from(ut, ObjectType::SmallPage, 0)?;
    let addr = ok!(frame.get_address());
    Ok((ut, frame, addr))
}

fn reuse_after_revoke(cx: &mut Cx) -> Outcome {
    let (ut, frame, addr) = full_page(cx)?;
    let slot = cx.slot()?;
    check_err!(
        retype1(cx, ut, ObjectType::SmallPage, 0, slot),
        Error::NotEnoughMemory { available: 0 }
    );
    ok!(cx.root_cnode().revoke(ut.cptr(), ROOT_DEPTH));
    check_eq!(
        cx.identify(frame),
        cap_tag::NULL,
        "the frame after revoking its untyped"
    );
    ok!(retype1(cx, ut, ObjectType::SmallPage, 0, slot));
    let again: Cap<SmallPage> = slot.cast();
    check_eq!(ok!(again.get_address()), addr);
    Ok(())
}

fn reuse_after_delete(cx: &mut Cx) -> Outcome {
    let (ut, frame, addr) = full_page(cx)?;
    ok!(cx.delete(frame));
    let slot = cx.slot()?;
    // No children left: the untyped starts over from its base.
    ok!(retype1(cx, ut, ObjectType::SmallPage, 0, slot));
    let again: Cap<SmallPage> = slot.cast();
    check_eq!(ok!(again.get_address()), addr);
    Ok(())
}

fn aligned(cx: &mut Cx) -> Outcome {
    let page = 1u64 << septa_abi::PAGE_BITS;
    let ut = cx.untyped(u64::from(septa_abi::PAGE_BITS) + 1)?;
    let a: Cap<SmallPage> = cx.retype_from(ut, ObjectType::SmallPage, 0)?;
    let base = ok!(a.get_address());
    ok!(cx.root_cnode().revoke(ut.cptr(), ROOT_DEPTH));
    // A 16-byte endpoint first: the frame after it is aligned up to a page.
    let _ep: Cap<Endpoint> = cx.retype_from(ut, ObjectType::Endpoint, 0)?;
    let b: Cap<SmallPage> = cx.retype_from(ut, ObjectType::SmallPage, 0)?;
    check_eq!(ok!(b.get_address()), base + page);
    let slot = cx.slot()?;
    check_err!(
        retype1(cx, ut, ObjectType::Endpoint, 0, slot),
        Error::NotEnoughMemory { available: 0 }
    );
    Ok(())
}

fn copy_full(cx: &mut Cx) -> Outcome {
    let ut = cx.untyped(u64::from(septa_abi::PAGE_BITS))?;
    // cteInsert of an untyped of the same size marks the source full
    // (setUntypedCapAsFull): only the copy can be retyped now.
    let copy = cx.copy(ut, ALL)?;
    let slot = cx.slot()?;
    check_err!(
        retype1(cx, ut, ObjectType::Endpoint, 0, slot),
        Error::NotEnoughMemory { available: 0 }
    );
    ok!(retype1(cx, copy, ObjectType::Endpoint, 0, slot));
    Ok(())
}

fn pool_base(cx: &mut Cx) -> Outcome {
    // The case pool was revoked after the last case: it starts over.
    let frame = cx.frame()?;
    check_eq!(ok!(frame.get_address()), env::case_pool_paddr());
    Ok(())
}
