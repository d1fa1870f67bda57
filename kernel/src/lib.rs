//! # septa-kernel: Septa's seL4 16.0.0-ABI microkernel (aarch64, hyp, MCS)
//!
//! The library is the kernel's portable core; the binary (`main.rs`) and
//! `arch/` add the aarch64 boot, MMU, exception and context-switch code.
//! The core builds `no_std` for the target and with `std` for host tests
//! (`cargo test -p septa-kernel`), where an arena stands in for physical
//! memory.
//!
//! What the core owns so far: the capability layer.
//!
//! - [`memory`]: the window through which physical memory is reached; with
//!   [`preempt`], the only state outside kernel objects.
//! - [`cap`]: capabilities, their 16-byte stored form and their rules.
//! - [`cte`]: slots and the capability derivation tree.
//! - [`delete`]: delete, revoke and finalisation (with zombies).
//! - [`cspace`]: capability address lookup.
//! - [`untyped`], [`cnode`]: the Untyped and CNode invocations.
//! - [`object`]: the other object types' finalisation hooks.
//! - [`error`], [`invocation`]: what decoders take and return.
//! - [`debug`]: the DebugCapIdentify system call.
//!
//! Rules of the core: no heap (every object lives in memory retyped from
//! untyped); no user input can make it panic (every bad argument yields
//! the seL4 error); every object's initial state is all-zero bytes (see
//! [`object`]). It uses `unsafe` only in [`memory`] and [`preempt`].
//!
//! Dependencies: `septa-abi` for every ABI number (defined once there).
#![cfg_attr(not(test), no_std)]

pub mod cap;
pub mod cnode;
pub mod cspace;
pub mod cte;
pub mod debug;
pub mod delete;
pub mod error;
pub mod invocation;
pub mod memory;
pub mod object;
pub mod preempt;
pub mod untyped;

#[cfg(test)]
mod tests;
