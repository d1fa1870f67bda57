//! CNode operations and the derivation tree they build.

use super::*;
use crate::cap::{is_cap_revocable, same_object_as};
use crate::cte::{is_final_capability, is_mdb_parent_of};
use crate::error::LookupFault;
use septa_abi::CNodeCapData;

const ALL: CapRights = CapRights::ALL;

/// A fixture with one fresh endpoint (cap in slot 10).
fn with_endpoint() -> Fixture {
    let fx = Fixture::new(20);
    fx.retype(UT, ObjectType::Endpoint, 0, 10, 1).unwrap();
    fx
}

#[test]
fn a_copy_is_a_child_of_the_original_and_goes_with_revoke() {
    let fx = with_endpoint();
    fx.copy(11, 10, ALL).unwrap();
    assert_eq!(fx.cap(11), fx.cap(10));
    assert!(is_mdb_parent_of(fx.slot(10), fx.slot(11)));
    assert!(!is_final_capability(fx.slot(10)) && !is_final_capability(fx.slot(11)));
    fx.revoke(10).unwrap();
    assert!(fx.slot(11).is_empty());
    assert!(!fx.slot(10).is_empty());
    assert!(is_final_capability(fx.slot(10)));
    check_links(&fx);
}

#[test]
fn a_copy_of_a_copy_is_a_sibling() {
    let fx = with_endpoint();
    fx.copy(11, 10, ALL).unwrap();
    fx.copy(12, 11, ALL).unwrap();
    // Revoking the first copy removes nothing: copies have no children.
    fx.revoke(11).unwrap();
    assert_eq!(fx.occupied(), BTreeSet::from([UT, DEV_UT, IRQ, 10, 11, 12]));
    // Revoking the original removes both.
    fx.revoke(10).unwrap();
    assert_eq!(fx.occupied(), BTreeSet::from([UT, DEV_UT, IRQ, 10]));
}

#[test]
fn copy_masks_rights_and_never_adds_them() {
    let fx = with_endpoint();
    fx.copy(11, 10, CapRights::new(false, false, true, false))
        .unwrap();
    let Cap::Endpoint {
        can_send,
        can_receive,
        can_grant,
        can_grant_reply,
        ..
    } = fx.cap(11)
    else {
        panic!()
    };
    assert_eq!(
        (can_send, can_receive, can_grant, can_grant_reply),
        (false, true, false, false)
    );
    fx.copy(12, 11, ALL).unwrap();
    assert_eq!(fx.cap(12), fx.cap(11));
}

#[test]
fn minting_a_badge_makes_a_new_original_with_its_own_subtree() {
    let fx = with_endpoint();
    fx.mint(11, 10, ALL, 5).unwrap();
    fx.mint(12, 10, ALL, 6).unwrap();
    fx.copy(13, 11, ALL).unwrap();
    fx.copy(14, 12, ALL).unwrap();
    fx.copy(15, 13, ALL).unwrap();
    assert_eq!(fx.cap(11).badge(), Some(5));
    assert_eq!(fx.cap(13).badge(), Some(5));
    assert!(is_mdb_parent_of(fx.slot(10), fx.slot(11)));
    assert!(fx.slot(11).mdb().revocable && fx.slot(11).mdb().first_badged);
    assert!(is_mdb_parent_of(fx.slot(11), fx.slot(13)));
    // A badged original is not the parent of another badge's caps.
    assert!(!is_mdb_parent_of(fx.slot(11), fx.slot(12)));
    assert!(!is_mdb_parent_of(fx.slot(11), fx.slot(14)));
    // Revoking badge 5 removes only its copies.
    fx.revoke(11).unwrap();
    assert_eq!(
        fx.occupied(),
        BTreeSet::from([UT, DEV_UT, IRQ, 10, 11, 12, 14])
    );
    fx.revoke(10).unwrap();
    assert_eq!(fx.occupied(), BTreeSet::from([UT, DEV_UT, IRQ, 10]));
    check_links(&fx);
}

#[test]
fn two_separately_minted_caps_with_one_badge_are_separate_subtrees() {
    let fx = with_endpoint();
    fx.mint(11, 10, ALL, 5).unwrap();
    fx.mint(12, 10, ALL, 5).unwrap();
    fx.copy(13, 12, ALL).unwrap();
    fx.copy(14, 11, ALL).unwrap();
    // Revoking the first badged cap leaves the other badged original and its copy.
    fx.revoke(12).unwrap();
    assert!(fx.slot(13).is_empty());
    assert!(!fx.slot(11).is_empty() && !fx.slot(14).is_empty());
}

