//! # Errors of invocations and lookups, as seL4 reports them
//!
//! seL4 keeps the error of the current system call in globals
//! (`current_syscall_error`, `current_lookup_fault`) and writes them into the
//! caller's message registers on the way out. Septa returns them as values
//! instead: [`SyscallError`] carries exactly the details seL4 puts in the
//! message registers, and [`SyscallError::reply`] lays them out in the order
//! the reference manual gives (the error number goes in the reply's label).
//!
//! [`LookupFault`] is the lookup failure of a capability address, used both
//! in a `FailedLookup` error and in a cap fault message.
//!
//! [`Exception`] is what an invocation returns when it does not succeed:
//! either an error for the caller, or a preemption, after which the caller
//! stays in the Restart state and re-executes the same system call later.

use septa_abi::{Error, LookupFailureType};

/// Why a capability address did not resolve (seL4's `lookup_fault`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupFault {
    /// The root of the lookup is not a CNode cap.
    InvalidRoot,
    /// The addressed slot is empty (or not what was needed).
    MissingCapability { bits_left: u64 },
    /// The address ran out of bits in the middle of a CNode, or had bits
    /// left over where none may remain.
    DepthMismatch { bits_left: u64, bits_found: u64 },
    /// The guard of a CNode cap does not match the address. `guard_found`
    /// is the guard stored in the cap, `bits_found` its size.
    GuardMismatch {
        bits_left: u64,
        guard_found: u64,
        bits_found: u64,
    },
}

impl LookupFault {
    /// The failure type number seL4 reports (`seL4_LookupFailureType`).
    pub fn failure_type(&self) -> LookupFailureType {
        match self {
            LookupFault::InvalidRoot => LookupFailureType::InvalidRoot,
            LookupFault::MissingCapability { .. } => LookupFailureType::MissingCapability,
            LookupFault::DepthMismatch { .. } => LookupFailureType::DepthMismatch,
            LookupFault::GuardMismatch { .. } => LookupFailureType::GuardMismatch,
        }
    }

    /// Writes the failure type and its details into `out` (the layout of
    /// both a `FailedLookup` error after its first word and a cap fault after
    /// its third); returns how many words were written.
    #[inline(never)]
    pub fn write_words(&self, out: &mut [u64]) -> usize {
        out[0] = self.failure_type() as u64;
        match *self {
            LookupFault::InvalidRoot => 1,
            LookupFault::MissingCapability { bits_left } => {
                out[1] = bits_left;
                2
            }
            LookupFault::DepthMismatch {
                bits_left,
                bits_found,
            } => {
                out[1] = bits_left;
                out[2] = bits_found;
                3
            }
            LookupFault::GuardMismatch {
                bits_left,
                guard_found,
                bits_found,
            } => {
                out[1] = bits_left;
                out[2] = guard_found;
                out[3] = bits_found;
                4
            }
        }
    }
}

/// An error returned to the invoker (seL4's `syscall_error`), with the
/// details that go into its message registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyscallError {
    /// MR0 = index of the bad argument.
    InvalidArgument {
        index: u64,
    },
    /// MR0 = index of the bad cap (0 = the invoked cap, then the extra caps).
    InvalidCapability {
        index: u64,
    },
    IllegalOperation,
    /// MR0 = smallest allowed value, MR1 = largest.
    RangeError {
        min: u64,
        max: u64,
    },
    AlignmentError,
    /// MR0 = 1 if the source (or pivot) lookup failed, 0 for the
    /// destination; then the lookup failure.
    FailedLookup {
        source: bool,
        fault: LookupFault,
    },
    TruncatedMessage,
    DeleteFirst,
    RevokeFirst,
    /// MR0 = bytes left in the untyped.
    NotEnoughMemory {
        available: u64,
    },
}

/// Most message registers an error reply uses: FailedLookup with a guard
/// mismatch (source flag, type, bits left, guard found, bits found).
pub const ERROR_MAX_WORDS: usize = 5;

/// An error laid out for the reply: label and message registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorReply {
    pub error: Error,
    pub mrs: [u64; ERROR_MAX_WORDS],
    pub len: usize,
}

impl ErrorReply {
    /// The message registers that are set.
    pub fn words(&self) -> &[u64] {
        &self.mrs[..self.len]
    }
}

