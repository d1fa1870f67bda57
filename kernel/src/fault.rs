//! # Faults: what a thread is stopped with, and its message
//!
//! A thread that faults is blocked sending a fault message to its fault
//! handler: the endpoint cap in its TCB's fault-handler slot (MCS). The
//! message's label is the fault type and its words follow the layouts of
//! the ABI (`septa_abi::fault`). The handler's reply decides what happens:
//! for UnknownSyscall, UserException and Timeout a label-0 reply restarts
//! the thread and writes the reply's words back into its registers (in the
//! order of the fault message); other faults always restart. A thread with
//! no handler is made inactive, with a line on the kernel console, as seL4
//! does.
//!
//! Timeout faults go to the timeout handler instead (the TCB's timeout
//! slot), when a thread's scheduling context runs out of budget and the
//! thread has one.
//!
//! The fault is stored in the TCB (four words, plus four for a cap fault's
//! lookup failure) while it is delivered and until the reply.

use crate::cap::Cap;
use crate::context::{
    sanitise_register, Reg, EXCEPTION_MESSAGE, MSG_REGISTERS, SYSCALL_MESSAGE,
    TIMEOUT_REPLY_MESSAGE,
};
use crate::error::LookupFault;
use crate::ipc::{self, lookup_ipc_buffer, message_info, set_buffer_word, set_mr, N_MSG_REGISTERS};
use crate::object::endpoint::{self, Ep};
use crate::object::sched_context;
use crate::object::tcb::{self, Tcb, ThreadState};
use crate::sched;
use septa_abi::fault as abi;

/// A fault, as seL4's `seL4_Fault_t` (with the lookup failure of a cap
/// fault inside).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Null,
    Cap {
        address: u64,
        in_receive_phase: bool,
        lookup: LookupFault,
    },
    UnknownSyscall {
        number: u64,
    },
    /// `number` is the ESR (32 bits), `code` 0 on this architecture.
    UserException {
        number: u64,
        code: u64,
    },
    Timeout {
        badge: u64,
    },
    /// `fsr` is the ESR (32 bits).
    Vm {
        address: u64,
        fsr: u64,
        instruction: bool,
    },
    VgicMaintenance {
        idx: Option<u64>,
    },
    Vcpu {
        hsr: u64,
    },
    VppiEvent {
        irq: u64,
    },
    /// A breakpoint, watchpoint, single step or `brk` (hardware debug API):
    /// `reason` as `septa_abi::hardware_debug`, the trigger `address` and
    /// breakpoint `number`.
    Debug {
        address: u64,
        number: u64,
        reason: u64,
    },
}

const WORD32: u64 = 0xffff_ffff;

impl Fault {
    /// The message label (seL4's fault type number).
    pub fn label(&self) -> u64 {
        match self {
            Fault::Null => abi::NULL_FAULT,
            Fault::Cap { .. } => abi::CAP_FAULT,
            Fault::UnknownSyscall { .. } => abi::UNKNOWN_SYSCALL,
            Fault::UserException { .. } => abi::USER_EXCEPTION,
            Fault::Timeout { .. } => abi::TIMEOUT,
            Fault::Vm { .. } => abi::VM_FAULT,
            Fault::VgicMaintenance { .. } => abi::VGIC_MAINTENANCE,
            Fault::Vcpu { .. } => abi::VCPU_FAULT,
            Fault::VppiEvent { .. } => abi::VPPI_EVENT,
            Fault::Debug { .. } => abi::DEBUG_EXCEPTION,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Fault::Null)
    }

    pub fn is_timeout(&self) -> bool {
        matches!(self, Fault::Timeout { .. })
    }

