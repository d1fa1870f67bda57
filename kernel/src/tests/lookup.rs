//! Capability address lookup: guards, depths and every failure.

use super::*;
use crate::cspace::{
    lookup_cap, lookup_slot, lookup_slot_for_cnode_op, resolve_address_bits, Resolved,
};
use crate::error::LookupFault;
use septa_abi::CNodeCapData;

/// Root CNode (radix 8, no guard) whose slot 5 holds a CNode of radix 4
/// with a 3-bit guard 0b101, whose slot 9 holds an endpoint.
struct TwoLevel {
    fx: Fixture,
    root: Cap,
    inner: u64,
}

fn two_level() -> TwoLevel {
    let fx = Fixture::new(20);
    fx.retype(UT, ObjectType::CNode, 4, 5, 1).unwrap();
    fx.mutate(6, 5, CNodeCapData::new(0b101, 3).0).unwrap();
    fx.mv(5, 6).unwrap();
    let Cap::CNode { paddr: inner, .. } = fx.cap(5) else {
        panic!()
    };
    fx.retype_args(UT, &[ObjectType::Endpoint as u64, 0, 5, D, 9, 1])
        .unwrap();
    let Cap::CNode { paddr, .. } = fx.root_cap() else {
        panic!()
    };
    let root = Cap::CNode {
        paddr,
        radix: ROOT_RADIX,
        guard_size: 0,
        guard: 0,
    };
    TwoLevel { fx, root, inner }
}

#[test]
fn a_two_level_address_resolves_through_the_guard() {
    let t = two_level();
    // 8 bits of root index, 3 guard bits, 4 bits of index: 15 bits.
    let cptr = (5 << 7) | (0b101 << 4) | 9;
    let r = resolve_address_bits(&t.root, cptr, 15).unwrap();
    assert_eq!(
        r,
        Resolved {
            slot: SlotRef::nth(t.inner, 9),
            bits_remaining: 0
        }
    );
    assert!(matches!(r.slot.cap(), Cap::Endpoint { .. }));
    // Stopping at depth 8 names the slot holding the inner CNode cap.
    assert_eq!(
        resolve_address_bits(&t.root, 5, 8).unwrap().slot,
        t.fx.slot(5)
    );
    // A full 64-bit lookup in the fixture's CSpace: the address is the top bits.
    let full_root = t.fx.root_cap();
    assert_eq!(lookup_cap(&full_root, 10), Ok(Cap::Null));
    assert!(matches!(
        lookup_cap(&full_root, UT),
        Ok(Cap::Untyped { .. })
    ));
}

#[test]
fn a_non_cnode_cap_ends_the_walk_with_bits_left() {
    let t = two_level();
    // Slot 10 of the root is empty: the walk stops there with 7 bits unused.
    let r = resolve_address_bits(&t.root, (10 << 7) | 0x7f, 15).unwrap();
    assert_eq!(
        r,
        Resolved {
            slot: t.fx.slot(10),
            bits_remaining: 7
        }
    );
    // A syscall lookup accepts that; a CNode operation does not.
    assert_eq!(
        lookup_slot_for_cnode_op(true, &t.root, (10 << 7) | 0x7f, 15),
        Err(SyscallError::FailedLookup {
            source: true,
            fault: LookupFault::DepthMismatch {
                bits_left: 7,
                bits_found: 0
            }
        })
    );
}