#[test]
fn deleting_a_badged_original_keeps_its_copies_under_the_unbadged_original() {
    let fx = with_endpoint();
    fx.mint(11, 10, ALL, 5).unwrap();
    fx.copy(12, 11, ALL).unwrap();
    fx.delete(11).unwrap();
    // The copy inherits the boundary of the badged subtree...
    assert!(fx.slot(12).mdb().first_badged);
    assert!(is_mdb_parent_of(fx.slot(10), fx.slot(12)));
    fx.revoke(10).unwrap();
    assert!(fx.slot(12).is_empty());
}

#[test]
fn badges_cannot_be_changed_and_mutate_cannot_badge() {
    let fx = with_endpoint();
    fx.mint(11, 10, ALL, 5).unwrap();
    assert_eq!(fx.mint(12, 11, ALL, 6), err(SyscallError::IllegalOperation));
    assert_eq!(fx.mutate(12, 10, 6), err(SyscallError::IllegalOperation));
    // A failed operation changes nothing.
    assert!(fx.slot(12).is_empty() && !fx.slot(10).is_empty());
    // Minting with badge 0 from an unbadged cap is an ordinary copy.
    fx.mint(13, 10, ALL, 0).unwrap();
    assert!(!is_cap_revocable(&fx.cap(13), &fx.cap(10)));
}

#[test]
fn move_keeps_the_cap_and_its_place_in_the_tree() {
    let fx = with_endpoint();
    fx.copy(11, 10, ALL).unwrap();
    let before = fx.cap(10);
    fx.mv(20, 10).unwrap();
    assert!(fx.slot(10).is_empty());
    assert_eq!(fx.cap(20), before);
    assert!(fx.slot(20).mdb().revocable);
    assert!(is_mdb_parent_of(fx.slot(20), fx.slot(11)));
    fx.revoke(20).unwrap();
    assert!(fx.slot(11).is_empty());
    check_links(&fx);
}

#[test]
fn mutate_sets_a_cnode_guard_while_moving() {
    let fx = Fixture::new(20);
    fx.retype(UT, ObjectType::CNode, 4, 10, 1).unwrap();
    fx.mutate(11, 10, CNodeCapData::new(0x3, 2).0).unwrap();
    let Cap::CNode {
        radix,
        guard_size,
        guard,
        ..
    } = fx.cap(11)
    else {
        panic!()
    };
    assert_eq!((radix, guard_size, guard), (4, 2, 3));
    assert!(fx.slot(10).is_empty());
    // A guard that does not fit in a word with the radix is refused.
    assert_eq!(
        fx.mutate(12, 11, CNodeCapData::new(0, 61).0),
        err(SyscallError::IllegalOperation)
    );
    // Mint can set a guard on a copy as well.
    fx.mint(12, 11, ALL, CNodeCapData::new(1, 1).0).unwrap();
    assert!(matches!(
        fx.cap(12),
        Cap::CNode {
            guard_size: 1,
            guard: 1,
            ..
        }
    ));
}

#[test]
fn copy_and_move_report_their_errors_in_sel4_order() {
    let fx = with_endpoint();
    fx.copy(11, 10, ALL).unwrap();
    // Destination occupied comes before looking at the source.
    assert_eq!(fx.copy(11, 99, ALL), err(SyscallError::DeleteFirst));
    assert_eq!(
        fx.copy(12, 99, ALL),
        err(SyscallError::FailedLookup {
            source: true,
            fault: LookupFault::MissingCapability { bits_left: D }
        })
    );
    assert_eq!(fx.mv(12, 99), fx.copy(12, 99, ALL));
    // Truncated messages, per method.
    assert_eq!(
        fx.cnode(Label::CNodeCopy, &[12, D, 10, D], 1),
        err(SyscallError::TruncatedMessage)
    );
    assert_eq!(
        fx.cnode(Label::CNodeCopy, &[12, D, 10, D, 0xf], 0),
        err(SyscallError::TruncatedMessage)
    );
    assert_eq!(
        fx.cnode(Label::CNodeMint, &[12, D, 10, D, 0xf], 1),
        err(SyscallError::TruncatedMessage)
    );
    assert_eq!(
        fx.cnode(Label::CNodeMutate, &[12, D, 10, D], 1),
        err(SyscallError::TruncatedMessage)
    );
    assert_eq!(
        fx.cnode(Label::CNodeMove, &[12, D, 10], 1),
        err(SyscallError::TruncatedMessage)
    );
    assert_eq!(
        fx.cnode(Label::CNodeDelete, &[12], 0),
        err(SyscallError::TruncatedMessage)
    );
    // Labels that are not CNode methods.
    assert_eq!(
        fx.cnode(Label::TcbSetFlags, &[12, D], 0),
        err(SyscallError::IllegalOperation)
    );
    assert_eq!(
        fx.cnode(Label::IrqIssueIrqHandler, &[12, D], 0),
        err(SyscallError::IllegalOperation)
    );
    let extra = [fx.root_slot];
    assert_eq!(
        decode_cnode_invocation(&Invocation::new(9999, &[12, D], &extra), &fx.root_cap()),
        err(SyscallError::IllegalOperation)
    );
    // Bad depths of the destination.
    assert_eq!(
        fx.cnode(Label::CNodeDelete, &[12, 0], 0),
        err(SyscallError::RangeError { min: 1, max: 64 })
    );
    assert_eq!(
        fx.cnode(Label::CNodeDelete, &[12, 65], 0),
        err(SyscallError::RangeError { min: 1, max: 64 })
    );
    // A source root that is no CNode.
    let extra = [fx.slot(10)];
    assert_eq!(
        decode_cnode_invocation(
            &Invocation::new(Label::CNodeCopy.number(), &[12, D, 10, D, 0xf], &extra),
            &fx.root_cap()
        ),
        err(SyscallError::FailedLookup {
            source: true,
            fault: LookupFault::InvalidRoot
        })
    );
    check_links(&fx);
}

