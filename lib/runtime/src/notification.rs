//! Waiting for notifications inside a handler (Septa's addition).
//!
//! A PD receives notifications and protected calls on one endpoint, in
//! its event loop. A server that must wait for a device while it serves a
//! call (a store whose `put` returns only once the disk has the data)
//! cannot go back to the loop: the reply it owes sits in its one reply
//! object, and receiving on the endpoint again would cancel it (seL4's
//! `receiveIPC`), or, without a reply object, would take another client's
//! call with no way to answer it. What it can do is wait on its own
//! notification alone: seL4 lets the thread a notification is bound to
//! wait on it directly, calls meanwhile queue on the endpoint untouched,
//! and the loop serves them once the handler returns.
//!
//! The description gives the PD a read-only cap to its own notification:
//!
//! ```toml
//! [pd.store]
//! program = "kv"
//! caps = [{ slot = 1, cap = "notification", pd = "store" }]
//! ```
//!
//! and the PD waits with [`OwnNotification::wait`]. What such a wait takes
//! is every channel notified since the last one: the caller must handle
//! all of them (or keep them for later), because the event loop will not
//! see them again.

use septa_abi::microkit::user_cap_cptr;
use septa_sel4::{syscall, CPtr};

use crate::ChannelSet;

/// The PD's own notification, reached through an extra cap slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OwnNotification(CPtr);

impl OwnNotification {
    /// The notification in extra-cap slot `slot` (1..64) of the PD's root
    /// CNode, where the description put it; `None` for a slot outside.
    pub const fn in_slot(slot: u64) -> Option<Self> {
        match user_cap_cptr(slot) {
            Some(bits) => Some(OwnNotification(CPtr::from_bits(bits))),
            None => None,
        }
    }

    /// Blocks until at least one channel is notified; returns every
    /// channel notified since the last receive (IRQs included).
    pub fn wait(self) -> ChannelSet {
        let (_, badge) = syscall::wait(self.0);
        ChannelSet::from_bits(badge)
    }

    /// The channels notified since the last receive, without blocking
    /// (empty if none).
    pub fn poll(self) -> ChannelSet {
        let (_, badge) = syscall::nb_wait(self.0);
        ChannelSet::from_bits(badge)
    }
}
