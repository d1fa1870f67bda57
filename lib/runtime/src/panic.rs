//! What a PD does when it panics: it says so, then faults, so that its
//! fault handler (the monitor, or a parent PD) learns of it and applies the
//! restart policy.
//!
//! The message is `PD <name> panicked at <file>:<line>:<col>: <message>`,
//! through the print sink. The fault is an undefined instruction, `udf #0`:
//! on seL4 (and Septa) with hypervisor support that arrives as a
//! UserException (label 3) whose ESR is 0x0200_0000 (unknown reason, 32-bit
//! instruction), with the fault IP inside `crash`. x0 holds
//! [`PANIC_MARKER`], so a handler that reads the registers can tell a
//! panic from a stray undefined instruction. A reply that resumes the PD
//! faults it again: a panicked PD cannot be continued, only restarted.

use crate::pd_cell::PdCell;

/// The value in x0 when a PD faults because it panicked.
pub const PANIC_MARKER: u64 = 0x5E97_A000_0BAD_F00D;

static PANICKING: PdCell<bool> = PdCell::new(false);

/// Faults the PD on purpose (see the module comment).
pub fn crash() -> ! {
    #[cfg(all(target_arch = "aarch64", target_os = "none"))]
    // SAFETY: `udf` traps to the kernel, which suspends the thread and sends
    // a fault; nothing resumes past it (a resumed thread re-executes it, and
    // the branch loops back if it ever did). No memory or stack is touched.
    unsafe {
        core::arch::asm!("2:", "udf #0", "b 2b", in("x0") PANIC_MARKER, options(noreturn, nostack));
    }
    #[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
    std::process::abort()
}

/// Prints the panic line and crashes. A panic while panicking (a failing
/// `Display`, say) crashes at once.
pub fn report_and_crash(info: &core::panic::PanicInfo<'_>) -> ! {
    if PANICKING.replace(true) {
        crash();
    }
    let name = crate::pd_name();
    match info.location() {
        Some(l) => crate::println!(
            "PD {name} panicked at {}:{}:{}: {}",
            l.file(),
            l.line(),
            l.column(),
            info.message()
        ),
        None => crate::println!("PD {name} panicked: {}", info.message()),
    }
    crash()
}

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    report_and_crash(info)
}
