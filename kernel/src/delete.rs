//! # Deleting and revoking capabilities, and finalising objects
//!
//! Deleting a cap removes it from its slot and from the derivation list.
//! When it was the *final* cap to its object ([`is_final_capability`]), the
//! object must also be cleaned up: threads blocked on an endpoint released,
//! mappings removed, and so on. That clean-up belongs to each object's own
//! module; [`finalise_cap`] dispatches to the `finalise` function there.
//!
//! ## Zombies
//!
//! CNodes and TCBs hold caps themselves, and deleting their last cap must
//! delete everything they hold, which may include the last caps to further
//! CNodes, and so on without bound, even in cycles (a CNode holding a cap to
//! itself). The kernel has no heap for a work list and a fixed, small stack,
//! so seL4's scheme is followed:
//!
//! - the final cap to a CNode or TCB is replaced, in its slot, by a
//!   *Zombie* cap that remembers the object's slots and how many of them
//!   (`number`, counted from the first) may still hold caps;
//! - the slot is then reduced step by step: the last remaining slot of the
//!   zombie's object is deleted, and `number` drops by one. That inner
//!   delete is *not exposed*: if it finds another zombie (a nested CNode),
//!   it does not recurse into it but swaps it into the first slot of its
//!   own object, where it is cyclic, self-contained and harmless, and goes
//!   on; such a cyclic zombie is finished when the untyped it came from is
//!   revoked, or when its own remaining slot is reached;
//! - every step is a preemption point and leaves the tree consistent, so a
//!   preempted delete continues when the system call is re-executed.
//!
//! So recursion never goes deeper than two levels, and every step shrinks
//! some zombie, which is why deletion terminates even for cyclic CSpaces.
//!
//! ## Revoke
//!
//! Revoke deletes, one at a time, the caps that follow a cap in the list
//! while they are its descendants (see `cte`), with a preemption point
//! after each.

use crate::cap::{Cap, ZombieKind};
use crate::cte::{cap_swap_for_delete, is_final_capability, is_mdb_parent_of, MdbNode, SlotRef};
use crate::error::Preempted;
use crate::object;
use crate::preempt::preemption_point;

/// What finalising a cap leaves behind: the cap to put back in its slot
/// (null, or a zombie that still needs work), and a cap describing clean-up
/// to do once the slot is empty (an IRQ handler cap, else null).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finalised {
    pub remainder: Cap,
    pub cleanup: Cap,
}

const DONE: Finalised = Finalised {
    remainder: Cap::Null,
    cleanup: Cap::Null,
};