#[test]
fn caps_that_cannot_be_derived() {
    let fx = Fixture::new(20);
    // IRQ control cannot be copied.
    assert_eq!(fx.copy(20, IRQ, ALL), err(SyscallError::IllegalOperation));
    // An untyped with children cannot be copied.
    fx.retype(UT, ObjectType::Endpoint, 0, 10, 1).unwrap();
    assert_eq!(fx.copy(20, UT, ALL), err(SyscallError::RevokeFirst));
    // Unmapped page tables and VSpaces cannot be copied.
    fx.retype(UT, ObjectType::PageTable, 0, 11, 1).unwrap();
    fx.retype(UT, ObjectType::VSpace, 0, 12, 1).unwrap();
    assert_eq!(fx.copy(20, 11, ALL), err(SyscallError::IllegalOperation));
    assert_eq!(fx.copy(20, 12, ALL), err(SyscallError::IllegalOperation));
    // But they can be moved.
    fx.mv(20, 11).unwrap();
    // Frames can be copied, and the copy is unmapped.
    fx.retype(UT, ObjectType::SmallPage, 0, 13, 1).unwrap();
    fx.copy(21, 13, CapRights::new(false, false, true, false))
        .unwrap();
    assert!(matches!(
        fx.cap(21),
        Cap::Frame {
            rights: crate::cap::VmRights::ReadOnly,
            mapped: None,
            ..
        }
    ));
    assert!(!is_final_capability(fx.slot(21)));
    check_links(&fx);
}

#[test]
fn copying_an_untyped_makes_a_child_and_fills_the_parent() {
    let fx = Fixture::new(20);
    fx.copy(20, UT, ALL).unwrap();
    assert!(is_mdb_parent_of(fx.slot(UT), fx.slot(20)));
    assert_eq!(fx.free_index(UT), 1 << fx.ut_bits);
    // The parent can no longer hand out memory; the child can.
    assert!(matches!(
        fx.retype(UT, ObjectType::Endpoint, 0, 30, 1),
        Err(Exception::Syscall(SyscallError::NotEnoughMemory {
            available: 0
        }))
    ));
    fx.retype(20, ObjectType::Endpoint, 0, 30, 1).unwrap();
    // Revoking the parent removes the child and its objects.
    fx.revoke(UT).unwrap();
    assert_eq!(fx.occupied(), BTreeSet::from([UT, DEV_UT, IRQ]));
    fx.retype(UT, ObjectType::Endpoint, 0, 30, 1).unwrap();
    check_links(&fx);
}

#[test]
fn rotate_moves_two_caps_or_swaps_them() {
    let fx = Fixture::new(20);
    // Reply caps ignore Rotate's data words (badged caps would refuse them).
    fx.retype(UT, ObjectType::Reply, 0, 10, 2).unwrap();
    let (a, b) = (fx.cap(10), fx.cap(11));
    fx.rotate(12, 11, 10).unwrap();
    assert_eq!((fx.cap(10), fx.cap(11), fx.cap(12)), (Cap::Null, a, b));
    // Source = destination swaps.
    fx.rotate(12, 11, 12).unwrap();
    assert_eq!((fx.cap(11), fx.cap(12)), (b, a));
    check_links(&fx);
    // Both caps stay originals under the untyped.
    fx.revoke(UT).unwrap();
    assert!(fx.slot(11).is_empty() && fx.slot(12).is_empty());
}

