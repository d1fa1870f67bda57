//! # septa-kernel: a microkernel with the seL4 16.0.0 ABI
//!
//! Configuration: aarch64 with the kernel at EL2 (hypervisor support), MCS
//! scheduling, one core, 40-bit physical addresses, QEMU `virt`.
//!
//! The portable core (capabilities, objects, IPC, scheduling) is plain Rust
//! tested on the host; everything that touches the hardware is under
//! `arch::aarch64` and compiled for the target only. The kernel has no heap:
//! every object lives in memory that user level retyped from untyped.
#![cfg_attr(not(test), no_std)]

pub mod bootmem;
pub mod context;
pub mod machine;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod arch;
