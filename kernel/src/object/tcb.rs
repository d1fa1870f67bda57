//! Thread control blocks.
//!
//! A TCB object is `2^TCB_SIZE_BITS` bytes (2 KiB). As in seL4, its first
//! part holds [`TCB_CNODE_ENTRIES`] capability slots (the thread's CSpace
//! root, VSpace root, IPC buffer frame, fault and timeout endpoints); the
//! thread state proper lives in the second half, from
//! [`TCB_STATE_OFFSET`]. A TCB cap names the object's base, which is also
//! its first slot, so the capability layer can tear a TCB's slots down like
//! a small CNode (a zombie of kind TCB).
//!
//! Zero rule: an all-zero TCB is inactive, bound to nothing, with empty cap
//! slots, priority 0, no IPC buffer, and a register context the thread work
//! must read as "fresh" (seL4 sets the user SPSR and the domain at creation).

use crate::cte::SlotRef;
use septa_abi::TCB_SIZE_BITS;

/// Slot indices inside a TCB (MCS layout).
pub const CTABLE: u64 = 0;
pub const VTABLE: u64 = 1;
pub const BUFFER: u64 = 2;
pub const FAULT_HANDLER: u64 = 3;
pub const TIMEOUT_HANDLER: u64 = 4;
/// Number of cap slots at the start of a TCB.
pub const TCB_CNODE_ENTRIES: u64 = 5;
/// Where the thread state starts inside the TCB object (the second half,
/// like seL4's `TCB_OFFSET`).
pub const TCB_STATE_OFFSET: u64 = 1 << (TCB_SIZE_BITS - 1);

/// Slot `index` of the TCB at `tcb` (the object base a TCB cap names).
pub fn slot(tcb: u64, index: u64) -> SlotRef {
    debug_assert!(index < TCB_CNODE_ENTRIES);
    SlotRef::nth(tcb, index)
}

/// Clean-up when the last cap to a TCB is deleted, before its slots are
/// torn down (seL4: `unbindNotification`, unbind the scheduling context and
/// complete a pending YieldTo, `suspend`, remove it from the debug list,
/// dissociate its VCPU, release the FPU).
///
/// Not yet: the thread, scheduler and VM work must do all of that; the cap
/// slots themselves are emptied by the capability layer afterwards.
pub fn finalise(tcb: u64) {
    let _ = tcb;
}
