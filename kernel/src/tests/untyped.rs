//! Untyped Retype: watermark, alignment, exhaustion, device rules, reuse.

use super::*;
use crate::error::LookupFault;
use crate::object::tcb::TCB_BYTES;
use crate::preempt::{reset_work_units, set_preemption_check};
use crate::untyped::RESET_CHUNK_BITS;

fn retype_err(fx: &Fixture, ut: u64, args: &[u64]) -> SyscallError {
    match fx.retype_args(ut, args) {
        Err(Exception::Syscall(e)) => e,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn retype_places_original_caps_and_moves_the_watermark() {
    let fx = Fixture::new(20);
    let new = fx.retype(UT, ObjectType::Endpoint, 0, 10, 3).unwrap();
    assert_eq!(new.first_paddr, fx.ut_base);
    assert_eq!(
        new.paddrs().collect::<Vec<_>>(),
        vec![fx.ut_base, fx.ut_base + 16, fx.ut_base + 32]
    );
    for i in 0..3 {
        assert_eq!(fx.cap(10 + i), Cap::new_endpoint(fx.ut_base + 16 * i));
        assert!(crate::cte::is_mdb_parent_of(fx.slot(UT), fx.slot(10 + i)));
        assert!(fx.slot(10 + i).mdb().revocable);
    }
    assert_eq!(fx.free_index(UT), 48);
    check_links(&fx);
}

#[test]
fn the_first_retype_clears_boot_memory_and_new_objects_are_zero() {
    let fx = Fixture::new(20);
    // The arena started as 0xAA everywhere; the boot untyped is "full".
    assert_eq!(fx.free_index(UT), 1 << fx.ut_bits);
    assert!(!memory::is_zero(fx.ut_base, 1 << fx.ut_bits));
    let n = fx.retype(UT, ObjectType::Tcb, 0, 10, 2).unwrap();
    assert!(
        memory::is_zero(fx.ut_base, 1 << fx.ut_bits),
        "reset clears the whole used range"
    );
    assert!(n.paddrs().all(|p| memory::is_zero(p, TCB_BYTES)));
}

#[test]
fn objects_are_aligned_to_their_size() {
    let fx = Fixture::new(20);
    fx.retype(UT, ObjectType::Endpoint, 0, 10, 1).unwrap();
    let tcb = fx.retype(UT, ObjectType::Tcb, 0, 11, 1).unwrap();
    // Past the endpoint, aligned to its own size (2 or 4 KiB by configuration).
    assert_eq!(tcb.first_paddr, fx.ut_base + TCB_BYTES);
    assert_eq!(fx.free_index(UT), 2 * TCB_BYTES);
    let ep = fx.retype(UT, ObjectType::Endpoint, 0, 12, 1).unwrap();
    assert_eq!(ep.first_paddr, fx.ut_base + 2 * TCB_BYTES);
    let cn = fx.retype(UT, ObjectType::CNode, 3, 13, 1).unwrap();
    assert_eq!(
        (cn.first_paddr, cn.object_size_bits),
        (fx.ut_base + 2 * TCB_BYTES + 256, 8)
    );
    let sc = fx.retype(UT, ObjectType::SchedContext, 8, 14, 1).unwrap();
    assert_eq!(sc.first_paddr, fx.ut_base + 2 * TCB_BYTES + 512);
    assert_eq!(
        fx.cap(14),
        Cap::SchedContext {
            paddr: sc.first_paddr,
            size_bits: 8
        }
    );
    let pg = fx.retype(UT, ObjectType::SmallPage, 0, 15, 1).unwrap();
    assert_eq!(
        pg.first_paddr,
        fx.ut_base + (2 * TCB_BYTES + 768).next_multiple_of(4096)
    );
}

#[test]
fn running_out_reports_the_bytes_left() {
    let fx = Fixture::new(20);
    // An untyped of two TCBs carved from the big one.
    let bits = TCB_BYTES.trailing_zeros() as u64 + 1;
    let size = 2 * TCB_BYTES;
    fx.retype(UT, ObjectType::Untyped, bits, 20, 1).unwrap();
    assert_eq!(
        fx.cap(20),
        Cap::Untyped {
            paddr: fx.ut_base,
            size_bits: bits as u8,
            free_index: 0,
            is_device: false
        }
    );
    fx.retype(20, ObjectType::Endpoint, 0, 30, 1).unwrap();
    assert_eq!(
        retype_err(&fx, 20, &[ObjectType::Tcb as u64, 0, 0, 0, 31, 2]),
        SyscallError::NotEnoughMemory {
            available: size - 16
        }
    );
    // One fits after alignment, then nothing.
    fx.retype(20, ObjectType::Tcb, 0, 31, 1).unwrap();
    assert_eq!(fx.free_index(20), size);
    assert_eq!(
        retype_err(&fx, 20, &[ObjectType::Endpoint as u64, 0, 0, 0, 32, 1]),
        SyscallError::NotEnoughMemory { available: 0 }
    );
    // An object larger than the untyped never fits.
    fx.delete(30).unwrap();
    fx.delete(31).unwrap();
    assert_eq!(
        retype_err(&fx, 20, &[ObjectType::LargePage as u64, 0, 0, 0, 32, 1]),
        SyscallError::NotEnoughMemory { available: size }
    );
}

#[test]
fn device_untyped_makes_only_frames_and_untyped_and_is_not_cleared() {
    let fx = Fixture::new(20);
    for ty in [
        ObjectType::Endpoint,
        ObjectType::Tcb,
        ObjectType::CNode,
        ObjectType::PageTable,
        ObjectType::Vcpu,
    ] {
        let size = if ty == ObjectType::CNode { 2 } else { 0 };
        assert_eq!(
            retype_err(&fx, DEV_UT, &[ty as u64, size, 0, 0, 10, 1]),
            SyscallError::InvalidArgument { index: 1 },
            "{ty:?}"
        );
    }
    let pg = fx.retype(DEV_UT, ObjectType::SmallPage, 0, 10, 1).unwrap();
    assert!(pg.is_device);
    assert!(matches!(
        fx.cap(10),
        Cap::Frame {
            is_device: true,
            ..
        }
    ));
    assert_eq!(
        memory::read::<u8>(pg.first_paddr),
        0xaa,
        "device memory is never cleared"
    );
    let ut = fx.retype(DEV_UT, ObjectType::Untyped, 12, 11, 1).unwrap();
    assert!(matches!(
        fx.cap(11),
        Cap::Untyped {
            is_device: true,
            ..
        }
    ));
    // Nor is it cleared on reset after a revoke.
    fx.revoke(DEV_UT).unwrap();
    fx.retype(DEV_UT, ObjectType::SmallPage, 0, 10, 1).unwrap();
    assert_eq!(memory::read::<u8>(ut.first_paddr), 0xaa);
}

#[test]
fn revoking_the_untyped_returns_its_memory_cleared() {
    let fx = Fixture::new(20);
    let first = fx.retype(UT, ObjectType::Notification, 0, 10, 4).unwrap();
    // Objects get used: scribble over them.
    for p in first.paddrs() {
        memory::write::<u64>(p + 8, 0xdead_beef);
    }
    fx.copy(20, 10, CapRights::ALL).unwrap();
    assert_eq!(fx.free_index(UT), 4 * 64);
    fx.revoke(UT).unwrap();
    assert_eq!(fx.occupied(), BTreeSet::from([UT, DEV_UT, IRQ]));
    // The watermark stays until the next Retype resets the untyped...
    assert_eq!(fx.free_index(UT), 4 * 64);
    let again = fx.retype(UT, ObjectType::Endpoint, 0, 10, 1).unwrap();
    assert_eq!(again.first_paddr, fx.ut_base);
    assert_eq!(fx.free_index(UT), 16);
    assert!(
        memory::is_zero(fx.ut_base, 4 * 64),
        "reset cleared the used range"
    );
    check_links(&fx);
}

#[test]
fn deleting_every_child_also_frees_the_untyped() {
    let fx = Fixture::new(20);
    fx.retype(UT, ObjectType::Endpoint, 0, 10, 2).unwrap();
    fx.retype(UT, ObjectType::Endpoint, 0, 12, 1).unwrap();
    assert_eq!(fx.free_index(UT), 48);
    fx.delete(10).unwrap();
    fx.delete(12).unwrap();
    // One child left: allocation continues from the watermark.
    assert_eq!(
        fx.retype(UT, ObjectType::Endpoint, 0, 10, 1)
            .unwrap()
            .first_paddr,
        fx.ut_base + 48
    );
    fx.delete(10).unwrap();
    fx.delete(11).unwrap();
    assert_eq!(
        fx.retype(UT, ObjectType::Endpoint, 0, 10, 1)
            .unwrap()
            .first_paddr,
        fx.ut_base
    );
}

#[test]
fn retype_reports_every_argument_error_with_its_details() {
    let fx = Fixture::new(20);
    fx.retype(UT, ObjectType::Endpoint, 0, 50, 1).unwrap();
    let ep = ObjectType::Endpoint as u64;
    let cn = ObjectType::CNode as u64;
    let cases: &[(&[u64], SyscallError)] = &[
        (&[ep, 0, 0, 0, 10], SyscallError::TruncatedMessage),
        (
            &[13, 0, 0, 0, 10, 1],
            SyscallError::InvalidArgument { index: 0 },
        ),
        (
            &[u64::MAX, 0, 0, 0, 10, 1],
            SyscallError::InvalidArgument { index: 0 },
        ),
        (
            &[ep, 64, 0, 0, 10, 1],
            SyscallError::RangeError { min: 0, max: 47 },
        ),
        (
            &[cn, 43, 0, 0, 10, 1],
            SyscallError::RangeError { min: 0, max: 47 },
        ),
        (
            &[cn, u64::MAX - 2, 0, 0, 10, 1],
            SyscallError::RangeError { min: 0, max: 47 },
        ),
        (
            &[ObjectType::Untyped as u64, 48, 0, 0, 10, 1],
            SyscallError::RangeError { min: 0, max: 47 },
        ),
        (
            &[ObjectType::SchedContext as u64, 48, 0, 0, 10, 1],
            SyscallError::RangeError { min: 0, max: 47 },
        ),
        (
            &[cn, 0, 0, 0, 10, 1],
            SyscallError::InvalidArgument { index: 1 },
        ),
        (
            &[ObjectType::Untyped as u64, 3, 0, 0, 10, 1],
            SyscallError::InvalidArgument { index: 1 },
        ),
        (
            &[ObjectType::SchedContext as u64, 6, 0, 0, 10, 1],
            SyscallError::InvalidArgument { index: 1 },
        ),
        (
            &[ep, 0, 0, 0, 256, 1],
            SyscallError::RangeError { min: 0, max: 255 },
        ),
        (
            &[ep, 0, 0, 0, 10, 0],
            SyscallError::RangeError { min: 1, max: 256 },
        ),
        (
            &[ep, 0, 0, 0, 0, 257],
            SyscallError::RangeError { min: 1, max: 256 },
        ),
        (
            &[ep, 0, 0, 0, 250, 7],
            SyscallError::RangeError { min: 1, max: 6 },
        ),
        (&[ep, 0, 0, 0, 45, 6], SyscallError::DeleteFirst),
        // Destination slot named by index and depth: an endpoint, not a CNode.
        (
            &[ep, 0, 50, D, 10, 1],
            SyscallError::FailedLookup {
                source: false,
                fault: LookupFault::MissingCapability { bits_left: D },
            },
        ),
        // ... or an address that does not resolve.
        (
            &[ep, 0, 1 << 63, D, 10, 1],
            SyscallError::FailedLookup {
                source: false,
                fault: LookupFault::GuardMismatch {
                    bits_left: 64,
                    guard_found: 0,
                    bits_found: 56,
                },
            },
        ),
        (
            &[ep, 0, 50, 65, 10, 1],
            SyscallError::RangeError { min: 1, max: 64 },
        ),
        (
            &[ep, 0, 0, 0, 10, 1 << 20],
            SyscallError::RangeError { min: 1, max: 256 },
        ),
    ];
    for (args, e) in cases {
        assert_eq!(retype_err(&fx, UT, args), *e, "args {args:?}");
    }
    // No extra cap, wrong label.
    let slot = fx.slot(UT);
    let args = [ep, 0, 0, 0, 10, 1];
    let roots = [fx.root_slot];
    let inv = Invocation::new(Label::UntypedRetype.number(), &args, &[]);
    assert_eq!(
        decode_untyped_invocation(&inv, slot, &slot.cap()),
        Err(SyscallError::TruncatedMessage.into())
    );
    let inv = Invocation::new(Label::CNodeCopy.number(), &args, &roots);
    assert_eq!(
        decode_untyped_invocation(&inv, slot, &slot.cap()),
        Err(SyscallError::IllegalOperation.into())
    );
    // Nothing was created by any of them.
    assert_eq!(fx.occupied(), BTreeSet::from([UT, DEV_UT, IRQ, 50]));
    assert_eq!(fx.free_index(UT), 16);
}

#[test]
fn retype_into_a_cnode_named_by_address() {
    let fx = Fixture::new(20);
    fx.retype(UT, ObjectType::CNode, 4, 40, 1).unwrap();
    let n = fx
        .retype_args(UT, &[ObjectType::Endpoint as u64, 0, 40, D, 3, 13])
        .unwrap();
    let Cap::CNode { paddr, .. } = fx.cap(40) else {
        panic!()
    };
    assert_eq!(n.dest_cnode, paddr);
    assert_eq!(n.slot(0), crate::cte::SlotRef::nth(paddr, 3));
    assert!(!n.slot(12).is_empty());
    // The window may not overrun the 16-slot CNode.
    assert_eq!(
        retype_err(&fx, UT, &[ObjectType::Endpoint as u64, 0, 40, D, 3, 14]),
        SyscallError::RangeError { min: 1, max: 13 }
    );
    check_links(&fx);
}

#[test]
fn every_object_type_can_be_retyped_and_revoked() {
    let fx = Fixture::new(24);
    let types = [
        (ObjectType::Untyped, 4),
        (ObjectType::Tcb, 0),
        (ObjectType::Endpoint, 0),
        (ObjectType::Notification, 0),
        (ObjectType::CNode, 1),
        (ObjectType::SchedContext, 7),
        (ObjectType::Reply, 0),
        (ObjectType::HugePage, 0),
        (ObjectType::VSpace, 0),
        (ObjectType::SmallPage, 0),
        (ObjectType::LargePage, 0),
        (ObjectType::PageTable, 0),
        (ObjectType::Vcpu, 0),
    ];
    for (i, (ty, size)) in types.into_iter().enumerate() {
        let r = fx.retype(UT, ty, size, 10 + i as u64, 1);
        if ty == ObjectType::HugePage {
            // 1 GiB does not fit in this 8 MiB untyped.
            assert!(matches!(
                r,
                Err(Exception::Syscall(SyscallError::NotEnoughMemory { .. }))
            ));
            continue;
        }
        let n = r.unwrap();
        assert_eq!(
            fx.cap(10 + i as u64).size_bits() as u64,
            crate::untyped::object_size_bits(ty, size)
        );
        assert_eq!(fx.cap(10 + i as u64).object_paddr(), Some(n.first_paddr));
    }
    check_links(&fx);
    fx.revoke(UT).unwrap();
    assert_eq!(fx.occupied(), BTreeSet::from([UT, DEV_UT, IRQ]));
}

#[test]
fn a_preempted_reset_resumes_where_it_stopped() {
    let fx = Fixture::new(22);
    set_preemption_check(Some(|| true));
    reset_work_units();
    let (r, preemptions) = until_done(|| fx.retype(UT, ObjectType::Endpoint, 0, 10, 1));
    set_preemption_check(None);
    r.unwrap();
    // 2 MiB in 256-byte chunks, a check every 100 chunks.
    let chunks = (1u64 << fx.ut_bits) >> RESET_CHUNK_BITS;
    assert_eq!(preemptions as u64, chunks / 100);
    assert!(memory::is_zero(fx.ut_base, 1 << fx.ut_bits));
    assert_eq!(fx.free_index(UT), 16);
}
