//! # TCB invocations
//!
//! [`decode_invocation`] checks the arguments of every TCB method of the
//! label table in the order seL4 16.0.0 does (so the first failing check
//! decides the error), then performs it. Arguments (interface `TCB` in
//! seL4's `object-api.xml`):
//!
//! | method | MRs | extra caps |
//! |---|---|---|
//! | ReadRegisters | flags (bit 0 suspend), count | |
//! | WriteRegisters | flags (bit 0 resume), count, registers... | |
//! | CopyRegisters | flags (suspend source, resume target, frame, integer) | source TCB |
//! | Configure | CSpace root data, VSpace root data, buffer address | CSpace root, VSpace root, buffer frame |
//! | SetPriority, SetMCPriority | priority | authority TCB |
//! | SetSchedParams | MCP, priority | authority TCB, SC (or null), fault endpoint |
//! | SetTimeoutEndpoint | | timeout endpoint |
//! | SetIPCBuffer | buffer address | buffer frame |
//! | SetSpace | CSpace root data, VSpace root data | fault endpoint, CSpace root, VSpace root |
//! | Suspend, Resume, UnbindNotification | | |
//! | BindNotification | | notification |
//! | SetTLSBase | TLS base | |
//! | SetFlags | flags to clear, flags to set | |
//!
//! Register order of Read/Write/CopyRegisters: `context::FRAME_REGISTERS`
//! then `context::GP_REGISTERS`. The caller is left in Restart around the
//! operation by the system-call layer, as seL4 does.

use super::{Tcb, FLAG_FPU_DISABLED, FLAG_MASK};
use crate::cap::{derive, same_object_as, update_cap_data, Cap};
use crate::context::{sanitise_register, Reg, FRAME_REGISTERS, GP_REGISTERS};
use crate::cte::{cte_insert, slot_cap_long_running_delete, SlotRef};
use crate::delete::cte_delete;
use crate::error::{Exception, SyscallError};
use crate::fault::valid_fault_handler;
use crate::invocation::{Invocation, ReplyWords};
use crate::object::notification::{self, Ntfn};
use crate::object::sched_context::{self, Sc};
use crate::object::tcb;
use crate::sched;
use septa_abi::ipc_buffer::SIZE_BITS as IPC_BUFFER_SIZE_BITS;
use septa_abi::{Label, TCB_REGISTER_COUNT};

const READ_REGISTERS_SUSPEND: u64 = 1 << 0;
const WRITE_REGISTERS_RESUME: u64 = 1 << 0;
const COPY_SUSPEND_SOURCE: u64 = 1 << 0;
const COPY_RESUME_TARGET: u64 = 1 << 1;
const COPY_TRANSFER_FRAME: u64 = 1 << 2;
const COPY_TRANSFER_INTEGER: u64 = 1 << 3;

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

fn err<T>(e: SyscallError) -> Result<T, Exception> {
    Err(Exception::Syscall(e))
}

