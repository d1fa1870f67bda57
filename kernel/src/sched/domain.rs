//! # The domain schedule
//!
//! Domains partition threads in time: only threads of the current domain
//! run, and the domain schedule says which domain runs for how long
//! (seL4's `ksDomSchedule`).

use super::*;

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
