//! # A thread's saved registers, and the register orders of the ABI
//!
//! [`UserContext`] is the block the exception entry code stores a thread's
//! registers into (its layout is part of the assembly in
//! `arch::aarch64::entry`); it lives inside the thread's TCB (see
//! `object::tcb`). Code reaches single registers through [`Reg`], whose
//! values are word indices into the block, in seL4's order.
//!
//! Two program counters are kept, as seL4 does: `NextIP` (ELR) is where the
//! thread resumes when it returns from the kernel, `FaultIP` is the address
//! of the instruction that entered the kernel (the `svc` itself for a system
//! call). A thread left in the Restart state resumes at `FaultIP`, so it
//! re-executes the system call; `TCB_ReadRegisters` reports `FaultIP` as
//! the pc.
//!
//! The tables here ([`MSG_REGISTERS`], [`FRAME_REGISTERS`],
//! [`GP_REGISTERS`] and the fault message orders) are the register orders
//! the ABI fixes for Read/Write/CopyRegisters and for fault messages.

/// Saved EL0/EL1 general register state of a thread.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UserContext {
    /// x0..x30.
    pub x: [u64; 31],
    /// SP_EL0.
    pub sp: u64,
    /// The address the thread resumes at (ELR_EL2; seL4's `NextIP`).
    pub pc: u64,
    /// The saved program status (SPSR_EL2).
    pub spsr: u64,
    /// The instruction that entered the kernel (seL4's `FaultIP`).
    pub fault_ip: u64,
    pub tpidr_el0: u64,
    pub tpidrro_el0: u64,
}

/// Words in a [`UserContext`].
pub const CONTEXT_WORDS: usize = 37;

/// Byte offsets used by the entry assembly; checked here so the two agree.
pub const OFFSET_LR: usize = 240;
pub const OFFSET_SP: usize = 248;
pub const OFFSET_PC: usize = 256;
pub const OFFSET_FAULT_IP: usize = 272;
pub const OFFSET_TPIDR: usize = 280;
pub const OFFSET_TPIDRRO: usize = 288;
const _: () = assert!(core::mem::offset_of!(UserContext, sp) == OFFSET_SP);
const _: () = assert!(core::mem::offset_of!(UserContext, pc) == OFFSET_PC);
const _: () = assert!(core::mem::offset_of!(UserContext, fault_ip) == OFFSET_FAULT_IP);
const _: () = assert!(core::mem::offset_of!(UserContext, tpidr_el0) == OFFSET_TPIDR);
const _: () = assert!(core::mem::offset_of!(UserContext, tpidrro_el0) == OFFSET_TPIDRRO);
const _: () = assert!(core::mem::size_of::<UserContext>() == CONTEXT_WORDS * 8);

/// A register of the saved context, as a word index into [`UserContext`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reg(pub u8);

impl Reg {
    pub const X0: Reg = Reg(0);
    pub const X1: Reg = Reg(1);
    pub const X6: Reg = Reg(6);
    pub const X7: Reg = Reg(7);
    pub const X8: Reg = Reg(8);
    pub const SP: Reg = Reg(31);
    /// ELR: where the thread resumes (seL4's `NextIP`).
    pub const NEXT_IP: Reg = Reg(32);
    pub const SPSR: Reg = Reg(33);
    pub const FAULT_IP: Reg = Reg(34);
    pub const TPIDR_EL0: Reg = Reg(35);
    pub const TPIDRRO_EL0: Reg = Reg(36);

    /// x0: the cap invoked or received on, and the badge delivered.
    pub const CAP: Reg = Reg::X0;
    pub const BADGE: Reg = Reg::X0;
    /// x1: the message info word.
    pub const MSG_INFO: Reg = Reg::X1;
    /// x6: the reply object of Recv-like calls (MCS).
    pub const REPLY: Reg = Reg::X6;
    /// x8: the destination of NBSendRecv (MCS).
    pub const NB_SEND_RECV_DEST: Reg = Reg::X8;
    /// The thread-local storage base register (`TPIDR_EL0` here).
    pub const TLS_BASE: Reg = Reg::TPIDR_EL0;

    /// Byte offset of the register in a [`UserContext`].
    pub const fn offset(self) -> u64 {
        self.0 as u64 * 8
    }
}

/// Message registers held in machine registers: MR0..MR3 are x2..x5.
pub const MSG_REGISTERS: [Reg; 4] = [Reg(2), Reg(3), Reg(4), Reg(5)];

/// The first part of the Read/WriteRegisters order ("frame" registers).
pub const FRAME_REGISTERS: [Reg; 17] = [
    Reg::FAULT_IP,
    Reg::SP,
    Reg::SPSR,
    Reg(0),
    Reg(1),
    Reg(2),
    Reg(3),
    Reg(4),
    Reg(5),
    Reg(6),
    Reg(7),
    Reg(8),
    Reg(16),
    Reg(17),
    Reg(18),
    Reg(29),
    Reg(30),
];

