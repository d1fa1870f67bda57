//! Errors of invocations, with the detail words the kernel sends along.
//!
//! A failed invocation comes back with the error code in the message label
//! and its details in the message registers (seL4 `setMRs_syscall_error`):
//! InvalidArgument and InvalidCapability name the argument in MR0,
//! RangeError gives min and max in MR0 and MR1, FailedLookup says in MR0
//! whether the source cap failed and describes the lookup failure from MR1
//! on, NotEnoughMemory gives the bytes available in MR0.

use septa_abi::{Error as Code, LookupFailureType};

/// Why a capability lookup failed (in a FailedLookup error or a CapFault).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LookupFailure {
    #[error("no failure")]
    NoFailure,
    #[error("invalid root")]
    InvalidRoot,
    #[error("missing capability ({bits_left} bits left)")]
    MissingCapability { bits_left: u64 },
    #[error("depth mismatch ({bits_left} bits left, {bits_found} bits found)")]
    DepthMismatch { bits_left: u64, bits_found: u64 },
    #[error(
        "guard mismatch ({bits_left} bits left, guard {guard_found:#x} of {bits_found} bits found)"
    )]
    GuardMismatch {
        bits_left: u64,
        guard_found: u64,
        bits_found: u64,
    },
    #[error("unknown lookup failure type {0}")]
    Unknown(u64),
}

impl LookupFailure {
    /// Decodes a lookup failure whose type word is message register
    /// `offset`, its details in the registers after it.
    pub fn decode(mr: impl Fn(usize) -> u64, offset: usize) -> Self {
        let ty = mr(offset);
        let arg = |i| mr(offset + i);
        match ty {
            t if t == LookupFailureType::NoFailure as u64 => LookupFailure::NoFailure,
            t if t == LookupFailureType::InvalidRoot as u64 => LookupFailure::InvalidRoot,
            t if t == LookupFailureType::MissingCapability as u64 => {
                LookupFailure::MissingCapability { bits_left: arg(1) }
            }
            t if t == LookupFailureType::DepthMismatch as u64 => LookupFailure::DepthMismatch {
                bits_left: arg(1),
                bits_found: arg(2),
            },
            t if t == LookupFailureType::GuardMismatch as u64 => LookupFailure::GuardMismatch {
                bits_left: arg(1),
                guard_found: arg(2),
                bits_found: arg(3),
            },
            other => LookupFailure::Unknown(other),
        }
    }

    /// How many message registers (type word included) this failure takes.
    pub fn words(&self) -> usize {
        match self {
            LookupFailure::NoFailure | LookupFailure::InvalidRoot | LookupFailure::Unknown(_) => 1,
            LookupFailure::MissingCapability { .. } => 2,
            LookupFailure::DepthMismatch { .. } => 3,
            LookupFailure::GuardMismatch { .. } => 4,
        }
    }
}

/// An invocation failed: the seL4 error code and its details.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("invalid argument (argument {index})")]
    InvalidArgument { index: u64 },
    #[error("invalid capability (extra cap {index})")]
    InvalidCapability { index: u64 },
    #[error("illegal operation")]
    IllegalOperation,
    #[error("range error (allowed {min}..={max})")]
    RangeError { min: u64, max: u64 },
    #[error("alignment error")]
    AlignmentError,
    #[error("failed lookup of the {} capability: {failure}", if *.was_source { "source" } else { "destination" })]
    FailedLookup {
        was_source: bool,
        failure: LookupFailure,
    },
    #[error("truncated message")]
    TruncatedMessage,
    #[error("delete first")]
    DeleteFirst,
    #[error("revoke first")]
    RevokeFirst,
    #[error("not enough memory ({available} bytes available)")]
    NotEnoughMemory { available: u64 },
    /// A label that is not an seL4 error code.
    #[error("unknown error code {0}")]
    Unknown(u64),
}

