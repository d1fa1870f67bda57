//! What the monitor says about a fault: one line a person can act on,
//! decoded from the fault message and the thread's registers.
//!
//! Pure formatting, so host tests check every kind of fault word by word.

use core::fmt;

use septa_abi::microkit::PANIC_MARKER;
use septa_sel4::fault::Fault;
use septa_sel4::UserContext;

const PAGE: u64 = 1 << septa_abi::PAGE_BITS;

/// ESR exception classes the monitor names (ARM ARM, ESR_ELx.EC).
mod ec {
    pub const UNKNOWN: u64 = 0x00;
    pub const ILLEGAL_STATE: u64 = 0x0e;
    pub const SVC64: u64 = 0x15;
    pub const SYSREG: u64 = 0x18;
    pub const INSTRUCTION_ABORT_LOWER: u64 = 0x20;
    pub const PC_ALIGNMENT: u64 = 0x22;
    pub const DATA_ABORT_LOWER: u64 = 0x24;
    pub const SP_ALIGNMENT: u64 = 0x26;
    pub const BRK64: u64 = 0x3c;
}

/// What the monitor concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Diagnosis {
    NullDereference,
    StackOverflow,
    Panic,
    Other,
}

/// A fault, ready to print.
pub struct Described<'a> {
    pub fault: &'a Fault,
    pub regs: &'a UserContext,
    /// The PD's stack, `(bottom, top)`.
    pub stack: (u64, u64),
}

impl Described<'_> {
    pub fn diagnosis(&self) -> Diagnosis {
        match *self.fault {
            Fault::VmFault { addr, .. } if addr < PAGE => Diagnosis::NullDereference,
            Fault::VmFault { addr, .. } if self.overflows(addr) => Diagnosis::StackOverflow,
            Fault::UserException { .. } if self.regs.x0 == PANIC_MARKER => Diagnosis::Panic,
            _ => Diagnosis::Other,
        }
    }

    /// A fault in the guard page below the stack, or below the stack while
    /// the stack pointer is already there.
    fn overflows(&self, addr: u64) -> bool {
        let bottom = self.stack.0;
        let in_guard = addr < bottom && addr >= bottom.saturating_sub(PAGE);
        let sp_below =
            self.regs.sp < bottom && addr < bottom && addr >= self.regs.sp.saturating_sub(PAGE);
        in_guard || sp_below
    }
}

fn fault_status(fsc: u64) -> (&'static str, Option<u64>) {
    match fsc {
        0x00..=0x03 => ("address size fault", Some(fsc & 3)),
        0x04..=0x07 => ("translation fault", Some(fsc & 3)),
        0x08..=0x0b => ("access flag fault", Some(fsc & 3)),
        0x0c..=0x0f => ("permission fault", Some(fsc & 3)),
        0x10 => ("synchronous external abort", None),
        0x21 => ("alignment fault", None),
        _ => ("fault", None),
    }
}

impl fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self.fault {
            Fault::VmFault {
                ip,
                addr,
                prefetch,
                fsr,
            } => {
                let class = fsr >> 26;
                let write = class == ec::DATA_ABORT_LOWER && fsr & (1 << 6) != 0;
                let access = if prefetch || class == ec::INSTRUCTION_ABORT_LOWER {
                    "instruction fetch"
                } else if write {
                    "write"
                } else {
                    "read"
                };
                let (status, level) = fault_status(fsr & 0x3f);
                write!(
                    f,
                    "VM fault: {access} at {addr:#x} from pc {ip:#x}: {status}"
                )?;
                if let Some(l) = level {
                    write!(f, " (level {l})")?;
                }
                match self.diagnosis() {
                    Diagnosis::NullDereference => write!(f, ": null pointer dereference"),
                    Diagnosis::StackOverflow => write!(
                        f,
                        ": stack overflow (stack {:#x}..{:#x}, sp {:#x})",
                        self.stack.0, self.stack.1, self.regs.sp
                    ),
                    _ => Ok(()),
                }
            }
            Fault::UserException { fault_ip, esr, .. } => {
                if self.diagnosis() == Diagnosis::Panic {
                    return write!(
                        f,
                        "panicked (undefined instruction with the runtime's panic marker at pc {fault_ip:#x}; its message is above)"
                    );
                }
                let what = match esr >> 26 {
                    ec::UNKNOWN => "undefined instruction",
                    ec::PC_ALIGNMENT => "misaligned pc",
                    ec::SP_ALIGNMENT => "misaligned stack pointer",
                    ec::BRK64 => "breakpoint instruction",
                    ec::SVC64 => "system call trap",
                    _ => "user exception",
                };
                write!(f, "{what} at pc {fault_ip:#x} (ESR {esr:#x})")
            }
            Fault::CapFault {
                ip,
                addr,
                in_recv_phase,
                failure,
            } => write!(
                f,
                "capability fault at pc {ip:#x}: CPtr {addr:#x} in the {} phase: {failure}",
                if in_recv_phase { "receive" } else { "send" }
            ),
            Fault::UnknownSyscall {
                fault_ip, syscall, ..
            } => write!(
                f,
                "unknown system call {} at pc {fault_ip:#x}",
                syscall as i64
            ),
            Fault::Timeout { badge, consumed } => write!(
                f,
                "timeout: scheduling context {badge:#x} used up its budget ({consumed} us consumed)"
            ),
            // A hyp seL4 reports every trap of a native thread other than
            // aborts, system calls and unknown instructions as a VCPU fault.
            Fault::VcpuFault { hsr } => {
                let what = match hsr >> 26 {
                    ec::SYSREG => "trapped system register access",
                    ec::PC_ALIGNMENT => "misaligned pc",
                    ec::SP_ALIGNMENT => "misaligned stack pointer",
                    ec::BRK64 => "breakpoint instruction",
                    ec::ILLEGAL_STATE => "illegal execution state",
                    _ => "vCPU fault",
                };
                write!(f, "{what} (ESR {hsr:#x})")
            }
            Fault::DebugException {
                fault_ip,
                reason,
                trigger,
                number,
            } => {
                use septa_abi::hardware_debug as hd;
                match reason {
                    hd::INSTRUCTION_BREAKPOINT => {
                        write!(f, "breakpoint {number} at pc {fault_ip:#x}")
                    }
                    hd::DATA_BREAKPOINT => write!(
                        f,
                        "watchpoint {number}: access to {trigger:#x} from pc {fault_ip:#x}"
                    ),
                    hd::SINGLE_STEP => write!(f, "single step at pc {fault_ip:#x}"),
                    _ => write!(f, "breakpoint instruction at pc {fault_ip:#x}"),
                }
            }
            Fault::VgicMaintenance { idx } => match idx {
                Some(i) => write!(f, "vGIC maintenance (list register {i})"),
                None => write!(f, "vGIC maintenance (no list register)"),
            },
            Fault::VppiEvent { irq } => write!(f, "virtual PPI {irq}"),
            Fault::Null => write!(f, "an empty message"),
            Fault::Other { label } => write!(f, "fault of unknown kind {label}"),
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use septa_sel4::LookupFailure;
    use std::format;
    use std::string::String;

