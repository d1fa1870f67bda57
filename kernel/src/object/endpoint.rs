//! Endpoints: synchronous IPC rendezvous (16 bytes, `ENDPOINT_SIZE_BITS`).
//!
//! Zero rule: the all-zero endpoint is idle with an empty queue.

/// Releases everything that waits on the endpoint whose last cap is being
/// deleted (seL4's `cancelAllIPC`).
///
/// Not yet: the IPC work must dequeue every thread blocked on this endpoint,
/// set each to Restart (or Inactive when it was blocked on a reply for a
/// Call that can no longer complete, per seL4), put them on the ready queue
/// and reschedule; in MCS, also unlink each waiter's reply object.
pub fn finalise(endpoint: u64) {
    let _ = endpoint;
}

/// Cancels the queued sends that carry `badge` (seL4's `cancelBadgedSends`,
/// invoked by CNode CancelBadgedSends through a cap with all rights).
///
/// Not yet: the IPC work must walk the send queue, restart each sender whose
/// blocking badge equals `badge`, leave the others queued, set the endpoint
/// idle if the queue empties, and reschedule. The walk is a preemption-free
/// loop in seL4 16.0.0.
pub fn cancel_badged_sends(endpoint: u64, badge: u64) {
    let _ = (endpoint, badge);
}