/// Finalises a cap that is being deleted (seL4's `finaliseCap`). `is_final`
/// says whether it is the last cap to its object; `exposed` is true for
/// deletions that must finish at once (`cte_delete_one`), which may never
/// meet a CNode or TCB cap.
pub fn finalise_cap(cap: &Cap, is_final: bool, exposed: bool) -> Finalised {
    match *cap {
        // Architecture caps.
        Cap::Frame {
            paddr,
            size,
            mapped,
            ..
        } => {
            // A frame cap is unmapped whether or not it is the last one:
            // each cap records its own mapping.
            if let Some(m) = mapped {
                object::vspace::unmap_frame(paddr, size, m);
            }
            DONE
        }
        Cap::PageTable { paddr, mapped } => {
            if let (true, Some(m)) = (is_final, mapped) {
                object::vspace::unmap_page_table(paddr, m);
            }
            DONE
        }
        Cap::VSpace { paddr, mapped_asid } => {
            if let (true, Some(asid)) = (is_final, mapped_asid) {
                object::vspace::delete_asid(asid, paddr);
            }
            DONE
        }
        Cap::AsidPool { paddr, asid_base } => {
            if is_final {
                object::vspace::delete_asid_pool(asid_base, paddr);
            }
            DONE
        }
        Cap::Vcpu { paddr } => {
            if is_final {
                object::vcpu::finalise(paddr);
            }
            DONE
        }
        Cap::AsidControl | Cap::Smc { .. } | Cap::SgiSignal { .. } => DONE,

        // Objects that finalise at once.
        Cap::Endpoint { paddr, .. } => {
            if is_final {
                object::endpoint::finalise(paddr);
            }
            DONE
        }
        Cap::Notification { paddr, .. } => {
            if is_final {
                object::notification::finalise(paddr);
            }
            DONE
        }
        Cap::Reply { paddr, .. } => {
            if is_final {
                object::reply::finalise(paddr);
            }
            DONE
        }
        Cap::Null | Cap::Domain => DONE,

        // Objects whose clean-up may take long.
        Cap::CNode { paddr, radix, .. } => {
            debug_assert!(
                !exposed || !is_final,
                "finalise_cap: a CNode cannot finalise at once"
            );
            if is_final {
                Finalised {
                    remainder: Cap::Zombie {
                        paddr,
                        kind: ZombieKind::CNode { radix },
                        number: 1 << radix,
                    },
                    cleanup: Cap::Null,
                }
            } else {
                DONE
            }
        }
        Cap::Tcb { paddr } => {
            debug_assert!(
                !exposed || !is_final,
                "finalise_cap: a TCB cannot finalise at once"
            );
            if is_final {
                object::tcb::finalise(paddr);
                Finalised {
                    remainder: Cap::Zombie {
                        paddr,
                        kind: ZombieKind::Tcb,
                        number: object::tcb::TCB_CNODE_ENTRIES,
                    },
                    cleanup: Cap::Null,
                }
            } else {
                DONE
            }
        }
        Cap::SchedContext { paddr, .. } => {
            if is_final {
                object::sched_context::finalise(paddr);
            }
            DONE
        }
        Cap::Zombie { .. } => {
            debug_assert!(!exposed, "finalise_cap: a zombie cannot finalise at once");
            Finalised {
                remainder: *cap,
                cleanup: Cap::Null,
            }
        }
        Cap::IrqHandler { irq } => {
            if is_final {
                object::irq::deleting_irq_handler(irq);
                Finalised {
                    remainder: Cap::Null,
                    cleanup: *cap,
                }
            } else {
                DONE
            }
        }
        Cap::Untyped { .. } | Cap::IrqControl | Cap::SchedControl { .. } => DONE,
    }
}

/// Clean-up after a slot has been emptied (seL4's `postCapDeletion`).
fn post_cap_deletion(cleanup: &Cap) {
    if let Cap::IrqHandler { irq } = *cleanup {
        object::irq::deleted_irq_handler(irq);
    }
}

/// Whether a finalised remainder can be dropped from `slot`: nothing left,
/// or a zombie whose only remaining slot is the one it sits in.
fn cap_removable(cap: &Cap, slot: SlotRef) -> bool {
    match *cap {
        Cap::Null => true,
        Cap::Zombie { paddr, number, .. } => number == 0 || (number == 1 && slot.paddr() == paddr),
        _ => {
            debug_assert!(false, "finalise_cap returned {cap:?}");
            false
        }
    }
}

fn is_cyclic_zombie(cap: &Cap, slot: SlotRef) -> bool {
    matches!(*cap, Cap::Zombie { paddr, .. } if paddr == slot.paddr())
}

/// Unlinks the slot from the derivation list and empties it (seL4's
/// `emptySlot`). Its successor inherits `first_badged`, so that a badged
/// subtree keeps its boundary when its first cap goes.
fn empty_slot(slot: SlotRef, cleanup: &Cap) {
    if slot.is_empty() {
        return;
    }
    let m = slot.mdb();
    if let Some(prev) = m.prev {
        let mut pm = prev.mdb();
        pm.next = m.next;
        prev.set_mdb(pm);
    }
    if let Some(next) = m.next {
        let mut nm = next.mdb();
        nm.prev = m.prev;
        nm.first_badged |= m.first_badged;
        next.set_mdb(nm);
    }
    slot.set_cap(&Cap::Null);
    slot.set_mdb(MdbNode::EMPTY);
    post_cap_deletion(cleanup);
}

/// Result of finalising a slot: whether the slot may now be emptied, and
/// the clean-up cap for [`post_cap_deletion`].
struct SlotFinalised {
    success: bool,
    cleanup: Cap,
}

