//! # Interrupts: IRQ control, IRQ handlers, SGI signals
//!
//! User level receives interrupts as notification signals. The IRQControl
//! cap issues, once per IRQ, an IRQHandler cap (IssueIRQHandler, or
//! IssueIRQHandlerTrigger to choose edge or level triggering); the holder
//! points the handler at a notification (SetNotification) and acknowledges
//! each interrupt (Ack). Checks and errors follow seL4 16.0.0's
//! `decodeIRQControlInvocation`, `Arch_decodeIRQControlInvocation` and
//! `decodeIRQHandlerInvocation`. Arguments (interfaces `seL4_IRQControl`
//! and `seL4_IRQHandler`):
//!
//! | invocation | MRs | extra caps |
//! |---|---|---|
//! | IRQControl Get (IssueIRQHandler) | irq, index, depth | root CNode |
//! | IRQControl GetTrigger | irq, trigger, index, depth | root CNode |
//! | IRQControl IssueSGISignal | irq, target, index, depth | root CNode |
//! | IRQHandler Ack, Clear | | |
//! | IRQHandler SetNotification | | notification |
//!
//! The module owns two tables, as seL4 does:
//!
//! - the **state** of every IRQ ([`IrqState`]): inactive, signalling a
//!   handler, the kernel's timer, or reserved for the kernel (the VGIC
//!   maintenance and virtual timer PPIs, which the VCPU code handles). An
//!   IRQ that is not inactive cannot be issued again (RevokeFirst), which
//!   is also how the timer and the reserved IRQs are refused;
//! - one **kernel slot per IRQ** (seL4's `intStateIRQNode`) holding the
//!   notification cap the IRQ signals. These are real slots of the
//!   derivation tree: SetNotification inserts a copy of the caller's cap
//!   there, so revoking that cap clears the handler. Their memory is a
//!   kernel static on the target (`arch::aarch64::gic`), found through
//!   `machine::irq_node`.
//!
//! An interrupt is masked when it arrives and stays masked until the
//! handler's holder acknowledges it, so a level-triggered device cannot
//! storm the kernel before its driver has run.
//!
//! Zero rule: an all-zero IRQ slot is empty.

use crate::cap::Cap;
use crate::cspace::lookup_target_slot;
use crate::cte::{cte_insert, ensure_empty_slot, SlotRef};
use crate::delete::cte_delete_one;
use crate::error::{Exception, SyscallError};
use crate::invocation::{Invocation, ReplyWords};
use crate::machine::{self, Irq};
use crate::object::notification;
use septa_abi::irq::{
    KERNEL_TIMER, MAX_IRQ, NUM_SGIS, SGI_TARGETS, VGIC_MAINTENANCE, VTIMER_EVENT,
};
use septa_abi::Label;

/// IRQs with a state and a slot: 0 ..= `MAX_IRQ`.
pub const IRQ_COUNT: usize = MAX_IRQ as usize + 1;

/// What an IRQ is used for (seL4's `irq_state_t`, without IPIs: one core).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrqState {
    /// Masked; no handler cap exists.
    Inactive,
    /// A handler cap exists; the IRQ signals the notification in its slot.
    Signal,
    /// The kernel's timer.
    Timer,
    /// Kept by the kernel for the VCPU code (VGIC maintenance, virtual
    /// timer).
    Reserved,
}

const fn initial_states() -> [IrqState; IRQ_COUNT] {
    let mut s = [IrqState::Inactive; IRQ_COUNT];
    s[KERNEL_TIMER as usize] = IrqState::Timer;
    s[VGIC_MAINTENANCE as usize] = IrqState::Reserved;
    s[VTIMER_EVENT as usize] = IrqState::Reserved;
    s
}

crate::kernel_global!(
    /// The state of each IRQ (seL4's `intStateIRQTable`); the boot-time
    /// states are built in, as seL4's `init_irqs` sets them.
    static IRQ_STATES: [IrqState; IRQ_COUNT] = initial_states();
);