    /// The stored form: fault words and lookup-failure words.
    pub fn encode(&self) -> ([u64; 4], [u64; 4]) {
        let mut l = [0u64; 4];
        let w = match *self {
            Fault::Null => [0; 4],
            Fault::Cap {
                address,
                in_receive_phase,
                lookup,
            } => {
                lookup.write_words(&mut l);
                [abi::CAP_FAULT, address, in_receive_phase as u64, 0]
            }
            Fault::UnknownSyscall { number } => [abi::UNKNOWN_SYSCALL, number, 0, 0],
            Fault::UserException { number, code } => {
                [abi::USER_EXCEPTION, number & WORD32, code & 0x0fff_ffff, 0]
            }
            Fault::Timeout { badge } => [abi::TIMEOUT, badge, 0, 0],
            Fault::Vm {
                address,
                fsr,
                instruction,
            } => [abi::VM_FAULT, address, fsr & WORD32, instruction as u64],
            Fault::VgicMaintenance { idx } => [
                abi::VGIC_MAINTENANCE,
                idx.unwrap_or(0) & 0x3f,
                idx.is_some() as u64,
                0,
            ],
            Fault::Vcpu { hsr } => [abi::VCPU_FAULT, hsr & WORD32, 0, 0],
            Fault::VppiEvent { irq } => [abi::VPPI_EVENT, irq & 0x1ff, 0, 0],
            Fault::Debug {
                address,
                number,
                reason,
            } => [abi::DEBUG_EXCEPTION, address, number & 0xf, reason & 0xf],
        };
        (w, l)
    }

    /// Reads back what [`Self::encode`] stored.
    pub fn decode(w: [u64; 4], l: [u64; 4]) -> Fault {
        match w[0] {
            abi::CAP_FAULT => Fault::Cap {
                address: w[1],
                in_receive_phase: w[2] != 0,
                lookup: match l[0] {
                    2 => LookupFault::MissingCapability { bits_left: l[1] },
                    3 => LookupFault::DepthMismatch {
                        bits_left: l[1],
                        bits_found: l[2],
                    },
                    4 => LookupFault::GuardMismatch {
                        bits_left: l[1],
                        guard_found: l[2],
                        bits_found: l[3],
                    },
                    _ => LookupFault::InvalidRoot,
                },
            },
            abi::UNKNOWN_SYSCALL => Fault::UnknownSyscall { number: w[1] },
            abi::USER_EXCEPTION => Fault::UserException {
                number: w[1],
                code: w[2],
            },
            abi::TIMEOUT => Fault::Timeout { badge: w[1] },
            abi::VM_FAULT => Fault::Vm {
                address: w[1],
                fsr: w[2],
                instruction: w[3] != 0,
            },
            abi::VGIC_MAINTENANCE => Fault::VgicMaintenance {
                idx: (w[2] != 0).then_some(w[1]),
            },
            abi::VCPU_FAULT => Fault::Vcpu { hsr: w[1] },
            abi::VPPI_EVENT => Fault::VppiEvent { irq: w[1] },
            abi::DEBUG_EXCEPTION => Fault::Debug {
                address: w[1],
                number: w[2],
                reason: w[3],
            },
            _ => Fault::Null,
        }
    }
}

/// Copies registers of the faulting `sender` into the handler's message,
/// the first four into machine registers (seL4's `copyMRsFault`).
fn copy_mrs_fault(sender: Tcb, receiver: Tcb, regs: &[Reg], buf: Option<u64>) {
    for (i, &r) in regs.iter().enumerate() {
        let v = sender.reg(r);
        if i < N_MSG_REGISTERS {
            receiver.set_reg(MSG_REGISTERS[i], v);
        } else if let Some(b) = buf {
            set_buffer_word(b, i + 1, v);
        }
    }
}

