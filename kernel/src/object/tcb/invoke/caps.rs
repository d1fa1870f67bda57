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

/// A new cap for one of a thread's slots, with the slot it is copied from.
type NewCap = (Cap, SlotRef);

/// Which of a thread's cap slots a ThreadControl invocation replaces.
#[derive(Clone, Copy, Default)]
struct CapUpdates {
    /// The fault or the timeout endpoint: its slot index and new cap.
    handler: Option<(u64, NewCap)>,
    space: Option<((Cap, SlotRef), (Cap, SlotRef))>,
    /// Address, and the derived frame cap with its source slot (none when
    /// the address is 0).
    ipc_buffer: Option<(u64, Option<(Cap, SlotRef)>)>,
}

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

/// The buffer frame of Configure and SetIPCBuffer: derived and checked
/// unless the address is 0.
fn buffer_arg(addr: u64, slot: SlotRef) -> Result<Option<(Cap, SlotRef)>, Exception> {
    if addr == 0 {
        return Ok(None);
    }
    let cap = derived(0, slot)?;
    check_valid_ipc_buffer(addr, &cap)?;
    Ok(Some((cap, slot)))
}

/// The cap in `slot` with `data` applied (unless 0), derived: the CSpace
/// and VSpace roots of Configure and SetSpace, and the buffer frame (data
/// 0). Out of line for its three callers (inlined, `update_cap_data`'s and
/// `derive`'s cap copies took ~600 bytes a root).
#[inline(never)]
fn derived(data: u64, slot: SlotRef) -> Result<Cap, Exception> {
    let mut cap = slot.cap();
    if data != 0 {
        cap = update_cap_data(false, data, &cap);
    }
    Ok(derive(slot, &cap)?)
}

/// The CSpace and VSpace roots of Configure and SetSpace, with the checks
/// seL4 makes in its order.
fn space_args(
    target: Tcb,
    croot_data: u64,
    croot_slot: SlotRef,
    vroot_data: u64,
    vroot_slot: SlotRef,
) -> Result<(NewCap, NewCap), Exception> {
    if slot_cap_long_running_delete(target.slot(tcb::CTABLE))
        || slot_cap_long_running_delete(target.slot(tcb::VTABLE))
    {
        return err(SyscallError::IllegalOperation);
    }
    let croot = derived(croot_data, croot_slot)?;
    if !matches!(croot, Cap::CNode { .. }) {
        return err(SyscallError::IllegalOperation);
    }
    let vroot = derived(vroot_data, vroot_slot)?;
    if !is_valid_vtable_root(&vroot) {
        return err(SyscallError::IllegalOperation);
    }
    Ok(((croot, croot_slot), (vroot, vroot_slot)))
}

/// Configure, SetSpace, SetIPCBuffer and SetTimeoutEndpoint, decoded by
/// one body (one copy of the buffer's and the roots' checks). What each
/// method carries:
///
/// | method | extra caps | MRs |
/// |---|---|---|
/// | Configure | CSpace root, VSpace root, buffer frame | CSpace root data, VSpace root data, buffer address |
/// | SetSpace | fault endpoint, CSpace root, VSpace root | CSpace root data, VSpace root data |
/// | SetIPCBuffer | buffer frame | buffer address |
/// | SetTimeoutEndpoint | timeout endpoint | |
///
/// The checks come in seL4's order for each: the buffer, then the roots,
/// then the fault or timeout endpoint.
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
    let mut u = CapUpdates::default();
    if has_buffer {
        // The last cap and the last word.
        let addr = inv.arg(words - 1);
        u.ipc_buffer = Some((addr, buffer_arg(addr, extra(caps - 1))?));
    }
    if has_space {
        // Caps 0 and 1 (Configure) or 1 and 2 (SetSpace), words 0 and 1.
        let first = set_space as usize;
        u.space = Some(space_args(
            target,
            inv.arg(0),
            extra(first),
            inv.arg(1),
            extra(first + 1),
        )?);
    }
    if !has_buffer {
        let hs = extra(0);
        let cap = hs.cap();
        if !valid_fault_handler(&cap) {
            return err(SyscallError::InvalidCapability { index: 1 });
        }
        let index = if set_space {
            tcb::FAULT_HANDLER
        } else {
            tcb::TIMEOUT_HANDLER
        };
        u.handler = Some((index, (cap, hs)));
    }
    thread_control_caps(target, slot, u)
}

/// Replaces cap slot `index` of `target` with a copy of the new cap, if
/// the new cap and the invoked TCB cap are both still where they were
/// (deleting the old cap may have changed either; seL4's `installTCBCap`).
pub(super) fn install_tcb_cap(
    target: Tcb,
    tcb_slot: SlotRef,
    index: u64,
    new: Option<(Cap, SlotRef)>,
) -> Result<(), Exception> {
    let root = target.slot(index);
    cte_delete(root, true)?;
    if let Some((cap, src)) = new {
        if !cap.is_null() && still_valid(&cap, src, target, tcb_slot) {
            cte_insert(&cap, src, root);
        }
    }
    Ok(())
}

fn still_valid(cap: &Cap, src: SlotRef, target: Tcb, tcb_slot: SlotRef) -> bool {
    same_object_as(cap, &src.cap())
        && same_object_as(
            &Cap::Tcb {
                paddr: target.paddr(),
            },
            &tcb_slot.cap(),
        )
}

/// Installs the caps of Configure, SetSpace, SetTimeoutEndpoint and
/// SetIPCBuffer (seL4's `invokeTCB_ThreadControlCaps`).
fn thread_control_caps(target: Tcb, slot: SlotRef, u: CapUpdates) -> Result<(), Exception> {
    if let Some((index, h)) = u.handler {
        install_tcb_cap(target, slot, index, Some(h))?;
    }
    if let Some((croot, vroot)) = u.space {
        install_tcb_cap(target, slot, tcb::CTABLE, Some(croot))?;
        install_tcb_cap(target, slot, tcb::VTABLE, Some(vroot))?;
    }
    if let Some((addr, buffer)) = u.ipc_buffer {
        let bslot = target.slot(tcb::BUFFER);
        cte_delete(bslot, true)?;
        target.set_ipc_buffer(addr);
        if let Some((cap, src)) = buffer {
            if still_valid(&cap, src, target, slot) {
                cte_insert(&cap, src, bslot);
            }
        }
        if Some(target) == sched::cur_thread_opt() {
            sched::reschedule_required();
        }
    }
    Ok(())
}
