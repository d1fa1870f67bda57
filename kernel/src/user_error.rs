//! # Why an invocation failed (configurations with printing)
//!
//! seL4 prints a "user error" on its console whenever it refuses a thread's
//! request (`userError` in include/api/types.h):
//!
//! ```text
//! <<seL4(CPU 0) [decodeTCBInvocation/123 T0xffffff8040123400 "client" @200c4c]: TCB SetPriority: Invalid priority.>>
//! ```
//!
//! Septa's kernel does the same at one place, where a failed invocation
//! becomes its error reply ([`invocation_failed`]), and where the invoked
//! cap or an extra cap cannot be looked up ([`lookup_failed`]). The part in
//! brackets names the seL4 decoder and the invocation (instead of a C line
//! number), the thread by its TCB's physical address and name, and the
//! address of its system call; after the colon comes the error the caller
//! gets, with its details. No colour.
//!
//! The switch: a system that provokes failures on purpose (the conformance
//! suite provokes thousands) is quieter without them. The tool clears
//! [`SEPTA_USER_ERRORS`] in the kernel image for a description that says
//! `user_errors = false`; host tests turn the lines on with [`set_enabled`].

use core::fmt;

use crate::cap::Cap;
use crate::context::Reg;
use crate::error::{LookupFault, SyscallError};
use crate::object::tcb::{self, Tcb};
use septa_abi::{Label, CONFIG};

/// Whether failed invocations are reported (1) or not (0). The tool
/// patches this byte in the kernel ELF (`septa::pack`); nothing in the
/// kernel writes it.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
#[no_mangle]
#[used]
pub static SEPTA_USER_ERRORS: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(1);

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
fn enabled() -> bool {
    CONFIG.printing() && SEPTA_USER_ERRORS.load(core::sync::atomic::Ordering::Relaxed) != 0
}

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
std::thread_local! {
    static ENABLED: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

/// Host tests: print user errors (off unless a test asks, so the machine
/// double's log holds only what the test provoked).
#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
pub fn set_enabled(on: bool) {
    ENABLED.with(|e| e.set(on));
}

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
fn enabled() -> bool {
    CONFIG.printing() && ENABLED.with(|e| e.get())
}

/// The bracketed part: where, who, at which instruction.
struct Site<'a> {
    decoder: &'a str,
    what: &'a dyn fmt::Display,
    thread: Tcb,
}

impl fmt::Display for Site<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut name = [0u8; tcb::NAME_BYTES as usize];
        let n = self.thread.name(&mut name);
        let name = core::str::from_utf8(&name[..n]).unwrap_or("?");
        write!(
            f,
            "[{}/{} T{:#x} \"{}\" @{:x}]",
            self.decoder,
            self.what,
            self.thread.paddr(),
            name,
            self.thread.reg(Reg::FAULT_IP)
        )
    }
}

fn line(site: Site<'_>, message: fmt::Arguments<'_>) {
    crate::kdebugln!("<<seL4(CPU 0) {site}: {message}>>");
}

/// The invocation `label` of `cap` by `thread` failed with `e`.
#[inline(never)]
pub fn invocation_failed(thread: Tcb, cap: &Cap, label: u64, e: &SyscallError) {
    if !enabled() {
        return;
    }
    let what = LabelName(label);
    line(
        Site {
            decoder: decoder(cap),
            what: &what,
            thread,
        },
        format_args!("{}", Why(e)),
    );
}

/// The invoked cap (`extra` false) or one of the message's extra caps
/// could not be looked up: seL4's two messages from `handleInvocation`.
#[inline(never)]
pub fn lookup_failed(thread: Tcb, cptr: u64, extra: bool) {
    if !enabled() {
        return;
    }
    let site = Site {
        decoder: "handleInvocation",
        what: &"lookup",
        thread,
    };
    if extra {
        line(site, format_args!("Lookup of extra caps failed."));
    } else {
        line(site, format_args!("Invocation of invalid cap #{cptr}."));
    }
}

/// The seL4 function that decodes invocations of `cap`.
fn decoder(cap: &Cap) -> &'static str {
    match cap {
        Cap::Untyped { .. } => "decodeUntypedInvocation",
        Cap::CNode { .. } => "decodeCNodeInvocation",
        Cap::Tcb { .. } => "decodeTCBInvocation",
        Cap::SchedContext { .. } => "decodeSchedContextInvocation",
        Cap::SchedControl { .. } => "decodeSchedControlInvocation",
        Cap::IrqControl => "decodeIRQControlInvocation",
        Cap::IrqHandler { .. } => "decodeIRQHandlerInvocation",
        Cap::Domain => "decodeDomainInvocation",
        Cap::Smc { .. } => "decodeARMSMCInvocation",
        Cap::SgiSignal { .. } => "decodeSGISignalInvocation",
        Cap::AsidControl | Cap::AsidPool { .. } => "decodeARMMMUInvocation",
        Cap::Frame { .. } => "decodeARMFrameInvocation",
        Cap::PageTable { .. } => "decodeARMPageTableInvocation",
        Cap::VSpace { .. } => "decodeARMVSpaceRootInvocation",
        Cap::Vcpu { .. } => "decodeARMVCPUInvocation",
        _ => "decodeInvocation",
    }
}

/// An invocation label by its interface name, or its number.
struct LabelName(u64);

impl fmt::Display for LabelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match CONFIG.label(self.0) {
            Some(l) if l != Label::InvalidInvocation => write!(f, "{l:?}"),
            _ => write!(f, "label {}", self.0),
        }
    }
}

/// The error the caller gets, in words, with what its message registers
/// carry.
struct Why<'a>(&'a SyscallError);

impl fmt::Display for Why<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self.0 {
            SyscallError::InvalidArgument { index } => {
                write!(f, "Invalid argument (message word {index}).")
            }
            SyscallError::InvalidCapability { index: 0 } => {
                write!(f, "Invalid capability: the invoked one.")
            }
            SyscallError::InvalidCapability { index } => {
                write!(f, "Invalid capability: extra cap {}.", index - 1)
            }
            SyscallError::IllegalOperation => write!(f, "Illegal operation attempted."),
            SyscallError::RangeError { min, max } => {
                write!(f, "Argument out of range: allowed {min}..={max}.")
            }
            SyscallError::AlignmentError => write!(f, "Alignment error."),
            SyscallError::FailedLookup { source, fault } => {
                let which = if source { "source" } else { "destination" };
                write!(f, "Lookup of the {which} slot failed: {}.", Fault(&fault))
            }
            SyscallError::TruncatedMessage => write!(f, "Truncated message."),
            SyscallError::DeleteFirst => write!(f, "Destination slot not empty (delete first)."),
            SyscallError::RevokeFirst => write!(f, "Revoke first: the object has children."),
            SyscallError::NotEnoughMemory { available } => {
                write!(
                    f,
                    "Not enough memory: {available} bytes left in the untyped."
                )
            }
        }
    }
}

struct Fault<'a>(&'a LookupFault);

impl fmt::Display for Fault<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self.0 {
            LookupFault::InvalidRoot => write!(f, "invalid root"),
            LookupFault::MissingCapability { bits_left } => {
                write!(f, "missing capability ({bits_left} bits left)")
            }
            LookupFault::DepthMismatch {
                bits_left,
                bits_found,
            } => write!(
                f,
                "depth mismatch ({bits_left} bits left, {bits_found} resolved)"
            ),
            LookupFault::GuardMismatch {
                bits_left,
                guard_found,
                bits_found,
            } => write!(
                f,
                "guard mismatch ({bits_left} bits left, guard {guard_found:#x} of {bits_found} bits)"
            ),
        }
    }
}