impl SyscallError {
    /// The error number (the label of the reply).
    pub fn error(&self) -> Error {
        match self {
            SyscallError::InvalidArgument { .. } => Error::InvalidArgument,
            SyscallError::InvalidCapability { .. } => Error::InvalidCapability,
            SyscallError::IllegalOperation => Error::IllegalOperation,
            SyscallError::RangeError { .. } => Error::RangeError,
            SyscallError::AlignmentError => Error::AlignmentError,
            SyscallError::FailedLookup { .. } => Error::FailedLookup,
            SyscallError::TruncatedMessage => Error::TruncatedMessage,
            SyscallError::DeleteFirst => Error::DeleteFirst,
            SyscallError::RevokeFirst => Error::RevokeFirst,
            SyscallError::NotEnoughMemory { .. } => Error::NotEnoughMemory,
        }
    }

    /// The reply seL4 sends for this error: label and message registers.
    pub fn reply(&self) -> ErrorReply {
        let mut mrs = [0u64; ERROR_MAX_WORDS];
        let len = match *self {
            SyscallError::InvalidArgument { index } | SyscallError::InvalidCapability { index } => {
                mrs[0] = index;
                1
            }
            SyscallError::RangeError { min, max } => {
                mrs[0] = min;
                mrs[1] = max;
                2
            }
            SyscallError::FailedLookup { source, fault } => {
                mrs[0] = source as u64;
                1 + fault.write_words(&mut mrs[1..])
            }
            SyscallError::NotEnoughMemory { available } => {
                mrs[0] = available;
                1
            }
            SyscallError::IllegalOperation
            | SyscallError::AlignmentError
            | SyscallError::TruncatedMessage
            | SyscallError::DeleteFirst
            | SyscallError::RevokeFirst => 0,
        };
        ErrorReply {
            error: self.error(),
            mrs,
            len,
        }
    }
}

/// The current operation was preempted by a pending interrupt (or an
/// exhausted budget); the caller re-executes it from the start later, and
/// the work already done is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preempted;

/// How an invocation can end other than in success.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exception {
    /// Reply to the caller with this error (if it called).
    Syscall(SyscallError),
    /// Leave the caller in Restart: it re-runs the call once resumed.
    Preempted,
}

impl From<SyscallError> for Exception {
    fn from(e: SyscallError) -> Self {
        Exception::Syscall(e)
    }
}

impl From<Preempted> for Exception {
    fn from(_: Preempted) -> Self {
        Exception::Preempted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_lookup_lays_out_the_source_flag_then_the_failure() {
        let e = SyscallError::FailedLookup {
            source: true,
            fault: LookupFault::GuardMismatch {
                bits_left: 60,
                guard_found: 5,
                bits_found: 3,
            },
        };
        let r = e.reply();
        assert_eq!(r.error, Error::FailedLookup);
        assert_eq!(
            r.words(),
            &[1, LookupFailureType::GuardMismatch as u64, 60, 5, 3]
        );
        let e = SyscallError::FailedLookup {
            source: false,
            fault: LookupFault::DepthMismatch {
                bits_left: 7,
                bits_found: 9,
            },
        };
        assert_eq!(e.reply().words(), &[0, 3, 7, 9]);
        let e = SyscallError::FailedLookup {
            source: false,
            fault: LookupFault::InvalidRoot,
        };
        assert_eq!(e.reply().words(), &[0, 1]);
        let e = SyscallError::FailedLookup {
            source: true,
            fault: LookupFault::MissingCapability { bits_left: 12 },
        };
        assert_eq!(e.reply().words(), &[1, 2, 12]);
    }

    #[test]
    fn other_errors_carry_their_documented_details() {
        assert_eq!(
            SyscallError::RangeError { min: 1, max: 256 }
                .reply()
                .words(),
            &[1, 256]
        );
        assert_eq!(
            SyscallError::InvalidArgument { index: 1 }.reply().words(),
            &[1]
        );
        assert_eq!(
            SyscallError::NotEnoughMemory { available: 4096 }
                .reply()
                .words(),
            &[4096]
        );
        let r = SyscallError::DeleteFirst.reply();
        assert_eq!((r.error as u64, r.len), (8, 0));
        assert_eq!(SyscallError::RevokeFirst.error() as u64, 9);
    }
}