/// Finalises the cap in `slot` until it can be removed (seL4's
/// `finaliseSlot`). With `immediate` false (an inner delete of a zombie's
/// slot) it stops early at a cyclic zombie rather than recursing into it.
fn finalise_slot(slot: SlotRef, immediate: bool) -> Result<SlotFinalised, Preempted> {
    loop {
        let cap = slot.cap();
        if cap.is_null() {
            return Ok(SlotFinalised {
                success: true,
                cleanup: Cap::Null,
            });
        }
        let is_final = is_final_capability(slot);
        let f = finalise_cap(&cap, is_final, false);
        if cap_removable(&f.remainder, slot) {
            return Ok(SlotFinalised {
                success: true,
                cleanup: f.cleanup,
            });
        }
        slot.set_cap(&f.remainder);
        if !immediate && is_cyclic_zombie(&f.remainder, slot) {
            return Ok(SlotFinalised {
                success: false,
                cleanup: f.cleanup,
            });
        }
        reduce_zombie(slot, immediate)?;
        preemption_point()?;
    }
}

/// Does one step of tearing down the zombie in `slot` (seL4's
/// `reduceZombie`). Immediate: delete the zombie's last remaining slot and
/// count it off. Not immediate: move the zombie into its own first slot,
/// making it cyclic, so the caller can go on with whatever was there.
fn reduce_zombie(slot: SlotRef, immediate: bool) -> Result<(), Preempted> {
    let Cap::Zombie {
        paddr,
        kind,
        number,
    } = slot.cap()
    else {
        debug_assert!(false, "reduce_zombie on a non-zombie");
        return Ok(());
    };
    debug_assert!(number > 0, "reduce_zombie: removable zombie");
    if immediate {
        let end = SlotRef::nth(paddr, number - 1);
        cte_delete(end, false)?;
        match slot.cap() {
            Cap::Null => {}
            Cap::Zombie {
                paddr: p2,
                kind: k2,
                number: n2,
            } => {
                if p2 == paddr && n2 == number && k2 == kind {
                    debug_assert!(end.is_empty());
                    slot.set_cap(&Cap::Zombie {
                        paddr,
                        kind,
                        number: number - 1,
                    });
                } else {
                    // The inner delete swapped a cyclic zombie into this
                    // slot; it is worked on in the next round.
                    debug_assert!(p2 == slot.paddr() && paddr != slot.paddr());
                }
            }
            other => debug_assert!(false, "reduce_zombie: found {other:?}"),
        }
    } else {
        debug_assert!(
            paddr != slot.paddr(),
            "cyclic zombie passed to unexposed reduce_zombie"
        );
        cap_swap_for_delete(SlotRef::new(paddr), slot);
    }
    Ok(())
}

/// Deletes the cap in `slot` (seL4's `cteDelete`). `exposed` is true for a
/// user-visible delete (it must finish); false for the inner deletes of
/// zombie reduction. Only preemption can interrupt it.
pub fn cte_delete(slot: SlotRef, exposed: bool) -> Result<(), Preempted> {
    let f = finalise_slot(slot, exposed)?;
    if exposed || f.success {
        empty_slot(slot, &f.cleanup);
    }
    Ok(())
}

/// Deletes a cap that is known to finalise at once (never the last cap to
/// a CNode or TCB; used by IPC for reply caps and by IRQ handling), without
/// preemption (seL4's `cteDeleteOne`).
#[inline(never)]
pub fn cte_delete_one(slot: SlotRef) {
    let cap = slot.cap();
    if cap.is_null() {
        return;
    }
    let is_final = is_final_capability(slot);
    let f = finalise_cap(&cap, is_final, true);
    debug_assert!(
        cap_removable(&f.remainder, slot) && f.cleanup.is_null(),
        "cte_delete_one: {cap:?} does not finalise at once"
    );
    empty_slot(slot, &Cap::Null);
}

/// Deletes every descendant of the cap in `slot`, leaving the cap itself
/// (seL4's `cteRevoke`).
pub fn cte_revoke(slot: SlotRef) -> Result<(), Preempted> {
    while let Some(next) = slot.mdb().next {
        if !is_mdb_parent_of(slot, next) {
            break;
        }
        cte_delete(next, true)?;
        preemption_point()?;
    }
    Ok(())
}