#[test]
fn every_lookup_failure_carries_sel4_details() {
    let t = two_level();
    // Not a CNode at the root.
    assert_eq!(
        resolve_address_bits(&Cap::new_endpoint(0x1000), 0, 64),
        Err(LookupFault::InvalidRoot)
    );
    assert_eq!(
        lookup_slot_for_cnode_op(false, &Cap::Null, 0, 64),
        Err(SyscallError::FailedLookup {
            source: false,
            fault: LookupFault::InvalidRoot
        })
    );
    // Wrong guard in the second level: bits left 7, the cap's guard, its size.
    let bad_guard = (5 << 7) | (0b100 << 4) | 9;
    assert_eq!(
        resolve_address_bits(&t.root, bad_guard, 15),
        Err(LookupFault::GuardMismatch {
            bits_left: 7,
            guard_found: 0b101,
            bits_found: 3
        })
    );
    // Too few bits for the guard.
    assert_eq!(
        resolve_address_bits(&t.root, 5 << 2, 10),
        Err(LookupFault::GuardMismatch {
            bits_left: 2,
            guard_found: 0b101,
            bits_found: 3
        })
    );
    // Enough for the guard but not the radix: a depth mismatch (found 7, left 5).
    assert_eq!(
        resolve_address_bits(&t.root, (5 << 5) | (0b101 << 2), 13),
        Err(LookupFault::DepthMismatch {
            bits_left: 5,
            bits_found: 7
        })
    );
    // At the root: fewer bits than the radix.
    assert_eq!(
        resolve_address_bits(&t.root, 1, 4),
        Err(LookupFault::DepthMismatch {
            bits_left: 4,
            bits_found: 8
        })
    );
    // The fixture's root guard (56 zero bits) must match.
    let full_root = t.fx.root_cap();
    assert_eq!(
        lookup_slot(&full_root, 1 << 8),
        Err(LookupFault::GuardMismatch {
            bits_left: 64,
            guard_found: 0,
            bits_found: 56
        })
    );
    // Depth out of range for CNode operations.
    for depth in [0, 65, u64::MAX] {
        assert_eq!(
            lookup_slot_for_cnode_op(true, &t.root, 0, depth),
            Err(SyscallError::RangeError { min: 1, max: 64 })
        );
    }
}

#[test]
fn guard_of_a_whole_word_and_an_empty_guard_both_work() {
    let fx = Fixture::new(20);
    // Root guard 56 bits of zero + radix 8 = 64 bits: cptr 0xff is slot 255.
    let root = fx.root_cap();
    assert_eq!(lookup_slot(&root, 0xff), Ok(fx.slot(255)));
    // A 63-bit guard on a radix-1 CNode takes the whole word.
    fx.retype(UT, ObjectType::CNode, 1, 20, 1).unwrap();
    let Cap::CNode { paddr, .. } = fx.cap(20) else {
        panic!()
    };
    let g = Cap::CNode {
        paddr,
        radix: 1,
        guard_size: 63,
        guard: 0x1234,
    };
    assert_eq!(
        resolve_address_bits(&g, (0x1234 << 1) | 1, 64)
            .unwrap()
            .slot,
        SlotRef::nth(paddr, 1)
    );
    assert!(resolve_address_bits(&g, (0x1235 << 1) | 1, 64).is_err());
}

#[test]
fn a_cspace_with_a_cycle_resolves_without_looping() {
    let fx = Fixture::new(20);
    // Root slot 7 holds a copy of the root CNode cap with no guard.
    let Cap::CNode { paddr, .. } = fx.root_cap() else {
        panic!()
    };
    let plain = Cap::CNode {
        paddr,
        radix: ROOT_RADIX,
        guard_size: 0,
        guard: 0,
    };
    crate::cte::cte_insert(&plain, fx.root_slot, fx.slot(7));
    // Eight hops through slot 7 then slot 9: 64 bits exactly.
    let cptr = 0x0707_0707_0707_0709;
    assert_eq!(
        resolve_address_bits(&plain, cptr, 64).unwrap().slot,
        fx.slot(9)
    );
    check_links(&fx);
}

#[test]
fn depths_wider_than_a_word_do_not_panic() {
    let t = two_level();
    // Kernel paths never pass more than 64 bits, but the walk must stay
    // total: this test fails by panicking.
    let _ = resolve_address_bits(&t.root, u64::MAX, 200);
    let _ = resolve_address_bits(&t.fx.root_cap(), 0, u64::MAX);
}

