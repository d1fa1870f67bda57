//! Channels: the PD's end of a connection named in the system description.
//!
//! A channel id (0..=61) is local to the PD. What the PD may do with it is
//! recorded by the tool in the patched masks (`microkit_notifications`,
//! `microkit_irqs`, `microkit_pps`); every operation checks its mask first.
//! Misuse is never a silent no-op: the operation prints
//! `<pd>: <operation> on channel <n> refused: <why>` and returns an error.
//! (libmicrokit prints a similar line and carries on; here the caller also
//! gets the error.)

use core::fmt;
use core::num::NonZeroU64;

use septa_abi::microkit::{slot, MAX_CHANNELS, SERVER_FAULT_LABEL};
use septa_abi::{Label, MessageInfo};
use septa_sel4::{cap_type, syscall, CPtr, Cap};

use crate::pd_cell::PdCell;
use crate::symbols::{microkit_irqs, microkit_notifications, microkit_pps};

/// Why a channel operation was refused or failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    #[error("channel ids run from 0 to 61")]
    OutOfRange,
    #[error("not a notification channel of this PD (the system description gives it no notify end here)")]
    NotNotification,
    #[error("not an IRQ channel of this PD (the system description maps no IRQ to it)")]
    NotIrq,
    #[error("not a protected-procedure channel of this PD (the system description gives it no pp end here)")]
    NotPp,
    #[error("the kernel refused: {0}")]
    Kernel(septa_sel4::Error),
    #[error("the PD at the other end faulted before it replied")]
    ServerFaulted,
}

/// The checked channel operations, for a refusal's report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Notify,
    IrqAck,
    PpCall,
    DeferredNotify,
    DeferredIrqAck,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Notify => "notify",
            Op::IrqAck => "irq_ack",
            Op::PpCall => "pp_call",
            Op::DeferredNotify => "deferred_notify",
            Op::DeferredIrqAck => "deferred_irq_ack",
        }
    }

    /// The refusal when the channel is in range but not of the kind.
    fn missing(self) -> ChannelError {
        match self {
            Op::Notify | Op::DeferredNotify => ChannelError::NotNotification,
            Op::IrqAck | Op::DeferredIrqAck => ChannelError::NotIrq,
            Op::PpCall => ChannelError::NotPp,
        }
    }
}

/// One channel of this PD.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Channel(u8);

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Channel({})", self.0)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What a deferred operation will send: a signal or an IRQ acknowledgement
/// folded into the event loop's next receive.
///
/// The cap is never slot 0 (the null slot; every deferred operation goes
/// to a channel's notification or IRQ handler, or the monitor), so an
/// `Option<Deferred>` is `None` when the cap word is 0: the event loop's
/// test for a deferred operation is one load and one `cbz`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Deferred {
    cap: NonZeroU64,
    pub info: MessageInfo,
}

impl Deferred {
    /// `info` to send on `cap`, which is not the null slot 0.
    pub fn new(cap: CPtr, info: MessageInfo) -> Self {
        let cap = NonZeroU64::new(cap.bits()).expect("a deferred operation's cap is not slot 0");
        Deferred { cap, info }
    }

    pub fn cap(self) -> CPtr {
        CPtr::from_bits(self.cap.get())
    }

    /// Performs it now, as a plain Send (what libmicrokit's flush does).
    pub fn send_now(self) {
        syscall::send_with_mrs(self.cap(), self.info, [0; syscall::FAST_MRS]);
    }
}

/// The one deferred operation the next receive will carry.
static DEFERRED: PdCell<Option<Deferred>> = PdCell::new(None);

/// Queues `d` for the next receive. There is room for one (NBSendRecv sends
/// one message); an older one still waiting is sent at once, so none is
/// lost (libmicrokit would overwrite it).
pub(crate) fn defer(d: Deferred) {
    if let Some(older) = DEFERRED.replace(Some(d)) {
        older.send_now();
    }
}

/// The deferred operation, if any, and none left. Read first and cleared
/// only if there was one: the event loop's common round (nothing
/// deferred) is a load and a branch.
#[inline(always)]
pub(crate) fn take_deferred() -> Option<Deferred> {
    let d = DEFERRED.get();
    if d.is_some() {
        DEFERRED.replace(None);
    }
    d
}

impl Channel {
    /// Channel `id` as numbered in the system description.
    pub const fn new(id: u8) -> Self {
        Channel(id)
    }

    pub const fn id(self) -> u8 {
        self.0
    }

    #[inline]
    fn check(self, mask: u64, op: Op) -> Result<(), ChannelError> {
        if u64::from(self.0) < MAX_CHANNELS && mask & (1 << self.0) != 0 {
            return Ok(());
        }
        Err(self.refuse(op))
    }

    /// [`check`](Self::check)'s refusal, out of the way of the calls that
    /// pass: it takes only the channel and the operation, both in
    /// registers, so their path stores nothing for it.
    #[cold]
    #[inline(never)]
    fn refuse(self, op: Op) -> ChannelError {
        let err = if u64::from(self.0) >= MAX_CHANNELS {
            ChannelError::OutOfRange
        } else {
            op.missing()
        };
        self.report(op.name(), &err);
        err
    }

