//! Virtual CPUs (hyp): saved EL1 state of a guest (`VCPU_SIZE_BITS`).
//!
//! Zero rule: seL4's `vcpu_init` sets a few registers at creation (SCTLR's
//! reset value, the vGIC hypervisor control); the VCPU work either encodes
//! them relative to those defaults or initialises new VCPUs from the list
//! `untyped::decode_untyped_invocation` returns.

/// Clean-up when the last cap to a VCPU is deleted (seL4's `vcpu_finalise`:
/// dissociate it from its TCB and, if it is loaded on the CPU, save and
/// switch it off).
///
/// Not yet: the VM work must do that.
pub fn finalise(vcpu: u64) {
    let _ = vcpu;
}
