//! # The hardware debug API (debug configuration)
//!
//! seL4's `HardwareDebugAPI`: a thread's breakpoints, watchpoints and
//! single stepping, set through four TCB invocations and reported as
//! DebugException faults. The state lives in the TCB, which is 4 KiB in
//! this configuration (its second half holds it), and is loaded into the
//! debug registers whenever the thread is about to run ([`restore`], seL4's
//! `restore_user_debug_context`); the registers themselves are the arch
//! code's, through `machine`.
//!
//! Breakpoint numbers are the API's: 0..6 instruction breakpoints
//! (DBGBCR/DBGBVR 0..6), 6..10 watchpoints (DBGWCR/DBGWVR 0..4). Single
//! stepping uses no breakpoint register on aarch64: MDSCR_EL1.SS and the
//! thread's SPSR.SS. Every check and its error, in its order, is seL4
//! 16.0.0's (`decodeSetBreakpoint` and friends, `Arch_decode*`), including
//! where a bad number is not an error.

use super::Tcb;
use crate::error::{Exception, SyscallError};
use crate::fault::Fault;
use crate::invocation::{Invocation, ReplyWords};
use crate::machine;
use crate::{context::Reg, memory};
use septa_abi::hardware_debug::{
    BREAK_ON_READ, BREAK_ON_READ_WRITE, BREAK_ON_WRITE, DATA_BREAKPOINT, FIRST_BREAKPOINT,
    FIRST_WATCHPOINT, INSTRUCTION_BREAKPOINT, NUM_EXCLUSIVE_BREAKPOINTS, NUM_EXCLUSIVE_WATCHPOINTS,
    SINGLE_STEP, SOFTWARE_BREAK_REQUEST,
};
use septa_abi::USER_TOP;

fn err<T>(e: SyscallError) -> Result<T, Exception> {
    Err(Exception::Syscall(e))
}

/// Where the debug state starts in a (4 KiB) TCB: past everything else.
pub const DEBUG_OFFSET: u64 = 0x800;
const BP_OFFSET: u64 = DEBUG_OFFSET;
const WP_OFFSET: u64 = BP_OFFSET + NUM_EXCLUSIVE_BREAKPOINTS * 16;
const USED_OFFSET: u64 = WP_OFFSET + NUM_EXCLUSIVE_WATCHPOINTS * 16;
const N_INSTRUCTIONS_OFFSET: u64 = USED_OFFSET + 8;
const SINGLE_STEP_OFFSET: u64 = N_INSTRUCTIONS_OFFSET + 8;
const DEBUG_END: u64 = SINGLE_STEP_OFFSET + 8;

const _: () = assert!(
    !septa_abi::CONFIG.hardware_debug_api() || DEBUG_END <= super::TCB_BYTES,
    "the debug state fits the TCB of the debug configuration"
);
const _: () = assert!(DEBUG_OFFSET >= super::FIELDS_OFFSET + 0x100);

/// Control register fields (DBGBCR_EL1 and DBGWCR_EL1, Arm ARM D13.3).
mod cr {
    pub const ENABLE: u64 = 1 << 0;
    /// PMC / PAC: privilege, 0b10 = EL0 only.
    pub const PRIV_USER: u64 = 0b10 << 1;
    /// DBGWCR.LSC: load, store or either.
    pub const LSC_SHIFT: u32 = 3;
    /// BAS: bytes of the (double)word to match.
    pub const BAS_SHIFT: u32 = 5;
    pub const BCR_BAS_MASK: u64 = 0xf;
    pub const WCR_BAS_MASK: u64 = 0xff;
    pub const LSC_LOAD: u64 = 1;
    pub const LSC_STORE: u64 = 2;
    pub const LSC_EITHER: u64 = 3;
}

/// Exception classes of debug exceptions from a lower EL (seL4's
/// `DEBUG_ENTRY_*`).
pub mod ec {
    pub const BREAKPOINT: u64 = 0x30;
    pub const SINGLE_STEP: u64 = 0x32;
    pub const WATCHPOINT: u64 = 0x34;
    pub const BRK: u64 = 0x3c;
}

impl Tcb {
    fn debug_word(self, off: u64) -> u64 {
        memory::read::<u64>(self.paddr() + off)
    }