    fn report(self, op: &str, err: &ChannelError) {
        crate::println!(
            "{}: {} on channel {} refused: {}",
            crate::pd_name(),
            op,
            self.0,
            err
        );
    }

    fn slot(self, base: u64) -> CPtr {
        CPtr::from_bits(base + u64::from(self.0))
    }

    fn irq_handler(self) -> Cap<cap_type::IrqHandler> {
        self.slot(slot::BASE_IRQ).cast()
    }

    /// Signals the PD at the other end.
    #[inline]
    pub fn notify(self) -> Result<(), ChannelError> {
        self.check(microkit_notifications.get(), Op::Notify)?;
        syscall::signal(self.slot(slot::BASE_OUTPUT_NOTIFICATION));
        Ok(())
    }

    /// Acknowledges the IRQ delivered on this channel, so it can fire again.
    pub fn irq_ack(self) -> Result<(), ChannelError> {
        self.check(microkit_irqs.get(), Op::IrqAck)?;
        self.irq_handler().ack().map_err(|e| {
            let err = ChannelError::Kernel(e);
            self.report("irq_ack", &err);
            err
        })
    }

    /// Protected procedure call: sends `msg` (message registers set with
    /// [`crate::mr_set`]) and waits for the reply of the PD at the other
    /// end, which must have a higher priority.
    ///
    /// If that PD faults while serving the call, the monitor answers for
    /// it with [`SERVER_FAULT_LABEL`], returned here as
    /// [`ChannelError::ServerFaulted`] (libmicrokit's caller would stay
    /// blocked for ever). The server's restart count, if the description
    /// publishes one (`restart.generation`), tells when it is back.
    #[inline]
    pub fn pp_call(self, msg: MessageInfo) -> Result<MessageInfo, ChannelError> {
        self.check(microkit_pps.get(), Op::PpCall)?;
        crate::ipc_counts::count(
            crate::ipc_counts::values(),
            septa_cells::counters::IPC_PPC_OUT,
        );
        let reply = syscall::call_in(
            crate::entry::ipc_buffer(),
            self.slot(slot::BASE_ENDPOINT),
            msg,
        );
        if reply.label() == SERVER_FAULT_LABEL {
            return Err(ChannelError::ServerFaulted);
        }
        Ok(reply)
    }

    /// As [`notify`](Self::notify), but the signal is sent together with
    /// the event loop's next receive (one system call instead of two).
    pub fn deferred_notify(self) -> Result<(), ChannelError> {
        self.check(microkit_notifications.get(), Op::DeferredNotify)?;
        defer(Deferred::new(
            self.slot(slot::BASE_OUTPUT_NOTIFICATION),
            MessageInfo::new(0, 0, 0, 0),
        ));
        Ok(())
    }

    /// As [`irq_ack`](Self::irq_ack), folded into the next receive. A
    /// kernel error then goes unreported, as with libmicrokit.
    pub fn deferred_irq_ack(self) -> Result<(), ChannelError> {
        self.check(microkit_irqs.get(), Op::DeferredIrqAck)?;
        defer(Deferred::new(
            self.irq_handler().cptr(),
            MessageInfo::new(Label::IrqAckIrq.number(), 0, 0, 0),
        ));
        Ok(())
    }
}

/// The channels that signalled together: the badge of a notification, one
/// bit per channel.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct ChannelSet(u64);

impl ChannelSet {
    pub const EMPTY: ChannelSet = ChannelSet(0);

    pub const fn from_bits(bits: u64) -> Self {
        ChannelSet(bits)
    }

    pub const fn bits(self) -> u64 {
        self.0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn contains(self, ch: Channel) -> bool {
        ch.0 < 64 && self.0 & (1 << ch.0) != 0
    }

    /// The channels, lowest id first.
    pub fn iter(self) -> ChannelSetIter {
        ChannelSetIter(self.0)
    }
}

impl IntoIterator for ChannelSet {
    type Item = Channel;
    type IntoIter = ChannelSetIter;
    fn into_iter(self) -> ChannelSetIter {
        self.iter()
    }
}

/// Iterator over a [`ChannelSet`].
#[derive(Clone, Debug)]
pub struct ChannelSetIter(u64);

impl Iterator for ChannelSetIter {
    type Item = Channel;
    fn next(&mut self) -> Option<Channel> {
        if self.0 == 0 {
            return None;
        }
        let id = self.0.trailing_zeros();
        self.0 &= self.0 - 1;
        Some(Channel(id as u8))
    }
}

impl fmt::Debug for ChannelSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter().map(|c| c.0)).finish()
    }
}

