//! # The rules: the pure parts of seL4's capability semantics
//!
//! Which caps refer to the same object or to overlapping memory
//! ([`same_region_as`], [`same_object_as`]), which derived caps become
//! revocable originals ([`is_cap_revocable`]), how Mint, Mutate and Rotate
//! change badges and guards ([`update_cap_data`]) and rights
//! ([`mask_rights`]), and which caps may be copied at all ([`derive`]).

use super::raw::mask;
use super::Cap;
use crate::cte::{ensure_no_children, SlotRef};
use crate::error::SyscallError;
use septa_abi::{CNodeCapData, CapRights, WORD_BITS};

/// Whether `b` lies inside the memory or authority `a` covers (seL4's
/// `sameRegionAs`): an untyped covers every object inside its range, the
/// IRQ control cap covers every IRQ handler and SGI cap, and otherwise two
/// caps must name the same object.
pub fn same_region_as(a: &Cap, b: &Cap) -> bool {
    match (*a, *b) {
        (
            Cap::Untyped {
                paddr, size_bits, ..
            },
            _,
        ) => match b.object_paddr() {
            Some(b_base) => {
                let a_top = paddr + mask(size_bits as u32);
                let b_top = b_base.wrapping_add(mask(b.size_bits()));
                paddr <= b_base && b_top <= a_top && b_base <= b_top
            }
            None => false,
        },
        (Cap::Endpoint { paddr: p, .. }, Cap::Endpoint { paddr: q, .. })
        | (Cap::Notification { paddr: p, .. }, Cap::Notification { paddr: q, .. })
        | (Cap::Tcb { paddr: p }, Cap::Tcb { paddr: q })
        | (Cap::Reply { paddr: p, .. }, Cap::Reply { paddr: q, .. })
        | (Cap::PageTable { paddr: p, .. }, Cap::PageTable { paddr: q, .. })
        | (Cap::VSpace { paddr: p, .. }, Cap::VSpace { paddr: q, .. })
        | (Cap::AsidPool { paddr: p, .. }, Cap::AsidPool { paddr: q, .. })
        | (Cap::Vcpu { paddr: p }, Cap::Vcpu { paddr: q }) => p == q,
        (
            Cap::CNode {
                paddr: p, radix: r, ..
            },
            Cap::CNode {
                paddr: q, radix: s, ..
            },
        ) => p == q && r == s,
        (
            Cap::SchedContext {
                paddr: p,
                size_bits: r,
            },
            Cap::SchedContext {
                paddr: q,
                size_bits: s,
            },
        ) => p == q && r == s,
        (Cap::IrqHandler { irq: i }, Cap::IrqHandler { irq: j }) => i == j,
        (Cap::IrqControl, Cap::IrqControl | Cap::IrqHandler { .. } | Cap::SgiSignal { .. }) => true,
        (Cap::Domain, Cap::Domain)
        | (Cap::SchedControl { .. }, Cap::SchedControl { .. })
        | (Cap::AsidControl, Cap::AsidControl)
        | (Cap::Smc { .. }, Cap::Smc { .. }) => true,
        (Cap::SgiSignal { irq: i, target: t }, Cap::SgiSignal { irq: j, target: u }) => {
            i == j && t == u
        }
        (
            Cap::Frame {
                paddr: p, size: s, ..
            },
            Cap::Frame {
                paddr: q, size: t, ..
            },
        ) => {
            let top_a = p + mask(s.size_bits());
            let top_b = q + mask(t.size_bits());
            p <= q && top_a >= top_b && q <= top_b
        }
        _ => false,
    }
}

/// Whether two caps refer to the very same object (seL4's `sameObjectAs`):
/// never true for untyped or IRQ control caps (they are ranges of
/// authority, each cap final on its own); frames must also agree on size
/// and device-ness; SGI caps are never the same object.
#[inline(never)]
pub fn same_object_as(a: &Cap, b: &Cap) -> bool {
    match (*a, *b) {
        (Cap::Untyped { .. } | Cap::IrqControl | Cap::SgiSignal { .. }, _) => false,
        (
            Cap::Frame {
                paddr: p,
                size: s,
                is_device: d,
                ..
            },
            Cap::Frame {
                paddr: q,
                size: t,
                is_device: e,
                ..
            },
        ) => p == q && s == t && d == e,
        (Cap::Frame { .. }, _) => false,
        _ => same_region_as(a, b),
    }
}

/// Whether a cap derived from `src` becomes an original that can be
/// revoked on its own (seL4's `isCapRevocable`): newly badged endpoint,
/// notification and SMC caps, IRQ handler and SGI caps issued by IRQ
/// control, and every untyped cap.
pub fn is_cap_revocable(derived: &Cap, src: &Cap) -> bool {
    match *derived {
        Cap::Endpoint { .. } | Cap::Notification { .. } | Cap::Smc { .. } => {
            derived.badge() != src.badge()
        }
        Cap::IrqHandler { .. } | Cap::SgiSignal { .. } => matches!(src, Cap::IrqControl),
        Cap::Untyped { .. } => true,
        _ => false,
    }
}

