//! Exceptions from threads (system calls, faults, interrupts) and from the
//! kernel itself (always a kernel bug: reported, then the machine halts).

use septa_abi::syscall;

use super::boot::ROOT_CONTEXT;
use super::sysreg::ec;
use super::{console, entry, gic, timer};
use crate::kprintln;

pub fn halt() -> ! {
    loop {
        // SAFETY: waiting for an interrupt has no effect on memory.
        unsafe { core::arch::asm!("wfi", options(nomem, nostack)) };
    }
}

#[no_mangle]
extern "C" fn handle_lower_sync(esr: u64, far: u64, _hpfar: u64) -> ! {
    let ctx_ptr = &raw mut ROOT_CONTEXT;
    // SAFETY: single core; the entry code just saved the current thread here.
    let ctx = unsafe { &mut *ctx_ptr };
    match esr >> 26 {
        ec::SVC64 => match ctx.x[7] as i64 {
            syscall::DEBUG_PUT_CHAR => console::put_byte(ctx.x[0] as u8),
            syscall::DEBUG_HALT => {
                kprintln!("DebugHalt: halting");
                halt()
            }
            n => {
                kprintln!(
                    "thread made unknown system call {n} at {:#x}; stopping it",
                    ctx.pc
                );
                halt()
            }
        },
        class => {
            kprintln!("thread fault: ESR {esr:#x} (class {class:#x}) at pc {:#x}, address {far:#x}; stopping it", ctx.pc);
            halt()
        }
    }
    // SAFETY: the root task's context and address space are current.
    unsafe { entry::restore_user(&raw const ROOT_CONTEXT) }
}

#[no_mangle]
extern "C" fn handle_lower_irq() -> ! {
    if let Some(irq) = gic::acknowledge() {
        if irq == timer::IRQ {
            timer::disarm();
        } else {
            // Masked until user level acknowledges it through its handler.
            gic::disable(irq);
        }
        gic::end_of_interrupt(irq);
    }
    // SAFETY: the root task's context and address space are current.
    unsafe { entry::restore_user(&raw const ROOT_CONTEXT) }
}

#[no_mangle]
extern "C" fn handle_kernel_trap(esr: u64, elr: u64, far: u64) -> ! {
    kprintln!("KERNEL TRAP: ESR {esr:#x} at {elr:#x}, address {far:#x}");
    halt()
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    kprintln!("KERNEL PANIC: {info}");
    halt()
}
