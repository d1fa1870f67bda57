//! Exceptions from threads (system calls, faults, interrupts), from the
//! idle loop (interrupts), and from the kernel itself (always a kernel bug:
//! reported, then the machine halts).
//!
//! The entry code has saved the current thread's registers into its TCB.
//! Each handler records the thread's fault address (`FaultIP`: the `svc`
//! or `hvc` itself for a system call, the faulting or interrupted
//! instruction otherwise), hands over to the portable system-call layer,
//! and finally resumes whatever thread is current then. Each entry and
//! exit is also marked for utilisation tracking (`crate::benchmark`, a
//! no-op outside the benchmark configuration).

use super::sysreg::ec;
use super::{entry, mmu};
use crate::context::Reg;
use crate::{benchmark, fastpath, sched, syscall};

/// Length of the `svc` and `hvc` instructions.
const SYSCALL_INSN_BYTES: u64 = 4;

pub fn halt() -> ! {
    loop {
        // SAFETY: waiting for an interrupt has no effect on memory.
        unsafe { core::arch::asm!("wfi", options(nomem, nostack)) };
    }
}

/// Leaves the kernel into the current thread, or idles.
pub fn return_to_current() -> ! {
    let t = sched::cur_thread();
    benchmark::exit(t);
    if septa_abi::CONFIG.debug_build() {
        super::stack::check("on return to user level");
    }
    if sched::is_idle(t) {
        entry::enter_idle()
    }
    if septa_abi::CONFIG.hardware_debug_api() {
        crate::object::tcb::debug::restore(t);
    }
    // SAFETY: `t` is the current thread: schedule() made its address space
    // current, and its register block lives in its TCB for as long as it
    // is the current thread (deleting it would make another one current).
    unsafe { entry::restore_user(mmu::ptr(t.context_paddr())) }
}

/// Call and ReplyRecv by `svc` (the entry code picks them out): the fast
/// path, else the general system-call path.
// Never inline (also into `handle_lower_sync`'s `hvc` case): one copy of
// the fast paths.
#[no_mangle]
#[inline(never)]
extern "C" fn handle_fast_syscall(number: i64) -> ! {
    benchmark::enter();
    let t = sched::cur_thread();
    t.set_reg(
        Reg::FAULT_IP,
        t.reg(Reg::NEXT_IP).wrapping_sub(SYSCALL_INSN_BYTES),
    );
    let done = if number == septa_abi::syscall::CALL {
        fastpath::call(t)
    } else {
        fastpath::reply_recv(t)
    };
    if !done {
        syscall::handle_syscall_slow(number);
        return_to_current()
    }
    let t = sched::cur_thread();
    benchmark::exit(t);
    if septa_abi::CONFIG.hardware_debug_api() {
        crate::object::tcb::debug::restore(t);
    }
    // SAFETY: `t` is the current thread, never the idle thread after a
    // fast path (it made a waiting thread current); the fast path made its
    // address space current, and its register block lives in its TCB.
    unsafe { entry::restore_user(mmu::ptr(t.context_paddr())) }
}

/// Any other system call by `svc` (the entry code picks them out).
#[no_mangle]
#[inline(never)]
extern "C" fn handle_svc(number: i64) -> ! {
    benchmark::enter();
    let t = sched::cur_thread();
    t.set_reg(
        Reg::FAULT_IP,
        t.reg(Reg::NEXT_IP).wrapping_sub(SYSCALL_INSN_BYTES),
    );
    // Never Call or ReplyRecv: those went to `handle_fast_syscall`. Recv
    // and Wait may block through the Recv fast path; Send may take the
    // signal fast path in the benchmark configuration.
    let done = match number {
        // One inline copy for both (Recv has the reply object).
        septa_abi::syscall::RECV | septa_abi::syscall::WAIT => {
            fastpath::recv(t, number == septa_abi::syscall::RECV)
        }
        septa_abi::syscall::SEND => septa_abi::CONFIG.signal_fastpath() && fastpath::signal(t),
        _ => false,
    };
    if !done {
        syscall::handle_syscall_slow(number);
        return_to_current()
    }
    return_after_fast_path()
}

/// Leaves the kernel into the current thread after a fast path, which
/// never leaves the idle thread current (it runs the caller, a woken
/// thread, or a ready one): [`return_to_current`] without the idle test.
#[inline(always)]
fn return_after_fast_path() -> ! {
    let t = sched::cur_thread();
    benchmark::exit(t);
    if septa_abi::CONFIG.hardware_debug_api() {
        crate::object::tcb::debug::restore(t);
    }
    // SAFETY: `t` is the current thread and not the idle thread; the fast
    // path made its address space current, and its register block lives
    // in its TCB.
    unsafe { entry::restore_user(mmu::ptr(t.context_paddr())) }
}

