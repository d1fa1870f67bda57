//! Round trips of the stored form and the rules, by example and by property.
use super::*;
use proptest::prelude::*;
use septa_abi::{CNodeCapData, TCB_SIZE_BITS};

proptest! {
    #[test]
    fn every_cap_survives_encode_then_decode(cap in strategy::any_cap()) {
        let raw = cap.encode();
        prop_assert_eq!(raw.try_decode(), Some(cap));
        prop_assert_eq!(raw.type_number(), cap.type_number());
    }

    #[test]
    fn the_raw_shortcuts_agree_with_the_full_decode(cap in strategy::any_cap()) {
        let raw = cap.encode();
        let bits = |b: &[bool]| b.iter().enumerate().fold(0, |a, (i, &v)| a | (v as u64) << i);
        let want = match cap {
            Cap::CNode { paddr, radix, guard_size, guard } => {
                Some((paddr, radix as u64, guard_size as u64, guard))
            }
            _ => None,
        };
        prop_assert_eq!(raw.as_cnode(), want);
        let want = match cap {
            Cap::Endpoint { paddr, badge, can_send, can_receive, can_grant, can_grant_reply } => {
                Some((paddr, badge, bits(&[can_send, can_receive, can_grant, can_grant_reply])))
            }
            _ => None,
        };
        prop_assert_eq!(raw.as_endpoint(), want);
        let want = match cap {
            Cap::Notification { paddr, badge, can_send, can_receive } => {
                Some((paddr, badge, bits(&[can_send, can_receive])))
            }
            _ => None,
        };
        prop_assert_eq!(raw.as_notification(), want);
        let want = match cap {
            Cap::Reply { paddr, can_grant } => Some((paddr, can_grant)),
            _ => None,
        };
        prop_assert_eq!(raw.as_reply(), want);
        let want = match cap {
            Cap::VSpace { paddr, mapped_asid: Some(asid) } => Some((paddr, asid)),
            _ => None,
        };
        prop_assert_eq!(raw.as_mapped_vspace(), want);
    }

    #[test]
    fn a_small_frame_moved_on_is_the_frame_encoded_there(
        page in 0u64..(1 << 30),
        vpage in 0u64..(1 << 34),
        n in 0u64..(1 << 12),
        asid in any::<u16>(),
        is_device in any::<bool>(),
        rights in prop_oneof![Just(VmRights::ReadWrite), Just(VmRights::ReadOnly)],
    ) {
        let frame = |k: u64| Cap::Frame {
            paddr: (page + k) << PAGE_BITS,
            size: FrameSize::Small,
            rights,
            is_device,
            mapped: Some(Mapping { asid, vaddr: (vpage + k) << PAGE_BITS }),
        };
        prop_assert_eq!(frame(0).encode().small_frame_advanced(n), frame(n).encode());
    }

    #[test]
    fn decoding_arbitrary_words_never_panics_and_is_stable(w0 in any::<u64>(), w1 in any::<u64>()) {
        if let Some(cap) = RawCap([w0, w1]).try_decode() {
            // Whatever decodes re-encodes to something that decodes the same.
            prop_assert_eq!(cap.encode().try_decode(), Some(cap));
        }
    }
}

#[test]
fn the_null_cap_is_all_zero_so_fresh_memory_holds_empty_slots() {
    assert_eq!(Cap::Null.encode(), RawCap([0, 0]));
    assert_eq!(RawCap([0, 0]).decode(), Cap::Null);
}

#[test]
fn type_numbers_follow_sel4() {
    assert_eq!(Cap::new_endpoint(0x1000).type_number(), 4);
    assert_eq!(
        Cap::Frame {
            paddr: 0x1000,
            size: FrameSize::Small,
            rights: VmRights::ReadWrite,
            is_device: false,
            mapped: None
        }
        .type_number(),
        1
    );
    assert_eq!(Cap::Smc { badge: 0 }.type_number(), 25);
    for n in 0..32 {
        if let Some(t) = CapType::from_u64(n) {
            assert_eq!(t as u64, n);
        }
    }
}