/// Applies the data word of Mint (`preserve` false), or of Mutate and
/// Rotate (`preserve` true), to a cap (seL4's `updateCapData`).
///
/// Endpoint, notification and SMC caps take the word as a badge, but only
/// when minting from an unbadged cap; otherwise the result is the null cap,
/// which the caller reports as an error. CNode caps take it as guard data
/// (guard size in bits 0..6, guard above), refused when guard and radix
/// together exceed a word. Every other cap ignores the word.
#[inline(never)]
pub fn update_cap_data(preserve: bool, data: u64, cap: &Cap) -> Cap {
    match *cap {
        Cap::Endpoint { badge, .. } | Cap::Notification { badge, .. } | Cap::Smc { badge } => {
            if !preserve && badge == 0 {
                let mut c = *cap;
                match &mut c {
                    Cap::Endpoint { badge, .. }
                    | Cap::Notification { badge, .. }
                    | Cap::Smc { badge } => *badge = data,
                    _ => unreachable!(),
                }
                c
            } else {
                Cap::Null
            }
        }
        Cap::CNode { paddr, radix, .. } => {
            let d = CNodeCapData(data);
            let guard_size = d.guard_size();
            if guard_size + radix as u64 > WORD_BITS as u64 {
                Cap::Null
            } else {
                Cap::CNode {
                    paddr,
                    radix,
                    guard_size: guard_size as u8,
                    guard: d.guard() & mask(guard_size as u32),
                }
            }
        }
        _ => *cap,
    }
}

/// Removes the rights not in `rights` from a cap (seL4's `maskCapRights`).
/// Only endpoint, notification, reply and frame caps carry rights.
pub fn mask_rights(rights: CapRights, cap: &Cap) -> Cap {
    match *cap {
        Cap::Endpoint {
            paddr,
            badge,
            can_send,
            can_receive,
            can_grant,
            can_grant_reply,
        } => Cap::Endpoint {
            paddr,
            badge,
            can_send: can_send && rights.write(),
            can_receive: can_receive && rights.read(),
            can_grant: can_grant && rights.grant(),
            can_grant_reply: can_grant_reply && rights.grant_reply(),
        },
        Cap::Notification {
            paddr,
            badge,
            can_send,
            can_receive,
        } => Cap::Notification {
            paddr,
            badge,
            can_send: can_send && rights.write(),
            can_receive: can_receive && rights.read(),
        },
        Cap::Reply { paddr, can_grant } => Cap::Reply {
            paddr,
            can_grant: can_grant && rights.grant(),
        },
        Cap::Frame {
            paddr,
            size,
            rights: vm,
            is_device,
            mapped,
        } => Cap::Frame {
            paddr,
            size,
            rights: vm.mask(rights),
            is_device,
            mapped,
        },
        _ => *cap,
    }
}

/// Whether a cap may cancel badged sends: an endpoint cap with all four
/// rights (seL4's `hasCancelSendRights`).
pub fn has_cancel_send_rights(cap: &Cap) -> bool {
    matches!(
        cap,
        Cap::Endpoint {
            can_send: true,
            can_receive: true,
            can_grant: true,
            can_grant_reply: true,
            ..
        }
    )
}

/// The cap a copy of `cap` (held in `slot`) would be (seL4's `deriveCap`):
/// zombies and IRQ control cannot be copied (null result, reported by the
/// caller); an untyped only while it has no children (else RevokeFirst);
/// page tables and VSpaces only once mapped or assigned (else
/// IllegalOperation); a frame copy starts unmapped.
// Out of line: with the identity window it had become small enough for
// LLVM to inline it into the IPC cap transfer (936 bytes), the root
// thread's set-up and the TCB roots' derivation beside this copy; every
// caller is a slow path (a cap transfer, CNode Copy and Mint, TCB
// Configure and SetSpace, boot once).
#[inline(never)]
pub fn derive(slot: SlotRef, cap: &Cap) -> Result<Cap, SyscallError> {
    match *cap {
        Cap::Zombie { .. } | Cap::IrqControl => Ok(Cap::Null),
        Cap::Untyped { .. } => {
            ensure_no_children(slot)?;
            Ok(*cap)
        }
        Cap::VSpace {
            mapped_asid: None, ..
        }
        | Cap::PageTable { mapped: None, .. } => Err(SyscallError::IllegalOperation),
        Cap::Frame {
            paddr,
            size,
            rights,
            is_device,
            ..
        } => Ok(Cap::Frame {
            paddr,
            size,
            rights,
            is_device,
            mapped: None,
        }),
        _ => Ok(*cap),
    }
}
