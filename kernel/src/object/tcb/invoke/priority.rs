//! SetPriority, SetMCPriority and SetSchedParams: the scheduling
//! parameters, each checked against an authority thread's MCP.

use super::caps::install_tcb_cap;
use super::{err, truncated, Tcb};
use crate::cap::Cap;
use crate::cte::SlotRef;
use crate::error::{Exception, SyscallError};
use crate::fault::valid_fault_handler;
use crate::invocation::Invocation;
use crate::object::sched_context::{self, Sc};
use crate::object::tcb;
use crate::sched;

/// A priority `auth` may give (seL4's `checkPrio`).
fn check_prio(prio: u64, auth: Tcb) -> Result<(), SyscallError> {
    let mcp = auth.mcp();
    if prio > mcp {
        Err(SyscallError::RangeError { min: 0, max: mcp })
    } else {
        Ok(())
    }
}

/// The authority thread, extra cap 0.
fn auth_tcb(inv: &Invocation) -> Result<Tcb, Exception> {
    match inv.extra_cap(0).map(|s| s.cap()) {
        Some(Cap::Tcb { paddr }) => Ok(Tcb::new(paddr)),
        _ => err(SyscallError::InvalidCapability { index: 1 }),
    }
}

/// SetSchedParams: MCP, priority (both checked against the authority's
/// MCP), scheduling context (bound, unbound or kept) and fault endpoint.
pub(super) fn set_sched_params(
    inv: &Invocation,
    target: Tcb,
    slot: SlotRef,
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
            if target == sched::cur_thread() {
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
    install_tcb_cap(target, slot, tcb::FAULT_HANDLER, &fh, fs)?;
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

/// SetPriority and SetMCPriority (`mcp`): MR0, which the authority
/// (extra cap 0) may give. One body for both.
pub(super) fn set_priority(inv: &Invocation, target: Tcb, mcp: bool) -> Result<(), Exception> {
    if inv.length() < 1 || inv.extra_cap(0).is_none() {
        return truncated();
    }
    let value = inv.arg(0);
    check_prio(value, auth_tcb(inv)?)?;
    if mcp {
        target.set_mcp(value);
    } else {
        sched::set_priority(target, value);
    }
    Ok(())
}
