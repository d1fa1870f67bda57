//! Proptest generators of valid caps.
use super::raw::CAP_PADDR_LIMIT;
use super::*;
use proptest::prelude::*;

fn paddr(align_bits: u32) -> impl Strategy<Value = u64> {
    (0u64..(CAP_PADDR_LIMIT >> align_bits)).prop_map(move |p| p << align_bits)
}

fn mapping() -> impl Strategy<Value = Option<Mapping>> {
    proptest::option::of((1u16.., 0u64..(1 << 36)).prop_map(|(asid, v)| Mapping {
        asid,
        vaddr: v << PAGE_BITS,
    }))
}

pub fn any_cap() -> impl Strategy<Value = Cap> {
    prop_oneof![
        Just(Cap::Null),
        (paddr(4), 4u8..=47, 0u64..(1 << 47), any::<bool>()).prop_map(
            |(paddr, size_bits, free_index, is_device)| Cap::Untyped {
                paddr,
                size_bits,
                free_index,
                is_device
            }
        ),
        (paddr(4), any::<u64>(), any::<[bool; 4]>()).prop_map(|(paddr, badge, r)| {
            Cap::Endpoint {
                paddr,
                badge,
                can_send: r[0],
                can_receive: r[1],
                can_grant: r[2],
                can_grant_reply: r[3],
            }
        }),
        (paddr(6), any::<u64>(), any::<bool>(), any::<bool>()).prop_map(
            |(paddr, badge, can_send, can_receive)| Cap::Notification {
                paddr,
                badge,
                can_send,
                can_receive
            }
        ),
        (paddr(5), any::<bool>()).prop_map(|(paddr, can_grant)| Cap::Reply { paddr, can_grant }),
        (paddr(6), 1u8..=42, 0u8..=63, any::<u64>()).prop_map(|(paddr, radix, gs, g)| {
            Cap::CNode {
                paddr,
                radix,
                guard_size: gs,
                guard: g,
            }
        }),
        paddr(11).prop_map(|paddr| Cap::Tcb { paddr }),
        (paddr(7), 7u8..=47).prop_map(|(paddr, size_bits)| Cap::SchedContext { paddr, size_bits }),
        any::<u64>().prop_map(|core| Cap::SchedControl { core }),
        Just(Cap::IrqControl),
        any::<u64>().prop_map(|irq| Cap::IrqHandler { irq }),
        (paddr(5), proptest::option::of(0u8..64), any::<u64>()).prop_map(|(paddr, r, number)| {
            Cap::Zombie {
                paddr,
                kind: r.map_or(ZombieKind::Tcb, |radix| ZombieKind::CNode { radix }),
                number,
            }
        }),
        Just(Cap::Domain),
        any::<u64>().prop_map(|badge| Cap::Smc { badge }),
        (0u8..16, any::<u32>()).prop_map(|(irq, target)| Cap::SgiSignal { irq, target }),
        Just(Cap::AsidControl),
        (paddr(12), any::<u16>()).prop_map(|(paddr, asid_base)| Cap::AsidPool { paddr, asid_base }),
        (
            paddr(12),
            prop_oneof![
                Just(FrameSize::Small),
                Just(FrameSize::Large),
                Just(FrameSize::Huge)
            ],
            prop_oneof![
                Just(VmRights::KernelOnly),
                Just(VmRights::ReadWrite),
                Just(VmRights::ReadOnly)
            ],
            any::<bool>(),
            mapping()
        )
            .prop_map(|(paddr, size, rights, is_device, mapped)| Cap::Frame {
                paddr,
                size,
                rights,
                is_device,
                mapped
            }),
        (paddr(12), mapping()).prop_map(|(paddr, mapped)| Cap::PageTable { paddr, mapped }),
        (paddr(12), proptest::option::of(any::<u16>()))
            .prop_map(|(paddr, mapped_asid)| Cap::VSpace { paddr, mapped_asid }),
        paddr(12).prop_map(|paddr| Cap::Vcpu { paddr }),
    ]
}