fn truncated<T>() -> Result<T, Exception> {
    err(SyscallError::TruncatedMessage)
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

/// A priority `auth` may give (seL4's `checkPrio`).
fn check_prio(prio: u64, auth: Tcb) -> Result<(), SyscallError> {
    let mcp = auth.mcp();
    if prio > mcp {
        Err(SyscallError::RangeError { min: 0, max: mcp })
    } else {
        Ok(())
    }
}

fn auth_tcb(inv: &Invocation) -> Result<Tcb, Exception> {
    match inv.extra_cap(0).map(|s| s.cap()) {
        Some(Cap::Tcb { paddr }) => Ok(Tcb::new(paddr)),
        _ => err(SyscallError::InvalidCapability { index: 1 }),
    }
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

/// Decodes and performs an invocation of the TCB cap `cap`, held in `slot`.
pub fn decode_invocation(
    inv: &Invocation,
    cap: &Cap,
    slot: SlotRef,
    reply: &mut ReplyWords,
) -> Result<(), Exception> {
    let Cap::Tcb { paddr } = *cap else {
        return err(SyscallError::IllegalOperation);
    };
    let target = Tcb::new(paddr);
    let cur = sched::cur_thread();
    let extra = |i: usize| inv.extra_cap(i);
    match Label::from_u64(inv.label) {
        Some(Label::TcbReadRegisters) => {
            if inv.length() < 2 {
                return truncated();
            }
            let (flags, n) = (inv.arg(0), inv.arg(1));
            if !(1..=TCB_REGISTER_COUNT as u64).contains(&n) {
                return err(SyscallError::RangeError {
                    min: 1,
                    max: TCB_REGISTER_COUNT as u64,
                });
            }
            if target == cur {
                return err(SyscallError::IllegalOperation);
            }
            if flags & READ_REGISTERS_SUSPEND != 0 {
                sched::suspend(target);
            }
            for r in FRAME_REGISTERS
                .iter()
                .chain(GP_REGISTERS.iter())
                .take(n as usize)
            {
                reply.push(target.reg(*r));
            }
            Ok(())
        }
        Some(Label::TcbWriteRegisters) => {
            if inv.length() < 2 {
                return truncated();
            }
            let (flags, w) = (inv.arg(0), inv.arg(1));
            if ((inv.length() - 2) as u64) < w {
                return truncated();
            }
            if target == cur {
                return err(SyscallError::IllegalOperation);
            }
            let n = (w as usize).min(TCB_REGISTER_COUNT);
            let has_vcpu = target.vcpu() != 0;
            for (i, r) in FRAME_REGISTERS
                .iter()
                .chain(GP_REGISTERS.iter())
                .enumerate()
                .take(n)
            {
                target.set_reg(*r, sanitise_register(*r, inv.arg(i + 2), has_vcpu));
            }
            target.set_next_pc(target.restart_pc());
            if flags & WRITE_REGISTERS_RESUME != 0 {
                sched::restart(target);
            }
            Ok(())
        }
        Some(Label::TcbCopyRegisters) => {
            if inv.length() < 1 || extra(0).is_none() {
                return truncated();
            }
            let flags = inv.arg(0);
            let src = match extra(0).map(|s| s.cap()) {
                Some(Cap::Tcb { paddr }) => Tcb::new(paddr),
                _ => return err(SyscallError::InvalidCapability { index: 1 }),
            };
            if flags & COPY_SUSPEND_SOURCE != 0 {
                sched::suspend(src);
            }
            if flags & COPY_RESUME_TARGET != 0 {
                sched::restart(target);
            }
            if flags & COPY_TRANSFER_FRAME != 0 {
                for r in FRAME_REGISTERS {
                    target.set_reg(r, src.reg(r));
                }
                target.set_next_pc(target.restart_pc());
            }
            if flags & COPY_TRANSFER_INTEGER != 0 {
                for r in GP_REGISTERS {
                    target.set_reg(r, src.reg(r));
                }
            }
            if target == cur {
                sched::reschedule_required();
            }
            Ok(())
        }
        Some(Label::TcbSuspend) => {
            sched::suspend(target);
            Ok(())
        }
        Some(Label::TcbResume) => {
            sched::restart(target);
            Ok(())
        }
        Some(Label::TcbConfigure) => {
            let (Some(cs), Some(vs), Some(bs)) = (extra(0), extra(1), extra(2)) else {
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
        Some(Label::TcbSetPriority) | Some(Label::TcbSetMcPriority) => {
            if inv.length() < 1 || extra(0).is_none() {
                return truncated();
            }
            let value = inv.arg(0);
            let auth = auth_tcb(inv)?;
            check_prio(value, auth)?;
            if inv.label == Label::TcbSetPriority as u64 {
                sched::set_priority(target, value);
            } else {
                target.set_mcp(value);
            }
            Ok(())
        }
        Some(Label::TcbSetSchedParams) => decode_set_sched_params(inv, target, slot, cur),
        Some(Label::TcbSetTimeoutEndpoint) => {
            let Some(th) = extra(0) else {
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
        Some(Label::TcbSetIpcBuffer) => {
            if inv.length() < 1 || extra(0).is_none() {
                return truncated();
            }
            let addr = inv.arg(0);
            let buffer = match extra(0) {
                Some(bs) => buffer_arg(addr, bs)?,
                None => None,
            };
            thread_control_caps(
                target,
                slot,
                CapUpdates {
                    ipc_buffer: Some((addr, buffer)),
                    ..CapUpdates::default()
                },
            )
        }
        Some(Label::TcbSetSpace) => {
            let (Some(fs), Some(cs), Some(vs)) = (extra(0), extra(1), extra(2)) else {
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
        Some(Label::TcbBindNotification) => {
            let Some(ns) = extra(0) else {
                return truncated();
            };
            if target.bound_notification() != 0 {
                return err(SyscallError::IllegalOperation);
            }
            let Cap::Notification {
                paddr, can_receive, ..
            } = ns.cap()
            else {
                return err(SyscallError::IllegalOperation);
            };
            if !can_receive {
                return err(SyscallError::IllegalOperation);
            }
            let n = Ntfn::new(paddr);
            if n.queue().head.is_some() || n.bound_tcb().is_some() {
                return err(SyscallError::IllegalOperation);
            }
            notification::bind_notification(target, n);
            Ok(())
        }
        Some(Label::TcbUnbindNotification) => {
            if target.bound_notification() == 0 {
                return err(SyscallError::IllegalOperation);
            }
            notification::unbind_notification(target);
            Ok(())
        }
        Some(Label::TcbSetTlsBase) => {
            if inv.length() < 1 {
                return truncated();
            }
            target.set_reg(Reg::TLS_BASE, inv.arg(0));
            if target == cur {
                sched::reschedule_required();
            }
            Ok(())
        }
        Some(Label::TcbSetFlags) => {
            if inv.length() < 2 {
                return truncated();
            }
            let (clear, set) = (inv.arg(0), inv.arg(1));
            let flags = (target.flags() & !clear) | (set & FLAG_MASK);
            target.set_flags(flags);
            if flags & FLAG_FPU_DISABLED != 0 {
                sched::fpu_release(target);
            } else if target == cur {
                sched::lazy_fpu_restore(target);
            }
            reply.push(flags);
            Ok(())
        }
        _ => err(SyscallError::IllegalOperation),
    }
}

fn decode_set_sched_params(
    inv: &Invocation,
    target: Tcb,
    slot: SlotRef,
    cur: Tcb,
) -> Result<(), Exception> {
    let (Some(_), Some(scs), Some(fs)) = (inv.extra_cap(0), inv.extra_cap(1), inv.extra_cap(2))
    else {
        return truncated();
    };
    if inv.length() < 2 {
        return truncated();
    }
    let (mcp, prio) = (inv.arg(0), inv.arg(1));
    let auth = auth_tcb(inv)?;
    check_prio(mcp, auth)?;
    check_prio(prio, auth)?;
    let sc = match scs.cap() {
        Cap::SchedContext { paddr, .. } => {
            let sc = Sc::new(paddr);
            if target.sched_context() != sc.paddr()
                && (target.sched_context() != 0 || sc.tcb() != 0)
            {
                return err(SyscallError::IllegalOperation);
            }
            if target.state().is_blocked() && !sc.is_released() {
                return err(SyscallError::IllegalOperation);
            }
            Some(sc)
        }
        Cap::Null => {
            if target == cur {
                return err(SyscallError::IllegalOperation);
            }
            None
        }
        _ => return err(SyscallError::InvalidCapability { index: 2 }),
    };
    let update_sc = target.sched_context() != Sc::link(sc);
    let fh = fs.cap();
    if !valid_fault_handler(&fh) {
        return err(SyscallError::InvalidCapability { index: 3 });
    }
    install_tcb_cap(target, slot, tcb::FAULT_HANDLER, Some((fh, fs)))?;
    target.set_mcp(mcp);
    sched::set_priority(target, prio);
    if update_sc {
        match sc {
            Some(sc) => sched_context::bind_tcb(sc, target),
            None => {
                if let Some(old) = sched::sc_of(target) {
                    sched_context::unbind_tcb(old);
                }
            }
        }
    }
    Ok(())
}

/// Replaces cap slot `index` of `target` with a copy of the new cap, if
/// the new cap and the invoked TCB cap are both still where they were
/// (deleting the old cap may have changed either; seL4's `installTCBCap`).
fn install_tcb_cap(
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
