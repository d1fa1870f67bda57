//! # vmm: the virtual machine monitor PD
//!
//! An ordinary, unprivileged protection domain that runs one Linux guest
//! in its VM (`[pd.NAME.vm.VM]` of the system description, Microkit's
//! model): the guest's vCPUs are threads of the VMM's VM, whose faults
//! arrive at the VMM's `fault` entry point; the VMM answers each.
//!
//! What it owns: the guest's boot (the arm64 `Image`, initrd and device
//! tree the tool prepared, copied into guest RAM where
//! `septa_vm_layout::place` says, vCPU 0 started at the kernel) and the
//! machine the guest's device tree describes that is not hardware: the
//! GICv2 distributor ([`gicd`], with the list registers in [`vgic`]), PSCI
//! and SMCCC ([`psci`]), the virtual timer's events, the PL011 console
//! ([`pl011`]), and the decoding of every trap ([`syndrome`], [`vm`]). An
//! access it does not emulate gets an abort injected into the guest and a
//! log line, never a crash of the VMM.
//!
//! What it must not touch: anything but its own VM, the regions the
//! description maps into it, and the channels it is given. It makes no
//! policy beyond its guest: what happens when the VMM itself faults is the
//! monitor's restart policy (a restarted VMM boots its guest afresh).
//!
//! | module | what |
//! |---|---|
//! | [`vm`] | booting the guest and answering its vCPUs' faults |
//! | [`gicd`] | the distributor's registers |
//! | [`vgic`] | which interrupt is in which list register |
//! | [`pl011`] | the console UART |
//! | [`psci`] | firmware calls |
//! | [`syndrome`] | ESR decoding and the syndromes of injected exceptions |
//! | [`virtio`] | the virtio-mmio devices: the guest's network card, disk and console |
//! | [`fdt`] | checking the device tree it loads |
//! | [`platform`] | what the VMM needs from the kernel, as a trait host tests fake |
//! | [`pd`] | the PD: patched symbols, the seL4 platform, the event loop's handler |
//!
//! Dependencies: `septa-runtime` (entry, event loop, channels, vCPU
//! invocations), `septa-sel4` (fault decoding, register sets), `septa-abi`
//! (VCPU register numbers), `septa-vm-layout` (the guest's memory map, the
//! Image header, placement: the same code the tool uses), `thiserror`.
//! The guest's console goes through the serial subsystem by the runtime's
//! client ([`pd`]).
#![cfg_attr(not(test), no_std)]
// Unsafe code lives in `pd` alone (guest RAM and the image regions).
#![deny(unsafe_code)]

pub mod fdt;
pub mod gicd;
pub mod pd;
pub mod pl011;
pub mod platform;
pub mod psci;
pub mod syndrome;
pub mod vgic;
pub mod virtio;
pub mod vm;

pub use platform::{Hooks, NoHooks, Platform};
pub use vm::{Reply, Vm};

/// vCPUs one VM may have (a GICv2 targets eight CPU interfaces).
pub const MAX_VCPUS: usize = gicd::MAX_CPUS;