type Result<T = ()> = core::result::Result<T, Exception>;

fn err<T>(e: SyscallError) -> Result<T> {
    Err(Exception::Syscall(e))
}

/// The state of `irq`, if it is one the kernel knows.
pub fn irq_state(irq: u64) -> Option<IrqState> {
    let i = usize::try_from(irq).ok()?;
    IRQ_STATES.with(|s| s.borrow().get(i).copied())
}

/// Sets the state of `irq` and masks it if it becomes inactive, unmasks
/// it otherwise (seL4's `setIRQState`).
#[inline(never)]
fn set_irq_state(state: IrqState, irq: u64) {
    let Some(i) = usize::try_from(irq).ok().filter(|&i| i < IRQ_COUNT) else {
        return;
    };
    IRQ_STATES.with(|s| s.borrow_mut()[i] = state);
    if state == IrqState::Inactive {
        machine::irq_mask(i as Irq);
    } else {
        machine::irq_unmask(i as Irq);
    }
}

/// Boot: unmasks the IRQs reserved for the VCPU code, as seL4's
/// `init_irqs` does by giving them their state (the timer's is unmasked
/// by the timer's own set-up).
pub fn unmask_reserved() {
    for irq in [VGIC_MAINTENANCE, VTIMER_EVENT] {
        set_irq_state(IrqState::Reserved, irq);
    }
}

/// Whether `irq` is in use: not inactive (seL4's `isIRQActive`).
pub fn is_irq_active(irq: u64) -> bool {
    irq_state(irq).is_some_and(|s| s != IrqState::Inactive)
}

/// The kernel slot of `irq` (which must be below [`IRQ_COUNT`]).
pub fn irq_slot(irq: u64) -> SlotRef {
    debug_assert!(irq < IRQ_COUNT as u64);
    SlotRef::nth(machine::irq_node(), irq)
}

/// The highest IRQ user level may ask for: seL4's `maxIRQ` for the
/// platform, or less if the interrupt controller has fewer lines.
pub fn max_irq() -> u64 {
    match machine::irq_lines() {
        0 => MAX_IRQ,
        lines => MAX_IRQ.min(lines as u64 - 1),
    }
}

/// RangeError unless `irq` is one user level may ask for (seL4's
/// `Arch_checkIRQ`).
fn check_irq(irq: u64) -> Result {
    let max = max_irq();
    if irq > max {
        return err(SyscallError::RangeError { min: 0, max });
    }
    Ok(())
}

/// Decodes and performs an invocation of the IRQControl cap held in
/// `slot`: IssueIRQHandler, ArmIRQIssueIRQHandlerTrigger or
/// ArmIRQIssueSGISignal. Nothing goes in `reply`.
pub fn decode_irq_control_invocation(
    inv: &Invocation,
    slot: SlotRef,
    reply: &mut ReplyWords,
) -> Result {
    let _ = reply;
    match Label::from_u64(inv.label) {
        Some(l @ (Label::IrqIssueIrqHandler | Label::ArmIrqIssueIrqHandlerTrigger)) => {
            // IssueIRQHandlerTrigger has the trigger word after the IRQ.
            let trigger = l == Label::ArmIrqIssueIrqHandlerTrigger;
            let n = 3 + trigger as usize;
            let Some(root) = inv.extra_cap(0).filter(|_| inv.length() >= n) else {
                return err(SyscallError::TruncatedMessage);
            };
            let irq = inv.arg(0);
            let (index, depth) = (inv.arg(n - 2), inv.arg(n - 1));
            let dest = check_issue(irq, &root.cap(), index, depth)?;
            if trigger {
                machine::irq_set_trigger(irq as Irq, inv.arg(1) != 0);
            }
            issue_handler(irq, dest, slot);
            Ok(())
        }
        Some(Label::ArmIrqIssueSgiSignal) => {
            let Some(root) = inv.extra_cap(0).filter(|_| inv.length() >= 4) else {
                return err(SyscallError::TruncatedMessage);
            };
            let (irq, target) = (inv.arg(0), inv.arg(1));
            let (index, depth) = (inv.arg(2), inv.arg(3));
            if irq >= NUM_SGIS {
                return err(SyscallError::RangeError {
                    min: 0,
                    max: NUM_SGIS - 1,
                });
            }
            if target > SGI_TARGETS - 1 {
                return err(SyscallError::InvalidArgument { index: 1 });
            }
            let dest = lookup_target_slot(&root.cap(), index, depth)?;
            ensure_empty_slot(dest)?;
            cte_insert(
                &Cap::SgiSignal {
                    irq: irq as u8,
                    target: target as u32,
                },
                slot,
                dest,
            );
            Ok(())
        }
        _ => err(SyscallError::IllegalOperation),
    }
}