#[test]
fn rotate_reports_its_errors() {
    let fx = Fixture::new(20);
    fx.retype(UT, ObjectType::CNode, 2, 10, 3).unwrap();
    assert_eq!(fx.rotate(13, 11, 11), err(SyscallError::IllegalOperation));
    assert_eq!(fx.rotate(11, 11, 10), err(SyscallError::IllegalOperation));
    assert_eq!(fx.rotate(12, 11, 10), err(SyscallError::DeleteFirst));
    assert_eq!(
        fx.rotate(13, 20, 10),
        err(SyscallError::FailedLookup {
            source: false,
            fault: LookupFault::MissingCapability { bits_left: D }
        })
    );
    assert_eq!(
        fx.rotate(13, 10, 20),
        err(SyscallError::FailedLookup {
            source: true,
            fault: LookupFault::MissingCapability { bits_left: D }
        })
    );
    assert_eq!(
        fx.cnode(Label::CNodeRotate, &[13, D, 0, 11, D, 0, 10, D], 1),
        err(SyscallError::TruncatedMessage)
    );
    assert_eq!(
        fx.cnode(Label::CNodeRotate, &[13, D, 0, 11, D, 0, 10], 2),
        err(SyscallError::TruncatedMessage)
    );
    // Rotating endpoint caps goes through Mutate's data rule, which refuses them.
    fx.retype(UT, ObjectType::Endpoint, 0, 20, 2).unwrap();
    assert_eq!(fx.rotate(22, 21, 20), err(SyscallError::IllegalOperation));
    // A pivot guard that does not fit is refused.
    assert_eq!(
        fx.cnode(
            Label::CNodeRotate,
            &[13, D, CNodeCapData::new(0, 63).0, 11, D, 0, 10, D],
            2
        ),
        err(SyscallError::IllegalOperation)
    );
    check_links(&fx);
}

#[test]
fn delete_of_an_empty_slot_succeeds_and_cancel_badged_sends_needs_full_rights() {
    let fx = with_endpoint();
    fx.delete(50).unwrap();
    fx.mint(11, 10, ALL, 7).unwrap();
    fx.mint(12, 10, CapRights::new(true, true, false, true), 8)
        .unwrap();
    fx.cnode(Label::CNodeCancelBadgedSends, &[11, D], 0)
        .unwrap();
    fx.cnode(Label::CNodeCancelBadgedSends, &[10, D], 0)
        .unwrap();
    assert_eq!(
        fx.cnode(Label::CNodeCancelBadgedSends, &[12, D], 0),
        err(SyscallError::IllegalOperation)
    );
    assert_eq!(
        fx.cnode(Label::CNodeCancelBadgedSends, &[UT, D], 0),
        err(SyscallError::IllegalOperation)
    );
    assert_eq!(
        fx.cnode(Label::CNodeCancelBadgedSends, &[50, D], 0),
        err(SyscallError::IllegalOperation)
    );
}

#[test]
fn the_final_cap_rule_follows_every_cap_to_an_object() {
    let fx = with_endpoint();
    fx.retype(UT, ObjectType::Notification, 0, 20, 1).unwrap();
    fx.copy(11, 10, ALL).unwrap();
    fx.mint(12, 10, ALL, 3).unwrap();
    fx.copy(21, 20, ALL).unwrap();
    let caps = [10, 11, 12, 20, 21];
    for &i in &caps {
        let others = caps
            .iter()
            .filter(|&&j| j != i && same_object_as(&fx.cap(i), &fx.cap(j)))
            .count();
        assert_eq!(is_final_capability(fx.slot(i)), others == 0, "slot {i}");
    }
    fx.delete(11).unwrap();
    fx.delete(12).unwrap();
    assert!(is_final_capability(fx.slot(10)));
    // Untyped caps are final on their own.
    assert!(is_final_capability(fx.slot(UT)));
}

#[test]
fn debug_cap_identify_reports_sel4_type_numbers() {
    use crate::debug::debug_cap_identify;
    let fx = with_endpoint();
    let root = fx.root_cap();
    assert_eq!(debug_cap_identify(&root, 10), 4);
    assert_eq!(debug_cap_identify(&root, UT), 2);
    assert_eq!(debug_cap_identify(&root, IRQ), 14);
    assert_eq!(debug_cap_identify(&root, 50), 0);
    // A failed lookup reads as the null cap.
    assert_eq!(debug_cap_identify(&root, 1 << 63), 0);
    assert_eq!(debug_cap_identify(&Cap::Null, 10), 0);
}
