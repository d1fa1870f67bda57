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
//! - [`debug`]: the DebugCapIdentify system call; [`benchmark`]: the
//!   benchmark configuration's utilisation tracking and system calls;
//!   [`user_error`]: the console line for each failed invocation.
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
//! [`object`]).
//!
//! `unsafe` outside `arch`: [`memory`] owns every pointer access to
//! physical memory, and [`preempt`] keeps the preemption hook as a raw
//! word. The rest is of two kinds, each argued where it stands: `Pod`
//! declarations of the types stored in objects ([`cap`], [`cte`], [`boot`])
//! and the unchecked field reads and writes of the object handles, whose
//! constructors checked range and alignment once ([`cte`] and, in
//! [`object`], `endpoint`, `notification`, `reply`, `sched_context` and
//! `tcb`); and [`global`]'s `Sync` for the kernel's cells (one core,
//! interrupts masked in the kernel).
//!
//! Nothing is exported: the modules are private, so the compiler sees
//! every item that nothing uses (on the target build, see below). It also
//! inlines every function that has one caller; where that measured worse
//! (a bigger prologue on a hot path: `cargo septa bench`), the function is
//! kept out of line with `#[inline(never)]` and says so.
//!
//! Dependencies: `septa-abi` for every ABI number (defined once there),
//! `septa-image` for the boot contract's translation settings, `septa-zva`
//! for zeroing. The device tree is read by `devicetree`, one pass written
//! here: the `fdt` crate took ~160,000 instructions of boot for the four
//! things the kernel needs (it stays a dev-dependency, to compare against).
// The crate documents its private modules (nothing is exported).
#![allow(rustdoc::private_intra_doc_links)]
#![cfg_attr(not(test), no_std)]
// On the host the library exists for its tests, and `arch`, which calls
// much of the core, is not compiled: what is dead code is judged by the
// target build (`.ci/run` runs clippy for it with warnings denied).
#![cfg_attr(
    not(all(target_arch = "aarch64", target_os = "none")),
    allow(dead_code)
)]

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
extern crate std;

mod benchmark;
mod boot;
mod bootmem;
mod cap;
mod cnode;
mod context;
mod cspace;
mod cte;
mod debug;
mod delete;
mod devicetree;
mod error;
mod fastpath;
mod fault;
mod global;
mod invocation;
mod ipc;
mod machine;
mod memory;
mod object;
mod pagetable;
mod preempt;
mod print;
mod sched;
mod syscall;
mod untyped;
mod user_error;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod arch;

#[cfg(test)]
mod tests;