    fn set_debug_word(self, off: u64, v: u64) {
        memory::write::<u64>(self.paddr() + off, v)
    }

    /// Control and value register of instruction breakpoint `i` (0..6) or,
    /// with `watch`, of watchpoint `i` (0..4), as this thread has them.
    fn debug_pair(self, watch: bool, i: u64) -> (u64, u64) {
        let off = if watch { WP_OFFSET } else { BP_OFFSET } + i * 16;
        (self.debug_word(off), self.debug_word(off + 8))
    }

    fn set_debug_pair(self, watch: bool, i: u64, cr: u64, vr: u64) {
        let off = if watch { WP_OFFSET } else { BP_OFFSET } + i * 16;
        self.set_debug_word(off, cr);
        self.set_debug_word(off + 8, vr);
    }

    /// Which API breakpoint numbers the thread uses (a bit each).
    fn used_breakpoints(self) -> u64 {
        self.debug_word(USED_OFFSET)
    }

    fn set_used_breakpoints(self, v: u64) {
        self.set_debug_word(USED_OFFSET, v)
    }

    fn single_stepping(self) -> bool {
        self.debug_word(SINGLE_STEP_OFFSET) != 0
    }
}

/// seL4's `convertSizeToArch`: a watched size as BAS bits.
fn size_to_bas(size: u64) -> u64 {
    match size {
        1 => 0x1,
        2 => 0x3,
        8 => 0xff,
        _ => 0xf,
    }
}

/// seL4's `convertArchToSize` (4 for anything else, where seL4 asserts).
fn bas_to_size(bas: u64) -> u64 {
    match bas {
        0x1 => 1,
        0x3 => 2,
        0xff => 8,
        _ => 4,
    }
}

/// An API breakpoint number as (is a watchpoint, register index).
fn to_arch(bp: u64) -> (bool, u64) {
    if bp >= NUM_EXCLUSIVE_BREAKPOINTS {
        (true, bp - NUM_EXCLUSIVE_BREAKPOINTS)
    } else {
        (false, bp)
    }
}

/// TCB SetBreakpoint: breakpoint number, address, type, size, access.
pub(super) fn set_breakpoint(inv: &Invocation, target: Tcb) -> Result<(), Exception> {
    // seL4 keeps the number as a uint16_t.
    let bp = inv.arg(0) & 0xffff;
    let (vaddr, ty, size, rw) = (inv.arg(1), inv.arg(2), inv.arg(3), inv.arg(4));
    if vaddr >= USER_TOP {
        return err(SyscallError::InvalidArgument { index: 1 });
    }
    match ty {
        INSTRUCTION_BREAKPOINT => {
            if size != 0 {
                return err(SyscallError::InvalidArgument { index: 3 });
            }
            if rw != BREAK_ON_READ {
                return err(SyscallError::InvalidArgument { index: 4 });
            }
            if bp >= FIRST_WATCHPOINT && FIRST_BREAKPOINT != FIRST_WATCHPOINT {
                return err(SyscallError::InvalidArgument { index: 2 });
            }
        }
        DATA_BREAKPOINT => {
            if size == 0 {
                return err(SyscallError::InvalidArgument { index: 3 });
            }
            if bp < FIRST_WATCHPOINT {
                return err(SyscallError::InvalidArgument { index: 2 });
            }
        }
        _ => return err(SyscallError::InvalidArgument { index: 2 }),
    }
    if !matches!(rw, BREAK_ON_READ | BREAK_ON_WRITE | BREAK_ON_READ_WRITE) {
        return err(SyscallError::InvalidArgument { index: 3 });
    }
    if !matches!(size, 0 | 1 | 2 | 4 | 8) {
        return err(SyscallError::InvalidArgument { index: 3 });
    }
    if size > 0 && vaddr & (size - 1) != 0 {
        return err(SyscallError::AlignmentError);
    }
    // Arch_decodeSetBreakpoint; its ranges name the other kind's count, as
    // seL4's do.
    let (watch, i) = to_arch(bp);
    if ty == DATA_BREAKPOINT && i >= NUM_EXCLUSIVE_WATCHPOINTS {
        return err(SyscallError::RangeError {
            min: 0,
            max: NUM_EXCLUSIVE_BREAKPOINTS - 1,
        });
    }
    if ty == INSTRUCTION_BREAKPOINT && i >= NUM_EXCLUSIVE_BREAKPOINTS {
        return err(SyscallError::RangeError {
            min: 0,
            max: NUM_EXCLUSIVE_WATCHPOINTS - 1,
        });
    }
    let cr = if watch {
        let lsc = match rw {
            BREAK_ON_READ => cr::LSC_LOAD,
            BREAK_ON_WRITE => cr::LSC_STORE,
            _ => cr::LSC_EITHER,
        };
        cr::ENABLE | cr::PRIV_USER | lsc << cr::LSC_SHIFT | size_to_bas(size) << cr::BAS_SHIFT
    } else {
        cr::ENABLE | cr::PRIV_USER | size_to_bas(4) << cr::BAS_SHIFT
    };
    target.set_debug_pair(watch, i, cr, vaddr);
    target.set_used_breakpoints(target.used_breakpoints() | 1 << bp);
    Ok(())
}

