//! The timer subsystem's client: the time, and timeouts, from the timer
//! driver PD over protected procedure calls (`septa-timer-protocol`,
//! sDDF 0.7's labels).
//!
//! The system tool patches `septa_timer_channel` with this PD's channel to
//! the driver plus one when the PD is a client of `[timer]`; zero means it
//! is none, and every call here says so ([`TimerError::NotAClient`]). A
//! timeout arrives as a notification on [`channel`]: the PD's `notified`
//! sees it among the others.

use septa_timer_protocol as protocol;

use crate::{mr_get, mr_set, msginfo_new, Channel, ChannelError};

crate::setvar! {
    static TIMER_CHANNEL = "septa_timer_channel";
}

/// Why a timer request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TimerError {
    #[error("this PD is not a client of the timer")]
    NotAClient,
    #[error(
        "the timer driver refused the request (a period below {} ns?)",
        protocol::MIN_PERIOD_NS
    )]
    Refused,
    #[error("the call to the timer driver failed: {0}")]
    Call(ChannelError),
}

/// The channel to the timer driver, on which timeouts are notified; `None`
/// if this PD is no timer client.
pub fn channel() -> Option<Channel> {
    let v = TIMER_CHANNEL.get();
    (1..=64).contains(&v).then(|| Channel::new((v - 1) as u8))
}

fn call(label: u64, arg: Option<u64>) -> Result<(), TimerError> {
    let ch = channel().ok_or(TimerError::NotAClient)?;
    if let Some(a) = arg {
        mr_set(0, a);
    }
    let reply = ch
        .pp_call(msginfo_new(label, u64::from(arg.is_some())))
        .map_err(TimerError::Call)?;
    if reply.label() != protocol::OK {
        return Err(TimerError::Refused);
    }
    Ok(())
}

/// Nanoseconds since the counter started (sDDF's `sddf_timer_time_now`).
pub fn now() -> Result<u64, TimerError> {
    call(protocol::GET_TIME, None)?;
    Ok(mr_get(0))
}

/// One timeout `after` nanoseconds from now, replacing this PD's last one
/// (sDDF's `sddf_timer_set_timeout`).
pub fn set_timeout(after: u64) -> Result<(), TimerError> {
    call(protocol::SET_TIMEOUT, Some(after))
}

/// A timeout every `period` nanoseconds from now on, replacing this PD's
/// last one.
pub fn set_periodic(period: u64) -> Result<(), TimerError> {
    call(protocol::SET_PERIODIC, Some(period))
}

/// No more timeouts.
pub fn cancel() -> Result<(), TimerError> {
    call(protocol::CANCEL, None)
}