impl Error {
    /// Decodes the reply to an invocation: `None` when `label` is NoError.
    pub fn decode(label: u64, mr: impl Fn(usize) -> u64) -> Option<Self> {
        let Some(code) = Code::from_u64(label) else {
            return Some(Error::Unknown(label));
        };
        Some(match code {
            Code::NoError => return None,
            Code::InvalidArgument => Error::InvalidArgument { index: mr(0) },
            Code::InvalidCapability => Error::InvalidCapability { index: mr(0) },
            Code::IllegalOperation => Error::IllegalOperation,
            Code::RangeError => Error::RangeError {
                min: mr(0),
                max: mr(1),
            },
            Code::AlignmentError => Error::AlignmentError,
            Code::FailedLookup => Error::FailedLookup {
                was_source: mr(0) != 0,
                failure: LookupFailure::decode(&mr, 1),
            },
            Code::TruncatedMessage => Error::TruncatedMessage,
            Code::DeleteFirst => Error::DeleteFirst,
            Code::RevokeFirst => Error::RevokeFirst,
            Code::NotEnoughMemory => Error::NotEnoughMemory { available: mr(0) },
        })
    }

    /// The seL4 error code (the label of the error reply).
    pub fn code(&self) -> u64 {
        match self {
            Error::InvalidArgument { .. } => Code::InvalidArgument as u64,
            Error::InvalidCapability { .. } => Code::InvalidCapability as u64,
            Error::IllegalOperation => Code::IllegalOperation as u64,
            Error::RangeError { .. } => Code::RangeError as u64,
            Error::AlignmentError => Code::AlignmentError as u64,
            Error::FailedLookup { .. } => Code::FailedLookup as u64,
            Error::TruncatedMessage => Code::TruncatedMessage as u64,
            Error::DeleteFirst => Code::DeleteFirst as u64,
            Error::RevokeFirst => Code::RevokeFirst as u64,
            Error::NotEnoughMemory { .. } => Code::NotEnoughMemory as u64,
            Error::Unknown(code) => *code,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    fn mrs(words: &[u64]) -> impl Fn(usize) -> u64 + '_ {
        move |i| words.get(i).copied().unwrap_or(0)
    }

    #[test]
    fn no_error_is_none() {
        assert_eq!(Error::decode(0, mrs(&[7, 7])), None);
    }

    #[test]
    fn details_come_from_the_message_registers() {
        assert_eq!(
            Error::decode(1, mrs(&[3])),
            Some(Error::InvalidArgument { index: 3 })
        );
        assert_eq!(
            Error::decode(2, mrs(&[1])),
            Some(Error::InvalidCapability { index: 1 })
        );
        assert_eq!(
            Error::decode(4, mrs(&[12, 47])),
            Some(Error::RangeError { min: 12, max: 47 })
        );
        assert_eq!(
            Error::decode(10, mrs(&[4096])),
            Some(Error::NotEnoughMemory { available: 4096 })
        );
        assert_eq!(Error::decode(99, mrs(&[])), Some(Error::Unknown(99)));
    }

    #[test]
    fn failed_lookups_decode_every_failure_kind() {
        // MR0 source flag, MR1 failure type (seL4 numbering), then details.
        assert_eq!(
            Error::decode(6, mrs(&[1, 1])),
            Some(Error::FailedLookup {
                was_source: true,
                failure: LookupFailure::InvalidRoot
            })
        );
        assert_eq!(
            Error::decode(6, mrs(&[0, 2, 5])),
            Some(Error::FailedLookup {
                was_source: false,
                failure: LookupFailure::MissingCapability { bits_left: 5 }
            })
        );
        assert_eq!(
            Error::decode(6, mrs(&[0, 3, 9, 4])),
            Some(Error::FailedLookup {
                was_source: false,
                failure: LookupFailure::DepthMismatch {
                    bits_left: 9,
                    bits_found: 4
                }
            })
        );
        assert_eq!(
            Error::decode(6, mrs(&[1, 4, 20, 0x3, 2])),
            Some(Error::FailedLookup {
                was_source: true,
                failure: LookupFailure::GuardMismatch {
                    bits_left: 20,
                    guard_found: 3,
                    bits_found: 2
                }
            })
        );
    }

    #[test]
    fn codes_round_trip() {
        for code in 1..=10u64 {
            let e = Error::decode(code, mrs(&[0, 1])).unwrap();
            assert_eq!(e.code(), code);
        }
    }

    #[test]
    fn errors_read_well() {
        let e = Error::FailedLookup {
            was_source: true,
            failure: LookupFailure::MissingCapability { bits_left: 3 },
        };
        assert_eq!(
            e.to_string(),
            "failed lookup of the source capability: missing capability (3 bits left)"
        );
    }
}