impl fmt::Display for ChannelSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::print::test_sink;
    use crate::symbols::test_support;
    use crate::test_kernel::{record, Seen};
    use std::format;
    use std::vec::Vec;

    fn setup(irqs: u64, notifications: u64, pps: u64) -> Seen {
        test_support::patch("client", irqs, notifications, pps);
        test_sink::start();
        let seen = record();
        take_deferred();
        seen
    }

    #[test]
    fn allowed_operations_reach_their_slots() {
        let _g = test_support::lock();
        let seen = setup(1 << 3, 1 << 5, 1 << 7);
        Channel::new(5).notify().unwrap();
        Channel::new(3).irq_ack().unwrap();
        Channel::new(7)
            .pp_call(MessageInfo::new(1, 0, 0, 0))
            .unwrap();
        let s = seen.borrow();
        let got: Vec<(i64, u64)> = s.iter().map(|r| (r.syscall(), r.x[0])).collect();
        assert_eq!(got, [(-5, 10 + 5), (-1, 138 + 3), (-1, 74 + 7)]);
        assert_eq!(MessageInfo(s[1].x[1]).label(), Label::IrqAckIrq.number());
        assert_eq!(test_sink::take(), "");
    }

    /// A server that answers with label 9 and MR0..MR1 = MR0 + 1, MR1 + 1.
    struct Echo;

    impl septa_sel4::host::HostKernel for Echo {
        fn syscall(&mut self, regs: &mut septa_sel4::host::Regs) {
            regs.x[1] = MessageInfo::new(9, 0, 0, 2).0;
            regs.x[2] += 1;
            regs.x[3] += 1;
        }
    }

    #[test]
    fn a_call_sends_and_receives_its_message_registers_through_the_buffer() {
        let _g = test_support::lock();
        setup(0, 0, 1 << 7);
        septa_sel4::host::set_kernel(std::boxed::Box::new(Echo));
        crate::mr_set(0, 40);
        crate::mr_set(1, 50);
        let reply = Channel::new(7).pp_call(MessageInfo::new(1, 0, 0, 2));
        assert_eq!(reply.map(|r| (r.label(), r.length())), Ok((9, 2)));
        assert_eq!((crate::mr_get(0), crate::mr_get(1)), (41, 51));
        // An empty message loads no message register: the kernel sees 0s
        // (host) whatever the buffer holds.
        let reply = Channel::new(7).pp_call(MessageInfo::new(1, 0, 0, 0));
        assert_eq!(reply.map(|r| r.label()), Ok(9));
        assert_eq!((crate::mr_get(0), crate::mr_get(1)), (1, 1));
    }

    #[test]
    fn misuse_is_refused_loudly_and_sends_nothing() {
        let _g = test_support::lock();
        let seen = setup(1 << 3, 1 << 5, 1 << 7);
        assert_eq!(Channel::new(3).notify(), Err(ChannelError::NotNotification));
        assert_eq!(Channel::new(5).irq_ack(), Err(ChannelError::NotIrq));
        assert_eq!(
            Channel::new(5).pp_call(MessageInfo::default()),
            Err(ChannelError::NotPp)
        );
        assert_eq!(Channel::new(62).notify(), Err(ChannelError::OutOfRange));
        assert_eq!(
            Channel::new(7).deferred_notify(),
            Err(ChannelError::NotNotification)
        );
        assert!(seen.borrow().is_empty());
        let out = test_sink::take();
        assert!(
            out.starts_with("client: notify on channel 3 refused: not a notification channel"),
            "{out}"
        );
        assert!(
            out.contains("client: irq_ack on channel 5 refused"),
            "{out}"
        );
        assert!(
            out.contains("client: pp_call on channel 5 refused"),
            "{out}"
        );
        assert!(
            out.contains("client: notify on channel 62 refused: channel ids run from 0 to 61"),
            "{out}"
        );
        assert_eq!(out.lines().count(), 5);
    }

    #[test]
    fn a_second_deferred_operation_flushes_the_first() {
        let _g = test_support::lock();
        let seen = setup(1 << 2, 1 << 4 | 1 << 6, 0);
        Channel::new(4).deferred_notify().unwrap();
        assert!(seen.borrow().is_empty(), "deferred, not sent");
        Channel::new(2).deferred_irq_ack().unwrap();
        let s = seen.borrow();
        assert_eq!((s[0].syscall(), s[0].x[0]), (-5, 14));
        assert_eq!(
            take_deferred(),
            Some(Deferred::new(
                CPtr::from_bits(140),
                MessageInfo::new(Label::IrqAckIrq.number(), 0, 0, 0)
            ))
        );
    }

    #[test]
    fn channel_sets_iterate_lowest_first() {
        let set = ChannelSet::from_bits(1 << 0 | 1 << 9 | 1 << 61);
        let ids: Vec<u8> = set.iter().map(Channel::id).collect();
        assert_eq!(ids, [0, 9, 61]);
        assert!(set.contains(Channel::new(9)) && !set.contains(Channel::new(8)));
        assert_eq!(format!("{set}"), "{0, 9, 61}");
        assert!(ChannelSet::EMPTY.iter().next().is_none());
    }
}