/// The second part of the Read/WriteRegisters order ("integer" registers).
pub const GP_REGISTERS: [Reg; 19] = [
    Reg(9),
    Reg(10),
    Reg(11),
    Reg(12),
    Reg(13),
    Reg(14),
    Reg(15),
    Reg(19),
    Reg(20),
    Reg(21),
    Reg(22),
    Reg(23),
    Reg(24),
    Reg(25),
    Reg(26),
    Reg(27),
    Reg(28),
    Reg::TPIDR_EL0,
    Reg::TPIDRRO_EL0,
];

/// UnknownSyscall fault message (before the syscall number) and the
/// registers a reply to it writes back.
pub const SYSCALL_MESSAGE: [Reg; 12] = [
    Reg(0),
    Reg(1),
    Reg(2),
    Reg(3),
    Reg(4),
    Reg(5),
    Reg(6),
    Reg(7),
    Reg::FAULT_IP,
    Reg::SP,
    Reg::NEXT_IP,
    Reg::SPSR,
];

/// UserException fault message (before number and code) and reply order.
pub const EXCEPTION_MESSAGE: [Reg; 3] = [Reg::FAULT_IP, Reg::SP, Reg::SPSR];

/// The registers a reply to a Timeout fault writes back, in order.
pub const TIMEOUT_REPLY_MESSAGE: [Reg; 34] = [
    Reg::FAULT_IP,
    Reg::SP,
    Reg::SPSR,
    Reg(0),
    Reg(1),
    Reg(2),
    Reg(3),
    Reg(4),
    Reg(5),
    Reg(6),
    Reg(7),
    Reg(8),
    Reg(16),
    Reg(17),
    Reg(18),
    Reg(29),
    Reg(30),
    Reg(9),
    Reg(10),
    Reg(11),
    Reg(12),
    Reg(13),
    Reg(14),
    Reg(15),
    Reg(19),
    Reg(20),
    Reg(21),
    Reg(22),
    Reg(23),
    Reg(24),
    Reg(25),
    Reg(26),
    Reg(27),
    Reg(28),
];

/// PSTATE field values of SPSR (ARM ARM C5.2.19).
pub mod pstate {
    pub const EL0T: u64 = 0;
    pub const EL1T: u64 = 4;
    pub const EL1H: u64 = 5;
    /// The condition flags N, Z, C, V.
    pub const NZCV: u64 = 0xf000_0000;
    /// The exception level and stack pointer selection field.
    pub const MODE: u64 = 0x1f;
}

/// SPSR of a new thread: EL0 with FIQs masked, and SError masked too
/// outside the debug configuration (seL4's `PSTATE_USER`).
pub const SPSR_USER: u64 = septa_abi::kernel_config::PSTATE_USER;

/// What WriteRegisters and fault replies may put in SPSR (seL4's
/// `sanitiseRegister`): only the condition flags of the value survive for
/// a native thread; a thread with a VCPU may also pick EL0t, EL1t or EL1h.
#[inline(never)]
pub fn sanitise_register(reg: Reg, value: u64, has_vcpu: bool) -> u64 {
    if reg != Reg::SPSR {
        return value;
    }
    if has_vcpu
        && matches!(
            value & pstate::MODE,
            pstate::EL0T | pstate::EL1T | pstate::EL1H
        )
    {
        return value;
    }
    (value & pstate::NZCV) | SPSR_USER
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_tables_follow_the_abi_order() {
        // pc, sp, spsr, x0-x8, x16, x17, x18, x29, x30, x9-x15, x19-x28, tpidr, tpidrro.
        let all: Vec<u8> = FRAME_REGISTERS
            .iter()
            .chain(GP_REGISTERS.iter())
            .map(|r| r.0)
            .collect();
        let mut want = vec![34, 31, 33, 0, 1, 2, 3, 4, 5, 6, 7, 8, 16, 17, 18, 29, 30];
        want.extend([9, 10, 11, 12, 13, 14, 15]);
        want.extend(19..=28);
        want.extend([35, 36]);
        assert_eq!(all, want);
        assert_eq!(all.len(), septa_abi::TCB_REGISTER_COUNT);
        // Every general register and the special ones appear exactly once.
        let mut sorted = all.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 36);
        assert!(!sorted.contains(&32), "NextIP is not user visible");
    }

    #[test]
    fn spsr_keeps_only_flags_for_native_threads() {
        let v = 0xf000_03c5;
        assert_eq!(
            sanitise_register(Reg::SPSR, v, false),
            0xf000_0000 | SPSR_USER
        );
        assert_eq!(sanitise_register(Reg::SPSR, v, true), v);
        assert_eq!(sanitise_register(Reg::SPSR, 0x3c9, true), SPSR_USER);
        // FIQs masked; SError too outside the debug configuration.
        let serror = if septa_abi::CONFIG.debug_build() {
            0
        } else {
            0x100
        };
        assert_eq!(SPSR_USER, 0x40 | serror);
        assert_eq!(sanitise_register(Reg(3), v, false), v);
    }
}
