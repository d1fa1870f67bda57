//! Deleting CNodes and TCBs that hold caps, including cycles, and
//! preemption of long deletes and revokes.

use super::*;
use crate::cte::{cte_insert, is_final_capability};
use crate::object::tcb;
use crate::preempt::{reset_work_units, set_preemption_check};

const ALL: CapRights = CapRights::ALL;

/// The slots of a CNode cap's object.
fn cnode_slots(cap: &Cap) -> Vec<SlotRef> {
    let Cap::CNode { paddr, radix, .. } = *cap else {
        panic!("{cap:?} is no CNode")
    };
    (0..1u64 << radix).map(|i| SlotRef::nth(paddr, i)).collect()
}

/// Copies the cap in root slot `src` into `dest` (any slot), as CNode Copy
/// would, through the kernel's own insert.
fn copy_into(fx: &Fixture, src: u64, dest: SlotRef) {
    let cap = fx.cap(src);
    cte_insert(&cap, fx.slot(src), dest);
}

#[test]
fn deleting_the_last_cap_to_a_cnode_deletes_what_it_holds() {
    let fx = Fixture::new(20);
    fx.retype(UT, ObjectType::CNode, 3, 20, 1).unwrap();
    let inner = cnode_slots(&fx.cap(20));
    // The CNode holds the only caps to four endpoints and a copy of another.
    fx.retype_args(UT, &[ObjectType::Endpoint as u64, 0, 20, D, 0, 4])
        .unwrap();
    fx.retype(UT, ObjectType::Endpoint, 0, 30, 1).unwrap();
    copy_into(&fx, 30, inner[7]);
    assert!(is_final_capability(inner[0]));
    fx.delete(20).unwrap();
    assert!(inner.iter().all(|s| s.is_empty()));
    assert!(fx.slot(20).is_empty());
    assert!(is_final_capability(fx.slot(30)));
    let linked = check_links(&fx);
    assert!(linked.iter().all(|s| !inner.contains(s)));
}

#[test]
fn deleting_a_copy_of_a_cnode_cap_leaves_the_cnode_alone() {
    let fx = Fixture::new(20);
    fx.retype(UT, ObjectType::CNode, 2, 20, 1).unwrap();
    fx.copy(21, 20, ALL).unwrap();
    let inner = cnode_slots(&fx.cap(20));
    fx.retype_args(UT, &[ObjectType::Endpoint as u64, 0, 20, D, 1, 1])
        .unwrap();
    fx.delete(20).unwrap();
    assert!(!inner[1].is_empty());
    fx.delete(21).unwrap();
    assert!(inner[1].is_empty());
}

#[test]
fn a_cnode_holding_the_only_cap_to_itself_is_cleaned_up_by_revoke() {
    // In every slot position: the first slot is where a cyclic zombie sits.
    for at in 0..4 {
        let fx = Fixture::new(20);
        fx.retype(UT, ObjectType::CNode, 2, 20, 1).unwrap();
        let inner = cnode_slots(&fx.cap(20));
        let free: Vec<u64> = (0..4).filter(|&i| i != at).take(2).collect();
        for &i in &free {
            fx.retype_args(UT, &[ObjectType::Endpoint as u64, 0, 20, D, i, 1])
                .unwrap();
        }
        // Move the CNode's only cap into its own slot: now unreachable.
        crate::cte::cte_move(&fx.cap(20), fx.slot(20), inner[at as usize]);
        check_links(&fx);
        fx.revoke(UT).unwrap();
        assert!(inner.iter().all(|s| s.is_empty()), "cap at {at}");
        assert_eq!(fx.occupied(), BTreeSet::from([UT, DEV_UT, IRQ]));
        assert_eq!(
            check_links(&fx).len(),
            3 + 1,
            "only the boot caps and the root cap remain"
        );
        // And the memory is usable again.
        assert_eq!(
            fx.retype(UT, ObjectType::Endpoint, 0, 20, 1)
                .unwrap()
                .first_paddr,
            fx.ut_base
        );
    }
}

#[test]
fn a_cnode_whose_first_slot_holds_its_last_cap_is_deleted_from_outside() {
    // A holds the only cap to B in A's slot 1, and B's own first slot holds
    // the only cap to A: deleting a copy is not enough, revoke finishes.
    let fx = Fixture::new(20);
    fx.retype(UT, ObjectType::CNode, 2, 20, 2).unwrap();
    let (a, b) = (cnode_slots(&fx.cap(20)), cnode_slots(&fx.cap(21)));
    fx.retype_args(UT, &[ObjectType::Endpoint as u64, 0, 21, D, 2, 2])
        .unwrap();
    crate::cte::cte_move(&fx.cap(20), fx.slot(20), b[0]);
    crate::cte::cte_move(&fx.cap(21), fx.slot(21), a[1]);
    fx.revoke(UT).unwrap();
    assert!(a.iter().chain(&b).all(|s| s.is_empty()));
    check_links(&fx);
}

#[test]
fn two_cnodes_holding_each_other_are_cleaned_up_by_revoke() {
    let fx = Fixture::new(20);
    fx.retype(UT, ObjectType::CNode, 2, 20, 2).unwrap();
    let (a, b) = (cnode_slots(&fx.cap(20)), cnode_slots(&fx.cap(21)));
    fx.retype_args(UT, &[ObjectType::Notification as u64, 0, 20, D, 2, 2])
        .unwrap();
    fx.retype_args(UT, &[ObjectType::Notification as u64, 0, 21, D, 0, 2])
        .unwrap();
    crate::cte::cte_move(&fx.cap(20), fx.slot(20), b[3]);
    crate::cte::cte_move(&fx.cap(21), fx.slot(21), a[0]);
    fx.revoke(UT).unwrap();
    assert!(a.iter().chain(&b).all(|s| s.is_empty()));
    assert_eq!(fx.occupied(), BTreeSet::from([UT, DEV_UT, IRQ]));
    check_links(&fx);
}

