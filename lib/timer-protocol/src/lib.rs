//! # septa-timer-protocol: what a timer client and a timer driver say
//!
//! A client makes protected procedure calls on its channel to the timer
//! driver; sDDF 0.7's two requests keep their labels and meaning, so an
//! sDDF client works unchanged, and Septa adds periodic timeouts:
//!
//! | label | request | reply | |
//! |---|---|---|---|
//! | [`GET_TIME`] (0) | none | MR0 = nanoseconds since the counter started | sDDF's `SDDF_TIMER_GET_TIME` |
//! | [`SET_TIMEOUT`] (1) | MR0 = nanoseconds from now | empty | sDDF's `SDDF_TIMER_SET_TIMEOUT`: one timeout, replacing the client's last |
//! | [`SET_PERIODIC`] (2) | MR0 = period in nanoseconds | empty | every period from now on, replacing the client's timeout |
//! | [`CANCEL`] (3) | none | empty | no more timeouts |
//!
//! When a client's timeout falls due, the driver notifies the client on the
//! same channel. A reply's label is [`OK`], or [`ERROR`] for a request the
//! driver does not know or a period below [`MIN_PERIOD_NS`] (sDDF's driver
//! answers label 0 whatever the request; its clients never look).
//!
//! Owns: the labels, the wiring conventions ([`wiring`]), the conversion
//! between counter ticks and nanoseconds, and the [`Timeouts`] table a
//! driver keeps (host-tested). Must not: make system calls or touch the
//! counter registers (the driver does).
#![no_std]
#![forbid(unsafe_code)]

/// Request labels.
pub const GET_TIME: u64 = 0;
pub const SET_TIMEOUT: u64 = 1;
pub const SET_PERIODIC: u64 = 2;
pub const CANCEL: u64 = 3;
/// Reply labels.
pub const OK: u64 = 0;
pub const ERROR: u64 = 1;

/// The shortest period: a periodic timeout shorter than this would keep
/// the driver busy for its client alone.
pub const MIN_PERIOD_NS: u64 = 10_000;

/// Nanoseconds in a second.
pub const NS_PER_S: u64 = 1_000_000_000;

/// How the timer subsystem is wired.
pub mod wiring {
    /// The driver's channel of the timer interrupt.
    pub const IRQ: u8 = 0;
    /// The most clients a driver serves (its channels 1 to 61).
    pub const MAX_CLIENTS: usize = 61;

    /// The driver's channel to client `i`.
    pub const fn client_channel(i: usize) -> Option<u8> {
        if i < MAX_CLIENTS {
            Some(1 + i as u8)
        } else {
            None
        }
    }

    /// The symbol of a client (any PD linking `septa-runtime`) the tool
    /// patches with its channel to the driver plus one (0: not a timer
    /// client), an 8-byte word.
    pub const CLIENT: &str = "septa_timer_channel";
}

/// `ticks` of a counter at `hz` in nanoseconds (exact to the nanosecond,
/// saturating).
pub fn ticks_to_ns(ticks: u64, hz: u64) -> u64 {
    if hz == 0 {
        return 0;
    }
    let ns = u128::from(ticks) * u128::from(NS_PER_S) / u128::from(hz);
    u64::try_from(ns).unwrap_or(u64::MAX)
}

/// The first tick of a counter at `hz` at or after `ns` nanoseconds
/// (rounded up, so a deadline is never early; saturating).
pub fn ns_to_ticks(ns: u64, hz: u64) -> u64 {
    let ticks = (u128::from(ns) * u128::from(hz)).div_ceil(u128::from(NS_PER_S));
    u64::try_from(ticks).unwrap_or(u64::MAX)
}

/// One client's timeout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Slot {
    /// When it falls due (ns); `None`: no timeout.
    due: Option<u64>,
    /// Its period (ns) if it repeats.
    period: Option<u64>,
    /// Periods that went by unnotified (the driver ran late).
    missed: u64,
}

/// The timeouts of up to `N` clients, indexed by channel: what a timer
/// driver keeps. Times are nanoseconds on the driver's clock.
#[derive(Clone, Debug)]
pub struct Timeouts<const N: usize> {
    slots: [Slot; N],
}

impl<const N: usize> Default for Timeouts<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Timeouts<N> {
    /// No timeouts.
    pub const fn new() -> Self {
        Timeouts {
            slots: [Slot {
                due: None,
                period: None,
                missed: 0,
            }; N],
        }
    }

    /// Channel `ch` wants one timeout `after` ns from `now` (sDDF's
    /// set-timeout: it replaces whatever `ch` had).
    pub fn set_once(&mut self, ch: usize, now: u64, after: u64) {
        if let Some(s) = self.slots.get_mut(ch) {
            *s = Slot {
                due: Some(now.saturating_add(after)),
                period: None,
                missed: 0,
            };
        }
    }

