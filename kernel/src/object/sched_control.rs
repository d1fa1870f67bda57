//! # SchedControl: configuring scheduling contexts (MCS)
//!
//! One SchedControl cap per core hands out CPU time:
//! `ConfigureFlags(sc, budget µs, period µs, extra refills, badge, flags)`
//! gives a scheduling context its parameters (seL4's
//! `decodeSchedControl_ConfigureFlags`). Budget and period must lie in
//! [`sched::min_budget_us`]..=[`sched::max_period_us`] with budget ≤
//! period; budget = period makes a round-robin SC; flag bit 0 makes it a
//! sporadic server.

use crate::cap::Cap;
use crate::error::{Exception, SyscallError};
use crate::invocation::Invocation;
use crate::object::sched_context::{
    refill_absolute_max, refill_new, refill_update, resume, Sc, MIN_REFILLS,
};
use crate::object::tcb::Tcb;
use crate::sched;
use septa_abi::Label;

/// `seL4_SchedContext_Sporadic`.
pub const FLAG_SPORADIC: u64 = 1;

/// Decodes and performs an invocation of a SchedControl cap.
pub fn decode_invocation(inv: &Invocation, cap: &Cap) -> Result<(), Exception> {
    let Cap::SchedControl { core } = *cap else {
        return Err(SyscallError::IllegalOperation.into());
    };
    if inv.label != Label::SchedControlConfigureFlags.number() {
        return Err(SyscallError::IllegalOperation.into());
    }
    let Some(target) = inv.extra_cap(0) else {
        return Err(SyscallError::TruncatedMessage.into());
    };
    if inv.length() < 5 {
        return Err(SyscallError::TruncatedMessage.into());
    }
    let range = |max| SyscallError::RangeError {
        min: sched::min_budget_us(),
        max,
    };
    let max_period = sched::max_period_us();
    let budget_us = inv.arg(0);
    if budget_us > max_period {
        return Err(range(max_period).into());
    }
    let budget = sched::us_to_ticks(budget_us);
    let period_us = inv.arg(1);
    if period_us > max_period {
        return Err(range(max_period).into());
    }
    let period = sched::us_to_ticks(period_us);
    if budget < sched::min_budget() || period < sched::min_budget() {
        return Err(range(max_period).into());
    }
    if budget > period {
        return Err(range(period_us).into());
    }
    let Cap::SchedContext { paddr, size_bits } = target.cap() else {
        return Err(SyscallError::InvalidCapability { index: 1 }.into());
    };
    let extra_refills = inv.arg(2);
    let max_refills = refill_absolute_max(size_bits as u32);
    if extra_refills > max_refills - MIN_REFILLS {
        return Err(SyscallError::RangeError {
            min: 0,
            max: max_refills - MIN_REFILLS,
        }
        .into());
    }
    let (badge, flags) = (inv.arg(3), inv.arg(4));
    configure(
        Sc::new(paddr),
        core,
        budget,
        period,
        extra_refills + MIN_REFILLS,
        badge,
        flags,
    );
    Ok(())
}

/// seL4's `invokeSchedControl_ConfigureFlags`.
fn configure(
    sc: Sc,
    _core: u64,
    budget: u64,
    period: u64,
    max_refills: u64,
    badge: u64,
    flags: u64,
) {
    let thread = Tcb::from_link(sc.tcb());
    if let Some(t) = thread {
        // Out of every sorted queue while the parameters change.
        sched::tcb_release_remove(t);
        sched::tcb_sched_dequeue(t);
        if sched::cur_sc() == Some(sc) {
            // Bill what was used so far under the old parameters.
            sched::commit_time();
        }
    }
    if budget == period {
        // Round robin: period 0 means "always ready to be refilled".
        refill_new(sc, MIN_REFILLS, budget, 0);
    } else if sc.is_active() && thread.is_some_and(|t| t.state().is_runnable()) {
        // In use: keep to the bandwidth it had.
        refill_update(sc, period, budget, max_refills);
    } else {
        refill_new(sc, max_refills, budget, period);
    }
    if let Some(t) = thread {
        resume(sc);
        if t.state().is_runnable() && Some(t) != sched::cur_thread_opt() {
            sched::possible_switch_to(t);
        }
        if Some(t) == sched::cur_thread_opt() {
            sched::reschedule_required();
        }
    }
    sc.set_badge(badge);
    sc.set_sporadic(flags & FLAG_SPORADIC != 0);
}
