//! Interrupts: IRQ control and IRQ handler caps.
//!
//! seL4 keeps a table of IRQ states and one kernel slot per IRQ holding the
//! notification cap a handler signals; this module will own both.

/// Called when the last handler cap of an IRQ is being deleted (seL4's
/// `deletingIRQHandler`).
///
/// Not yet: the IRQ work must delete (with `delete::cte_delete_one`) the
/// notification cap stored in the IRQ's kernel slot.
pub fn deleting_irq_handler(irq: u64) {
    let _ = irq;
}

/// Called once the slot of that last handler cap is empty (seL4's
/// `deletedIRQHandler`).
///
/// Not yet: set the IRQ's state to inactive and mask it in the interrupt
/// controller.
pub fn deleted_irq_handler(irq: u64) {
    let _ = irq;
}

use crate::cap::Cap;
use crate::cte::SlotRef;
use crate::error::Exception;
use crate::invocation::{Invocation, ReplyWords};

/// Decodes an invocation of the IRQControl cap (IssueIRQHandler,
/// IssueIRQHandlerTrigger, IssueSGISignal) with seL4's errors.
///
/// Not yet: the IRQ work implements it; the system-call layer calls it.
pub fn decode_irq_control_invocation(
    inv: &Invocation,
    slot: SlotRef,
    reply: &mut ReplyWords,
) -> Result<(), Exception> {
    let _ = (inv, slot, reply);
    Err(Exception::Syscall(
        crate::error::SyscallError::IllegalOperation,
    ))
}

/// Decodes an invocation of an IRQHandler cap (Ack, SetNotification,
/// Clear) with seL4's errors.
///
/// Not yet: the IRQ work implements it.
pub fn decode_irq_handler_invocation(
    inv: &Invocation,
    cap: &Cap,
    slot: SlotRef,
    reply: &mut ReplyWords,
) -> Result<(), Exception> {
    let _ = (inv, cap, slot, reply);
    Err(Exception::Syscall(
        crate::error::SyscallError::IllegalOperation,
    ))
}

/// An interrupt arrived (the arch code has masked and acknowledged it at
/// the controller): signal the notification its handler names, if any.
///
/// Not yet: the IRQ work implements it (with `notification::send_signal`).
pub fn handle_interrupt(irq: u16) {
    let _ = irq;
}