/// The checks shared by both ways of issuing a handler: the IRQ is in
/// range and inactive, and the destination slot is empty.
fn check_issue(irq: u64, root: &Cap, index: u64, depth: u64) -> Result<SlotRef> {
    check_irq(irq)?;
    if is_irq_active(irq) {
        return err(SyscallError::RevokeFirst);
    }
    let dest = lookup_target_slot(root, index, depth)?;
    ensure_empty_slot(dest)?;
    Ok(dest)
}

/// Issues the handler cap for `irq` into `dest`, as a child of the
/// IRQControl cap in `control`, and enables the IRQ (seL4's
/// `invokeIRQControl`).
fn issue_handler(irq: u64, dest: SlotRef, control: SlotRef) {
    set_irq_state(IrqState::Signal, irq);
    cte_insert(&Cap::IrqHandler { irq }, control, dest);
}

/// Decodes and performs an invocation of an IRQHandler cap: Ack,
/// SetNotification or Clear. Nothing goes in `reply`.
pub fn decode_irq_handler_invocation(
    inv: &Invocation,
    cap: &Cap,
    slot: SlotRef,
    reply: &mut ReplyWords,
) -> Result {
    let _ = (slot, reply);
    let Cap::IrqHandler { irq } = *cap else {
        debug_assert!(false, "decode_irq_handler_invocation on {cap:?}");
        return err(SyscallError::IllegalOperation);
    };
    match Label::from_u64(inv.label) {
        Some(Label::IrqAckIrq) => {
            machine::irq_unmask(irq as Irq);
            Ok(())
        }
        Some(Label::IrqSetIrqHandler) => {
            let Some(ntfn_slot) = inv.extra_cap(0) else {
                return err(SyscallError::TruncatedMessage);
            };
            let ntfn = ntfn_slot.cap();
            if !matches!(ntfn, Cap::Notification { can_send: true, .. }) {
                // seL4 reports the notification as cap 0 here.
                return err(SyscallError::InvalidCapability { index: 0 });
            }
            let irq_slot = irq_slot(irq);
            cte_delete_one(irq_slot);
            cte_insert(&ntfn, ntfn_slot, irq_slot);
            Ok(())
        }
        Some(Label::IrqClearIrqHandler) => {
            cte_delete_one(irq_slot(irq));
            Ok(())
        }
        _ => err(SyscallError::IllegalOperation),
    }
}

/// Performs an invocation of an SGI signal cap, whatever its label: raises
/// the SGI at its target (seL4's `decodeSGISignalInvocation`).
pub fn decode_sgi_signal_invocation(cap: &Cap) -> Result {
    let Cap::SgiSignal { irq, target } = *cap else {
        debug_assert!(false, "decode_sgi_signal_invocation on {cap:?}");
        return err(SyscallError::IllegalOperation);
    };
    machine::send_sgi(irq, target);
    Ok(())
}