    const STACK: (u64, u64) = (0xff_ffff_c000, 0xff_ffff_e000);

    fn text(fault: Fault, regs: UserContext) -> (String, Diagnosis) {
        let d = Described {
            fault: &fault,
            regs: &regs,
            stack: STACK,
        };
        (format!("{d}"), d.diagnosis())
    }

    fn vm(addr: u64, fsr: u64) -> Fault {
        Fault::VmFault {
            ip: 0x20_0123,
            addr,
            prefetch: false,
            fsr,
        }
    }

    #[test]
    fn null_dereference() {
        // Data abort from a lower EL, read, translation fault level 1.
        let (t, d) = text(vm(0, 0x9200_0005), UserContext::default());
        assert_eq!(d, Diagnosis::NullDereference);
        assert_eq!(
            t,
            "VM fault: read at 0x0 from pc 0x200123: translation fault (level 1): null pointer dereference"
        );
    }

    #[test]
    fn stack_overflow_in_the_guard_page_or_with_sp_below() {
        let regs = UserContext {
            sp: 0xff_ffff_bff0,
            ..Default::default()
        };
        let (t, d) = text(vm(0xff_ffff_bff8, 0x9200_0047), regs);
        assert_eq!(d, Diagnosis::StackOverflow);
        assert!(t.starts_with("VM fault: write at 0xffffffbff8"), "{t}");
        assert!(t.ends_with("stack overflow (stack 0xffffffc000..0xffffffe000, sp 0xffffffbff0)"));
        // Far below the guard page, but the stack pointer went there.
        let regs = UserContext {
            sp: 0xff_ffff_8000,
            ..Default::default()
        };
        assert_eq!(
            text(vm(0xff_ffff_7ff8, 0x9200_0047), regs).1,
            Diagnosis::StackOverflow
        );
        // An ordinary bad pointer is not an overflow.
        let regs = UserContext {
            sp: 0xff_ffff_d000,
            ..Default::default()
        };
        let (t, d) = text(vm(0x1234_5000, 0x9200_000f), regs);
        assert_eq!(d, Diagnosis::Other);
        assert!(t.ends_with("permission fault (level 3)"), "{t}");
    }

    #[test]
    fn panics_and_other_user_exceptions() {
        let udf = Fault::UserException {
            fault_ip: 0x20_0400,
            sp: 0,
            spsr: 0,
            esr: 0x0200_0000,
            code: 0,
        };
        let regs = UserContext {
            x0: PANIC_MARKER,
            ..Default::default()
        };
        let (t, d) = text(udf, regs);
        assert_eq!(d, Diagnosis::Panic);
        assert!(t.starts_with("panicked"), "{t}");
        let (t, d) = text(udf, UserContext::default());
        assert_eq!(d, Diagnosis::Other);
        assert_eq!(t, "undefined instruction at pc 0x200400 (ESR 0x2000000)");
    }

    #[test]
    fn cap_faults_syscalls_and_timeouts() {
        let cap = Fault::CapFault {
            ip: 0x20_0010,
            addr: 0x4d,
            in_recv_phase: false,
            failure: LookupFailure::MissingCapability { bits_left: 9 },
        };
        assert_eq!(
            text(cap, UserContext::default()).0,
            "capability fault at pc 0x200010: CPtr 0x4d in the send phase: missing capability (9 bits left)"
        );
        let sys = Fault::UnknownSyscall {
            regs: [0; 8],
            fault_ip: 0x20_0020,
            sp: 0,
            lr: 0,
            spsr: 0,
            syscall: (-40i64) as u64,
        };
        assert_eq!(
            text(sys, UserContext::default()).0,
            "unknown system call -40 at pc 0x200020"
        );
        let t = Fault::Timeout {
            badge: 0x101,
            consumed: 1000,
        };
        assert_eq!(
            text(t, UserContext::default()).0,
            "timeout: scheduling context 0x101 used up its budget (1000 us consumed)"
        );
    }
}
