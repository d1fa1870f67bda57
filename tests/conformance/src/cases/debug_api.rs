//! The hardware debug API of the debug configuration (`HardwareDebugAPI`,
//! src/object/tcb.c `decodeSetBreakpoint` and friends,
//! include/arch/arm/arch/machine/debug.h, src/arch/arm/64/machine/debug.c,
//! src/api/faults.c): the four TCB invocations, and the DebugException
//! faults of breakpoints, watchpoints, single steps and `brk`. In the other
//! configurations the cases do not apply.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use septa_abi::fault as labels;
use septa_abi::hardware_debug::*;
use septa_abi::{Label, CONFIG, USER_TOP};
use septa_sel4::cap::cap_type::*;
use septa_sel4::fault::Fault;
use septa_sel4::{syscall, Breakpoint, Cap, Error};

use crate::cases::fault::{fault_ep, skip_instruction};
use crate::cases::instr;
use crate::cases::util::reply;
use crate::env::Cx;
use crate::report::Outcome;
use crate::thread::{self, mail, post, Spawn};
use crate::{check, check_eq, check_err, fail, needs, ok, Case};

pub const LABELS: &[Label] = &[
    Label::TcbSetBreakpoint,
    Label::TcbGetBreakpoint,
    Label::TcbUnsetBreakpoint,
    Label::TcbConfigureSingleStepping,
];

pub const CASES: &[Case] = &[
    Case {
        name: "debug-api/set-get-unset",
        run: set_get_unset,
    },
    Case {
        name: "debug-api/set-breakpoint-errors",
        run: set_errors,
    },
    Case {
        name: "debug-api/instruction-breakpoint-fault",
        run: breakpoint_fault,
    },
    Case {
        name: "debug-api/watchpoint-fault",
        run: watchpoint_fault,
    },
    Case {
        name: "debug-api/single-stepping",
        run: single_stepping,
    },
    Case {
        name: "debug-api/brk-is-a-software-break-request",
        run: brk_is_debug,
    },
];

fn needs_api() -> Outcome {
    needs!(
        CONFIG.hardware_debug_api(),
        "the hardware debug API (debug configuration)"
    );
    Ok(())
}

/// A word for watchpoints, alone in its doubleword.
#[repr(align(8))]
struct Watched(AtomicU64);
static WATCHED: Watched = Watched(AtomicU64::new(0));

/// A function for instruction breakpoints, never inlined so it has an
/// address of its own.
#[inline(never)]
fn breakpoint_target(x: u64) -> u64 {
    core::hint::black_box(x) + 1
}

fn set_get_unset(cx: &mut Cx) -> Outcome {
    needs_api()?;
    let t = thread::spawn(cx, Spawn::new(|_| {}, 0).suspended())?;
    let code = breakpoint_target as *const () as u64;
    let data = WATCHED.0.as_ptr() as u64;
    ok!(t
        .tcb
        .set_breakpoint(0, code, INSTRUCTION_BREAKPOINT, 0, BREAK_ON_READ));
    ok!(t.tcb.set_breakpoint(
        FIRST_WATCHPOINT,
        data,
        DATA_BREAKPOINT,
        8,
        BREAK_ON_READ_WRITE
    ));
    check_eq!(
        ok!(t.tcb.get_breakpoint(0)),
        Breakpoint {
            vaddr: code,
            ty: INSTRUCTION_BREAKPOINT,
            size: 0,
            rw: BREAK_ON_READ,
            enabled: true
        }
    );
    check_eq!(
        ok!(t.tcb.get_breakpoint(FIRST_WATCHPOINT)),
        Breakpoint {
            vaddr: data,
            ty: DATA_BREAKPOINT,
            size: 8,
            rw: BREAK_ON_READ_WRITE,
            enabled: true
        }
    );
    // Unset: disabled and cleared, the other settings kept.
    ok!(t.tcb.unset_breakpoint(0));
    ok!(t.tcb.unset_breakpoint(FIRST_WATCHPOINT));
    check_eq!(
        ok!(t.tcb.get_breakpoint(0)),
        Breakpoint {
            vaddr: 0,
            ty: INSTRUCTION_BREAKPOINT,
            size: 0,
            rw: BREAK_ON_READ,
            enabled: false
        }
    );
    check_eq!(
        ok!(t.tcb.get_breakpoint(FIRST_WATCHPOINT)),
        Breakpoint {
            vaddr: 0,
            ty: DATA_BREAKPOINT,
            size: 8,
            rw: BREAK_ON_READ_WRITE,
            enabled: false
        }
    );
    // Single stepping: a breakpoint register counts as consumed while on.
    check_eq!(ok!(t.tcb.configure_single_stepping(0, 3)), true);
    check_eq!(ok!(t.tcb.configure_single_stepping(0, 0)), false);
    Ok(())
}