/// TCB GetBreakpoint: address, type, size, access, enabled.
pub(super) fn get_breakpoint(
    inv: &Invocation,
    target: Tcb,
    reply: &mut ReplyWords,
) -> Result<(), Exception> {
    let bp = inv.arg(0) & 0xffff;
    // seL4 reports no error for a number past the last watchpoint (and
    // then reads past its table); Septa answers with a disabled one.
    let (watch, i) = to_arch(bp);
    let in_range = bp < FIRST_WATCHPOINT + NUM_EXCLUSIVE_WATCHPOINTS;
    let (c, vaddr) = if in_range {
        target.debug_pair(watch, i)
    } else {
        (0, 0)
    };
    let (ty, size, rw) = if watch {
        let rw = match (c >> cr::LSC_SHIFT) & 3 {
            cr::LSC_LOAD => BREAK_ON_READ,
            cr::LSC_STORE => BREAK_ON_WRITE,
            _ => BREAK_ON_READ_WRITE,
        };
        (
            DATA_BREAKPOINT,
            bas_to_size((c >> cr::BAS_SHIFT) & cr::WCR_BAS_MASK),
            rw,
        )
    } else {
        (INSTRUCTION_BREAKPOINT, 0, BREAK_ON_READ)
    };
    for w in [vaddr, ty, size, rw, c & cr::ENABLE] {
        reply.push(w);
    }
    Ok(())
}

/// TCB UnsetBreakpoint.
pub(super) fn unset_breakpoint(inv: &Invocation, target: Tcb) -> Result<(), Exception> {
    let bp = inv.arg(0) & 0xffff;
    // As in GetBreakpoint, a number past the last is no error.
    if bp < FIRST_WATCHPOINT + NUM_EXCLUSIVE_WATCHPOINTS {
        let (watch, i) = to_arch(bp);
        let (c, _) = target.debug_pair(watch, i);
        target.set_debug_pair(watch, i, c & !cr::ENABLE, 0);
        target.set_used_breakpoints(target.used_breakpoints() & !(1 << bp));
    }
    Ok(())
}

/// TCB ConfigureSingleStepping: number (unused on aarch64), instructions
/// between stops (0 stops stepping); replies whether a breakpoint register
/// was consumed (always, unless stepping stops).
pub(super) fn configure_single_stepping(
    inv: &Invocation,
    target: Tcb,
    reply: &mut ReplyWords,
) -> Result<(), Exception> {
    let n = inv.arg(1);
    configure_stepping(target, n);
    reply.push((n != 0) as u64);
    Ok(())
}

/// seL4's `configureSingleStepping`.
fn configure_stepping(t: Tcb, n: u64) {
    t.set_debug_word(SINGLE_STEP_OFFSET, (n > 0) as u64);
    t.set_debug_word(N_INSTRUCTIONS_OFFSET, n);
}

/// Whether `esr` is a debug exception (seL4's `isDebugFault`).
pub fn is_debug_fault(esr: u64) -> bool {
    matches!(
        esr >> 26,
        ec::BREAKPOINT | ec::SINGLE_STEP | ec::WATCHPOINT | ec::BRK
    )
}

