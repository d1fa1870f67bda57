//! Configure, SetSpace, SetIPCBuffer and SetTimeoutEndpoint: the
//! invocations that replace a thread's cap slots (seL4's
//! `invokeTCB_ThreadControlCaps`).

use super::{err, truncated, Tcb};
use crate::cap::{derive, same_object_as, update_cap_data, Cap};
use crate::cte::{cte_insert, slot_cap_long_running_delete, SlotRef};
use crate::delete::cte_delete;
use crate::error::{Exception, SyscallError};
use crate::fault::valid_fault_handler;
use crate::invocation::Invocation;
use crate::object::tcb;
use crate::sched;
use septa_abi::ipc_buffer::SIZE_BITS as IPC_BUFFER_SIZE_BITS;
use septa_abi::Label;

/// The frame a thread's IPC buffer may be (seL4's `checkValidIPCBuffer`).
pub fn check_valid_ipc_buffer(vaddr: u64, cap: &Cap) -> Result<(), SyscallError> {
    match *cap {
        Cap::Frame {
            is_device: false, ..
        } => {
            if vaddr & ((1 << IPC_BUFFER_SIZE_BITS) - 1) != 0 {
                Err(SyscallError::AlignmentError)
            } else {
                Ok(())
            }
        }
        _ => Err(SyscallError::IllegalOperation),
    }
}

/// A VSpace cap that may be a thread's address space: assigned an ASID
/// (seL4's `isValidVTableRoot`).
pub fn is_valid_vtable_root(cap: &Cap) -> bool {
    matches!(
        cap,
        Cap::VSpace {
            mapped_asid: Some(_),
            ..
        }
    )
}

/// The cap in `slot` with `data` applied (unless 0), derived, written to
/// `out`: the CSpace and VSpace roots of Configure and SetSpace, and the
/// buffer frame (data 0). Out of line for its three callers, and the cap
/// written in place: a `Cap` returned by value was copied field by field
/// (~150 bytes a copy).
#[inline(never)]
fn derive_into(data: u64, slot: SlotRef, out: &mut Cap) -> Result<(), Exception> {
    let mut cap = slot.cap();
    if data != 0 {
        cap = update_cap_data(false, data, &cap);
    }
    *out = derive(slot, &cap)?;
    Ok(())
}

/// Where [`thread_control`] keeps each new cap.
const BUFFER: usize = 0;
const CROOT: usize = 1;
const VROOT: usize = 2;
const HANDLER: usize = 3;

/// Configure, SetSpace, SetIPCBuffer and SetTimeoutEndpoint, decoded and
/// performed by one body (seL4's `invokeTCB_ThreadControlCaps` for the
/// four). What each method carries:
///
/// | method | extra caps | MRs |
/// |---|---|---|
/// | Configure | CSpace root, VSpace root, buffer frame | CSpace root data, VSpace root data, buffer address |
/// | SetSpace | fault endpoint, CSpace root, VSpace root | CSpace root data, VSpace root data |
/// | SetIPCBuffer | buffer frame | buffer address |
/// | SetTimeoutEndpoint | timeout endpoint | |
///
/// The checks come in seL4's order for each: the buffer, then the roots,
/// then the fault or timeout endpoint; then the slots are replaced in
/// seL4's order: the endpoint, the roots, the buffer.
pub(super) fn thread_control(
    inv: &Invocation,
    target: Tcb,
    slot: SlotRef,
    label: Label,
) -> Result<(), Exception> {
    let configure = label == Label::TcbConfigure;
    let set_space = label == Label::TcbSetSpace;
    let has_buffer = configure || label == Label::TcbSetIpcBuffer;
    let has_space = configure || set_space;
    let caps = if has_space { 3 } else { 1 };
    let words = 2 * has_space as usize + has_buffer as usize;
    if inv.extra_caps.len() < caps || inv.length() < words {
        return truncated();
    }
    // Every index below `caps`, present after the check (the fallback is
    // never taken; it costs less than a bounds check's panic path).
    let extra = |i: usize| inv.extra_caps.get(i).copied().unwrap_or(slot);
    // The new caps, checked where they stay until installed.
    let mut new = [Cap::Null; 4];
    // The buffer: the last cap and the last word; no frame for address 0.
    let addr = inv.arg(words.wrapping_sub(1));
    let buffer_src = extra(caps - 1);
    if has_buffer && addr != 0 {
        derive_into(0, buffer_src, &mut new[BUFFER])?;
        check_valid_ipc_buffer(addr, &new[BUFFER])?;
    }
    // The roots: caps 0 and 1 (Configure) or 1 and 2 (SetSpace), words 0
    // and 1.
    let first = set_space as usize;
    if has_space {
        if slot_cap_long_running_delete(target.slot(tcb::CTABLE))
            || slot_cap_long_running_delete(target.slot(tcb::VTABLE))
        {
            return err(SyscallError::IllegalOperation);
        }
        derive_into(inv.arg(0), extra(first), &mut new[CROOT])?;
        if !matches!(new[CROOT], Cap::CNode { .. }) {
            return err(SyscallError::IllegalOperation);
        }
        derive_into(inv.arg(1), extra(first + 1), &mut new[VROOT])?;
        if !is_valid_vtable_root(&new[VROOT]) {
            return err(SyscallError::IllegalOperation);
        }
    }
    // The fault (SetSpace) or timeout (SetTimeoutEndpoint) endpoint, cap 0.
    if !has_buffer {
        new[HANDLER] = extra(0).cap();
        if !valid_fault_handler(&new[HANDLER]) {
            return err(SyscallError::InvalidCapability { index: 1 });
        }
        let index = if set_space {
            tcb::FAULT_HANDLER
        } else {
            tcb::TIMEOUT_HANDLER
        };
        install_tcb_cap(target, slot, index, &new[HANDLER], extra(0))?;
    }
    if has_space {
        install_tcb_cap(target, slot, tcb::CTABLE, &new[CROOT], extra(first))?;
        install_tcb_cap(target, slot, tcb::VTABLE, &new[VROOT], extra(first + 1))?;
    }
    if has_buffer {
        let bslot = target.slot(tcb::BUFFER);
        cte_delete(bslot, true)?;
        target.set_ipc_buffer(addr);
        if addr != 0 && still_valid(&new[BUFFER], buffer_src, target, slot) {
            cte_insert(&new[BUFFER], buffer_src, bslot);
        }
        if Some(target) == sched::cur_thread_opt() {
            sched::reschedule_required();
        }
    }
    Ok(())
}

/// Replaces cap slot `index` of `target` with a copy of the new cap (none
/// if null), if the new cap and the invoked TCB cap are both still where
/// they were (deleting the old cap may have changed either; seL4's
/// `installTCBCap`).
pub(super) fn install_tcb_cap(
    target: Tcb,
    tcb_slot: SlotRef,
    index: u64,
    cap: &Cap,
    src: SlotRef,
) -> Result<(), Exception> {
    let root = target.slot(index);
    cte_delete(root, true)?;
    if !cap.is_null() && still_valid(cap, src, target, tcb_slot) {
        cte_insert(cap, src, root);
    }
    Ok(())
}

/// Whether the new cap and the invoked TCB cap are still where they were.
/// Out of line: `install_tcb_cap` and the buffer's install call it.
#[inline(never)]
fn still_valid(cap: &Cap, src: SlotRef, target: Tcb, tcb_slot: SlotRef) -> bool {
    same_object_as(cap, &src.cap())
        && same_object_as(
            &Cap::Tcb {
                paddr: target.paddr(),
            },
            &tcb_slot.cap(),
        )
}
