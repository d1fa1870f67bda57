//! The event loop, with libmicrokit 2.3.0's semantics.
//!
//! - Before the first receive, every IRQ channel of the PD is acknowledged
//!   once (libmicrokit does so to work around seL4 issue 1536: an IRQ that
//!   fired before the handler was set up stays masked otherwise).
//! - Each round receives on the input endpoint (slot 1) with the reply
//!   object (slot 4):
//!   - if the last event needs a reply (a protected call, or a fault the
//!     handler answered), any deferred operation is first sent as a plain
//!     Send, then ReplyRecv replies and receives in one call;
//!   - else if an operation was deferred (`deferred_notify`,
//!     `deferred_irq_ack`, or the passive PD's signal to the monitor),
//!     NBSendRecv sends it and receives in one call;
//!   - else Recv.
//! - The badge says what arrived: bit 62 a fault from the child in the low
//!   8 bits; bit 63 a protected call on the channel in the low 6 bits;
//!   otherwise the set of notifying channels, delivered together (an empty
//!   set is not delivered).

use septa_abi::microkit::{slot, BADGE_CHANNEL_MASK, BADGE_CHILD_MASK, FAULT_BADGE, PPC_BADGE};
use septa_abi::MessageInfo;
use septa_sel4::ipc_buffer::Registered;
use septa_sel4::{cap_type, syscall, Badge, CPtr, Cap};

use crate::channel::take_deferred;
use crate::ipc_counts::{self, count};
use crate::symbols::microkit_irqs;
use crate::{Channel, ChannelSet, Child, Handler};
use septa_cells::counters::{IPC_CHILD_FAULTS, IPC_NOTIFIED, IPC_PPC_IN};

const INPUT: CPtr = CPtr::from_bits(slot::INPUT);
const REPLY: Cap<cap_type::Reply> = Cap::from_bits(slot::REPLY);

/// The loop's state between rounds: the reply owed to the last caller,
/// where the PD counts its IPC (null: not counted, `ipc_counts`), and the
/// IPC buffer, looked up once.
#[derive(Debug)]
pub(crate) struct EventLoop {
    reply: Option<MessageInfo>,
    counts: *mut u64,
    buf: Registered,
}

// Everything here is `inline(always)`: `run` then keeps the loop's state
// (the reply owed, the counts pointer) in registers, and a round is one
// straight path through `wait` and `dispatch` with no call but the
// handler's (about 20 instructions a round fewer than out of line).
impl EventLoop {
    #[inline(always)]
    pub fn new() -> Self {
        EventLoop {
            reply: None,
            counts: ipc_counts::values(),
            buf: crate::entry::ipc_buffer(),
        }
    }

    /// Sends what is owed and blocks for the next event.
    #[inline(always)]
    fn wait(&mut self) -> (MessageInfo, Badge) {
        if let Some(reply) = self.reply.take() {
            if let Some(d) = take_deferred() {
                d.send_now();
            }
            syscall::reply_recv_in(self.buf, INPUT, reply, REPLY)
        } else if let Some(d) = take_deferred() {
            syscall::nb_send_recv_in(self.buf, d.cap(), d.info, INPUT, REPLY)
        } else {
            syscall::recv_in(self.buf, INPUT, REPLY)
        }
    }

    /// Hands one event to the handler.
    #[inline(always)]
    fn dispatch<H: Handler>(&mut self, handler: &mut H, info: MessageInfo, badge: Badge) {
        if badge & FAULT_BADGE != 0 {
            let child = Child::from_badge((badge & BADGE_CHILD_MASK) as u8);
            count(self.counts, IPC_CHILD_FAULTS);
            self.reply = handler.fault(child, info);
        } else if badge & PPC_BADGE != 0 {
            let channel = Channel::new((badge & BADGE_CHANNEL_MASK) as u8);
            count(self.counts, IPC_PPC_IN);
            self.reply = Some(handler.protected(channel, info));
        } else if badge != 0 {
            count(self.counts, IPC_NOTIFIED);
            handler.notified(ChannelSet::from_bits(badge));
        }
    }

