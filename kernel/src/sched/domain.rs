//! # Domains and the domain schedule
//!
//! Domains partition threads in time: only threads of the current domain
//! run (each domain has its own ready queues), and the domain schedule
//! says which domain runs for how long (seL4's `ksDomSchedule`, MCS
//! flavour: durations in timer ticks, charged at every kernel entry). The
//! schedule is a table of `(domain, duration)` entries; from the start
//! index the kernel steps through them until an end marker (an all-zero
//! entry) and starts over. At boot it holds one entry, domain 0 forever.
//! User level changes it through the domain cap (`object::domain`).

use super::*;

/// Domains of every configuration (Microkit's `KernelNumDomains`).
pub const NUM_DOMAINS: u64 = septa_abi::kernel_config::NUM_DOMAINS;
/// Entries of the domain schedule (`KernelNumDomainSchedules`).
pub const DOMAIN_SCHEDULE_LENGTH: usize = septa_abi::kernel_config::NUM_DOMAIN_SCHEDULES as usize;
/// Longest duration a domain schedule entry holds (56 bits).
pub const DSCHED_MAX_DURATION: u64 = u64::MAX >> 8;

/// The schedule at boot: domain 0 for the longest duration, then end
/// markers (seL4's `init_core_state`).
pub(super) const fn boot_schedule() -> [Cell<u64>; DOMAIN_SCHEDULE_LENGTH] {
    let mut t = [const { Cell::new(0) }; DOMAIN_SCHEDULE_LENGTH];
    t[0] = Cell::new(entry(0, DSCHED_MAX_DURATION));
    t
}

/// A schedule entry (seL4's `dschedule_make`): the domain in the top 8
/// bits, the duration below.
pub const fn entry(domain: u64, duration: u64) -> u64 {
    (domain << 56) | (duration & DSCHED_MAX_DURATION)
}

/// The current domain.
#[inline(always)]
pub fn cur_domain() -> u64 {
    with(|s| s.cur_domain.get())
}

/// The current domain's time is up (seL4's `isCurDomainExpired`).
#[inline(always)]
pub fn cur_domain_expired() -> bool {
    NUM_DOMAINS > 1 && with(|s| s.domain_time.get()) == 0
}

/// On its way out of the kernel: if the domain's time is up, pick anew
/// (seL4's `checkDomainTime`).
pub fn check_domain_time() {
    if cur_domain_expired() {
        set_reprogram();
        reschedule_required();
    }
}

/// Charges `consumed` ticks to the current domain; what is left when less
/// than a kernel entry and exit (the minimum budget) counts as nothing
/// (seL4's `updateTimestamp`).
#[inline(always)]
pub(super) fn charge_domain_time(s: &SchedState, consumed: u64) {
    if NUM_DOMAINS > 1 {
        let left = s.domain_time.get();
        if consumed.saturating_add(min_budget()) >= left {
            s.domain_time.set(0);
        } else {
            s.domain_time.set(left - consumed);
        }
    }
}

/// The next entry of the schedule becomes current (seL4's `nextDomain`).
pub(super) fn next_domain() {
    with(|s| {
        let mut idx = s.dom_schedule_idx.get() + 1;
        if idx >= DOMAIN_SCHEDULE_LENGTH || s.dom_schedule[idx].get() == 0 {
            idx = s.dom_schedule_start.get();
        }
        s.dom_schedule_idx.set(idx);
        s.reprogram.set(true);
        let e = s.dom_schedule[idx].get();
        s.cur_domain.set(e >> 56);
        s.domain_time.set(e & DSCHED_MAX_DURATION);
    });
    crate::preempt::reset_work_units();
}