/// The fault a debug exception of the current thread `t` makes, or none
/// when a single step is not yet due (seL4's
/// `handleUserLevelDebugException`): `far` is the data address of a
/// watchpoint hit.
pub fn debug_exception(t: Tcb, esr: u64, far: u64) -> Option<Fault> {
    let ip = t.restart_pc();
    let (reason, address) = match esr >> 26 {
        ec::BREAKPOINT => (INSTRUCTION_BREAKPOINT, ip),
        ec::WATCHPOINT => (DATA_BREAKPOINT, far),
        ec::SINGLE_STEP => (SINGLE_STEP, ip),
        _ => (SOFTWARE_BREAK_REQUEST, ip),
    };
    let number = match reason {
        INSTRUCTION_BREAKPOINT | DATA_BREAKPOINT => active_breakpoint(address, reason),
        _ => 0,
    };
    if reason == SINGLE_STEP && !single_step_due(t) {
        return None;
    }
    Some(Fault::Debug {
        address,
        number,
        reason,
    })
}

/// Which enabled hardware breakpoint (or watchpoint) matches `address`,
/// as an API number (seL4's `getAndResetActiveBreakpoint` and
/// `getBpNumFromType`); 0 if none does.
fn active_breakpoint(address: u64, reason: u64) -> u64 {
    let watch = reason == DATA_BREAKPOINT;
    let (count, bas_mask) = if watch {
        (NUM_EXCLUSIVE_WATCHPOINTS, cr::WCR_BAS_MASK)
    } else {
        (NUM_EXCLUSIVE_BREAKPOINTS, cr::BCR_BAS_MASK)
    };
    for i in 0..count {
        let (c, v) = machine::debug_read(watch, i);
        let align = !(bas_to_size((c >> cr::BAS_SHIFT) & bas_mask) - 1);
        if c & cr::ENABLE != 0 && v == address & align {
            return if watch {
                i + NUM_EXCLUSIVE_BREAKPOINTS
            } else {
                i
            };
        }
    }
    0
}

/// Counts down a single step; whether this one stops the thread (seL4's
/// `singleStepFaultCounterReady`).
fn single_step_due(t: Tcb) -> bool {
    let n = t.debug_word(N_INSTRUCTIONS_OFFSET).saturating_sub(1);
    t.set_debug_word(N_INSTRUCTIONS_OFFSET, n);
    n == 0
}

/// The handler's reply to a DebugException of `receiver` (seL4's
/// `handleFaultReply`): a single step goes on for the reply's MR0
/// instructions (1 if the reply is empty), unless stepping was switched off
/// meanwhile; whether the thread restarts.
pub fn fault_reply(reason: u64, receiver: Tcb, label: u64, length: usize, mr0: u64) -> bool {
    if reason != SINGLE_STEP {
        return label == 0;
    }
    let n = if length < 1 { 1 } else { mr0 };
    if !receiver.single_stepping() {
        return false;
    }
    configure_stepping(receiver, n);
    label == 0
}

/// Loads `t`'s debug state into the debug registers before it runs (seL4's
/// `restore_user_debug_context`): its breakpoints and watchpoints, all
/// others disabled; single stepping in MDSCR_EL1.SS and the thread's
/// SPSR.SS.
pub fn restore(t: Tcb) {
    let used = t.used_breakpoints();
    for bp in 0..FIRST_WATCHPOINT + NUM_EXCLUSIVE_WATCHPOINTS {
        let (watch, i) = to_arch(bp);
        if used & 1 << bp != 0 {
            let (c, v) = t.debug_pair(watch, i);
            machine::debug_write(watch, i, c, v);
        } else {
            machine::debug_disable(watch, i);
        }
    }
    let step = t.single_stepping();
    machine::debug_single_step(step);
    let spsr = t.reg(Reg::SPSR);
    let spsr = if step {
        spsr | SPSR_SS
    } else {
        spsr & !SPSR_SS
    };
    t.set_reg(Reg::SPSR, spsr);
}

/// SPSR.SS: the thread steps one instruction after the return.
const SPSR_SS: u64 = 1 << 21;
