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
