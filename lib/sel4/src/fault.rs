//! Decoding fault messages (MCS, hyp), as a fault handler receives them.
//!
//! The label of a fault message is the fault type; its message registers
//! are laid out per type (seL4 16.0.0, `septa_abi::fault`).

use septa_abi::fault::{self as f, cap_fault, unknown_syscall, user_exception, vm_fault};
use septa_abi::MessageInfo;

use crate::error::LookupFailure;

/// A decoded fault message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Not a fault (label 0).
    Null,
    CapFault {
        ip: u64,
        addr: u64,
        in_recv_phase: bool,
        failure: LookupFailure,
    },
    UnknownSyscall {
        regs: [u64; 8],
        fault_ip: u64,
        sp: u64,
        lr: u64,
        spsr: u64,
        syscall: u64,
    },
    UserException {
        fault_ip: u64,
        sp: u64,
        spsr: u64,
        esr: u64,
        code: u64,
    },
    Timeout {
        badge: u64,
        consumed: u64,
    },
    VmFault {
        ip: u64,
        addr: u64,
        prefetch: bool,
        fsr: u64,
    },
    /// `idx` is `None` when the kernel sent -1 (no list register).
    VgicMaintenance {
        idx: Option<u64>,
    },
    VcpuFault {
        hsr: u64,
    },
    VppiEvent {
        irq: u64,
    },
    /// A breakpoint, watchpoint, single step or `brk` (hardware debug API,
    /// debug configuration). `trigger` and `number` are 0 for single steps
    /// and software breaks, whose message is two words.
    DebugException {
        fault_ip: u64,
        reason: u64,
        trigger: u64,
        number: u64,
    },
    /// A label no configuration produces.
    Other {
        label: u64,
    },
}

impl Fault {
    /// Decodes a fault from its info and message registers.
    pub fn decode(info: MessageInfo, mr: impl Fn(usize) -> u64) -> Fault {
        match info.label() {
            f::NULL_FAULT => Fault::Null,
            f::CAP_FAULT => Fault::CapFault {
                ip: mr(cap_fault::IP),
                addr: mr(cap_fault::ADDR),
                in_recv_phase: mr(cap_fault::IN_RECV_PHASE) != 0,
                failure: LookupFailure::decode(&mr, cap_fault::LOOKUP_FAILURE_TYPE),
            },
            f::UNKNOWN_SYSCALL => Fault::UnknownSyscall {
                regs: core::array::from_fn(|i| mr(unknown_syscall::X0 + i)),
                fault_ip: mr(unknown_syscall::FAULT_IP),
                sp: mr(unknown_syscall::SP),
                lr: mr(unknown_syscall::LR),
                spsr: mr(unknown_syscall::SPSR),
                syscall: mr(unknown_syscall::SYSCALL),
            },
            f::USER_EXCEPTION => Fault::UserException {
                fault_ip: mr(user_exception::FAULT_IP),
                sp: mr(user_exception::SP),
                spsr: mr(user_exception::SPSR),
                esr: mr(user_exception::NUMBER),
                code: mr(user_exception::CODE),
            },
            f::TIMEOUT => Fault::Timeout {
                badge: mr(f::timeout::DATA),
                consumed: mr(f::timeout::CONSUMED),
            },
            f::VM_FAULT => Fault::VmFault {
                ip: mr(vm_fault::IP),
                addr: mr(vm_fault::ADDR),
                prefetch: mr(vm_fault::PREFETCH_FAULT) != 0,
                fsr: mr(vm_fault::FSR),
            },
            f::VGIC_MAINTENANCE => {
                let idx = mr(0);
                Fault::VgicMaintenance {
                    idx: (idx != u64::MAX).then_some(idx),
                }
            }
            f::VCPU_FAULT => Fault::VcpuFault { hsr: mr(0) },
            f::VPPI_EVENT => Fault::VppiEvent { irq: mr(0) },
            f::DEBUG_EXCEPTION => {
                let long = info.length() >= f::debug_exception::LENGTH;
                let word = |i| if long { mr(i) } else { 0 };
                Fault::DebugException {
                    fault_ip: mr(f::debug_exception::FAULT_IP),
                    reason: mr(f::debug_exception::EXCEPTION_REASON),
                    trigger: word(f::debug_exception::TRIGGER_ADDRESS),
                    number: word(f::debug_exception::BREAKPOINT_NUMBER),
                }
            }
            label => Fault::Other { label },
        }
    }

    /// Decodes the fault just received, its registers in the IPC buffer.
    pub fn from_ipc_buffer(info: MessageInfo) -> Fault {
        Fault::decode(info, crate::ipc_buffer::get_mr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(label: u64, words: &[u64]) -> Fault {
        let info = MessageInfo::new(label, 0, 0, words.len() as u64);
        Fault::decode(info, |i| words.get(i).copied().unwrap_or(0))
    }

    #[test]
    fn user_exception_and_vm_fault() {
        assert_eq!(
            decode(3, &[0x20_0040, 0xff_ffff_d000, 0x0, 0x0200_0000, 0]),
            Fault::UserException {
                fault_ip: 0x20_0040,
                sp: 0xff_ffff_d000,
                spsr: 0,
                esr: 0x0200_0000,
                code: 0
            }
        );
        assert_eq!(
            decode(6, &[0x20_0100, 0x10, 0, 0x9200_0046]),
            Fault::VmFault {
                ip: 0x20_0100,
                addr: 0x10,
                prefetch: false,
                fsr: 0x9200_0046
            }
        );
    }

    #[test]
    fn cap_fault_carries_a_lookup_failure() {
        assert_eq!(
            decode(1, &[0x20_0000, 0x99, 1, 2, 7]),
            Fault::CapFault {
                ip: 0x20_0000,
                addr: 0x99,
                in_recv_phase: true,
                failure: LookupFailure::MissingCapability { bits_left: 7 }
            }
        );
    }

    #[test]
    fn unknown_syscall_has_thirteen_words() {
        let words: [u64; 13] = core::array::from_fn(|i| i as u64 + 1);
        match decode(2, &words) {
            Fault::UnknownSyscall {
                regs,
                fault_ip,
                syscall,
                ..
            } => {
                assert_eq!(regs, [1, 2, 3, 4, 5, 6, 7, 8]);
                assert_eq!((fault_ip, syscall), (9, 13));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn small_faults() {
        assert_eq!(
            decode(5, &[3, 1200]),
            Fault::Timeout {
                badge: 3,
                consumed: 1200
            }
        );
        assert_eq!(decode(7, &[u64::MAX]), Fault::VgicMaintenance { idx: None });
        assert_eq!(decode(7, &[2]), Fault::VgicMaintenance { idx: Some(2) });
        assert_eq!(
            decode(8, &[0x5e00_0000]),
            Fault::VcpuFault { hsr: 0x5e00_0000 }
        );
        assert_eq!(decode(9, &[27]), Fault::VppiEvent { irq: 27 });
        assert_eq!(
            decode(4, &[0x20_0000, 3]),
            Fault::DebugException {
                fault_ip: 0x20_0000,
                reason: 3,
                trigger: 0,
                number: 0
            }
        );
        assert_eq!(
            decode(4, &[0x20_0000, 0, 0x30_0008, 6]),
            Fault::DebugException {
                fault_ip: 0x20_0000,
                reason: 0,
                trigger: 0x30_0008,
                number: 6
            }
        );
        assert_eq!(decode(10, &[]), Fault::Other { label: 10 });
        assert_eq!(decode(0, &[]), Fault::Null);
    }
}