#[no_mangle]
extern "C" fn handle_lower_sync(esr: u64, far: u64) -> ! {
    benchmark::enter();
    let t = sched::cur_thread();
    let elr = t.reg(Reg::NEXT_IP);
    match esr >> entry::ESR_EC_SHIFT {
        // A guest's `hvc` (an `svc` never comes here: the entry code
        // sends it to one of the two handlers): the same handlers, so
        // that the fast paths are in the kernel once. They set FAULT_IP
        // and note the entry again (a few cycles later, for the
        // utilisation figures only).
        ec::SVC64 | ec::HVC64 => {
            let number = t.reg(Reg::X7) as i64;
            if number == septa_abi::syscall::CALL || number == septa_abi::syscall::REPLY_RECV {
                handle_fast_syscall(number)
            }
            handle_svc(number)
        }
        ec::DATA_ABORT_LOWER => {
            t.set_reg(Reg::FAULT_IP, elr);
            // FAR is the address as the thread used it: for a native
            // thread (stage 1 off) the IPA itself; a guest's is translated
            // as seL4 does it (`vcpu::fault_address`).
            syscall::handle_vm_fault(far, esr, false);
        }
        ec::INSTR_ABORT_LOWER => {
            t.set_reg(Reg::FAULT_IP, elr);
            syscall::handle_vm_fault(elr, esr, true);
        }
        // The first FP/SIMD instruction since the thread was switched to
        // (see `sched`'s FPU notes): the instruction runs again.
        ec::FP_ASIMD if sched::handle_fpu_trap() => {}
        _ => {
            t.set_reg(Reg::FAULT_IP, elr);
            syscall::handle_vcpu_fault(esr, far);
        }
    }
    return_to_current()
}

/// An interrupt from a thread (`from_idle` 0) or from the idle loop (1):
/// one handler for both entries, so that the interrupt path, with its
/// fast path inline, is in the kernel once.
#[no_mangle]
extern "C" fn handle_irq(from_idle: u64) -> ! {
    benchmark::enter();
    if from_idle == 0 {
        let t = sched::cur_thread();
        t.set_reg(Reg::FAULT_IP, t.reg(Reg::NEXT_IP));
    }
    if !syscall::handle_interrupt_entry() {
        return_to_current()
    }
    // The interrupt fast path switched to the thread it woke.
    let t = sched::cur_thread();
    benchmark::exit(t);
    if septa_abi::CONFIG.hardware_debug_api() {
        crate::object::tcb::debug::restore(t);
    }
    // SAFETY: `t` is the current thread, never the idle thread after the
    // fast path (it made a woken thread current); the fast path made its
    // address space current, and its register block lives in its TCB.
    unsafe { entry::restore_user(mmu::ptr(t.context_paddr())) }
}

#[no_mangle]
extern "C" fn handle_kernel_trap(esr: u64, elr: u64, far: u64) -> ! {
    use crate::print::raw;
    // "KERNEL TRAP: ESR {esr:#x} at {elr:#x}, address {far:#x}", without
    // `core::fmt` (`print::raw`).
    raw::str("KERNEL TRAP: ESR ");
    raw::hex(esr);
    raw::str(" at ");
    raw::hex(elr);
    raw::str(", address ");
    raw::hex(far);
    raw::str("\n");
    halt()
}

/// A kernel panic, as `KERNEL PANIC: {info}` printed it (where, then the
/// message), with `core::fmt` for the message only: the location goes
/// through `print::raw`, which keeps `PanicInfo`'s and `u32`'s formatting
/// out of the kernels without printing (they carry `core::fmt::write` for
/// the message, and the integer formatting that core's own panics use).
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    use crate::print::raw;
    use core::fmt::Write as _;
    raw::str("KERNEL PANIC: panicked");
    if let Some(l) = info.location() {
        raw::str(" at ");
        raw::str(l.file());
        raw::str(":");
        raw::dec(l.line().into());
        raw::str(":");
        raw::dec(l.column().into());
    }
    raw::str(":\n");
    // A message with arguments needs `core::fmt`'s machinery (~4 KB of
    // code), which only the configuration that prints carries; the others
    // print the message if it is plain text, else only where it was.
    if septa_abi::CONFIG.printing() {
        let _ = write!(crate::print::Out, "{}", info.message());
    } else {
        raw::str(info.message().as_str().unwrap_or("(a formatted message)"));
    }
    raw::str("\n");
    halt()
}
