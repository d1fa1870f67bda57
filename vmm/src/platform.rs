//! What the VMM needs from below: the kernel's vCPU and thread
//! invocations, the guest's RAM, the console and a log.
//!
//! [`crate::pd`] implements it on seL4 (and Septa's kernel) for the PD;
//! host tests implement it with a recording fake, so every path of
//! [`crate::Vm`] runs under `cargo test`.

use core::fmt;

use septa_runtime::Vcpu;
use septa_sel4::{Error, UserContext};

/// The guest's RAM could not take a copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutsideRam {
    pub gpa: u64,
    pub len: u64,
}

pub trait Platform {
    /// The first `count` registers of the vCPU's thread (TCB order).
    fn read_regs(&mut self, vcpu: Vcpu, count: usize) -> Result<UserContext, Error>;
    /// Writes the first `count` registers of the vCPU's thread.
    fn write_regs(&mut self, vcpu: Vcpu, count: usize, regs: &UserContext) -> Result<(), Error>;
    /// A VCPU register (`septa_abi::vcpu_reg`).
    fn read_vcpu_reg(&mut self, vcpu: Vcpu, reg: u64) -> Result<u64, Error>;
    fn write_vcpu_reg(&mut self, vcpu: Vcpu, reg: u64, value: u64) -> Result<(), Error>;
    /// VCPU InjectIRQ into list register `lr`.
    fn inject_irq(
        &mut self,
        vcpu: Vcpu,
        irq: u16,
        priority: u8,
        group: u8,
        lr: u8,
    ) -> Result<(), Error>;
    /// VCPU AckVPPI.
    fn ack_vppi(&mut self, vcpu: Vcpu, irq: u64) -> Result<(), Error>;
    /// Suspends the vCPU's thread (dropping a fault it waits on).
    fn stop(&mut self, vcpu: Vcpu) -> Result<(), Error>;
    fn resume(&mut self, vcpu: Vcpu) -> Result<(), Error>;
    /// Copies `bytes` into guest RAM at guest-physical `gpa` and makes them
    /// visible to a guest running with its caches off.
    fn copy_to_ram(&mut self, gpa: u64, bytes: &[u8]) -> Result<(), OutsideRam>;
    /// Bytes the guest wrote to its console.
    fn console(&mut self, bytes: &[u8]);
    /// One line of the VMM's log (without the newline).
    fn log(&mut self, line: fmt::Arguments<'_>);
    /// The guest has powered off: tell whoever the description says
    /// should know.
    fn guest_off(&mut self);
    /// Signals the net virtualisers: the receive one (buffers came back)
    /// and/or the transmit one (frames went out).
    fn net_notify(&mut self, _rx: bool, _tx: bool) {}
    /// The physical counter now (CNTPCT), if the VMM can be woken at a
    /// count of it ([`wake_at`](Self::wake_at)): then a vCPU with nothing
    /// to do waits in its WFI instead of trapping again at once.
    fn counter(&mut self) -> Option<u64> {
        None
    }
    /// Wake the VMM (a notification, then [`crate::Vm::wake_idle`]) once
    /// the physical counter reaches `at`; `None`: no wake-up is wanted.
    /// Replaces the last one.
    fn wake_at(&mut self, _at: Option<u64>) {}
}

/// Test-only behaviour a VMM binary may add (the production VMM uses
/// [`NoHooks`]).
pub trait Hooks {
    /// A guest access no device answers, before the VMM injects its abort.
    fn unhandled_mmio(&mut self, _gpa: u64, _write: bool, _value: u64) {}
    /// A boot begins: the vCPUs are stopped, nothing is loaded yet.
    fn boot_started(&mut self) {}
    /// The guest is loaded and vCPU 0 is about to start at the kernel.
    fn guest_starting(&mut self) {}
}

/// The production VMM's hooks: none.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHooks;

impl Hooks for NoHooks {}
