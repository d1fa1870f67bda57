//! Reply objects (MCS): where a Call's reply capability lives (32 bytes,
//! `REPLY_SIZE_BITS`).
//!
//! Zero rule: the all-zero reply object is not in any call stack and names
//! no thread.

/// Clean-up when the last cap to a reply object is deleted (seL4: if a
/// thread is attached, `reply_remove` when it is blocked on the reply, or
/// `cancelIPC` when it is a server blocked in Recv with this reply).
///
/// Not yet: the IPC work must detach the reply from its thread and from the
/// call stack (returning a donated scheduling context as seL4 does).
pub fn finalise(reply: u64) {
    let _ = reply;
}