    /// Channel `ch` wants a timeout every `period` ns from `now` on;
    /// `false` (and nothing changed) if the period is below
    /// [`MIN_PERIOD_NS`].
    pub fn set_periodic(&mut self, ch: usize, now: u64, period: u64) -> bool {
        if period < MIN_PERIOD_NS {
            return false;
        }
        if let Some(s) = self.slots.get_mut(ch) {
            *s = Slot {
                due: Some(now.saturating_add(period)),
                period: Some(period),
                missed: 0,
            };
        }
        true
    }

    /// Channel `ch` wants no more timeouts.
    pub fn cancel(&mut self, ch: usize) {
        if let Some(s) = self.slots.get_mut(ch) {
            *s = Slot::default();
        }
    }

    /// The earliest timeout, if any: when the hardware must next fire.
    pub fn next(&self) -> Option<u64> {
        self.slots.iter().filter_map(|s| s.due).min()
    }

    /// The timeouts due at `now`: calls `notify(ch)` once for each channel
    /// whose timeout fell due, in channel order, and moves periodic ones to
    /// their next period (skipping, and counting, periods that went by
    /// whole: a client hears once per expiry it can still act on, never a
    /// burst of stale ones).
    pub fn expire(&mut self, now: u64, mut notify: impl FnMut(usize)) {
        for (ch, s) in self.slots.iter_mut().enumerate() {
            let Some(due) = s.due else { continue };
            if due > now {
                continue;
            }
            notify(ch);
            s.due = match s.period {
                Some(p) => {
                    let behind = (now - due) / p;
                    s.missed = s.missed.saturating_add(behind);
                    Some(due.saturating_add((behind + 1).saturating_mul(p)))
                }
                None => None,
            };
        }
    }

    /// Periods of channel `ch` that went by without a notification of
    /// their own.
    pub fn missed(&self, ch: usize) -> u64 {
        self.slots.get(ch).map_or(0, |s| s.missed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    #[test]
    fn ticks_and_nanoseconds_round_trip_at_qemus_frequency() {
        let hz = 62_500_000;
        assert_eq!(ticks_to_ns(1, hz), 16);
        assert_eq!(ticks_to_ns(62_500_000, hz), NS_PER_S);
        assert_eq!(ns_to_ticks(16, hz), 1);
        assert_eq!(ns_to_ticks(17, hz), 2, "a deadline rounds up, never early");
        assert_eq!(ns_to_ticks(u64::MAX, hz), u64::MAX / 16 + 1);
        assert_eq!(ticks_to_ns(u64::MAX, 1), u64::MAX, "saturates");
        assert_eq!(ticks_to_ns(5, 0), 0);
        for t in [0u64, 1, 999, 1 << 40] {
            assert!(ticks_to_ns(ns_to_ticks(t, hz), hz) >= t);
        }
    }

    fn expire<const N: usize>(t: &mut Timeouts<N>, now: u64) -> Vec<usize> {
        let mut v = Vec::new();
        t.expire(now, |ch| v.push(ch));
        v
    }

    #[test]
    fn one_shot_timeouts_fire_once_in_channel_order() {
        let mut t = Timeouts::<8>::new();
        assert_eq!(t.next(), None);
        t.set_once(3, 1000, 500);
        t.set_once(1, 1000, 200);
        assert_eq!(t.next(), Some(1200));
        assert_eq!(expire(&mut t, 1199), Vec::<usize>::new());
        assert_eq!(expire(&mut t, 2000), [1, 3]);
        assert_eq!(expire(&mut t, 3000), Vec::<usize>::new());
        assert_eq!(t.next(), None);
        // A new timeout replaces the old one (sDDF's rule).
        t.set_once(2, 0, 100);
        t.set_once(2, 0, 50);
        assert_eq!(t.next(), Some(50));
        t.cancel(2);
        assert_eq!(t.next(), None);
        // Channels beyond the table are ignored, not a fault.
        t.set_once(99, 0, 1);
        assert_eq!(t.next(), None);
    }

    #[test]
    fn periodic_timeouts_keep_their_phase_and_skip_what_went_by() {
        let mut t = Timeouts::<4>::new();
        assert!(!t.set_periodic(1, 0, MIN_PERIOD_NS - 1));
        assert!(t.set_periodic(1, 0, 100_000));
        assert_eq!(t.next(), Some(100_000));
        // Served 30 µs late: the next stays on the 100 µs grid.
        assert_eq!(expire(&mut t, 130_000), [1]);
        assert_eq!(t.next(), Some(200_000));
        // Served 3.5 periods late: one notification, the missed counted.
        assert_eq!(expire(&mut t, 550_000), [1]);
        assert_eq!(t.missed(1), 3);
        assert_eq!(t.next(), Some(600_000));
        t.cancel(1);
        assert_eq!(t.next(), None);
    }
}
