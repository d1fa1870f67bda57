//! The user register context a thread is stopped with.
//!
//! The exception entry code stores straight into this block (its layout is
//! part of the assembly in `arch::aarch64::entry`), and Read/WriteRegisters
//! convert between it and the seL4 register order.

/// Saved EL0/EL1 general register state of a thread.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UserContext {
    /// x0..x30.
    pub x: [u64; 31],
    /// SP_EL0.
    pub sp: u64,
    /// The address the thread resumes at (ELR_EL2).
    pub pc: u64,
    /// The saved program status (SPSR_EL2).
    pub spsr: u64,
    pub tpidr_el0: u64,
    pub tpidrro_el0: u64,
}

/// Byte offsets used by the entry assembly; checked here so the two agree.
pub const OFFSET_SP: usize = 248;
pub const OFFSET_PC: usize = 256;
pub const OFFSET_TPIDRRO: usize = 280;
const _: () = assert!(core::mem::offset_of!(UserContext, sp) == OFFSET_SP);
const _: () = assert!(core::mem::offset_of!(UserContext, pc) == OFFSET_PC);
const _: () = assert!(core::mem::offset_of!(UserContext, tpidrro_el0) == OFFSET_TPIDRRO);

/// SPSR for a thread at EL0 using SP_EL0, interrupts unmasked.
pub const SPSR_EL0: u64 = 0;

impl UserContext {
    /// The register for system-call argument `n` (x0..x7 and x8 for NBSendRecv).
    pub fn arg(&self, n: usize) -> u64 {
        self.x[n]
    }
}
