//! The kernel's timer: the EL2 physical timer (CNTHP, PPI 26), one-shot
//! deadlines against the system counter, as MCS needs. Guests keep the
//! virtual timer to themselves.

use core::sync::atomic::{AtomicU64, Ordering};

use super::sysreg::{isb, read_sysreg, write_sysreg};

/// The hypervisor physical timer's interrupt (a PPI).
pub const IRQ: u16 = 26;

static FREQUENCY: AtomicU64 = AtomicU64::new(0);

pub fn init() {
    FREQUENCY.store(read_sysreg!("cntfrq_el0"), Ordering::Relaxed);
    // Masked and off until the first deadline.
    write_sysreg!("cnthp_ctl_el2", 0b10);
    isb();
    super::gic::enable(IRQ);
}

pub fn frequency() -> u64 {
    FREQUENCY.load(Ordering::Relaxed)
}

pub fn now() -> u64 {
    isb();
    read_sysreg!("cntpct_el0")
}

/// Fires the timer interrupt once the counter reaches `ticks`.
pub fn set_deadline(ticks: u64) {
    // Compare value first, then enable with the interrupt unmasked.
    write_sysreg!("cnthp_cval_el2", ticks);
    write_sysreg!("cnthp_ctl_el2", 0b01);
    isb();
}

/// [`set_deadline`] for a kernel entry that leaves by an exception return
/// to a thread (the fast paths'): the `eret` is a context synchronization
/// event, so the writes take effect by then without an `isb` of their own
/// (which [`set_deadline`] needs for a kernel that may wait in `wfi`
/// next).
pub fn set_deadline_before_eret(ticks: u64) {
    write_sysreg!("cnthp_cval_el2", ticks);
    write_sysreg!("cnthp_ctl_el2", 0b01);
}

/// Silences the timer until the next `set_deadline`.
pub fn disarm() {
    write_sysreg!("cnthp_ctl_el2", 0b10);
    isb();
}
