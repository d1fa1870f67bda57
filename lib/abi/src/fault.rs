//! Fault message labels and layouts (MCS, hyp).

pub const NULL_FAULT: u64 = 0;
pub const CAP_FAULT: u64 = 1;
pub const UNKNOWN_SYSCALL: u64 = 2;
pub const USER_EXCEPTION: u64 = 3;
pub const DEBUG_EXCEPTION: u64 = 4;
pub const TIMEOUT: u64 = 5;
pub const VM_FAULT: u64 = 6;
pub const VGIC_MAINTENANCE: u64 = 7;
pub const VCPU_FAULT: u64 = 8;
pub const VPPI_EVENT: u64 = 9;

/// CapFault: IP, address, in-receive-phase, lookup failure type, details.
pub mod cap_fault {
    pub const IP: usize = 0;
    pub const ADDR: usize = 1;
    pub const IN_RECV_PHASE: usize = 2;
    pub const LOOKUP_FAILURE_TYPE: usize = 3;
    pub const BITS_LEFT: usize = 4;
    pub const DEPTH_BITS_FOUND: usize = 5;
    pub const GUARD_MISMATCH_GUARD_FOUND: usize = 5;
    pub const GUARD_MISMATCH_BITS_FOUND: usize = 6;
}

/// UnknownSyscall: x0-x7, fault IP, SP, ELR (next PC), SPSR, syscall (13).
pub mod unknown_syscall {
    pub const X0: usize = 0;
    pub const FAULT_IP: usize = 8;
    pub const SP: usize = 9;
    pub const LR: usize = 10;
    pub const SPSR: usize = 11;
    pub const SYSCALL: usize = 12;
    pub const LENGTH: u64 = 13;
}

/// UserException: fault IP, SP, SPSR, ESR, code (5).
pub mod user_exception {
    pub const FAULT_IP: usize = 0;
    pub const SP: usize = 1;
    pub const SPSR: usize = 2;
    pub const NUMBER: usize = 3;
    pub const CODE: usize = 4;
    pub const LENGTH: u64 = 5;
}

/// Timeout: scheduling context badge, consumed time in microseconds.
pub mod timeout {
    pub const DATA: usize = 0;
    pub const CONSUMED: usize = 1;
    pub const LENGTH: u64 = 2;
}

/// VMFault: IP, address, prefetch flag, FSR/ESR (4).
pub mod vm_fault {
    pub const IP: usize = 0;
    pub const ADDR: usize = 1;
    pub const PREFETCH_FAULT: usize = 2;
    pub const FSR: usize = 3;
    pub const LENGTH: u64 = 4;
}

/// DebugException (hardware debug API, debug configuration): fault IP,
/// reason, then for breakpoints and watchpoints the trigger address and
/// the breakpoint number (2 or 4 words).
pub mod debug_exception {
    pub const FAULT_IP: usize = 0;
    pub const EXCEPTION_REASON: usize = 1;
    pub const TRIGGER_ADDRESS: usize = 2;
    pub const BREAKPOINT_NUMBER: usize = 3;
    pub const LENGTH: u64 = 4;
    /// Single steps and software breaks carry only IP and reason.
    pub const SHORT_LENGTH: u64 = 2;
}
