//! # septa-initializer: the root task, then the monitor
//!
//! Started by the kernel with BootInfo in x0. It reads the spec the tool
//! appended to its image (`septa-spec`'s blob, at the first page past its
//! own end), creates every object from the untyped memory BootInfo lists,
//! fills and maps frames, mints every capability, configures and starts
//! every thread ([`realize`]); then it stays on at priority 255 as the
//! monitor that receives the PDs' faults and applies their restart policy
//! ([`monitor`]).
//!
//! What it owns: the order of the invocations that build a system, the
//! fill window in its own address space ([`frames`]), the monitor's policy
//! and its console messages ([`fault_text`]). What it must not do: decide
//! anything the tool could decide (every slot, badge and address is in the
//! spec), or use anything but the seL4 ABI (it runs unchanged on Septa's
//! kernel and on seL4 16.0.0).
//!
//! The library holds the logic and builds on the host, where the tests run
//! it against `septa_sel4::host` kernels; `main.rs` is the target's entry.
#![no_std]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod fault_text;
pub mod frames;
pub mod monitor;
pub mod realize;
#[cfg(test)]
mod tests;

use septa_sel4::bootinfo::BootInfoRef;
use septa_sel4::debug_println;
use septa_spec::Spec;

/// Prints what the spec holds, before building it.
pub fn summary(spec: &Spec, bi: &BootInfoRef) {
    let ram: u64 = bi
        .untyped()
        .filter(|(_, d)| d.is_device == 0)
        .map(|(_, d)| 1u64 << d.size_bits)
        .sum();
    debug_println!(
        "initializer: {} objects, {} threads, {} PDs; {} MiB of untyped RAM in {} untypeds",
        spec.objects.len(),
        spec.threads.len(),
        spec.pds.len(),
        ram >> 20,
        bi.untyped().count()
    );
}
