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
use septa_abi::Label;

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

/// SetPriority, SetMCPriority and SetSchedParams, one body: the
/// priority (SetPriority), the MCP (SetMCPriority) or both with the
/// scheduling context (bound, unbound or kept) and the fault endpoint
/// (SetSchedParams: MCP, priority; authority, SC or null, fault endpoint).
/// Every value is checked against the authority's MCP (extra cap 0).
pub(super) fn set_sched(
    inv: &Invocation,
    target: Tcb,
    slot: SlotRef,
    label: Label,
) -> Result<(), Exception> {
    let params = label == Label::TcbSetSchedParams;
    let (caps, words) = if params { (3, 2) } else { (1, 1) };
    if inv.extra_caps.len() < caps || inv.length() < words {
        return truncated();
    }
    // The MCP of SetMCPriority and SetSchedParams, the priority of
    // SetPriority; then the priority of SetSchedParams (or the same word).
    let (first, prio) = (inv.arg(0), inv.arg(words - 1));
    let auth = auth_tcb(inv)?;
    check_prio(first, auth)?;
    // Present after the check (the fallback is never taken).
    let extra = |i: usize| inv.extra_caps.get(i).copied().unwrap_or(slot);
    let mut sc = None;
    let mut update_sc = false;
    if params {
        check_prio(prio, auth)?;
        sc = match extra(1).cap() {
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
        update_sc = target.sched_context() != Sc::link(sc);
        let fs = extra(2);
        let fh = fs.cap();
        if !valid_fault_handler(&fh) {
            return err(SyscallError::InvalidCapability { index: 3 });
        }
        install_tcb_cap(target, slot, tcb::FAULT_HANDLER, &fh, fs)?;
    }
    if label != Label::TcbSetPriority {
        target.set_mcp(first);
    }
    if label != Label::TcbSetMcPriority {
        sched::set_priority(target, prio);
    }
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
