//! # CNode invocations: Copy, Mint, Move, Mutate, Rotate, Delete, Revoke,
//! CancelBadgedSends
//!
//! [`decode_cnode_invocation`] checks the arguments in the order seL4 16.0.0
//! does, so that the first failing check decides the error a caller sees,
//! then performs the operation. Arguments (interface `CNode` in seL4's
//! `object-api.xml`):
//!
//! | method | MRs | extra caps |
//! |---|---|---|
//! | Revoke, Delete, CancelBadgedSends | index, depth | |
//! | Copy | dest index, dest depth, src index, src depth, rights | src root |
//! | Mint | ... as Copy, then badge or guard data | src root |
//! | Move | dest index, dest depth, src index, src depth | src root |
//! | Mutate | ... as Move, then data | src root |
//! | Rotate | dest index, dest depth, pivot data, pivot index, pivot depth, src data, src index, src depth | pivot root, src root |

use crate::cap::{derive, has_cancel_send_rights, mask_rights, update_cap_data, Cap};
use crate::cspace::{lookup_pivot_slot, lookup_source_slot, lookup_target_slot};
use crate::cte::{cte_insert, cte_move, cte_swap, ensure_empty_slot, SlotRef};
use crate::delete::{cte_delete, cte_revoke};
use crate::error::{Exception, LookupFault, SyscallError};
use crate::invocation::Invocation;
use crate::object;
use septa_abi::{CapRights, Label};

/// Decodes and performs an invocation of the CNode cap `cap`.
pub fn decode_cnode_invocation(inv: &Invocation, cap: &Cap) -> Result<(), Exception> {
    debug_assert!(matches!(cap, Cap::CNode { .. }));
    let label = match Label::from_u64(inv.label) {
        Some(
            l @ (Label::CNodeRevoke
            | Label::CNodeDelete
            | Label::CNodeCancelBadgedSends
            | Label::CNodeCopy
            | Label::CNodeMint
            | Label::CNodeMove
            | Label::CNodeMutate
            | Label::CNodeRotate),
        ) => l,
        _ => return Err(SyscallError::IllegalOperation.into()),
    };

    if inv.length() < 2 {
        return Err(SyscallError::TruncatedMessage.into());
    }
    let dest_slot = lookup_target_slot(cap, inv.arg(0), inv.arg(1))?;

    match label {
        Label::CNodeCopy | Label::CNodeMint | Label::CNodeMove | Label::CNodeMutate => {
            decode_copy_like(inv, label, dest_slot)
        }
        Label::CNodeRevoke => Ok(cte_revoke(dest_slot)?),
        Label::CNodeDelete => Ok(cte_delete(dest_slot, true)?),
        Label::CNodeCancelBadgedSends => {
            let dest_cap = dest_slot.cap();
            if !has_cancel_send_rights(&dest_cap) {
                return Err(SyscallError::IllegalOperation.into());
            }
            if let Cap::Endpoint { paddr, badge, .. } = dest_cap {
                if badge != 0 {
                    object::endpoint::cancel_badged_sends(paddr, badge);
                }
            }
            Ok(())
        }
        Label::CNodeRotate => decode_rotate(inv, dest_slot),
        _ => unreachable!("label filtered above"),
    }
}

fn decode_copy_like(inv: &Invocation, label: Label, dest_slot: SlotRef) -> Result<(), Exception> {
    let Some(src_root_slot) = inv.extra_cap(0).filter(|_| inv.length() >= 4) else {
        return Err(SyscallError::TruncatedMessage.into());
    };
    let (src_index, src_depth) = (inv.arg(2), inv.arg(3));
    let src_root = src_root_slot.cap();

    ensure_empty_slot(dest_slot)?;
    let src_slot = lookup_source_slot(&src_root, src_index, src_depth)?;
    let src_cap = src_slot.cap();
    if src_cap.is_null() {
        return Err(SyscallError::FailedLookup {
            source: true,
            fault: LookupFault::MissingCapability {
                bits_left: src_depth,
            },
        }
        .into());
    }

    let (new_cap, is_move) = match label {
        Label::CNodeCopy => {
            if inv.length() < 5 {
                return Err(SyscallError::TruncatedMessage.into());
            }
            let masked = mask_rights(CapRights(inv.arg(4)), &src_cap);
            (derive(src_slot, &masked)?, false)
        }
        Label::CNodeMint => {
            if inv.length() < 6 {
                return Err(SyscallError::TruncatedMessage.into());
            }
            let masked = mask_rights(CapRights(inv.arg(4)), &src_cap);
            let updated = update_cap_data(false, inv.arg(5), &masked);
            (derive(src_slot, &updated)?, false)
        }
        Label::CNodeMove => (src_cap, true),
        Label::CNodeMutate => {
            if inv.length() < 5 {
                return Err(SyscallError::TruncatedMessage.into());
            }
            (update_cap_data(true, inv.arg(4), &src_cap), true)
        }
        _ => unreachable!("only copy-like labels come here"),
    };

    if new_cap.is_null() {
        return Err(SyscallError::IllegalOperation.into());
    }
    if is_move {
        cte_move(&new_cap, src_slot, dest_slot);
    } else {
        cte_insert(&new_cap, src_slot, dest_slot);
    }
    Ok(())
}

fn decode_rotate(inv: &Invocation, dest_slot: SlotRef) -> Result<(), Exception> {
    let (Some(pivot_root_slot), Some(src_root_slot)) = (inv.extra_cap(0), inv.extra_cap(1)) else {
        return Err(SyscallError::TruncatedMessage.into());
    };
    if inv.length() < 8 {
        return Err(SyscallError::TruncatedMessage.into());
    }
    let (pivot_data, pivot_index, pivot_depth) = (inv.arg(2), inv.arg(3), inv.arg(4));
    let (src_data, src_index, src_depth) = (inv.arg(5), inv.arg(6), inv.arg(7));
    let pivot_root = pivot_root_slot.cap();
    let src_root = src_root_slot.cap();

    let src_slot = lookup_source_slot(&src_root, src_index, src_depth)?;
    let pivot_slot = lookup_pivot_slot(&pivot_root, pivot_index, pivot_depth)?;

    if pivot_slot == src_slot || pivot_slot == dest_slot {
        return Err(SyscallError::IllegalOperation.into());
    }
    if src_slot != dest_slot {
        ensure_empty_slot(dest_slot)?;
    }

    let src_cap = src_slot.cap();
    if src_cap.is_null() {
        return Err(SyscallError::FailedLookup {
            source: true,
            fault: LookupFault::MissingCapability {
                bits_left: src_depth,
            },
        }
        .into());
    }
    let pivot_cap = pivot_slot.cap();
    if pivot_cap.is_null() {
        return Err(SyscallError::FailedLookup {
            source: false,
            fault: LookupFault::MissingCapability {
                bits_left: pivot_depth,
            },
        }
        .into());
    }

    let new_src = update_cap_data(true, src_data, &src_cap);
    let new_pivot = update_cap_data(true, pivot_data, &pivot_cap);
    if new_src.is_null() || new_pivot.is_null() {
        return Err(SyscallError::IllegalOperation.into());
    }

    // The source's cap goes to the pivot slot and the pivot's to the
    // destination; with source = destination that is a swap.
    if src_slot == dest_slot {
        cte_swap(&new_src, src_slot, &new_pivot, pivot_slot);
    } else {
        cte_move(&new_pivot, pivot_slot, dest_slot);
        cte_move(&new_src, src_slot, pivot_slot);
    }
    Ok(())
}