    /// One round: wait, then dispatch.
    #[inline(always)]
    pub fn step<H: Handler>(&mut self, handler: &mut H) {
        let (info, badge) = self.wait();
        self.dispatch(handler, info, badge);
    }
}

/// Acknowledges every IRQ channel once (errors are reported by `irq_ack`).
fn ack_all_irqs() {
    let irqs = ChannelSet::from_bits(microkit_irqs.get());
    for ch in irqs {
        let _ = ch.irq_ack();
    }
}

/// Runs `handler` for ever.
pub fn run<H: Handler>(mut handler: H) -> ! {
    ack_all_irqs();
    let mut event_loop = EventLoop::new();
    loop {
        event_loop.step(&mut handler);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::{defer, Deferred};
    use crate::print::test_sink;
    use crate::symbols::test_support;
    use crate::{mr_get, mr_set};
    use septa_abi::syscall as nr;
    use septa_abi::Label;
    use septa_sel4::host::{self, HostKernel, Regs};
    use std::boxed::Box;
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::rc::Rc;
    use std::vec::Vec;

    /// A kernel that hands out scripted events to receives and records
    /// every system call (with MR0 as loaded).
    struct Script {
        events: VecDeque<(Badge, MessageInfo, [u64; 4])>,
        seen: Rc<RefCell<Vec<Regs>>>,
    }

    impl HostKernel for Script {
        fn syscall(&mut self, regs: &mut Regs) {
            self.seen.borrow_mut().push(*regs);
            let receives = [nr::RECV, nr::REPLY_RECV, nr::NB_SEND_RECV];
            if receives.contains(&regs.syscall()) {
                let (badge, info, mrs) = self.events.pop_front().expect("script ran out");
                regs.x[0] = badge;
                regs.x[1] = info.0;
                regs.x[2..6].copy_from_slice(&mrs);
            } else {
                regs.x[1] = 0; // invocations succeed
            }
        }
    }

    fn script(events: &[(Badge, MessageInfo, [u64; 4])]) -> Rc<RefCell<Vec<Regs>>> {
        let seen = Rc::new(RefCell::new(Vec::new()));
        host::install_ipc_buffer();
        host::set_kernel(Box::new(Script {
            events: events.iter().copied().collect(),
            seen: seen.clone(),
        }));
        seen
    }

    /// Records what the loop hands it; answers calls with label+1 and
    /// MR0 doubled; restarts faulting children.
    #[derive(Default)]
    struct Probe {
        log: Vec<(&'static str, u64, u64)>,
    }

    impl Handler for Probe {
        fn notified(&mut self, channels: ChannelSet) {
            self.log.push(("notified", channels.bits(), 0));
        }
        fn protected(&mut self, channel: Channel, msg: MessageInfo) -> MessageInfo {
            self.log
                .push(("protected", u64::from(channel.id()), msg.label()));
            mr_set(0, mr_get(0) * 2);
            MessageInfo::new(msg.label() + 1, 0, 0, 1)
        }
        fn fault(&mut self, child: Child, msg: MessageInfo) -> Option<MessageInfo> {
            self.log.push(("fault", u64::from(child.id()), msg.label()));
            (child.id() == 1).then(|| MessageInfo::new(0, 0, 0, 0))
        }
    }

    fn summary(seen: &[Regs]) -> Vec<(i64, u64, u64, u64)> {
        seen.iter()
            .map(|r| (r.syscall(), r.x[0], r.x[6], r.x[8]))
            .collect()
    }

    #[test]
    fn badges_are_decoded_and_calls_are_replied_to() {
        let _g = test_support::lock();
        test_support::patch("server", 0, 0, 0);
        let seen = script(&[
            (1 << 3 | 1 << 5, MessageInfo::default(), [0; 4]),
            (PPC_BADGE | 7, MessageInfo::new(40, 0, 0, 1), [21, 0, 0, 0]),
            (FAULT_BADGE | 1, MessageInfo::new(6, 0, 0, 4), [0; 4]),
            (FAULT_BADGE | 200, MessageInfo::new(3, 0, 0, 5), [0; 4]),
            (0, MessageInfo::default(), [0; 4]),
        ]);
        let mut probe = Probe::default();
        let mut l = EventLoop::new();
        for _ in 0..5 {
            l.step(&mut probe);
        }
        assert_eq!(
            probe.log,
            [
                ("notified", 1 << 3 | 1 << 5, 0),
                ("protected", 7, 40),
                ("fault", 1, 6),
                ("fault", 200, 3)
            ]
        );
        let s = seen.borrow();
        // Recv, Recv, ReplyRecv (the call's answer), ReplyRecv (restart of
        // child 1), Recv (child 200 left stopped).
        assert_eq!(
            summary(&s),
            [
                (nr::RECV, 1, 4, 0),
                (nr::RECV, 1, 4, 0),
                (nr::REPLY_RECV, 1, 4, 0),
                (nr::REPLY_RECV, 1, 4, 0),
                (nr::RECV, 1, 4, 0),
            ]
        );
        let answer = MessageInfo(s[2].x[1]);
        assert_eq!((answer.label(), answer.length(), s[2].x[2]), (41, 1, 42));
    }

    #[test]
    fn deferred_operations_ride_on_the_next_receive() {
        let _g = test_support::lock();
        test_support::patch("driver", 1 << 2, 1 << 4, 0);
        test_sink::start();
        take_deferred();
        let seen = script(&[
            (1 << 2, MessageInfo::default(), [0; 4]),
            (PPC_BADGE, MessageInfo::default(), [0; 4]),
        ]);
        struct Driver;
        impl Handler for Driver {
            fn notified(&mut self, _: ChannelSet) {
                Channel::new(2).deferred_irq_ack().unwrap();
            }
            fn protected(&mut self, _: Channel, _: MessageInfo) -> MessageInfo {
                Channel::new(4).deferred_notify().unwrap();
                MessageInfo::default()
            }
        }
        let mut l = EventLoop::new();
        l.step(&mut Driver);
        l.step(&mut Driver);
        assert!(seen.borrow().len() == 2);
        // The third round: the deferred notify is flushed by a Send before
        // the ReplyRecv that answers the call.
        host::set_kernel(Box::new(Script {
            events: [(0, MessageInfo::default(), [0; 4])].into(),
            seen: seen.clone(),
        }));
        l.step(&mut Driver);
        let s = seen.borrow();
        assert_eq!(
            summary(&s),
            [
                (nr::RECV, 1, 4, 0),
                (nr::NB_SEND_RECV, 1, 4, 138 + 2),
                (nr::SEND, 10 + 4, 0, 0),
                (nr::REPLY_RECV, 1, 4, 0),
            ]
        );
        assert_eq!(MessageInfo(s[1].x[1]).label(), Label::IrqAckIrq.number());
        assert_eq!(test_sink::take(), "");
    }

    #[test]
    fn a_passive_pd_signals_the_monitor_on_its_first_receive() {
        let _g = test_support::lock();
        test_support::patch("passive", 0, 0, 0);
        take_deferred();
        let seen = script(&[(0, MessageInfo::default(), [0; 4])]);
        defer(Deferred::new(
            CPtr::from_bits(slot::MONITOR_EP),
            MessageInfo::default(),
        ));
        EventLoop::new().step(&mut crate::NullHandler);
        assert_eq!(summary(&seen.borrow()), [(nr::NB_SEND_RECV, 1, 4, 5)]);
    }

    #[test]
    fn irqs_are_acknowledged_once_at_start() {
        let _g = test_support::lock();
        test_support::patch("timer", 1 << 0 | 1 << 9, 0, 0);
        test_sink::start();
        let seen = script(&[]);
        ack_all_irqs();
        let s = seen.borrow();
        assert_eq!(
            summary(&s).iter().map(|r| r.1).collect::<Vec<_>>(),
            [138, 147]
        );
        assert!(s
            .iter()
            .all(|r| MessageInfo(r.x[1]).label() == Label::IrqAckIrq.number()));
    }
}
