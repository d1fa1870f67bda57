//! # septa-kernel: Septa's seL4 16.0.0-ABI microkernel (aarch64, hyp, MCS)
//!
//! Configuration: aarch64 with the kernel at EL2 (hypervisor support), MCS
//! scheduling, one core, 40-bit physical addresses, QEMU `virt`.
//!
//! The library is the kernel's portable core, plain Rust tested on the host
//! (`cargo test -p septa-kernel`), where an arena stands in for physical
//! memory and [`machine`] records what the core asked of the hardware.
//! Everything that touches the hardware is under `arch::aarch64`, compiled
//! for the target only; the binary (`main.rs`) is just its entry.
//!
//! - [`memory`]: the window through which physical memory is reached; with
//!   [`preempt`], the only state outside kernel objects.
//! - [`machine`]: the core's only door to the hardware (timer, interrupt
//!   controller, TLB and cache maintenance).
//! - [`cap`]: capabilities, their 16-byte stored form and their rules.
//! - [`cte`]: slots and the capability derivation tree.
//! - [`delete`]: delete, revoke and finalisation (with zombies).
//! - [`cspace`]: capability address lookup.
//! - [`untyped`], [`cnode`]: the Untyped and CNode invocations.
//! - [`object`]: the other object types.
//! - [`error`], [`invocation`]: what decoders take and return.
//! - [`debug`]: the DebugCapIdentify system call.
//! - [`boot`], [`bootmem`]: the root task's objects, caps and BootInfo;
//!   boot-time memory arithmetic.
//! - [`context`], [`global`]: a thread's saved registers; kernel globals.
//! - [`sched`]: the MCS scheduler; [`syscall`]: every entry from a thread;
//!   [`fastpath`]: Call and ReplyRecv through passive servers; [`ipc`]:
//!   message and cap transfer; [`fault`]: fault messages.
//! - [`pagetable`]: the stage-2 translation table format.
//!
//! Rules of the core: no heap (every object lives in memory retyped from
//! untyped); no user input can make it panic (every bad argument yields
//! the seL4 error); every object's initial state is all-zero bytes (see
//! [`object`]). Outside `arch`, it uses `unsafe` only in [`memory`] and
//! [`preempt`].
//!
//! Dependencies: `septa-abi` for every ABI number (defined once there);
//! `fdt` to read the device tree at boot.
#![cfg_attr(not(test), no_std)]

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
extern crate std;

pub mod boot;
pub mod bootmem;
pub mod cap;
pub mod cnode;
pub mod context;
pub mod cspace;
pub mod cte;
pub mod debug;
pub mod delete;
pub mod error;
pub mod fastpath;
pub mod fault;
pub mod global;
pub mod invocation;
pub mod ipc;
pub mod machine;
pub mod memory;
pub mod object;
pub mod pagetable;
pub mod preempt;
pub mod print;
pub mod sched;
pub mod syscall;
pub mod untyped;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod arch;

#[cfg(test)]
mod tests;
