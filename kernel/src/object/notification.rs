//! Notifications: asynchronous signals (64 bytes in MCS,
//! `NOTIFICATION_SIZE_BITS`).
//!
//! Zero rule: the all-zero notification is idle, with no bound TCB or
//! scheduling context and a zero badge word.

/// Clean-up when the last cap to a notification is deleted (seL4:
/// `schedContextMaybeUnbindNtfn`, `unbindMaybeNotification`,
/// `cancelAllSignals`).
///
/// Not yet: the IPC and scheduler work must unbind a bound scheduling
/// context, unbind a bound TCB, and restart every thread waiting on it.
pub fn finalise(notification: u64) {
    let _ = notification;
}

/// Signals the notification at `notification` with `badge` (seL4's
/// `sendSignal`): wakes a waiting or bound thread, or ORs the badge into
/// the notification word. Interrupt delivery calls this too.
///
/// Not yet: the IPC work implements it.
pub fn send_signal(notification: u64, badge: u64) {
    let _ = (notification, badge);
}