/// Writes the fault message of `sender`'s fault `f` for `receiver`;
/// returns its length (seL4's `setMRs_fault`).
///
/// Out of line (see the crate header): inlined into `do_ipc_transfer` it
/// slowed every IPC, faults or not.
#[inline(never)]
pub fn set_mrs_fault(f: &Fault, sender: Tcb, receiver: Tcb, buf: Option<u64>) -> usize {
    match *f {
        Fault::Cap {
            address,
            in_receive_phase,
            lookup,
        } => {
            set_mr(receiver, buf, abi::cap_fault::IP, sender.restart_pc());
            set_mr(receiver, buf, abi::cap_fault::ADDR, address);
            set_mr(
                receiver,
                buf,
                abi::cap_fault::IN_RECV_PHASE,
                in_receive_phase as u64,
            );
            ipc::set_mrs_lookup_failure(receiver, buf, &lookup, abi::cap_fault::LOOKUP_FAILURE_TYPE)
        }
        Fault::UnknownSyscall { number } => {
            copy_mrs_fault(sender, receiver, &SYSCALL_MESSAGE, buf);
            set_mr(receiver, buf, abi::unknown_syscall::SYSCALL, number)
        }
        Fault::UserException { number, code } => {
            copy_mrs_fault(sender, receiver, &EXCEPTION_MESSAGE, buf);
            set_mr(receiver, buf, abi::user_exception::NUMBER, number);
            set_mr(receiver, buf, abi::user_exception::CODE, code)
        }
        Fault::Timeout { badge } => match sched::sc_of(sender) {
            Some(sc) => {
                let consumed = sched_context::update_consumed(sc);
                let len = set_mr(receiver, buf, abi::timeout::DATA, badge);
                set_mr(receiver, buf, len, consumed)
            }
            None => set_mr(receiver, buf, abi::timeout::DATA, badge),
        },
        Fault::Vm {
            address,
            fsr,
            instruction,
        } => {
            set_mr(receiver, buf, abi::vm_fault::IP, sender.restart_pc());
            set_mr(receiver, buf, abi::vm_fault::ADDR, address);
            set_mr(
                receiver,
                buf,
                abi::vm_fault::PREFETCH_FAULT,
                instruction as u64,
            );
            set_mr(receiver, buf, abi::vm_fault::FSR, fsr)
        }
        Fault::VgicMaintenance { idx } => set_mr(receiver, buf, 0, idx.unwrap_or(u64::MAX)),
        Fault::Vcpu { hsr } => set_mr(receiver, buf, 0, hsr),
        Fault::VppiEvent { irq } => set_mr(receiver, buf, 0, irq),
        Fault::Debug {
            address,
            number,
            reason,
        } => {
            use abi::debug_exception as m;
            use septa_abi::hardware_debug::{SINGLE_STEP, SOFTWARE_BREAK_REQUEST};
            set_mr(receiver, buf, m::FAULT_IP, sender.restart_pc());
            let len = set_mr(receiver, buf, m::EXCEPTION_REASON, reason);
            if reason == SINGLE_STEP || reason == SOFTWARE_BREAK_REQUEST {
                return len;
            }
            set_mr(receiver, buf, m::TRIGGER_ADDRESS, address);
            set_mr(receiver, buf, m::BREAKPOINT_NUMBER, number)
        }
        Fault::Null => 0,
    }
}

/// Writes a fault reply's words back into the faulted `receiver`'s
/// registers, in the order of `regs` (seL4's `copyMRsFaultReply`).
fn copy_mrs_fault_reply(sender: Tcb, receiver: Tcb, regs: &[Reg], length: usize) {
    let has_vcpu = receiver.vcpu() != 0;
    let n = length.min(regs.len());
    let mut i = 0;
    while i < n && i < N_MSG_REGISTERS {
        let r = regs[i];
        receiver.set_reg(
            r,
            sanitise_register(r, sender.reg(MSG_REGISTERS[i]), has_vcpu),
        );
        i += 1;
    }
    if i < n {
        if let Some(b) = lookup_ipc_buffer(false, sender) {
            while i < n {
                let r = regs[i];
                let v = ipc::buffer_word(b, i + 1);
                receiver.set_reg(r, sanitise_register(r, v, has_vcpu));
                i += 1;
            }
        }
    }
}

/// Applies the handler's reply to a faulted thread; returns whether the
/// thread restarts (seL4's `handleFaultReply`).
pub fn handle_fault_reply(f: &Fault, receiver: Tcb, sender: Tcb) -> bool {
    let tag = message_info(sender.reg(Reg::MSG_INFO));
    let (label, length) = (tag.label(), tag.length() as usize);
    match f {
        Fault::UnknownSyscall { .. } => {
            copy_mrs_fault_reply(sender, receiver, &SYSCALL_MESSAGE, length);
            label == 0
        }
        Fault::UserException { .. } => {
            copy_mrs_fault_reply(sender, receiver, &EXCEPTION_MESSAGE, length);
            label == 0
        }
        Fault::Timeout { .. } => {
            copy_mrs_fault_reply(sender, receiver, &TIMEOUT_REPLY_MESSAGE, length);
            label == 0
        }
        Fault::Debug { reason, .. } => {
            let mr0 = sender.reg(MSG_REGISTERS[0]);
            tcb::debug::fault_reply(*reason, receiver, label, length, mr0)
        }
        _ => true,
    }
}