#[test]
fn deleting_a_cnode_that_holds_the_last_cap_to_another_terminates() {
    let fx = Fixture::new(20);
    fx.retype(UT, ObjectType::CNode, 2, 20, 2).unwrap();
    let (a, b) = (cnode_slots(&fx.cap(20)), cnode_slots(&fx.cap(21)));
    fx.retype_args(UT, &[ObjectType::Endpoint as u64, 0, 21, D, 1, 3])
        .unwrap();
    fx.retype_args(UT, &[ObjectType::Endpoint as u64, 0, 20, D, 0, 1])
        .unwrap();
    // A holds the only cap to B (which holds three endpoints).
    crate::cte::cte_move(&fx.cap(21), fx.slot(21), a[2]);
    fx.delete(20).unwrap();
    assert!(fx.slot(20).is_empty());
    assert!(a.iter().all(|s| s.is_empty()), "A is emptied");
    // B was not recursed into: it is left as a cyclic zombie in its own
    // first slot, unreachable but consistent (seL4 manual, "Deletion and
    // Revocation").
    assert!(matches!(b[0].cap(), Cap::Zombie { paddr, .. } if paddr == b[0].paddr()));
    check_links(&fx);
    // Revoking the untyped finishes it.
    fx.revoke(UT).unwrap();
    assert!(b.iter().all(|s| s.is_empty()));
    assert_eq!(fx.occupied(), BTreeSet::from([UT, DEV_UT, IRQ]));
    check_links(&fx);
}

#[test]
fn a_cnode_kept_alive_by_a_copy_inside_itself_goes_with_revoke() {
    let fx = Fixture::new(20);
    fx.retype(UT, ObjectType::CNode, 2, 20, 1).unwrap();
    let a = cnode_slots(&fx.cap(20));
    copy_into(&fx, 20, a[3]);
    // Not final: the cap inside keeps the CNode alive.
    fx.delete(20).unwrap();
    assert!(!a[3].is_empty());
    fx.revoke(UT).unwrap();
    assert!(a[3].is_empty());
    check_links(&fx);
}

#[test]
fn deleting_the_last_tcb_cap_empties_its_slots() {
    let fx = Fixture::new(20);
    let t = fx.retype(UT, ObjectType::Tcb, 0, 20, 1).unwrap();
    fx.retype(UT, ObjectType::Endpoint, 0, 21, 1).unwrap();
    fx.retype(UT, ObjectType::CNode, 1, 22, 1).unwrap();
    let slots: Vec<SlotRef> = (0..tcb::TCB_CNODE_ENTRIES)
        .map(|i| tcb::slot(t.first_paddr, i))
        .collect();
    copy_into(&fx, 22, slots[tcb::CTABLE as usize]);
    copy_into(&fx, 21, slots[tcb::FAULT_HANDLER as usize]);
    fx.mv(23, 21).unwrap();
    fx.delete(23).unwrap();
    // The fault endpoint is now only held by the TCB.
    assert!(is_final_capability(slots[tcb::FAULT_HANDLER as usize]));
    fx.delete(20).unwrap();
    assert!(slots.iter().all(|s| s.is_empty()));
    assert!(is_final_capability(fx.slot(22)));
    // The TCB's cap slot 0 is its base: a TCB cap names its first slot.
    assert_eq!(slots[0].paddr(), t.first_paddr);
    check_links(&fx);
}

#[test]
fn a_tcb_holding_its_own_cap_is_cleaned_up_by_revoke() {
    let fx = Fixture::new(20);
    let t = fx.retype(UT, ObjectType::Tcb, 0, 20, 1).unwrap();
    crate::cte::cte_move(
        &fx.cap(20),
        fx.slot(20),
        tcb::slot(t.first_paddr, tcb::BUFFER),
    );
    fx.revoke(UT).unwrap();
    assert!((0..tcb::TCB_CNODE_ENTRIES).all(|i| tcb::slot(t.first_paddr, i).is_empty()));
    check_links(&fx);
}

#[test]
fn a_preempted_delete_resumes_and_finishes() {
    let fx = Fixture::new(22);
    fx.retype(UT, ObjectType::CNode, 8, 20, 1).unwrap();
    let inner = cnode_slots(&fx.cap(20));
    fx.retype_args(UT, &[ObjectType::Endpoint as u64, 0, 20, D, 0, 256])
        .unwrap();
    set_preemption_check(Some(|| true));
    reset_work_units();
    let (r, preemptions) = until_done(|| fx.delete(20));
    set_preemption_check(None);
    r.unwrap();
    assert!(
        preemptions >= 2,
        "256 slots take several rounds ({preemptions})"
    );
    assert!(inner.iter().all(|s| s.is_empty()));
    assert!(fx.slot(20).is_empty());
    check_links(&fx);
}

#[test]
fn a_preempted_revoke_resumes_and_finishes() {
    let fx = Fixture::new(22);
    fx.retype(UT, ObjectType::CNode, 8, 20, 1).unwrap();
    fx.retype_args(UT, &[ObjectType::Notification as u64, 0, 20, D, 0, 256])
        .unwrap();
    fx.retype(UT, ObjectType::Endpoint, 0, 21, 200).unwrap();
    set_preemption_check(Some(|| true));
    reset_work_units();
    let (r, preemptions) = until_done(|| fx.revoke(UT));
    set_preemption_check(None);
    r.unwrap();
    assert!(preemptions >= 4, "{preemptions}");
    assert_eq!(fx.occupied(), BTreeSet::from([UT, DEV_UT, IRQ]));
    check_links(&fx);
}
