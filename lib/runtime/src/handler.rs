//! What a protection domain does when something arrives.

use septa_abi::MessageInfo;

use crate::{Channel, ChannelSet, Child};

/// The event handlers of a PD. The value is made by the `init` function
/// given to [`crate::protection_domain!`]; the event loop then calls these
/// methods, one event at a time.
///
/// The defaults panic (so the PD faults and the monitor hears of it):
/// receiving an event the PD has no handler for is a mistake in the system
/// description or the program, never something to ignore.
pub trait Handler {
    /// One or more channels were signalled (notifications or IRQs; an IRQ
    /// must be acknowledged with [`Channel::irq_ack`] before it fires again).
    fn notified(&mut self, channels: ChannelSet) {
        panic!("notification on channels {channels} but the PD's Handler has no `notified`");
    }

    /// A protected procedure call arrived on `channel`; its message
    /// registers are read with [`crate::mr_get`]. The returned message info
    /// (and registers set with [`crate::mr_set`]) is the reply.
    fn protected(&mut self, channel: Channel, msg: MessageInfo) -> MessageInfo {
        panic!("protected call on channel {channel} (label {}) but the PD's Handler has no `protected`", msg.label());
    }

    /// Child `child` faulted; `msg` is the fault message (decode it with
    /// `septa_sel4::fault::Fault::from_ipc_buffer`). Return `Some(reply)` to
    /// reply to the fault (label 0 restarts the child where the reply's
    /// registers say), `None` to leave the child stopped.
    fn fault(&mut self, child: Child, msg: MessageInfo) -> Option<MessageInfo> {
        panic!(
            "fault from child {child} (label {}) but the PD's Handler has no `fault`",
            msg.label()
        );
    }
}

/// A handler that only waits: any event is a mistake and panics.
#[derive(Clone, Copy, Debug, Default)]
pub struct NullHandler;

impl Handler for NullHandler {}
