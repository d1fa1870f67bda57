//! Scheduling contexts (MCS): budget and period of CPU time
//! (`2^size_bits` bytes, at least `MIN_SCHED_CONTEXT_BITS`).
//!
//! Zero rule: the all-zero scheduling context is unconfigured (no refills,
//! bound to nothing), so it cannot run a thread until SchedControl
//! configures it.

/// Clean-up when the last cap to a scheduling context is deleted (seL4:
/// unbind all TCBs, the notification and the reply, complete a pending
/// YieldTo, then mark it unconfigured: `scRefillMax = 0`, not sporadic).
///
/// Not yet: the scheduler work must do all of the above.
pub fn finalise(sched_context: u64) {
    let _ = sched_context;
}