/// An interrupt arrived; the arch code has acknowledged it at the
/// controller (and ends it afterwards). As seL4's `handleInterrupt`: an
/// IRQ with a handler signals the notification in its slot with that
/// cap's badge and stays masked until Ack; an inactive or unknown IRQ is
/// masked. Returns the IRQ's state, so the caller does the rest: for
/// [`IrqState::Timer`] the scheduler's timer work, for
/// [`IrqState::Reserved`] the VCPU code's (VGIC maintenance, virtual timer
/// event). (The kernel's entry masks and ends the IRQ first and calls
/// [`deliver`]; host tests call this.)
#[cfg(test)]
pub fn handle_interrupt(irq: u16) -> IrqState {
    let state = deliver(irq);
    if matches!(state, IrqState::Signal | IrqState::Inactive) {
        machine::irq_mask(irq);
    }
    state
}

/// [`handle_interrupt`] for an IRQ the caller has masked already
/// (`syscall::handle_irq` masks and ends it first): the same, without
/// masking it a second time.
pub fn deliver(irq: u16) -> IrqState {
    let Some(state) = irq_state(irq as u64) else {
        return IrqState::Inactive;
    };
    if state == IrqState::Signal {
        if let Some((paddr, badge)) = slot_notification(irq) {
            signal(paddr, badge);
        }
    }
    state
}

/// The notification (address, badge) in `irq`'s slot, if the slot holds a
/// notification cap with the send right. Read from the stored cap's words:
/// only its kind, address, badge and send right matter here (the decoded
/// cap would be built and copied on every interrupt).
#[inline(always)]
fn slot_notification(irq: u16) -> Option<(u64, u64)> {
    let (paddr, badge, rights) = irq_slot(irq as u64).raw_cap().as_notification()?;
    (rights & crate::cap::EP_SEND != 0).then_some((paddr, badge))
}

fn signal(notification: u64, badge: u64) {
    #[cfg(test)]
    test_log::record(notification, badge);
    notification::send_signal(notification, badge);
}

/// The notification (address, badge) that [`handle_interrupt`] would
/// signal for `irq`, an IRQ in the Signal state whose slot holds a
/// notification cap with the send right; `None` for anything else (the
/// interrupt fast path, `crate::fastpath::interrupt`, leaves that to the
/// slow path).
#[inline(always)]
pub fn signal_target(irq: u16) -> Option<(u64, u64)> {
    if irq_state(irq as u64) != Some(IrqState::Signal) {
        return None;
    }
    slot_notification(irq)
}

/// Called when the last handler cap of an IRQ is being deleted (seL4's
/// `deletingIRQHandler`): the notification cap in its slot goes.
pub fn deleting_irq_handler(irq: u64) {
    if irq < IRQ_COUNT as u64 {
        cte_delete_one(irq_slot(irq));
    }
}

/// Called once the slot of that last handler cap is empty (seL4's
/// `deletedIRQHandler`): the IRQ becomes inactive and masked.
pub fn deleted_irq_handler(irq: u64) {
    set_irq_state(IrqState::Inactive, irq);
}

/// Host tests: every IRQ back to its boot state (kernel globals outlive
/// one test case on its thread).
#[cfg(test)]
pub fn reset_for_test() {
    IRQ_STATES.with(|s| *s.borrow_mut() = initial_states());
}

/// Host tests: which signals interrupts delivered (the notification
/// itself belongs to the IPC layer).
#[cfg(test)]
pub mod test_log {
    use std::cell::RefCell;
    use std::vec::Vec;

    std::thread_local! {
        static SIGNALS: RefCell<Vec<(u64, u64)>> = const { RefCell::new(Vec::new()) };
    }

    pub(crate) fn record(notification: u64, badge: u64) {
        SIGNALS.with(|s| s.borrow_mut().push((notification, badge)));
    }

    /// Takes (and clears) the signals delivered so far: (notification,
    /// badge) pairs.
    pub fn take() -> Vec<(u64, u64)> {
        SIGNALS.with(|s| core::mem::take(&mut *s.borrow_mut()))
    }
}