fn set_errors(cx: &mut Cx) -> Outcome {
    needs_api()?;
    let t = thread::spawn(cx, Spawn::new(|_| {}, 0).suspended())?;
    let set = |bp, vaddr, ty, size, rw| t.tcb.set_breakpoint(bp, vaddr, ty, size, rw);
    let ia = |index| Error::InvalidArgument { index };
    let (i, d) = (INSTRUCTION_BREAKPOINT, DATA_BREAKPOINT);
    let w = FIRST_WATCHPOINT;
    check_err!(set(0, USER_TOP, i, 0, BREAK_ON_READ), ia(1));
    check_err!(set(0, 0x1000, SINGLE_STEP, 0, BREAK_ON_READ), ia(2));
    check_err!(set(0, 0x1000, 7, 0, BREAK_ON_READ), ia(2));
    check_err!(set(0, 0x1000, i, 4, BREAK_ON_READ), ia(3));
    check_err!(set(0, 0x1000, i, 0, BREAK_ON_WRITE), ia(4));
    check_err!(set(w, 0x1000, i, 0, BREAK_ON_READ), ia(2));
    check_err!(set(w, 0x1000, d, 0, BREAK_ON_READ), ia(3));
    check_err!(set(0, 0x1000, d, 4, BREAK_ON_READ), ia(2));
    check_err!(set(w, 0x1000, d, 4, 3), ia(3));
    check_err!(set(w, 0x1000, d, 3, BREAK_ON_READ), ia(3));
    check_err!(set(w, 0x1004, d, 8, BREAK_ON_READ), Error::AlignmentError);
    // Past the last watchpoint; seL4's range names the breakpoints' count.
    check_err!(
        set(w + NUM_EXCLUSIVE_WATCHPOINTS, 0x1000, d, 4, BREAK_ON_READ),
        Error::RangeError {
            min: 0,
            max: NUM_EXCLUSIVE_BREAKPOINTS - 1
        }
    );
    // The number is 16 bits wide: 0x1_0000 is breakpoint 0.
    ok!(set(0x1_0000, 0x1000, i, 0, BREAK_ON_READ));
    check_eq!(ok!(t.tcb.get_breakpoint(0)).vaddr, 0x1000);
    ok!(t.tcb.unset_breakpoint(0));
    Ok(())
}

/// Receives a DebugException and returns it with the message length.
fn recv_debug(ep: Cap<Endpoint>, r: Cap<Reply>) -> Result<(Fault, u64), crate::report::Failure> {
    let (info, _) = syscall::recv(ep.cptr(), r);
    check_eq!(info.label(), labels::DEBUG_EXCEPTION, "fault label");
    Ok((Fault::from_ipc_buffer(info), info.length()))
}

fn breakpoint_fault(cx: &mut Cx) -> Outcome {
    needs_api()?;
    fn body(_: u64) {
        post(1, breakpoint_target(41));
    }
    let (ep, handler, r) = fault_ep(cx, 0x81)?;
    let t = thread::spawn(cx, Spawn::new(body, 0).fault(handler).suspended())?;
    let code = breakpoint_target as *const () as u64;
    // Register 0: seL4 finds the breakpoint that fired by scanning the
    // registers from 0, and its debug build asserts on any register before
    // it whose byte selection was never set (src/arch/arm/machine/debug.c
    // `getAndResetActiveBreakpoint`), so the first one is the one to use.
    ok!(t
        .tcb
        .set_breakpoint(0, code, INSTRUCTION_BREAKPOINT, 0, BREAK_ON_READ));
    ok!(t.tcb.resume());
    let (f, len) = recv_debug(ep, r)?;
    check_eq!(len, labels::debug_exception::LENGTH);
    check_eq!(
        f,
        Fault::DebugException {
            fault_ip: code,
            reason: INSTRUCTION_BREAKPOINT,
            trigger: code,
            number: 0
        }
    );
    // The reply restarts it at the breakpoint, now gone.
    ok!(t.tcb.unset_breakpoint(0));
    reply(r, 0, &[]);
    t.join()?;
    check_eq!(mail(1), 42, "the function ran once the breakpoint was gone");
    Ok(())
}

