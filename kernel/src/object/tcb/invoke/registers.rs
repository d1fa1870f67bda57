//! ReadRegisters, WriteRegisters and CopyRegisters.

use super::{err, truncated, Tcb};
use crate::cap::Cap;
use crate::context::{sanitise_register, FRAME_REGISTERS, GP_REGISTERS};
use crate::error::{Exception, SyscallError};
use crate::invocation::{Invocation, ReplyWords};
use crate::sched;
use septa_abi::TCB_REGISTER_COUNT;

const READ_REGISTERS_SUSPEND: u64 = 1 << 0;
const WRITE_REGISTERS_RESUME: u64 = 1 << 0;
const COPY_SUSPEND_SOURCE: u64 = 1 << 0;
const COPY_RESUME_TARGET: u64 = 1 << 1;
const COPY_TRANSFER_FRAME: u64 = 1 << 2;
const COPY_TRANSFER_INTEGER: u64 = 1 << 3;

/// ReadRegisters: the first `count` registers, the target suspended first
/// if asked; never of the caller itself.
pub(super) fn read(inv: &Invocation, target: Tcb, reply: &mut ReplyWords) -> Result<(), Exception> {
    if inv.length() < 2 {
        return truncated();
    }
    let (flags, n) = (inv.arg(0), inv.arg(1));
    if !(1..=TCB_REGISTER_COUNT as u64).contains(&n) {
        return err(SyscallError::RangeError {
            min: 1,
            max: TCB_REGISTER_COUNT as u64,
        });
    }
    if target == sched::cur_thread() {
        return err(SyscallError::IllegalOperation);
    }
    if flags & READ_REGISTERS_SUSPEND != 0 {
        sched::suspend(target);
    }
    for r in FRAME_REGISTERS
        .iter()
        .chain(GP_REGISTERS.iter())
        .take(n as usize)
    {
        reply.push(target.reg(*r));
    }
    Ok(())
}

/// WriteRegisters: the first `count` registers (sanitised), the target
/// resumed if asked; never of the caller itself.
pub(super) fn write(inv: &Invocation, target: Tcb) -> Result<(), Exception> {
    if inv.length() < 2 {
        return truncated();
    }
    let (flags, w) = (inv.arg(0), inv.arg(1));
    if ((inv.length() - 2) as u64) < w {
        return truncated();
    }
    if target == sched::cur_thread() {
        return err(SyscallError::IllegalOperation);
    }
    let n = (w as usize).min(TCB_REGISTER_COUNT);
    let has_vcpu = target.vcpu() != 0;
    for (i, r) in FRAME_REGISTERS
        .iter()
        .chain(GP_REGISTERS.iter())
        .enumerate()
        .take(n)
    {
        target.set_reg(*r, sanitise_register(*r, inv.arg(i + 2), has_vcpu));
    }
    target.set_next_pc(target.restart_pc());
    if flags & WRITE_REGISTERS_RESUME != 0 {
        sched::restart(target);
    }
    Ok(())
}

/// CopyRegisters: from the source TCB (extra cap 0), frame and integer
/// registers as the flags choose, suspending the source and resuming the
/// target if asked.
pub(super) fn copy(inv: &Invocation, target: Tcb) -> Result<(), Exception> {
    if inv.length() < 1 || inv.extra_cap(0).is_none() {
        return truncated();
    }
    let flags = inv.arg(0);
    let src = match inv.extra_cap(0).map(|s| s.cap()) {
        Some(Cap::Tcb { paddr }) => Tcb::new(paddr),
        _ => return err(SyscallError::InvalidCapability { index: 1 }),
    };
    if flags & COPY_SUSPEND_SOURCE != 0 {
        sched::suspend(src);
    }
    if flags & COPY_RESUME_TARGET != 0 {
        sched::restart(target);
    }
    if flags & COPY_TRANSFER_FRAME != 0 {
        for r in FRAME_REGISTERS {
            target.set_reg(r, src.reg(r));
        }
        target.set_next_pc(target.restart_pc());
    }
    if flags & COPY_TRANSFER_INTEGER != 0 {
        for r in GP_REGISTERS {
            target.set_reg(r, src.reg(r));
        }
    }
    if target == sched::cur_thread() {
        sched::reschedule_required();
    }
    Ok(())
}
