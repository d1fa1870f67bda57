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

/// A new cap for one of a thread's slots, with the slot it is copied from.
type NewCap = (Cap, SlotRef);

/// Which of a thread's cap slots a ThreadControl invocation replaces.
#[derive(Clone, Copy, Default)]
struct CapUpdates {
    fault: Option<(Cap, SlotRef)>,
    timeout: Option<(Cap, SlotRef)>,
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
    let cap = derive(slot, &slot.cap())?;
    check_valid_ipc_buffer(addr, &cap)?;
    Ok(Some((cap, slot)))
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
    let mut croot = croot_slot.cap();
    if croot_data != 0 {
        croot = update_cap_data(false, croot_data, &croot);
    }
    let croot = derive(croot_slot, &croot)?;
    if !matches!(croot, Cap::CNode { .. }) {
        return err(SyscallError::IllegalOperation);
    }
    let mut vroot = vroot_slot.cap();
    if vroot_data != 0 {
        vroot = update_cap_data(false, vroot_data, &vroot);
    }
    let vroot = derive(vroot_slot, &vroot)?;
    if !is_valid_vtable_root(&vroot) {
        return err(SyscallError::IllegalOperation);
    }
    Ok(((croot, croot_slot), (vroot, vroot_slot)))
}

/// Configure: CSpace and VSpace roots and the IPC buffer at once.
pub(super) fn configure(inv: &Invocation, target: Tcb, slot: SlotRef) -> Result<(), Exception> {
    let (Some(cs), Some(vs), Some(bs)) = (inv.extra_cap(0), inv.extra_cap(1), inv.extra_cap(2))
    else {
        return truncated();
    };
    if inv.length() < 3 {
        return truncated();
    }
    let (croot_data, vroot_data, addr) = (inv.arg(0), inv.arg(1), inv.arg(2));
    let buffer = buffer_arg(addr, bs)?;
    let space = space_args(target, croot_data, cs, vroot_data, vs)?;
    thread_control_caps(
        target,
        slot,
        CapUpdates {
            space: Some(space),
            ipc_buffer: Some((addr, buffer)),
            ..CapUpdates::default()
        },
    )
}

pub(super) fn set_timeout_endpoint(
    inv: &Invocation,
    target: Tcb,
    slot: SlotRef,
) -> Result<(), Exception> {
    let Some(th) = inv.extra_cap(0) else {
        return truncated();
    };
    let cap = th.cap();
    if !valid_fault_handler(&cap) {
        return err(SyscallError::InvalidCapability { index: 1 });
    }
    thread_control_caps(
        target,
        slot,
        CapUpdates {
            timeout: Some((cap, th)),
            ..CapUpdates::default()
        },
    )
}

pub(super) fn set_ipc_buffer(
    inv: &Invocation,
    target: Tcb,
    slot: SlotRef,
) -> Result<(), Exception> {
    let Some(bs) = inv.extra_cap(0) else {
        return truncated();
    };
    if inv.length() < 1 {
        return truncated();
    }
    let addr = inv.arg(0);
    let buffer = buffer_arg(addr, bs)?;
    thread_control_caps(
        target,
        slot,
        CapUpdates {
            ipc_buffer: Some((addr, buffer)),
            ..CapUpdates::default()
        },
    )
}

/// SetSpace: fault endpoint and CSpace and VSpace roots.
pub(super) fn set_space(inv: &Invocation, target: Tcb, slot: SlotRef) -> Result<(), Exception> {
    let (Some(fs), Some(cs), Some(vs)) = (inv.extra_cap(0), inv.extra_cap(1), inv.extra_cap(2))
    else {
        return truncated();
    };
    if inv.length() < 2 {
        return truncated();
    }
    let space = space_args(target, inv.arg(0), cs, inv.arg(1), vs)?;
    let fh = fs.cap();
    if !valid_fault_handler(&fh) {
        return err(SyscallError::InvalidCapability { index: 1 });
    }
    thread_control_caps(
        target,
        slot,
        CapUpdates {
            fault: Some((fh, fs)),
            space: Some(space),
            ..CapUpdates::default()
        },
    )
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
    if let Some(fh) = u.fault {
        install_tcb_cap(target, slot, tcb::FAULT_HANDLER, Some(fh))?;
    }
    if let Some(th) = u.timeout {
        install_tcb_cap(target, slot, tcb::TIMEOUT_HANDLER, Some(th))?;
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
