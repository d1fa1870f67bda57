//! ReadRegisters, WriteRegisters and CopyRegisters.

use super::{err, truncated, Tcb};
use crate::cap::Cap;
use crate::context::{sanitise_register, Reg, FRAME_REGISTERS, GP_REGISTERS};
use crate::error::{Exception, SyscallError};
use crate::invocation::{Invocation, ReplyWords};
use crate::sched;
use septa_abi::TCB_REGISTER_COUNT;

/// The Read/Write/CopyRegisters order: the frame registers, then the
/// integer ones.
const REGISTERS: [Reg; TCB_REGISTER_COUNT] = {
    let mut all = [Reg(0); TCB_REGISTER_COUNT];
    let mut i = 0;
    while i < TCB_REGISTER_COUNT {
        all[i] = if i < FRAME_REGISTERS.len() {
            FRAME_REGISTERS[i]
        } else {
            GP_REGISTERS[i - FRAME_REGISTERS.len()]
        };
        i += 1;
    }
    all
};

const _: () = assert!(FRAME_REGISTERS.len() + GP_REGISTERS.len() == TCB_REGISTER_COUNT);

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
    for r in &REGISTERS[..n as usize] {
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
    for (i, r) in REGISTERS[..n].iter().enumerate() {
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
    // The frame registers are REGISTERS' first part, the integer ones the
    // rest: one loop over the range the flags choose (two fixed-length
    // loops were unrolled, ~290 bytes). The integer registers hold neither
    // the fault nor the next address, so the next address may be set
    // after both parts.
    let frame = flags & COPY_TRANSFER_FRAME != 0;
    let start = if frame { 0 } else { FRAME_REGISTERS.len() };
    let end = if flags & COPY_TRANSFER_INTEGER != 0 {
        TCB_REGISTER_COUNT
    } else {
        FRAME_REGISTERS.len()
    };
    for r in REGISTERS.get(start..end).unwrap_or(&[]) {
        target.set_reg(*r, src.reg(*r));
    }
    if frame {
        target.set_next_pc(target.restart_pc());
    }
    if target == sched::cur_thread() {
        sched::reschedule_required();
    }
    Ok(())
}