/// Sends `t`'s fault to the handler cap, blocking `t`; false if there is
/// no handler (seL4's `sendFaultIPC`).
fn send_fault_ipc(t: Tcb, handler: &Cap, f: Fault, can_donate: bool) -> bool {
    let Cap::Endpoint {
        paddr,
        badge,
        can_grant,
        can_grant_reply,
        ..
    } = *handler
    else {
        return false;
    };
    t.set_fault(&f);
    endpoint::send_ipc(
        true,
        false,
        badge,
        can_grant,
        can_grant_reply,
        can_donate,
        t,
        Ep::new(paddr),
    );
    true
}

/// Delivers a fault of `t` to its fault handler, or stops `t` if it has
/// none (seL4's `handleFault`).
pub fn handle_fault(t: Tcb, f: Fault) {
    let handler = t.slot(tcb::FAULT_HANDLER).cap();
    if !send_fault_ipc(t, &handler, f, t.sched_context() != 0) {
        handle_no_fault_handler(t, &f);
    }
}

/// Delivers a timeout fault to `t`'s timeout handler (seL4's
/// `handleTimeout`).
pub fn handle_timeout(t: Tcb, f: Fault) {
    let handler = t.slot(tcb::TIMEOUT_HANDLER).cap();
    send_fault_ipc(t, &handler, f, false);
}

/// The thread has a timeout handler (seL4's `validTimeoutHandler`).
pub fn valid_timeout_handler(t: Tcb) -> bool {
    matches!(t.slot(tcb::TIMEOUT_HANDLER).cap(), Cap::Endpoint { .. })
}

/// A fault endpoint cap may be installed: an endpoint cap that can send
/// and grant (or grant reply), or the null cap (seL4's
/// `validFaultHandler`). Out of line: SetSchedParams, SetSpace and
/// SetTimeoutEndpoint call it (56 bytes a copy inlined).
#[inline(never)]
pub fn valid_fault_handler(cap: &Cap) -> bool {
    match *cap {
        Cap::Endpoint {
            can_send,
            can_grant,
            can_grant_reply,
            ..
        } => can_send && (can_grant || can_grant_reply),
        Cap::Null => true,
        _ => false,
    }
}

/// Prints the fault and stops the thread (seL4's `handleNoFaultHandler`).
pub fn handle_no_fault_handler(t: Tcb, f: &Fault) {
    if septa_abi::CONFIG.printing() {
        print_no_fault_handler(t, f);
    }
    sched::set_thread_state(t, ThreadState::Inactive);
}

/// What [`handle_no_fault_handler`] prints (the configuration that prints
/// only: the thread's name is read for it).
fn print_no_fault_handler(t: Tcb, f: &Fault) {
    let mut name = [0u8; tcb::NAME_BYTES as usize];
    let n = t.name(&mut name);
    let name = core::str::from_utf8(&name[..n]).unwrap_or("?");
    crate::kdebugln!("Found thread has no fault handler while trying to handle:");
    match *f {
        Fault::Cap {
            address,
            in_receive_phase,
            ..
        } => crate::kdebugln!(
            "cap fault in {} phase at address {:#x}",
            if in_receive_phase { "receive" } else { "send" },
            address
        ),
        Fault::Vm {
            address,
            fsr,
            instruction,
        } => crate::kdebugln!(
            "vm fault on {} at address {:#x} with status {:#x}",
            if instruction { "code" } else { "data" },
            address,
            fsr
        ),
        Fault::UnknownSyscall { number } => crate::kdebugln!("unknown syscall {:#x}", number),
        Fault::UserException { number, code } => {
            crate::kdebugln!("user exception {:#x} code {:#x}", number, code)
        }
        Fault::Timeout { badge } => crate::kdebugln!("Timeout fault for {:#x}", badge),
        _ => crate::kdebugln!("{:?}", f),
    }
    crate::kdebugln!(
        "in thread {:#x} \"{}\" at address {:#x}",
        t.paddr(),
        name,
        t.restart_pc()
    );
}