/// An address in the CSpace of [`the_fast_lookup_agrees_on_random_cspaces`]:
/// arbitrary, or built to pass the root guard (and then the inner CNode's)
/// so that the walk goes deep, with `raw` filling the bits left.
fn shaped_cptr(
    shape: u8,
    raw: u64,
    root: (u64, u64),
    index: u64,
    inner: (u64, u64, u64),
    inner_index: u64,
) -> u64 {
    // Fields placed from the top of the word down; bits past the end drop.
    let mut cptr = 0u64;
    let mut at = 64u64;
    let mut put = |v: u64, bits: u64| {
        if bits > 0 && bits <= at {
            at -= bits;
            cptr |= (v & ((1u128 << bits) - 1) as u64) << at;
        }
    };
    match shape {
        0 => return raw,
        1 => {
            put(root.1, root.0);
            put(index, ROOT_RADIX as u64);
        }
        _ => {
            put(root.1, root.0);
            put(5, ROOT_RADIX as u64);
            put(inner.2, inner.1);
            put(inner_index, inner.0);
        }
    }
    // The rest from `raw` (its low bits, all of them when nothing was put).
    let rest = if at == 0 {
        0
    } else {
        raw & (u64::MAX >> (64 - at))
    };
    cptr | rest
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]

    /// The fast paths' lookup (`cspace::lookup_fp`) finds the cap the
    /// general lookup finds, and the null cap wherever that fails, on
    /// random CSpaces: the root CNode with any guard (the one-level shape
    /// that takes the whole word among them), holding a guarded inner
    /// CNode of random radix (whose guard often takes the rest of the
    /// word, Microkit's two-level shape), an endpoint, and itself (a
    /// cycle). The same for the look-ups two at a time.
    #[test]
    fn the_fast_lookup_agrees_on_random_cspaces(
        whole_word in proptest::bool::ANY,
        fill_word in proptest::bool::ANY,
        root_guard_size in 0u64..=(64 - ROOT_RADIX as u64),
        root_guard in proptest::num::u64::ANY,
        inner_radix in 1u64..5,
        inner_guard_size in 0u64..64,
        inner_guard in proptest::num::u64::ANY,
        cptrs in proptest::collection::vec(
            (0u8..3, proptest::num::u64::ANY, 0u64..16, 0u64..16),
            1..24,
        ),
    ) {
        let fx = Fixture::new(20);
        let mask = |bits: u64| if bits == 0 { 0 } else { u64::MAX >> (64 - bits) };
        let Cap::CNode { paddr, .. } = fx.root_cap() else {
            panic!()
        };
        let root_guard_size = if whole_word { 64 - ROOT_RADIX as u64 } else { root_guard_size };
        let root = Cap::CNode {
            paddr,
            radix: ROOT_RADIX,
            guard_size: root_guard_size as u8,
            guard: root_guard & mask(root_guard_size),
        };
        // The inner CNode in root slot 5, its guard set as Mutate would.
        fx.retype(UT, ObjectType::CNode, inner_radix, 5, 1).unwrap();
        let Cap::CNode { paddr: inner, .. } = fx.cap(5) else {
            panic!()
        };
        // Microkit's shape: the inner CNode's guard takes what is left.
        let inner_guard_size = if fill_word {
            (64 - ROOT_RADIX as u64 - root_guard_size).saturating_sub(inner_radix)
        } else {
            inner_guard_size.min(64 - inner_radix)
        };
        let inner_guard = inner_guard & mask(inner_guard_size);
        fx.slot(5).set_cap(&Cap::CNode {
            paddr: inner,
            radix: inner_radix as u8,
            guard_size: inner_guard_size as u8,
            guard: inner_guard,
        });
        // An endpoint in root slot 9 and inner slot 1; the root in slot 7.
        fx.retype(UT, ObjectType::Endpoint, 0, 9, 1).unwrap();
        crate::cte::cte_insert(&fx.cap(9), fx.slot(9), SlotRef::nth(inner, 1));
        crate::cte::cte_insert(&root, fx.root_slot, fx.slot(7));
        let mut prev = 0;
        for (shape, raw, index, inner_index) in cptrs {
            let index = [5, 7, 9, 1][index as usize % 4] + (index / 4) * 16;
            let cptr = shaped_cptr(
                shape,
                raw,
                (root_guard_size, root_guard),
                index,
                (inner_radix, inner_guard_size, inner_guard),
                inner_index,
            );
            let slow = lookup_cap(&root, cptr).unwrap_or(Cap::Null);
            let fast = crate::cspace::lookup_fp(root.encode(), cptr).decode();
            proptest::prop_assert_eq!(fast, slow, "cptr {:#x}", cptr);
            // Two look-ups at once (`lookup_fp_pair`): with the previous
            // address, and with addresses that differ from this one in
            // the inner CNode's index bits (the pair's shared walk) or
            // just above them (a walk of its own).
            for other in [prev, cptr ^ (raw & mask(inner_radix)), cptr ^ (1 << inner_radix)] {
                let (a, b) = crate::cspace::lookup_fp_pair(root.encode(), cptr, other);
                let slow_b = lookup_cap(&root, other).unwrap_or(Cap::Null);
                proptest::prop_assert_eq!(a.decode(), slow, "pair, first {:#x}", cptr);
                proptest::prop_assert_eq!(b.decode(), slow_b, "pair, second {:#x} after {:#x}", other, cptr);
            }
            prev = cptr;
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 128, ..Default::default() })]

    /// The fast paths' remembered look-ups (`cspace::lookup_fp_memo` and
    /// `lookup_fp_pair_memo`) find what the general lookup finds through
    /// the thread's CSpace as it is now, while the path to the caps
    /// changes under them: the inner CNode's cap moves between root slots
    /// 5 and 6 or gets a new guard, and the thread's root cap a new guard.
    /// (A memo that outlived such a change would still find the old slot.)
    #[test]
    fn remembered_lookups_follow_every_change_of_the_path(
        inner_radix in 1u64..5,
        steps in proptest::collection::vec(
            (0u8..6, proptest::num::u64::ANY, 0u64..16, 0u64..16),
            1..32,
        ),
    ) {
        let fx = Fixture::new(20);
        let mask = |bits: u64| if bits == 0 { 0 } else { u64::MAX >> (64 - bits) };
        let Cap::CNode { paddr, .. } = fx.root_cap() else {
            panic!()
        };
        // The thread, its CSpace root a root CNode cap with a 4-bit guard.
        fx.retype(UT, ObjectType::Tcb, 0, 11, 1).unwrap();
        let Cap::Tcb { paddr: t } = fx.cap(11) else {
            panic!()
        };
        let t = crate::object::tcb::Tcb::new(t);
        let root_cap = |guard: u64| Cap::CNode {
            paddr,
            radix: ROOT_RADIX,
            guard_size: 4,
            guard: guard & 0xf,
        };
        let mut root = (4u64, 0u64);
        crate::cte::cte_insert(&root_cap(0), fx.root_slot, t.slot(crate::object::tcb::CTABLE));
        // The inner CNode in root slot 5, its guard taking the rest of
        // the word; an endpoint in root slot 9 and inner slots 1 and 2.
        fx.retype(UT, ObjectType::CNode, inner_radix, 5, 1).unwrap();
        let Cap::CNode { paddr: inner, .. } = fx.cap(5) else {
            panic!()
        };
        let inner_guard_size = 64 - 4 - ROOT_RADIX as u64 - inner_radix;
        let inner_cap = |guard: u64| Cap::CNode {
            paddr: inner,
            radix: inner_radix as u8,
            guard_size: inner_guard_size as u8,
            guard: guard & mask(inner_guard_size),
        };
        let mut inner_at = 5;
        let mut inner_guard = 0;
        fx.slot(5).set_cap(&inner_cap(0));
        fx.retype(UT, ObjectType::Endpoint, 0, 9, 1).unwrap();
        crate::cte::cte_insert(&fx.cap(9), fx.slot(9), SlotRef::nth(inner, 1));
        crate::cte::cte_insert(&fx.cap(9), fx.slot(9), SlotRef::nth(inner, 2));
        let mut prev = 0;
        for (op, raw, index, inner_index) in steps {
            match op {
                0..=2 => {
                    let index = [5, 6, 9][index as usize % 3];
                    let cptr = shaped_cptr(
                        op,
                        raw,
                        root,
                        index,
                        (inner_radix, inner_guard_size, inner_guard),
                        inner_index,
                    );
                    let now = t.slot(crate::object::tcb::CTABLE).cap();
                    let slow = lookup_cap(&now, cptr).unwrap_or(Cap::Null);
                    let slow_prev = lookup_cap(&now, prev).unwrap_or(Cap::Null);
                    // Twice each: the second finds the memo the first made.
                    for _ in 0..2 {
                        let one = crate::cspace::lookup_fp_memo(t, cptr).decode();
                        proptest::prop_assert_eq!(&one, &slow, "cptr {:#x}", cptr);
                        let (a, b) = crate::cspace::lookup_fp_pair_memo(t, cptr, prev);
                        proptest::prop_assert_eq!(&a.decode(), &slow, "pair {:#x}", cptr);
                        proptest::prop_assert_eq!(&b.decode(), &slow_prev, "pair {:#x}", prev);
                    }
                    prev = cptr;
                }
                3 => {
                    let to = 11 - inner_at;
                    fx.mv(to, inner_at).unwrap();
                    inner_at = to;
                }
                4 => {
                    inner_guard = raw & mask(inner_guard_size);
                    fx.slot(inner_at).set_cap(&inner_cap(inner_guard));
                }
                _ => {
                    root = (4, raw & 0xf);
                    t.slot(crate::object::tcb::CTABLE).set_cap(&root_cap(root.1));
                }
            }
        }
    }
}