#[test]
fn untyped_regions_contain_objects_inside_them_only() {
    let ut = Cap::Untyped {
        paddr: 0x4000_0000,
        size_bits: 16,
        free_index: 0,
        is_device: false,
    };
    assert!(same_region_as(&ut, &Cap::new_endpoint(0x4000_fff0)));
    assert!(!same_region_as(&ut, &Cap::new_endpoint(0x4001_0000)));
    assert!(!same_region_as(&ut, &Cap::new_endpoint(0x3fff_fff0)));
    // A TCB that would stick out of the end is not inside.
    let tcb_bytes = 1u64 << TCB_SIZE_BITS;
    let last = 0x4001_0000 - tcb_bytes;
    assert!(!same_region_as(
        &ut,
        &Cap::Tcb {
            paddr: last + 0x400
        }
    ));
    assert!(same_region_as(&ut, &Cap::Tcb { paddr: last }));
    // Non-physical caps are never inside an untyped.
    assert!(!same_region_as(&ut, &Cap::IrqControl));
    // Untyped caps are never "the same object", even as themselves.
    assert!(!same_object_as(&ut, &ut));
}

#[test]
fn badges_are_set_once_by_mint_and_never_by_mutate() {
    let ep = Cap::new_endpoint(0x100);
    let badged = update_cap_data(false, 42, &ep);
    assert_eq!(badged.badge(), Some(42));
    assert_eq!(update_cap_data(false, 7, &badged), Cap::Null);
    assert_eq!(update_cap_data(true, 7, &ep), Cap::Null);
    let smc = Cap::Smc { badge: 0 };
    assert_eq!(update_cap_data(false, 3, &smc), Cap::Smc { badge: 3 });
    // Caps without data ignore the word.
    assert_eq!(
        update_cap_data(true, 99, &Cap::Tcb { paddr: 0x800 }),
        Cap::Tcb { paddr: 0x800 }
    );
}

#[test]
fn cnode_guard_data_is_masked_and_bounded_by_the_word() {
    let cn = Cap::CNode {
        paddr: 0x1000,
        radix: 8,
        guard_size: 0,
        guard: 0,
    };
    let c = update_cap_data(true, CNodeCapData::new(0xff, 4).0, &cn);
    assert_eq!(
        c,
        Cap::CNode {
            paddr: 0x1000,
            radix: 8,
            guard_size: 4,
            guard: 0xf
        }
    );
    assert!(!update_cap_data(true, CNodeCapData::new(0, 56).0, &cn).is_null());
    assert!(update_cap_data(true, CNodeCapData::new(0, 57).0, &cn).is_null());
}

#[test]
fn rights_only_ever_shrink() {
    let ep = Cap::new_endpoint(0x100);
    let r = mask_rights(CapRights::new(false, true, false, true), &ep);
    assert_eq!(
        r,
        Cap::Endpoint {
            paddr: 0x100,
            badge: 0,
            can_send: true,
            can_receive: false,
            can_grant: true,
            can_grant_reply: false
        }
    );
    assert_eq!(mask_rights(CapRights::ALL, &r), r);
    assert!(!has_cancel_send_rights(&r) && has_cancel_send_rights(&ep));
    assert_eq!(
        VmRights::ReadWrite.mask(CapRights::new(false, false, true, false)),
        VmRights::ReadOnly
    );
    assert_eq!(
        VmRights::ReadWrite.mask(CapRights::new(false, false, false, true)),
        VmRights::KernelOnly
    );
    assert_eq!(VmRights::ReadOnly.mask(CapRights::ALL), VmRights::ReadOnly);
    assert_eq!(
        VmRights::KernelOnly.mask(CapRights::ALL),
        VmRights::KernelOnly
    );
}

#[test]
fn revocable_derivations() {
    let ep = Cap::new_endpoint(0x100);
    assert!(is_cap_revocable(&update_cap_data(false, 1, &ep), &ep));
    assert!(!is_cap_revocable(&ep, &ep));
    assert!(is_cap_revocable(
        &Cap::IrqHandler { irq: 3 },
        &Cap::IrqControl
    ));
    assert!(!is_cap_revocable(
        &Cap::IrqHandler { irq: 3 },
        &Cap::IrqHandler { irq: 3 }
    ));
    let ut = Cap::Untyped {
        paddr: 0x1000,
        size_bits: 12,
        free_index: 0,
        is_device: false,
    };
    assert!(is_cap_revocable(&ut, &ut));
    assert!(!is_cap_revocable(
        &Cap::Tcb { paddr: 0x800 },
        &Cap::Tcb { paddr: 0x800 }
    ));
}
