//! The few instructions the fault cases need verbatim: a load, a store, a
//! branch, a raw `svc`, `udf` and `brk`, each returning the address of the
//! instruction that faults so the cases can check the fault's IP.
//!
//! On the host these exist only so the suite compiles; they are never run.

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod imp {
    use core::arch::asm;

    /// `ldr x9, [x10]` at the returned address; the loaded value.
    pub fn load(addr: u64) -> (u64, u64) {
        let (pc, v): (u64, u64);
        // SAFETY: reads one word at `addr`; the case expects this to fault
        // and has the handler map a page there before the thread resumes.
        // The asm touches only x9, x10 and the output register.
        unsafe {
            asm!(
                "adr {pc}, 2f",
                "2: ldr x9, [x10]",
                pc = out(reg) pc,
                in("x10") addr,
                out("x9") v,
                options(nostack),
            );
        }
        (pc, v)
    }

    /// `str x9, [x10]` at the returned address.
    pub fn store(addr: u64, v: u64) -> u64 {
        let pc: u64;
        // SAFETY: writes one word at `addr`, a page the case owns (or that
        // faults and is then mapped by the handler).
        unsafe {
            asm!(
                "adr {pc}, 2f",
                "2: str x9, [x10]",
                pc = out(reg) pc,
                in("x10") addr,
                in("x9") v,
                options(nostack),
            );
        }
        pc
    }

    /// Branches with link to `addr` (never returns on a correct kernel:
    /// the case stops the thread at the fault).
    pub fn jump(addr: u64) {
        // SAFETY: the target is unmapped; the prefetch abort stops the
        // thread before anything runs there. Every caller-saved register is
        // declared clobbered in case it ever returns.
        unsafe {
            asm!(
                "blr x10",
                in("x10") addr,
                clobber_abi("C"),
            );
        }
    }

    /// A raw system call: x0..x6 from `regs`, x7 = `number`. Returns the
    /// address of the `svc`, the stack pointer at it, and x0..x7 after it.
    pub fn svc(number: u64, regs: [u64; 7]) -> (u64, u64, [u64; 8]) {
        let (pc, sp): (u64, u64);
        let (mut x0, mut x1, mut x2, mut x3, mut x4, mut x5, mut x6, mut x7) = (
            regs[0], regs[1], regs[2], regs[3], regs[4], regs[5], regs[6], number,
        );
        // SAFETY: `svc` enters the kernel, which for an unknown number
        // delivers a fault; the handler replies with registers for x0..x7
        // (all declared in-out here) and the thread resumes after the svc.
        unsafe {
            asm!(
                "mov {sp}, sp",
                "adr {pc}, 2f",
                "2: svc #0",
                pc = out(reg) pc,
                sp = out(reg) sp,
                inout("x0") x0,
                inout("x1") x1,
                inout("x2") x2,
                inout("x3") x3,
                inout("x4") x4,
                inout("x5") x5,
                inout("x6") x6,
                inout("x7") x7,
                options(nostack),
            );
        }
        (pc, sp, [x0, x1, x2, x3, x4, x5, x6, x7])
    }

    /// `udf #0` at the returned address; returns once a handler moved the
    /// thread past it. Also returns the stack pointer at the instruction.
    pub fn udf() -> (u64, u64) {
        let (pc, sp): (u64, u64);
        // SAFETY: an undefined instruction: the kernel delivers a user
        // exception; the handler resumes the thread after it.
        unsafe {
            asm!(
                "mov {sp}, sp",
                "adr {pc}, 2f",
                "2: udf #0",
                pc = out(reg) pc,
                sp = out(reg) sp,
                options(nostack),
            );
        }
        (pc, sp)
    }

    /// `brk #0x42` at the returned address; returns once a handler moved
    /// the thread past it.
    pub fn brk() -> u64 {
        let pc: u64;
        // SAFETY: a breakpoint instruction: the hyp kernel delivers a VCPU
        // fault; the handler moves the PC past it before replying.
        unsafe {
            asm!(
                "adr {pc}, 2f",
                "2: brk #0x42",
                pc = out(reg) pc,
                options(nostack),
            );
        }
        pc
    }
}

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
mod imp {
    const HOST: &str = "fault instructions only run on the target";
    pub fn load(_: u64) -> (u64, u64) {
        unreachable!("{HOST}")
    }
    pub fn store(_: u64, _: u64) -> u64 {
        unreachable!("{HOST}")
    }
    pub fn jump(_: u64) {
        unreachable!("{HOST}")
    }
    pub fn svc(_: u64, _: [u64; 7]) -> (u64, u64, [u64; 8]) {
        unreachable!("{HOST}")
    }
    pub fn udf() -> (u64, u64) {
        unreachable!("{HOST}")
    }
    pub fn brk() -> u64 {
        unreachable!("{HOST}")
    }
}

pub use imp::*;

/// The immediate of the `brk` in [`brk`].
pub const BRK_IMM: u64 = 0x42;
