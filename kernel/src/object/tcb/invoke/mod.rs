//! # TCB invocations
//!
//! [`decode_invocation`] picks the method by label; each method's function
//! checks its arguments in the order seL4 16.0.0 does (so the first failing
//! check decides the error), then performs it. Arguments (interface `TCB`
//! in seL4's `object-api.xml`):
//!
//! | method | MRs | extra caps | where |
//! |---|---|---|---|
//! | ReadRegisters | flags (bit 0 suspend), count | | [`registers`] |
//! | WriteRegisters | flags (bit 0 resume), count, registers... | | [`registers`] |
//! | CopyRegisters | flags (suspend source, resume target, frame, integer) | source TCB | [`registers`] |
//! | Configure | CSpace root data, VSpace root data, buffer address | CSpace root, VSpace root, buffer frame | [`caps`] |
//! | SetPriority, SetMCPriority | priority | authority TCB | [`priority`] |
//! | SetSchedParams | MCP, priority | authority TCB, SC (or null), fault endpoint | [`priority`] |
//! | SetTimeoutEndpoint | | timeout endpoint | [`caps`] |
//! | SetIPCBuffer | buffer address | buffer frame | [`caps`] |
//! | SetSpace | CSpace root data, VSpace root data | fault endpoint, CSpace root, VSpace root | [`caps`] |
//! | Suspend, Resume | | | here |
//! | BindNotification | | notification | here |
//! | UnbindNotification | | | here |
//! | SetTLSBase | TLS base | | here |
//! | SetFlags | flags to clear, flags to set | | here |
//! | SetBreakpoint, GetBreakpoint, UnsetBreakpoint, ConfigureSingleStepping (debug configuration) | see `tcb::debug` | | `tcb::debug` |
//!
//! Register order of Read/Write/CopyRegisters: `context::FRAME_REGISTERS`
//! then `context::GP_REGISTERS`. The caller is left in Restart around the
//! operation by the system-call layer, as seL4 does.

mod caps;
mod priority;
mod registers;

use super::{Tcb, FLAG_FPU_DISABLED, FLAG_MASK};
use crate::cap::Cap;
use crate::context::Reg;
use crate::cte::SlotRef;
use crate::error::{Exception, SyscallError};
use crate::invocation::{Invocation, ReplyWords};
use crate::object::notification::{self, Ntfn};
use crate::sched;
use septa_abi::Label;

/// Whether this configuration has the hardware debug API's methods.
const HW_DEBUG: bool = septa_abi::CONFIG.hardware_debug_api();

fn err<T>(e: SyscallError) -> Result<T, Exception> {
    Err(Exception::Syscall(e))
}

fn truncated<T>() -> Result<T, Exception> {
    err(SyscallError::TruncatedMessage)
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
    let Some(label) = Label::from_u64(inv.label) else {
        return err(SyscallError::IllegalOperation);
    };
    match label {
        Label::TcbReadRegisters => registers::read(inv, target, reply),
        Label::TcbWriteRegisters => registers::write(inv, target),
        Label::TcbCopyRegisters => registers::copy(inv, target),
        Label::TcbSuspend => {
            sched::suspend(target);
            Ok(())
        }
        Label::TcbResume => {
            sched::restart(target);
            Ok(())
        }
        Label::TcbConfigure
        | Label::TcbSetTimeoutEndpoint
        | Label::TcbSetIpcBuffer
        | Label::TcbSetSpace => caps::thread_control(inv, target, slot, label),
        Label::TcbSetPriority | Label::TcbSetMcPriority | Label::TcbSetSchedParams => {
            priority::set_sched(inv, target, slot, label)
        }
        Label::TcbBindNotification => bind_notification(inv, target),
        Label::TcbUnbindNotification => unbind_notification(target),
        Label::TcbSetTlsBase => set_tls_base(inv, target),
        Label::TcbSetFlags => set_flags(inv, target, reply),
        // The hardware debug API (only the debug configuration decodes
        // these labels; the guards say so to the compiler, which otherwise
        // kept the four methods, ~1 KB, in the other configurations).
        Label::TcbSetBreakpoint if HW_DEBUG => super::debug::set_breakpoint(inv, target),
        Label::TcbGetBreakpoint if HW_DEBUG => super::debug::get_breakpoint(inv, target, reply),
        Label::TcbUnsetBreakpoint if HW_DEBUG => super::debug::unset_breakpoint(inv, target),
        Label::TcbConfigureSingleStepping if HW_DEBUG => {
            super::debug::configure_single_stepping(inv, target, reply)
        }
        _ => err(SyscallError::IllegalOperation),
    }
}

/// BindNotification: the notification must be receivable, not waited on
/// and bound to no other thread; the thread must have none bound.
fn bind_notification(inv: &Invocation, target: Tcb) -> Result<(), Exception> {
    let Some(ns) = inv.extra_cap(0) else {
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

fn unbind_notification(target: Tcb) -> Result<(), Exception> {
    if target.bound_notification() == 0 {
        return err(SyscallError::IllegalOperation);
    }
    notification::unbind_notification(target);
    Ok(())
}

fn set_tls_base(inv: &Invocation, target: Tcb) -> Result<(), Exception> {
    if inv.length() < 1 {
        return truncated();
    }
    target.set_reg(Reg::TLS_BASE, inv.arg(0));
    if target == sched::cur_thread() {
        sched::reschedule_required();
    }
    Ok(())
}

/// SetFlags: clears, then sets (known flags only); replies with the
/// thread's flags as they are now.
fn set_flags(inv: &Invocation, target: Tcb, reply: &mut ReplyWords) -> Result<(), Exception> {
    if inv.length() < 2 {
        return truncated();
    }
    let (clear, set) = (inv.arg(0), inv.arg(1));
    let flags = (target.flags() & !clear) | (set & FLAG_MASK);
    target.set_flags(flags);
    if flags & FLAG_FPU_DISABLED != 0 {
        sched::fpu_release(target);
    } else if target == sched::cur_thread() {
        sched::lazy_fpu_restore(target);
    }
    reply.push(flags);
    Ok(())
}