fn watchpoint_fault(cx: &mut Cx) -> Outcome {
    needs_api()?;
    fn body(_: u64) {
        WATCHED.0.store(7, Relaxed);
        post(1, 1);
    }
    WATCHED.0.store(0, Relaxed);
    let (ep, handler, r) = fault_ep(cx, 0x82)?;
    let t = thread::spawn(cx, Spawn::new(body, 0).fault(handler).suspended())?;
    let data = WATCHED.0.as_ptr() as u64;
    // The first watchpoint, for the reason given in breakpoint_fault.
    let wp = FIRST_WATCHPOINT;
    ok!(t
        .tcb
        .set_breakpoint(wp, data, DATA_BREAKPOINT, 8, BREAK_ON_WRITE));
    ok!(t.tcb.resume());
    let (f, len) = recv_debug(ep, r)?;
    check_eq!(len, labels::debug_exception::LENGTH);
    let Fault::DebugException {
        reason,
        trigger,
        number,
        ..
    } = f
    else {
        fail!("expected a debug exception got {f:?}");
    };
    check_eq!((reason, trigger, number), (DATA_BREAKPOINT, data, wp));
    check_eq!(WATCHED.0.load(Relaxed), 0, "the store did not happen yet");
    ok!(t.tcb.unset_breakpoint(wp));
    reply(r, 0, &[]);
    t.join()?;
    check_eq!(
        WATCHED.0.load(Relaxed),
        7,
        "the store happened after the reply"
    );
    Ok(())
}

fn single_stepping(cx: &mut Cx) -> Outcome {
    needs_api()?;
    fn body(_: u64) {
        post(1, 1);
    }
    let (ep, handler, r) = fault_ep(cx, 0x83)?;
    let t = thread::spawn(cx, Spawn::new(body, 0).fault(handler).suspended())?;
    check_eq!(ok!(t.tcb.configure_single_stepping(0, 1)), true);
    ok!(t.tcb.resume());
    // One instruction, a stop; the reply asks for two more, then one.
    let mut ips = [0; 3];
    for (k, ip) in ips.iter_mut().enumerate() {
        let (f, len) = recv_debug(ep, r)?;
        check_eq!(len, labels::debug_exception::SHORT_LENGTH, k);
        let Fault::DebugException {
            fault_ip, reason, ..
        } = f
        else {
            fail!("expected a debug exception got {f:?}");
        };
        check_eq!(reason, SINGLE_STEP, k);
        *ip = fault_ip;
        reply(r, 0, &[if k == 0 { 2 } else { 1 }]);
    }
    check!(
        ips[0] != ips[1] && ips[1] != ips[2],
        "each stop is at another instruction: {ips:x?}"
    );
    check_eq!(mail(1), 0, "the thread is still stepping through its start");
    // A reply of 0 instructions switches stepping off (a reply while it is
    // already off would leave the thread stopped instead).
    let (_, _) = recv_debug(ep, r)?;
    reply(r, 0, &[0]);
    t.join()?;
    check_eq!(mail(1), 1, "the thread ran to its end");
    Ok(())
}

fn brk_is_debug(cx: &mut Cx) -> Outcome {
    needs_api()?;
    fn body(_: u64) {
        post(1, instr::brk());
    }
    let (ep, handler, r) = fault_ep(cx, 0x84)?;
    let t = thread::spawn(cx, Spawn::new(body, 0).fault(handler))?;
    let (f, len) = recv_debug(ep, r)?;
    check_eq!(len, labels::debug_exception::SHORT_LENGTH);
    let Fault::DebugException {
        fault_ip, reason, ..
    } = f
    else {
        fail!("expected a debug exception got {f:?}");
    };
    check_eq!(reason, SOFTWARE_BREAK_REQUEST);
    skip_instruction(&t)?;
    reply(r, 0, &[]);
    t.join()?;
    check_eq!(mail(1), fault_ip, "the brk the fault names");
    Ok(())
}
